import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { messages } from '../src/i18n/messages.ts';
import { createUser } from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { PortalAgent } from './helpers/portal-agent.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import {
  chromiumAvailable,
  confirmAct,
  enrollVirtualKey,
  launchChromium,
  missingChromiumSuite,
  newFrenchContext,
  openConsoleWithKey,
  signInWithPassword,
} from './helpers/webauthn-browser.ts';

/**
 * A session list shows live sessions only, whatever ended the others: the user's « Sessions actives »
 * (portal, plain HTTP) and the account's « Sessions ouvertes » (console, an operator in Chromium with a
 * security key), after an RP-initiated logout, an expiry, « Se déconnecter partout » and the console's
 * « Fermer les sessions ».
 */

const fr = messages.fr;

/** The rows of the portal's session table in the page last shown. */
function portalSessionRows(html: string): number {
  const table = /<table class="sessions">([\s\S]*?)<\/table>/.exec(html)?.[1];
  if (table === undefined) throw new Error(`no session table in page:\n${html.slice(0, 2000)}`);
  const body = /<tbody>([\s\S]*?)<\/tbody>/.exec(table)?.[1] ?? '';
  return body.match(/<tr[\s>]/g)?.length ?? 0;
}

if (!chromiumAvailable()) {
  missingChromiumSuite('live sessions in the portal and the console');
} else {
  for (const kind of databasesUnderTest()) {
    describe(`session lists show live sessions only [${kind}]`, () => {
      let t: TestServer;
      let browser: Browser;
      let context: BrowserContext;
      let page: Page;

      const db = () => t.passerelle.services.database.db;

      /** The rows of « Sessions ouvertes » on the account's console page. */
      const consoleSessionRows = async (accountId: string) => {
        await page.goto(`${t.issuer}/admin/accounts/${accountId}`);
        await page.getByRole('heading', { name: fr['console.account.sessions'] }).waitFor();
        return page
          .locator('table')
          .filter({ hasText: fr['console.account.session.started'] })
          .locator('tbody tr')
          .count();
      };

      /** A person signed in to the portal's « Ma sécurité » in a browser of their own. */
      const signedIn = async (username: string) => {
        const person = new PortalAgent(t.issuer);
        const reached = await person.open('/portal/security', username);
        expect(reached.pathname).toBe('/portal/security');
        return person;
      };

      /** Both lists show exactly the one session of `viewer` (which reloads its page). */
      const onlyOneListed = async (viewer: PortalAgent, accountId: string) => {
        expect((await viewer.open('/portal/security')).pathname).toBe('/portal/security');
        expect(portalSessionRows(viewer.html)).toBe(1);
        expect(viewer.html).toContain(fr['portal.security.sessions.this_device']);
        expect(await consoleSessionRows(accountId)).toBe(1);
      };

      beforeAll(async () => {
        t = await startTestServer(kind, {
          issuerHost: 'localhost',
          config: (issuer) => ({ webauthn: { rpId: 'localhost', origins: [issuer] } }),
        });
        const operator = await createUser(t, 'sessions.admin');
        await t.passerelle.services.roles.grant(operator.id, 'administrator', 'test');
        browser = await launchChromium();
        context = await newFrenchContext(browser);
        page = await context.newPage();
        await page.goto(`${t.issuer}/portal`);
        await signInWithPassword(page, operator.username);
        await page.getByRole('heading', { name: fr['portal.title'] }).waitFor();
        await enrollVirtualKey(page, t, operator.id, 'Clé de l’administrateur');
        await openConsoleWithKey(page, t.issuer);
      });
      afterAll(async () => {
        await context?.close();
        await browser?.close();
        await t?.close();
      });

      it('after an RP-initiated logout (« Se déconnecter »), that session is no longer listed', async () => {
        const user = await createUser(t, 'fin.deconnexion');
        const leaving = await signedIn(user.username);
        const staying = await signedIn(user.username);
        expect(portalSessionRows(staying.html)).toBe(2);
        expect(await consoleSessionRows(user.id)).toBe(2);

        await leaving.signOut();
        const ended = await db()
          .selectFrom('audit_event')
          .select('reason')
          .where('type', '=', 'session.ended')
          .where('account_id', '=', user.id)
          .execute();
        expect(ended).toEqual([{ reason: 'rp_initiated_logout' }]);
        await onlyOneListed(staying, user.id);
        expect(await t.passerelle.services.sessions.listForAccount(user.id)).toHaveLength(1);
      });

      it('after an expiry (idle lifetime passed), that session is no longer listed', async () => {
        const user = await createUser(t, 'fin.expiration');
        const idle = await signedIn(user.username);
        const rows = await db()
          .selectFrom('auth_session')
          .select('session_uid')
          .where('account_id', '=', user.id)
          .execute();
        expect(rows).toHaveLength(1);
        const active = await signedIn(user.username);
        // The first browser's last activity is now older than the idle lifetime.
        const { idleSeconds } = t.config.sessions;
        await db()
          .updateTable('auth_session')
          .set({ last_active_at: new Date(Date.now() - (idleSeconds + 60) * 1000) })
          .where('session_uid', '=', rows[0]?.session_uid ?? '')
          .execute();
        await onlyOneListed(active, user.id);
        // The idle browser is asked to sign in again; its session stays unlisted.
        expect((await idle.open('/portal/security')).pathname).toMatch(/^\/interaction\//);
        await onlyOneListed(active, user.id);
      });

      it('after « Se déconnecter partout », none of the ended sessions is listed', async () => {
        const user = await createUser(t, 'fin.partout');
        const first = await signedIn(user.username);
        await signedIn(user.username);
        expect(portalSessionRows(first.html)).toBe(1);
        await first.open('/portal/security');
        expect(portalSessionRows(first.html)).toBe(2);
        const response = await first.post('/portal/security/sessions/end-all', { confirm: 'yes' });
        expect(response.status).toBe(200);
        expect(first.html).toContain(fr['portal.security.ended.title']);

        const next = await signedIn(user.username);
        await onlyOneListed(next, user.id);
      });

      it('after the console’s « Fermer les sessions », none of the ended sessions is listed', async () => {
        const user = await createUser(t, 'fin.console');
        await signedIn(user.username);
        await signedIn(user.username);
        expect(await consoleSessionRows(user.id)).toBe(2);
        await page.getByRole('button', { name: fr['console.account.sessions.end'] }).click();
        await confirmAct(page);
        await page
          .getByRole('status')
          .filter({ hasText: fr['console.account.done.sessions_ended'] })
          .waitFor();

        const next = await signedIn(user.username);
        await onlyOneListed(next, user.id);
      });
    });
  }
}
