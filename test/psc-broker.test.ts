import { decodeJwt } from 'jose';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CardCertificates } from '../src/accounts/card-certificates.ts';
import { ConfigError, loadConfig } from '../src/config/load.ts';
import { retiredKeyLifetime, rotateSigningKeys } from '../src/oidc/keys.ts';
import { BrowserAgent, formAction, formField } from './helpers/browser-agent.ts';
import { presentCard } from './helpers/card-client.ts';
import { nodeCert, startWithCards } from './helpers/card-server.ts';
import { createUser, redeemCode } from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { createIgcSantePki, type IgcSantePki } from './helpers/igc-sante-pki.ts';
import type { TestServer } from './helpers/server.ts';
import type { FiOptions } from './simulators/psc/federation.ts';
import { PSC_SESSION_COOKIES, type PscSimulator, startPscSimulator } from './simulators/psc/server.ts';
import { logoutAtPsc, SERVICE, serviceConfiguration, serviceLogin } from './simulators/psc/testing.ts';

/**
 * Passerelle as FI habilité against Keycloak's broker as PSC runs it (test/simulators/psc, which follows
 * ../shared/reference/keycloak-broker.md): Keycloak's defaults, then each broker option, each with PSC's
 * client declared in Passerelle's configuration file as the ANS registration would have it. The browser
 * is an HTTP agent; the authentication is the CPS card (two factors, phishing resistant).
 */

const RENNES = { finess: '350005179', name: 'CHU de Rennes', tid: 'tid-rennes-0001', pscAlias: 'chu-rennes' };
const SECRET = 'psc-broker-test-secret-0123456789abcdef';
const BYE = 'https://drimbox.test/bye';

/**
 * One PSC registration per broker setting: PSC's alias for the establishment (kc_idp_hint), the client
 * declared at Passerelle (configuration file keys) and the broker's options (Keycloak's names).
 */
interface Registration {
  client: Record<string, unknown>;
  fi: Partial<FiOptions>;
}
const REGISTRATIONS = {
  // Keycloak's defaults: client_secret_post, no PKCE (Passerelle: pkceRequired false).
  defaults: { client: { pkceRequired: false }, fi: {} },
  basic: {
    client: { tokenEndpointAuthMethod: 'client_secret_basic', pkceRequired: false },
    fi: { clientAuthMethod: 'client_secret_basic' },
  },
  'private-key-jwt': {
    client: { tokenEndpointAuthMethod: 'private_key_jwt', pkceRequired: false },
    fi: { clientAuthMethod: 'private_key_jwt' },
  },
  'private-key-jwt-issuer': {
    client: { tokenEndpointAuthMethod: 'private_key_jwt', pkceRequired: false },
    fi: { clientAuthMethod: 'private_key_jwt' },
  },
  // PSC with PKCE switched on, and a Passerelle registration keeping PKCE required (its default).
  s256: { client: {}, fi: { pkceEnabled: true, pkceMethod: 'S256' } },
  plain: { client: {}, fi: { pkceEnabled: true, pkceMethod: 'plain' } },
  'no-pkce-sent': { client: {}, fi: {} },
  // Every parameter Keycloak can forward, and client_id at logout.
  forwarding: {
    client: { pkceRequired: false },
    fi: {
      loginHint: true,
      passMaxAge: true,
      uiLocales: true,
      acceptsPromptNoneForwardFromClient: true,
      sendClientIdOnLogout: true,
    },
  },
  'short-state': { client: { pkceRequired: false }, fi: { requiresShortStateParameter: true } },
  'backchannel-logout': { client: { pkceRequired: false }, fi: { backchannelSupported: true } },
} satisfies Record<string, Registration>;
type Alias = keyof typeof REGISTRATIONS;
const ALIASES = Object.keys(REGISTRATIONS) as Alias[];
const clientIdOf = (alias: Alias) => `psc-${alias}`;

/** What PSC sent to Passerelle's token endpoint. */
interface TokenCall {
  clientId: string;
  basic: boolean;
  secretInBody: boolean;
  assertion: Record<string, unknown> | undefined;
  assertionAlg: string | undefined;
  codeVerifier: boolean;
}

