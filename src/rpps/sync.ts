import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { DirectoryAccounts } from '../accounts/directory-accounts.ts';
import type {
  LinkChange,
  LinkWithNames,
  NationalIdentities,
  NationalRecord,
} from '../accounts/national-identity.ts';
import type { AccountStore } from '../accounts/store.ts';
import type { AdminAlerts } from '../admin/alerts.ts';
import type { AuditTrail } from '../audit/trail.ts';
import type { Config } from '../config/schema.ts';
import { JobLock } from '../db/job-lock.ts';
import type { Database } from '../db/types.ts';
import { type AnnuaireClient, type AnnuaireStats, NO_ANNUAIRE_STATS } from './annuaire-client.ts';
import { AnnuaireUnavailableError, DeltaTooOldError } from './annuaire-errors.ts';
import type { NationalProfessional } from './fhir.ts';
import { normaliseIdNat } from './identifiers.ts';
import { namesConsistent } from './names.ts';
import type { OpenDataIndex } from './open-data-index.ts';

/**
 * The RPPS sync: checks every link against the Annuaire Santé (full pass) or what changed since the last
 * run (delta), verifies directory claims, proposes name-match candidates from the open-data index, and
 * applies the result unless it would change too many links at once. One runner at a time across
 * instances (a lease in the database).
 */

const LOCK_NAME = 'rpps-sync';
/** `_lastUpdated` deltas reach 30 days back at most: beyond, a full pass. */
const DELTA_HORIZON_MS = 30 * 86_400_000;
/** Overlap with the previous run so that no change falls between two runs. */
const DELTA_OVERLAP_MS = 15 * 60_000;
/** Identifiers looked up between two progress reports and lease renewals. */
const CHUNK = 1000;

export interface SyncDeps {
  db: Kysely<Database>;
  identities: NationalIdentities;
  accounts: AccountStore;
  directory?: DirectoryAccounts;
  /** Absent when no API key is configured: only the open-data index can be used. */
  client?: AnnuaireClient;
  index: OpenDataIndex;
  audit: AuditTrail;
  alerts: AdminAlerts;
  logger: Logger;
  config: Config['rpps'];
  instanceId: string;
}

export interface SyncOptions {
  trigger: 'schedule' | 'command';
  /** Apply even when the circuit breaker would stop the run (after an administrator checked it). */
  force?: boolean;
  /** A full pass even when a delta would do. */
  full?: boolean;
  onProgress?: (progress: { phase: string; done: number; total: number }) => void;
  now?: () => Date;
}

export interface SyncSummary {
  runId: string;
  status: 'completed' | 'halted' | 'failed';
  mode: 'full' | 'delta';
  /** Verified against the open-data index because the API was unavailable. */
  offline: boolean;
  deltaSince: string | null;
  links: number;
  checked: number;
  unchanged: number;
  changed: {
    verified: number;
    refreshed: number;
    inactive: number;
    reactivated: number;
    conflict: number;
    linked: number;
    candidates: number;
  };
  /** Identifiers the run could not settle (not found while unverified, unknown offline, invalid claims). */
  unsettled: number;
  /** Exercise names differing from the account's on a link proven by card or PSC (kept, reported). */
  namesDiffer: number;
  ambiguousNames: number;
  failed: number;
  halted?: {
    statusChanges: number;
    limit: number;
    sample: { accountId: string; idNat: string; change: string }[];
  };
  apiRequests: number;
  /**
   * What the Annuaire Santé API did during the run besides answering: failures retried (429 from its
   * quota, 504 from its gateway, others), queries restarted, answers found incomplete, time waited for
   * the throttle. A failure retried successfully changes no link; one that exhausts its retries fails the
   * run (or sends it offline): a professional is never taken for gone because the API failed.
   */
  api: ApiReport;
  durationMs: number;
  error?: string;
}

export interface ApiReport {
  retries: number;
  rateLimited: number;
  gatewayTimeouts: number;
  otherFailures: number;
  restarts: number;
  incomplete: number;
  throttledMs: number;
}

function apiReport(before: AnnuaireStats, after: AnnuaireStats): ApiReport {
  return {
    retries: after.retries - before.retries,
    rateLimited: after.rateLimited - before.rateLimited,
    gatewayTimeouts: after.gatewayTimeouts - before.gatewayTimeouts,
    otherFailures: after.otherFailures - before.otherFailures,
    restarts: after.restarts - before.restarts,
    incomplete: after.incomplete - before.incomplete,
    throttledMs: after.throttledMs - before.throttledMs,
  };
}

