import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PSC_LOGGED_OUT_PATH } from '../src/federation/psc-login-routes.ts';
import { messages } from '../src/i18n/messages.ts';
import { PSC_BACKCHANNEL_LOGOUT_PATH, PSC_CALLBACK_PATH } from '../src/methods/psc/index.ts';
import { createUser, registerWebClient, TEST_PASSWORD } from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { openHttpServer } from './helpers/net.ts';
import { seriousAccessibilityViolations } from './helpers/page-checks.ts';
import { type RelyingParty, startRelyingParty } from './helpers/relying-party.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import {
  chromiumAvailable,
  enrollVirtualKey,
  launchChromium,
  missingChromiumSuite,
  newFrenchContext,
  openConsoleWithKey,
  signInWithPassword,
} from './helpers/webauthn-browser.ts';
import { type PscSimulator, REALM_PATH, startPscSimulator } from './simulators/psc/server.ts';

const fr = messages.fr;
const PSC_CLIENT = { clientId: 'passerelle', clientSecret: 'passerelle-at-psc-secret' };
/** An identity of Pro Santé Identité only (its identifier's format is not published). */
const PSI = { psiId: 'PSI-e2e-2026-0001', givenName: 'Inès', familyName: 'Morel' };

/**
 * The login through Pro Santé Connect in Chromium (issue #5 §5.4): the DPI (a relying party of Passerelle)
 * → Passerelle → « Se connecter avec Pro Santé Connect » → the PSC simulator (simulated e-CPS) → back.
 * PSC as in production (issue #13 §3): the authorization request on the wallet host, userinfo as a
 * signed JWT, identities from the RPPS and from Pro Santé Identité. An unknown national identity links
 * the account the user then proves; a contradicting one is refused; so is a level below the minimum; the
 * console shows which registry a link comes from.
 */
