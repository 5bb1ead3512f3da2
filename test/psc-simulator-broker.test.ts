import { createHash } from 'node:crypto';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import type * as oidc from 'openid-client';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BrowserAgent } from './helpers/browser-agent.ts';
import type { FiOptions, RefusalReason } from './simulators/psc/federation.ts';
import { LOGIN_MESSAGES } from './simulators/psc/pages.ts';
import { type ScriptedFi, startScriptedFi } from './simulators/psc/scripted-fi.ts';
import { type PscSimulator, startPscSimulator } from './simulators/psc/server.ts';
import {
  ALIAS,
  FI_CLIENT,
  SERVICE,
  STRONG_USER,
  serviceConfiguration,
  serviceLogin,
  submit,
  TENANT,
} from './simulators/psc/testing.ts';

/**
 * The simulator's broker against a scripted FI, option by option, as Keycloak's OIDC identity provider
 * behaves (/work/shared/reference/keycloak-broker.md): what the FI receives (authorization request, token
 * request, userinfo call) and what PSC does with each answer. The assertions are on what the FI received
 * and on where the browser lands, not on the broker's internals.
 */

/** A secret whose URL encoding differs from itself (RFC 6749 §2.3.1 form encoding). */
const SPECIAL_SECRET = 'psc+secret:%/~';
const HMAC_SECRET = 'a-client-secret-long-enough-for-hs256-0123456789';

const basicCredentials = (authorization: string | undefined) =>
  Buffer.from((authorization ?? '').replace(/^Basic /, ''), 'base64').toString('utf8');

