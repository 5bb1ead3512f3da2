import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { messages } from '../src/i18n/messages.ts';
import { BrowserAgent, browserLogin } from './helpers/browser-agent.ts';
import {
  authorizationRequest,
  authUrl,
  basicAuthorization,
  createUser,
  discover,
  REDIRECT,
  rawGet,
  rawPost,
  redeemCode,
  registerPublicClient,
  registerWebClient,
  S256_CHALLENGE,
  TEST_PASSWORD,
} from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { errorText } from './helpers/pages.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

const ALICE = { username: 'alice', password: TEST_PASSWORD };

for (const kind of databasesUnderTest()) {
  describe(`protocol errors and refusals [${kind}]`, () => {
    let t: TestServer;
    let secret: string;
    let legacySecret: string;

    beforeAll(async () => {
      t = await startTestServer(kind);
      await createUser(t, 'alice');
      secret = await registerWebClient(t, 'dpi', { client_name: 'Dossier patient', first_party: true });
      legacySecret = await registerWebClient(t, 'legacy', {
        grant_types: ['authorization_code'],
        scope: 'openid profile',
        pkce_required: false,
        first_party: true,
      });
      await registerPublicClient(t, 'mobile', { scope: 'openid offline_access', first_party: true });
    });
    afterAll(async () => {
      await t?.close();
    });

    it('an unregistered redirect_uri gets an error page, never a redirect', async () => {
      const candidates = [
        'https://evil.example/callback',
        `${REDIRECT}/`,
        'https://app.hopital.test/Callback',
        'https://APP.hopital.test/callback',
        `${REDIRECT}?next=https://evil.example`,
        `${REDIRECT}#x`,
        'https://app.hopital.test/callback/..;/..;/evil',
        'https://app.hopital.test/evil/..;/callback',
        'https://app.hopital.test@evil.example/callback',
        'https://evil.example@app.hopital.test/callback',
        'http://app.hopital.test/callback',
        'https://app.hopital.test:8443/callback',
      ];
      for (const redirectUri of candidates) {
        const response = await rawGet(
          authUrl(t, {
            client_id: 'dpi',
            redirect_uri: redirectUri,
            response_type: 'code',
            scope: 'openid',
            state: 'st',
            code_challenge: S256_CHALLENGE,
            code_challenge_method: 'S256',
          }),
        );
        expect(response.status, redirectUri).toBe(400);
        expect(response.headers.get('location'), redirectUri).toBeNull();
        expect(response.headers.get('content-type'), redirectUri).toMatch(/^text\/html/);
        expect(errorText(response.text), redirectUri).toBe(messages.fr['error.engine.invalid_redirect_uri']);
      }
      // Control: the registered URI itself is accepted (the request goes on to the login page).
      const ok = await rawGet(
        authUrl(t, {
          client_id: 'dpi',
          redirect_uri: REDIRECT,
          response_type: 'code',
          scope: 'openid',
          code_challenge: S256_CHALLENGE,
          code_challenge_method: 'S256',
        }),
      );
      expect(ok.status).toBe(303);
      expect(ok.headers.get('location')).toMatch(/^\/interaction\//);
    });

    it('a reused authorization code fails with invalid_grant and revokes what the first exchange issued', async () => {
      const config = await discover(t, 'dpi', oidc.ClientSecretBasic(secret));
      const pending = await authorizationRequest(config, REDIRECT);
      const { callback } = await browserLogin(new BrowserAgent(), pending.url, t.issuer, ALICE);
      const checks = {
        pkceCodeVerifier: pending.verifier,
        expectedState: pending.state,
        expectedNonce: pending.nonce,
      };
      const first = await oidc.authorizationCodeGrant(config, callback, checks);
      expect((await oidc.tokenIntrospection(config, first.access_token)).active).toBe(true);
      expect(await oidc.fetchUserInfo(config, first.access_token, oidc.skipSubjectCheck)).toHaveProperty(
        'sub',
      );

      await expect(oidc.authorizationCodeGrant(config, callback, checks)).rejects.toMatchObject({
        error: 'invalid_grant',
        status: 400,
      });
      expect((await oidc.tokenIntrospection(config, first.access_token)).active).toBe(false);
      expect((await oidc.tokenIntrospection(config, first.refresh_token ?? '')).active).toBe(false);
      await expect(
        oidc.fetchUserInfo(config, first.access_token, oidc.skipSubjectCheck),
      ).rejects.toMatchObject({ status: 401 });
      await expect(oidc.refreshTokenGrant(config, first.refresh_token ?? '')).rejects.toMatchObject({
        error: 'invalid_grant',
      });
    });

    it('a public client without code_challenge gets invalid_request at its redirect_uri, with iss', async () => {
      const config = await discover(t, 'mobile', oidc.None());
      const url = oidc.buildAuthorizationUrl(config, {
        redirect_uri: REDIRECT,
        scope: 'openid',
        state: 'st-1',
      });
      const response = await rawGet(url);
      expect(response.status).toBe(303);
      const location = new URL(response.headers.get('location') ?? '');
      expect(location.origin + location.pathname).toBe(REDIRECT);
      expect(location.searchParams.get('error')).toBe('invalid_request');
      expect(location.searchParams.get('error_description')).toMatch(/PKCE/);
      expect(location.searchParams.get('state')).toBe('st-1');
      expect(location.searchParams.get('iss')).toBe(t.issuer);
      expect(location.searchParams.get('code')).toBeNull();
    });

    it('code_challenge_method=plain is refused', async () => {
      const response = await rawGet(
        authUrl(t, {
          client_id: 'mobile',
          redirect_uri: REDIRECT,
          response_type: 'code',
          scope: 'openid',
          state: 'st-2',
          code_challenge: 'a'.repeat(43),
          code_challenge_method: 'plain',
        }),
      );
      expect(response.status).toBe(303);
      const location = new URL(response.headers.get('location') ?? '');
      expect(location.origin + location.pathname).toBe(REDIRECT);
      expect(location.searchParams.get('error')).toBe('invalid_request');
      expect(location.searchParams.get('error_description')).toMatch(/code_challenge_method/);
      expect(location.searchParams.get('iss')).toBe(t.issuer);
      expect(location.searchParams.get('code')).toBeNull();
    });

    it('a code_verifier for a code issued without code_challenge fails with invalid_grant', async () => {
      const config = await discover(t, 'legacy', oidc.ClientSecretBasic(legacySecret));
      const login = async () => {
        const state = oidc.randomState();
        const url = oidc.buildAuthorizationUrl(config, { redirect_uri: REDIRECT, scope: 'openid', state });
        expect(url.searchParams.has('code_challenge')).toBe(false);
        const { callback } = await browserLogin(new BrowserAgent(), url, t.issuer, ALICE);
        return { callback, state };
      };

      const withVerifier = await login();
      await expect(
        oidc.authorizationCodeGrant(config, withVerifier.callback, {
          pkceCodeVerifier: oidc.randomPKCECodeVerifier(),
          expectedState: withVerifier.state,
        }),
      ).rejects.toMatchObject({ error: 'invalid_grant', status: 400 });

      // Control: the same client without code_verifier redeems its code.
      const plain = await login();
      const tokens = await oidc.authorizationCodeGrant(config, plain.callback, {
        expectedState: plain.state,
      });
      expect(tokens.access_token).toBeTruthy();
    });

    it('a wrong client secret gets 401 invalid_client and leaves the code unspent', async () => {
      const config = await discover(t, 'dpi', oidc.ClientSecretBasic(secret));
      const pending = await authorizationRequest(config, REDIRECT);
      const { callback } = await browserLogin(new BrowserAgent(), pending.url, t.issuer, ALICE);
      const form = {
        grant_type: 'authorization_code',
        code: callback.searchParams.get('code') ?? '',
        redirect_uri: REDIRECT,
        code_verifier: pending.verifier,
      };
      const wrong = await rawPost(t, '/token', form, {
        authorization: basicAuthorization('dpi', `${secret}x`),
      });
      expect(wrong.status).toBe(401);
      expect(wrong.json?.error).toBe('invalid_client');
      expect(wrong.json).not.toHaveProperty('access_token');

      // Same through openid-client.
      const badConfig = await discover(t, 'dpi', oidc.ClientSecretBasic('not-the-secret'));
      await expect(redeemCode(badConfig, pending, callback)).rejects.toMatchObject({
        status: 401,
        cause: [{ scheme: 'basic', parameters: { error: 'invalid_client' } }],
      });

      const right = await rawPost(t, '/token', form, { authorization: basicAuthorization('dpi', secret) });
      expect(right.status).toBe(200);
      expect(right.json?.access_token).toBeTruthy();
    });

    it('an unknown client_id gets an error page at /auth and 401 invalid_client at /token', async () => {
      const auth = await rawGet(
        authUrl(t, {
          client_id: 'nobody',
          redirect_uri: REDIRECT,
          response_type: 'code',
          scope: 'openid',
          state: 'st',
          code_challenge: S256_CHALLENGE,
          code_challenge_method: 'S256',
        }),
      );
      expect(auth.status).toBe(400);
      expect(auth.headers.get('location')).toBeNull();
      expect(auth.headers.get('content-type')).toMatch(/^text\/html/);
      expect(errorText(auth.text)).toBe(messages.fr['error.engine.invalid_client']);

      const token = await rawPost(
        t,
        '/token',
        { grant_type: 'authorization_code', code: 'x', redirect_uri: REDIRECT },
        { authorization: basicAuthorization('nobody', 'whatever-secret') },
      );
      expect(token.status).toBe(401);
      expect(token.json?.error).toBe('invalid_client');

      const publicToken = await rawPost(t, '/token', {
        grant_type: 'authorization_code',
        code: 'x',
        redirect_uri: REDIRECT,
        client_id: 'nobody',
      });
      expect(publicToken.status).toBe(401);
      expect(publicToken.json?.error).toBe('invalid_client');
    });

    it('an ID token altered in transit is rejected by the client (non-repudiation checks)', async () => {
      let tamper = false;
      let tampered = 0;
      const customFetch: oidc.CustomFetch = async (url, options) => {
        const response = await fetch(url, options as RequestInit);
        if (!tamper || new URL(url).pathname !== '/token' || response.status !== 200) return response;
        const body = (await response.json()) as Record<string, unknown>;
        const [header, payload, signature] = String(body.id_token).split('.');
        const claims = JSON.parse(Buffer.from(payload ?? '', 'base64url').toString()) as { sub: string };
        // One character of the subject changes: the JSON stays well-formed, only the signature breaks.
        const last = claims.sub.at(-1) === '0' ? '1' : '0';
        claims.sub = `${claims.sub.slice(0, -1)}${last}`;
        body.id_token = [header, Buffer.from(JSON.stringify(claims)).toString('base64url'), signature].join(
          '.',
        );
        tampered++;
        const headers = new Headers(response.headers);
        headers.delete('content-length');
        return new Response(JSON.stringify(body), { status: response.status, headers });
      };
      const config = await discover(t, 'dpi', oidc.ClientSecretBasic(secret), {}, customFetch);
      const loginAndRedeem = async () => {
        const pending = await authorizationRequest(config, REDIRECT);
        const { callback } = await browserLogin(new BrowserAgent(), pending.url, t.issuer, ALICE);
        return redeemCode(config, pending, callback);
      };

      // Control: without non-repudiation checks the altered token passes (only the signature reveals it).
      tamper = true;
      const unchecked = await loginAndRedeem();
      const sub = (await oidc.fetchUserInfo(config, unchecked.access_token, oidc.skipSubjectCheck)).sub;
      expect(unchecked.claims()?.sub).not.toBe(sub);
      expect(unchecked.claims()?.sub).toHaveLength(sub.length);

      oidc.enableNonRepudiationChecks(config);
      await expect(loginAndRedeem()).rejects.toMatchObject({
        code: 'OAUTH_INVALID_RESPONSE',
        cause: { message: 'JWT signature verification failed' },
      });
      expect(tampered).toBe(2);

      // And the untouched token passes the same checks.
      tamper = false;
      expect((await loginAndRedeem()).claims()?.sub).toBe(sub);
    });

    it('bodies over the size limit get 413; JSON or malformed bodies at /token get invalid_request', async () => {
      const auth = { authorization: basicAuthorization('dpi', secret) };
      const limit = t.config.http.bodyLimitBytes;
      expect(limit).toBe(65_536);
      const big = await rawPost(
        t,
        '/token',
        { grant_type: 'authorization_code', code: 'a'.repeat(limit), redirect_uri: REDIRECT },
        auth,
      );
      expect(big.status).toBe(413);
      expect(big.json?.error).toBe('invalid_request');

      // Without Content-Length (chunked), the same limit applies while the body is read.
      const chunk = new TextEncoder().encode(`grant_type=authorization_code&code=${'a'.repeat(limit)}`);
      const streamed = await fetch(new URL('/token', t.issuer), {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/x-www-form-urlencoded' },
        body: new ReadableStream({
          start(controller) {
            controller.enqueue(chunk);
            controller.close();
          },
        }),
        duplex: 'half',
      } as RequestInit);
      expect(streamed.status).toBe(413);
      expect(await streamed.json()).toMatchObject({ error: 'invalid_request' });

      const json = await rawPost(
        t,
        '/token',
        JSON.stringify({ grant_type: 'authorization_code', code: 'x', redirect_uri: REDIRECT }),
        { ...auth, 'content-type': 'application/json' },
      );
      expect(json.status).toBe(400);
      expect(json.json?.error).toBe('invalid_request');
      expect(json.json?.error_description).toMatch(/application\/x-www-form-urlencoded/);

      const malformed = await rawPost(t, '/token', '{"grant_type": "authorization_code", ', {
        ...auth,
        'content-type': 'application/json',
      });
      expect(malformed.status).toBe(400);
      expect(malformed.json?.error).toBe('invalid_request');

      const garbage = await rawPost(t, '/token', '%E0%A4%A=&&==grant_type', {
        ...auth,
        'content-type': 'application/x-www-form-urlencoded',
      });
      expect(garbage.status).toBe(400);
      expect(garbage.json?.error).toBe('invalid_request');
    });

    it('introspection and revocation: own tokens only, except for a declared resource server', async () => {
      const cc = { grant_types: ['client_credentials'], response_types: [], redirect_uris: [] };
      const owner = await registerWebClient(t, 'batch-a', cc);
      const other = await registerWebClient(t, 'batch-b', cc);
      const api = await registerWebClient(t, 'api-dossiers', { ...cc, resource_server: true });
      const issued = await rawPost(
        t,
        '/token',
        { grant_type: 'client_credentials' },
        {
          authorization: basicAuthorization('batch-a', owner),
        },
      );
      expect(issued.status).toBe(200);
      const token = String(issued.json?.access_token);
      const introspect = async (clientId: string, clientSecret: string) =>
        (
          await rawPost(
            t,
            '/token/introspection',
            { token },
            { authorization: basicAuthorization(clientId, clientSecret) },
          )
        ).json;

      expect(await introspect('batch-b', other)).toEqual({ active: false });
      expect(await introspect('api-dossiers', api)).toMatchObject({ active: true, client_id: 'batch-a' });
      expect(await introspect('batch-a', owner)).toMatchObject({ active: true, client_id: 'batch-a' });

      const foreignRevoke = await rawPost(
        t,
        '/token/revocation',
        { token },
        {
          authorization: basicAuthorization('batch-b', other),
        },
      );
      expect(foreignRevoke.status).toBe(400);
      expect(foreignRevoke.json?.error).toBe('invalid_request');
      expect(await introspect('batch-a', owner)).toMatchObject({ active: true });

      const ownRevoke = await rawPost(
        t,
        '/token/revocation',
        { token },
        { authorization: basicAuthorization('batch-a', owner) },
      );
      expect(ownRevoke.status).toBe(200);
      expect(await introspect('batch-a', owner)).toEqual({ active: false });
    });

    it('the implicit flow and the password grant are refused', async () => {
      // The error goes back to the verified redirect_uri, in the fragment as for any token response type.
      for (const responseType of ['token', 'id_token token', 'id_token']) {
        const response = await rawGet(
          authUrl(t, {
            client_id: 'dpi',
            redirect_uri: REDIRECT,
            response_type: responseType,
            scope: 'openid',
            state: 'st-3',
            nonce: 'n',
          }),
        );
        expect(response.status, responseType).toBe(303);
        const location = new URL(response.headers.get('location') ?? '');
        expect(location.origin + location.pathname, responseType).toBe(REDIRECT);
        const fragment = new URLSearchParams(location.hash.slice(1));
        expect(fragment.get('error'), responseType).toBe('unsupported_response_type');
        expect(fragment.get('state'), responseType).toBe('st-3');
        expect(fragment.get('iss'), responseType).toBe(t.issuer);
        expect([...fragment.keys()], responseType).not.toContain('access_token');
        expect([...fragment.keys()], responseType).not.toContain('id_token');
      }

      const password = await rawPost(
        t,
        '/token',
        { grant_type: 'password', username: 'alice', password: TEST_PASSWORD, scope: 'openid' },
        { authorization: basicAuthorization('dpi', secret) },
      );
      expect(password.status).toBe(400);
      expect(password.json?.error).toBe('unsupported_grant_type');
      expect(password.json).not.toHaveProperty('access_token');
    });
  });
}
