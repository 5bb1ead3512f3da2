import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_ACCOUNT } from '../src/demo/seed.ts';
import { messages } from '../src/i18n/messages.ts';
import { EnrollmentCodes } from '../src/methods/webauthn/store.ts';
import { createUser } from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import {
  attachEnrolledKey,
  CHROMIUM_VIRTUAL_AAGUID,
  chromiumAvailable,
  enrollKey,
  launchChromium,
  missingChromiumSuite,
  newFrenchContext,
  passwordLogin,
  type VirtualCredential,
  VirtualKey,
} from './helpers/webauthn-browser.ts';

/**
 * Sign-in with a FIDO2 security key through the login pages (/interaction), in Chromium with a
 * virtual authenticator: enrollment, username-first and usernameless login, and the refusals.
 */

const fr = messages.fr;
const KEY_LINK = fr['method.webauthn'];

/** The ID token claims shown by the demo application once signed in. */
async function claimsOf(page: Page): Promise<Record<string, unknown>> {
  await page.getByRole('heading', { name: 'Connexion réussie' }).waitFor();
  return JSON.parse((await page.locator('#id-token-claims').textContent()) ?? '{}');
}

/** Clicks the key button; consent is given if asked. Returns the status of the form post. */
async function useKey(page: Page): Promise<number> {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && r.url().includes('/method/webauthn')),
    page.getByRole('button', { name: fr['webauthn.start'] }).click(),
  ]);
  return response.status();
}

async function consentIfAsked(page: Page): Promise<void> {
  const allow = page.getByRole('button', { name: 'Autoriser' });
  await Promise.race([allow.waitFor(), page.getByRole('heading', { name: 'Connexion réussie' }).waitFor()]);
  if (await allow.count()) await allow.click();
}

/** From the demo application to the key page: usernameless (link on the identify page) or username-first. */
async function openKeyPage(page: Page, issuer: string, username?: string): Promise<void> {
  await page.goto(`${issuer}/demo/login`);
  if (username) {
    await page.getByLabel('Identifiant').fill(username);
    await page.getByRole('button', { name: 'Continuer' }).click();
  }
  await page.getByRole('link', { name: KEY_LINK }).click();
  await page.getByRole('button', { name: fr['webauthn.start'] }).waitFor();
}

async function attemptReasons(t: TestServer): Promise<(string | null)[]> {
  const rows = await t.passerelle.services.database.db
    .selectFrom('audit_event')
    .select('reason')
    .where('type', '=', 'auth.attempt')
    .where('method', '=', 'webauthn')
    .where('outcome', '=', 'failure')
    .orderBy('seq')
    .execute();
  return rows.map((r) => r.reason);
}