describe("PSC simulator's broker, as Keycloak's", () => {
  let psc: PscSimulator;
  let fi: ScriptedFi;
  let config: oidc.Configuration;
  let origin: string;
  const nowSeconds = () => Math.floor(Date.now() / 1000);

  beforeAll(async () => {
    psc = await startPscSimulator({ clients: [SERVICE] });
    origin = new URL(psc.issuer).origin;
    const redirectUris = [psc.brokerRedirectUri(ALIAS)];
    fi = await startScriptedFi({
      clients: [
        { ...FI_CLIENT, redirectUris },
        { clientId: 'psc-basic', clientSecret: SPECIAL_SECRET, redirectUris },
        {
          clientId: 'psc-jwt',
          tokenEndpointAuthMethod: 'private_key_jwt',
          jwksUri: `${psc.issuer}/protocol/openid-connect/certs`,
          redirectUris,
        },
        {
          clientId: 'psc-hmac',
          clientSecret: HMAC_SECRET,
          tokenEndpointAuthMethod: 'client_secret_jwt',
          redirectUris,
        },
        {
          clientId: 'psc-jwt-userinfo',
          clientSecret: FI_CLIENT.clientSecret,
          userinfoSigned: true,
          redirectUris,
        },
        { clientId: 'psc-pkce', clientSecret: FI_CLIENT.clientSecret, pkceRequired: true, redirectUris },
      ],
      user: STRONG_USER,
    });
    config = await serviceConfiguration(psc);
  });
  afterAll(async () => {
    await psc.close();
    await fi.close();
  });
  beforeEach(() => {
    fi.user = { ...STRONG_USER };
    fi.faults = {};
    configure({});
  });

  /** The FI entry at PSC: Keycloak's defaults, with `options`. */
  function configure(options: Partial<FiOptions>) {
    psc.addFi({
      alias: ALIAS,
      discoveryUrl: fi.issuer,
      ...FI_CLIENT,
      tidAllowList: [TENANT],
      amrAllowList: ['hwk', 'mfa'],
      ...options,
    });
  }

  /**
   * A new browser: the service's request to PSC (kc_idp_hint and `extra`), to the FI and back to PSC's
   * broker endpoint; where the browser then lands (a PSC page, the service, or the FI again).
   */
  async function delegated(extra: Record<string, string> = {}) {
    const agent = new BrowserAgent();
    const login = await serviceLogin(config, { kc_idp_hint: ALIAS, ...extra });
    const requests = fi.authorizationRequests.length;
    const toFi = await agent.follow(login.url, origin);
    const sent = fi.authorizationRequests.length > requests ? fi.authorizationRequests.at(-1) : undefined;
    if (toFi.url.origin !== fi.issuer) return { agent, login, toFi, sent, back: undefined, page: toFi };
    const back = await agent.follow(toFi.url, fi.issuer);
    const page = await agent.follow(back.url, origin);
    return { agent, login, toFi, sent: fi.authorizationRequests.at(-1), back, page };
  }

  /** A delegated login that PSC accepted: the pairing page. */
  async function accepted(extra: Record<string, string> = {}) {
    const events = psc.events.length;
    const step = await delegated(extra);
    expect(psc.events.length).toBeGreaterThan(events);
    expect(psc.events.at(-1)).toMatchObject({ kind: 'accepted', login: { alias: ALIAS, oid: 'oid-42' } });
    expect(step.page.response?.status).toBe(200);
    expect(step.agent.lastHtml).toContain('Appairage de votre compte');
    return step;
  }

  /** A delegated login that PSC refused with `reason` on its `status` page. */
  async function refused(reason: RefusalReason, status = 502) {
    const events = psc.events.length;
    const step = await delegated();
    expect(psc.events.length).toBeGreaterThan(events);
    expect(psc.events.at(-1)).toMatchObject({ kind: 'refused', alias: ALIAS, reason, status });
    expect(step.page.response?.status).toBe(status);
    if (status === 502) expect(step.agent.lastHtml).toContain('Erreur inattendue');
    return step;
  }

  describe('authorization request (§1)', () => {
    it('with the defaults: code flow, Keycloak redirect URI, scope openid, long state, nonce, acr_values and prompt forwarded, nothing else', async () => {
      const step = await accepted({
        prompt: 'login',
        login_hint: 'alice',
        max_age: '3600',
        ui_locales: 'en',
      });
      const sent = step.sent ?? {};
      expect(Object.keys(sent).sort()).toEqual(
        [
          'acr_values',
          'client_id',
          'nonce',
          'prompt',
          'redirect_uri',
          'response_type',
          'scope',
          'state',
        ].sort(),
      );
      expect(sent).toMatchObject({
        response_type: 'code',
        client_id: FI_CLIENT.clientId,
        redirect_uri: `${psc.issuer}/broker/${ALIAS}/endpoint`,
        scope: 'openid',
        acr_values: 'eidas1',
        prompt: 'login',
      });
      // <code>.<tabId>.<client>.<clientData>: long, with dots, returned unchanged.
      expect(sent.state?.length).toBeGreaterThan(100);
      expect(sent.state?.split('.')).toHaveLength(4);
      expect(step.back?.url.searchParams.get('state')).toBe(sent.state);
      expect(sent.nonce).toMatch(/^[A-Za-z0-9_-]{22}$/);
      expect(step.toFi.url.pathname).toBe('/auth');
    });

    it('with requiresShortStateParameter: a state without clientData (also Keycloak before 26.0)', async () => {
      configure({ requiresShortStateParameter: true });
      const step = await accepted();
      expect(step.sent?.state?.split('.')).toHaveLength(3);
      expect(step.sent?.state?.length).toBeLessThan(100);
      expect(step.back?.url.searchParams.get('state')).toBe(step.sent?.state);
    });

    it('refuses a state whose login part was altered (400), whatever its clientData', async () => {
      const agent = new BrowserAgent();
      const toFi = await agent.follow((await serviceLogin(config, { kc_idp_hint: ALIAS })).url, origin);
      const state = toFi.url.searchParams.get('state') ?? '';
      const [code, tab, client, data] = state.split('.');
      const altered = `${code}x.${tab}.${client}.${data}`;
      await agent.follow(`${psc.brokerRedirectUri(ALIAS)}?code=c&state=${altered}`, origin);
      expect(psc.events.at(-1)).toMatchObject({ kind: 'refused', reason: 'state_unknown', status: 400 });
    });

    it('login_hint, max_age and ui_locales (PSC locale) only when switched on', async () => {
      configure({ loginHint: true, passMaxAge: true, uiLocales: true });
      const step = await accepted({ login_hint: 'alice@chu', max_age: '3600', ui_locales: 'en' });
      expect(step.sent).toMatchObject({ login_hint: 'alice@chu', max_age: '3600', ui_locales: 'fr' });
    });

    it('forwardParameters names what is copied; empty: no acr_values, unless acrValuesAlwaysForwarded (older Keycloak)', async () => {
      configure({ forwardParameters: '' });
      expect((await accepted()).sent?.acr_values).toBeUndefined();
      configure({ forwardParameters: '', acrValuesAlwaysForwarded: true });
      expect((await accepted()).sent?.acr_values).toBe('eidas1');
      configure({ forwardParameters: 'login_hint' });
      const sent = (await accepted({ login_hint: 'bob' })).sent;
      expect(sent?.login_hint).toBe('bob');
      expect(sent?.acr_values).toBeUndefined();
    });

    it('a configured prompt wins over the service; defaultScope gets openid prepended', async () => {
      configure({ prompt: 'login', defaultScope: 'profile email' });
      const step = await accepted();
      expect(step.sent).toMatchObject({ prompt: 'login', scope: 'openid profile email' });
    });

    it('disableNonce: no nonce sent, none expected', async () => {
      configure({ disableNonce: true });
      const step = await accepted();
      expect(step.sent?.nonce).toBeUndefined();
    });

    it("a service's prompt=none without PSC session: login_required at once, unless acceptsPromptNoneForwardFromClient", async () => {
      const before = fi.authorizationRequests.length;
      const plain = await delegated({ prompt: 'none' });
      expect(fi.authorizationRequests).toHaveLength(before);
      expect(plain.page.url.searchParams.get('error')).toBe('login_required');

      configure({ acceptsPromptNoneForwardFromClient: true });
      const forwarded = await delegated({ prompt: 'none' });
      expect(forwarded.sent?.prompt).toBe('none');
      // The FI has no session for this browser: login_required, returned to the service as is.
      expect(forwarded.page.url.origin).toBe(new URL(SERVICE.redirectUris[0] as string).origin);
      expect(forwarded.page.url.searchParams.get('error')).toBe('login_required');
      expect(forwarded.page.url.searchParams.get('state')).toBe(forwarded.login.state);
      expect(psc.events.at(-1)).toMatchObject({
        kind: 'fi-error',
        error: 'login_required',
        handling: 'service',
      });
    });
  });

  describe('PKCE and client authentication at the token endpoint (§2)', () => {
    it('by default: client_secret_post, no PKCE (form grant_type, code, redirect_uri, client_id, client_secret)', async () => {
      const step = await accepted();
      expect(step.sent?.code_challenge).toBeUndefined();
      const request = fi.tokenRequests.at(-1);
      expect(request?.authorization).toBeUndefined();
      expect(request?.params).toEqual({
        grant_type: 'authorization_code',
        code: step.back?.url.searchParams.get('code'),
        redirect_uri: psc.brokerRedirectUri(ALIAS),
        client_id: FI_CLIENT.clientId,
        client_secret: FI_CLIENT.clientSecret,
      });
    });

    it('an FI that requires PKCE refuses the default request: PSC shows its login page with the unexpected-error message', async () => {
      configure({ clientId: 'psc-pkce' });
      const step = await delegated();
      expect(step.sent?.code_challenge).toBeUndefined();
      expect(psc.events.at(-1)).toMatchObject({
        kind: 'fi-error',
        error: 'invalid_request',
        handling: 'login_page',
      });
      expect(step.page.response?.status).toBe(200);
      expect(step.agent.lastHtml).toContain(LOGIN_MESSAGES.unexpected.replaceAll("'", '&#39;'));
      expect(step.agent.lastHtml).toContain('/cps"');
    });

    for (const method of [undefined, 'plain', 'S256'] as const) {
      it(`pkceEnabled with pkceMethod ${method ?? 'unset (plain, the console preselection)'}: challenge sent, verifier at the token call, checked by the FI`, async () => {
        configure({ clientId: 'psc-pkce', pkceEnabled: true, pkceMethod: method });
        const step = await accepted();
        const verifier = String(fi.tokenRequests.at(-1)?.params.code_verifier);
        expect(verifier).toMatch(/^[A-Za-z0-9_-]{43,128}$/);
        expect(step.sent?.code_challenge_method).toBe(method ?? 'plain');
        expect(step.sent?.code_challenge).toBe(
          method === 'S256' ? createHash('sha256').update(verifier).digest('base64url') : verifier,
        );
      });
    }

    it('client_secret_basic: Basic base64(urlencode(id):urlencode(secret))', async () => {
      configure({
        clientId: 'psc-basic',
        clientSecret: SPECIAL_SECRET,
        clientAuthMethod: 'client_secret_basic',
      });
      await accepted();
      const request = fi.tokenRequests.at(-1);
      expect(basicCredentials(request?.authorization)).toBe('psc-basic:psc%2Bsecret%3A%25%2F%7E');
      expect(request?.params.client_secret).toBeUndefined();
      expect(request?.params.client_id).toBeUndefined();
    });

    it('client_secret_basic_unencoded (older Keycloak): raw values, which an RFC-decoding FI refuses when the secret has + or %', async () => {
      configure({ clientAuthMethod: 'client_secret_basic_unencoded' });
      await accepted();
      expect(basicCredentials(fi.tokenRequests.at(-1)?.authorization)).toBe('psc:psc-secret');
      configure({
        clientId: 'psc-basic',
        clientSecret: SPECIAL_SECRET,
        clientAuthMethod: 'client_secret_basic_unencoded',
      });
      await refused('token_error');
      expect(basicCredentials(fi.tokenRequests.at(-1)?.authorization)).toBe(`psc-basic:${SPECIAL_SECRET}`);
      expect(fi.tokenRequests.at(-1)?.status).toBeGreaterThanOrEqual(400);
    });

    it("private_key_jwt: RS256 with PSC's realm key (in its certs), aud the token URL, exp = iat + 60", async () => {
      configure({ clientId: 'psc-jwt', clientSecret: undefined, clientAuthMethod: 'private_key_jwt' });
      await accepted();
      const request = fi.tokenRequests.at(-1);
      const params = request?.params ?? {};
      const authorization = request?.authorization;
      expect(authorization).toBeUndefined();
      expect(params).toMatchObject({
        client_id: 'psc-jwt',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      });
      expect(params.client_secret).toBeUndefined();
      const assertion = String(params.client_assertion);
      expect(decodeProtectedHeader(assertion)).toMatchObject({
        alg: 'RS256',
        typ: 'JWT',
        kid: expect.any(String),
      });
      const certs = createRemoteJWKSet(new URL(`${psc.issuer}/protocol/openid-connect/certs`));
      const { payload } = await jwtVerify(assertion, certs);
      expect(payload).toMatchObject({ iss: 'psc-jwt', sub: 'psc-jwt', aud: `${fi.issuer}/token` });
      expect(payload.jti).toEqual(expect.any(String));
      expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBe(60);
    });

    it('private_key_jwt with clientAssertionAudience and ES256', async () => {
      configure({
        clientId: 'psc-jwt',
        clientAuthMethod: 'private_key_jwt',
        clientAssertionSigningAlg: 'ES256',
        clientAssertionAudience: fi.issuer,
      });
      await accepted();
      const assertion = String(fi.tokenRequests.at(-1)?.params.client_assertion);
      expect(decodeProtectedHeader(assertion).alg).toBe('ES256');
      expect(decodeJwt(assertion).aud).toBe(fi.issuer);
    });

    it('client_secret_jwt: HS256 with the client secret', async () => {
      configure({ clientId: 'psc-hmac', clientSecret: HMAC_SECRET, clientAuthMethod: 'client_secret_jwt' });
      await accepted();
      const assertion = String(fi.tokenRequests.at(-1)?.params.client_assertion);
      expect(decodeProtectedHeader(assertion)).toEqual({ alg: 'HS256', typ: 'JWT' });
      expect(decodeJwt(assertion)).toMatchObject({
        iss: 'psc-hmac',
        sub: 'psc-hmac',
        aud: `${fi.issuer}/token`,
      });
    });
  });

  describe('token response, ID token, userinfo (§3)', () => {
    it('token endpoint: 2xx/3xx accepted, an error status or a missing token refused (502)', async () => {
      fi.faults.tokenResponse = { status: 201 };
      await accepted();
      fi.faults.tokenResponse = { status: 500 };
      await refused('token_error');
      fi.faults.tokenResponse = { omit: ['id_token'] };
      await refused('id_token_missing');
      fi.faults.tokenResponse = { omit: ['access_token'] };
      await refused('access_token_missing');
    });

    it('signature: checked by default (validateSignature from the discovery import), not with validateSignature false', async () => {
      fi.faults.foreignKeys = true;
      await refused('bad_signature');
      configure({ validateSignature: false });
      await accepted();
    });

    it('iss: exact match against the discovered issuer or a configured list; not checked when issuer is empty', async () => {
      fi.faults.idTokenClaims = { iss: `${fi.issuer}/` };
      await refused('iss_mismatch');
      configure({ issuer: `https://other.test, ${fi.issuer}/` });
      await accepted();
      configure({ issuer: '' });
      fi.faults.idTokenClaims = { iss: 'https://anything.test' };
      await accepted();
    });

    it('aud must contain the client id; azp, if present, must equal it', async () => {
      fi.faults.idTokenClaims = { aud: 'someone-else' };
      await refused('aud_mismatch');
      fi.faults.idTokenClaims = { aud: ['someone-else', FI_CLIENT.clientId] };
      await accepted();
      fi.faults.idTokenClaims = { azp: 'someone-else' };
      await refused('azp_mismatch');
      fi.faults.idTokenClaims = { azp: FI_CLIENT.clientId };
      await accepted();
    });

    it('exp without skew (allowedClockSkew does not apply); nbf with allowedClockSkew; iat not checked', async () => {
      fi.faults.idTokenClaims = { exp: nowSeconds() - 2 };
      await refused('token_expired');
      configure({ allowedClockSkew: 300 });
      await refused('token_expired');
      fi.faults.idTokenClaims = { nbf: nowSeconds() + 60 };
      configure({});
      await refused('token_not_yet_valid');
      configure({ allowedClockSkew: 120 });
      await accepted();
      fi.faults.idTokenClaims = { iat: nowSeconds() + 3600, exp: nowSeconds() + 7200 };
      await accepted();
    });

    it('nonce must be the one sent', async () => {
      fi.faults.idTokenClaims = { nonce: undefined };
      await refused('nonce_mismatch');
    });

    it('auth_time is checked against the service max_age only with passMaxAge', async () => {
      fi.faults.idTokenClaims = { auth_time: nowSeconds() - 1200 };
      await accepted({ max_age: '600' });
      configure({ passMaxAge: true });
      const step = await delegated({ max_age: '600' });
      expect(step.sent?.max_age).toBe('600');
      expect(psc.events.at(-1)).toMatchObject({ kind: 'refused', reason: 'auth_time_expired', status: 502 });
    });

    it('userinfo: a GET with the access token as Bearer, JSON; same sub required', async () => {
      const step = await accepted();
      expect(step.sent).toBeDefined();
      expect(fi.userinfoRequests.at(-1)?.authorization).toMatch(/^Bearer \S+$/);
      expect(psc.events.at(-1)).toMatchObject({
        kind: 'accepted',
        login: { userinfo: { sub: STRONG_USER.sub } },
      });
      fi.faults.userinfo = { claims: { sub: 'someone-else' } };
      await refused('userinfo_sub_mismatch');
      fi.faults.userinfo = { status: 500 };
      await refused('userinfo_error');
      fi.faults.userinfo = { status: 201 };
      await refused('userinfo_error');
      fi.faults.userinfo = { contentType: 'text/plain' };
      await refused('userinfo_error');
    });

    it('userinfo as a signed JWT (application/jwt), verified like the ID token', async () => {
      configure({ clientId: 'psc-jwt-userinfo' });
      await accepted();
      expect(psc.events.at(-1)).toMatchObject({
        kind: 'accepted',
        login: { userinfo: { sub: STRONG_USER.sub } },
      });
      fi.faults.userinfo = { claims: { sub: 'someone-else' } };
      await refused('userinfo_sub_mismatch');
    });

    it('disableUserInfo: no userinfo call', async () => {
      configure({ disableUserInfo: true });
      const calls = fi.userinfoRequests.length;
      await accepted();
      expect(fi.userinfoRequests).toHaveLength(calls);
    });

    it('claim filter: a top-level ID-token claim matching a regex (any element of an array)', async () => {
      configure({ filteredByClaim: true, claimFilterName: 'tid', claimFilterValue: 'tenant-.*' });
      await accepted();
      configure({ filteredByClaim: true, claimFilterName: 'amr', claimFilterValue: 'hw.' });
      await accepted();
      configure({ filteredByClaim: true, claimFilterName: 'tid', claimFilterValue: 'tenant' });
      await refused('claim_filter');
    });
  });

  describe('errors returned by the FI on the redirect (§7)', () => {
    it("access_denied: back to PSC's login page with « Accès refusé », the hint not followed again; cancel gives the service access_denied", async () => {
      fi.faults.deny = true;
      const before = fi.authorizationRequests.length;
      const step = await delegated();
      expect(fi.authorizationRequests).toHaveLength(before + 1);
      expect(step.page.response?.status).toBe(200);
      expect(step.agent.lastHtml).toContain(LOGIN_MESSAGES.accessDenied);
      expect(step.agent.lastHtml).toContain('/cps"');
      expect(psc.events.at(-1)).toMatchObject({
        kind: 'fi-error',
        clientId: SERVICE.clientId,
        error: 'access_denied',
        handling: 'login_page',
      });
      const back = await submit(psc, { ...step, page: step.page }, '/abort');
      expect(back.url.searchParams.get('error')).toBe('access_denied');
    });

    for (const error of ['login_required', 'interaction_required']) {
      it(`${error}: returned to the service as the same error`, async () => {
        fi.faults.errors = [{ error }];
        const step = await delegated();
        expect(step.page.url.href.startsWith(SERVICE.redirectUris[0] as string)).toBe(true);
        expect(step.page.url.searchParams.get('error')).toBe(error);
        expect(step.page.url.searchParams.get('state')).toBe(step.login.state);
        expect(psc.events.at(-1)).toMatchObject({ kind: 'fi-error', error, handling: 'service' });
      });
    }

    it('temporarily_unavailable with authentication_expired: the login at the FI restarts', async () => {
      fi.faults.errors = [{ error: 'temporarily_unavailable', error_description: 'authentication_expired' }];
      const step = await delegated();
      // PSC sent the browser to the FI again, with a new state.
      expect(step.page.url.origin).toBe(fi.issuer);
      const state = step.page.url.searchParams.get('state');
      expect(state).not.toBe(step.sent?.state);
      expect(psc.events.at(-1)).toMatchObject({
        kind: 'fi-error',
        error: 'temporarily_unavailable',
        handling: 'restarted',
      });
      const back = await step.agent.follow(step.page.url, fi.issuer);
      expect(fi.authorizationRequests.at(-1)?.state).toBe(state);
      await step.agent.follow(back.url, origin);
      expect(step.agent.lastHtml).toContain('Appairage de votre compte');
      expect(psc.events.at(-1)).toMatchObject({ kind: 'accepted' });
    });

    for (const error of ['consent_required', 'server_error', 'temporarily_unavailable']) {
      it(`${error}: PSC's login page with the unexpected-error message`, async () => {
        fi.faults.errors = [{ error }];
        const step = await delegated();
        expect(step.page.response?.status).toBe(200);
        expect(step.agent.lastHtml).toContain('Erreur inattendue');
        expect(psc.events.at(-1)).toMatchObject({ kind: 'fi-error', error, handling: 'login_page' });
      });
    }

    it('no state, or neither code nor error: the 502 page', async () => {
      const agent = new BrowserAgent();
      const toFi = await agent.follow((await serviceLogin(config, { kc_idp_hint: ALIAS })).url, origin);
      const state = toFi.url.searchParams.get('state') ?? '';
      const noState = await agent.follow(`${psc.brokerRedirectUri(ALIAS)}?code=abc`, origin);
      expect(noState.response?.status).toBe(502);
      expect(psc.events.at(-1)).toMatchObject({ kind: 'refused', reason: 'state_missing' });
      const noCode = await agent.follow(
        `${psc.brokerRedirectUri(ALIAS)}?state=${encodeURIComponent(state)}`,
        origin,
      );
      expect(noCode.response?.status).toBe(502);
      expect(psc.events.at(-1)).toMatchObject({
        kind: 'refused',
        reason: 'code_missing',
        clientId: SERVICE.clientId,
      });
    });
  });
});
