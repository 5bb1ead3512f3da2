import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { messages } from '../src/i18n/messages.ts';
import { BrowserAgent, browserLogin, formAction, formField } from './helpers/browser-agent.ts';
import {
  authorizationRequest,
  basicAuthorization,
  createUser,
  discover,
  REDIRECT,
  rawPost,
  redeemCode,
  registerWebClient,
  TEST_PASSWORD,
} from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { errorText, escaped } from './helpers/pages.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

const fr = messages.fr;
const en = messages.en;

function expectStrictHeaders(headers: Headers, where: string) {
  expect(headers.get('content-security-policy'), where).toMatch(/(^|;)\s*frame-ancestors 'none'\s*(;|$)/);
  expect(headers.get('content-security-policy'), where).toMatch(/(^|;)\s*default-src 'none'\s*(;|$)/);
  expect(headers.get('x-frame-options'), where).toBe('DENY');
  expect(headers.get('x-content-type-options'), where).toBe('nosniff');
  expect(headers.get('referrer-policy'), where).toBe('same-origin');
}

for (const kind of databasesUnderTest()) {
  describe(`login page security [${kind}]`, () => {
    let t: TestServer;
    let secret: string;
    let config: oidc.Configuration;

    beforeAll(async () => {
      t = await startTestServer(kind, { config: { throttle: { freeFailures: 5 } } });
      for (const name of ['alice', 'bob', 'carol', 'dave']) await createUser(t, name);
      secret = await registerWebClient(t, 'dpi', { client_name: 'Dossier patient' });
      config = await discover(t, 'dpi', oidc.ClientSecretBasic(secret));
    });
    afterAll(async () => {
      await t?.close();
    });

    /** Opens an authorization request in a fresh browser and stops on the identify page. */
    async function openLogin(extra: Record<string, string> = {}) {
      const agent = new BrowserAgent();
      const pending = await authorizationRequest(config, REDIRECT, extra);
      const { response, url } = await agent.follow(pending.url, t.issuer);
      if (!response) throw new Error(`no login page, redirected to ${url}`);
      const uid = /^\/interaction\/([^/]+)$/.exec(url.pathname)?.[1];
      if (!uid) throw new Error(`not an interaction page: ${url}`);
      return {
        agent,
        pending,
        response,
        uid,
        html: agent.lastHtml,
        csrf: formField(agent.lastHtml, 'csrf') ?? '',
        url: (path: string) => new URL(`/interaction/${uid}${path}`, t.issuer),
      };
    }

    /** Identify step, then the password form; returns the rendered answer to the password POST. */
    async function submitPassword(username: string, password: string, extra: Record<string, string> = {}) {
      const login = await openLogin(extra);
      const identified = await login.agent.postForm(login.url('/identify'), { csrf: login.csrf, username });
      expect(identified.status).toBe(303);
      await login.agent.follow(new URL(identified.headers.get('location') ?? '', t.issuer), t.issuer);
      const passwordPage = login.agent.lastHtml;
      const action = new URL(formAction(passwordPage, '/method/password'), t.issuer);
      const post = (pwd: string) =>
        login.agent.postForm(action, {
          csrf: formField(passwordPage, 'csrf') ?? '',
          username,
          password: pwd,
        });
      const response = await post(password);
      return { login, passwordPage, response, html: await response.text(), post };
    }

    it('CSRF: identify without token, with a wrong token, another interaction’s token or a foreign Origin → 403', async () => {
      const login = await openLogin();
      const other = await openLogin();
      expect(login.csrf).not.toBe('');
      const attempts: [string, Record<string, string>, Record<string, string>][] = [
        ['no token', { username: 'alice' }, {}],
        ['empty token', { csrf: '', username: 'alice' }, {}],
        ['wrong token', { csrf: `${login.csrf.slice(0, -2)}AA`, username: 'alice' }, {}],
        ['token of another interaction', { csrf: other.csrf, username: 'alice' }, {}],
        ['foreign Origin', { csrf: login.csrf, username: 'alice' }, { origin: 'https://evil.example' }],
        ['cross-site fetch', { csrf: login.csrf, username: 'alice' }, { 'sec-fetch-site': 'cross-site' }],
      ];
      for (const [label, fields, headers] of attempts) {
        const response = await login.agent.postForm(login.url('/identify'), fields, headers);
        expect(response.status, label).toBe(403);
        expect(response.headers.get('location'), label).toBeNull();
        expect(errorText(await response.text()), label).toBe(escaped(fr['error.csrf']));
      }
      // Nothing was recorded: the interaction still asks for the username.
      await login.agent.follow(login.url(''), t.issuer);
      expect(login.agent.lastHtml).toContain('/identify"');
      expect(login.agent.lastHtml).not.toContain('/method/password"');

      // With the right token (and a same-origin Origin) the same interaction completes.
      const ok = await login.agent.postForm(
        login.url('/identify'),
        { csrf: login.csrf, username: 'alice' },
        { origin: t.issuer },
      );
      expect(ok.status).toBe(303);
      const { callback } = await browserLogin(login.agent, login.url(''), t.issuer, {
        username: 'alice',
        password: TEST_PASSWORD,
      });
      expect(callback.searchParams.get('code')).toBeTruthy();
      const tokens = await redeemCode(config, login.pending, callback);
      expect(tokens.claims()?.amr).toEqual(['pwd']);
    });

    it('CSRF also guards the password, consent and abort forms', async () => {
      const { login, passwordPage } = await submitPassword('alice', 'wrong password for csrf test');
      const action = new URL(formAction(passwordPage, '/method/password'), t.issuer);
      const forged = await login.agent.postForm(action, { username: 'alice', password: TEST_PASSWORD });
      expect(forged.status).toBe(403);
      const foreign = await login.agent.postForm(
        action,
        { csrf: login.csrf, username: 'alice', password: TEST_PASSWORD },
        { origin: 'https://evil.example' },
      );
      expect(foreign.status).toBe(403);
      const abort = await login.agent.postForm(login.url('/abort'), {});
      expect(abort.status).toBe(403);
      // With the token, the password is accepted and the consent form appears; it is guarded too.
      const signedIn = await login.agent.postForm(action, {
        csrf: login.csrf,
        username: 'alice',
        password: TEST_PASSWORD,
      });
      expect(signedIn.status).toBe(303);
      await login.agent.follow(new URL(signedIn.headers.get('location') ?? '', t.issuer), t.issuer);
      expect(login.agent.lastHtml).toContain('/consent"');
      // The consent prompt is a new interaction, with its own token.
      const consentUrl = new URL(formAction(login.agent.lastHtml, '/consent'), t.issuer);
      const consentCsrf = formField(login.agent.lastHtml, 'csrf') ?? '';
      expect(consentUrl.pathname).not.toBe(login.url('/consent').pathname);
      for (const csrf of ['forged', login.csrf]) {
        const consent = await login.agent.postForm(consentUrl, { csrf });
        expect(consent.status).toBe(403);
      }
      const consented = await login.agent.postForm(consentUrl, { csrf: consentCsrf });
      expect(consented.status).toBe(303);
      expect(new URL(consented.headers.get('location') ?? '', t.issuer).pathname).toMatch(/^\/auth\//);
    });

    it('no user enumeration: unknown username and wrong password look the same', async () => {
      const unknown = await submitPassword('ghost', 'some password');
      const wrong = await submitPassword('bob', 'some password');
      // The identify step already answered the same way for both (no lookup there).
      expect(unknown.passwordPage.replaceAll('ghost', 'X').replace(/[A-Za-z0-9_-]{20,}/g, 'ID')).toBe(
        wrong.passwordPage.replaceAll('bob', 'X').replace(/[A-Za-z0-9_-]{20,}/g, 'ID'),
      );
      expect(unknown.response.status).toBe(401);
      expect(wrong.response.status).toBe(401);
      expect(errorText(unknown.html)).toBe(escaped(fr['error.invalid_credentials']));
      expect(errorText(wrong.html)).toBe(errorText(unknown.html));
      const normalise = (html: string, name: string) =>
        html
          .replaceAll(name, 'X')
          .replace(/[A-Za-z0-9_-]{20,}/g, 'ID')
          .replace(/<code>[^<]*<\/code>/g, '');
      expect(normalise(unknown.html, 'ghost')).toBe(normalise(wrong.html, 'bob'));
    });

    it('after 5 failures for one username the next attempt is refused with 429 and Retry-After, even with the right password', async () => {
      const { lockAfter: max, lockSeconds: windowSeconds } = t.config.throttle;
      expect(max).toBe(5);
      const first = await submitPassword('carol', 'wrong-1');
      expect(first.response.status).toBe(401);
      for (let i = 2; i <= max; i++) {
        const response = await first.post(`wrong-${i}`);
        expect(response.status, `attempt ${i}`).toBe(401);
        expect(errorText(await response.text())).toBe(escaped(fr['error.invalid_credentials']));
      }
      const blocked = await first.post(TEST_PASSWORD);
      expect(blocked.status).toBe(429);
      const retryAfter = Number(blocked.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThan(0);
      expect(retryAfter).toBeLessThanOrEqual(windowSeconds);
      expect(errorText(await blocked.text())).toBe(
        escaped(fr['error.rate_limited'].replace('{minutes}', String(Math.ceil(retryAfter / 60)))),
      );
      expect(blocked.headers.get('location')).toBeNull();

      // Another browser, another spelling of the same username: still blocked.
      const again = await submitPassword('CAROL', TEST_PASSWORD);
      expect(again.response.status).toBe(429);
      expect(again.response.headers.get('retry-after')).toMatch(/^\d+$/);
      // The limit is per account: another user from the same address signs in.
      const other = await submitPassword('bob', TEST_PASSWORD);
      expect(other.response.status).toBe(303);
    });

    it('a disabled account: right password → 403 "désactivé", wrong password → the generic 401', async () => {
      const dave = await t.passerelle.services.accounts.findByUsername('dave');
      await t.passerelle.services.accounts.setDisabled(dave?.id ?? '', true);
      const right = await submitPassword('dave', TEST_PASSWORD);
      expect(right.response.status).toBe(403);
      expect(errorText(right.html)).toBe(escaped(fr['error.account_disabled']));
      expect(errorText(right.html)).toContain('désactivé');

      const wrong = await submitPassword('dave', 'not the password');
      expect(wrong.response.status).toBe(401);
      expect(errorText(wrong.html)).toBe(escaped(fr['error.invalid_credentials']));
      expect(wrong.html).not.toContain('désactivé');

      // Re-enabled, the same credentials work again.
      await t.passerelle.services.accounts.setDisabled(dave?.id ?? '', false);
      const back = await submitPassword('dave', TEST_PASSWORD);
      expect(back.response.status).toBe(303);
    });

    it('French by default, English with ui_locales=en', async () => {
      const french = await openLogin();
      expect(french.html).toContain('<html lang="fr">');
      expect(french.html).toContain(`<h1>${fr['login.title']}</h1>`);
      expect(french.html).toContain(`>${fr['login.username']}</label>`);
      expect(french.html).toContain(`>${fr['login.continue']}</button>`);
      expect(french.html).not.toContain(`>${en['login.continue']}</button>`);

      const english = await openLogin({ ui_locales: 'en' });
      expect(english.html).toContain('<html lang="en">');
      expect(english.html).toContain(`<h1>${en['login.title']}</h1>`);
      expect(english.html).toContain(`>${en['login.username']}</label>`);
      expect(english.html).toContain(`>${en['login.continue']}</button>`);
      expect(english.html).not.toContain(fr['login.username']);

      // The choice holds for the whole interaction, error messages included.
      const failed = await submitPassword('bob', 'not the password', { ui_locales: 'en' });
      expect(failed.passwordPage).toContain(`>${en['method.password']}</label>`);
      expect(errorText(failed.html)).toBe(escaped(en['error.invalid_credentials']));
    });

    it('strict security headers on the login page, discovery and the token endpoint', async () => {
      const login = await openLogin();
      expectStrictHeaders(login.response.headers, 'login page');
      expect(login.response.headers.get('cache-control')).toBe('no-store');

      const discovery = await fetch(new URL('/.well-known/openid-configuration', t.issuer));
      expect(discovery.status).toBe(200);
      expectStrictHeaders(discovery.headers, 'discovery');

      const tokenError = await rawPost(
        t,
        '/token',
        { grant_type: 'authorization_code', code: 'nope', redirect_uri: REDIRECT },
        { authorization: basicAuthorization('dpi', secret) },
      );
      expect(tokenError.status).toBe(400);
      expectStrictHeaders(tokenError.headers, 'token error');

      // While the interaction is open (afterwards the page would be "interaction expired" instead).
      const forbidden = await login.agent.postForm(login.url('/identify'), { username: 'x' });
      expect(forbidden.status).toBe(403);
      expect(errorText(await forbidden.text())).toBe(escaped(fr['error.csrf']));
      expectStrictHeaders(forbidden.headers, 'csrf error page');

      const { callback } = await browserLogin(login.agent, login.url(''), t.issuer, {
        username: 'alice',
        password: TEST_PASSWORD,
      });
      const token = await rawPost(
        t,
        '/token',
        {
          grant_type: 'authorization_code',
          code: callback.searchParams.get('code') ?? '',
          redirect_uri: REDIRECT,
          code_verifier: login.pending.verifier,
        },
        { authorization: basicAuthorization('dpi', secret) },
      );
      expect(token.status).toBe(200);
      expectStrictHeaders(token.headers, 'token success');
      expect(token.headers.get('cache-control')).toBe('no-store');
    });

    it('markup typed as a username is escaped in the rendered pages', async () => {
      const payload = '"><script>alert(1)</script><img src=x onerror=alert(2)>';
      const { passwordPage, html, response } = await submitPassword(payload, 'not the password');
      expect(response.status).toBe(401);
      for (const page of [passwordPage, html]) {
        expect(page).not.toContain('<script>alert(1)');
        expect(page).not.toContain('<img src=x');
        expect(page).not.toContain('"><');
        expect(page).toContain(escaped(payload));
        expect(page).not.toMatch(/<script\b/i);
      }
    });

    it('logs never contain the password, the client secret, codes or tokens', async () => {
      const wrongPassword = 'Wr0ng-P4ssw0rd-that-must-not-be-logged';
      const failed = await submitPassword('alice', wrongPassword);
      expect(failed.response.status).toBe(401);

      const login = await openLogin();
      const { callback } = await browserLogin(login.agent, login.url(''), t.issuer, {
        username: 'alice',
        password: TEST_PASSWORD,
      });
      const code = callback.searchParams.get('code') ?? '';
      const tokens = await redeemCode(config, login.pending, callback);
      await oidc.fetchUserInfo(config, tokens.access_token, tokens.claims()?.sub ?? '');
      const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token ?? '');
      await oidc.tokenIntrospection(config, refreshed.access_token);
      await oidc.tokenRevocation(config, refreshed.refresh_token ?? '');
      // Failures log too: a replayed code, a wrong secret.
      await expect(redeemCode(config, login.pending, callback)).rejects.toMatchObject({
        error: 'invalid_grant',
      });
      const wrongSecret = `${secret}-wrong`;
      const bad = await rawPost(
        t,
        '/token',
        { grant_type: 'refresh_token', refresh_token: refreshed.refresh_token ?? '' },
        { authorization: basicAuthorization('dpi', wrongSecret) },
      );
      expect(bad.status).toBe(401);

      const logs = t.logs.join('');
      // The logs did record the flow (so their silence about secrets means something).
      expect(logs).toContain('"path":"/token"');
      expect(logs).toContain('"type":"auth.attempt","outcome":"success"');
      expect(logs).toContain('"type":"auth.attempt","outcome":"failure"');
      const secrets: Record<string, string> = {
        password: TEST_PASSWORD,
        'wrong password': wrongPassword,
        'client secret': secret,
        'wrong client secret': wrongSecret,
        'authorization code': code,
        'access token': tokens.access_token,
        'refresh token': tokens.refresh_token ?? '',
        'ID token': tokens.id_token ?? '',
        'refreshed access token': refreshed.access_token,
        'refreshed refresh token': refreshed.refresh_token ?? '',
        'CSRF token': login.csrf,
        'PKCE verifier': login.pending.verifier,
      };
      for (const [label, value] of Object.entries(secrets)) {
        expect(value.length, label).toBeGreaterThan(8);
        expect(logs.includes(value), `${label} found in logs`).toBe(false);
      }
      // Nor the session cookie (a bearer credential for the browser's single sign-on session).
      const cookies = login.agent.cookieHeader();
      const session = /(?:^|; )_session=([^;]+)/.exec(cookies)?.[1] ?? '';
      expect(session.length).toBeGreaterThan(8);
      expect(logs.includes(session), 'session cookie found in logs').toBe(false);
    });
  });
}