export type SyncResult = { kind: 'busy' } | { kind: 'done'; summary: SyncSummary };

function recordOf(p: NationalProfessional): NationalRecord {
  return {
    familyName: p.familyName,
    givenName: p.givenName,
    professionCode: p.professionCode,
    categoryCode: p.categoryCode,
    roleCodes: p.roleCodes,
  };
}

/** What the lookup found: active with its record, inactive, or nothing. */
type Found = { active: boolean; record: NationalRecord } | undefined;

function differs(link: LinkWithNames, record: NationalRecord): boolean {
  return (
    link.professionCode !== record.professionCode ||
    link.categoryCode !== record.categoryCode ||
    link.nationalFamilyName !== record.familyName ||
    link.nationalGivenName !== record.givenName ||
    (record.roleCodes !== undefined && link.roleCodes.join(',') !== record.roleCodes.join(','))
  );
}

const STRONG_SOURCES = new Set(['cps-certificate', 'psc-login']);

type Plan =
  | { kind: 'change'; change: LinkChange }
  | { kind: 'touch' }
  | { kind: 'unsettled' }
  | { kind: 'none' };

/** The change one lookup result implies for one link. `offline`: absence proves nothing. */
export function planLink(
  link: LinkWithNames,
  found: Found,
  offline: boolean,
): Plan & { namesDiffer?: boolean } {
  if (!found) {
    if (offline) return { kind: 'unsettled' };
    if (link.status === 'verified')
      return { kind: 'change', change: { kind: 'inactive', link, reason: 'not_found' } };
    return link.status === 'candidate' ? { kind: 'unsettled' } : { kind: 'none' };
  }
  if (!found.active) {
    if (link.status === 'verified') {
      return { kind: 'change', change: { kind: 'inactive', link, reason: 'inactive_in_rpps' } };
    }
    return link.status === 'candidate' ? { kind: 'unsettled' } : { kind: 'touch' };
  }
  const { record } = found;
  const consistent = namesConsistent(link.accountNames, record);
  switch (link.status) {
    case 'inactive':
      // Offline, the extract confirms presence only: it changes no status, reactivation included.
      return offline
        ? { kind: 'touch' }
        : { kind: 'change', change: { kind: 'reactivate', link, national: record } };
    case 'conflict':
      return differs(link, record)
        ? { kind: 'change', change: { kind: 'refresh', link, national: record, verify: false } }
        : { kind: 'touch' };
    case 'candidate': {
      // A name-match candidate waits for a person; an HR or administrator claim is verified by the API.
      const claim = link.source !== 'name-match';
      if (claim && !consistent)
        return { kind: 'change', change: { kind: 'names_mismatch', link, national: record } };
      const verify = claim && !offline;
      return verify || differs(link, record)
        ? { kind: 'change', change: { kind: 'refresh', link, national: record, verify } }
        : { kind: 'touch' };
    }
    case 'verified': {
      if (!consistent && !STRONG_SOURCES.has(link.source) && !link.keptAfterReview) {
        return { kind: 'change', change: { kind: 'names_mismatch', link, national: record } };
      }
      const plan: Plan = differs(link, record)
        ? { kind: 'change', change: { kind: 'refresh', link, national: record, verify: !offline } }
        : { kind: 'touch' };
      return { ...plan, namesDiffer: !consistent };
    }
  }
}

/** Changes of status that count towards the circuit breaker. */
const STATUS_CHANGES = new Set<LinkChange['kind']>(['inactive', 'reactivate', 'names_mismatch']);

export class RppsSync {
  readonly #deps: SyncDeps;

  constructor(deps: SyncDeps) {
    this.#deps = deps;
  }

  /** The last runs, newest first. */
  async runs(limit = 10) {
    return this.#deps.db
      .selectFrom('rpps_sync_run')
      .selectAll()
      .orderBy('started_at', 'desc')
      .limit(limit)
      .execute();
  }

