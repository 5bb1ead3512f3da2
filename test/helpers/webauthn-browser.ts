import type { Kysely } from 'kysely';
import type { Browser, BrowserContext, CDPSession, Page } from 'playwright-core';
import type { Database } from '../../src/db/types.ts';
import { messages } from '../../src/i18n/messages.ts';
import { EnrollmentCodes } from '../../src/methods/webauthn/store.ts';

export { chromiumAvailable, interceptRequests, launchChromium, missingChromiumSuite } from './chromium.ts';

import { TEST_PASSWORD } from './clients.ts';

const fr = messages.fr;

/**
 * Real-browser WebAuthn for the tests: Debian's Chromium driven by playwright-core, with a virtual FIDO2
 * authenticator from the DevTools WebAuthn domain (no physical key, but the browser's own ceremony:
 * origin and RP ID checks, CBOR, signatures, counters).
 */

/**
 * A fresh French browser profile (no cookies). `bypassCSP` lets a test inject axe-core into the pages
 * (the content security policy refuses injected scripts otherwise).
 */
export async function newFrenchContext(
  browser: Browser,
  options: { bypassCSP?: boolean } = {},
): Promise<BrowserContext> {
  const context = await browser.newContext({
    locale: 'fr-FR',
    viewport: { width: 1024, height: 900 },
    bypassCSP: options.bypassCSP ?? false,
  });
  // What a page waits for (an element, a navigation), with a deadline a loaded machine meets.
  context.setDefaultTimeout(60_000);
  return context;
}

/** DevTools WebAuthn.setResponseOverrideBits (the protocol types are not exported by playwright-core). */
export interface OverrideBits {
  isBogusSignature?: boolean;
  isBadUV?: boolean;
  isBadUP?: boolean;
}

export interface AuthenticatorOptions {
  protocol: 'ctap2' | 'u2f';
  transport: 'usb' | 'nfc' | 'ble' | 'internal';
  hasResidentKey: boolean;
  hasUserVerification: boolean;
  isUserVerified: boolean;
  automaticPresenceSimulation: boolean;
}

/** A credential held by the virtual key (WebAuthn.getCredentials). */
export interface VirtualCredential {
  credentialId: string;
  isResidentCredential: boolean;
  rpId?: string;
  userHandle?: string;
  /** PKCS#8, base64: lets a test copy a key to another tab's authenticator. */
  privateKey: string;
  signCount: number;
}

/** A virtual security key attached to one tab (the DevTools WebAuthn environment is per tab). */
export class VirtualKey {
  readonly cdp: CDPSession;
  readonly authenticatorId: string;

  private constructor(cdp: CDPSession, authenticatorId: string) {
    this.cdp = cdp;
    this.authenticatorId = authenticatorId;
  }

  /**
   * A CTAP2 USB key with a PIN set (user verification), resident keys, and a simulated touch on every
   * request (automaticPresenceSimulation).
   */
  static async attach(page: Page, options: Partial<AuthenticatorOptions> = {}): Promise<VirtualKey> {
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('WebAuthn.enable', { enableUI: false });
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        transport: 'usb',
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
        ...options,
      },
    });
    return new VirtualKey(cdp, authenticatorId);
  }

  async credentials(): Promise<VirtualCredential[]> {
    const { credentials } = await this.cdp.send('WebAuthn.getCredentials', {
      authenticatorId: this.authenticatorId,
    });
    return credentials;
  }

  /** Puts a credential (from another virtual key's credentials()) on this key: the same key in another tab. */
  async add(credential: VirtualCredential): Promise<void> {
    await this.cdp.send('WebAuthn.addCredential', { authenticatorId: this.authenticatorId, credential });
  }

  /** Makes the key answer with wrong flags or a broken signature (all false = normal answers). */
  async override(bits: OverrideBits): Promise<void> {
    await this.cdp.send('WebAuthn.setResponseOverrideBits', {
      authenticatorId: this.authenticatorId,
      ...bits,
    });
  }

  async setUserVerified(isUserVerified: boolean): Promise<void> {
    await this.cdp.send('WebAuthn.setUserVerified', {
      authenticatorId: this.authenticatorId,
      isUserVerified,
    });
  }

  async detach(): Promise<void> {
    await this.cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId: this.authenticatorId });
    await this.cdp.detach();
  }
}

