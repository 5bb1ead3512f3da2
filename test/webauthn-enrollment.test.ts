import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { messages } from '../src/i18n/messages.ts';
import { EnrollmentCodes } from '../src/methods/webauthn/store.ts';
import { createUser } from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import {
  CHROMIUM_VIRTUAL_AAGUID,
  chromiumAvailable,
  confirmAct,
  enrollKey,
  launchChromium,
  missingChromiumSuite,
  newFrenchContext,
  passwordLogin,
  VirtualKey,
} from './helpers/webauthn-browser.ts';

const fr = messages.fr;

async function alertText(page: Page): Promise<string | null> {
  return page.getByRole('alert').textContent();
}

async function auditEvents(t: TestServer, type: string) {
  return t.passerelle.services.database.db
    .selectFrom('audit_event')
    .selectAll()
    .where('type', '=', type)
    .orderBy('seq')
    .execute();
}

if (!chromiumAvailable()) {
  missingChromiumSuite('security key enrollment in a real browser');
} else {
  for (const kind of databasesUnderTest()) {
    describe(`security key enrollment in Chromium [${kind}]`, () => {
      let t: TestServer;
      let browser: Browser;
      let codes: EnrollmentCodes;

      beforeAll(async () => {
        t = await startTestServer(kind, {
          issuerHost: 'localhost',
          config: (issuer) => ({
            demo: true,
            webauthn: { rpId: 'localhost', origins: [issuer], attestation: 'direct' },
          }),
        });
        codes = new EnrollmentCodes(t.passerelle.services.database.db);
        browser = await launchChromium();
      });
      afterAll(async () => {
        await browser?.close();
        await t?.close();
      });

      const signedIn = async (username: string): Promise<{ context: BrowserContext; page: Page }> => {
        const context = await newFrenchContext(browser);
        const page = await context.newPage();
        await passwordLogin(page, t.issuer, username);
        return { context, page };
      };

      it('without a Passerelle session, the keys page asks to sign in first', async () => {
        const response = await fetch(`${t.issuer}/account/security-keys`);
        expect(response.status).toBe(401);
        expect(await response.text()).toContain(fr['webauthn.keys.login_required'].replace(/’/g, '’'));
      });

      it('a session past its lifetime (no live auth_session) is not accepted on the keys page', async () => {
        const user = await createUser(t, 'enrol.idle');
        const { context, page } = await signedIn(user.username);
        try {
          const response = await page.goto(`${t.issuer}/account/security-keys`);
          expect(response?.status()).toBe(200);
          await t.passerelle.services.database.db
            .updateTable('auth_session')
            .set({ expires_at: new Date(Date.now() - 1000) })
            .where('account_id', '=', user.id)
            .execute();
          const expired = await page.goto(`${t.issuer}/account/security-keys`);
          expect(expired?.status()).toBe(401);
        } finally {
          await context.close();
        }
      });

      it('enrolls a key with a one-time code after a password login, then a second key, renames and revokes', async () => {
        const user = await createUser(t, 'enrol.alice');
        const { context, page } = await signedIn(user.username);
        try {
          const key = await VirtualKey.attach(page);
          const { code, expiresAt } = await codes.issue(user.id, 'test', 600);
          expect(code).toMatch(/^[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}$/);
          expect(expiresAt.getTime()).toBeGreaterThan(Date.now());
          await enrollKey(page, t.issuer, 'Clé bleue', code.toLowerCase().replace(/-/g, ' '));
          expect(await page.getByRole('status').first().textContent()).toBe(
            fr['webauthn.keys.done.enrolled'],
          );
          expect(await page.locator('table.keys tbody tr').count()).toBe(1);
          expect(await page.locator('table.keys tbody td').first().textContent()).toBe('Clé bleue');

          const [held] = await key.credentials();
          expect(held?.isResidentCredential).toBe(true);
          expect(held?.rpId).toBe('localhost');
          const stored = await t.passerelle.services.database.db
            .selectFrom('webauthn_credential')
            .selectAll()
            .where('account_id', '=', user.id)
            .execute();
          expect(stored).toHaveLength(1);
          expect(stored[0]).toMatchObject({
            id: Buffer.from(held?.credentialId ?? '', 'base64').toString('base64url'),
            name: 'Clé bleue',
            aaguid: CHROMIUM_VIRTUAL_AAGUID,
            revoked_at: null,
          });
          const enrolled = await auditEvents(t, 'webauthn.enrolled');
          expect(enrolled.filter((e) => e.account_id === user.id)).toHaveLength(1);

          // The code was single use.
          await enrollKey(page, t.issuer, 'Encore', code);
          expect(await alertText(page)).toBe(fr['webauthn.keys.error.code']);

          // A second key, on another virtual authenticator (another tab of the same session).
          const tab = await context.newPage();
          const key2 = await VirtualKey.attach(tab);
          await enrollKey(tab, t.issuer, 'Clé verte', (await codes.issue(user.id, 'test', 600)).code);
          expect(await tab.locator('table.keys tbody tr').count()).toBe(2);
          expect(await key2.credentials()).toHaveLength(1);

          // Rename, then revoke the first key.
          const row = tab.locator('table.keys tbody tr').first();
          await row.getByLabel('Nouveau nom de la clé Clé bleue').fill('Clé bleue (bureau)');
          await row.getByRole('button', { name: fr['webauthn.keys.rename'] }).click();
          await tab.waitForURL(/done=renamed/);
          await tab.getByRole('button', { name: 'Révoquer la clé Clé bleue (bureau)' }).click();
          await confirmAct(tab);
          await tab.waitForURL(/done=revoked/);
          expect(await tab.locator('table.keys tbody tr').count()).toBe(1);
          expect(await tab.locator('table.keys tbody td').first().textContent()).toBe('Clé verte');
          const revoked = await auditEvents(t, 'webauthn.revoked');
          expect(revoked.at(-1)).toMatchObject({ account_id: user.id, outcome: 'success' });
          expect(revoked.at(-1)?.detail).toMatchObject({ by: 'user', credentialId: stored[0]?.id });
        } finally {
          await context.close();
        }
      });
    });
  }
}