  async run(options: SyncOptions): Promise<SyncResult> {
    const { db, config, instanceId } = this.#deps;
    const lock = new JobLock(db, LOCK_NAME, `${instanceId}:${randomUUID().slice(0, 8)}`);
    if ((await lock.acquire(config.sync.lockSeconds)).kind !== 'acquired') return { kind: 'busy' };
    try {
      return { kind: 'done', summary: await this.#run(options, lock) };
    } finally {
      await lock.release().catch((err) => this.#deps.logger.error({ err }, 'rpps sync: lock release failed'));
    }
  }

  async #run(options: SyncOptions, lock: JobLock): Promise<SyncSummary> {
    const { db, identities, accounts, directory, client, index, audit, alerts, logger, config } = this.#deps;
    const now = options.now ?? (() => new Date());
    const startedAt = now();
    const runId = randomUUID();
    const statsBefore = client?.stats ?? NO_ANNUAIRE_STATS;
    const lastCompleted = await db
      .selectFrom('rpps_sync_run')
      .select('started_at')
      .where('status', '=', 'completed')
      .orderBy('started_at', 'desc')
      .limit(1)
      .executeTakeFirst();
    let deltaSince =
      !options.full &&
      lastCompleted &&
      startedAt.getTime() - lastCompleted.started_at.getTime() < DELTA_HORIZON_MS
        ? new Date(lastCompleted.started_at.getTime() - DELTA_OVERLAP_MS)
        : null;
    const summary: SyncSummary = {
      runId,
      status: 'completed',
      mode: deltaSince ? 'delta' : 'full',
      offline: false,
      deltaSince: deltaSince?.toISOString() ?? null,
      links: 0,
      checked: 0,
      unchanged: 0,
      changed: {
        verified: 0,
        refreshed: 0,
        inactive: 0,
        reactivated: 0,
        conflict: 0,
        linked: 0,
        candidates: 0,
      },
      unsettled: 0,
      namesDiffer: 0,
      ambiguousNames: 0,
      failed: 0,
      apiRequests: 0,
      api: apiReport(NO_ANNUAIRE_STATS, NO_ANNUAIRE_STATS),
      durationMs: 0,
    };
    await db
      .insertInto('rpps_sync_run')
      .values({
        id: runId,
        mode: summary.mode,
        trigger: options.trigger,
        instance_id: this.#deps.instanceId,
        status: 'running',
        delta_since: deltaSince,
        started_at: startedAt,
      })
      .execute();
    const progress = async (phase: string, done: number, total: number) => {
      options.onProgress?.({ phase, done, total });
      await lock.renew(config.sync.lockSeconds); // throws when the lease was lost
    };

    try {
      // Identities from Pro Santé Identité are not in the Annuaire Santé: the RPPS says nothing of them.
      const links = (await identities.list()).filter((l) => l.origin === 'rpps');
      summary.links = links.length;
      const linkedIdNats = new Set(links.map((l) => l.idNat));
      const linkOf = new Map(links.map((l) => [l.accountId, l]));
      const claims: { accountId: string; idNat: string; dn: string }[] = [];
      for (const claim of (await directory?.idNatClaims()) ?? []) {
        const idNat = normaliseIdNat(claim.idNat);
        if (!idNat) {
          summary.unsettled++;
          continue;
        }
        const own = linkOf.get(claim.accountId);
        if (own?.idNat !== idNat) claims.push({ ...claim, idNat });
      }

      // Which identifiers to look up: every link (full pass), or those changed since the last run, due
      // for re-verification or never checked, plus the directory claims.
      const offlineIndex = async () => {
        const current = await index.current();
        const maxAge = config.openData.offlineMaxAgeDays * 86_400_000;
        if (!current?.completedAt || startedAt.getTime() - current.completedAt.getTime() > maxAge)
          return undefined;
        return current;
      };
      const goOffline = async (err: unknown) => {
        if (!(err instanceof AnnuaireUnavailableError) || !(await offlineIndex())) throw err;
        logger.warn(
          { reason: (err as Error).message },
          'rpps sync: Annuaire Santé unavailable, using the open-data index',
        );
        summary.offline = true;
      };
      if (!client) {
        if (!(await offlineIndex())) {
          throw new Error('no Annuaire Santé API key (rpps.api.apiKey) and no recent open-data index');
        }
        summary.offline = true;
      }
      let changedIds: Set<string> | undefined;
      if (deltaSince && client && !summary.offline) {
        try {
          const changed = new Set<string>();
          for await (const idNat of client.changedSince(deltaSince))
            if (linkedIdNats.has(idNat)) changed.add(idNat);
          changedIds = changed;
        } catch (err) {
          if (err instanceof DeltaTooOldError) changedIds = undefined;
          else await goOffline(err);
        }
      }
      if (!changedIds) {
        deltaSince = null;
        summary.mode = 'full';
        summary.deltaSince = null;
      }
      const reverifyBefore = startedAt.getTime() - config.sync.reverifyAfterDays * 86_400_000;
      const due = (l: LinkWithNames) =>
        !changedIds ||
        changedIds.has(l.idNat) ||
        l.checkedAt === null ||
        l.status === 'candidate' ||
        (l.status === 'verified' && (l.verifiedAt === null || l.verifiedAt.getTime() < reverifyBefore));
      const dueLinks = links.filter(due);
      const targets = [...new Set([...dueLinks.map((l) => l.idNat), ...claims.map((c) => c.idNat)])];

      // Lookup, in chunks (progress, lease renewal): the API, or the open-data index when it is down.
      const found = new Map<string, Found>();
      const lookup = async () => {
        found.clear();
        for (let i = 0; i < targets.length; i += CHUNK) {
          const chunk = targets.slice(i, i + CHUNK);
          if (summary.offline || !client) {
            for (const [idNat, entry] of await index.findByIdNats(chunk)) {
              const { familyName, givenName, professionCode, categoryCode } = entry;
              found.set(idNat, {
                active: true,
                record: { familyName, givenName, professionCode, categoryCode },
              });
            }
          } else {
            for (const [idNat, p] of await client.findByIdentifiers(chunk)) {
              found.set(idNat, { active: p.active, record: recordOf(p) });
            }
          }
          await progress('lookup', Math.min(i + CHUNK, targets.length), targets.length);
        }
      };
      try {
        await lookup();
      } catch (err) {
        if (summary.offline) throw err;
        await goOffline(err);
        await lookup();
      }
      summary.checked = targets.length;

      // Plan.
      const changes: LinkChange[] = [];
      const touched: string[] = [];
      for (const link of dueLinks) {
        const plan = planLink(link, found.get(link.idNat), summary.offline);
        if (plan.namesDiffer) summary.namesDiffer++;
        if (plan.kind === 'change') changes.push(plan.change);
        else if (plan.kind === 'touch') touched.push(link.accountId);
        else if (plan.kind === 'unsettled') summary.unsettled++;
      }
      const statusChanges = changes.filter((c) => STATUS_CHANGES.has(c.kind));
      const limit = Math.max(
        config.sync.maxChangeFloor,
        Math.floor(config.sync.maxChangeShare * links.length),
      );
      if (statusChanges.length > limit && !options.force) {
        summary.status = 'halted';
        summary.halted = {
          statusChanges: statusChanges.length,
          limit,
          sample: statusChanges
            .slice(0, 20)
            .map((c) => ({ accountId: c.link.accountId, idNat: c.link.idNat, change: c.kind })),
        };
        await alerts.raise({
          kind: 'rpps.sync.halted',
          message: `RPPS sync stopped: it would change the status of ${statusChanges.length} links (limit ${limit}). Check, then run: passerelle rpps sync --force`,
          detail: { runId, statusChanges: statusChanges.length, limit },
        });
        return await this.#finish(summary, startedAt, statsBefore, now);
      }

      // Apply.
      await identities.touch(touched, !summary.offline, now());
      summary.unchanged = touched.length;
      for (const [i, change] of changes.entries()) {
        try {
          await identities.apply(change, `sync:${runId}`, now());
          this.#count(summary, change);
          if (change.kind === 'inactive') {
            await alerts.raise({
              kind: 'rpps.link.inactive',
              accountId: change.link.accountId,
              message: `The professional ${change.link.idNat} is no longer active in the RPPS (${change.reason}): the account is no longer federated to Pro Santé Connect.`,
              detail: { idNat: change.link.idNat, reason: change.reason, runId },
            });
          }
        } catch (err) {
          summary.failed++;
          logger.error({ err, accountId: change.link.accountId }, 'rpps sync: change not applied');
        }
        if (i % 100 === 99) await progress('apply', i + 1, changes.length);
      }
      for (const claim of claims) {
        const f = found.get(claim.idNat);
        if (!f?.active || summary.offline) {
          summary.unsettled++;
          continue;
        }
        const account = await accounts.findById(claim.accountId);
        const outcome = await identities.propose({
          accountId: claim.accountId,
          idNat: claim.idNat,
          source: 'directory-attribute',
          verified: namesConsistent(
            { familyName: account?.familyName ?? null, givenName: account?.givenName ?? null },
            f.record,
          ),
          national: f.record,
          evidence: { dn: claim.dn },
          actor: `sync:${runId}`,
          now: now(),
        });
        if (outcome.kind === 'linked') summary.changed.linked++;
        else if (outcome.kind === 'conflict') summary.changed.conflict++;
      }

      await this.#matchNames(summary, runId, now);
      return await this.#finish(summary, startedAt, statsBefore, now);
    } catch (err) {
      summary.status = 'failed';
      summary.error = (err as Error).message;
      logger.error({ err }, 'rpps sync failed');
      const finished = await this.#finish(summary, startedAt, statsBefore, now);
      await audit
        .record({
          type: 'rpps.sync.failed',
          outcome: 'failure',
          reason: 'error',
          detail: { runId, error: summary.error, apiRequests: summary.apiRequests, api: summary.api },
        })
        .catch(() => undefined);
      return finished;
    }
  }

  /** Candidates from names, for accounts without any link: only a unique match is proposed, for review. */
  async #matchNames(summary: SyncSummary, runId: string, now: () => Date): Promise<void> {
    const { identities, index } = this.#deps;
    if (!(await index.current())) return;
    for (const account of await identities.accountsWithoutLink()) {
      if (!account.familyName || !account.givenName) continue;
      const matches = await index.findByNames(account.familyName, account.givenName);
      if (matches.length > 1) summary.ambiguousNames++;
      const [match] = matches;
      if (matches.length !== 1 || !match) continue;
      const outcome = await identities.propose({
        accountId: account.id,
        idNat: match.idNat,
        source: 'name-match',
        verified: false,
        national: {
          familyName: match.familyName,
          givenName: match.givenName,
          professionCode: match.professionCode,
          categoryCode: match.categoryCode,
        },
        evidence: {
          local: { familyName: account.familyName, givenName: account.givenName },
          openData: {
            familyName: match.familyName,
            givenName: match.givenName,
            profession: match.professionLabel,
          },
        },
        actor: `sync:${runId}`,
        now: now(),
      });
      if (outcome.kind === 'linked') summary.changed.candidates++;
    }
  }

