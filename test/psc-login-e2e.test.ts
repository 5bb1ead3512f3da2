import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PSC_LOGGED_OUT_PATH } from '../src/federation/psc-login-routes.ts';
import { messages } from '../src/i18n/messages.ts';
import { PSC_BACKCHANNEL_LOGOUT_PATH, PSC_CALLBACK_PATH } from '../src/methods/psc/index.ts';
import { createUser, registerWebClient, TEST_PASSWORD } from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { freePort } from './helpers/net.ts';
import { type RelyingParty, startRelyingParty } from './helpers/relying-party.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import {
  chromiumAvailable,
  launchChromium,
  missingChromiumSuite,
  newFrenchContext,
} from './helpers/webauthn-browser.ts';
import { type PscSimulator, REALM_PATH, startPscSimulator } from './simulators/psc/server.ts';

const fr = messages.fr;
const PSC_CLIENT = { clientId: 'passerelle', clientSecret: 'passerelle-at-psc-secret' };

/**
 * The login through Pro Santé Connect in Chromium (issue #5 §5.4): the DPI (a relying party of Passerelle)
 * → Passerelle → « Se connecter avec Pro Santé Connect » → the PSC simulator (simulated e-CPS) → back.
 * An unknown national identity links the account the user then proves; a contradicting one is refused.
 */
if (!chromiumAvailable()) {
  missingChromiumSuite('login through Pro Santé Connect in a real browser');
} else {
  for (const kind of databasesUnderTest()) {
    describe(`login through Pro Santé Connect in Chromium [${kind}]`, { timeout: 60_000 }, () => {
      let t: TestServer;
      let psc: PscSimulator;
      let browser: Browser;
      let dpi: RelyingParty;

      beforeAll(async () => {
        const pscPort = await freePort();
        [t, browser, dpi] = await Promise.all([
          startTestServer(kind, {
            config: {
              pscLogin: {
                issuer: `http://127.0.0.1:${pscPort}${REALM_PATH}`,
                ...PSC_CLIENT,
                allowInsecureHttp: true,
              },
            },
          }),
          launchChromium(),
          startRelyingParty({ name: 'dpi' }),
        ]);
        psc = await startPscSimulator({
          port: pscPort,
          clients: [
            {
              ...PSC_CLIENT,
              redirectUris: [`${t.issuer}${PSC_CALLBACK_PATH}`],
              postLogoutRedirectUris: [`${t.issuer}${PSC_LOGGED_OUT_PATH}`],
              backchannelLogoutUri: `${t.issuer}${PSC_BACKCHANNEL_LOGOUT_PATH}`,
            },
          ],
        });
        const secret = await registerWebClient(t, 'dpi', {
          redirect_uris: [dpi.redirectUri],
          first_party: true,
        });
        dpi.configure({ issuer: t.issuer, clientId: 'dpi', clientSecret: secret, scope: 'openid profile' });
      });
      afterAll(async () => {
        await browser?.close();
        await Promise.all([psc?.close(), dpi?.close()]);
        await t?.close();
      });

      const professional = (index: number) => {
        const p = psc.professionals[index];
        if (!p) throw new Error('no fixture');
        return p;
      };
      /** From the DPI to PSC's login page, through Passerelle's « Pro Santé Connect » choice. */
      const toPsc = async (page: Page) => {
        await page.goto(dpi.loginUrl());
        await page.getByRole('link', { name: fr['method.psc'] }).click();
        await page.getByRole('link', { name: fr['psc.login.submit'] }).click();
        await page.getByRole('heading', { name: 'Carte CPS ou e-CPS' }).waitFor();
      };
      /** The simulated e-CPS at PSC. */
      const eCps = async (page: Page, idNatPs: string) => {
        await page.locator('#idNatPs').selectOption(idNatPs);
        await page.getByLabel('e-CPS (application mobile)').check();
        await page.getByRole('button', { name: 'Valider' }).click();
      };
      /** Passerelle's identifier and password pages. */
      const proveAccount = async (page: Page, username: string) => {
        await page.getByLabel(fr['login.username']).fill(username);
        await page.getByRole('button', { name: fr['login.continue'] }).click();
        await page.locator('input[type="password"]').fill(TEST_PASSWORD);
        await page.getByRole('button', { name: 'Se connecter', exact: true }).click();
      };
      const dpiOutcome = async (page: Page) => {
        await page.waitForURL((url) => url.origin === dpi.origin && url.pathname === '/callback');
        return dpi.outcomes.at(-1);
      };

      it('an unknown e-CPS identity: the user proves the account, PSC links it; then PSC alone signs in', async () => {
        const alice = await createUser(t, 'alice.martin');
        const context = await newFrenchContext(browser);
        const page = await context.newPage();
        await toPsc(page);
        await eCps(page, professional(4).idNatPs);
        // Back at Passerelle: nothing was created, the page says what to do.
        const alert = page.getByRole('alert');
        await alert.waitFor();
        expect(await alert.textContent()).toBe(fr['error.psc_not_linked']);
        expect((await t.passerelle.services.accounts.list()).map((a) => a.username)).toEqual([
          'alice.martin',
        ]);
        await proveAccount(page, alice.username);
        // The last step: PSC once more (its session answers at once), to link the identity.
        await page.getByText(fr['psc.login.link']).waitFor();
        await page.getByRole('link', { name: fr['psc.login.submit'] }).click();
        const linked = await dpiOutcome(page);
        expect(linked).toMatchObject({ kind: 'signed-in', claims: { sub: alice.id } });
        expect(await t.passerelle.services.identities.findByAccount(alice.id)).toMatchObject({
          idNat: professional(4).idNatPs,
          source: 'psc-login',
          status: 'verified',
        });
        await context.close();

        // Another browser: the e-CPS alone signs Alice in.
        const later = await (await newFrenchContext(browser)).newPage();
        await toPsc(later);
        await eCps(later, professional(4).idNatPs);
        const outcome = await dpiOutcome(later);
        expect(outcome).toMatchObject({ kind: 'signed-in', claims: { sub: alice.id } });
        if (outcome?.kind !== 'signed-in') throw new Error('not signed in');
        expect([...(outcome.claims.amr as string[])].sort()).toEqual(['mfa', 'pin', 'swk']);
        await later.context().close();
      });

      it('a national identity that contradicts the account’s link is refused as a conflict', async () => {
        const bruno = await createUser(t, 'bruno.gall');
        await t.passerelle.services.identities.set(bruno.id, professional(5).idNatPs, 'manual', 'verified');
        const page = await (await newFrenchContext(browser)).newPage();
        await toPsc(page);
        await eCps(page, professional(6).idNatPs);
        await page.getByRole('alert').waitFor();
        await proveAccount(page, bruno.username);
        await page.getByRole('link', { name: fr['psc.login.submit'] }).click();
        const alert = page.getByRole('alert');
        await alert.waitFor();
        expect(await alert.textContent()).toBe(fr['error.national_id_conflict']);
        expect(new URL(page.url()).origin).toBe(t.issuer);
        expect(dpi.outcomes.filter((o) => o.kind === 'signed-in' && o.claims.sub === bruno.id)).toEqual([]);
        expect(await t.passerelle.services.identities.findByAccount(bruno.id)).toMatchObject({
          idNat: professional(5).idNatPs,
          status: 'conflict',
        });
        await page.context().close();
      });
    });
  }
}
