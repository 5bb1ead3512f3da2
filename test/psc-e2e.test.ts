import type { KoaContextWithOIDC } from 'oidc-provider';
import * as oidc from 'openid-client';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PscRefusal } from '../src/federation/psc-eligibility.ts';
import { messages } from '../src/i18n/messages.ts';
import { PSC_CALLBACK_PATH } from '../src/methods/psc/index.ts';
import { EnrollmentCodes } from '../src/methods/webauthn/store.ts';
import { createUser, discover, rawPost, registerWebClient } from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { openHttpServer } from './helpers/net.ts';
import { type RelyingParty, startRelyingParty } from './helpers/relying-party.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import {
  attachEnrolledKey,
  chromiumAvailable,
  enrollKey,
  interceptRequests,
  launchChromium,
  missingChromiumSuite,
  newFrenchContext,
  passwordLogin,
  signInWithPassword,
  type VirtualCredential,
  VirtualKey,
} from './helpers/webauthn-browser.ts';
import { type PscSimulator, REALM_PATH, startPscSimulator } from './simulators/psc/server.ts';

/**
 * The PSC federation end to end in Chromium, every party a real server: the DPI (a relying party of
 * Passerelle), the external service (a relying party of the PSC simulator), Passerelle with a FIDO2 key on
 * a virtual authenticator, and the PSC simulator brokering to Passerelle with kc_idp_hint.
 */

const fr = messages.fr;
/** A GHT of two establishments; each federates only the accounts it lists. */
const RENNES = {
  finess: '350005179',
  name: 'CHU de Rennes',
  tid: 'tid-rennes-0001',
  pscAlias: 'chu-rennes',
  members: 'listed',
} as const;
const VANNES = {
  finess: '560008799',
  name: 'CH de Vannes',
  tid: 'tid-vannes-0002',
  pscAlias: 'ch-vannes',
  members: 'listed',
} as const;
type Establishment = typeof RENNES | typeof VANNES;
/** PSC's client id at Passerelle for the establishment's alias. */
const pscClientId = (alias: string) => `psc-${alias}`;
/** What the simulator accepts from the FI (Passerelle's default allow-list sends a subset of it). */
const PSC_AMR_ALLOW_LIST = ['sc', 'hwk', 'pin', 'mfa'];

/** Passerelle's client registration at PSC, for its « Se connecter avec Pro Santé Connect ». */
const PSC_LOGIN_CLIENT = { clientId: 'passerelle', clientSecret: 'passerelle-at-psc-secret' };

/** A Passerelle on `localhost` (the RP ID of the keys) for both establishments. */
function startPasserelle(kind: Parameters<typeof startTestServer>[0], extra: Record<string, unknown> = {}) {
  return startTestServer(kind, {
    issuerHost: 'localhost',
    config: (issuer) => ({
      demo: true,
      webauthn: { rpId: 'localhost', origins: [issuer] },
      establishments: [RENNES, VANNES],
      ...extra,
    }),
  });
}

/**
 * PSC's client registration at Passerelle for the establishment (redirect URI: PSC's broker endpoint of
 * `alias`), and the establishment's FI at PSC; PSC's client secret.
 */
async function federate(
  t: TestServer,
  psc: PscSimulator,
  establishment: Establishment,
  alias: string = establishment.pscAlias,
): Promise<string> {
  // As Keycloak's broker is by default: client_secret_post, no PKCE.
  const clientSecret = await registerWebClient(t, pscClientId(alias), {
    redirect_uris: [psc.brokerRedirectUri(alias)],
    psc_establishment: establishment.finess,
    first_party: true,
    token_endpoint_auth_method: 'client_secret_post',
    pkce_required: false,
  });
  psc.addFi({
    alias,
    name: establishment.name,
    discoveryUrl: t.issuer,
    clientId: pscClientId(alias),
    clientSecret,
    tidAllowList: [establishment.tid],
    amrAllowList: PSC_AMR_ALLOW_LIST,
  });
  return clientSecret;
}

/** A new account, member of Rennes only. */
async function rennesStaff(t: TestServer, username: string) {
  const user = await createUser(t, username);
  await t.passerelle.services.establishments.add(user.id, RENNES.finess, 'test');
  return user;
}

