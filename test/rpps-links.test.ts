import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NationalIdentities, NationalRecord } from '../src/accounts/national-identity.ts';
import type { NationalIdentitySource } from '../src/db/types.ts';
import { BrowserAgent, browserLogin } from './helpers/browser-agent.ts';
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
import { fixtureRpps } from './simulators/annuaire/fixtures.ts';

const idNat = (i: number) => `8${fixtureRpps(i)}`;
const record = (familyName: string, givenName: string, professionCode = '10'): NationalRecord => ({
  familyName,
  givenName,
  professionCode,
  categoryCode: 'C',
  roleCodes: ['TRE_R21:FON-PH', 'TRE_R23:S'],
});

for (const kind of databasesUnderTest()) {
  describe(`national identity links and the review queue [${kind}]`, () => {
    let t: TestServer;
    let links: NationalIdentities;
    let n = 0;
    const user = () => createUser(t, `pro${++n}`);
    const prove = (accountId: string, id: string, source: NationalIdentitySource) =>
      links.propose({ accountId, idNat: id, source, verified: true, actor: 'test' });
    const events = (type: string, accountId: string) =>
      t.passerelle.services.database.db
        .selectFrom('audit_event')
        .select(['type', 'outcome', 'reason', 'detail'])
        .where('type', '=', type)
        .where('account_id', '=', accountId)
        .execute();

    beforeAll(async () => {
      t = await startTestServer(kind);
      links = t.passerelle.services.identities;
    });
    afterAll(async () => {
      await t?.close();
    });

    it('a name match is only a candidate: reviewed, then accepted as verified', async () => {
      const a = await user();
      const outcome = await links.propose({
        accountId: a.id,
        idNat: idNat(1),
        source: 'name-match',
        verified: false,
        national: record('Test', a.givenName ?? ''),
        evidence: { local: 'Test' },
        actor: 'sync:test',
      });
      expect(outcome).toEqual({ kind: 'linked', status: 'candidate' });
      expect(await links.findByAccount(a.id)).toMatchObject({
        status: 'candidate',
        source: 'name-match',
        verifiedAt: null,
      });
      const item = (await links.openReviews()).find((r) => r.accountId === a.id);
      expect(item).toMatchObject({ kind: 'candidate', idNat: idNat(1), state: 'open' });

      const decided = await links.decide(item?.id ?? '', 'accept', 'admin:test');
      expect(decided).toMatchObject({ state: 'accepted', decidedBy: 'admin:test' });
      expect(await links.findByAccount(a.id)).toMatchObject({
        status: 'verified',
        source: 'name-match',
        professionCode: '10',
        verifiedAt: expect.any(Date),
      });
      await expect(links.decide(item?.id ?? '', 'reject', 'admin:other')).rejects.toThrow(/already accepted/);
      expect(await events('rpps.review.accepted', a.id)).toHaveLength(1);
      expect(await events('rpps.link.created', a.id)).toHaveLength(1);
    });

    it('a rejected candidate is removed and not proposed again', async () => {
      const a = await user();
      const proposal = {
        accountId: a.id,
        idNat: idNat(2),
        source: 'name-match' as const,
        verified: false,
        actor: 'sync:test',
      };
      await links.propose(proposal);
      const item = (await links.openReviews()).find((r) => r.accountId === a.id);
      await links.decide(item?.id ?? '', 'reject', 'admin:test');
      expect(await links.findByAccount(a.id)).toBeUndefined();
      expect(await links.propose(proposal)).toEqual({ kind: 'rejected' });
      expect(await links.findByAccount(a.id)).toBeUndefined();
    });

    it('two accounts claiming one RPPS: a conflict, never resolved automatically; accepting moves the link', async () => {
      const holder = await user();
      const claimant = await user();
      const id = idNat(3);
      expect(await prove(holder.id, id, 'directory-attribute')).toEqual({
        kind: 'linked',
        status: 'verified',
      });
      const outcome = await links.propose({
        accountId: claimant.id,
        idNat: id,
        source: 'cps-certificate',
        verified: true,
        evidence: { serial: '01' },
        actor: 'login',
      });
      expect(outcome).toMatchObject({
        kind: 'conflict',
        existing: { accountId: holder.id, status: 'verified' },
      });
      // The holder keeps its verified link; the claim waits as a conflict.
      expect(await links.findByAccount(holder.id)).toMatchObject({ idNat: id, status: 'verified' });
      expect(await links.findByAccount(claimant.id)).toMatchObject({ idNat: id, status: 'conflict' });
      expect((await links.findByIdNat(id))?.accountId).toBe(holder.id);
      // Proposing again does not queue it twice.
      await prove(claimant.id, id, 'cps-certificate');
      const items = (await links.openReviews()).filter((r) => r.idNat === id);
      expect(items).toHaveLength(1);
      expect(items[0]).toMatchObject({
        kind: 'conflict',
        accountId: claimant.id,
        otherAccountId: holder.id,
        evidence: { reason: 'held_by_another_account', proposal: { serial: '01' }, ownLinkBefore: null },
      });

      await links.decide(items[0]?.id ?? '', 'accept', 'admin:test');
      expect(await links.findByAccount(claimant.id)).toMatchObject({
        idNat: id,
        status: 'verified',
        source: 'cps-certificate',
      });
      expect(await links.findByAccount(holder.id)).toBeUndefined();
      expect(await events('rpps.link.removed', holder.id)).toMatchObject([
        { reason: 'review_accepted_for_another_account' },
      ]);
    });

    it('rejecting a conflict restores what was there', async () => {
      const holder = await user();
      const claimant = await user();
      const id = idNat(4);
      const other = idNat(5);
      await prove(holder.id, id, 'manual');
      await prove(claimant.id, other, 'manual');
      // The claimant's card says `id`: it contradicts its own link and another account's.
      const outcome = await prove(claimant.id, id, 'cps-certificate');
      expect(outcome.kind).toBe('conflict');
      expect(await links.findByAccount(claimant.id)).toMatchObject({ idNat: other, status: 'conflict' });
      const item = (await links.openReviews()).find((r) => r.accountId === claimant.id);
      await links.decide(item?.id ?? '', 'reject', 'admin:test');
      expect(await links.findByAccount(claimant.id)).toMatchObject({
        idNat: other,
        status: 'verified',
        statusReason: null,
      });
      expect(await links.findByAccount(holder.id)).toMatchObject({ idNat: id, status: 'verified' });
      expect(await prove(claimant.id, id, 'cps-certificate')).toEqual({ kind: 'rejected' });
    });

    it('a proof contradicting the account’s own verified link flags it; accepting replaces it', async () => {
      const a = await user();
      await prove(a.id, idNat(6), 'directory-attribute');
      const outcome = await prove(a.id, idNat(7), 'psc-login');
      expect(outcome).toMatchObject({ kind: 'conflict', existing: { idNat: idNat(6) } });
      expect(await links.findByAccount(a.id)).toMatchObject({
        idNat: idNat(6),
        status: 'conflict',
        statusReason: 'contradicts_existing_link',
      });
      const item = (await links.openReviews()).find((r) => r.accountId === a.id);
      expect(item).toMatchObject({ idNat: idNat(7), source: 'psc-login', otherAccountId: null });
      await links.decide(item?.id ?? '', 'accept', 'admin:test');
      expect(await links.findByAccount(a.id)).toMatchObject({
        idNat: idNat(7),
        status: 'verified',
        source: 'psc-login',
      });
    });

    it('a proof supersedes another account’s name-match candidate; a verified link keeps the strongest source', async () => {
      const guessed = await user();
      const proven = await user();
      const id = idNat(8);
      await links.propose({
        accountId: guessed.id,
        idNat: id,
        source: 'name-match',
        verified: false,
        actor: 'sync',
      });
      expect(await prove(proven.id, id, 'manual')).toEqual({ kind: 'linked', status: 'verified' });
      expect(await links.findByAccount(guessed.id)).toBeUndefined();
      expect((await links.openReviews()).filter((r) => r.idNat === id)).toHaveLength(0);
      // A stronger proof upgrades the source; a weaker one later does not downgrade it.
      await prove(proven.id, id, 'cps-certificate');
      await prove(proven.id, id, 'directory-attribute');
      expect(await links.findByAccount(proven.id)).toMatchObject({
        source: 'cps-certificate',
        status: 'verified',
      });
      // An unverified claim never touches a verified link.
      expect(
        await links.propose({
          accountId: proven.id,
          idNat: id,
          source: 'directory-attribute',
          verified: false,
          actor: 'sync',
        }),
      ).toEqual({ kind: 'unchanged' });
    });

    it('concurrent proofs of one identifier for two accounts: one link, one conflict', async () => {
      const a = await user();
      const b = await user();
      const id = idNat(9);
      const outcomes = await Promise.all([a, b].map((acc) => prove(acc.id, id, 'cps-certificate')));
      expect(outcomes.map((o) => o.kind).sort()).toEqual(['conflict', 'linked']);
      const rows = await t.passerelle.services.database.db
        .selectFrom('national_identity')
        .select(['status'])
        .where('id_nat', '=', id)
        .execute();
      expect(rows.map((r) => r.status).sort()).toEqual(['conflict', 'verified']);
    });

    it('the rpps scope releases a verified link only', async () => {
      const pro = await user();
      await registerWebClient(t, 'dpi-rpps', { scope: 'openid profile rpps' }).then(async (secret) => {
        const config = await discover(t, 'dpi-rpps', oidc.ClientSecretBasic(secret));
        const login = async () => {
          const pending = await authorizationRequest(config, REDIRECT, { scope: 'openid rpps' });
          const { callback } = await browserLogin(new BrowserAgent(), pending.url, t.issuer, {
            username: pro.username,
            password: TEST_PASSWORD,
          });
          const tokens = await redeemCode(config, pending, callback);
          return oidc.fetchUserInfo(config, tokens.access_token, tokens.claims()?.sub ?? '');
        };
        const id = idNat(10);
        await links.propose({
          accountId: pro.id,
          idNat: id,
          source: 'name-match',
          verified: false,
          actor: 'sync',
          national: record('Test', 'x', '60'),
        });
        const unverified = await login();
        expect(unverified.idnat_ps).toBeUndefined();
        expect(unverified.rpps).toBeUndefined();

        const item = (await links.openReviews()).find((r) => r.accountId === pro.id);
        await links.decide(item?.id ?? '', 'accept', 'admin:test');
        const verified = await login();
        expect(verified).toMatchObject({ idnat_ps: id, rpps: id.slice(1), profession: '60' });
      });
      // A client not allowed the scope cannot ask for it.
      const secret = await registerWebClient(t, 'dpi-plain', { scope: 'openid profile' });
      const config = await discover(t, 'dpi-plain', oidc.ClientSecretBasic(secret));
      const pending = await authorizationRequest(config, REDIRECT, { scope: 'openid rpps' });
      const response = await fetch(pending.url, { redirect: 'manual' });
      const location = new URL(response.headers.get('location') ?? '', t.issuer);
      expect(location.searchParams.get('error')).toBe('invalid_scope');
    });
  });
}
