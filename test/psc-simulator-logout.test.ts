import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CardCertificates } from '../src/accounts/card-certificates.ts';
import { BrowserAgent, formAction, formField } from './helpers/browser-agent.ts';
import { presentCard } from './helpers/card-client.ts';
import { nodeCert, startWithCards } from './helpers/card-server.ts';
import { createUser, discover, redeemCode, registerWebClient } from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { createIgcSantePki, type IgcSantePki } from './helpers/igc-sante-pki.ts';
import type { TestServer } from './helpers/server.ts';
import type { FiOptions } from './simulators/psc/federation.ts';
import {
  BACKCHANNEL_LOGOUT_EVENT,
  type BrokeredSession,
  type LogoutTokenRefusalReason,
} from './simulators/psc/logout.ts';
import { type LogoutTokenOptions, type ScriptedFi, startScriptedFi } from './simulators/psc/scripted-fi.ts';
import { type PscSimulator, startPscSimulator } from './simulators/psc/server.ts';
import {
  ALIAS,
  FI_CLIENT,
  logoutAtPsc,
  SERVICE,
  STRONG_USER,
  serviceConfiguration,
  serviceLogin,
  startLogoutReceiver,
  submit,
  TENANT,
  throughFi,
} from './simulators/psc/testing.ts';

/**
 * Logout both ways between the PSC simulator and an establishment's FI, as Keycloak's identity brokering
 * does it: the FI's back-channel logout token ends the PSC sessions brokered from the FI session (and PSC
 * notifies their services); a service's logout at PSC goes through the FI's end_session endpoint.
 */

const BYE = 'https://drimbox.test/bye';
/** The same establishment FI under three PSC registrations (client ids), one per FI option tested. */
const NO_FRONT = { alias: 'chu-no-front-channel', clientId: 'psc-no-front-channel' };
const SESSION_STATE = { alias: 'chu-session-state', clientId: 'psc-session-state' };
const DMP = {
  clientId: 'dmp',
  clientSecret: 'dmp-secret',
  redirectUris: ['https://dmp.test/cb'],
};

/** The logout token a service received, verified with PSC's keys. */
async function verifiedServiceToken(psc: PscSimulator, token: string | undefined, audience: string) {
  const jwks = createRemoteJWKSet(new URL(`${psc.issuer}/protocol/openid-connect/certs`));
  return (await jwtVerify(token ?? '', jwks, { issuer: psc.issuer, audience, typ: 'logout+jwt' })).payload;
}

/**
 * PSC's redirection to the FI's end_session endpoint: the FI's ID token PSC kept, PSC's return URI for that
 * FI, the PSC session as state (Keycloak's parameters).
 */
function expectFiEndSession(
  url: URL,
  endSessionEndpoint: string,
  psc: PscSimulator,
  brokered: BrokeredSession,
) {
  expect(`${url.origin}${url.pathname}`).toBe(endSessionEndpoint);
  expect(Object.fromEntries(url.searchParams)).toEqual({
    id_token_hint: brokered.fiIdToken,
    post_logout_redirect_uri: psc.brokerLogoutResponseUri(brokered.alias),
    state: brokered.session,
  });
}

