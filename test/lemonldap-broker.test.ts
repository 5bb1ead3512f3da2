import { decodeJwt } from 'jose';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { messages } from '../src/i18n/messages.ts';
import { EnrollmentCodes } from '../src/methods/webauthn/store.ts';
import { createUser, registerWebClient } from './helpers/clients.ts';
import { missingComponentSuite } from './helpers/components.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import {
  LEMONLDAP_MISSING,
  type LemonLdap,
  lemonLdapAvailable,
  startLemonLdap,
} from './helpers/lemonldap.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import {
  attachEnrolledKey,
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
 * LemonLDAP::NG 2.16 (Debian bookworm's lemonldap-ng), a broker nobody here wrote, as an OpenID Connect
 * relying party of Passerelle with the PSC profile: its "OpenID Connect" authentication backend, configured
 * as its documentation says, the FIDO2 key on a virtual authenticator in Chromium.
 *
 * What this relies on, from the package (documentation in lemonldap-ng-doc, under
 * /usr/share/doc/lemonldap-ng/pages/documentation/current/, and the Perl code in /usr/share/perl5/Lemonldap):
 * - authopenidconnect.html: the redirect URI is the portal URL with `?openidconnectcallback=1`; the OP's
 *   metadata (its discovery document) is pasted in the configuration; with "JWKS data timeout" > 0 the
 *   JWKS is downloaded from jwks_uri; "Exported attributes" map UserInfo claims to session keys; "Store ID
 *   token" keeps the ID token for id_token_hint at logout; "logout initiated by the relaying-party will be
 *   forwarded to OpenID Connect provider but logout initiated by the provider (or another RP) will not be
 *   propagated".
 * - authopenidconnect_prosanteconnect.html: the logout URL to give the provider is the portal's `?logout=1`.
 * - The Manager's defaults for a new provider (Lemonldap::NG::Manager::Build::Attributes, read at run time
 *   by the helper): scope `openid profile`, client_secret_post, nonce, JWT signature checked, ID token at
 *   most 30 s old.
 * - Lemonldap::NG::Portal::Lib::OpenIDConnect: the authorization request (no PKCE parameter in 2.16), the
 *   token request (client_secret_post or _basic only), verifyJWTSignature (HS* and RS* only: Passerelle
 *   signs this client's ID tokens with RS256), buildLogoutRequest (id_token_hint, post_logout_redirect_uri,
 *   client_id).
 * - Lemonldap::NG::Portal::Auth::OpenIDConnect: its back- and front-channel logout routes as a relying
 *   party (`/oauth2/blogout`, `/oauth2/flogout`) answer 501 "… logout is not implemented".
 * - restservices.html and Lemonldap::NG::Portal::Plugins::RESTServer: with restSessionServer, GET
 *   /session/my/global gives the caller's own session (its `exportedAttr`), /session/my/global/<key> one key.
 * - hooks.html and plugincustom.html: the oidcGotIDToken and oidcGotUserInfo hooks used by
 *   deploy/lemonldap-ng/Passerelle/IdTokenClaims.pm, without which the session could not hold amr and acr
 *   (Exported attributes come from UserInfo only; acr and amr are ID token claims).
 */

const fr = messages.fr;
const ESTABLISHMENT = {
  finess: '350005179',
  name: 'CHU de Rennes',
  tid: 'tid-rennes-0001',
  pscAlias: 'chu-rennes',
} as const;
const CLIENT_ID = 'lemonldap-chu-rennes';
/** LemonLDAP::NG's technical name of the provider. */
const OP = 'passerelle';
/** The session keys LemonLDAP::NG fills from Passerelle (Exported attributes: key → claim). */
const EXPORTED = { uid: 'sub', tid: 'tid', oid: 'oid', amr: 'amr', acr: 'acr' };

/** What LemonLDAP::NG sent to Passerelle's token endpoint. */
interface TokenRequest {
  params: string[];
  basic: boolean;
  codeVerifier: unknown;
}