if (!chromiumAvailable()) {
  missingChromiumSuite('login through Pro Santé Connect in a real browser');
} else {
  for (const kind of databasesUnderTest()) {
    describe(`login through Pro Santé Connect in Chromium [${kind}]`, () => {
      let t: TestServer;
      let psc: PscSimulator;
      let browser: Browser;
      let dpi: RelyingParty;
      /** The acr PSC gives its next logins. */
      let pscAcr: string | null = 'eidas1';
      /** The administrator's console, signed in with a security key. */
      let consolePage: Page;

      beforeAll(async () => {
        const pscServer = await openHttpServer();
        [t, browser, dpi] = await Promise.all([
          startTestServer(kind, {
            // WebAuthn (the console) needs a host name.
            issuerHost: 'localhost',
            config: (issuer) => ({
              webauthn: { rpId: 'localhost', origins: [issuer] },
              pscLogin: {
                issuer: `${pscServer.origin}${REALM_PATH}`,
                ...PSC_CLIENT,
                allowInsecureHttp: true,
              },
            }),
          }),
          launchChromium(),
          startRelyingParty({ name: 'dpi' }),
        ]);
        psc = await startPscSimulator({
          server: pscServer.server,
          walletOrigin: true,
          acr: () => pscAcr,
          psi: { identities: [PSI] },
          clients: [
            {
              ...PSC_CLIENT,
              redirectUris: [`${t.issuer}${PSC_CALLBACK_PATH}`],
              postLogoutRedirectUris: [`${t.issuer}${PSC_LOGGED_OUT_PATH}`],
              backchannelLogoutUri: `${t.issuer}${PSC_BACKCHANNEL_LOGOUT_PATH}`,
              userinfoSignedResponseAlg: 'RS256',
            },
          ],
        });
        const secret = await registerWebClient(t, 'dpi', {
          redirect_uris: [dpi.redirectUri],
          first_party: true,
        });
        dpi.configure({ issuer: t.issuer, clientId: 'dpi', clientSecret: secret, scope: 'openid profile' });
        // The administrator: password, a FIDO2 key, then the console's phishing-resistant sign-in.
        const admin = await createUser(t, 'console.admin');
        consolePage = await (await newFrenchContext(browser, { bypassCSP: true })).newPage();
        await consolePage.goto(`${t.issuer}/portal`);
        await signInWithPassword(consolePage, admin.username);
        await consolePage.getByRole('heading', { name: fr['portal.title'] }).waitFor();
        await enrollVirtualKey(consolePage, t, admin.id, 'Clé admin');
        await t.passerelle.services.roles.grant(admin.id, 'administrator', 'test');
        await openConsoleWithKey(consolePage, t.issuer);
      });
      afterEach(() => {
        pscAcr = 'eidas1';
      });
      afterAll(async () => {
        await consolePage?.context().close();
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
        const button = page.getByRole('link', { name: fr['psc.login.submit'] });
        // The authorization request goes to PSC's wallet host, which hands it to the realm.
        expect(new URL((await button.getAttribute('href')) ?? '').origin).toBe(psc.walletOrigin);
        await button.click();
        await page.getByRole('heading', { name: 'Carte CPS ou e-CPS' }).waitFor();
        expect(new URL(page.url()).origin).toBe(new URL(psc.issuer).origin);
      };
      /** The simulated e-CPS at PSC, for an idNatPS or a Pro Santé Identité identifier. */
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
        expect((await t.passerelle.services.accounts.list()).map((a) => a.username).sort()).toEqual([
          'alice.martin',
          'console.admin',
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
        expect([...(outcome.claims.amr as string[])].sort()).toEqual(['fed', 'mfa', 'pin', 'swk']);
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

      it('a Pro Santé Identité identity: linked by the login; the console shows its registry', async () => {
        const ines = await createUser(t, 'ines.morel');
        const page = await (await newFrenchContext(browser)).newPage();
        await toPsc(page);
        await eCps(page, PSI.psiId);
        const alert = page.getByRole('alert');
        await alert.waitFor();
        expect(await alert.textContent()).toBe(fr['error.psc_not_linked']);
        await proveAccount(page, ines.username);
        await page.getByText(fr['psc.login.link']).waitFor();
        await page.getByRole('link', { name: fr['psc.login.submit'] }).click();
        expect(await dpiOutcome(page)).toMatchObject({ kind: 'signed-in', claims: { sub: ines.id } });
        expect(await t.passerelle.services.identities.findByAccount(ines.id)).toMatchObject({
          idNat: PSI.psiId,
          origin: 'psi',
          source: 'psc-login',
          status: 'verified',
        });
        await page.context().close();

        await consolePage.goto(`${t.issuer}/admin/accounts/${ines.id}`);
        await consolePage.getByRole('heading', { name: fr['console.account.identity'] }).waitFor();
        expect(await consolePage.locator('main').textContent()).toContain(
          `Référentiel Pro Santé Identité, identifiant ${PSI.psiId} — identité vérifiée, origine : connexion Pro Santé Connect`,
        );

        // A PSI proof contradicting an RPPS link: in the review queue, each side with its registry.
        const bruno = await createUser(t, 'bruno.rpps');
        const { identities } = t.passerelle.services;
        await identities.set(bruno.id, professional(8).idNatPs, 'manual', 'verified');
        const proof = await identities.recordProven(bruno.id, 'PSI-e2e-2026-0002', 'psc-login', {
          origin: 'psi',
        });
        expect(proof.kind).toBe('conflict');
        await consolePage.goto(`${t.issuer}/admin/rpps`);
        const review = consolePage.locator('section.review', { hasText: 'bruno.rpps' });
        expect(await review.getByRole('heading').textContent()).toContain(
          'bruno.rpps ↔ PSI-e2e-2026-0002 (Pro Santé Identité)',
        );
        const row = review.locator('tbody tr', { hasText: fr['console.rpps.identifier'] });
        expect(await row.locator('td').allTextContents()).toEqual([
          `${professional(8).idNatPs} (RPPS, vérifiée, saisie par un administrateur)`,
          'PSI-e2e-2026-0002 (Pro Santé Identité)',
        ]);
        expect(await seriousAccessibilityViolations(consolePage)).toEqual([]);
      });

      it('PSC’s level below the minimum: refused with the French page, the DPI gets nothing', async () => {
        const claire = await createUser(t, 'claire.acr');
        await t.passerelle.services.identities.set(claire.id, professional(9).idNatPs, 'manual', 'verified');
        pscAcr = null;
        // CSP bypassed for the accessibility check's script only.
        const page = await (await newFrenchContext(browser, { bypassCSP: true })).newPage();
        await toPsc(page);
        await eCps(page, professional(9).idNatPs);
        const alert = page.getByRole('alert');
        await alert.waitFor();
        expect(await alert.textContent()).toBe(fr['error.psc_level_too_low']);
        expect(new URL(page.url()).origin).toBe(t.issuer);
        expect(await seriousAccessibilityViolations(page)).toEqual([]);
        expect(dpi.outcomes.filter((o) => o.kind === 'signed-in' && o.claims.sub === claire.id)).toEqual([]);
        await page.context().close();
      });
    });
  }
}
