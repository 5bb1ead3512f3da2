import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRemoteJWKSet, decodeProtectedHeader, exportJWK, generateKeyPair, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BrowserAgent, browserLogin, formAction, formField } from './helpers/browser-agent.ts';
import {
  authorizationRequest,
  createUser,
  discover,
  REDIRECT,
  redeemCode,
  registerClient,
  registerPublicClient,
  registerWebClient,
  TEST_PASSWORD,
} from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

for (const kind of databasesUnderTest()) {
  describe(`authorization code flow with a real OpenID Connect client [${kind}]`, () => {
    let t: TestServer;
    let secret: string;
    let backchannel: Server;
    const logoutTokens: string[] = [];

    beforeAll(async () => {
      t = await startTestServer(kind);
      backchannel = createServer((req, res) => {
        let body = '';
        req.on('data', (c) => {
          body += c;
        });
        req.on('end', () => {
          logoutTokens.push(new URLSearchParams(body).get('logout_token') ?? '');
          res.writeHead(200).end();
        });
      });
      await new Promise<void>((resolve) => backchannel.listen(0, '127.0.0.1', resolve));
      await createUser(t, 'alice');
      secret = await registerWebClient(t, 'dpi', {
        client_name: 'Dossier patient',
        post_logout_redirect_uris: ['https://app.hopital.test/bye'],
        backchannel_logout_uri: `http://127.0.0.1:${(backchannel.address() as AddressInfo).port}/logout`,
        backchannel_logout_session_required: true,
      });
    });
    afterAll(async () => {
      backchannel?.close();
      await t?.close();
    });

    it('discovery → authorize → login → consent → code+PKCE → ID token → userinfo → refresh → revoke → logout', async () => {
      const config = await discover(t, 'dpi', oidc.ClientSecretBasic(secret));
      oidc.enableNonRepudiationChecks(config);
      const meta = config.serverMetadata();
      expect(meta.issuer).toBe(t.issuer);
      expect(meta.code_challenge_methods_supported).toEqual(['S256']);
      // `none`: Passerelle's own portal and console, which need the session and no token.
      expect(meta.response_types_supported).toEqual(['code', 'none']);
      expect(meta.authorization_response_iss_parameter_supported).toBe(true);
      expect(meta.grant_types_supported).not.toContain('implicit');
      expect(meta.grant_types_supported).not.toContain('password');

      const agent = new BrowserAgent();
      const pending = await authorizationRequest(config, REDIRECT);
      const { callback, forms } = await browserLogin(agent, pending.url, t.issuer, {
        username: 'alice',
        password: TEST_PASSWORD,
      });
      // Not a first-party client: the user is asked for consent after the password.
      expect(forms).toEqual(['identify', 'password', 'consent']);
      expect(callback.origin + callback.pathname).toBe(REDIRECT);
      expect(callback.searchParams.get('iss')).toBe(t.issuer);

      const tokens = await oidc.authorizationCodeGrant(config, callback, {
        pkceCodeVerifier: pending.verifier,
        expectedState: pending.state,
        expectedNonce: pending.nonce,
        idTokenExpected: true,
      });
      const claims = tokens.claims();
      expect(claims, JSON.stringify(claims)).toMatchObject({ amr: ['pwd'] });
      expect(claims?.acr).toBe('urn:passerelle:loa:low');
      expect(typeof claims?.auth_time).toBe('number');
      expect(decodeProtectedHeader(tokens.id_token ?? '').alg).toBe('ES256');
      const jwks = createRemoteJWKSet(new URL(meta.jwks_uri ?? ''));
      const verified = await jwtVerify(tokens.id_token ?? '', jwks, { issuer: t.issuer, audience: 'dpi' });
      expect(verified.payload.nonce).toBe(pending.nonce);

      const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, claims?.sub ?? '');
      expect(userinfo.preferred_username).toBe('alice');
      expect(userinfo.email).toBe('alice@hopital.test');

      expect(tokens.refresh_token).toBeTruthy();
      const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token ?? '');
      expect(refreshed.access_token).not.toBe(tokens.access_token);
      expect(refreshed.claims()?.sub).toBe(claims?.sub);

      expect((await oidc.tokenIntrospection(config, refreshed.access_token)).active).toBe(true);
      await oidc.tokenRevocation(config, refreshed.access_token);
      expect((await oidc.tokenIntrospection(config, refreshed.access_token)).active).toBe(false);

      // RP-initiated logout with confirmation, then back-channel logout token to the client.
      const logoutUrl = oidc.buildEndSessionUrl(config, {
        id_token_hint: tokens.id_token ?? '',
        post_logout_redirect_uri: 'https://app.hopital.test/bye',
      });
      await agent.follow(logoutUrl, t.issuer);
      const xsrf = formField(agent.lastHtml, 'xsrf') ?? '';
      const confirm = await agent.postForm(
        new URL(formAction(agent.lastHtml, '/session/end/confirm'), t.issuer),
        {
          xsrf,
          logout: 'yes',
        },
      );
      const after = await agent.follow(new URL(confirm.headers.get('location') ?? '', t.issuer), t.issuer);
      expect(after.url.href).toBe('https://app.hopital.test/bye');
      await expect.poll(() => logoutTokens.length).toBe(1);
      const logoutToken = await jwtVerify(logoutTokens[0] ?? '', jwks, { issuer: t.issuer, audience: 'dpi' });
      expect(logoutToken.payload.sid).toBe(claims?.sid);
      expect(logoutToken.payload.events).toHaveProperty([
        'http://schemas.openid.net/event/backchannel-logout',
      ]);

      // The session is gone: prompt=none now answers login_required.
      const silent = await authorizationRequest(config, REDIRECT, { prompt: 'none' });
      const { url } = await agent.follow(silent.url, t.issuer);
      expect(url.searchParams.get('error')).toBe('login_required');
    });

    it('pushed authorization request (PAR) with private_key_jwt client authentication', async () => {
      const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
      const jwk = { ...(await exportJWK(publicKey)), kid: 'rp-key-1', alg: 'ES256', use: 'sig' };
      await registerClient(t, {
        client_id: 'portail-jwt',
        redirect_uris: [REDIRECT],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'private_key_jwt',
        token_endpoint_auth_signing_alg: 'ES256',
        jwks: { keys: [jwk] },
        first_party: true,
      });
      const config = await discover(
        t,
        'portail-jwt',
        oidc.PrivateKeyJwt({ key: privateKey, kid: 'rp-key-1' }),
      );
      const verifier = oidc.randomPKCECodeVerifier();
      const state = oidc.randomState();
      const url = await oidc.buildAuthorizationUrlWithPAR(config, {
        redirect_uri: REDIRECT,
        scope: 'openid profile',
        code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
      });
      expect(url.searchParams.get('request_uri')).toMatch(/^urn:ietf:params:oauth:request_uri:/);
      const { callback, forms } = await browserLogin(new BrowserAgent(), url, t.issuer, {
        username: 'alice',
        password: TEST_PASSWORD,
      });
      // First-party client: no consent page.
      expect(forms).toEqual(['identify', 'password']);
      const tokens = await oidc.authorizationCodeGrant(config, callback, {
        pkceCodeVerifier: verifier,
        expectedState: state,
      });
      expect(tokens.claims()?.aud).toBe('portail-jwt');
    });

    it('public client: PKCE, refresh-token rotation, reuse revokes the grant', async () => {
      await registerPublicClient(t, 'mobile', { scope: 'openid offline_access' });
      const config = await discover(t, 'mobile', oidc.None());
      const pending = await authorizationRequest(config, REDIRECT, { scope: 'openid offline_access' });
      const { callback } = await browserLogin(new BrowserAgent(), pending.url, t.issuer, {
        username: 'alice',
        password: TEST_PASSWORD,
      });
      const first = await redeemCode(config, pending, callback);
      const second = await oidc.refreshTokenGrant(config, first.refresh_token ?? '');
      expect(second.refresh_token).toBeTruthy();
      expect(second.refresh_token).not.toBe(first.refresh_token);
      // Replaying the rotated token: invalid_grant, and the whole grant dies with it.
      await expect(oidc.refreshTokenGrant(config, first.refresh_token ?? '')).rejects.toMatchObject({
        error: 'invalid_grant',
      });
      await expect(oidc.refreshTokenGrant(config, second.refresh_token ?? '')).rejects.toMatchObject({
        error: 'invalid_grant',
      });
      await expect(
        oidc.fetchUserInfo(config, second.access_token, oidc.skipSubjectCheck),
      ).rejects.toMatchObject({
        status: 401,
      });
    });
  });
}