if (!chromiumAvailable()) {
  missingChromiumSuite('security key sign-in in a real browser');
} else {
  for (const kind of databasesUnderTest()) {
    describe(`security key sign-in through the login pages in Chromium [${kind}]`, () => {
      let t: TestServer;
      let browser: Browser;
      let codes: EnrollmentCodes;
      let user: { id: string; username: string };
      /** The enrolled key (with its private key), to put on the authenticator of any fresh tab. */
      let enrolled: VirtualCredential;
      const contexts: BrowserContext[] = [];

      /** A fresh profile (no session) whose tab holds a copy of the enrolled key. */
      const freshTabWithKey = async (): Promise<{ page: Page; key: VirtualKey }> => {
        const context = await newFrenchContext(browser);
        contexts.push(context);
        const page = await context.newPage();
        // The copy starts at the stored counter, as the real key would (a lower one is a clone's).
        const key = await attachEnrolledKey(page, t.passerelle.services.database.db, enrolled);
        return { page, key };
      };

      beforeAll(async () => {
        t = await startTestServer(kind, {
          issuerHost: 'localhost',
          config: (issuer) => ({ demo: true, webauthn: { rpId: 'localhost', origins: [issuer] } }),
        });
        codes = new EnrollmentCodes(t.passerelle.services.database.db);
        browser = await launchChromium();
        const created = await createUser(t, 'login.dana');
        user = { id: created.id, username: created.username };
        const context = await newFrenchContext(browser);
        contexts.push(context);
        const page = await context.newPage();
        await passwordLogin(page, t.issuer, user.username);
        const key = await VirtualKey.attach(page);
        await enrollKey(page, t.issuer, 'Clé de Dana', (await codes.issue(user.id, 'test', 600)).code);
        const [credential] = await key.credentials();
        if (!credential) throw new Error('no credential enrolled');
        enrolled = credential;
      });
      afterAll(async () => {
        for (const context of contexts) await context.close();
        await browser?.close();
        await t?.close();
      });

      it('username-first: identifier, then the security key → signed in, two factors, phishing resistant', async () => {
        const { page } = await freshTabWithKey();
        await openKeyPage(page, t.issuer, user.username);
        expect(await page.locator('main').textContent()).toContain(
          fr['webauthn.login.lead_username'].replace('{username}', user.username),
        );
        const options = JSON.parse((await page.locator('#webauthn-options').textContent()) ?? '{}');
        expect(options.allowCredentials.map((c: { id: string }) => c.id)).toEqual([
          Buffer.from(enrolled.credentialId, 'base64').toString('base64url'),
        ]);
        expect(await useKey(page)).toBe(303);
        await consentIfAsked(page);
        const claims = await claimsOf(page);
        expect(claims).toMatchObject({
          sub: user.id,
          amr: ['hwk', 'mfa', 'pin'],
          acr: 'urn:passerelle:loa:high',
        });
      });

      it('usernameless: the key link on the identifier page, the key finds its discoverable credential', async () => {
        const { page } = await freshTabWithKey();
        await openKeyPage(page, t.issuer);
        const options = JSON.parse((await page.locator('#webauthn-options').textContent()) ?? '{}');
        expect(options.allowCredentials ?? []).toEqual([]);
        expect(await useKey(page)).toBe(303);
        await consentIfAsked(page);
        expect(await claimsOf(page)).toMatchObject({ sub: user.id, amr: ['hwk', 'mfa', 'pin'] });
      });

      it('UV=0, UP=0 and a bogus signature are refused with the key message, each audited with its reason', async () => {
        const { page, key } = await freshTabWithKey();
        await openKeyPage(page, t.issuer);
        const before = (await attemptReasons(t)).length;
        for (const bits of [{ isBadUV: true }, { isBadUP: true }, { isBogusSignature: true }]) {
          await key.override({ isBadUV: false, isBadUP: false, isBogusSignature: false, ...bits });
          expect(await useKey(page)).toBe(401);
          expect(await page.getByRole('alert').first().textContent()).toBe(fr['error.ceremony_failed']);
        }
        expect((await attemptReasons(t)).slice(before)).toEqual([
          'uv_missing',
          'up_missing',
          'bad_signature',
        ]);
        // The page offered fresh options each time; a normal answer now signs in.
        await key.override({ isBadUV: false, isBadUP: false, isBogusSignature: false });
        expect(await useKey(page)).toBe(303);
        await consentIfAsked(page);
        expect(await claimsOf(page)).toMatchObject({ sub: user.id });
      });

      it('a captured assertion cannot be replayed: not in its own finished login, not in another one', async () => {
        const { page } = await freshTabWithKey();
        await openKeyPage(page, t.issuer);
        const action = (await page.locator('form[data-webauthn]').getAttribute('action')) ?? '';
        let captured = '';
        await page.route('**/method/webauthn', async (route) => {
          captured = route.request().postData() ?? '';
          await route.continue();
        });
        expect(await useKey(page)).toBe(303);
        await consentIfAsked(page);
        await claimsOf(page);
        expect(captured).toContain('response=');
        // The same form again: the login it belonged to is over.
        const again = await page.request.post(`${t.issuer}${action}`, {
          headers: { 'content-type': 'application/x-www-form-urlencoded', origin: t.issuer },
          data: captured,
          maxRedirects: 0,
        });
        expect(again.status()).toBe(400);
        // In a new login (new interaction, its own CSRF token): the challenge is not this interaction's.
        const other = await freshTabWithKey();
        await openKeyPage(other.page, t.issuer);
        const otherAction = (await other.page.locator('form[data-webauthn]').getAttribute('action')) ?? '';
        const csrf = (await other.page.locator('form[data-webauthn] input[name="csrf"]').inputValue()) ?? '';
        const fields = new URLSearchParams(captured);
        fields.set('csrf', csrf);
        const before = (await attemptReasons(t)).length;
        const replay = await other.page.request.post(`${t.issuer}${otherAction}`, {
          headers: { 'content-type': 'application/x-www-form-urlencoded', origin: t.issuer },
          data: fields.toString(),
          maxRedirects: 0,
        });
        expect(replay.status()).toBe(401);
        expect((await attemptReasons(t)).slice(before)).toEqual(['challenge_unknown']);
      });

      it('a page served from an origin that is not configured: the signed origin is refused', async () => {
        // Another instance, reachable on another port of localhost (same RP ID, so the browser runs the
        // ceremony), configured for the first instance's origin only: the origin the browser signed is not
        // one of its origins. (The login case is covered in webauthn-method.test.ts.)
        const other = await startTestServer(kind, {
          issuerHost: 'localhost',
          config: { demo: true, webauthn: { rpId: 'localhost', origins: [t.issuer] } },
        });
        try {
          const context = await newFrenchContext(browser);
          contexts.push(context);
          const page = await context.newPage();
          const gina = await createUser(other, 'login.gina');
          await passwordLogin(page, other.issuer, gina.username);
          await VirtualKey.attach(page);
          const code = await new EnrollmentCodes(other.passerelle.services.database.db).issue(
            gina.id,
            'test',
            600,
          );
          await enrollKey(page, other.issuer, 'Clé', code.code);
          expect(await page.getByRole('alert').textContent()).toBe(fr['webauthn.keys.error.failed']);
          const failures = await other.passerelle.services.database.db
            .selectFrom('audit_event')
            .select(['type', 'reason'])
            .where('account_id', '=', gina.id)
            .where('outcome', '=', 'failure')
            .execute();
          expect(failures).toEqual([{ type: 'webauthn.enrollment', reason: 'origin_mismatch' }]);
        } finally {
          await other.close();
        }
      });

      it('a counter regression is refused, the key flagged and the event audited', async () => {
        const db = t.passerelle.services.database.db;
        const id = Buffer.from(enrolled.credentialId, 'base64').toString('base64url');
        const { page } = await freshTabWithKey();
        await openKeyPage(page, t.issuer);
        await db
          .updateTable('webauthn_credential')
          .set({ counter: 1_000_000 })
          .where('id', '=', id)
          .execute();
        try {
          expect(await useKey(page)).toBe(403);
          expect(await page.getByRole('alert').first().textContent()).toContain('bloquée');
          const row = await db
            .selectFrom('webauthn_credential')
            .selectAll()
            .where('id', '=', id)
            .executeTakeFirst();
          expect(row?.flag_reason).toBe('counter_regression');
          const events = await db
            .selectFrom('audit_event')
            .selectAll()
            .where('type', '=', 'webauthn.counter_regression')
            .execute();
          expect(events.map((e) => e.account_id)).toEqual([user.id]);
        } finally {
          await db
            .updateTable('webauthn_credential')
            .set({ counter: 0, flagged_at: null, flag_reason: null })
            .where('id', '=', id)
            .execute();
        }
      });

      it('a revoked key no longer signs in', async () => {
        const id = Buffer.from(enrolled.credentialId, 'base64').toString('base64url');
        await t.passerelle.services.database.db
          .updateTable('webauthn_credential')
          .set({ revoked_at: new Date() })
          .where('id', '=', id)
          .execute();
        const { page } = await freshTabWithKey();
        await openKeyPage(page, t.issuer);
        const before = (await attemptReasons(t)).length;
        expect(await useKey(page)).toBe(401);
        expect((await attemptReasons(t)).slice(before)).toEqual(['credential_revoked']);
      });

      it('enrollment: a wrong, an expired or a used code is refused; UV=0 at registration is refused', async () => {
        const context = await newFrenchContext(browser);
        contexts.push(context);
        const page = await context.newPage();
        const eve = await createUser(t, 'login.eve');
        await passwordLogin(page, t.issuer, eve.username);
        const key = await VirtualKey.attach(page);
        await enrollKey(page, t.issuer, 'Clé', 'AAAA-BBBB-CCCC');
        expect(await page.getByRole('alert').textContent()).toBe(fr['webauthn.keys.error.code']);
        const expired = await codes.issue(eve.id, 'test', 600);
        await t.passerelle.services.database.db
          .updateTable('enrollment_code')
          .set({ expires_at: new Date(Date.now() - 1000) })
          .where('account_id', '=', eve.id)
          .execute();
        await enrollKey(page, t.issuer, 'Clé', expired.code);
        expect(await page.getByRole('alert').textContent()).toBe(fr['webauthn.keys.error.code']);
        // Someone else's code does not work either.
        await enrollKey(page, t.issuer, 'Clé', (await codes.issue(user.id, 'test', 600)).code);
        expect(await page.getByRole('alert').textContent()).toBe(fr['webauthn.keys.error.code']);

        const code = (await codes.issue(eve.id, 'test', 600)).code;
        await key.override({ isBadUV: true });
        await enrollKey(page, t.issuer, 'Clé', code);
        expect(await page.getByRole('alert').textContent()).toBe(fr['webauthn.keys.error.failed']);
        await key.override({ isBadUV: false });
        // A failed ceremony does not use the code up.
        await enrollKey(page, t.issuer, 'Clé', code);
        expect(await page.locator('table.keys tbody tr').count()).toBe(1);
        const failures = await t.passerelle.services.database.db
          .selectFrom('audit_event')
          .select(['type', 'reason'])
          .where('account_id', '=', eve.id)
          .where('outcome', '=', 'failure')
          .orderBy('seq')
          .execute();
        expect(failures).toEqual([
          { type: 'webauthn.enrollment_code', reason: 'code_invalid' },
          { type: 'webauthn.enrollment_code', reason: 'code_invalid' },
          { type: 'webauthn.enrollment_code', reason: 'code_invalid' },
          { type: 'webauthn.enrollment', reason: 'uv_missing' },
        ]);
      });

      it('a key model outside the AAGUID allow-list is refused at enrollment, with a clear message', async () => {
        const strict = await startTestServer(kind, {
          issuerHost: 'localhost',
          config: (issuer) => ({
            demo: true,
            webauthn: {
              rpId: 'localhost',
              origins: [issuer],
              // YubiKey 5 NFC only: not Chromium's virtual authenticator.
              policy: { aaguidAllowList: ['ee882879-721c-4913-9775-3dfcce97072a'] },
              selfEnrollmentAfterPassword: true,
            },
          }),
        });
        try {
          const context = await newFrenchContext(browser);
          contexts.push(context);
          const page = await context.newPage();
          const frank = await createUser(strict, 'login.frank');
          await passwordLogin(page, strict.issuer, frank.username);
          await VirtualKey.attach(page);
          // Self-enrollment after a password login: no code asked.
          await page.goto(`${strict.issuer}/account/security-keys`);
          expect(await page.getByLabel(fr['webauthn.keys.add.code']).count()).toBe(0);
          await enrollKey(page, strict.issuer, 'Clé du commerce');
          expect(await page.getByRole('alert').textContent()).toBe(fr['webauthn.keys.error.not_allowed']);
          const refused = await strict.passerelle.services.database.db
            .selectFrom('audit_event')
            .selectAll()
            .where('type', '=', 'webauthn.refused')
            .execute();
          expect(refused).toHaveLength(1);
          expect(refused[0]).toMatchObject({ account_id: frank.id, reason: 'aaguid_not_allowed' });
          expect(refused[0]?.detail).toEqual({
            message: `AAGUID ${CHROMIUM_VIRTUAL_AAGUID} is not in the allow-list`,
          });
        } finally {
          await strict.close();
        }
      });
    });
  }

  describe('the demo: FIDO2 sign-in with the default demo settings', () => {
    let t: TestServer;
    let browser: Browser;

    beforeAll(async () => {
      t = await startTestServer('pglite', { issuerHost: 'localhost', config: { demo: true } });
      browser = await launchChromium();
    });
    afterAll(async () => {
      await browser?.close();
      await t?.close();
    });

    it('home page explains enrollment; the demo user self-enrolls a key, then signs in with it alone', async () => {
      const context = await newFrenchContext(browser);
      try {
        const page = await context.newPage();
        await page.goto(`${t.issuer}/`);
        expect(await page.locator('#demo-security-keys').textContent()).toContain(
          'npx passerelle enroll demo',
        );
        await passwordLogin(page, t.issuer, DEMO_ACCOUNT.username, DEMO_ACCOUNT.password);
        const key = await VirtualKey.attach(page);
        await page.getByRole('link', { name: fr['webauthn.demo.keys_link'] }).click();
        await enrollKey(page, t.issuer, 'Ma clé');
        expect(await page.getByRole('status').first().textContent()).toBe(fr['webauthn.keys.done.enrolled']);
        const [credential] = await key.credentials();
        if (!credential) throw new Error('no credential');

        const fresh = await newFrenchContext(browser);
        try {
          const tab = await fresh.newPage();
          await (await VirtualKey.attach(tab)).add(credential);
          await openKeyPage(tab, t.issuer);
          expect(await useKey(tab)).toBe(303);
          await consentIfAsked(tab);
          expect(await claimsOf(tab)).toMatchObject({
            amr: ['hwk', 'mfa', 'pin'],
            acr: 'urn:passerelle:loa:high',
          });
        } finally {
          await fresh.close();
        }
      } finally {
        await context.close();
      }
    });
  });
}
