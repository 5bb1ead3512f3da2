import { createServer, type Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CardCertificates } from '../src/accounts/card-certificates.ts';
import type { NationalIdentities } from '../src/accounts/national-identity.ts';
import { startCardListener } from '../src/http/card-listener.ts';
import { addressMatcher, presentedCertificate } from '../src/http/client-certificate.ts';
import { type SmartcardMethodDeps, smartcardMethod } from '../src/methods/smartcard/index.ts';
import type { AuthMethod, MethodContext, PresentedCertificate } from '../src/methods/types.ts';
import { attempt } from './helpers/attempts.ts';
import { BrowserAgent, followThroughConsent, formAction, formField } from './helpers/browser-agent.ts';
import { cardRequest, submitCardForm } from './helpers/card-client.ts';
import { CERT_HEADER, nodeCert, startWithCards, VERIFY_HEADER } from './helpers/card-server.ts';
import {
  authorizationRequest,
  codeClaims,
  createUser,
  discover,
  REDIRECT,
  registerWebClient,
} from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { type Card, createIgcSantePki, IDNAT, type IgcSantePki } from './helpers/igc-sante-pki.ts';
import type { TestServer } from './helpers/server.ts';

let pki: IgcSantePki;

beforeAll(async () => {
  pki = await createIgcSantePki();
});
afterAll(() => pki?.remove());

function context(certificate: PresentedCertificate | undefined, accountId?: string): MethodContext {
  return {
    ip: '127.0.0.1',
    userAgent: 'vitest',
    interactionUid: 'test-interaction',
    requestId: 'test-request-id',
    locale: 'fr',
    username: undefined,
    accountId,
    clientCertificate: certificate,
  };
}
const tls = (card: Card): PresentedCertificate => ({ chain: [card.der], source: 'tls' });

