import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { messages } from '../src/i18n/messages.ts';
import { createUser } from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { screenshot, seriousAccessibilityViolations } from './helpers/page-checks.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import {
  attachEnrolledKey,
  chromiumAvailable,
  enrollVirtualKey,
  launchChromium,
  missingChromiumSuite,
  newFrenchContext,
  openConsoleWithKey,
  signInWithPassword,
  type VirtualCredential,
} from './helpers/webauthn-browser.ts';

/**
 * A security key flagged as possibly cloned (its signature counter went back): refused at sign-in with a
 * message that says it is blocked and whom to call (`ui.supportContact`), with its own audit reason;
 * shown as blocked in « Ma sécurité », on the key page and in the console. Chromium, virtual
 * authenticator.
 */

const fr = messages.fr;
const SUPPORT = 'le centre de services au 01 23 45 67 89';
const BLOCKED_MESSAGE = `Cette clé de sécurité est bloquée : elle a peut-être été copiée (clonage possible) et ne permet plus de se connecter. Contactez ${SUPPORT} pour la remplacer.`;
const BADGE = 'Bloquée — clonage possible';

if (!chromiumAvailable()) {
  missingChromiumSuite('a possibly cloned security key in a real browser');
} else {
  for (const kind of databasesUnderTest()) {
    describe(`a possibly cloned security key is blocked everywhere [${kind}]`, () => {
      let t: TestServer;
      let browser: Browser;
      const contexts: BrowserContext[] = [];
      let owner: { id: string; username: string };
      /** The owner's browser, signed in with the password. */
      let ownerPage: Page;
      /** The operator's browser, in the console. */
      let operatorPage: Page;
      let enrolled: VirtualCredential;
      let credentialId: string;

      const db = () => t.passerelle.services.database.db;
      const newPage = async () => {
        const context = await newFrenchContext(browser, { bypassCSP: true });
        contexts.push(context);
        return context.newPage();
      };
      /** Failed key attempts of the owner: their audit reasons, oldest first. */
      const attemptReasons = async () =>
        (
          await db()
            .selectFrom('audit_event')
            .select('reason')
            .where('type', '=', 'auth.attempt')
            .where('method', '=', 'webauthn')
            .where('outcome', '=', 'failure')
            .where('account_id', '=', owner.id)
            .orderBy('seq')
            .execute()
        ).map((r) => r.reason);
      /** A fresh browser holding the key, at the portal's sign-in: the key's page (with or without identifier). */
      const keyPage = async (username?: string) => {
        const page = await newPage();
        await attachEnrolledKey(page, db(), enrolled);
        await page.goto(`${t.issuer}/portal`);
        if (username) {
          await page.getByLabel('Identifiant').fill(username);
          await page.getByRole('button', { name: 'Continuer' }).click();
        }
        await page.getByRole('link', { name: fr['method.webauthn'] }).click();
        await page.getByRole('button', { name: fr['webauthn.start'] }).waitFor();
        return page;
      };
      /** Uses the key; returns the status of the form post. */
      const useKey = async (page: Page) => {
        const [response] = await Promise.all([
          page.waitForResponse(
            (r) => r.request().method() === 'POST' && r.url().includes('/method/webauthn'),
          ),
          page.getByRole('button', { name: fr['webauthn.start'] }).click(),
        ]);
        return response.status();
      };

      beforeAll(async () => {
        t = await startTestServer(kind, {
          issuerHost: 'localhost',
          config: (issuer) => ({
            webauthn: { rpId: 'localhost', origins: [issuer] },
            ui: { supportContact: SUPPORT },
          }),
        });
        const created = await createUser(t, 'cle.clonee');
        owner = { id: created.id, username: created.username };
        const operator = await createUser(t, 'cles.admin');
        await t.passerelle.services.roles.grant(operator.id, 'helpdesk', 'test');
        browser = await launchChromium();

        ownerPage = await newPage();
        await ownerPage.goto(`${t.issuer}/portal`);
        await signInWithPassword(ownerPage, owner.username);
        await ownerPage.getByRole('heading', { name: fr['portal.title'] }).waitFor();
        const key = await enrollVirtualKey(ownerPage, t, owner.id, 'Clé du bureau');
        const [credential] = await key.credentials();
        if (!credential) throw new Error('no credential enrolled');
        enrolled = credential;
        credentialId = Buffer.from(credential.credentialId, 'base64').toString('base64url');

        operatorPage = await newPage();
        await operatorPage.goto(`${t.issuer}/portal`);
        await signInWithPassword(operatorPage, operator.username);
        await operatorPage.getByRole('heading', { name: fr['portal.title'] }).waitFor();
        await enrollVirtualKey(operatorPage, t, operator.id, 'Clé du support');
        await openConsoleWithKey(operatorPage, t.issuer);
      });
      afterAll(async () => {
        for (const context of contexts) await context.close();
        await browser?.close();
        await t?.close();
      });

      it('a counter regression: refused as blocked with whom to call, then blocked for good (credential_blocked)', async () => {
        const page = await keyPage();
        // Another copy of the key has signed meanwhile: the stored counter is ahead of this one.
        await db()
          .updateTable('webauthn_credential')
          .set({ counter: 1_000_000 })
          .where('id', '=', credentialId)
          .execute();
        expect(await useKey(page)).toBe(403);
        expect(await page.getByRole('alert').first().textContent()).toBe(BLOCKED_MESSAGE);
        expect(await attemptReasons()).toEqual(['counter_regression']);
        const detected = await db()
          .selectFrom('audit_event')
          .select(['account_id', 'reason'])
          .where('type', '=', 'webauthn.counter_regression')
          .execute();
        expect(detected).toEqual([{ account_id: owner.id, reason: 'counter_regression' }]);

        // Even with the counter back in order, the key stays blocked: usernameless and username-first.
        await db()
          .updateTable('webauthn_credential')
          .set({ counter: 0 })
          .where('id', '=', credentialId)
          .execute();
        for (const username of [undefined, owner.username]) {
          const again = await keyPage(username);
          if (username) {
            const options = JSON.parse((await again.locator('#webauthn-options').textContent()) ?? '{}');
            expect(options.allowCredentials.map((c: { id: string }) => c.id)).toEqual([credentialId]);
          }
          expect(await useKey(again)).toBe(403);
          expect(await again.getByRole('alert').first().textContent()).toBe(BLOCKED_MESSAGE);
          expect(await again.getByText(fr['error.ceremony_failed']).count()).toBe(0);
        }
        expect(await attemptReasons()).toEqual([
          'counter_regression',
          'credential_blocked',
          'credential_blocked',
        ]);
      });

      it('« Ma sécurité » and the key page show the key as blocked, with whom to call', async () => {
        await ownerPage.goto(`${t.issuer}/portal/security`);
        const row = ownerPage.locator('table.keys tbody tr');
        expect(await row.count()).toBe(1);
        expect(await row.locator('th').textContent()).toContain('Clé du bureau');
        expect(await row.locator('.badge.blocked').textContent()).toBe(BADGE);
        expect(await ownerPage.locator('main').textContent()).toContain(
          `Une clé bloquée ne permet plus de vous connecter : son compteur de signatures a reculé, elle a peut-être été copiée. Révoquez-la et contactez ${SUPPORT}.`,
        );
        expect(await seriousAccessibilityViolations(ownerPage)).toEqual([]);
        await screenshot(ownerPage, `portal-security-blocked-key-${kind}`);

        await ownerPage.goto(`${t.issuer}/account/security-keys`);
        const keyRow = ownerPage.locator('table.keys tbody tr');
        expect(await keyRow.locator('.badge.blocked').textContent()).toBe(BADGE);
        expect(await seriousAccessibilityViolations(ownerPage)).toEqual([]);
      });

      it('the console shows the key as blocked', async () => {
        await operatorPage.goto(`${t.issuer}/admin/accounts/${owner.id}`);
        const row = operatorPage.locator('table.keys tbody tr').filter({ hasText: 'Clé du bureau' });
        expect(await row.locator('.badge.blocked').textContent()).toBe(BADGE);
        expect(await seriousAccessibilityViolations(operatorPage)).toEqual([]);
        await screenshot(operatorPage, `console-account-blocked-key-${kind}`);
      });
    });
  }
}
