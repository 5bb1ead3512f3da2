import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BrowserAgent, browserLogin, formAction, formField } from './helpers/browser-agent.ts';
import {
  authorizationRequest,
  createUser,
  discover,
  REDIRECT,
  redeemCode,
  registerWebClient,
  TEST_PASSWORD,
} from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

/** The oidcc-basic checks around SSO sessions: prompt, max_age, login_hint. */
for (const kind of databasesUnderTest()) {
  describe(`single sign-on session and prompts [${kind}]`, () => {
    let t: TestServer;
    let config: oidc.Configuration;
    let agent: BrowserAgent;
    let firstAuthTime: number;

    const exchange = async (pending: Awaited<ReturnType<typeof authorizationRequest>>, callback: URL) =>
      (await redeemCode(config, pending, callback)).claims();

    beforeAll(async () => {
      t = await startTestServer(kind);
      await createUser(t, 'alice');
      const secret = await registerWebClient(t, 'portail', { first_party: true });
      config = await discover(t, 'portail', oidc.ClientSecretBasic(secret));
      agent = new BrowserAgent();
      const pending = await authorizationRequest(config, REDIRECT, { prompt: 'login' });
      const { callback } = await browserLogin(agent, pending.url, t.issuer, {
        username: 'alice',
        password: TEST_PASSWORD,
      });
      firstAuthTime = Number((await exchange(pending, callback))?.auth_time);
    });
    afterAll(async () => {
      await t?.close();
    });

    it('prompt=none with a live session returns a code without any page', async () => {
      const pending = await authorizationRequest(config, REDIRECT, { prompt: 'none' });
      const { url, response } = await agent.follow(pending.url, t.issuer);
      expect(response).toBeUndefined();
      expect(url.searchParams.get('code')).toBeTruthy();
      const claims = await exchange(pending, url);
      expect(claims?.auth_time).toBe(firstAuthTime);
    });

    it('prompt=login and max_age=0 ask for the password again and move auth_time', async () => {
      const variants: Record<string, string>[] = [{ prompt: 'login' }, { max_age: '0', prompt: '' }];
      let previousAuthTime = firstAuthTime;
      for (const extra of variants) {
        const label = JSON.stringify(extra);
        // auth_time has a one-second resolution.
        await new Promise((resolve) => setTimeout(resolve, 1100));
        const pending = await authorizationRequest(config, REDIRECT, extra);
        const first = await agent.follow(pending.url, t.issuer);
        expect(first.response?.status, label).toBe(200);
        expect(agent.lastHtml, label).toContain('/identify"');
        // The sign-in goes on from the page just shown, in the browser holding the session.
        const { callback, forms } = await browserLogin(agent, first.url, t.issuer, {
          username: 'alice',
          password: TEST_PASSWORD,
        });
        expect(forms, label).toEqual(['identify', 'password']);
        const authTime = Number((await exchange(pending, callback))?.auth_time);
        // Later than the previous sign-in, not only the first one: each variant authenticated anew.
        expect(authTime, label).toBeGreaterThan(previousAuthTime);
        previousAuthTime = authTime;
      }
    });

    it('prompt=none without a session answers login_required at the redirect_uri, with iss', async () => {
      const pending = await authorizationRequest(config, REDIRECT, { prompt: 'none' });
      const { url } = await new BrowserAgent().follow(pending.url, t.issuer);
      expect(url.origin + url.pathname).toBe(REDIRECT);
      expect(url.searchParams.get('error')).toBe('login_required');
      expect(url.searchParams.get('state')).toBe(pending.state);
      expect(url.searchParams.get('iss')).toBe(t.issuer);
    });

    it('prompt=select_account: continue with the session’s account, or sign in with another one', async () => {
      const bob = await createUser(t, 'bob');
      // Continue: the session's account, no new sign-in.
      const pending = await authorizationRequest(config, REDIRECT, { prompt: 'select_account' });
      const choice = await agent.follow(pending.url, t.issuer);
      expect(choice.response?.status).toBe(200);
      expect(agent.lastHtml).toContain('Choisir un compte');
      expect(agent.lastHtml).toContain('Continuer en tant que alice');
      const choose = (value: string) =>
        agent.postForm(new URL(formAction(agent.lastHtml, '/select-account'), t.issuer), {
          csrf: formField(agent.lastHtml, 'csrf') ?? '',
          choice: value,
        });
      const kept = await choose('continue');
      const done = await agent.follow(new URL(kept.headers.get('location') ?? '', t.issuer), t.issuer);
      expect((await exchange(pending, done.url))?.sub).toBe(
        (await t.passerelle.services.accounts.findByUsername('alice'))?.id,
      );

      // Another account: the login pages, then a session of that account.
      const other = await authorizationRequest(config, REDIRECT, { prompt: 'select_account' });
      await agent.follow(other.url, t.issuer);
      const switched = await choose('other');
      const login = await agent.follow(new URL(switched.headers.get('location') ?? '', t.issuer), t.issuer);
      const { callback, forms } = await browserLogin(agent, login.url, t.issuer, {
        username: 'bob',
        password: TEST_PASSWORD,
      });
      expect(forms).toEqual(['identify', 'password', 'end-previous-session']);
      expect((await exchange(other, callback))?.sub).toBe(bob.id);

      // Without a session, the login page is the choice.
      const fresh = new BrowserAgent();
      const anonymous = await authorizationRequest(config, REDIRECT, { prompt: 'select_account' });
      await fresh.follow(anonymous.url, t.issuer);
      expect(fresh.lastHtml).toContain('/identify"');
    });

    it('login_hint pre-fills the identifier, escaped', async () => {
      const fresh = new BrowserAgent();
      const pending = await authorizationRequest(config, REDIRECT, { login_hint: 'alice"><b>x' });
      await fresh.follow(pending.url, t.issuer);
      expect(formField(fresh.lastHtml, 'username')).toBe('alice&quot;&gt;&lt;b&gt;x');
      expect(fresh.lastHtml).not.toContain('<b>x');
    });
  });
}