describe('PSC simulator: logout with an establishment FI', () => {
  let psc: PscSimulator;
  let fi: ScriptedFi;
  let drimbox: oidc.Configuration;
  let dmp: oidc.Configuration;
  let receiver: Awaited<ReturnType<typeof startLogoutReceiver>>;
  let failingReceiver: Awaited<ReturnType<typeof startLogoutReceiver>>;
  let logins = 0;
  /** How far PSC's clock is behind (a test that needs a short-lived token valid during a slow login). */
  let pscLagMs = 0;
  /** The FI entries' settings: Keycloak's defaults. */
  const common = () => ({
    discoveryUrl: fi.issuer,
    clientSecret: FI_CLIENT.clientSecret,
    tidAllowList: [TENANT],
    amrAllowList: ['hwk', 'mfa'],
  });

  beforeAll(async () => {
    receiver = await startLogoutReceiver();
    failingReceiver = await startLogoutReceiver(500);
    psc = await startPscSimulator({
      now: () => new Date(Date.now() - pscLagMs),
      clients: [
        { ...SERVICE, postLogoutRedirectUris: [BYE], backchannelLogoutUri: receiver.uri },
        { ...DMP, backchannelLogoutUri: failingReceiver.uri },
      ],
    });
    const registration = (alias: string, clientId: string) => ({
      clientId,
      clientSecret: FI_CLIENT.clientSecret,
      redirectUris: [psc.brokerRedirectUri(alias)],
      postLogoutRedirectUris: [psc.brokerLogoutResponseUri(alias)],
      backchannelLogoutUri: psc.backchannelLogoutUri,
    });
    fi = await startScriptedFi({
      clients: [
        registration(ALIAS, FI_CLIENT.clientId),
        registration(NO_FRONT.alias, NO_FRONT.clientId),
        registration(SESSION_STATE.alias, SESSION_STATE.clientId),
      ],
      user: STRONG_USER,
    });
    psc.addFi({ ...common(), alias: ALIAS, clientId: FI_CLIENT.clientId });
    psc.addFi({ ...common(), ...NO_FRONT, logoutUrl: '' });
    psc.addFi({ ...common(), ...SESSION_STATE, logoutSessionId: 'session_state' });
    drimbox = await serviceConfiguration(psc);
    dmp = await serviceConfiguration(psc, DMP);
  });
  afterAll(async () => {
    await psc.close();
    await fi.close();
    await receiver.close();
    await failingReceiver.close();
  });

  /**
   * A new browser logs into the service through the FI (a new FI user, paired at PSC): the service's tokens,
   * the PSC session brokered from the FI session, and that FI session.
   */
  async function delegatedLogin(
    options: { alias?: string; sub?: string; service?: oidc.Configuration } = {},
  ) {
    const n = ++logins;
    fi.user = { ...STRONG_USER, sub: options.sub ?? `local-${n}`, oid: `oid-${n}` };
    const service = options.service ?? drimbox;
    const step = await throughFi(psc, service, fi, options.alias);
    const professional = psc.professionals[n];
    if (!professional) throw new Error('no fixture');
    const back = await submit(psc, step, '/pairing', { idNatPs: professional.idNatPs });
    const tokens = await redeemCode(service, step.login, back.url);
    const fiSession = fi.sessions.at(-1);
    // Each login is a new browser, hence a new PSC session, recorded last.
    const brokered = psc.brokeredSessions().at(-1);
    if (!fiSession || !brokered || brokered.fiSub !== fi.user.sub) throw new Error('no brokered session');
    return { agent: step.agent, tokens, fiSession, brokered };
  }

  const isActive = async (service: oidc.Configuration, accessToken: string) =>
    (await oidc.tokenIntrospection(service, accessToken)).active;

  it("ends the PSC session brokered from the FI session named by the FI's logout token, and notifies the service", async () => {
    const { agent, tokens, fiSession, brokered } = await delegatedLogin();
    expect(brokered).toMatchObject({ alias: ALIAS, fiSub: fiSession.sub, fiSessionId: fiSession.sid });
    expect(decodeJwt(brokered.fiIdToken)).toMatchObject({ iss: fi.issuer, aud: 'psc', sid: fiSession.sid });
    const received = receiver.tokens.length;

    const answer = await fi.sendLogoutToken('psc');
    expect(answer.status).toBe(200);
    expect(answer.headers.get('cache-control')).toBe('no-store');
    expect(await answer.text()).toBe('');

    expect(receiver.tokens).toHaveLength(received + 1);
    const serviceToken = await verifiedServiceToken(psc, receiver.tokens.at(-1), SERVICE.clientId);
    expect(serviceToken).toMatchObject({ sub: tokens.claims()?.sub, sid: tokens.claims()?.sid });
    expect(serviceToken.events).toEqual({ [BACKCHANNEL_LOGOUT_EVENT]: {} });
    expect(psc.events.slice(-2)).toMatchObject([
      {
        kind: 'logout-token',
        outcome: 'accepted',
        aliases: [ALIAS],
        sid: fiSession.sid,
        sessions: [brokered.session],
      },
      {
        kind: 'logout',
        cause: 'fi',
        session: brokered.session,
        accountId: tokens.claims()?.sub,
        alias: ALIAS,
        services: [{ clientId: SERVICE.clientId, delivered: true }],
      },
    ]);
    expect(await isActive(drimbox, tokens.access_token)).toBe(false);
    expect(psc.brokeredSessions().map((b) => b.session)).not.toContain(brokered.session);
    // No single sign-on at PSC any more: the login page is shown again.
    await agent.follow((await serviceLogin(drimbox)).url, new URL(psc.issuer).origin);
    expect(agent.lastHtml).toContain('/cps"');
  });

  it('without sid, ends every PSC session of that FI user', async () => {
    const first = await delegatedLogin({ sub: 'local-shared' });
    const second = await delegatedLogin({ sub: 'local-shared' });
    const other = await delegatedLogin();
    const answer = await fi.sendLogoutToken('psc', { sid: null, sub: 'local-shared' });
    expect(answer.status).toBe(200);
    expect(psc.events.at(-3)).toMatchObject({
      kind: 'logout-token',
      outcome: 'accepted',
      sid: undefined,
      sub: 'local-shared',
      sessions: [first.brokered.session, second.brokered.session],
    });
    expect(await isActive(drimbox, first.tokens.access_token)).toBe(false);
    expect(await isActive(drimbox, second.tokens.access_token)).toBe(false);
    expect(await isActive(drimbox, other.tokens.access_token)).toBe(true);
  });

  const refusals: [string, LogoutTokenOptions, LogoutTokenRefusalReason][] = [
    ['signed with another key', { foreignKey: true }, 'bad_signature'],
    ['from another issuer', { claims: { iss: 'http://127.0.0.1:9/elsewhere' } }, 'iss_unknown'],
    ['for another client', { claims: { aud: 'someone-else' } }, 'aud_mismatch'],
    ['authorized for another client (azp)', { claims: { azp: 'someone-else' } }, 'azp_mismatch'],
    [
      'expired a second ago (no skew)',
      { claims: { exp: Math.floor(Date.now() / 1000) - 1 } },
      'token_expired',
    ],
    ['without the back-channel logout event', { claims: { events: undefined } }, 'events_missing'],
    ['with a nonce', { claims: { nonce: 'n-0S6_WzA2Mj' } }, 'nonce_present'],
    ['issued an hour ago', { claims: { iat: Math.floor(Date.now() / 1000) - 3600 } }, 'iat_stale'],
    ['naming neither a session nor a user', { sid: null, sub: null }, 'sid_and_sub_missing'],
  ];
  for (const [what, options, reason] of refusals) {
    it(`refuses a logout token ${what} (400, ${reason}); the session lives on`, async () => {
      const { tokens } = await delegatedLogin();
      const received = receiver.tokens.length;
      const sessions = psc.brokeredSessions().length;
      const answer = await fi.sendLogoutToken('psc', options);
      expect(answer.status).toBe(400);
      expect(answer.headers.get('cache-control')).toBe('no-store');
      expect(await answer.json()).toMatchObject({ error: 'invalid_request' });
      expect(psc.events.at(-1)).toMatchObject({ kind: 'logout-token', outcome: 'refused', reason });
      expect(receiver.tokens).toHaveLength(received);
      expect(psc.brokeredSessions()).toHaveLength(sessions);
      expect(await isActive(drimbox, tokens.access_token)).toBe(true);
    });
  }

  it('refuses a replayed logout token (same jti): 400, the session lives on', async () => {
    const jti = 'jti-once';
    // Accepted once, for an FI session PSC does not know.
    expect((await fi.sendLogoutToken('psc', { sid: 'unknown-session', claims: { jti } })).status).toBe(200);
    const { tokens } = await delegatedLogin();
    const answer = await fi.sendLogoutToken('psc', { claims: { jti } });
    expect(answer.status).toBe(400);
    expect(psc.events.at(-1)).toMatchObject({
      kind: 'logout-token',
      outcome: 'refused',
      reason: 'jti_replayed',
    });
    expect(await isActive(drimbox, tokens.access_token)).toBe(true);
  });

  it('answers 504 when a service does not acknowledge its logout token (Keycloak), the session ended', async () => {
    const { tokens } = await delegatedLogin({ service: dmp });
    const received = failingReceiver.tokens.length;
    const answer = await fi.sendLogoutToken('psc');
    expect(answer.status).toBe(504);
    expect(failingReceiver.tokens).toHaveLength(received + 1);
    expect(psc.events.at(-1)).toMatchObject({
      kind: 'logout',
      cause: 'fi',
      services: [{ clientId: DMP.clientId, delivered: false }],
    });
    expect(await isActive(dmp, tokens.access_token)).toBe(false);
  });

  it("with logoutSessionId 'session_state' (Keycloak before 2026), a sid matches nothing; the FI user does", async () => {
    const { tokens, brokered } = await delegatedLogin({ alias: SESSION_STATE.alias });
    expect(brokered.fiSessionId).toBeUndefined();
    expect((await fi.sendLogoutToken(SESSION_STATE.clientId)).status).toBe(200);
    expect(psc.events.at(-1)).toMatchObject({ kind: 'logout-token', outcome: 'accepted', sessions: [] });
    expect(await isActive(drimbox, tokens.access_token)).toBe(true);
    expect((await fi.sendLogoutToken(SESSION_STATE.clientId, { sid: null })).status).toBe(200);
    expect(psc.events.at(-1)).toMatchObject({ kind: 'logout', cause: 'fi', session: brokered.session });
    expect(await isActive(drimbox, tokens.access_token)).toBe(false);
  });

  it("a service's logout at PSC goes through the FI's end_session endpoint with the FI's ID token, then back", async () => {
    const { agent, tokens, brokered } = await delegatedLogin();
    const received = receiver.tokens.length;
    const toFi = await logoutAtPsc(psc, drimbox, agent, tokens.id_token, BYE);
    expectFiEndSession(toFi, `${fi.issuer}/session/end`, psc, brokered);
    // The PSC session ends when the browser comes back (Keycloak's order).
    expect(receiver.tokens).toHaveLength(received);
    expect(await isActive(drimbox, tokens.access_token)).toBe(true);

    const backAtPsc = await agent.follow(toFi, fi.issuer);
    expect(fi.endSessionCalls.at(-1)).toEqual({
      idTokenHint: brokered.fiIdToken,
      postLogoutRedirectUri: psc.brokerLogoutResponseUri(ALIAS),
      state: brokered.session,
      clientId: undefined,
      // The browser's own request, with its cookies at the FI.
      cookie: expect.stringContaining('fi_session='),
    });
    const atService = await agent.follow(backAtPsc.url, new URL(psc.issuer).origin);
    expect(atService.url.href).toBe(`${BYE}?state=after-logout`);
    expect(receiver.tokens).toHaveLength(received + 1);
    expect(await isActive(drimbox, tokens.access_token)).toBe(false);
    expect(psc.events.slice(-3)).toMatchObject([
      {
        kind: 'fi-logout',
        clientId: SERVICE.clientId,
        alias: ALIAS,
        session: brokered.session,
        step: 'redirected',
      },
      { kind: 'fi-logout', clientId: SERVICE.clientId, session: brokered.session, step: 'returned' },
      {
        kind: 'logout',
        cause: 'service',
        clientId: SERVICE.clientId,
        session: brokered.session,
        accountId: tokens.claims()?.sub,
        services: [{ clientId: SERVICE.clientId, delivered: true }],
      },
    ]);
    expect(psc.brokeredSessions().map((b) => b.session)).not.toContain(brokered.session);
    expect(agent.cookieHeader()).not.toContain('psc_session');
    // No single sign-on at PSC any more.
    await agent.follow((await serviceLogin(drimbox)).url, new URL(psc.issuer).origin);
    expect(agent.lastHtml).toContain('/cps"');
  });

  it('without a logout URL (logoutUrl empty) ends the PSC session without sending the browser to the FI', async () => {
    const { agent, tokens, brokered } = await delegatedLogin({ alias: NO_FRONT.alias });
    const calls = fi.endSessionCalls.length;
    expect((await logoutAtPsc(psc, drimbox, agent, tokens.id_token, BYE)).href).toBe(
      `${BYE}?state=after-logout`,
    );
    expect(fi.endSessionCalls).toHaveLength(calls);
    expect(psc.events.at(-1)).toMatchObject({
      kind: 'fi-logout',
      session: brokered.session,
      step: 'no_logout_url',
    });
    expect(await isActive(drimbox, tokens.access_token)).toBe(false);
  });

  /** The ALIAS entry with Keycloak's logout options, for one test. */
  async function withLogoutOptions(options: Partial<FiOptions>, test: () => Promise<void>) {
    psc.addFi({ ...common(), alias: ALIAS, clientId: FI_CLIENT.clientId, ...options });
    try {
      await test();
    } finally {
      psc.addFi({ ...common(), alias: ALIAS, clientId: FI_CLIENT.clientId });
    }
  }

  it('sends the browser with a 302 and the stored ID token as is, even expired (not refreshed)', async () => {
    // A 1-second ID token from the FI, which PSC checks at the login with its clock a minute behind: still
    // valid then however slow the machine is; it has expired for real two seconds later.
    fi.idTokenTtlSeconds = 1;
    pscLagMs = 60_000;
    const { agent, tokens, brokered } = await delegatedLogin().finally(() => {
      fi.idTokenTtlSeconds = 600;
      pscLagMs = 0;
    });
    await new Promise((resolve) => setTimeout(resolve, 2100));
    expect(decodeJwt(brokered.fiIdToken).exp).toBeLessThan(Date.now() / 1000);
    const tokenRequests = fi.tokenRequests.length;
    const url = oidc.buildEndSessionUrl(drimbox, {
      id_token_hint: tokens.id_token ?? '',
      post_logout_redirect_uri: BYE,
      state: 'after-logout',
    });
    const answer = await agent.request(url);
    expect(answer.status).toBe(302);
    const toFi = new URL(answer.headers.get('location') ?? '');
    expectFiEndSession(toFi, `${fi.issuer}/session/end`, psc, brokered);
    await agent.follow(toFi, fi.issuer);
    expect(fi.endSessionCalls.at(-1)?.idTokenHint).toBe(brokered.fiIdToken);
    // No refresh_token grant (older Keycloak refreshed an expired token first).
    expect(fi.tokenRequests).toHaveLength(tokenRequests);
  });

  it('sendClientIdOnLogout adds client_id; sendIdTokenOnLogout false leaves id_token_hint out', async () => {
    const { agent, tokens, brokered } = await delegatedLogin();
    await withLogoutOptions({ sendClientIdOnLogout: true, sendIdTokenOnLogout: false }, async () => {
      const toFi = await logoutAtPsc(psc, drimbox, agent, tokens.id_token, BYE);
      expect(Object.fromEntries(toFi.searchParams)).toEqual({
        state: brokered.session,
        client_id: FI_CLIENT.clientId,
        post_logout_redirect_uri: psc.brokerLogoutResponseUri(ALIAS),
      });
      // The scripted FI finds the client by client_id and sends the browser back: the logout completes.
      const back = await agent.follow(toFi, fi.issuer);
      const atService = await agent.follow(back.url, new URL(psc.issuer).origin);
      expect(atService.url.href).toBe(`${BYE}?state=after-logout`);
    });
  });

  it('backchannelSupported: a server-side GET (state, id_token_hint, no cookie) and the usual logout at PSC; failures only logged', async () => {
    await withLogoutOptions({ backchannelSupported: true, sendClientIdOnLogout: true }, async () => {
      for (const status of [200, 500]) {
        fi.faults.endSessionStatus = status;
        const { agent, tokens, brokered } = await delegatedLogin();
        const calls = fi.endSessionCalls.length;
        const atService = await logoutAtPsc(psc, drimbox, agent, tokens.id_token, BYE);
        expect(atService.href).toBe(`${BYE}?state=after-logout`);
        expect(fi.endSessionCalls.slice(calls)).toEqual([
          {
            idTokenHint: brokered.fiIdToken,
            postLogoutRedirectUri: undefined,
            state: brokered.session,
            clientId: FI_CLIENT.clientId,
            cookie: undefined,
          },
        ]);
        expect(psc.events.slice(-2)).toMatchObject([
          { kind: 'logout', cause: 'service', session: brokered.session },
          {
            kind: 'fi-logout',
            session: brokered.session,
            step: 'backchannel',
            status,
            ...(status === 200 ? {} : { error: 'HTTP 500' }),
          },
        ]);
        expect(await isActive(drimbox, tokens.access_token)).toBe(false);
      }
    });
    fi.faults = {};
  });

  it("shows Keycloak's error page when the FI's logout token ended the session while the browser was at the FI", async () => {
    const { agent, tokens, fiSession, brokered } = await delegatedLogin();
    const toFi = await logoutAtPsc(psc, drimbox, agent, tokens.id_token, BYE);
    const received = receiver.tokens.length;
    // The FI ends its session and, as Passerelle does, notifies PSC before sending the browser back.
    expect((await fi.sendLogoutToken('psc', { sid: fiSession.sid })).status).toBe(200);
    expect(receiver.tokens).toHaveLength(received + 1);
    expect(psc.events.at(-1)).toMatchObject({
      kind: 'logout',
      cause: 'fi',
      session: brokered.session,
      services: [{ clientId: SERVICE.clientId, delivered: true }],
    });
    const backAtPsc = await agent.follow(toFi, fi.issuer);
    const page = await agent.follow(backAtPsc.url, new URL(psc.issuer).origin);
    expect(page.response?.status).toBe(400);
    expect(agent.lastHtml).toContain('Erreur inattendue');
    expect(psc.events.at(-1)).toMatchObject({
      kind: 'fi-logout',
      session: brokered.session,
      step: 'session_not_found',
    });
  });
});