let pki: IgcSantePki;
beforeAll(async () => {
  pki = await createIgcSantePki();
});
afterAll(() => pki?.remove());

describe('configuration of a PSC client', () => {
  const load = (client: Record<string, unknown>) =>
    loadConfig({
      env: {},
      overrides: {
        demo: true,
        establishments: [RENNES],
        clients: [{ clientId: 'psc', redirectUris: ['https://psc.test/cb'], ...client }],
      },
    }).config.clients[0];
  it('defaults to client_secret_post, Keycloak’s default; PKCE required unless waived', () => {
    expect(load({ pscEstablishment: RENNES.finess, clientSecret: SECRET })).toMatchObject({
      tokenEndpointAuthMethod: 'client_secret_post',
      pkceRequired: true,
    });
    expect(load({ clientSecret: SECRET })?.tokenEndpointAuthMethod).toBe('client_secret_basic');
  });
  it('a public client cannot waive PKCE: the error names the key', () => {
    expect(() => load({ tokenEndpointAuthMethod: 'none', pkceRequired: false })).toThrow(ConfigError);
    expect(() => load({ tokenEndpointAuthMethod: 'none', pkceRequired: false })).toThrow(
      /clients\.0\.pkceRequired.*cannot be false for a public client/,
    );
  });
});