if (!chromiumAvailable()) {
  missingChromiumSuite('LemonLDAP::NG as a broker of Passerelle');
} else if (!lemonLdapAvailable()) {
  missingComponentSuite('LemonLDAP::NG as a broker of Passerelle', 'LemonLDAP::NG', LEMONLDAP_MISSING);
} else {
  for (const kind of databasesUnderTest()) {
    describe(`LemonLDAP::NG 2.16 as an OpenID Connect broker of Passerelle [${kind}]`, () => {
      let t: TestServer;
      let browser: Browser;
      let llng: LemonLdap;
      let credential: VirtualCredential;
      let user: { id: string; username: string };
      const contexts: BrowserContext[] = [];
      const tokenRequests: TokenRequest[] = [];

      const onGrant = (ctx: KoaContextWithOIDC) => {
        if (ctx.oidc.client?.clientId !== CLIENT_ID) return;
        const body = (ctx.oidc.body ?? {}) as Record<string, unknown>;
        tokenRequests.push({
          params: Object.keys(body).sort(),
          basic: /^Basic /i.test(ctx.get('authorization')),
          codeVerifier: body.code_verifier,
        });
      };

      /** A new browser profile with the user's key. */
      const workstation = async (): Promise<Page> => {
        const context = await newFrenchContext(browser);
        contexts.push(context);
        const page = await context.newPage();
        await attachEnrolledKey(page, t.passerelle.services.database.db, credential);
        return page;
      };

      /** The session LemonLDAP::NG holds for this browser (its REST API), or the status when there is none. */
      const llngSession = async (page: Page, key = '') => {
        const response = await page.request.get(`${llng.portal}session/my/global${key && `/${key}`}`, {
          maxRedirects: 0,
        });
        const text = await response.text();
        return { status: response.status(), text, json: () => JSON.parse(text) as Record<string, unknown> };
      };

      /** Every URL the tab navigates to (each redirect included), from now on. */
      const recordNavigations = (page: Page): URL[] => {
        const urls: URL[] = [];
        page.on('request', (request) => {
          if (request.isNavigationRequest() && request.frame() === page.mainFrame()) {
            urls.push(new URL(request.url()));
          }
        });
        return urls;
      };

      /** LemonLDAP::NG's portal → Passerelle: identifier, the key (PIN and touch), back to LemonLDAP::NG. */
      const loginThroughLemonLdap = async (page: Page) => {
        await page.goto(llng.portal);
        await page.getByLabel(fr['login.username']).fill(user.username);
        await page.getByRole('button', { name: fr['login.continue'] }).click();
        await page.getByRole('button', { name: fr['webauthn.start'] }).click();
        // The callback (`?openidconnectcallback=1&code=…`) answers with the portal's menu, signed in.
        await page.waitForURL((url) => url.origin === new URL(llng.portal).origin);
      };

      /**
       * A LemonLDAP::NG portal whose OpenID Connect provider is Passerelle, registered there as `clientId` with
       * PSC's profile and what LemonLDAP::NG 2.16 can do: client_secret_post (its default), no PKCE, RS256 ID
       * tokens; `registration` changes that registration.
       */
      const startBroker = async (clientId: string, registration: Record<string, unknown> = {}) => {
        // The administrator pastes Passerelle's discovery document as the provider's metadata (the portal of
        // 2.16 does not fetch it) and lets LemonLDAP::NG download the JWKS from its jwks_uri.
        const configurationUri = `${t.issuer}/.well-known/openid-configuration`;
        const metadata = await (await fetch(configurationUri)).text();
        return startLemonLdap(async (urls) => ({
          opName: OP,
          opMetadata: metadata,
          opOptions: {
            oidcOPMetaDataOptionsConfigurationURI: configurationUri,
            oidcOPMetaDataOptionsClientID: clientId,
            oidcOPMetaDataOptionsClientSecret: await registerWebClient(t, clientId, {
              redirect_uris: [urls.redirectUri],
              post_logout_redirect_uris: [urls.logoutUri],
              backchannel_logout_uri: `${urls.portal}oauth2/blogout`,
              token_endpoint_auth_method: 'client_secret_post',
              id_token_signed_response_alg: 'RS256',
              pkce_required: false,
              psc_establishment: ESTABLISHMENT.finess,
              first_party: true,
              scope: 'openid profile',
              ...registration,
            }),
            oidcOPMetaDataOptionsJWKSTimeout: 3600,
            oidcOPMetaDataOptionsStoreIDToken: 1,
          },
          exportedVars: EXPORTED,
          conf: {
            customPlugins: 'Passerelle::IdTokenClaims',
            restSessionServer: 1,
            exportedAttr: `+ ${Object.keys(EXPORTED).join(' ')} _oidc_OP`,
          },
        }));
      };

      beforeAll(async () => {
        [t, browser] = await Promise.all([
          startTestServer(kind, {
            issuerHost: 'localhost',
            config: (issuer) => ({
              demo: true,
              webauthn: { rpId: 'localhost', origins: [issuer] },
              establishments: [ESTABLISHMENT],
            }),
          }),
          launchChromium(),
        ]);
        t.passerelle.services.host.provider.on('grant.success', onGrant);
        llng = await startBroker(CLIENT_ID);

        user = await createUser(t, 'cecile.sage');
        const context = await newFrenchContext(browser);
        try {
          const page = await context.newPage();
          await passwordLogin(page, t.issuer, user.username);
          const key = await VirtualKey.attach(page);
          const code = await new EnrollmentCodes(t.passerelle.services.database.db).issue(
            user.id,
            'test',
            600,
          );
          await enrollKey(page, t.issuer, 'Clé', code.code);
          const [enrolled] = await key.credentials();
          if (!enrolled) throw new Error('no credential enrolled');
          credential = enrolled;
        } finally {
          await context.close();
        }
      });
      afterAll(async () => {
        t?.passerelle.services.host.provider.off('grant.success', onGrant);
        for (const context of contexts) await context.close();
        await browser?.close();
        await llng?.close();
        await t?.close();
      });

      it('logs in with the FIDO2 key: the session of LemonLDAP::NG holds sub, tid, oid, amr and acr', async () => {
        const page = await workstation();
        const visited = recordNavigations(page);
        await loginThroughLemonLdap(page);

        // What LemonLDAP::NG asked: code flow, its default scope, state and nonce, and no PKCE.
        const authorization = visited.find((u) => u.origin === t.issuer && u.pathname === '/auth');
        expect(Object.fromEntries(authorization?.searchParams ?? [])).toEqual({
          response_type: 'code',
          client_id: CLIENT_ID,
          redirect_uri: llng.redirectUri,
          scope: 'openid profile',
          state: expect.any(String),
          nonce: expect.any(String),
          display: '',
        });
        // Its token request: client_secret_post, no code_verifier.
        expect(tokenRequests.at(-1)).toEqual({
          params: ['client_id', 'client_secret', 'code', 'grant_type', 'redirect_uri'],
          basic: false,
          codeVerifier: undefined,
        });

        const session = await llngSession(page);
        expect(session.status, llng.logs()).toBe(200);
        expect(session.json()).toMatchObject({
          _oidc_OP: OP,
          uid: user.id,
          tid: ESTABLISHMENT.tid,
          oid: user.id,
          // Multi-valued: joined with LemonLDAP::NG's multiValuesSeparator.
          amr: 'hwk; mfa; pin',
          acr: 'eidas1',
        });
        // The ID token LemonLDAP::NG verified (RS256) and stored: the same claims, signed by Passerelle.
        const idToken = (await llngSession(page, '_oidc_id_token')).text;
        expect(JSON.parse(Buffer.from(idToken.split('.')[0] ?? '', 'base64url').toString())).toMatchObject({
          alg: 'RS256',
        });
        expect(decodeJwt(idToken)).toMatchObject({
          iss: t.issuer,
          aud: CLIENT_ID,
          sub: user.id,
          tid: ESTABLISHMENT.tid,
          oid: user.id,
          amr: ['hwk', 'mfa', 'pin'],
          acr: 'eidas1',
        });
        // The REST routes on other people's sessions stay closed by the package's nginx sample.
        const id = String(session.json()._session_id);
        expect((await page.request.get(`${llng.portal}sessions/global/${id}`)).status()).toBe(403);
      });

      it('logout at LemonLDAP::NG ends the Passerelle session (RP-initiated logout with id_token_hint)', async () => {
        const page = await workstation();
        await loginThroughLemonLdap(page);
        const idToken = (await llngSession(page, '_oidc_id_token')).text;
        const logsBefore = t.logs.length;
        const visited = recordNavigations(page);
        await page.goto(llng.logoutUri);
        // Passerelle's end_session asks for confirmation, as for any client.
        await page.getByRole('button', { name: fr['logout.confirm'] }).click();
        await page.waitForURL(llng.logoutUri);
        await page.getByText('Vous avez été déconnecté').waitFor();

        const endSession = visited.find((u) => u.origin === t.issuer && u.pathname === '/session/end');
        expect(Object.fromEntries(endSession?.searchParams ?? [])).toEqual({
          id_token_hint: idToken,
          post_logout_redirect_uri: llng.logoutUri,
          client_id: CLIENT_ID,
        });
        expect((await llngSession(page)).status).not.toBe(200);
        // LemonLDAP::NG asked for this logout: no back-channel logout token was sent to it.
        expect(t.logs.slice(logsBefore).join('')).not.toContain('back-channel logout delivery failed');
        // Passerelle's session is over: LemonLDAP::NG's portal sends the browser to Passerelle, which asks
        // who is there.
        await page.goto(llng.portal);
        await page.getByLabel(fr['login.username']).waitFor();
        expect(new URL(page.url()).origin).toBe(t.issuer);
      });

      it('logout at Passerelle does not reach LemonLDAP::NG 2.16: its back-channel URI answers 501, its session stays', async () => {
        const page = await workstation();
        await loginThroughLemonLdap(page);
        const before = await llngSession(page);
        expect(before.status).toBe(200);
        const logsBefore = t.logs.length;

        await page.goto(`${t.issuer}/session/end`);
        await page.getByRole('button', { name: fr['logout.confirm'] }).click();
        await page.getByText(fr['logout.done']).waitFor();

        // Passerelle sent its logout token to the relying party's back-channel route of LemonLDAP::NG, which
        // is "not implemented" in 2.16 (documented: a logout initiated by the provider is not propagated).
        expect(t.logs.slice(logsBefore).join('')).toContain(
          `expected 200 OK from ${llng.portal}oauth2/blogout, got: 501 Not Implemented`,
        );
        const after = await llngSession(page);
        expect(after.status).toBe(200);
        expect(after.json()._session_id).toBe(before.json()._session_id);
        // Nor does it implement the front-channel route (which Passerelle does not offer anyway).
        const frontChannel = await page.request.get(`${llng.portal}oauth2/flogout`);
        expect(frontChannel.status()).toBe(501);
        expect(await frontChannel.text()).toContain('Front Channel logout is not implemented');
      });

      it("registered with PKCE required (Passerelle's default), LemonLDAP::NG 2.16 is refused: it sends no code_challenge", async () => {
        const strict = await startBroker('lemonldap-pkce', { pkce_required: undefined });
        try {
          const page = await workstation();
          const visited = recordNavigations(page);
          await page.goto(strict.portal);
          await page.getByText("Erreur pendant l'authentification auprès du fournisseur OpenID").waitFor();
          const callback = visited.find(
            (u) => u.origin === new URL(strict.portal).origin && u.searchParams.has('openidconnectcallback'),
          );
          expect(callback?.searchParams.get('error')).toBe('invalid_request');
          expect(callback?.searchParams.get('error_description')).toMatch(/PKCE/);
          // Nothing was asked of the user: refused before any login page.
          expect(visited.filter((u) => u.origin === t.issuer).map((u) => u.pathname)).toEqual(['/auth']);
        } finally {
          await strict.close();
        }
      });

      it("with ES256 ID tokens (Passerelle's default), LemonLDAP::NG 2.16 refuses the login: it verifies HS* and RS* only", async () => {
        const es256 = await startBroker('lemonldap-es256', { id_token_signed_response_alg: undefined });
        try {
          const page = await workstation();
          await page.goto(es256.portal);
          await page.getByLabel(fr['login.username']).fill(user.username);
          await page.getByRole('button', { name: fr['login.continue'] }).click();
          await page.getByRole('button', { name: fr['webauthn.start'] }).click();
          await page.getByText("Erreur pendant l'authentification auprès du fournisseur OpenID").waitFor();
          expect(es256.logs()).toContain('JWT signature verification failed');
          expect(
            (await page.request.get(`${es256.portal}session/my/global`, { maxRedirects: 0 })).status(),
          ).not.toBe(200);
        } finally {
          await es256.close();
        }
      });
    });
  }
}