const RENNES = { finess: '350005179', name: 'CHU de Rennes', tid: 'tid-rennes-0001', pscAlias: 'chu-rennes' };

let pki: IgcSantePki;
beforeAll(async () => {
  pki = await createIgcSantePki();
});
afterAll(() => pki?.remove());

for (const kind of databasesUnderTest()) {
  describe(`logout at Passerelle as FI reaches PSC and the service [${kind}]`, () => {
    let t: TestServer;
    let psc: PscSimulator;
    let receiver: Awaited<ReturnType<typeof startLogoutReceiver>>;
    let service: oidc.Configuration;
    let fiOptions: FiOptions;

    beforeAll(async () => {
      receiver = await startLogoutReceiver();
      t = await startWithCards(kind, pki, { establishments: [RENNES] });
      const cecile = await createUser(t, 'cecile.sage');
      await new CardCertificates(t.passerelle.services.database.db).register(
        cecile.id,
        nodeCert(pki.cards.cps),
      );
      psc = await startPscSimulator({
        clients: [{ ...SERVICE, postLogoutRedirectUris: [BYE], backchannelLogoutUri: receiver.uri }],
      });
      const secret = await registerWebClient(t, 'psc-rennes', {
        redirect_uris: [psc.brokerRedirectUri(RENNES.pscAlias)],
        post_logout_redirect_uris: [psc.brokerLogoutResponseUri(RENNES.pscAlias)],
        backchannel_logout_uri: psc.backchannelLogoutUri,
        backchannel_logout_session_required: true,
        psc_establishment: RENNES.finess,
        // Keycloak's broker by default: client_secret_post, no PKCE.
        token_endpoint_auth_method: 'client_secret_post',
        pkce_required: false,
        first_party: true,
      });
      fiOptions = {
        alias: RENNES.pscAlias,
        discoveryUrl: t.issuer,
        clientId: 'psc-rennes',
        clientSecret: secret,
        tidAllowList: [RENNES.tid],
        amrAllowList: ['sc', 'hwk'],
      };
      psc.addFi(fiOptions);
      service = await serviceConfiguration(psc);
    });
    afterAll(async () => {
      await psc?.close();
      await t?.close();
      await receiver?.close();
    });

    /** A new browser logs into the service through PSC and Passerelle (CPS card; pairing, later "Confirmer"). */
    async function delegatedLogin() {
      const pscOrigin = new URL(psc.issuer).origin;
      const agent = new BrowserAgent();
      const login = await serviceLogin(service, { kc_idp_hint: RENNES.pscAlias });
      const atPasserelle = await agent.follow(login.url, pscOrigin);
      const page = await agent.follow(atPasserelle.url, t.issuer);
      const uid = /\/interaction\/([^/?"]+)/.exec(page.url.pathname)?.[1] ?? '';
      await agent.follow(new URL(`/interaction/${uid}?method=smartcard`, t.issuer), t.issuer);
      const backToPsc = await presentCard(agent, t.issuer, pki.cards.cps, pki.serverCa.pem);
      const step = { agent, login, page: await agent.follow(backToPsc.url, pscOrigin) };
      const idNatPs = psc.professionals[0]?.idNatPs ?? '';
      const atService = agent.lastHtml.includes('/pairing"')
        ? await submit(psc, step, '/pairing', { idNatPs })
        : await submit(psc, step, '/confirm');
      const tokens = await redeemCode(service, login, atService.url);
      const brokered = psc.brokeredSessions().at(-1);
      if (!brokered) throw new Error('no brokered session');
      return { agent, tokens, brokered };
    }

    it('the user logs out at Passerelle: its logout token ends the brokered PSC session, PSC notifies the service', async () => {
      const { agent, tokens, brokered } = await delegatedLogin();
      const passerelleSid = brokered.fiSessionId;
      expect(passerelleSid).toEqual(expect.any(String));
      const received = receiver.tokens.length;

      // Logout at Passerelle (RP-initiated, with the ID token PSC received), confirmed by the user.
      const passerelle = await discover(t, 'psc-rennes', oidc.None());
      await agent.follow(
        oidc.buildEndSessionUrl(passerelle, { id_token_hint: brokered.fiIdToken }),
        t.issuer,
      );
      const confirmed = await agent.postForm(
        new URL(formAction(agent.lastHtml, '/session/end/confirm'), t.issuer),
        {
          xsrf: formField(agent.lastHtml, 'xsrf') ?? '',
          logout: 'yes',
        },
      );
      expect(confirmed.status).toBe(303);

      // Passerelle delivered its logout token before answering; PSC ended the session and told the service.
      expect(psc.events.slice(-2)).toMatchObject([
        {
          kind: 'logout-token',
          outcome: 'accepted',
          aliases: [RENNES.pscAlias],
          sid: passerelleSid,
          sessions: [brokered.session],
        },
        {
          kind: 'logout',
          cause: 'fi',
          alias: RENNES.pscAlias,
          services: [{ clientId: SERVICE.clientId, delivered: true }],
        },
      ]);
      expect(receiver.tokens).toHaveLength(received + 1);
      expect(await verifiedServiceToken(psc, receiver.tokens.at(-1), SERVICE.clientId)).toMatchObject({
        sub: tokens.claims()?.sub,
        sid: tokens.claims()?.sid,
      });
      expect((await oidc.tokenIntrospection(service, tokens.access_token)).active).toBe(false);
      expect(psc.brokeredSessions()).toEqual([]);
    });

    it("with an older PSC that matches logout tokens on session_state, Passerelle's logout still ends the PSC session", async () => {
      psc.addFi({ ...fiOptions, logoutSessionId: 'session_state' });
      try {
        const { agent, brokered } = await delegatedLogin();
        // Passerelle's token response carried session_state = its sid: PSC keyed the session on it.
        expect(brokered.fiSessionId).toEqual(expect.any(String));
        const passerelle = await discover(t, 'psc-rennes', oidc.None());
        await agent.follow(
          oidc.buildEndSessionUrl(passerelle, { id_token_hint: brokered.fiIdToken }),
          t.issuer,
        );
        await agent.postForm(new URL(formAction(agent.lastHtml, '/session/end/confirm'), t.issuer), {
          xsrf: formField(agent.lastHtml, 'xsrf') ?? '',
          logout: 'yes',
        });
        expect(psc.events.slice(-2)).toMatchObject([
          { kind: 'logout-token', outcome: 'accepted', sessions: [brokered.session] },
          { kind: 'logout', cause: 'fi', session: brokered.session },
        ]);
      } finally {
        psc.addFi(fiOptions);
      }
    });

    it("a service's logout at PSC goes through Passerelle, which does not send PSC a logout token for it: back at the service", async () => {
      const { agent, tokens, brokered } = await delegatedLogin();
      const received = receiver.tokens.length;
      const events = psc.events.length;
      const toPasserelle = await logoutAtPsc(psc, service, agent, tokens.id_token, BYE);
      expectFiEndSession(toPasserelle, `${t.issuer}/session/end`, psc, brokered);
      // Passerelle accepts the request (PSC's ID token, its registered return URI) and asks for confirmation.
      await agent.follow(toPasserelle, t.issuer);
      const confirmed = await agent.postForm(
        new URL(formAction(agent.lastHtml, '/session/end/confirm'), t.issuer),
        { xsrf: formField(agent.lastHtml, 'xsrf') ?? '', logout: 'yes' },
      );
      const backAtPsc = new URL(confirmed.headers.get('location') ?? '');
      expect(backAtPsc.href).toBe(
        `${psc.brokerLogoutResponseUri(RENNES.pscAlias)}?state=${encodeURIComponent(brokered.session)}`,
      );
      // PSC initiated the logout: Passerelle sent it no logout token (which would end PSC's session while
      // the browser is away, keycloak/keycloak#45536); the PSC session is still there for the return.
      expect(psc.events.slice(events).some((e) => e.kind === 'logout-token')).toBe(false);
      expect(receiver.tokens).toHaveLength(received);
      // The trail says so: no token sent to the client that asked for the logout.
      const recorded = await t.passerelle.services.database.db
        .selectFrom('audit_event')
        .select(['outcome', 'reason', 'detail'])
        .where('type', '=', 'logout.backchannel')
        .where('client_id', '=', 'psc-rennes')
        .orderBy('seq', 'desc')
        .executeTakeFirst();
      expect(recorded).toMatchObject({
        outcome: 'success',
        reason: 'client_initiated',
        detail: { sent: false },
      });
      // Back at PSC: it ends its session, notifies the service and returns to it.
      const atService = await agent.follow(backAtPsc, new URL(psc.issuer).origin);
      expect(atService.url.href).toBe(`${BYE}?state=after-logout`);
      expect(psc.events.slice(-2)).toMatchObject([
        { kind: 'fi-logout', session: brokered.session, step: 'returned' },
        {
          kind: 'logout',
          cause: 'service',
          session: brokered.session,
          services: [{ clientId: SERVICE.clientId, delivered: true }],
        },
      ]);
      expect(receiver.tokens).toHaveLength(received + 1);
      expect((await oidc.tokenIntrospection(service, tokens.access_token)).active).toBe(false);
      // Passerelle's session ended too: PSC's next delegated login meets Passerelle's login page.
      const again = await serviceLogin(service, { kc_idp_hint: RENNES.pscAlias });
      const atPasserelle = await agent.follow(again.url, new URL(psc.issuer).origin);
      const page = await agent.follow(atPasserelle.url, t.issuer);
      expect(page.url.pathname).toMatch(/^\/interaction\//);
    });
  });
}