for (const kind of databasesUnderTest()) {
  describe(`Passerelle with Keycloak's broker, defaults and options [${kind}]`, () => {
    let t: TestServer;
    let psc: PscSimulator;
    let service: oidc.Configuration;
    let cecile: { id: string; username: string };
    const tokenCalls: TokenCall[] = [];
    const pscOrigin = () => new URL(psc.issuer).origin;

    beforeAll(async () => {
      psc = await startPscSimulator({
        // PSC checks Passerelle's 2-second ID tokens with its clock a minute behind: valid at each login
        // however slow the machine is (they expire for real before the logout that needs them expired).
        now: () => new Date(Date.now() - 60_000),
        clients: [{ ...SERVICE, postLogoutRedirectUris: [BYE] }],
      });
      const certs = `${psc.issuer}/protocol/openid-connect/certs`;
      t = await startWithCards(kind, pki, {
        establishments: [RENNES],
        // ID tokens expire after 2 s: the one PSC keeps is expired when it comes back at logout.
        tokens: { idTokenTtl: 2 },
        clients: ALIASES.map((alias) => {
          const { client }: Registration = REGISTRATIONS[alias];
          const jwt = client.tokenEndpointAuthMethod === 'private_key_jwt';
          return {
            clientId: clientIdOf(alias),
            clientName: `Pro Santé Connect (${alias})`,
            redirectUris: [psc.brokerRedirectUri(alias)],
            postLogoutRedirectUris: [psc.brokerLogoutResponseUri(alias)],
            backchannelLogoutUri: psc.backchannelLogoutUri,
            pscEstablishment: RENNES.finess,
            firstParty: true,
            scope: 'openid',
            ...(jwt ? { jwksUri: certs } : { clientSecret: SECRET }),
            ...client,
          };
        }),
      });
      for (const alias of ALIASES) {
        const audience = alias === 'private-key-jwt-issuer' ? { clientAssertionAudience: t.issuer } : {};
        psc.addFi({
          alias,
          discoveryUrl: t.issuer,
          clientId: clientIdOf(alias),
          clientSecret: SECRET,
          tidAllowList: [RENNES.tid],
          amrAllowList: ['sc', 'pin', 'hwk', 'mfa'],
          ...REGISTRATIONS[alias].fi,
          ...audience,
        });
      }
      service = await serviceConfiguration(psc);
      cecile = await createUser(t, 'cecile.sage');
      await new CardCertificates(t.passerelle.services.database.db).register(
        cecile.id,
        nodeCert(pki.cards.cps),
      );
      t.passerelle.services.host.provider.on('grant.success', (ctx: KoaContextWithOIDC) => {
        const params = ctx.oidc.params ?? {};
        const assertion = typeof params.client_assertion === 'string' ? params.client_assertion : undefined;
        tokenCalls.push({
          clientId: ctx.oidc.client?.clientId ?? '',
          basic: /^Basic /.test(ctx.get('authorization')),
          secretInBody: typeof params.client_secret === 'string',
          assertion: assertion ? decodeJwt(assertion) : undefined,
          assertionAlg: assertion
            ? (JSON.parse(atob(assertion.split('.')[0] ?? '')) as { alg: string }).alg
            : undefined,
          codeVerifier: typeof params.code_verifier === 'string',
        });
      });
    });
    afterAll(async () => {
      await psc?.close();
      await t?.close();
    });

    /** The service sends a browser to PSC with kc_idp_hint: where PSC sends it at Passerelle. */
    const toPasserelle = async (agent: BrowserAgent, alias: Alias, params: Record<string, string> = {}) => {
      const login = await serviceLogin(service, { kc_idp_hint: alias, ...params });
      const atPasserelle = await agent.follow(login.url, pscOrigin());
      expect(atPasserelle.url.origin, alias).toBe(new URL(t.issuer).origin);
      return { login, request: atPasserelle.url };
    };
    /** The card on Passerelle's page the agent shows; where the browser goes back to PSC. */
    const card = async (agent: BrowserAgent, page: URL) => {
      const uid = /\/interaction\/([^/?"]+)/.exec(page.pathname)?.[1] ?? '';
      await agent.follow(new URL(`/interaction/${uid}?method=smartcard`, t.issuer), t.issuer);
      return (await presentCard(agent, t.issuer, pki.cards.cps, pki.serverCa.pem)).url;
    };
    /** PSC's page after Passerelle's answer; pairs the first time, confirms afterwards; the service's tokens. */
    const finishAtPsc = async (
      agent: BrowserAgent,
      back: URL,
      login: Awaited<ReturnType<typeof toPasserelle>>['login'],
    ) => {
      await agent.follow(back, pscOrigin());
      const pairing = agent.lastHtml.includes('/pairing"');
      const fields: Record<string, string> = pairing ? { idNatPs: psc.professionals[3]?.idNatPs ?? '' } : {};
      const posted = await agent.postForm(
        new URL(formAction(agent.lastHtml, pairing ? '/pairing' : '/confirm'), pscOrigin()),
        fields,
      );
      const atService = await agent.follow(
        new URL(posted.headers.get('location') ?? '', pscOrigin()),
        pscOrigin(),
      );
      return redeemCode(service, login, atService.url);
    };
    /** A full delegated login in a new browser: the card at Passerelle, then PSC. */
    const delegatedLogin = async (alias: Alias, params: Record<string, string> = {}) => {
      const agent = new BrowserAgent();
      const { login, request } = await toPasserelle(agent, alias, params);
      const page = await agent.follow(request, t.issuer);
      const back = await card(agent, page.url);
      expect(back.href.startsWith(psc.brokerRedirectUri(alias)), `${alias}: ${back.href}`).toBe(true);
      const tokens = await finishAtPsc(agent, back, login);
      return { agent, request, back, tokens };
    };
    /** The Passerelle session (uid) of the agent's session cookie. */
    const sessionUidOf = async (agent: BrowserAgent) => {
      const id = /(?:^|; )_session=([^;]+)/.exec(agent.cookieHeader())?.[1] ?? '';
      const session = await t.passerelle.services.host.provider.Session.find(id);
      if (!session?.uid) throw new Error('no Passerelle session in this browser');
      return session.uid;
    };
    const accepted = (since: number) => psc.events.slice(since).find((e) => e.kind === 'accepted');
    const lastTokenCall = (alias: Alias) => tokenCalls.filter((c) => c.clientId === clientIdOf(alias)).at(-1);

    it('Keycloak’s defaults: no PKCE, client_secret_post, a long state with dots returned as is, nonce, scope openid, acr_values forwarded', async () => {
      const before = psc.events.length;
      const { request, back, tokens } = await delegatedLogin('defaults');
      const params = Object.fromEntries(request.searchParams);
      expect(params).toMatchObject({ response_type: 'code', scope: 'openid', acr_values: 'eidas1' });
      expect(params.code_challenge).toBeUndefined();
      expect(params.nonce).toMatch(/^[\w-]{22}$/);
      const absent = [
        'prompt',
        'login_hint',
        'max_age',
        'ui_locales',
        'kc_idp_hint',
        'response_mode',
        'claims',
      ];
      for (const name of [...absent, 'request', 'request_uri', 'id_token_hint'])
        expect(params[name], name).toBeUndefined();
      // Keycloak picks keys by kid and alg among those with use=sig.
      const jwks = (await (await fetch(`${t.issuer}/jwks`)).json()) as { keys: Record<string, unknown>[] };
      for (const key of jwks.keys)
        expect(key, String(key.kid)).toMatchObject({ kid: expect.any(String), use: 'sig' });
      // <code>.<tab>.<client>.<clientData>: long, with dots, returned unchanged.
      expect(params.state?.split('.')).toHaveLength(4);
      expect(params.state?.length).toBeGreaterThan(100);
      expect(back.searchParams.get('state')).toBe(params.state);
      expect(back.searchParams.get('iss')).toBe(t.issuer);
      expect(lastTokenCall('defaults')).toMatchObject({
        basic: false,
        secretInBody: true,
        codeVerifier: false,
      });
      expect(accepted(before)).toMatchObject({ kind: 'accepted', login: { oid: cecile.id, acr: 'eidas1' } });
      expect(tokens.claims()?.SubjectNameID).toBe(psc.professionals[3]?.idNatPs);
    });

    it('client_secret_basic, URL-encoded as Keycloak sends it since 26.4.2', async () => {
      const before = psc.events.length;
      await delegatedLogin('basic');
      expect(lastTokenCall('basic')).toMatchObject({ basic: true, secretInBody: false });
      expect(accepted(before)).toMatchObject({ kind: 'accepted' });
    });

    it('private_key_jwt signed RS256 with PSC’s realm key, aud = the token endpoint URL or the issuer', async () => {
      for (const alias of ['private-key-jwt', 'private-key-jwt-issuer'] as const) {
        const before = psc.events.length;
        await delegatedLogin(alias);
        const call = lastTokenCall(alias);
        expect(call?.assertionAlg, alias).toBe('RS256');
        expect(call?.assertion, alias).toMatchObject({ iss: clientIdOf(alias), sub: clientIdOf(alias) });
        expect(call?.assertion?.aud, alias).toBe(
          alias === 'private-key-jwt' ? `${t.issuer}/token` : t.issuer,
        );
        expect(call?.secretInBody, alias).toBe(false);
        expect(accepted(before), alias).toMatchObject({ kind: 'accepted' });
      }
    });

    it('PKCE: S256 accepted; plain (the console’s preselection) and a missing challenge refused where PKCE is required', async () => {
      const before = psc.events.length;
      const { request } = await delegatedLogin('s256');
      expect(request.searchParams.get('code_challenge_method')).toBe('S256');
      expect(lastTokenCall('s256')?.codeVerifier).toBe(true);
      expect(accepted(before)).toMatchObject({ kind: 'accepted' });

      for (const alias of ['plain', 'no-pkce-sent'] as const) {
        const agent = new BrowserAgent();
        const { request: sent } = await toPasserelle(agent, alias);
        expect(sent.searchParams.get('code_challenge_method') ?? undefined, alias).toBe(
          alias === 'plain' ? 'plain' : undefined,
        );
        // Passerelle answers PSC's broker endpoint with the error, without any page.
        const answer = await agent.follow(sent, t.issuer);
        expect(answer.response, alias).toBeUndefined();
        expect(answer.url.searchParams.get('error'), alias).toBe('invalid_request');
        expect(answer.url.searchParams.get('state'), alias).toBe(sent.searchParams.get('state'));
        const at = psc.events.length;
        await agent.follow(answer.url, pscOrigin());
        // Keycloak: any other error than access_denied / login_required / interaction_required.
        expect(psc.events.slice(at), alias).toMatchObject([
          { kind: 'fi-error', alias, error: 'invalid_request', handling: 'login_page' },
        ]);
      }
    });

    it('acr_values forwarded from the service: PSC’s values and unknown ones never cause an error', async () => {
      const agent = new BrowserAgent();
      // A session at Passerelle first (the card), then the same browser for each value.
      const first = await toPasserelle(agent, 'defaults');
      const back = await card(agent, (await agent.follow(first.request, t.issuer)).url);
      await finishAtPsc(agent, back, first.login);
      for (const acr of ['eidas1', 'eidas2', 'eidas3', 'eidas1 eidas2', 'urn:inconnu:loa']) {
        agent.forgetCookies(PSC_SESSION_COOKIES);
        const before = psc.events.length;
        const { request } = await toPasserelle(agent, 'defaults', { acr_values: acr });
        expect(request.searchParams.get('acr_values'), acr).toBe(acr);
        const answer = await agent.follow(request, t.issuer);
        expect(answer.url.searchParams.get('code'), acr).toBeTruthy();
        await agent.follow(answer.url, pscOrigin());
        expect(accepted(before), acr).toMatchObject({ kind: 'accepted', login: { acr: 'eidas1' } });
      }
    });

    it('forwarded login_hint, ui_locales and max_age (loginHint, uiLocales, passMaxAge) are honoured', async () => {
      const agent = new BrowserAgent();
      const { request } = await toPasserelle(agent, 'forwarding', {
        login_hint: cecile.username,
        max_age: '3600',
      });
      expect(Object.fromEntries(request.searchParams)).toMatchObject({
        login_hint: cecile.username,
        ui_locales: 'fr',
        max_age: '3600',
      });
      const page = await agent.follow(request, t.issuer);
      expect(agent.lastHtml).toContain('<html lang="fr">');
      expect(formField(agent.lastHtml, 'username')).toBe(cecile.username);
      const { login } = await toPasserelle(new BrowserAgent(), 'forwarding');
      void login;
      const back = await card(agent, page.url);
      await agent.follow(back, pscOrigin());
      expect(agent.lastHtml).toMatch(/Appairage|Confirmer/);

      // max_age=0: the session is not enough, Passerelle asks for the card again (PSC checks auth_time).
      agent.forgetCookies(PSC_SESSION_COOKIES);
      const again = await toPasserelle(agent, 'forwarding', { max_age: '0' });
      const asked = await agent.follow(again.request, t.issuer);
      expect(asked.response?.status).toBe(200);
      expect(asked.url.pathname).toMatch(/^\/interaction\//);
    });

    it('prompt=none forwarded (acceptsPromptNoneForwardFromClient): a code with a session, login_required to the service without', async () => {
      // Without a session at Passerelle: login_required, which PSC returns to the service.
      const anonymous = new BrowserAgent();
      const { request } = await toPasserelle(anonymous, 'forwarding', { prompt: 'none' });
      expect(request.searchParams.get('prompt')).toBe('none');
      const answer = await anonymous.follow(request, t.issuer);
      expect(answer.url.searchParams.get('error')).toBe('login_required');
      const before = psc.events.length;
      const atService = await anonymous.follow(answer.url, pscOrigin());
      expect(psc.events.slice(before)).toMatchObject([
        { kind: 'fi-error', error: 'login_required', handling: 'service' },
      ]);
      expect(atService.url.searchParams.get('error')).toBe('login_required');

      // With one: the code at once, no page.
      const { agent } = await delegatedLogin('forwarding');
      agent.forgetCookies(PSC_SESSION_COOKIES);
      const silent = await toPasserelle(agent, 'forwarding', { prompt: 'none' });
      const code = await agent.follow(silent.request, t.issuer);
      expect(code.response).toBeUndefined();
      expect(code.url.searchParams.get('code')).toBeTruthy();
    });

    it('without acceptsPromptNoneForwardFromClient, PSC answers prompt=none itself: Passerelle is not asked', async () => {
      const agent = new BrowserAgent();
      const login = await serviceLogin(service, { kc_idp_hint: 'defaults', prompt: 'none' });
      const step = await agent.follow(login.url, pscOrigin());
      expect(step.url.origin).not.toBe(new URL(t.issuer).origin);
      expect(step.url.searchParams.get('error')).toBe('login_required');
    });

    it('the short state of older Keycloak versions is returned as is', async () => {
      const { request, back } = await delegatedLogin('short-state');
      expect(request.searchParams.get('state')?.split('.')).toHaveLength(3);
      expect(back.searchParams.get('state')).toBe(request.searchParams.get('state'));
    });

    it('logout with client_id (sendClientIdOnLogout) and with the back-channel GET (backchannelSupported, no cookies)', async () => {
      const front = await delegatedLogin('forwarding');
      const toPasserelle = await logoutAtPsc(psc, service, front.agent, front.tokens.id_token, BYE);
      expect(toPasserelle.searchParams.get('client_id')).toBe(clientIdOf('forwarding'));
      await front.agent.follow(toPasserelle, t.issuer);
      expect(front.agent.lastHtml).toContain('/session/end/confirm');

      const back = await delegatedLogin('backchannel-logout');
      const sessionUid = await sessionUidOf(back.agent);
      expect(await t.passerelle.services.sessions.active(sessionUid, cecile.id)).toBeDefined();
      const before = psc.events.length;
      const atService = await logoutAtPsc(psc, service, back.agent, back.tokens.id_token, BYE);
      // PSC called Passerelle server to server and went on: Passerelle's session of that login ended.
      expect(atService.href).toBe(`${BYE}?state=after-logout`);
      expect(psc.events.slice(before)).toContainEqual(
        expect.objectContaining({ kind: 'fi-logout', alias: 'backchannel-logout' }),
      );
      expect(await t.passerelle.services.sessions.active(sessionUid, cecile.id)).toBeUndefined();
      const ended = await t.passerelle.services.database.db
        .selectFrom('audit_event')
        .select(['reason'])
        .where('type', '=', 'session.ended')
        .where('session_id', '=', sessionUid)
        .execute();
      expect(ended).toEqual([{ reason: 'psc_server_side_logout' }]);
    });
    // Last: after the rotation, PSC's cached keys lack the new one for up to 10 s (Keycloak's re-fetch limit).
    it('logout as Keycloak does it: the stored ID token, expired and signed by a key rotated since, as hint; state returned', async () => {
      const { agent, tokens } = await delegatedLogin('defaults');
      const sessionUid = await sessionUidOf(agent);
      // The ID token PSC kept expires (2 s), and Passerelle's signing keys are rotated meanwhile.
      await new Promise((resolve) => setTimeout(resolve, 2500));
      // As `passerelle keys rotate` does it: the retired key verifies hints for as long as sessions last.
      expect(retiredKeyLifetime(t.config)).toBeGreaterThan(t.config.sessions.absoluteSeconds);
      await rotateSigningKeys(
        t.passerelle.services.database.db,
        t.passerelle.services.sealer,
        retiredKeyLifetime(t.config),
      );
      await t.passerelle.services.host.reloadIfChanged();
      const toPasserelle = await logoutAtPsc(psc, service, agent, tokens.id_token, BYE);
      const params = Object.fromEntries(toPasserelle.searchParams);
      expect(params.post_logout_redirect_uri).toBe(psc.brokerLogoutResponseUri('defaults'));
      expect(params.client_id).toBeUndefined();
      expect((decodeJwt(params.id_token_hint ?? '').exp ?? 0) * 1000).toBeLessThan(Date.now());
      await agent.follow(toPasserelle, t.issuer);
      const confirmed = await agent.postForm(
        new URL(formAction(agent.lastHtml, '/session/end/confirm'), t.issuer),
        {
          xsrf: formField(agent.lastHtml, 'xsrf') ?? '',
          logout: 'yes',
        },
      );
      const backAtPsc = new URL(confirmed.headers.get('location') ?? '');
      expect(backAtPsc.searchParams.get('state')).toBe(params.state);
      const atService = await agent.follow(backAtPsc, pscOrigin());
      expect(atService.url.href).toBe(`${BYE}?state=after-logout`);
      // Passerelle's session is gone (listing ended sessions as such is issue 14's).
      expect(await t.passerelle.services.host.provider.Session.findByUid(sessionUid)).toBeUndefined();
    });
  });
}
