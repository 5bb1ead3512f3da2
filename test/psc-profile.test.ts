import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CardCertificates } from '../src/accounts/card-certificates.ts';
import { ConfigError, loadConfig } from '../src/config/load.ts';
import { shapeForPsc } from '../src/federation/psc-profile.ts';
import {
  BrowserAgent,
  browserLogin,
  followThroughConsent,
  formAction,
  formField,
} from './helpers/browser-agent.ts';
import { presentCard } from './helpers/card-client.ts';
import { nodeCert, startWithCards } from './helpers/card-server.ts';
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
import { createIgcSantePki, IDNAT, type IgcSantePki } from './helpers/igc-sante-pki.ts';
import type { TestServer } from './helpers/server.ts';

const RENNES = { finess: '350005179', name: 'CHU de Rennes', tid: 'tid-rennes-0001', pscAlias: 'chu-rennes' };
const VANNES = { finess: '560008799', name: 'CH de Vannes', tid: 'tid-vannes-0002' };

describe('PSC profile: amr and acr sent to PSC', () => {
  const psc = loadConfig({ env: {}, overrides: { demo: true } }).config.psc;
  it('keeps only the allowed amr values and maps the acr; an unmapped level sends no acr', () => {
    expect(
      shapeForPsc({ sub: 'x', amr: ['hwk', 'pin', 'mfa', 'user'], acr: 'urn:passerelle:loa:high' }, psc),
    ).toEqual({
      sub: 'x',
      amr: ['hwk', 'pin', 'mfa'],
      acr: 'eidas1',
    });
    expect(shapeForPsc({ amr: ['pwd'], acr: 'urn:passerelle:loa:low' }, psc)).toEqual({ amr: [] });
  });

  it('configuration errors name the key', () => {
    const load = (overrides: Record<string, unknown>) => () =>
      loadConfig({ env: {}, overrides: { demo: true, ...overrides } });
    expect(load({ establishments: [RENNES, { ...VANNES, tid: RENNES.tid }] })).toThrow(
      /establishments \(from command line\): each tid must be unique/,
    );
    expect(load({ establishments: [{ ...RENNES, finess: '35' }] })).toThrow(
      /establishments\.0\.finess: a FINESS number/,
    );
    expect(
      load({
        establishments: [RENNES],
        clients: [
          {
            clientId: 'psc',
            redirectUris: [REDIRECT],
            tokenEndpointAuthMethod: 'none',
            pscEstablishment: VANNES.finess,
          },
        ],
      }),
    ).toThrow(/clients\.0\.pscEstablishment: must be the FINESS of one of the establishments/);
    expect(load({ psc: { acrValues: { 'urn:other': 'eidas1' } } })).toThrow(ConfigError);
    const pscLogin = {
      issuer: 'https://auth.bas.psc.esante.gouv.fr/auth/realms/esante-wallet',
      clientId: 'x',
    };
    expect(load({ pscLogin })).toThrow(/pscLogin\.clientSecret: required with client_secret_basic/);
    expect(
      load({ pscLogin: { ...pscLogin, issuer: 'http://psc.test', tokenEndpointAuthMethod: 'none' } }),
    ).toThrow(/pscLogin\.issuer: must be https/);
    expect(load({ pscLogin: { ...pscLogin, clientSecret: 's', amrByAuthMode: { CARD: ['sc'] } } })).toThrow(
      /pscLogin\.amrByAuthMode\.default: is required/,
    );
  });
});

let pki: IgcSantePki;
beforeAll(async () => {
  pki = await createIgcSantePki();
});
afterAll(() => pki?.remove());