/** Password login, then a key enrolled with a code from the support: the credential, to copy to any tab. */
async function enrolKey(
  browser: Browser,
  t: TestServer,
  user: { id: string; username: string },
): Promise<VirtualCredential> {
  const context = await newFrenchContext(browser);
  try {
    const page = await context.newPage();
    await passwordLogin(page, t.issuer, user.username);
    const key = await VirtualKey.attach(page);
    const code = await new EnrollmentCodes(t.passerelle.services.database.db).issue(user.id, 'test', 600);
    await enrollKey(page, t.issuer, 'Clé', code.code);
    const [credential] = await key.credentials();
    if (!credential) throw new Error('no credential enrolled');
    return credential;
  } finally {
    await context.close();
  }
}

/** Every URL the tab navigates to (each redirect included), from now on. */
function recordNavigations(page: Page): URL[] {
  const urls: URL[] = [];
  page.on('request', (request) => {
    if (request.isNavigationRequest() && request.frame() === page.mainFrame())
      urls.push(new URL(request.url()));
  });
  return urls;
}

/** Paths visited at `origin`. */
const pathsAt = (urls: URL[], origin: string) =>
  urls.filter((u) => u.origin === origin).map((u) => u.pathname);

/** Waits for the relying party's page after a login and returns its latest outcome. */
async function outcomeAt(page: Page, rp: RelyingParty) {
  await page.waitForURL((url) => url.origin === rp.origin && url.pathname === '/callback');
  await page.getByRole('heading').first().waitFor();
  return rp.outcomes.at(-1);
}

const signedIn = (outcome: RelyingParty['outcomes'][number] | undefined) => {
  if (outcome?.kind !== 'signed-in') throw new Error(`not signed in: ${JSON.stringify(outcome)}`);
  return outcome;
};

/** Passerelle's answers to PSC (the broker endpoint of the establishment's alias), as a DevTools pattern. */
const brokerEndpointPattern = (psc: PscSimulator) => `${psc.brokerRedirectUri(RENNES.pscAlias)}?*`;

/** The key button of Passerelle's key page. */
const keyButton = (page: Page) => page.getByRole('button', { name: fr['webauthn.start'] });

/** Any page of the PSC simulator (its header), e.g. when Passerelle answered PSC without a prompt. */
const pscPage = (page: Page) => page.getByText('Pro Santé Connect — simulateur de test');

/** DPI login with the key: identifier, then the key page. */
async function keyLogin(page: Page, dpi: RelyingParty, username: string) {
  await page.goto(dpi.loginUrl());
  await page.getByLabel(fr['login.username']).fill(username);
  await page.getByRole('button', { name: fr['login.continue'] }).click();
  await page.getByRole('link', { name: fr['method.webauthn'] }).click();
  await keyButton(page).click();
  return signedIn(await outcomeAt(page, dpi));
}

