import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DirectoryAccounts } from '../src/accounts/directory-accounts.ts';
import { JobLock } from '../src/db/job-lock.ts';
import { foldName } from '../src/rpps/names.ts';
import { importOpenDataFile } from '../src/rpps/open-data.ts';
import type { SyncSummary } from '../src/rpps/sync.ts';
import { createUser } from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { generateProfessionals, type Professional } from './simulators/annuaire/fixtures.ts';
import { writeOpenDataFile } from './simulators/annuaire/open-data-file.ts';
import {
  type AnnuaireSimulator,
  type RecordedRequest,
  startAnnuaireSimulator,
} from './simulators/annuaire/server.ts';

const API_KEY = 'test-annuaire-key-0123456789';
const FIXTURE_NOW = new Date('2026-10-01T00:00:00Z');

/** The simulator's gateway gives up on heavy searches after 30 s; 50 ms here. */
const GATEWAY_TIMEOUT_MS = 50;

/**
 * Simulated Annuaire (the real service's defaults: quota, 504 on oversized queries, total) + Passerelle
 * configured against it with the shipped throttle and batches (short retries and timeouts for the tests).
 */
async function startPair(
  kind: Parameters<typeof startTestServer>[0],
  professionals: Professional[],
  simulator: Partial<Parameters<typeof startAnnuaireSimulator>[0]> = {},
) {
  const sim = await startAnnuaireSimulator({
    professionals,
    apiKey: API_KEY,
    gatewayTimeoutMs: GATEWAY_TIMEOUT_MS,
    ...simulator,
  });
  const t = await startTestServer(kind, {
    config: {
      rpps: {
        api: {
          baseUrl: sim.baseUrl,
          apiKey: API_KEY,
          maxRetries: 3,
          retryBaseDelayMs: 10,
          timeoutMs: 2000,
          breakerFailureThreshold: 50,
        },
        sync: { intervalSeconds: 0, maxChangeShare: 0.05, maxChangeFloor: 5 },
      },
    },
  });
  return { sim, t };
}