for (const kind of databasesUnderTest()) {
  describe(`smart card method: verification and account mapping [${kind}]`, () => {
    let t: TestServer;
    let method: AuthMethod<Record<string, never>>;
    let identities: NationalIdentities;
    let certificates: CardCertificates;
    let directory: Map<string, string>;
    const deps = (): SmartcardMethodDeps => {
      const smartcard = t.passerelle.smartcard;
      if (!smartcard) throw new Error('smartcard not configured');
      return {
        verifier: smartcard.verifier,
        accounts: t.passerelle.services.accounts,
        certificates,
        identities,
        logger: t.passerelle.services.logger,
        formOrigin: t.config.smartcard?.formOrigin,
        findByDirectoryIdNat: async (idNat) => directory.get(idNat),
      };
    };

    beforeAll(async () => {
      t = await startWithCards(kind, pki);
      identities = t.passerelle.services.identities;
      certificates = new CardCertificates(t.passerelle.services.database.db);
      directory = new Map();
      method = smartcardMethod(deps());
    });
    afterAll(async () => {
      await t?.close();
    });

    it('describes itself as a phishing-resistant two-factor method on the card origin', () => {
      expect(method).toMatchObject({
        id: 'smartcard',
        label: 'method.smartcard',
        amr: ['sc', 'pin', 'mfa', 'hwk'],
        phishingResistant: true,
        needsUsername: false,
        view: 'method-smartcard',
        formOrigin: t.cardOrigin,
      });
      expect(method.input.safeParse({ csrf: 'x' }).success).toBe(true);
    });

    it('no certificate, or a refused one, fails with the precise reason', async () => {
      expect(await method.authenticate({}, context(undefined))).toEqual({
        kind: 'failure',
        code: 'certificate_missing',
        reason: 'no_certificate',
      });
      const cases: [Card, string][] = [
        [pki.cards.expired, 'expired'],
        [pki.cards.revoked, 'revoked'],
        [pki.cards.foreign, 'untrusted_issuer'],
        [pki.cards.wrongEku, 'wrong_key_usage'],
        [pki.cards.signature, 'wrong_key_usage'],
        [pki.cards.noIdentifier, 'no_identifier'],
      ];
      for (const [card, reason] of cases) {
        expect(await method.authenticate({}, context(tls(card))), card.label).toEqual({
          kind: 'failure',
          code: 'certificate_rejected',
          reason,
        });
      }
    });

    it('a valid card linked to no account: card_not_linked', async () => {
      expect(await method.authenticate({}, context(tls(pki.cards.cps)))).toEqual({
        kind: 'failure',
        code: 'card_not_linked',
        reason: 'unmapped',
      });
      expect(await identities.findByIdNat(IDNAT.cps)).toBeUndefined();
    });

    it('a registered certificate maps to its account; the proven idNat is recorded once', async () => {
      const sage = await createUser(t, 'cecile.sage');
      expect(await certificates.register(sage.id, nodeCert(pki.cards.cps))).toBe(true);
      const outcome = await method.authenticate({}, context(tls(pki.cards.cps)));
      expect(outcome).toEqual({
        kind: 'success',
        accountId: sage.id,
        amr: ['sc', 'pin', 'mfa', 'hwk'],
        nationalId: { idNat: IDNAT.cps, source: 'cps-certificate' },
        detail: {
          serial: pki.cards.cps.serial,
          issuer: expect.stringContaining('CN=TEST AC IGC-SANTE FORT PERSONNES'),
          fingerprint: pki.cards.cps.fingerprint,
          family: 'CPS',
          source: 'tls',
          revocationChecked: true,
          mappedBy: 'fingerprint',
        },
      });
      const link = await identities.findByAccount(sage.id);
      expect(link).toMatchObject({
        idNat: IDNAT.cps,
        rpps: IDNAT.cps.slice(1),
        source: 'cps-certificate',
        status: 'verified',
      });
      // A second login within the hour does not rewrite the link.
      await method.authenticate({}, context(tls(pki.cards.cps)));
      expect((await identities.findByAccount(sage.id))?.updatedAt).toEqual(link?.updatedAt);
    });

    it('a national identity link maps the card; a candidate link becomes verified', async () => {
      const paul = await createUser(t, 'paul.medecin');
      await identities.set(paul.id, IDNAT.cpsDotted, 'name-match', 'candidate');
      const outcome = await method.authenticate({}, context(tls(pki.cards.cpsDottedUpn)));
      expect(outcome).toMatchObject({
        kind: 'success',
        accountId: paul.id,
        detail: { mappedBy: 'national_identity' },
      });
      expect(await identities.findByAccount(paul.id)).toMatchObject({
        idNat: IDNAT.cpsDotted,
        source: 'cps-certificate',
        status: 'verified',
        verifiedAt: expect.any(Date),
      });
    });

    it('the directory lookup (optional dependency) maps a card no link knows', async () => {
      const charles = await createUser(t, 'charles.admin');
      directory.set(IDNAT.cpe, charles.id);
      const outcome = await method.authenticate({}, context(tls(pki.cards.cpe)));
      expect(outcome).toMatchObject({
        kind: 'success',
        accountId: charles.id,
        detail: { mappedBy: 'directory', family: 'CPE' },
      });
      expect(await identities.findByAccount(charles.id)).toMatchObject({ idNat: IDNAT.cpe, rpps: null });
    });

    it('a card proving another account than the session one: account_mismatch', async () => {
      const other = await createUser(t, 'someone.else');
      const outcome = await method.authenticate({}, context(tls(pki.cards.cps), other.id));
      expect(outcome).toMatchObject({ kind: 'failure', code: 'account_mismatch' });
    });

    it('a card whose idNat is linked to another account is refused, queued for review, audited', async () => {
      const intruder = await createUser(t, 'intruder');
      // The administrator registered Cécile's card for the wrong account.
      await certificates.register(intruder.id, nodeCert(pki.cards.cps)).catch(() => undefined);
      const db = t.passerelle.services.database.db;
      await db
        .deleteFrom('smartcard_certificate')
        .where('fingerprint', '=', pki.cards.cps.fingerprint)
        .execute();
      await certificates.register(intruder.id, nodeCert(pki.cards.cps));
      const outcome = await method.authenticate({}, context(tls(pki.cards.cps)));
      expect(outcome).toEqual({
        kind: 'failure',
        code: 'card_not_linked',
        reason: 'national_id_conflict',
        accountId: intruder.id,
      });
      // The claim is recorded as a conflict for review; the verified link of the holder is untouched.
      expect(await identities.findByAccount(intruder.id)).toMatchObject({
        idNat: IDNAT.cps,
        status: 'conflict',
        statusReason: 'held_by_another_account',
      });
      const holder = await identities.findByIdNat(IDNAT.cps);
      expect(holder).toMatchObject({ status: 'verified' });
      expect(holder?.accountId).not.toBe(intruder.id);
      const [review, ...more] = await identities.openReviews();
      expect(more).toHaveLength(0);
      expect(review).toMatchObject({
        kind: 'conflict',
        accountId: intruder.id,
        idNat: IDNAT.cps,
        source: 'cps-certificate',
        otherAccountId: holder?.accountId,
      });
      const events = await db
        .selectFrom('audit_event')
        .select(['type', 'outcome', 'account_id', 'reason', 'detail'])
        .where('type', '=', 'rpps.link.conflict')
        .execute();
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({
        outcome: 'failure',
        account_id: intruder.id,
        reason: 'conflict',
      });
      expect(events[0]?.detail).toMatchObject({
        idNat: IDNAT.cps,
        conflictReason: 'held_by_another_account',
        otherAccountId: holder?.accountId,
      });
      // A second attempt does not queue it twice.
      await method.authenticate({}, context(tls(pki.cards.cps)));
      expect(await identities.openReviews()).toHaveLength(1);
    });

    it('a link flagged conflict or inactive is not used for login, and not bypassed by the directory', async () => {
      const db = t.passerelle.services.database.db;
      const flagged = await createUser(t, 'flagged');
      directory.set(IDNAT.cpsDotted, flagged.id);
      for (const status of ['conflict', 'inactive'] as const) {
        await db.deleteFrom('national_identity').where('id_nat', '=', IDNAT.cpsDotted).execute();
        await identities.set(flagged.id, IDNAT.cpsDotted, 'manual', status);
        expect(await method.authenticate({}, context(tls(pki.cards.cpsDottedUpn))), status).toEqual({
          kind: 'failure',
          code: 'card_not_linked',
          reason: 'unmapped',
        });
        expect((await identities.findByAccount(flagged.id))?.status).toBe(status);
      }
    });

    it('a disabled account is refused after the card is proven (by the login layer)', async () => {
      const gone = await createUser(t, 'gone');
      await t.passerelle.services.accounts.setDisabled(gone.id, true);
      directory.set(IDNAT.cpe, gone.id);
      await t.passerelle.services.database.db
        .deleteFrom('national_identity')
        .where('id_nat', '=', IDNAT.cpe)
        .execute();
      expect(await attempt(t.passerelle.services, method, {}, context(tls(pki.cards.cpe)))).toMatchObject({
        kind: 'failure',
        code: 'account_disabled',
        accountId: gone.id,
      });
    });
  });

  describe(`smart card certificate transport: TLS listener and trusted proxy header [${kind}]`, () => {
    let t: TestServer;
    let probeTls: HttpsServer;
    let probeHttp: Server;
    let tlsOrigin: string;
    let httpOrigin: string;

    /** A koa app that reports what presentedCertificate found and what the method concluded. */
    const probe = (method: AuthMethod<Record<string, never>>) => {
      const app = new Koa();
      const options = {
        header: CERT_HEADER,
        verifyHeader: VERIFY_HEADER,
        trustedPeer: addressMatcher(['127.0.0.1']),
      };
      app.use(async (ctx) => {
        const certificate = presentedCertificate(ctx, options);
        const outcome = await method.authenticate({}, context(certificate));
        ctx.body = { source: certificate?.source ?? null, outcome };
      });
      return app.callback();
    };

    beforeAll(async () => {
      t = await startWithCards(kind, pki);
      const db = t.passerelle.services.database.db;
      const smartcard = t.passerelle.smartcard;
      if (!smartcard) throw new Error('smartcard not configured');
      const user = await createUser(t, 'cecile.sage');
      await new CardCertificates(db).register(user.id, nodeCert(pki.cards.cps));
      const method = smartcardMethod({
        verifier: smartcard.verifier,
        accounts: t.passerelle.services.accounts,
        certificates: new CardCertificates(db),
        identities: t.passerelle.services.identities,
        logger: t.passerelle.services.logger,
      });
      probeTls = await startCardListener(
        {
          host: '127.0.0.1',
          port: 0,
          certFile: pki.files.serverCert,
          keyFile: pki.files.serverKey,
          caFiles: [pki.files.rootFort, pki.files.rootStandard, pki.files.intermediates],
          proxyHeaders: [CERT_HEADER, VERIFY_HEADER],
        },
        probe(method),
      );
      tlsOrigin = `https://127.0.0.1:${(probeTls.address() as AddressInfo).port}`;
      probeHttp = createServer(probe(method));
      await new Promise<void>((resolve) => probeHttp.listen(0, '0.0.0.0', resolve));
      httpOrigin = `http://127.0.0.1:${(probeHttp.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      await new Promise((resolve) => probeTls?.close(resolve));
      await new Promise((resolve) => probeHttp?.close(resolve));
      await t?.close();
    });

    const viaTls = async (card: Card | undefined, headers: Record<string, string> = {}) =>
      JSON.parse(
        (await cardRequest(tlsOrigin, { cert: card?.pem, key: card?.keyPem, ca: pki.serverCa.pem, headers }))
          .text,
      );
    const proxyHeaders = (card: Card, verify = 'SUCCESS') => ({
      [CERT_HEADER]: encodeURIComponent(card.pem),
      [VERIFY_HEADER]: verify,
    });

    it('mode (a): the certificate of the TLS handshake logs in (source tls)', async () => {
      const body = await viaTls(pki.cards.cps);
      expect(body).toMatchObject({
        source: 'tls',
        outcome: { kind: 'success', amr: ['sc', 'pin', 'mfa', 'hwk'] },
      });
    });

    it('mode (a): expired, revoked, foreign and wrong-usage cards are refused with their reason', async () => {
      for (const [card, reason] of [
        [pki.cards.expired, 'expired'],
        [pki.cards.revoked, 'revoked'],
        [pki.cards.foreign, 'untrusted_issuer'],
        [pki.cards.wrongEku, 'wrong_key_usage'],
      ] as const) {
        expect((await viaTls(card)).outcome, card.label).toEqual({
          kind: 'failure',
          code: 'certificate_rejected',
          reason,
        });
      }
    });

    it('mode (a): without a card, or with forged proxy headers only, there is no certificate', async () => {
      expect(await viaTls(undefined)).toMatchObject({
        source: null,
        outcome: { code: 'certificate_missing' },
      });
      expect(await viaTls(undefined, proxyHeaders(pki.cards.cps))).toMatchObject({
        source: null,
        outcome: { code: 'certificate_missing' },
      });
    });

    it('mode (b): the header from a trusted proxy address logs in (source proxy)', async () => {
      const response = await cardRequest(httpOrigin, {
        headers: proxyHeaders(pki.cards.cps),
        localAddress: '127.0.0.1',
      });
      expect(JSON.parse(response.text)).toMatchObject({ source: 'proxy', outcome: { kind: 'success' } });
    });

    it('mode (b): the same header from another address, or without SUCCESS, is ignored', async () => {
      const spoofed = await cardRequest(httpOrigin, {
        headers: proxyHeaders(pki.cards.cps),
        localAddress: '127.0.0.2',
      });
      expect(JSON.parse(spoofed.text)).toMatchObject({
        source: null,
        outcome: { code: 'certificate_missing' },
      });
      // X-Forwarded-For naming the proxy does not help: the TCP peer counts.
      const forwarded = await cardRequest(httpOrigin, {
        headers: { ...proxyHeaders(pki.cards.cps), 'x-forwarded-for': '127.0.0.1' },
        localAddress: '127.0.0.2',
      });
      expect(JSON.parse(forwarded.text).source).toBeNull();
      for (const verify of ['FAILED:certificate has expired', 'NONE', 'success']) {
        const response = await cardRequest(httpOrigin, {
          headers: proxyHeaders(pki.cards.cps, verify),
          localAddress: '127.0.0.1',
        });
        expect(JSON.parse(response.text).source, verify).toBeNull();
      }
    });

    it('mode (b): a proxy-forwarded revoked card is still refused by Passerelle', async () => {
      const response = await cardRequest(httpOrigin, {
        headers: proxyHeaders(pki.cards.revoked),
        localAddress: '127.0.0.1',
      });
      expect(JSON.parse(response.text)).toMatchObject({
        source: 'proxy',
        outcome: { code: 'certificate_rejected', reason: 'revoked' },
      });
    });

    it("Passerelle's own card listener serves the app over TLS and reports CRL freshness in /readyz", async () => {
      if (!t.cardOrigin) throw new Error('no card listener');
      const ready = await cardRequest(`${t.cardOrigin}/readyz`, {
        cert: pki.cards.cps.pem,
        key: pki.cards.cps.keyPem,
        ca: pki.serverCa.pem,
        headers: { 'x-forwarded-for': '203.0.113.9', 'x-request-id': 'forged-request-id-1' },
      });
      expect(ready.status).toBe(200);
      expect(JSON.parse(ready.text).checks.smartcard_crl).toEqual({ ok: true });
      // Forwarding headers are dropped on the listener, even with http.trustProxy.
      expect(ready.headers['x-request-id']).not.toBe('forged-request-id-1');
      const line = t.logs.find(
        (l) => l.includes(`"requestId":"${ready.headers['x-request-id']}"`) && l.includes('"msg":"request"'),
      );
      expect(JSON.parse(line ?? '{}').ip).toBe('127.0.0.1');
      expect(
        t.logs.some((l) => /smartcard: 2 trust anchor\(s\), 2 intermediate\(s\); CRL .*fresh/.test(l)),
      ).toBe(true);
    });
  });

  describe(`card login end to end through /interaction [${kind}]`, () => {
    let t: TestServer;
    let config: oidc.Configuration;
    let cecile: { id: string };

    beforeAll(async () => {
      t = await startWithCards(kind, pki);
      const secret = await registerWebClient(t, 'dpi', { first_party: true });
      config = await discover(t, 'dpi', oidc.ClientSecretBasic(secret));
      cecile = await createUser(t, 'cecile.sage');
      await new CardCertificates(t.passerelle.services.database.db).register(
        cecile.id,
        nodeCert(pki.cards.cps),
      );
    });
    afterAll(async () => {
      await t?.close();
    });

    /** Opens the card page of a new authorization request; returns the agent, request and page. */
    const openCardPage = async () => {
      const agent = new BrowserAgent();
      const pending = await authorizationRequest(config, REDIRECT);
      const first = await agent.follow(pending.url, t.issuer);
      const uid = /\/interaction\/([^/?"]+)/.exec(first.url.pathname)?.[1] ?? '';
      const page = await agent.follow(new URL(`/interaction/${uid}?method=smartcard`, t.issuer), t.issuer);
      expect(page.response?.status).toBe(200);
      return { agent, pending, uid, html: agent.lastHtml };
    };

    /** Finishes the login in the browser after the card form: consent if asked, then the callback. */
    const finishInBrowser = (agent: BrowserAgent, location: string) =>
      followThroughConsent(agent, location, t.issuer);

    it('mode (a): the card page posts to the card listener, the TLS card logs in, amr sc pin mfa hwk', async () => {
      const { agent, pending, html } = await openCardPage();
      expect(html).toContain('Insérez votre carte CPS');
      expect(html).toContain('code PIN');
      const action = formAction(html, '/method/smartcard');
      expect(action.startsWith(`${t.cardOrigin}/interaction/`)).toBe(true);
      const posted = await submitCardForm(html, t.issuer, pki.cards.cps, pki.serverCa.pem);
      expect(posted.status, posted.text).toBe(303);
      const step = await finishInBrowser(agent, String(posted.headers.location));
      expect(step.url.origin + step.url.pathname).toBe(REDIRECT);
      const claims = await codeClaims(config, pending, step.url);
      expect(claims?.sub).toBe(cecile.id);
      expect(claims?.amr).toEqual(expect.arrayContaining(['sc', 'pin', 'mfa', 'hwk']));
      expect(claims?.acr).toBe('urn:passerelle:loa:high');
    });

    it('mode (a): expired, revoked, foreign-CA and wrong-EKU cards get the refusal page', async () => {
      for (const card of [pki.cards.expired, pki.cards.revoked, pki.cards.foreign, pki.cards.wrongEku]) {
        const { agent, html } = await openCardPage();
        const posted = await submitCardForm(html, t.issuer, card, pki.serverCa.pem);
        expect(posted.status, card.label).toBe(303);
        const step = await agent.follow(new URL(String(posted.headers.location), t.issuer), t.issuer);
        expect(step.response?.status, card.label).toBe(403);
        expect(agent.lastHtml, card.label).toContain('Le certificat de votre carte n’est pas accepté');
      }
      const reasons = await t.passerelle.services.database.db
        .selectFrom('audit_event')
        .select('reason')
        .where('method', '=', 'smartcard')
        .where('outcome', '=', 'failure')
        .orderBy('seq')
        .execute();
      expect(reasons.map((r) => r.reason)).toEqual(
        expect.arrayContaining(['expired', 'revoked', 'untrusted_issuer', 'wrong_key_usage']),
      );
    });

    it('mode (b): the header of the trusted proxy address logs in; the same header from 127.0.0.2 does not', async () => {
      const trusted = await openCardPage();
      const post = (page: { uid: string; html: string }, localAddress: string) =>
        cardRequest(new URL(`/interaction/${page.uid}/method/smartcard`, t.issuer), {
          method: 'POST',
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            [CERT_HEADER]: encodeURIComponent(pki.cards.cps.pem),
            [VERIFY_HEADER]: 'SUCCESS',
          },
          body: new URLSearchParams({ csrf: formField(page.html, 'csrf') ?? '' }).toString(),
          localAddress,
        });
      const spoofedPage = await openCardPage();
      const spoofed = await post(spoofedPage, '127.0.0.2');
      expect(spoofed.status).toBe(401);
      expect(spoofed.text).toContain('Aucune carte n’a été détectée');

      const accepted = await post(trusted, '127.0.0.1');
      expect(accepted.status, accepted.text).toBe(303);
      const step = await finishInBrowser(trusted.agent, String(accepted.headers.location));
      const claims = await codeClaims(config, trusted.pending, step.url);
      expect(claims?.sub).toBe(cecile.id);
      expect(claims?.amr).toEqual(expect.arrayContaining(['sc', 'pin', 'mfa', 'hwk']));
    });
  });
}