if (!chromiumAvailable()) {
  missingChromiumSuite('PSC federation end to end in a real browser');
} else {
  for (const kind of databasesUnderTest()) {
    describe(`PSC federation in Chromium: DPI, external service, PSC simulator, Passerelle [${kind}]`, () => {
      let t: TestServer;
      let psc: PscSimulator;
      let browser: Browser;
      let dpi: RelyingParty;
      let service: RelyingParty;
      let pscSecret: string;
      let credential: VirtualCredential;
      let cecile: { id: string; username: string };
      /** The professional's workstation: the browser profile holding the SSO session made with the key. */
      let workstation: Page;
      const contexts: BrowserContext[] = [];

      const freshTab = async () => {
        const context = await newFrenchContext(browser);
        contexts.push(context);
        return context.newPage();
      };
      const pscEvents = () => psc.events.length;
      /**
       * A new PSC login of the service in this tab: PSC's own session cookies dropped (Passerelle's kept),
       * so that PSC asks Passerelle again. A service's prompt=login would do it too, but PSC forwards it
       * (Keycloak's default), which makes Passerelle authenticate again.
       */
      const forgetPscSession = (page: Page) =>
        page.context().clearCookies({ domain: new URL(psc.issuer).hostname });
      const newPscLogin = async (page: Page, params: Record<string, string> = {}) => {
        await forgetPscSession(page);
        return page.goto(service.loginUrl(params));
      };

      /**
       * A PSC login through `establishment` that Passerelle refuses after the SSO: its French page and
       * audit event; "Retour à l'application" gives PSC access_denied, which Keycloak shows on its login
       * page (« Accès refusé. »); the user's "Annuler" there gives it to the service.
       */
      const refusedByPasserelle = async (establishment: Establishment, reason: PscRefusal) => {
        const before = { psc: pscEvents(), service: service.outcomes.length };
        await newPscLogin(workstation, { kc_idp_hint: establishment.pscAlias });
        const alert = workstation.getByRole('alert');
        await alert.waitFor();
        expect(new URL(workstation.url()).origin).toBe(t.issuer);
        expect(await alert.textContent()).toBe(fr[`psc.refused.${reason}`]);
        const events = await t.passerelle.services.database.db
          .selectFrom('audit_event')
          .select(['account_id', 'client_id', 'outcome'])
          .where('type', '=', 'psc.federation.refused')
          .where('reason', '=', reason)
          .execute();
        expect(events).toEqual([
          { account_id: cecile.id, client_id: pscClientId(establishment.pscAlias), outcome: 'failure' },
        ]);

        await workstation.getByRole('button', { name: fr['psc.back_to_application'] }).click();
        await workstation.getByText('Accès refusé.').waitFor();
        expect(psc.events.slice(before.psc)).toMatchObject([
          { kind: 'fi-error', alias: establishment.pscAlias, error: 'access_denied', handling: 'login_page' },
        ]);
        await workstation.getByRole('button', { name: 'Annuler' }).click();
        expect(await outcomeAt(workstation, service)).toMatchObject({
          kind: 'error',
          error: 'access_denied',
        });
        expect(service.outcomes.slice(before.service).map((o) => o.kind)).toEqual(['error']);
      };
      const professional = () => {
        const chosen = psc.professionals[3];
        if (!chosen) throw new Error('no fixture');
        return chosen;
      };

      beforeAll(async () => {
        const pscServer = await openHttpServer();
        [t, browser, dpi, service] = await Promise.all([
          // Passerelle is also a client of the same PSC (login through PSC): the loop must stay open.
          startPasserelle(kind, {
            pscLogin: {
              issuer: `${pscServer.origin}${REALM_PATH}`,
              ...PSC_LOGIN_CLIENT,
              allowInsecureHttp: true,
            },
          }),
          launchChromium(),
          startRelyingParty({ name: 'dpi' }),
          startRelyingParty({ name: 'service' }),
        ]);
        psc = await startPscSimulator({
          server: pscServer.server,
          clients: [
            { clientId: 'drimbox', clientSecret: 'drimbox-secret', redirectUris: [service.redirectUri] },
            { ...PSC_LOGIN_CLIENT, redirectUris: [`${t.issuer}${PSC_CALLBACK_PATH}`] },
          ],
        });
        service.configure({
          issuer: psc.issuer,
          clientId: 'drimbox',
          clientSecret: 'drimbox-secret',
          scope: 'openid scope_all',
          params: { kc_idp_hint: RENNES.pscAlias, acr_values: 'eidas1' },
        });
        const dpiSecret = await registerWebClient(t, 'dpi', {
          redirect_uris: [dpi.redirectUri],
          first_party: true,
        });
        dpi.configure({
          issuer: t.issuer,
          clientId: 'dpi',
          clientSecret: dpiSecret,
          scope: 'openid profile',
        });
        pscSecret = await federate(t, psc, RENNES);
        await federate(t, psc, VANNES);
        cecile = await rennesStaff(t, 'cecile.sage');
        credential = await enrolKey(browser, t, cecile);
        workstation = await freshTab();
        await attachEnrolledKey(workstation, t.passerelle.services.database.db, credential);
      });
      afterAll(async () => {
        for (const context of contexts) await context.close();
        await browser?.close();
        await Promise.all([psc?.close(), dpi?.close(), service?.close()]);
        await t?.close();
      });

      it('DPI → Passerelle with the FIDO2 key: signed in, the DPI receives acr and amr (hwk, pin, mfa)', async () => {
        const outcome = await keyLogin(workstation, dpi, cecile.username);
        expect(outcome.claims).toMatchObject({
          sub: cecile.id,
          amr: ['hwk', 'mfa', 'pin'],
          acr: 'urn:passerelle:loa:high',
        });
        // An application of the establishment: no PSC claims.
        expect(outcome.claims.tid).toBeUndefined();
        expect(outcome.claims.oid).toBeUndefined();
        // The SSO session: the DPI again, no page at Passerelle.
        const visited = recordNavigations(workstation);
        await workstation.goto(dpi.loginUrl());
        expect(signedIn(await outcomeAt(workstation, dpi)).claims.sub).toBe(cecile.id);
        expect(pathsAt(visited, t.issuer)).toEqual(['/auth']);
      });

      it('service → PSC (kc_idp_hint) → Passerelle without a prompt → pairing; then only "Confirmer"', async () => {
        const visited = recordNavigations(workstation);
        const before = pscEvents();
        await workstation.goto(service.loginUrl());
        await workstation.getByRole('heading', { name: 'Appairage de votre compte' }).waitFor();
        // Passerelle answered PSC from the SSO session: no login page.
        expect(pathsAt(visited, t.issuer)).toEqual(['/auth']);
        expect(psc.events.slice(before)).toMatchObject([
          {
            kind: 'accepted',
            clientId: 'drimbox',
            login: {
              alias: RENNES.pscAlias,
              tid: RENNES.tid,
              oid: cecile.id,
              sub: cecile.id,
              acr: 'eidas1',
              amrNotAccepted: [],
            },
          },
        ]);
        const accepted = psc.events[before];
        if (accepted?.kind !== 'accepted') throw new Error('not accepted');
        expect([...accepted.login.amr].sort()).toEqual(['hwk', 'mfa', 'pin']);

        await workstation.locator('#idNatPs').selectOption(professional().idNatPs);
        await workstation.getByRole('button', { name: 'Valider' }).click();
        const first = signedIn(await outcomeAt(workstation, service));
        expect(first.claims).toMatchObject({
          SubjectNameID: professional().idNatPs,
          acr: 'eidas1',
          authMode: 'DELEGATED',
        });
        expect(first.userinfo.SubjectNameID).toBe(professional().idNatPs);
        expect(psc.pairings.find(RENNES.pscAlias, RENNES.tid, cecile.id)?.idNatPs).toBe(
          professional().idNatPs,
        );

        // A new login at PSC (its own session dropped): Passerelle's SSO, "Confirmer".
        const again = recordNavigations(workstation);
        await newPscLogin(workstation);
        await workstation.getByRole('heading', { name: 'Confirmer la connexion' }).waitFor();
        expect(await workstation.locator('#idNatPs').count()).toBe(0);
        expect(pathsAt(again, t.issuer)).toEqual(['/auth']);
        await workstation.getByRole('button', { name: 'Confirmer' }).click();
        expect(signedIn(await outcomeAt(workstation, service)).claims.SubjectNameID).toBe(
          professional().idNatPs,
        );
        expect(psc.events.at(-1)).toMatchObject({ kind: 'confirmed', oid: cecile.id });
      });

      it('a password-only session is stepped up for PSC: the key page (no identifier page), then PSC', async () => {
        const page = await freshTab();
        await page.goto(dpi.loginUrl());
        await signInWithPassword(page, cecile.username);
        expect(signedIn(await outcomeAt(page, dpi)).claims).toMatchObject({ sub: cecile.id, amr: ['pwd'] });

        const visited = recordNavigations(page);
        await page.goto(service.loginUrl());
        await keyButton(page).or(pscPage(page)).waitFor();
        expect(new URL(page.url()).origin).toBe(t.issuer);
        expect(await page.locator('main').textContent()).toContain(fr['login.step_up.lead']);
        expect(await page.locator('form[action$="/identify"]').count()).toBe(0);
        expect(await page.getByLabel(fr['login.username']).count()).toBe(0);
        await attachEnrolledKey(page, t.passerelle.services.database.db, credential);
        await keyButton(page).click();
        await page.getByRole('button', { name: 'Confirmer' }).click();
        expect(signedIn(await outcomeAt(page, service)).claims.SubjectNameID).toBe(professional().idNatPs);
        const atPasserelle = pathsAt(visited, t.issuer);
        expect(atPasserelle.filter((p) => p.endsWith('/identify'))).toEqual([]);
        expect(atPasserelle[0]).toBe('/auth');
        expect(atPasserelle[1]).toMatch(/^\/interaction\/[^/]+$/);
      });

      it('an authentication older than psc.maxAuthAgeSeconds: asked again for PSC, SSO still for the DPI', async () => {
        // Another Passerelle whose PSC limit is 2 s, on its own database, with its own DPI and FI alias at PSC.
        const alias = 'chu-rennes-2s';
        const [short, shortDpi] = await Promise.all([
          startPasserelle(kind, { psc: { maxAuthAgeSeconds: 2 } }),
          startRelyingParty({ name: 'dpi2s' }),
        ]);
        try {
          const secret = await registerWebClient(short, 'dpi', {
            redirect_uris: [shortDpi.redirectUri],
            first_party: true,
          });
          shortDpi.configure({ issuer: short.issuer, clientId: 'dpi', clientSecret: secret });
          await federate(short, psc, RENNES, alias);
          const user = await rennesStaff(short, 'paul.medecin');
          const key = await enrolKey(browser, short, user);
          const page = await freshTab();
          await attachEnrolledKey(page, short.passerelle.services.database.db, key);
          const signedInAt = (await keyLogin(page, shortDpi, user.username)).claims.auth_time ?? 0;
          await new Promise((resolve) => setTimeout(resolve, 3000));

          const visited = recordNavigations(page);
          await newPscLogin(page, { kc_idp_hint: alias });
          await keyButton(page).or(pscPage(page)).waitFor();
          expect(new URL(page.url()).origin).toBe(short.issuer);
          expect(pathsAt(visited, short.issuer)).toEqual([
            '/auth',
            expect.stringMatching(/^\/interaction\//),
          ]);

          // Meanwhile the DPI, without a maximum age, is still served from the session.
          const dpiTab = await page.context().newPage();
          const dpiVisits = recordNavigations(dpiTab);
          await dpiTab.goto(shortDpi.loginUrl());
          expect(signedIn(await outcomeAt(dpiTab, shortDpi)).claims).toMatchObject({
            sub: user.id,
            auth_time: signedInAt,
          });
          expect(pathsAt(dpiVisits, short.issuer)).toEqual(['/auth']);

          const before = pscEvents();
          await keyButton(page).click();
          await page.getByRole('heading', { name: 'Appairage de votre compte' }).waitFor();
          const accepted = psc.events[before];
          expect(accepted).toMatchObject({ kind: 'accepted', login: { alias, oid: user.id } });
          if (accepted?.kind !== 'accepted') throw new Error('not accepted');
          expect(accepted.login.authTime.getTime() / 1000).toBeGreaterThan(signedInAt);
        } finally {
          await shortDpi.close();
          await short.close();
        }
      });

      it('an inactive RPPS link: refused with the French page and audited; PSC gets access_denied', async () => {
        const identities = t.passerelle.services.identities;
        await identities.set(cecile.id, professional().idNatPs, 'manual', 'inactive');
        try {
          await refusedByPasserelle(RENNES, 'link_inactive');
        } finally {
          await t.passerelle.services.database.db
            .deleteFrom('national_identity')
            .where('account_id', '=', cecile.id)
            .execute();
        }
      });

      it('a broker redirect URI not registered at Passerelle: Passerelle shows its error page, no redirect', async () => {
        const alias = 'chu-rennes-mal-inscrit';
        psc.addFi({
          alias,
          discoveryUrl: t.issuer,
          clientId: pscClientId(RENNES.pscAlias),
          clientSecret: pscSecret,
          tidAllowList: [RENNES.tid],
          amrAllowList: PSC_AMR_ALLOW_LIST,
        });
        const visited = recordNavigations(workstation);
        const before = { psc: pscEvents(), service: service.outcomes.length };
        const response = await newPscLogin(workstation, { kc_idp_hint: alias });
        expect(new URL(workstation.url()).origin).toBe(t.issuer);
        expect(response?.status()).toBe(400);
        expect(await workstation.getByRole('alert').textContent()).toBe(
          messages.fr['error.engine.invalid_redirect_uri'],
        );
        // The browser stayed at Passerelle: nothing went to PSC's broker endpoint.
        expect(visited.filter((u) => u.pathname.includes('/broker/'))).toEqual([]);
        expect(psc.events.length).toBe(before.psc);
        expect(service.outcomes.length).toBe(before.service);
      });

      it('a forged state on the way back to PSC: PSC refuses, the service gets no tokens', async () => {
        let original = '';
        const stop = await interceptRequests(workstation, brokerEndpointPattern(psc), (url) => {
          original = url.searchParams.get('state') ?? '';
          // Keycloak's state starts with the code that names the login (<code>.<tab>.<client>[.<data>]).
          const [code = '', ...rest] = original.split('.');
          url.searchParams.set('state', [`${code.slice(0, -4)}AAAA`, ...rest].join('.'));
          return url;
        });
        try {
          const before = { psc: pscEvents(), service: service.outcomes.length };
          await newPscLogin(workstation);
          await workstation.getByRole('heading', { name: 'Erreur' }).waitFor();
          expect(original).not.toBe('');
          expect(psc.events.slice(before.psc)).toMatchObject([
            { kind: 'refused', alias: RENNES.pscAlias, reason: 'state_unknown' },
          ]);
          expect(await workstation.locator('main').textContent()).toContain(
            'Aucune connexion en cours ne correspond à cette réponse.',
          );
          // No way back to the service from an answer matching no login: it received nothing.
          expect(await workstation.getByRole('button', { name: 'Retour au service' }).count()).toBe(0);
          expect(service.outcomes.length).toBe(before.service);
        } finally {
          await stop();
        }
      });

      it('two establishments: federated under its own with its tid, refused under the other (not_member)', async () => {
        expect(
          (await t.passerelle.services.establishments.of(cecile.id)).map((m) => m.establishment.finess),
        ).toEqual([RENNES.finess]);
        const before = pscEvents();
        await newPscLogin(workstation, { kc_idp_hint: RENNES.pscAlias });
        await workstation.getByRole('button', { name: 'Confirmer' }).click();
        expect(signedIn(await outcomeAt(workstation, service)).claims.SubjectNameID).toBe(
          professional().idNatPs,
        );
        expect(psc.events[before]).toMatchObject({
          kind: 'accepted',
          login: { alias: RENNES.pscAlias, tid: RENNES.tid, oid: cecile.id },
        });

        // Vannes, whose tid PSC accepts, is refused by Passerelle itself: Cécile is not on its staff.
        await refusedByPasserelle(VANNES, 'not_member');
        expect(psc.events.some((e) => e.kind === 'accepted' && e.login.tid === VANNES.tid)).toBe(false);
        expect(psc.pairings.find(VANNES.pscAlias, VANNES.tid, cecile.id)).toBeUndefined();
      });

      /** « Se connecter avec Pro Santé Connect » on Passerelle's PSC page, then PSC's CPS card. */
      const pscCardLogin = async (page: Page, idNatPs: string) => {
        await page.getByRole('link', { name: fr['psc.login.submit'] }).click();
        await page.locator('#idNatPs').selectOption(idNatPs);
        await page.getByLabel('Carte CPS').check();
        await page.getByRole('button', { name: 'Valider' }).click();
      };
      /**
       * Inside a login for PSC, the login through PSC is neither offered nor accepted, whatever the page
       * is made to send (the form's own CSRF token, the return URL of a PSC answer).
       */
      const pscLoginRefusedHere = async (page: Page) => {
        expect(await page.getByRole('link', { name: fr['method.psc'] }).count()).toBe(0);
        expect(await page.getByRole('link', { name: fr['psc.login.submit'] }).count()).toBe(0);
        const uid = /\/interaction\/([^/?]+)/.exec(new URL(page.url()).pathname)?.[1] ?? '';
        const csrf = await page.locator('input[name="csrf"]').first().inputValue();
        const posted = await page.request.post(`${t.issuer}/interaction/${uid}/method/psc`, {
          form: { csrf },
          maxRedirects: 0,
        });
        expect(posted.status()).toBe(400);
        const answered = await page.request.get(
          `${t.issuer}/interaction/${uid}/method/psc/return?state=forged&code=forged`,
          { maxRedirects: 0 },
        );
        expect(answered.status()).toBe(400);
      };
      /** What PSC accepted from Passerelle since `before`. */
      const acceptedSince = (before: number) => {
        const accepted = psc.events.slice(before).find((e) => e.kind === 'accepted');
        if (accepted?.kind !== 'accepted') throw new Error('PSC accepted nothing');
        return accepted.login;
      };

      it('the delegation loop, SSO and step-up: a session from a login through PSC is stepped up with Passerelle’s own key', async () => {
        const user = await rennesStaff(t, 'boucle.sso');
        const key = await enrolKey(browser, t, user);
        const national = psc.professionals[6];
        if (!national) throw new Error('no fixture');
        await t.passerelle.services.identities.set(user.id, national.idNatPs, 'psc-login', 'verified');
        const page = await freshTab();
        // The DPI through PSC's CPS card: PSC's proof, marked federated.
        await page.goto(dpi.loginUrl());
        await page.getByRole('link', { name: fr['method.psc'] }).click();
        await pscCardLogin(page, national.idNatPs);
        const viaPsc = signedIn(await outcomeAt(page, dpi));
        expect(viaPsc.claims.sub).toBe(user.id);
        expect([...(viaPsc.claims.amr as string[])].sort()).toEqual(['fed', 'hwk', 'mfa', 'pin', 'sc']);

        // PSC, delegating to Passerelle, is not answered from that session: Passerelle asks its own key.
        const before = pscEvents();
        await newPscLogin(page);
        await keyButton(page).or(pscPage(page)).waitFor();
        expect(new URL(page.url()).origin).toBe(t.issuer);
        expect(await page.locator('main').textContent()).toContain(fr['login.step_up.lead']);
        expect(psc.events.slice(before).filter((e) => e.kind === 'accepted')).toEqual([]);
        await pscLoginRefusedHere(page);
        await attachEnrolledKey(page, t.passerelle.services.database.db, key);
        await keyButton(page).click();
        await page.getByRole('heading', { name: 'Appairage de votre compte' }).waitFor();
        // Only what Passerelle proved: the key (no card, nothing federated).
        const login = acceptedSince(before);
        expect(login).toMatchObject({ oid: user.id, tid: RENNES.tid, acr: 'eidas1' });
        expect([...login.amr].sort()).toEqual(['hwk', 'mfa', 'pin']);
      });

      it('the delegation loop, portal link: PSC gets the key’s proof and time, never the e-CPS link’s', async () => {
        const user = await rennesStaff(t, 'boucle.portail');
        const key = await enrolKey(browser, t, user);
        const national = psc.professionals[7];
        if (!national) throw new Error('no fixture');
        const page = await freshTab();
        await attachEnrolledKey(page, t.passerelle.services.database.db, key);
        // The portal with the key, then « Lier ma e-CPS » with PSC's card.
        await page.goto(`${t.issuer}/portal/security`);
        await page.getByLabel(fr['login.username']).fill(user.username);
        await page.getByRole('button', { name: fr['login.continue'] }).click();
        await page.getByRole('link', { name: fr['method.webauthn'] }).click();
        await keyButton(page).click();
        await page.getByRole('button', { name: 'Lier ma e-CPS' }).click();
        await pscCardLogin(page, national.idNatPs);
        await page.waitForURL((url) => url.pathname === '/portal/security' && url.search === '?done=linked');
        const [session] = await t.passerelle.services.sessions.listForAccount(user.id);
        expect(session?.methods.map((m) => [m.method, m.federated ?? false])).toEqual([
          ['webauthn', false],
          ['psc', true],
        ]);
        const keyAt = session?.methods[0]?.at ?? 0;

        // PSC: served from the session's key (within 4 h), with the key's amr and time only.
        const before = pscEvents();
        await newPscLogin(page);
        await page.getByRole('heading', { name: 'Appairage de votre compte' }).waitFor();
        const login = acceptedSince(before);
        expect([...login.amr].sort()).toEqual(['hwk', 'mfa', 'pin']);
        expect(login.authTime.getTime() / 1000).toBe(keyAt);

        // The key used 4 h 10 min ago: the fresh e-CPS link does not stand in for it.
        const db = t.passerelle.services.database.db;
        const aged = session?.methods.map((m) => (m.federated ? m : { ...m, at: m.at - (4 * 3600 + 600) }));
        await db
          .updateTable('auth_session')
          .set({ methods: JSON.stringify(aged) })
          .where('session_uid', '=', session?.sessionUid ?? '')
          .execute();
        const later = pscEvents();
        await newPscLogin(page);
        await keyButton(page).or(pscPage(page)).waitFor();
        expect(new URL(page.url()).origin).toBe(t.issuer);
        expect(psc.events.slice(later).filter((e) => e.kind === 'accepted')).toEqual([]);
        await pscLoginRefusedHere(page);
      });

      it('POST at /auth and /session/end from another site: single sign-on kept, and the real session ended', async () => {
        const page = await freshTab();
        await page.goto(dpi.loginUrl());
        await signInWithPassword(page, cecile.username);
        expect(signedIn(await outcomeAt(page, dpi)).claims.sub).toBe(cecile.id);
        /** A self-submitting form on another site, POSTing `fields` to Passerelle's `path`. */
        const postFromAnotherSite = async (path: string, fields: Record<string, string>) => {
          const inputs = Object.entries(fields)
            .map(([name, value]) => `<input type="hidden" name="${name}" value="${value}">`)
            .join('');
          await page.route('http://service.test/post', (route) =>
            route.fulfill({
              contentType: 'text/html',
              body: `<form method="post" action="${t.issuer}${path}">${inputs}</form><script>document.forms[0].submit()</script>`,
            }),
          );
          await page.goto('http://service.test/post');
        };
        // The authorization request as a form POST: the Lax session cookie comes along after the 303,
        // so the session answers at once (no login page).
        const visited = recordNavigations(page);
        await postFromAnotherSite('/auth', {
          client_id: 'dpi',
          redirect_uri: dpi.redirectUri,
          response_type: 'code',
          scope: 'openid',
          state: 'etat-post',
          nonce: 'nonce-post',
          code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
          code_challenge_method: 'S256',
        });
        await page.waitForURL((url) => url.origin === dpi.origin);
        const callback = visited.find((u) => u.origin === dpi.origin);
        expect(callback?.searchParams.get('code')).toBeTruthy();
        expect(callback?.searchParams.get('state')).toBe('etat-post');
        expect(pathsAt(visited, t.issuer)).toEqual(['/auth', '/auth']);

        // The logout as a form POST: the page names the real session, whose end is confirmed.
        await postFromAnotherSite('/session/end', { client_id: 'dpi' });
        await page.getByRole('button', { name: fr['logout.confirm'] }).click();
        await page.getByText(fr['logout.done']).waitFor();
        await page.goto(dpi.loginUrl());
        await page.getByLabel(fr['login.username']).waitFor();
        expect(new URL(page.url()).origin).toBe(t.issuer);
      });

      // Last: the replay revokes PSC's grant (the next login then needs a new one).
      it('a replayed code is refused (invalid_grant) and the tokens issued from it are revoked', async () => {
        const provider = t.passerelle.services.host.provider;
        /** What PSC sent to Passerelle's token endpoint, and the access token it received. */
        let redeemed: { code: string; accessToken: string } | undefined;
        const onGrant = (ctx: KoaContextWithOIDC) => {
          const body = ctx.body as { access_token?: string };
          redeemed = { code: String(ctx.oidc.params?.code), accessToken: String(body.access_token) };
        };
        provider.on('grant.success', onGrant);
        let captured = '';
        const stop = await interceptRequests(workstation, brokerEndpointPattern(psc), (url) => {
          captured = url.searchParams.get('code') ?? '';
          return undefined;
        });
        try {
          await newPscLogin(workstation);
          await workstation.getByRole('button', { name: 'Confirmer' }).click();
          expect(signedIn(await outcomeAt(workstation, service)).claims.SubjectNameID).toBe(
            professional().idNatPs,
          );
        } finally {
          await stop();
          provider.off('grant.success', onGrant);
        }
        expect(captured).not.toBe('');
        expect(redeemed?.code).toBe(captured);
        const pscClient = pscClientId(RENNES.pscAlias);
        const asPsc = await discover(t, pscClient, oidc.ClientSecretPost(pscSecret));
        const accessToken = redeemed?.accessToken ?? '';
        expect((await oidc.tokenIntrospection(asPsc, accessToken)).active).toBe(true);

        // The same request as Keycloak's broker: client_secret_post, no code_verifier.
        const replay = await rawPost(t, '/token', {
          grant_type: 'authorization_code',
          code: captured,
          redirect_uri: psc.brokerRedirectUri(RENNES.pscAlias),
          client_id: pscClient,
          client_secret: pscSecret,
        });
        expect(replay.status).toBe(400);
        expect(replay.json).toEqual({
          error: 'invalid_grant',
          error_description: 'grant request is invalid',
        });
        // RFC 6749 §4.1.2: the tokens issued from the replayed code are revoked.
        expect((await oidc.tokenIntrospection(asPsc, accessToken)).active).toBe(false);

        // PSC's next login: a first-party client gets a new grant, no consent page, although the
        // session still names the revoked one.
        const visited = recordNavigations(workstation);
        await newPscLogin(workstation);
        await workstation.getByRole('button', { name: 'Confirmer' }).click();
        expect(signedIn(await outcomeAt(workstation, service)).claims.SubjectNameID).toBe(
          professional().idNatPs,
        );
        expect(pathsAt(visited, t.issuer)).toEqual(['/auth']);
      });
    });
  }
}
