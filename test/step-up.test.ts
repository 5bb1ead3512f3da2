import { sql } from 'kysely';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CardCertificates } from '../src/accounts/card-certificates.ts';
import { messages } from '../src/i18n/messages.ts';
import { BrowserAgent, browserLogin, formAction } from './helpers/browser-agent.ts';
import { presentCard } from './helpers/card-client.ts';
import { nodeCert, startWithCards } from './helpers/card-server.ts';
import {
  authorizationRequest,
  codeClaims,
  createUser,
  discover,
  REDIRECT,
  registerWebClient,
  TEST_PASSWORD,
} from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { type Card, createIgcSantePki, type IgcSantePki } from './helpers/igc-sante-pki.ts';
import type { TestServer } from './helpers/server.ts';

const HIGH = 'urn:passerelle:loa:high';
const SUBSTANTIAL = 'urn:passerelle:loa:substantial';
const LOW = 'urn:passerelle:loa:low';
let pki: IgcSantePki;

beforeAll(async () => {
  pki = await createIgcSantePki();
});
afterAll(() => pki?.remove());

for (const kind of databasesUnderTest()) {
  describe(`step-up: only the missing factor is asked [${kind}]`, () => {
    let t: TestServer;
    let dpi: oidc.Configuration;
    let pharmacie: oidc.Configuration;
    let cecile: { id: string };

    beforeAll(async () => {
      t = await startWithCards(kind, pki);
      dpi = await discover(
        t,
        'dpi',
        oidc.ClientSecretBasic(await registerWebClient(t, 'dpi', { first_party: true })),
      );
      const pharmacieSecret = await registerWebClient(t, 'pharmacie', {
        first_party: true,
        required_acr: HIGH,
      });
      pharmacie = await discover(t, 'pharmacie', oidc.ClientSecretBasic(pharmacieSecret));
      cecile = await createUser(t, 'cecile');
      const other = await createUser(t, 'charles');
      const cards = new CardCertificates(t.passerelle.services.database.db);
      await cards.register(cecile.id, nodeCert(pki.cards.cps));
      await cards.register(other.id, nodeCert(pki.cards.cpe));
    });
    afterAll(async () => {
      await t?.close();
    });

    /** Posts the card form of the current page with a card, then follows back to the issuer. */
    // The test requests carry prompt=consent (authorizationRequest's default): presentCard follows it.
    const presentCardAs = (agent: BrowserAgent, card: Card) =>
      presentCard(agent, t.issuer, card, pki.serverCa.pem);

    const sessionMethods = async () =>
      (
        await t.passerelle.services.database.db
          .selectFrom('auth_session')
          .select(['methods', 'session_uid'])
          .where('account_id', '=', cecile.id)
          .executeTakeFirstOrThrow()
      ).methods;

    it('a password session, then a client needing "high": only the card is asked, and amr unites both', async () => {
      const agent = new BrowserAgent();
      const first = await authorizationRequest(dpi, REDIRECT, { prompt: 'login' });
      const login = await browserLogin(agent, first.url, t.issuer, {
        username: 'cecile',
        password: TEST_PASSWORD,
      });
      expect(login.forms).toEqual(['identify', 'password']);
      const low = await codeClaims(dpi, first, login.callback);
      expect(low?.acr).toBe(LOW);
      expect(low?.amr).toEqual(['pwd']);

      const second = await authorizationRequest(pharmacie, REDIRECT);
      const page = await agent.follow(second.url, t.issuer);
      expect(page.response?.status).toBe(200);
      // The step-up page: no identifier, no password, the card only, and the reason said.
      const html = agent.lastHtml;
      expect(html).toContain(messages.fr['login.step_up.lead'].replaceAll('’', '’'));
      expect(html).not.toContain('/identify"');
      expect(html).not.toContain('/method/password"');
      expect(html).toContain('/method/smartcard"');

      const back = await presentCardAs(agent, pki.cards.cps);
      expect(back.url.origin + back.url.pathname).toBe(REDIRECT);
      const high = await codeClaims(pharmacie, second, back.url);
      expect(high?.sub).toBe(cecile.id);
      expect(high?.acr).toBe(HIGH);
      expect(high?.amr).toEqual(['hwk', 'mfa', 'pin', 'pwd', 'sc']);
      expect((await sessionMethods()).map((m) => m.method)).toEqual(['password', 'smartcard']);

      // The session now satisfies both clients without any page.
      for (const config of [dpi, pharmacie]) {
        const silent = await authorizationRequest(config, REDIRECT, { prompt: 'none' });
        const { url } = await agent.follow(silent.url, t.issuer);
        expect(url.searchParams.get('code'), url.href).toBeTruthy();
      }
    });

    it('max_age applies to each method: an old card proof is asked again, the recent password is kept', async () => {
      const agent = new BrowserAgent();
      const first = await authorizationRequest(pharmacie, REDIRECT, { prompt: 'login' });
      await agent.follow(first.url, t.issuer);
      const identify = agent.lastHtml;
      // "high" with a fresh login: the password cannot reach it, so the card comes first.
      expect(identify).toContain('?method=smartcard');
      const cardPage = await agent.follow(
        new URL(formAction(identify, '/identify').replace('/identify', '?method=smartcard'), t.issuer),
        t.issuer,
      );
      expect(cardPage.response?.status).toBe(200);
      const back = await presentCardAs(agent, pki.cards.cps);
      expect((await codeClaims(pharmacie, first, back.url))?.amr).toEqual(['hwk', 'mfa', 'pin', 'sc']);

      // Two hours later (the card proof only), a request with max_age=3600 needs the card again.
      const db = t.passerelle.services.database.db;
      const methods = await sessionMethods();
      const aged = methods.map((m) => ({ ...m, at: m.at - 7200 }));
      await sql`update auth_session set methods = ${JSON.stringify(aged)}::jsonb where account_id = ${cecile.id}`.execute(
        db,
      );
      const silent = await authorizationRequest(pharmacie, REDIRECT, { prompt: 'none', max_age: '3600' });
      expect((await agent.follow(silent.url, t.issuer)).url.searchParams.get('error')).toBe('login_required');
      const again = await authorizationRequest(pharmacie, REDIRECT, { max_age: '3600' });
      await agent.follow(again.url, t.issuer);
      expect(agent.lastHtml).toContain('/method/smartcard"');
      const renewed = await presentCardAs(agent, pki.cards.cps);
      expect((await codeClaims(pharmacie, again, renewed.url))?.acr).toBe(HIGH);
    });

    it('a client asking more with acr_values gets a step-up; a card of another person is refused', async () => {
      const agent = new BrowserAgent();
      const first = await authorizationRequest(dpi, REDIRECT, { prompt: 'login' });
      await browserLogin(agent, first.url, t.issuer, { username: 'cecile', password: TEST_PASSWORD });
      const more = await authorizationRequest(dpi, REDIRECT, { acr_values: SUBSTANTIAL });
      await agent.follow(more.url, t.issuer);
      expect(agent.lastHtml).toContain('/method/smartcard"');
      const refused = await presentCardAs(agent, pki.cards.cpe);
      expect(refused.response?.status).toBe(403);
      expect(agent.lastHtml).toContain(messages.fr['error.account_mismatch'].replaceAll('’', '’'));
      const audit = await t.passerelle.services.database.db
        .selectFrom('audit_event')
        .select(['reason', 'method'])
        .where('reason', '=', 'account_mismatch')
        .execute();
      expect(audit).toEqual([{ reason: 'account_mismatch', method: 'smartcard' }]);
      const accepted = await presentCardAs(agent, pki.cards.cps);
      const claims = await codeClaims(dpi, more, accepted.url);
      expect(claims?.sub).toBe(cecile.id);
      expect(claims?.acr).toBe(HIGH);
    });
  });
}
