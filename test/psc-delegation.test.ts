import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CardCertificates } from '../src/accounts/card-certificates.ts';
import { BrowserAgent, formAction } from './helpers/browser-agent.ts';
import { presentCard } from './helpers/card-client.ts';
import { nodeCert, startWithCards } from './helpers/card-server.ts';
import { authorizationRequest, createUser, redeemCode, registerWebClient } from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { createIgcSantePki, type IgcSantePki } from './helpers/igc-sante-pki.ts';
import type { TestServer } from './helpers/server.ts';
import { pscSubject } from './simulators/psc/claims.ts';
import { PSC_SESSION_COOKIES, type PscSimulator, startPscSimulator } from './simulators/psc/server.ts';

const RENNES = { finess: '350005179', name: 'CHU de Rennes', tid: 'tid-rennes-0001', pscAlias: 'chu-rennes' };
const SERVICE = {
  clientId: 'drimbox',
  clientSecret: 'drimbox-secret',
  redirectUris: ['https://drimbox.test/cb'],
};

let pki: IgcSantePki;
beforeAll(async () => {
  pki = await createIgcSantePki();
});
afterAll(() => pki?.remove());

/**
 * The delegated login end to end, over real HTTP: an external service → the PSC simulator with
 * kc_idp_hint → Passerelle (CPS card) → PSC (pairing the first time, "Confirmer" afterwards) → the service
 * receives the national identity.
 */