/**
 * A virtual key on `page` holding a copy of an enrolled credential (the same key in another tab or
 * browser profile), starting at the counter Passerelle stored for it, as the real key would (a lower one
 * is a clone's).
 */
export async function attachEnrolledKey(
  page: Page,
  db: Kysely<Database>,
  credential: VirtualCredential,
): Promise<VirtualKey> {
  const key = await VirtualKey.attach(page);
  const row = await db
    .selectFrom('webauthn_credential')
    .select('counter')
    .where('id', '=', Buffer.from(credential.credentialId, 'base64').toString('base64url'))
    .executeTakeFirstOrThrow();
  await key.add({ ...credential, signCount: Number(row.counter) });
  return key;
}

/** The virtual authenticator's model id (Chromium's VirtualFidoDevice AAGUID). */
export const CHROMIUM_VIRTUAL_AAGUID = '01020304-0506-0708-0102-030405060708';

/** Identifier then password on Passerelle's login pages (the page shows the identifier step). */
export async function signInWithPassword(page: Page, username: string, password = TEST_PASSWORD) {
  await page.getByLabel('Identifiant').fill(username);
  await page.getByRole('button', { name: 'Continuer' }).click();
  await page.locator('input[type="password"]').fill(password);
  await page.getByRole('button', { name: 'Se connecter' }).click();
}

/** Password login through the demo application: leaves a Passerelle SSO session in the context. */
export async function passwordLogin(page: Page, issuer: string, username: string, password = TEST_PASSWORD) {
  await page.goto(`${issuer}/demo/login`);
  await signInWithPassword(page, username, password);
  await page.getByRole('button', { name: 'Autoriser' }).click();
  await page.getByRole('heading', { name: 'Connexion réussie' }).waitFor();
}

/** Fills the add-a-key form (code unless self-enrollment) and runs the registration ceremony. */
export async function enrollKey(page: Page, issuer: string, name: string, code?: string): Promise<void> {
  await page.goto(`${issuer}/account/security-keys`);
  if (code !== undefined) await page.getByLabel(fr['webauthn.keys.add.code']).fill(code);
  await page.getByLabel(fr['webauthn.keys.add.name'], { exact: true }).fill(name);
  await page.getByRole('button', { name: fr['webauthn.keys.add.submit'] }).click();
  const start = page.getByRole('button', { name: fr['webauthn.keys.register.start'] });
  await Promise.race([start.waitFor(), page.getByRole('alert').waitFor()]);
  if (!(await start.count())) return;
  await start.click();
  // Enrolled: back to the list (?done=enrolled); refused: the list shown again with the error.
  await page.waitForURL(
    (url) =>
      (url.pathname === '/account/security-keys' && url.search !== '') ||
      url.pathname === '/account/security-keys/register',
  );
}

/**
 * Attaches a virtual key to `page` and enrolls it for the account signed in there, with a fresh
 * one-time enrollment code (as the helpdesk would hand out).
 */
export async function enrollVirtualKey(
  page: Page,
  t: { issuer: string; passerelle: { services: { database: { db: Kysely<Database> } } } },
  accountId: string,
  name: string,
): Promise<VirtualKey> {
  const key = await VirtualKey.attach(page);
  const codes = new EnrollmentCodes(t.passerelle.services.database.db);
  await enrollKey(page, t.issuer, name, (await codes.issue(accountId, 'test', 600)).code);
  return key;
}

/** Opens the console, answering its demand for a recent phishing-resistant factor with the key. */
export async function openConsoleWithKey(page: Page, issuer: string): Promise<void> {
  await page.goto(`${issuer}/admin`);
  await page.getByRole('button', { name: fr['webauthn.start'] }).click();
  await page.getByRole('heading', { name: fr['console.title'] }).waitFor();
}

/** A destructive act's confirmation page (portal and console): waits for it, then confirms the act. */
export async function confirmAct(page: Page): Promise<void> {
  const form = page.locator('form:has(input[name="confirm"][value="yes"])');
  await form.waitFor();
  await form.locator('button[type="submit"]').click();
}