for (const kind of databasesUnderTest()) {
  describe(`RPPS sync against the simulated Annuaire Santé [${kind}]`, () => {
    const professionals = [...generateProfessionals({ count: 300, now: FIXTURE_NOW })];
    const active = professionals.filter((p) => p.active);
    const inactive = professionals.filter((p) => !p.active);
    let sim: AnnuaireSimulator;
    let t: TestServer;
    /** account id by idNatPS, for the linked professionals. */
    const accountOf = new Map<string, string>();

    const sync = async (options: { force?: boolean; full?: boolean } = {}): Promise<SyncSummary> => {
      const before = sim.requests.length;
      const result = await t.passerelle.rpps.sync.run({ trigger: 'command', ...options });
      if (result.kind !== 'done') throw new Error('sync busy');
      // The summary counts exactly the requests the simulator received.
      expect(result.summary.apiRequests).toBe(sim.requests.length - before);
      return result.summary;
    };
    const linkOf = (idNat: string) =>
      t.passerelle.services.identities.findByAccount(accountOf.get(idNat) ?? '');
    const db = () => t.passerelle.services.database.db;

    /** An account named like the professional, with a link set by an administrator. */
    async function linkedAccount(p: Professional, source: 'manual' | 'cps-certificate' = 'manual') {
      const account = await t.passerelle.services.accounts.create({
        username: `u${p.rpps}`,
        givenName: p.givenName,
        familyName: p.familyName,
      });
      await t.passerelle.services.identities.set(account.id, p.idNatPs, source, 'verified');
      accountOf.set(p.idNatPs, account.id);
      return account;
    }

    beforeAll(async () => {
      ({ sim, t } = await startPair(kind, professionals));
      for (const p of active.slice(0, 40)) await linkedAccount(p);
      for (const p of inactive.slice(0, 2)) await linkedAccount(p);
    });
    afterAll(async () => {
      await t?.close();
      await sim?.close();
    });

    it('first run: a full pass in identifier batches; the inactive become inactive, with audit and alert', async () => {
      // An HR directory attribute (the bare RPPS), names matching: becomes a verified link.
      const directory = new DirectoryAccounts(db(), t.passerelle.services.accounts);
      const hr = active[50] as Professional;
      const provisioned = await directory.provision({
        stableId: 'guid-hr-1',
        dn: 'cn=hr1,ou=staff,dc=hopital,dc=test',
        username: 'hr1',
        givenName: hr.givenName,
        familyName: hr.familyName,
        idNat: hr.rpps,
        groups: [],
      });
      const hrAccountId = provisioned.kind === 'linked' ? provisioned.account.id : '';
      accountOf.set(hr.idNatPs, hrAccountId);

      const summary = await sync();
      expect(summary).toMatchObject({
        status: 'completed',
        mode: 'full',
        offline: false,
        links: 42,
        checked: 43,
        unchanged: 0,
        failed: 0,
        // The first verification fills what the Annuaire says of each professional.
        changed: { refreshed: 40, inactive: 2, linked: 1, conflict: 0, reactivated: 0 },
      });
      // 43 idNatPS, each searched with its RPPS: two searches of at most 50 identifiers, and one more
      // for the two absent ones before they count as absent.
      expect(summary.apiRequests).toBe(3);
      expect(summary.api).toMatchObject({ retries: 0, rateLimited: 0, gatewayTimeouts: 0, incomplete: 0 });

      // Their registrations ended months ago: past the 30 days a tombstone lives, the API no longer knows them.
      for (const p of inactive.slice(0, 2)) {
        expect(await linkOf(p.idNatPs)).toMatchObject({ status: 'inactive', statusReason: 'not_found' });
      }
      const verified = await linkOf((active[0] as Professional).idNatPs);
      expect(verified).toMatchObject({
        status: 'verified',
        professionCode: (active[0] as Professional).profession.code,
        checkedAt: expect.any(Date),
      });
      expect(await t.passerelle.services.identities.findByAccount(hrAccountId)).toMatchObject({
        idNat: hr.idNatPs,
        source: 'directory-attribute',
        status: 'verified',
      });
      const alerts = await t.passerelle.rpps.alerts.open();
      expect(
        alerts
          .filter((a) => a.kind === 'rpps.link.inactive')
          .map((a) => a.accountId)
          .sort(),
      ).toEqual(
        inactive
          .slice(0, 2)
          .map((p) => accountOf.get(p.idNatPs))
          .sort(),
      );
      const audited = await db()
        .selectFrom('audit_event')
        .select(['type', 'account_id'])
        .where('type', 'in', ['rpps.link.inactive', 'rpps.sync.completed'])
        .execute();
      expect(audited.filter((e) => e.type === 'rpps.link.inactive')).toHaveLength(2);
      expect(audited.filter((e) => e.type === 'rpps.sync.completed')).toHaveLength(1);
    });

    it('next run: a delta since the last one; only what changed is looked up', async () => {
      const leaving = active[1] as Professional;
      sim.deactivate(leaving.idNatPs);
      // The gateway's intermittent failures are retried within the run.
      sim.faults.queue(502, { times: 1 });
      sim.faults.queue(504, { times: 1 });
      const summary = await sync();
      expect(
        sim.requests
          .slice(-summary.apiRequests)
          .map((r) => r.status)
          .slice(0, 3),
      ).toEqual([502, 504, 200]);
      expect(summary).toMatchObject({
        status: 'completed',
        mode: 'delta',
        checked: 1,
        unchanged: 0,
        changed: { inactive: 1 },
      });
      expect(summary.deltaSince).not.toBeNull();
      expect(await linkOf(leaving.idNatPs)).toMatchObject({
        status: 'inactive',
        statusReason: 'inactive_in_rpps',
      });
      // The delta asked for Practitioners and PractitionerRoles changed since the last run.
      const queries = sim.requests.slice(-summary.apiRequests).map((r) => decodeURIComponent(r.query));
      expect(queries.some((q) => q.includes('_lastUpdated=ge'))).toBe(true);
    });

    it('the quota (429 without Retry-After) and a 504 are retried, and reported with the run, in the audit and the log', async () => {
      sim.faults.queue(429, { retryAfterSeconds: null });
      sim.faults.queue(504);
      const summary = await sync({ full: true });
      expect(summary).toMatchObject({
        status: 'completed',
        changed: { inactive: 0, reactivated: 0, conflict: 0 },
        api: { retries: 2, rateLimited: 1, gatewayTimeouts: 1, otherFailures: 0 },
      });
      // The pause after the 429 lasted one quota window (a second) at least: the request came back that late.
      const sent = sim.requests.slice(-summary.apiRequests);
      const limited = sent.find((r) => r.status === 429) as RecordedRequest;
      const again = sent.find(
        (r) => r.at > limited.at && r.path === limited.path && r.query === limited.query,
      );
      expect((again?.at ?? 0) - limited.at).toBeGreaterThanOrEqual(990);
      const [run] = await t.passerelle.rpps.sync.runs(1);
      expect(run?.summary).toMatchObject({ api: { rateLimited: 1, gatewayTimeouts: 1 } });
      const audited = await db()
        .selectFrom('audit_event')
        .select('detail')
        .where('type', '=', 'rpps.sync.completed')
        .orderBy('seq', 'desc')
        .executeTakeFirstOrThrow();
      expect(audited.detail).toMatchObject({
        runId: summary.runId,
        api: { retries: 2, rateLimited: 1, gatewayTimeouts: 1 },
      });
    });

    it('a batch that keeps failing (504) marks nobody as gone: the run fails and changes nothing', async () => {
      const before = await t.passerelle.services.identities.list();
      const target = active[0] as Professional;
      // Every attempt at the batch holding this professional answers 504; the other batch succeeds.
      sim.faults.queue(504, { times: 10, query: new RegExp(target.idNatPs) });
      const summary = await sync({ full: true });
      expect(summary).toMatchObject({
        status: 'failed',
        changed: { inactive: 0 },
        api: { gatewayTimeouts: 4, retries: 3 },
      });
      expect(summary.error).toMatch(/504/);
      const after = await t.passerelle.services.identities.list();
      expect(after.map((l) => [l.accountId, l.status])).toEqual(before.map((l) => [l.accountId, l.status]));
      const failed = await db()
        .selectFrom('audit_event')
        .select('detail')
        .where('type', '=', 'rpps.sync.failed')
        .orderBy('seq', 'desc')
        .executeTakeFirstOrThrow();
      expect(failed.detail).toMatchObject({ api: { gatewayTimeouts: 4 } });
      sim.faults.clear();
    });

    it('a partial answer (fewer matches than its total) is searched again: nobody absent from it is marked gone', async () => {
      sim.faults.truncate(1, { keep: 5 });
      const summary = await sync({ full: true });
      expect(summary).toMatchObject({
        status: 'completed',
        changed: { inactive: 0 },
        api: { incomplete: 1, restarts: 1 },
      });
      for (const p of active.slice(0, 40).filter((p) => p !== active[1]))
        expect((await linkOf(p.idNatPs))?.status, p.idNatPs).toBe('verified');
    });

    it('a changed profession is refreshed; a verified link due for re-verification is looked up again', async () => {
      const changed = active[2] as Professional;
      const profession =
        changed.profession.code === '21'
          ? { code: '40', label: 'Chirurgien-Dentiste' }
          : { code: '21', label: 'Pharmacien' };
      sim.update(changed.idNatPs, { profession });
      const old = active[3] as Professional;
      const threeYearsAgo = new Date(Date.now() - 3 * 365 * 86_400_000);
      await db()
        .updateTable('national_identity')
        .set({ verified_at: threeYearsAgo })
        .where('id_nat', '=', old.idNatPs)
        .execute();
      const summary = await sync();
      // Also looked up again: the professional who left during the previous run's overlap window.
      expect(summary).toMatchObject({ mode: 'delta', checked: 3, changed: { refreshed: 1 }, unchanged: 2 });
      expect(await linkOf(changed.idNatPs)).toMatchObject({
        status: 'verified',
        professionCode: profession.code,
      });
      const reverified = await linkOf(old.idNatPs);
      expect(reverified?.verifiedAt?.getTime()).toBeGreaterThan(threeYearsAgo.getTime());
    });

    it('names that no longer match: a conflict for review on a manual link, a report on a card-proven one', async () => {
      const manual = active[4] as Professional;
      const carded = active[41] as Professional;
      await linkedAccount(carded, 'cps-certificate');
      await sync(); // the new link is checked once
      sim.update(manual.idNatPs, { familyName: 'Zyxomar' });
      sim.update(carded.idNatPs, { familyName: 'Wyvelle' });
      const summary = await sync();
      expect(summary).toMatchObject({ changed: { conflict: 1 }, namesDiffer: 1 });
      expect(await linkOf(manual.idNatPs)).toMatchObject({
        status: 'conflict',
        statusReason: 'names_mismatch',
      });
      expect(await linkOf(carded.idNatPs)).toMatchObject({
        status: 'verified',
        nationalFamilyName: 'Wyvelle',
      });
      const review = (await t.passerelle.services.identities.openReviews()).find(
        (r) => r.accountId === accountOf.get(manual.idNatPs),
      );
      expect(review).toMatchObject({ kind: 'conflict', evidence: { reason: 'names_mismatch' } });

      // The administrator keeps the link (different names are right): it is verified again and the
      // next runs do not raise it again.
      await t.passerelle.services.identities.decide(review?.id ?? '', 'reject', 'admin:test');
      expect(await linkOf(manual.idNatPs)).toMatchObject({ status: 'verified', statusReason: null });
      const after = await sync({ full: true });
      expect(after.changed.conflict).toBe(0);
      expect(await linkOf(manual.idNatPs)).toMatchObject({
        status: 'verified',
        nationalFamilyName: 'Zyxomar',
      });
    });

    it('a run that would change too many links stops and reports; --force applies it', async () => {
      const leaving = active.slice(10, 20);
      for (const p of leaving) sim.deactivate(p.idNatPs);
      const halted = await sync();
      expect(halted).toMatchObject({ status: 'halted', halted: { statusChanges: 10, limit: 5 } });
      for (const p of leaving) expect((await linkOf(p.idNatPs))?.status).toBe('verified');
      expect((await t.passerelle.rpps.alerts.open()).some((a) => a.kind === 'rpps.sync.halted')).toBe(true);

      // A halted run does not advance the delta: the next run sees the same changes.
      const forced = await sync({ force: true });
      expect(forced).toMatchObject({ status: 'completed', changed: { inactive: 10 } });
      for (const p of leaving) expect((await linkOf(p.idNatPs))?.status).toBe('inactive');
    });

    it('a link marked inactive whose professional is active again is reactivated', async () => {
      const back = active[5] as Professional;
      await t.passerelle.services.identities.set(
        accountOf.get(back.idNatPs) ?? '',
        back.idNatPs,
        'manual',
        'inactive',
      );
      const summary = await sync({ full: true });
      expect(summary).toMatchObject({ mode: 'full', changed: { reactivated: 1, inactive: 0 } });
      expect(await linkOf(back.idNatPs)).toMatchObject({ status: 'verified', statusReason: null });
    });

    it('past 30 days without a completed run: a full pass', async () => {
      await db()
        .updateTable('rpps_sync_run')
        .set({ started_at: sql<Date>`started_at - interval '31 days'` })
        .execute();
      const summary = await sync();
      expect(summary.mode).toBe('full');
      expect(summary.checked).toBe(accountOf.size);
    });

    it('one runner at a time across instances', async () => {
      const other = new JobLock(db(), 'rpps-sync', 'other-instance');
      expect(await other.acquire(60)).toEqual({ kind: 'acquired' });
      expect(await t.passerelle.rpps.sync.run({ trigger: 'command' })).toEqual({ kind: 'busy' });
      await other.release();
      const both = await Promise.all([
        t.passerelle.rpps.sync.run({ trigger: 'command' }),
        t.passerelle.rpps.sync.run({ trigger: 'command' }),
      ]);
      expect(both.map((r) => r.kind).sort()).toEqual(['busy', 'done']);
    });

    it('the Annuaire down and no open-data index: the run fails, nothing changes, the next run recovers', async () => {
      const before = await t.passerelle.services.identities.list();
      sim.faults.down('unavailable');
      try {
        const summary = await sync();
        expect(summary.status).toBe('failed');
        expect(summary.error).toMatch(/unavailable|503/i);
      } finally {
        sim.faults.up();
      }
      const after = await t.passerelle.services.identities.list();
      expect(after.map((l) => [l.accountId, l.status])).toEqual(before.map((l) => [l.accountId, l.status]));
      const [last] = await t.passerelle.rpps.sync.runs(1);
      expect(last).toMatchObject({ status: 'failed' });
      expect((await sync()).status).toBe('completed');
    });
  });
}

