import { type Kysely, sql } from 'kysely';
import type { Database } from '../db/types.ts';
import { auditRows, type ChainVerifier } from './export.ts';
import type { AuditTrail } from './trail.ts';

export interface PurgePlan {
  /** Records older than this may go. */
  cutoff: Date;
  /** Purge the records up to this checkpoint (inclusive); null when nothing may be purged. */
  throughSeq: string | null;
  firstSeq: string | null;
  records: number;
  /** Why the purge stops there: the first record that must stay, and the rule that keeps it. */
  keptFrom: { seq: string; because: 'retention' | 'not_exported_verified' | 'no_checkpoint' } | null;
}

/**
 * What retention allows to delete: a prefix of the trail whose records are all older than the cutoff and
 * inside ranges exported with verified = true, ending at a checkpoint (the rest verifies from its hash).
 */
export async function planPurge(
  db: Kysely<Database>,
  options: { retentionDays: number; before?: Date; now?: Date },
): Promise<PurgePlan> {
  const now = options.now ?? new Date();
  const retentionCutoff = new Date(now.getTime() - options.retentionDays * 86_400_000);
  const cutoff = options.before && options.before < retentionCutoff ? options.before : retentionCutoff;
  const seqOf = (query: Promise<{ seq: string | null } | undefined>) => query.then((r) => r?.seq ?? null);

  const firstSeq = await seqOf(
    db.selectFrom('audit_event').select(sql<string | null>`min(seq)::text`.as('seq')).executeTakeFirst(),
  );
  const plan: PurgePlan = { cutoff, throughSeq: null, firstSeq, records: 0, keptFrom: null };
  if (firstSeq === null) return plan;
  const firstRecent = await seqOf(
    db
      .selectFrom('audit_event')
      .select(sql<string | null>`min(seq)::text`.as('seq'))
      .where('at', '>=', cutoff)
      .executeTakeFirst(),
  );
  const firstUnexported = await seqOf(
    db
      .selectFrom('audit_event as e')
      .select(sql<string | null>`min(e.seq)::text`.as('seq'))
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom('audit_export as x')
              .select(sql`1`.as('one'))
              .where('x.verified', '=', true)
              .whereRef('x.from_seq', '<=', 'e.seq')
              .whereRef('x.to_seq', '>=', 'e.seq'),
          ),
        ),
      )
      .executeTakeFirst(),
  );
  const limits = [
    firstRecent === null ? null : { seq: firstRecent, because: 'retention' as const },
    firstUnexported === null ? null : { seq: firstUnexported, because: 'not_exported_verified' as const },
  ].filter((l) => l !== null);
  const limit = limits.sort((a, b) => (BigInt(a.seq) < BigInt(b.seq) ? -1 : 1))[0];
  let checkpoints = db
    .selectFrom('audit_checkpoint')
    .select(sql<string | null>`max(seq)::text`.as('seq'))
    .where('seq', '>=', firstSeq);
  if (limit) checkpoints = checkpoints.where('seq', '<', limit.seq);
  const throughSeq = await seqOf(checkpoints.executeTakeFirst());
  if (throughSeq === null) {
    plan.keptFrom = { seq: firstSeq, because: limit?.seq === firstSeq ? limit.because : 'no_checkpoint' };
    return plan;
  }
  const { n } = await db
    .selectFrom('audit_event')
    .select(sql<string>`count(*)::text`.as('n'))
    .where('seq', '<=', throughSeq)
    .executeTakeFirstOrThrow();
  return { ...plan, throughSeq, records: Number(n), keptFrom: limit ?? null };
}

export type PurgeOutcome =
  | { kind: 'purged'; records: number; throughSeq: string }
  | { kind: 'nothing' }
  | { kind: 'refused'; seq: string; problem: string };

/**
 * Deletes the planned prefix in one transaction (the append-only trigger allows it only with
 * passerelle.audit_purge on), keeps every checkpoint, and records the purge in the trail. When a chain
 * verifier is given, the prefix is verified again first.
 */
export async function purgeAudit(
  db: Kysely<Database>,
  plan: PurgePlan,
  deps: { audit: AuditTrail; actor: string; verifyChain?: ChainVerifier },
): Promise<PurgeOutcome> {
  if (plan.throughSeq === null || plan.firstSeq === null) return { kind: 'nothing' };
  const throughSeq = plan.throughSeq;
  if (deps.verifyChain) {
    const range = { fromSeq: plan.firstSeq, toSeq: throughSeq };
    const result = await deps.verifyChain(auditRows(db, range), range);
    if (!result.ok) return { kind: 'refused', seq: result.seq, problem: result.problem };
  }
  return db.transaction().execute(async (trx) => {
    await sql`set local passerelle.audit_purge = 'on'`.execute(trx);
    const deleted = await trx.deleteFrom('audit_event').where('seq', '<=', throughSeq).executeTakeFirst();
    const records = Number(deleted.numDeletedRows);
    await deps.audit.record(
      {
        type: 'audit.purged',
        outcome: 'success',
        detail: { throughSeq, records, cutoff: plan.cutoff.toISOString(), actor: deps.actor },
      },
      trx,
    );
    return { kind: 'purged', records, throughSeq };
  });
}