  #count(summary: SyncSummary, change: LinkChange): void {
    const c = summary.changed;
    if (change.kind === 'refresh') {
      if (change.verify && change.link.status === 'candidate') c.verified++;
      else c.refreshed++;
    } else if (change.kind === 'inactive') c.inactive++;
    else if (change.kind === 'reactivate') c.reactivated++;
    else c.conflict++;
  }

  async #finish(
    summary: SyncSummary,
    startedAt: Date,
    statsBefore: AnnuaireStats,
    now: () => Date,
  ): Promise<SyncSummary> {
    const { db, audit, client, logger } = this.#deps;
    const finishedAt = now();
    const statsAfter = client?.stats ?? NO_ANNUAIRE_STATS;
    summary.apiRequests = statsAfter.requests - statsBefore.requests;
    summary.api = apiReport(statsBefore, statsAfter);
    summary.durationMs = finishedAt.getTime() - startedAt.getTime();
    const { retries, incomplete } = summary.api;
    if (retries > 0 || incomplete > 0)
      logger.warn(
        { runId: summary.runId, status: summary.status, api: summary.api },
        'rpps sync: the Annuaire Santé API throttled, failed or answered incompletely during the run',
      );
    await db
      .updateTable('rpps_sync_run')
      .set({
        status: summary.status,
        mode: summary.mode,
        delta_since: summary.deltaSince,
        finished_at: finishedAt,
        summary: JSON.stringify(summary),
        error: summary.error ?? null,
      })
      .where('id', '=', summary.runId)
      .execute();
    if (summary.status !== 'failed') {
      await audit.record({
        type: `rpps.sync.${summary.status}`,
        outcome: summary.status === 'completed' ? 'success' : 'failure',
        reason: summary.status === 'halted' ? 'circuit_breaker' : undefined,
        detail: { ...summary, halted: summary.halted ? { ...summary.halted, sample: undefined } : undefined },
      });
    }
    return summary;
  }
}
