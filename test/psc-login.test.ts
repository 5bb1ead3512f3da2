import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PSC_LOGGED_OUT_PATH } from '../src/federation/psc-login-routes.ts';
import {
  PSC_BACKCHANNEL_LOGOUT_PATH,
  PSC_CALLBACK_PATH,
  pscDiscoveryCheck,
  pscLoginMethod,
} from '../src/methods/psc/index.ts';
import { BrowserAgent, followThroughConsent, formAction, formField } from './helpers/browser-agent.ts';
import {
  authorizationRequest,
  codeClaims,
  createUser,
  discover,
  REDIRECT,
  redeemCode,
  registerWebClient,
  TEST_PASSWORD,
} from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { openHttpServer, REFUSED_PORT } from './helpers/net.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { type PscSimulator, REALM_PATH, startPscSimulator } from './simulators/psc/server.ts';

const PSC_CLIENT = { clientId: 'passerelle', clientSecret: 'passerelle-at-psc-secret' };

/**
 * "Se connecter avec Pro Santé Connect": Passerelle as a client of the PSC simulator (code flow, PKCE,
 * state, nonce), the account found by its verified national identity or linked by the login (source
 * psc-login), a conflict refused, a forged answer refused, and PSC's back-channel logout.
 */
for (const kind of databasesUnderTest()) {
  describe(`login through Pro Santé Connect [${kind}]`, () => {
    let t: TestServer;
    let psc: PscSimulator;
    let rp: oidc.Configuration;
    let alice: { id: string; username: string };
    let bruno: { id: string; username: string };

    beforeAll(async () => {
      const pscServer = await openHttpServer();
      const pscIssuer = `${pscServer.origin}${REALM_PATH}`;
      t = await startTestServer(kind, {
        config: {
          pscLogin: { issuer: pscIssuer, ...PSC_CLIENT, allowInsecureHttp: true },
          http: { outboundAllowPrivateAddresses: true },
        },
      });
      psc = await startPscSimulator({
        server: pscServer.server,
        clients: [
          {
            ...PSC_CLIENT,
            redirectUris: [`${t.issuer}${PSC_CALLBACK_PATH}`],
            postLogoutRedirectUris: [`${t.issuer}/`, `${t.issuer}${PSC_LOGGED_OUT_PATH}`],
            backchannelLogoutUri: `${t.issuer}${PSC_BACKCHANNEL_LOGOUT_PATH}`,
          },
        ],
      });
      expect(psc.issuer).toBe(pscIssuer);
      alice = await createUser(t, 'alice.martin');
      bruno = await createUser(t, 'bruno.gall');
      rp = await discover(t, 'dpi', oidc.ClientSecretBasic(await registerWebClient(t, 'dpi')));
    });
    afterAll(async () => {
      await psc?.close();
      await t?.close();
    });

    const pscOrigin = () => new URL(psc.issuer).origin;
    const professional = (index: number) => {
      const p = psc.professionals[index];
      if (!p) throw new Error('no fixture');
      return p;
    };
    /** From Passerelle's first page: choose PSC, go there; returns PSC's page. */
    const toPsc = async (agent: BrowserAgent, uid: string) => {
      await agent.follow(new URL(`/interaction/${uid}?method=psc`, t.issuer), t.issuer);
      expect(agent.lastHtml).toContain('Se connecter avec Pro Santé Connect');
      const href =
        /<a class="button" href="([^"]+)"/.exec(agent.lastHtml)?.[1]?.replaceAll('&amp;', '&') ?? '';
      const url = new URL(href);
      expect(url.href.startsWith(`${psc.issuer}/protocol/openid-connect/auth`)).toBe(true);
      expect(url.searchParams.get('code_challenge_method')).toBe('S256');
      expect(url.searchParams.get('acr_values')).toBe('eidas1');
      return agent.follow(url, pscOrigin());
    };
    /** At PSC's login page: the simulated e-CPS or card, then back through Passerelle's callback. */
    const identifyAtPsc = async (agent: BrowserAgent, idNatPs: string, authMode: 'MOBILE' | 'CARD') => {
      const posted = await agent.postForm(new URL(formAction(agent.lastHtml, '/cps'), pscOrigin()), {
        idNatPs,
        authMode,
      });
      const back = await agent.follow(
        new URL(posted.headers.get('location') ?? '', pscOrigin()),
        pscOrigin(),
      );
      return followAtPasserelle(agent, back.url);
    };
    /** Follows redirects from PSC into Passerelle until a page or the application's callback. */
    const followAtPasserelle = async (agent: BrowserAgent, url: URL) => {
      expect(url.href.startsWith(`${t.issuer}${PSC_CALLBACK_PATH}`)).toBe(true);
      return followThroughConsent(agent, url.href, t.issuer);
    };
    const startLogin = async (agent: BrowserAgent) => {
      const pending = await authorizationRequest(rp, REDIRECT);
      const first = await agent.follow(pending.url, t.issuer);
      const uid = /\/interaction\/([^/?"]+)/.exec(first.url.pathname)?.[1] ?? '';
      return { pending, uid };
    };
    /** Passerelle's identifier and password steps of the login `uid`. */
    const proveAccount = async (agent: BrowserAgent, uid: string, username: string) => {
      const identified = await agent.postForm(new URL(`/interaction/${uid}/identify`, t.issuer), {
        csrf: formField(agent.lastHtml, 'csrf') ?? '',
        username,
      });
      await agent.follow(new URL(identified.headers.get('location') ?? '', t.issuer), t.issuer);
      const password = await agent.postForm(
        new URL(formAction(agent.lastHtml, '/method/password'), t.issuer),
        {
          csrf: formField(agent.lastHtml, 'csrf') ?? '',
          password: TEST_PASSWORD,
        },
      );
      await agent.follow(new URL(password.headers.get('location') ?? '', t.issuer), t.issuer);
    };
    const audited = (accountId: string | null, method = 'psc') =>
      t.passerelle.services.database.db
        .selectFrom('audit_event')
        .select(['outcome', 'reason'])
        .where('type', '=', 'auth.attempt')
        .where('method', '=', method)
        .where((eb) => (accountId ? eb('account_id', '=', accountId) : eb('account_id', 'is', null)))
        .orderBy('seq')
        .execute();

    it("/readyz reports PSC's discovery (optional): ok, another issuer, unreachable", async () => {
      const ready = (await (await fetch(new URL('/readyz', t.issuer))).json()) as {
        checks: Record<string, unknown>;
      };
      expect(ready.checks.psc).toEqual({ ok: true, optional: true });
      expect(await pscDiscoveryCheck({ issuer: `${psc.issuer}/` }).run()).toEqual({
        ok: false,
        detail: 'discovery names another issuer',
      });
      // Port 0: nothing can listen there, the connection is refused.
      const nowhere = `http://127.0.0.1:${REFUSED_PORT}${REALM_PATH}`;
      await expect(pscDiscoveryCheck({ issuer: nowhere }).run()).rejects.toThrow();
    });

    it('an unknown national identity creates nothing: the user proves their account, then PSC links it', async () => {
      const agent = new BrowserAgent();
      const { pending, uid } = await startLogin(agent);
      await toPsc(agent, uid);
      const refused = await identifyAtPsc(agent, professional(1).idNatPs, 'MOBILE');
      expect(refused.response?.status).toBe(403);
      expect(agent.lastHtml).toContain('n’est liée à aucun compte de l’établissement');
      // The identifier page, to prove the account.
      expect(agent.lastHtml).toContain('/identify"');
      const accounts = await t.passerelle.services.accounts.list();
      expect(accounts.map((a) => a.username).sort()).toEqual(['alice.martin', 'bruno.gall']);

      await proveAccount(agent, uid, alice.username);
      // Not finished: PSC once more, to link the identity it proves.
      expect(agent.lastHtml).toContain('Dernière étape');
      const href =
        /<a class="button" href="([^"]+)"/.exec(agent.lastHtml)?.[1]?.replaceAll('&amp;', '&') ?? '';
      // PSC's own session answers at once.
      const back = await agent.follow(new URL(href), pscOrigin());
      const done = await followAtPasserelle(agent, back.url);
      const claims = await codeClaims(rp, pending, done.url);
      expect(claims).toMatchObject({ sub: alice.id });
      // PSC's proof is marked federated (RFC 8176 `fed`) wherever it appears.
      expect([...((claims?.amr ?? []) as string[])].sort()).toEqual(['fed', 'mfa', 'pin', 'pwd', 'swk']);

      expect(await t.passerelle.services.identities.findByAccount(alice.id)).toMatchObject({
        idNat: professional(1).idNatPs,
        source: 'psc-login',
        status: 'verified',
      });
      expect(await audited(null)).toContainEqual({ outcome: 'failure', reason: 'unknown_national_id' });
      expect(await audited(alice.id)).toEqual([{ outcome: 'success', reason: null }]);
    });

    it('once linked, PSC alone signs the account in, with the amr of the card, marked federated', async () => {
      const agent = new BrowserAgent();
      const { pending, uid } = await startLogin(agent);
      await toPsc(agent, uid);
      const done = await identifyAtPsc(agent, professional(1).idNatPs, 'CARD');
      const claims = await codeClaims(rp, pending, done.url);
      expect(claims).toMatchObject({ sub: alice.id });
      expect([...((claims?.amr ?? []) as string[])].sort()).toEqual(['fed', 'hwk', 'mfa', 'pin', 'sc']);
      // The single sign-on session remembers PSC's session id for its back-channel logout.
      const sessions = await t.passerelle.services.database.db
        .selectFrom('auth_session')
        .select('upstream_sid')
        .where('account_id', '=', alice.id)
        .where('upstream_sid', 'is not', null)
        .execute();
      expect(sessions.length).toBeGreaterThan(0);

      // PSC's session ends (logout at PSC): its back-channel logout ends Passerelle's session too.
      const pscConfig = await discover(
        { issuer: psc.issuer },
        PSC_CLIENT.clientId,
        oidc.ClientSecretBasic(PSC_CLIENT.clientSecret),
      );
      await agent.follow(
        oidc.buildEndSessionUrl(pscConfig, {
          client_id: PSC_CLIENT.clientId,
          post_logout_redirect_uri: `${t.issuer}/`,
        }),
        pscOrigin(),
      );
      await agent.postForm(new URL(formAction(agent.lastHtml, '/logout/confirm'), pscOrigin()), {
        xsrf: formField(agent.lastHtml, 'xsrf') ?? '',
        logout: 'yes',
      });
      const ended = await t.passerelle.services.database.db
        .selectFrom('audit_event')
        .select(['account_id', 'reason'])
        .where('type', '=', 'session.ended')
        .execute();
      expect(ended).toContainEqual({ account_id: alice.id, reason: 'psc_backchannel_logout' });
      // No single sign-on any more: the application's next request shows the login page.
      const again = await authorizationRequest(rp, REDIRECT);
      const next = await agent.follow(again.url, t.issuer);
      expect(next.url.pathname).toMatch(/^\/interaction\//);
    });

    it('signing out of Passerelle signs out of PSC too, then returns where the application asked', async () => {
      const agent = new BrowserAgent();
      const { pending, uid } = await startLogin(agent);
      await toPsc(agent, uid);
      const done = await identifyAtPsc(agent, professional(1).idNatPs, 'CARD');
      const tokens = await redeemCode(rp, pending, done.url);
      await agent.follow(oidc.buildEndSessionUrl(rp, { id_token_hint: tokens.id_token ?? '' }), t.issuer);
      expect(agent.lastHtml).toContain('vous serez aussi déconnecté de Pro Santé Connect');
      expect(agent.lastHtml).not.toContain('Rester connecté');
      const confirmed = await agent.postForm(
        new URL(formAction(agent.lastHtml, '/session/end/confirm'), t.issuer),
        {
          xsrf: formField(agent.lastHtml, 'xsrf') ?? '',
          logout: 'yes',
        },
      );
      const atPsc = new URL(confirmed.headers.get('location') ?? '');
      expect(atPsc.href.startsWith(`${psc.issuer}/protocol/openid-connect/logout?`)).toBe(true);
      expect(atPsc.searchParams.get('client_id')).toBe(PSC_CLIENT.clientId);
      expect(atPsc.searchParams.get('post_logout_redirect_uri')).toBe(`${t.issuer}${PSC_LOGGED_OUT_PATH}`);
      await agent.follow(atPsc, pscOrigin());
      const pscDone = await agent.postForm(
        new URL(formAction(agent.lastHtml, '/logout/confirm'), pscOrigin()),
        {
          xsrf: formField(agent.lastHtml, 'xsrf') ?? '',
          logout: 'yes',
        },
      );
      const back = new URL(pscDone.headers.get('location') ?? '');
      expect(back.pathname).toBe(PSC_LOGGED_OUT_PATH);
      const end = await agent.follow(back, t.issuer);
      expect(end.url.pathname).toBe('/session/end/success');
      expect(agent.lastHtml).toContain('Vous êtes déconnecté');
      // A forged return address is not followed.
      const forged = await agent.follow(new URL(`${PSC_LOGGED_OUT_PATH}?state=e30.AAAA`, t.issuer), t.issuer);
      expect(forged.url.pathname).toBe('/session/end/success');
      // PSC's session is over: the next login through PSC asks for the identity again.
      const next = await startLogin(agent);
      await toPsc(agent, next.uid);
      expect(agent.lastHtml).toContain('Carte CPS ou e-CPS');
    });

    it('a national identity that contradicts the account’s link is refused as a conflict, and queued', async () => {
      await t.passerelle.services.identities.set(bruno.id, professional(2).idNatPs, 'manual', 'verified');
      const agent = new BrowserAgent();
      const { uid } = await startLogin(agent);
      await toPsc(agent, uid);
      // An identity nobody has: the user then proves the account bruno, whose link is another identity.
      await identifyAtPsc(agent, professional(3).idNatPs, 'MOBILE');
      await proveAccount(agent, uid, bruno.username);
      const href =
        /<a class="button" href="([^"]+)"/.exec(agent.lastHtml)?.[1]?.replaceAll('&amp;', '&') ?? '';
      const back = await agent.follow(new URL(href), pscOrigin());
      const refused = await followAtPasserelle(agent, back.url);
      expect(refused.response?.status).toBe(403);
      expect(agent.lastHtml).toContain('ne correspond pas à celle de votre compte');
      // The link keeps its identity, flagged: the conflict awaits an administrator (docs/rpps.md).
      expect(await t.passerelle.services.identities.findByAccount(bruno.id)).toMatchObject({
        idNat: professional(2).idNatPs,
        status: 'conflict',
      });
      const reviews = await t.passerelle.services.identities.openReviews();
      expect(reviews.some((r) => r.accountId === bruno.id && r.idNat === professional(3).idNatPs)).toBe(true);
      expect(await audited(bruno.id)).toContainEqual({ outcome: 'failure', reason: 'national_id_conflict' });
    });

    it('a forged or replayed answer from PSC is refused and audited', async () => {
      const agent = new BrowserAgent();
      const forged = await agent.follow(
        new URL(`${PSC_CALLBACK_PATH}?state=forged&code=abc`, t.issuer),
        t.issuer,
      );
      expect(forged.response?.status).toBe(400);
      expect(agent.lastHtml).toContain('La connexion par Pro Santé Connect n’a pas abouti');
      expect(await audited(null)).toContainEqual({ outcome: 'failure', reason: 'unknown_state' });

      // A real answer replayed in another browser (no interaction cookie): refused.
      const victim = new BrowserAgent();
      const { uid } = await startLogin(victim);
      await toPsc(victim, uid);
      const posted = await victim.postForm(new URL(formAction(victim.lastHtml, '/cps'), pscOrigin()), {
        idNatPs: professional(1).idNatPs,
        authMode: 'CARD',
      });
      const back = await victim.follow(
        new URL(posted.headers.get('location') ?? '', pscOrigin()),
        pscOrigin(),
      );
      const attacker = new BrowserAgent();
      const stolen = await attacker.follow(back.url, t.issuer);
      expect(stolen.response?.status).toBe(400);
      expect(attacker.lastHtml).not.toContain('code=');
      // The victim's own browser still completes (the answer was not consumed by the attacker).
      const done = await followAtPasserelle(victim, back.url);
      expect(done.url.searchParams.get('code')).toBeTruthy();
      // Replaying it once more: the state was single use.
      const replayed = await followThroughConsent(victim, back.url.href, t.issuer);
      expect(replayed.response?.status).toBe(400);
    });

    it('logins through PSC that never came back are purged once expired', async () => {
      const db = t.passerelle.services.database.db;
      const pending = (state: string, minutes: number) => ({
        state,
        interaction_uid: 'gone',
        nonce: 'n',
        code_verifier: 'v',
        expires_at: new Date(Date.now() + minutes * 60_000),
      });
      await db
        .insertInto('psc_login_pending')
        .values([pending('old', -1), pending('live', 5)])
        .execute();
      const { config, identities, logger } = t.passerelle.services;
      if (!config.pscLogin) throw new Error('pscLogin not configured');
      const method = pscLoginMethod({ settings: config.pscLogin, issuer: t.issuer, db, identities, logger });
      expect(await method.purgeExpired()).toBeGreaterThanOrEqual(1);
      const states = await db.selectFrom('psc_login_pending').select('state').execute();
      expect(states.map((r) => r.state)).toContain('live');
      expect(states.map((r) => r.state)).not.toContain('old');
    });

    it('PSC logout tokens that fail a check are refused with 400', async () => {
      const post = (body: string) =>
        fetch(new URL(PSC_BACKCHANNEL_LOGOUT_PATH, t.issuer), {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body,
        });
      const missing = await post('');
      expect(missing.status).toBe(400);
      expect(await missing.json()).toEqual({
        error: 'invalid_request',
        error_description: 'logout_token is required',
      });
      const garbage = await post('logout_token=not.a.jwt');
      expect(garbage.status).toBe(400);
      expect(garbage.headers.get('cache-control')).toBe('no-store');
    });
  });
}
