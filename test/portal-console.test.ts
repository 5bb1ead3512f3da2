import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { messages } from '../src/i18n/messages.ts';
import { createUser, registerWebClient } from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { screenshot, seriousAccessibilityViolations } from './helpers/page-checks.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import {
  chromiumAvailable,
  enrollVirtualKey,
  launchChromium,
  missingChromiumSuite,
  newFrenchContext,
  signInWithPassword,
} from './helpers/webauthn-browser.ts';

/**
 * The staff portal and the console's door in Chromium: sign-in at Passerelle directly, the applications
 * listed for the user, the console's demand for a recent phishing-resistant two-factor authentication,
 * and its refusal without a role.
 */

const fr = messages.fr;
const RENNES = { finess: '350005179', name: 'CHU de Rennes', tid: 'tid-rennes-0001' };
const VANNES = { finess: '560008799', name: 'CH de Vannes', tid: 'tid-vannes-0002' };

if (!chromiumAvailable()) {
  missingChromiumSuite('staff portal and console door in a real browser');
} else {
  for (const kind of databasesUnderTest()) {
    describe(`staff portal and console door in Chromium [${kind}]`, () => {
      let t: TestServer;
      let browser: Browser;
      let context: BrowserContext;
      let page: Page;
      let user: { id: string; username: string };

      beforeAll(async () => {
        t = await startTestServer(kind, {
          issuerHost: 'localhost',
          config: (issuer) => ({
            webauthn: { rpId: 'localhost', origins: [issuer] },
            establishments: [RENNES, { ...VANNES, members: 'listed' }],
          }),
        });
        const created = await createUser(t, 'portal.lea');
        user = { id: created.id, username: created.username };
        await t.passerelle.services.establishments.add(user.id, RENNES.finess, 'test');
        await registerWebClient(t, 'dpi', {
          client_name: 'Dossier patient',
          portal: true,
          initiate_login_uri: 'https://dpi.hopital.test/login',
          client_uri: 'https://dpi.hopital.test/',
        });
        await registerWebClient(t, 'pharma', {
          client_name: 'Pharmacie de Vannes',
          portal: true,
          portal_establishments: [VANNES.finess],
          client_uri: 'https://pharma.vannes.test/',
        });
        await registerWebClient(t, 'batch', { client_name: 'Traitement de nuit' });
        browser = await launchChromium();
        context = await newFrenchContext(browser, { bypassCSP: true });
        page = await context.newPage();
      });
      afterAll(async () => {
        await context?.close();
        await browser?.close();
        await t?.close();
      });

      it('the portal signs the user in at Passerelle, then lists the applications of their establishment', async () => {
        await page.goto(`${t.issuer}/portal`);
        await signInWithPassword(page, user.username);
        await page.getByRole('heading', { name: fr['portal.title'] }).waitFor();
        expect(new URL(page.url()).pathname).toBe('/portal');
        const apps = page.locator('.apps a');
        expect(await apps.allTextContents()).toEqual(['Dossier patient']);
        const launch = new URL((await apps.first().getAttribute('href')) ?? '');
        expect(launch.origin + launch.pathname).toBe('https://dpi.hopital.test/login');
        expect(launch.searchParams.get('iss')).toBe(t.issuer);
        expect(launch.searchParams.get('target_link_uri')).toBe('https://dpi.hopital.test/');
        expect(await seriousAccessibilityViolations(page)).toEqual([]);
        await screenshot(page, `portal-home-${kind}`);
      });

      it('the console tells a person without a role so before asking for more; with a role it wants a recent phishing-resistant second factor; refusals are audited', async () => {
        await enrollVirtualKey(page, t, user.id, 'Clé de Léa');
        const NO_ROLE =
          'Votre compte n’a pas accès à la console d’administration : aucun rôle ne lui est attribué. Si vous devez l’utiliser, demandez un rôle (administrateur, support ou auditeur) à un administrateur de Passerelle.';

        // Signed in with a password, no role: told so at once, not asked for the key first.
        const refused = await page.goto(`${t.issuer}/admin`);
        expect(refused?.status()).toBe(403);
        expect(new URL(page.url()).pathname).toBe('/admin');
        expect(await page.getByRole('alert').textContent()).toBe(NO_ROLE);
        expect(await page.evaluate(() => document.title)).toContain(fr['error.title']);
        expect(await seriousAccessibilityViolations(page)).toEqual([]);

        // Not signed in yet: an ordinary sign-in (the password is enough to learn who it is), then the same.
        const fresh = await newFrenchContext(browser);
        try {
          const other = await fresh.newPage();
          await other.goto(`${t.issuer}/admin`);
          await signInWithPassword(other, user.username);
          await other.waitForURL((url) => url.pathname === '/admin');
          expect(await other.getByRole('alert').textContent()).toBe(NO_ROLE);
        } finally {
          await fresh.close();
        }
        const denied = await t.passerelle.services.database.db
          .selectFrom('audit_event')
          .selectAll()
          .where('type', '=', 'admin.access.denied')
          .execute();
        expect(denied).toMatchObject([
          { account_id: user.id, reason: 'role_missing', detail: { path: '/admin' } },
          { account_id: user.id, reason: 'role_missing', detail: { path: '/admin' } },
        ]);

        // With a role: the password session is not enough, the login pages ask for the key, then the console.
        await t.passerelle.services.roles.grant(user.id, 'auditor', 'test');
        await page.goto(`${t.issuer}/admin`);
        await page.getByRole('button', { name: fr['webauthn.start'] }).click();
        await page.getByRole('heading', { name: fr['console.title'] }).waitFor();
        expect(await page.locator('main').textContent()).toContain(fr['console.role.auditor']);
        expect(await seriousAccessibilityViolations(page)).toEqual([]);
        await screenshot(page, `console-home-${kind}`);
      });
    });
  }
}