for (const kind of databasesUnderTest()) {
  describe(`RPPS sync against an Annuaire Santé without total [${kind}]`, () => {
    const professionals = [...generateProfessionals({ count: 60, now: FIXTURE_NOW })];
    const active = professionals.filter((p) => p.active).slice(0, 20);
    let sim: AnnuaireSimulator;
    let t: TestServer;

    beforeAll(async () => {
      // The reference: "`total` may be absent". Then a partial answer cannot be told from a complete one.
      ({ sim, t } = await startPair(kind, professionals, { total: 'never' }));
    });
    afterAll(async () => {
      await t?.close();
      await sim?.close();
    });

    it('professionals absent from a truncated answer are looked up again, never marked gone', async () => {
      const accounts: string[] = [];
      for (const p of active) {
        const account = await t.passerelle.services.accounts.create({
          username: `n${p.rpps}`,
          givenName: p.givenName,
          familyName: p.familyName,
        });
        await t.passerelle.services.identities.set(account.id, p.idNatPs, 'manual', 'verified');
        accounts.push(account.id);
      }
      sim.faults.truncate(1, { keep: 5 });
      const result = await t.passerelle.rpps.sync.run({ trigger: 'command', full: true });
      expect(result).toMatchObject({
        kind: 'done',
        summary: { status: 'completed', changed: { inactive: 0, refreshed: 20 }, api: { incomplete: 1 } },
      });
      for (const id of accounts)
        expect((await t.passerelle.services.identities.findByAccount(id))?.status).toBe('verified');
    });
  });
}