for (const kind of databasesUnderTest()) {
  describe(`delegated login: service → PSC → Passerelle → PSC → service [${kind}]`, () => {
    let t: TestServer;
    let psc: PscSimulator;
    let service: oidc.Configuration;
    let cecile: { id: string };
    const agent = new BrowserAgent();

    beforeAll(async () => {
      t = await startWithCards(kind, pki, { establishments: [RENNES] });
      cecile = await createUser(t, 'cecile.sage');
      await new CardCertificates(t.passerelle.services.database.db).register(
        cecile.id,
        nodeCert(pki.cards.cps),
      );
      psc = await startPscSimulator({ clients: [SERVICE] });
      // As Keycloak's broker is by default: client_secret_post, no PKCE.
      const secret = await registerWebClient(t, 'psc-rennes', {
        redirect_uris: [psc.brokerRedirectUri(RENNES.pscAlias)],
        psc_establishment: RENNES.finess,
        first_party: true,
        token_endpoint_auth_method: 'client_secret_post',
        pkce_required: false,
      });
      psc.addFi({
        alias: RENNES.pscAlias,
        name: RENNES.name,
        discoveryUrl: t.issuer,
        clientId: 'psc-rennes',
        clientSecret: secret,
        tidAllowList: [RENNES.tid],
        amrAllowList: ['sc', 'hwk'],
      });
      service = await oidc.discovery(
        new URL(psc.issuer),
        SERVICE.clientId,
        { redirect_uris: SERVICE.redirectUris },
        oidc.ClientSecretBasic(SERVICE.clientSecret),
        { execute: [oidc.allowInsecureRequests] },
      );
    });
    afterAll(async () => {
      await psc?.close();
      await t?.close();
    });

    const pscOrigin = () => new URL(psc.issuer).origin;
    /** The service sends the browser to PSC with the establishment's hint; where Passerelle answers. */
    const startAtService = async (extra: Record<string, string> = {}) => {
      const login = await authorizationRequest(service, SERVICE.redirectUris[0] as string, {
        scope: 'openid scope_all',
        acr_values: 'eidas1',
        prompt: '',
        kc_idp_hint: RENNES.pscAlias,
        ...extra,
      });
      const atPasserelle = await agent.follow(login.url, pscOrigin());
      expect(atPasserelle.url.origin).toBe(new URL(t.issuer).origin);
      return { login, atPasserelle };
    };
    const postAtPsc = async (action: string, fields: Record<string, string> = {}) => {
      const posted = await agent.postForm(new URL(formAction(agent.lastHtml, action), pscOrigin()), fields);
      return agent.follow(new URL(posted.headers.get('location') ?? '', pscOrigin()), pscOrigin());
    };

    it('first login: the card at Passerelle, then pairing at PSC; the service gets the national identity', async () => {
      const { login, atPasserelle } = await startAtService();
      const page = await agent.follow(atPasserelle.url, t.issuer);
      // The identifier page; the card needs no username.
      expect(agent.lastHtml).toContain('/identify"');
      const uid = /\/interaction\/([^/?"]+)/.exec(page.url.pathname)?.[1] ?? '';
      await agent.follow(new URL(`/interaction/${uid}?method=smartcard`, t.issuer), t.issuer);
      expect(agent.lastHtml).toContain('Insérez votre carte CPS');
      const backToPsc = await presentCard(agent, t.issuer, pki.cards.cps, pki.serverCa.pem);
      expect(backToPsc.url.href.startsWith(psc.brokerRedirectUri(RENNES.pscAlias))).toBe(true);
      await agent.follow(backToPsc.url, pscOrigin());
      expect(agent.lastHtml).toContain('Appairage de votre compte');

      // PSC checked Passerelle's ID token: its tenant, the account as pairing pivot, a strong amr.
      expect(psc.events.at(-1)).toMatchObject({
        kind: 'accepted',
        login: { alias: RENNES.pscAlias, tid: RENNES.tid, oid: cecile.id, sub: cecile.id, acr: 'eidas1' },
      });
      const professional = psc.professionals[3];
      if (!professional) throw new Error('no fixture');
      const atService = await postAtPsc('/pairing', { idNatPs: professional.idNatPs });
      const tokens = await redeemCode(service, login, atService.url);
      expect(tokens.claims()).toMatchObject({
        sub: pscSubject(professional.idNatPs),
        SubjectNameID: professional.idNatPs,
        acr: 'eidas1',
        authMode: 'DELEGATED',
      });
      const audited = await t.passerelle.services.database.db
        .selectFrom('audit_event')
        .select(['type', 'outcome', 'method'])
        .where('account_id', '=', cecile.id)
        .where('type', '=', 'auth.attempt')
        .execute();
      expect(audited).toEqual([{ type: 'auth.attempt', outcome: 'success', method: 'smartcard' }]);
    });

    it('the service asks prompt=login: PSC forwards it (Keycloak default), Passerelle asks for the card again', async () => {
      const { login, atPasserelle } = await startAtService({ prompt: 'login' });
      expect(atPasserelle.url.searchParams.get('prompt')).toBe('login');
      const page = await agent.follow(atPasserelle.url, t.issuer);
      expect(page.response?.status).toBe(200);
      const uid = /\/interaction\/([^/?"]+)/.exec(page.url.pathname)?.[1] ?? '';
      await agent.follow(new URL(`/interaction/${uid}?method=smartcard`, t.issuer), t.issuer);
      const backToPsc = await presentCard(agent, t.issuer, pki.cards.cps, pki.serverCa.pem);
      await agent.follow(backToPsc.url, pscOrigin());
      expect(agent.lastHtml).toContain('Confirmer');
      const tokens = await redeemCode(service, login, (await postAtPsc('/confirm')).url);
      expect(tokens.claims()?.SubjectNameID).toBe(
        psc.pairings.find(RENNES.pscAlias, RENNES.tid, cecile.id)?.idNatPs,
      );
    });

    it('next login: no prompt at Passerelle (single sign-on), only "Confirmer" at PSC', async () => {
      // PSC's own session gone (it would otherwise answer the service directly); Passerelle's kept.
      agent.forgetCookies(PSC_SESSION_COOKIES);
      const { login, atPasserelle } = await startAtService();
      // Passerelle answers PSC at once from the session: the browser goes straight back to PSC.
      const back = await agent.follow(atPasserelle.url, t.issuer);
      expect(back.response).toBeUndefined();
      expect(back.url.href.startsWith(psc.brokerRedirectUri(RENNES.pscAlias))).toBe(true);
      await agent.follow(back.url, pscOrigin());
      expect(agent.lastHtml).toContain('Confirmer');
      expect(agent.lastHtml).not.toContain('/pairing"');
      const atService = await postAtPsc('/confirm');
      const tokens = await redeemCode(service, login, atService.url);
      expect(tokens.claims()?.SubjectNameID).toBe(
        psc.pairings.find(RENNES.pscAlias, RENNES.tid, cecile.id)?.idNatPs,
      );
    });
  });
}