for (const kind of databasesUnderTest()) {
  describe(`PSC as a client: policy, tid, oid, amr and acr [${kind}]`, () => {
    let t: TestServer;
    let cecile: { id: string; username: string };

    beforeAll(async () => {
      t = await startWithCards(kind, pki, { establishments: [RENNES, VANNES] });
      cecile = await createUser(t, 'cecile.sage');
      // Two establishments: membership is listed; Cécile works in both.
      for (const e of [RENNES, VANNES]) {
        await t.passerelle.services.establishments.add(cecile.id, e.finess, 'test');
      }
      await new CardCertificates(t.passerelle.services.database.db).register(
        cecile.id,
        nodeCert(pki.cards.cps),
      );
    });
    afterAll(async () => {
      await t?.close();
    });

    const client = async (clientId: string, extra: Record<string, unknown> = {}) => {
      const secret = await registerWebClient(t, clientId, extra);
      return discover(t, clientId, oidc.ClientSecretBasic(secret));
    };
    /** A new code for the client from the agent's session, redeemed. */
    const redeemAgain = async (config: oidc.Configuration, agent: BrowserAgent) => {
      const pending = await authorizationRequest(config, REDIRECT);
      const result = await followThroughConsent(agent, pending.url.toString(), t.issuer);
      return redeemCode(config, pending, result.url);
    };
    /** Card login on the page the agent shows, then consent if asked; where the browser ends. */
    const cardLogin = async (agent: BrowserAgent, uid: string) => {
      await agent.follow(new URL(`/interaction/${uid}?method=smartcard`, t.issuer), t.issuer);
      return presentCard(agent, t.issuer, pki.cards.cps, pki.serverCa.pem);
    };

    it('a password session is stepped up for PSC, not refused; PSC then gets tid, oid, filtered amr, eidas1', async () => {
      const agent = new BrowserAgent();
      const dpi = await client('dpi');
      const first = await authorizationRequest(dpi, REDIRECT);
      const { callback } = await browserLogin(agent, first.url, t.issuer, {
        username: cecile.username,
        password: TEST_PASSWORD,
      });
      const dpiClaims = await codeClaims(dpi, first, callback);
      // Other clients: Passerelle's own acr and amr, no tid or oid.
      expect(dpiClaims).toMatchObject({ amr: ['pwd'], acr: 'urn:passerelle:loa:low' });
      expect(dpiClaims?.tid).toBeUndefined();
      expect(dpiClaims?.oid).toBeUndefined();

      const psc = await client('psc-rennes', {
        psc_establishment: RENNES.finess,
        backchannel_logout_uri:
          'https://auth.bas.psc.esante.gouv.fr/auth/realms/esante-wallet/protocol/openid-connect/logout/backchannel-logout',
        backchannel_logout_session_required: true,
      });
      const pending = await authorizationRequest(psc, REDIRECT, { acr_values: 'eidas1' });
      const step = await agent.follow(pending.url, t.issuer);
      // No code for a password-only session: the login page asks for a phishing-resistant method.
      expect(step.url.pathname).toMatch(/^\/interaction\//);
      expect(agent.lastHtml).toContain('Cette application demande un niveau de sécurité plus élevé');
      expect(agent.lastHtml).toContain('Insérez votre carte CPS');
      const uid = /\/interaction\/([^/?"]+)/.exec(step.url.pathname)?.[1] ?? '';
      const tokens = await redeemCode(psc, pending, (await cardLogin(agent, uid)).url);
      const claims = tokens.claims();
      expect(claims).toMatchObject({ sub: cecile.id, tid: RENNES.tid, oid: cecile.id, acr: 'eidas1' });
      expect([...((claims?.amr ?? []) as string[])].sort()).toEqual(['hwk', 'mfa', 'pin', 'sc']);
      expect(typeof claims?.auth_time).toBe('number');
      expect(claims?.idnat_ps).toBeUndefined();
      // session_state = sid, for PSC's Keycloak versions that match logout tokens on it.
      expect(tokens.session_state).toBe(claims?.sid);
      expect(typeof claims?.sid).toBe('string');
      // The access token carries the same: PSC sees it through introspection.
      const introspected = await oidc.tokenIntrospection(psc, tokens.access_token);
      expect(introspected).toMatchObject({
        active: true,
        sub: cecile.id,
        tid: RENNES.tid,
        oid: cecile.id,
        acr: 'eidas1',
      });
      expect([...((introspected.amr ?? []) as string[])].sort()).toEqual(['hwk', 'mfa', 'pin', 'sc']);
      // The establishment's own applications' access tokens carry none of it.
      const dpiTokens = await oidc.tokenIntrospection(dpi, (await redeemAgain(dpi, agent)).access_token);
      expect(dpiTokens.active).toBe(true);
      expect(dpiTokens.tid).toBeUndefined();
      expect(dpiTokens.oid).toBeUndefined();

      // The same session serves the other establishment's PSC client without a prompt, with its own tid.
      const vannes = await client('psc-vannes', { psc_establishment: VANNES.finess });
      const again = await authorizationRequest(vannes, REDIRECT);
      const result = await followThroughConsent(agent, again.url.toString(), t.issuer);
      expect(await codeClaims(vannes, again, result.url)).toMatchObject({ tid: VANNES.tid, oid: cecile.id });
    });

    it('an inactive or conflicting RPPS link: refused for PSC with a French page and an audit event', async () => {
      const psc = await client('psc-refusals', { psc_establishment: RENNES.finess });
      const dpi = await client('dpi-refusals');
      for (const status of ['inactive', 'conflict'] as const) {
        // Signed in with the card while the link was verified; the sync or a review flags it afterwards.
        await t.passerelle.services.identities.set(cecile.id, IDNAT.cps, 'cps-certificate', 'verified');
        const agent = new BrowserAgent();
        const start = await authorizationRequest(dpi, REDIRECT);
        const first = await agent.follow(start.url, t.issuer);
        const uid = /\/interaction\/([^/?"]+)/.exec(first.url.pathname)?.[1] ?? '';
        expect((await cardLogin(agent, uid)).url.searchParams.get('code')).toBeTruthy();
        await t.passerelle.services.identities.set(cecile.id, IDNAT.cps, 'manual', status);

        const pending = await authorizationRequest(psc, REDIRECT);
        const refused = await followThroughConsent(agent, pending.url.toString(), t.issuer);
        expect(refused.url.pathname, status).toMatch(/^\/interaction\//);
        expect(refused.response?.status, status).toBe(403);
        expect(agent.lastHtml).toContain(
          status === 'inactive'
            ? 'votre inscription au RPPS n’est plus active'
            : 'est en cours de vérification',
        );
        const events = await t.passerelle.services.database.db
          .selectFrom('audit_event')
          .select(['account_id', 'client_id', 'reason'])
          .where('type', '=', 'psc.federation.refused')
          .where('reason', '=', `link_${status}`)
          .execute();
        expect(events).toEqual([
          { account_id: cecile.id, client_id: 'psc-refusals', reason: `link_${status}` },
        ]);
        // "Retour à l'application" sends PSC an access_denied error.
        const back = await agent.postForm(new URL(formAction(agent.lastHtml, '/abort'), t.issuer), {
          csrf: formField(agent.lastHtml, 'csrf') ?? '',
        });
        const done = await agent.follow(new URL(back.headers.get('location') ?? '', t.issuer), t.issuer);
        expect(done.url.searchParams.get('error')).toBe('access_denied');
        // The same session still serves the establishment's own applications.
        const app = await authorizationRequest(dpi, REDIRECT);
        const result = await followThroughConsent(agent, app.url.toString(), t.issuer);
        expect(result.url.searchParams.get('code'), status).toBeTruthy();
      }
      await t.passerelle.services.database.db
        .deleteFrom('national_identity')
        .where('account_id', '=', cecile.id)
        .execute();
    });

    it('an authentication older than psc.maxAuthAgeSeconds (4 h) is asked again for PSC only', async () => {
      await t.passerelle.services.database.db
        .deleteFrom('national_identity')
        .where('account_id', '=', cecile.id)
        .execute();
      const psc = await client('psc-age', { psc_establishment: RENNES.finess });
      const dpi = await client('dpi-age');
      const agent = new BrowserAgent();
      const start = await authorizationRequest(psc, REDIRECT);
      const first = await agent.follow(start.url, t.issuer);
      const uid = /\/interaction\/([^/?"]+)/.exec(first.url.pathname)?.[1] ?? '';
      expect((await cardLogin(agent, uid)).url.searchParams.get('code')).toBeTruthy();
      // The card was used 4 h 10 min ago (the session itself is still alive).
      const db = t.passerelle.services.database.db;
      const rows = await db
        .selectFrom('auth_session')
        .select(['session_uid', 'methods'])
        .where('account_id', '=', cecile.id)
        .execute();
      for (const row of rows) {
        const methods = row.methods.map((m) => ({ ...m, at: m.at - (4 * 3600 + 600) }));
        await db
          .updateTable('auth_session')
          .set({ methods: JSON.stringify(methods) })
          .where('session_uid', '=', row.session_uid)
          .execute();
      }
      const again = await authorizationRequest(psc, REDIRECT);
      const step = await followThroughConsent(agent, again.url.toString(), t.issuer);
      expect(step.url.pathname).toMatch(/^\/interaction\//);
      expect(agent.lastHtml).toContain('Insérez votre carte CPS');
      // The establishment's own application, without a maximum age, is served from the session.
      const app = await authorizationRequest(dpi, REDIRECT);
      expect(
        (await followThroughConsent(agent, app.url.toString(), t.issuer)).url.searchParams.get('code'),
      ).toBeTruthy();
    });

    it('an account is federated only for its establishments: refused under another one, audited', async () => {
      const bruno = await createUser(t, 'bruno.gall');
      const { establishments } = t.passerelle.services;
      await establishments.add(bruno.id, RENNES.finess, 'test');
      expect((await establishments.of(bruno.id)).map((m) => [m.establishment.finess, m.basis])).toEqual([
        [RENNES.finess, 'listed'],
      ]);
      await new CardCertificates(t.passerelle.services.database.db).register(
        bruno.id,
        nodeCert(pki.cards.cpsDottedUpn),
      );
      const rennes = await client('psc-m-rennes', { psc_establishment: RENNES.finess });
      const vannes = await client('psc-m-vannes', { psc_establishment: VANNES.finess });
      const agent = new BrowserAgent();
      const start = await authorizationRequest(rennes, REDIRECT);
      const first = await agent.follow(start.url, t.issuer);
      const uid = /\/interaction\/([^/?"]+)/.exec(first.url.pathname)?.[1] ?? '';
      await agent.follow(new URL(`/interaction/${uid}?method=smartcard`, t.issuer), t.issuer);
      const signedIn = await presentCard(agent, t.issuer, pki.cards.cpsDottedUpn, pki.serverCa.pem);
      expect(await codeClaims(rennes, start, signedIn.url)).toMatchObject({ tid: RENNES.tid, oid: bruno.id });

      const pending = await authorizationRequest(vannes, REDIRECT);
      const refused = await followThroughConsent(agent, pending.url.toString(), t.issuer);
      expect(refused.response?.status).toBe(403);
      expect(agent.lastHtml).toContain('votre compte n’en fait pas partie');
      const events = await t.passerelle.services.database.db
        .selectFrom('audit_event')
        .select(['account_id', 'client_id', 'reason'])
        .where('type', '=', 'psc.federation.refused')
        .where('account_id', '=', bruno.id)
        .execute();
      expect(events).toEqual([{ account_id: bruno.id, client_id: 'psc-m-vannes', reason: 'not_member' }]);

      // Listed in Vannes too: federated there with Vannes' tid; removed again: refused again.
      expect(await establishments.add(bruno.id, VANNES.finess, 'test')).toBe(true);
      expect(await establishments.add(bruno.id, VANNES.finess, 'test')).toBe(false);
      const listed = await authorizationRequest(vannes, REDIRECT);
      const served = await followThroughConsent(agent, listed.url.toString(), t.issuer);
      expect(await codeClaims(vannes, listed, served.url)).toMatchObject({ tid: VANNES.tid, oid: bruno.id });
      expect(await establishments.remove(bruno.id, VANNES.finess, 'test')).toBe(true);
      const removed = await authorizationRequest(vannes, REDIRECT);
      expect((await followThroughConsent(agent, removed.url.toString(), t.issuer)).response?.status).toBe(
        403,
      );
      const changes = await t.passerelle.services.database.db
        .selectFrom('audit_event')
        .select('type')
        .where('account_id', '=', bruno.id)
        .where('type', 'like', 'establishment.%')
        .orderBy('seq')
        .execute();
      expect(changes.map((c) => c.type)).toEqual([
        'establishment.member_added',
        'establishment.member_added',
        'establishment.member_removed',
      ]);
      await expect(establishments.add(bruno.id, '111111111', 'test')).rejects.toThrow(/no establishment/);
    });

    it('a PSC client for an unknown establishment cannot be registered', async () => {
      await expect(registerWebClient(t, 'psc-nowhere', { psc_establishment: '999999999' })).rejects.toThrow(
        /psc_establishment must be the FINESS of a configured establishment/,
      );
    });
  });
}