describe('scheduled RPPS sync', () => {
  it('two instances on one database: the sync runs on its schedule, one run at a time', async () => {
    const [kind] = databasesUnderTest().slice(-1);
    const professionals = [...generateProfessionals({ count: 50, now: FIXTURE_NOW })];
    const sim = await startAnnuaireSimulator({ professionals, apiKey: API_KEY });
    const config = {
      rpps: {
        api: { baseUrl: sim.baseUrl, apiKey: API_KEY },
        sync: { intervalSeconds: 2 },
      },
    };
    const first = await startTestServer(kind ?? 'pglite', { config });
    const second =
      kind === 'postgres'
        ? await startTestServer(kind, {
            config: { ...config, keys: { encryptionKey: first.config.keys.encryptionKey } },
            database: first.database,
          })
        : undefined;
    try {
      const db = first.passerelle.services.database.db;
      const account = await createUser(first, 'scheduled');
      await first.passerelle.services.identities.set(
        account.id,
        (professionals[0] as Professional).idNatPs,
        'manual',
        'verified',
      );
      let runs: { status: string; trigger: string; started_at: Date; finished_at: Date | null }[] = [];
      // Two runs of the schedule, however slow the machine (each is seconds on an idle one).
      const deadline = Date.now() + 180_000;
      while (Date.now() < deadline && runs.filter((r) => r.status === 'completed').length < 2) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        runs = await db
          .selectFrom('rpps_sync_run')
          .select(['status', 'trigger', 'started_at', 'finished_at'])
          .orderBy('started_at')
          .execute();
      }
      expect(runs.filter((r) => r.status === 'completed').length).toBeGreaterThanOrEqual(2);
      expect(runs.every((r) => r.trigger === 'schedule')).toBe(true);
      // Never two at once: each run started after the previous one finished.
      for (let i = 1; i < runs.length; i++) {
        const previous = runs[i - 1]?.finished_at?.getTime() ?? Number.POSITIVE_INFINITY;
        expect(runs[i]?.started_at.getTime()).toBeGreaterThanOrEqual(previous);
      }
      expect(
        (await first.passerelle.services.identities.findByAccount(account.id))?.checkedAt,
      ).toBeInstanceOf(Date);
    } finally {
      await second?.close();
      await first.close();
      await sim.close();
    }
  });
});

for (const kind of databasesUnderTest()) {
  describe(`RPPS sync with the open-data index [${kind}]`, () => {
    // The extract and the simulator hold the same generated population (same seed).
    const professionals = [...generateProfessionals({ count: 400, now: FIXTURE_NOW })];
    const active = professionals.filter((p) => p.active);
    const key = (p: Professional) => `${foldName(p.familyName)}|${foldName(p.givenName)}`;
    const byNames = Map.groupBy(active, key);
    const unique = active.filter((p) => byNames.get(key(p))?.length === 1);
    const homonyms = [...byNames.values()].find((group) => group.length > 1) ?? [];
    let sim: AnnuaireSimulator;
    let t: TestServer;
    let dir: string;

    beforeAll(async () => {
      ({ sim, t } = await startPair(kind, professionals));
      dir = mkdtempSync(join(tmpdir(), 'passerelle-extract-'));
      const file = join(dir, 'PS_LibreAcces_Personne_activite_202611220000.txt');
      await writeOpenDataFile(file, { count: 400 });
      const imported = await importOpenDataFile(t.passerelle.services.database.db, file);
      expect(imported.kind).toBe('imported');
    });
    afterAll(async () => {
      await t?.close();
      await sim?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it('accounts without a link get name-match candidates for review; homonyms are left alone', async () => {
      expect(homonyms.length).toBeGreaterThan(1);
      const accounts = t.passerelle.services.accounts;
      const named = unique[0] as Professional;
      const a = await accounts.create({
        username: 'named',
        familyName: named.familyName,
        givenName: named.givenName,
      });
      const h = await accounts.create({
        username: 'homonym',
        familyName: (homonyms[0] as Professional).familyName,
        givenName: (homonyms[0] as Professional).givenName,
      });
      const summary = await t.passerelle.rpps.sync.run({ trigger: 'command' });
      expect(summary).toMatchObject({
        kind: 'done',
        summary: { status: 'completed', changed: { candidates: 1 } },
      });
      if (summary.kind === 'done') expect(summary.summary.ambiguousNames).toBeGreaterThanOrEqual(1);
      expect(await t.passerelle.services.identities.findByAccount(a.id)).toMatchObject({
        idNat: named.idNatPs,
        source: 'name-match',
        status: 'candidate',
      });
      expect(await t.passerelle.services.identities.findByAccount(h.id)).toBeUndefined();
      const review = (await t.passerelle.services.identities.openReviews()).find((r) => r.accountId === a.id);
      // The reviewer sees both sides: the account's names and the extract's (upper-case family names).
      expect(review).toMatchObject({
        kind: 'candidate',
        evidence: {
          proposal: {
            local: { familyName: named.familyName, givenName: named.givenName },
            openData: { familyName: named.familyName.toUpperCase(), profession: named.profession.label },
          },
        },
      });
    });

    it('the Annuaire down: verified against a recent index, nothing made inactive; too old an index: the run fails', async () => {
      const gone = professionals.find((p) => !p.active) as Professional;
      const links: [Professional, string][] = [];
      for (const p of [...active.slice(0, 5), gone]) {
        const account = await t.passerelle.services.accounts.create({
          username: `o${p.rpps}`,
          familyName: p.familyName,
          givenName: p.givenName,
        });
        await t.passerelle.services.identities.set(account.id, p.idNatPs, 'manual', 'verified');
        links.push([p, account.id]);
      }
      // An inactive link whose professional is in the extract: offline, no status changes, reactivation included.
      const flagged = active[6] as Professional;
      const flaggedAccount = await t.passerelle.services.accounts.create({ username: `o${flagged.rpps}` });
      await t.passerelle.services.identities.set(flaggedAccount.id, flagged.idNatPs, 'manual', 'inactive');
      sim.faults.down('unavailable');
      try {
        const result = await t.passerelle.rpps.sync.run({ trigger: 'command', full: true });
        expect(result).toMatchObject({ kind: 'done', summary: { status: 'completed', offline: true } });
        for (const [p, accountId] of links) {
          const link = await t.passerelle.services.identities.findByAccount(accountId);
          // Absent from the extract proves nothing offline: the link stays verified.
          expect(link?.status, p.idNatPs).toBe('verified');
          if (p !== gone) expect(link?.professionCode).toBe(p.profession.code);
        }
        expect((await t.passerelle.services.identities.findByAccount(flaggedAccount.id))?.status).toBe(
          'inactive',
        );
        if (result.kind === 'done') expect(result.summary.changed.reactivated).toBe(0);

        await t.passerelle.services.database.db
          .updateTable('rpps_index_import')
          .set({ completed_at: new Date(Date.now() - 8 * 86_400_000) })
          .execute();
        const stale = await t.passerelle.rpps.sync.run({ trigger: 'command', full: true });
        expect(stale).toMatchObject({ kind: 'done', summary: { status: 'failed', offline: false } });
      } finally {
        sim.faults.up();
      }
    });
  });
}
