import { type Kysely, type Selectable, sql } from 'kysely';
import type { AuditEventTable, Database } from '../db/types.ts';
import { type ChainedRecord, type ChainRow, chainHash, GENESIS_HASH } from './canonical.ts';

/**
 * Key of the transaction-scoped advisory lock that serialises appends to the one chain ('PASSAUDT').
 * Held from the read of the last link to the commit of the new row.
 */
export const AUDIT_CHAIN_LOCK = '5782977008616670292';

/** Fields of a record before it is placed in the chain (seq, at and the links are set under the lock). */
export type UnchainedFields = Omit<ChainedRecord, 'seq' | 'at' | 'prev_hash' | 'outcome'> & {
  outcome: 'success' | 'failure';
};

export interface ChainLink {
  seq: string;
  hash: string;
}

/**
 * The chain's current end: its last row, or the last checkpoint once every row was purged. The append
 * path's statements carry no parameters (constants are literals): on PGlite that is one exchange each.
 */
export async function lastLink(db: Kysely<Database>): Promise<ChainLink | undefined> {
  const row = await db
    .selectFrom('audit_event')
    .select(['seq', 'hash'])
    .orderBy('seq', 'desc')
    .limit(sql.lit(1))
    .executeTakeFirst();
  if (row?.hash) return { seq: String(row.seq), hash: row.hash };
  if (row) throw new Error(`audit_event ${row.seq} has no hash: the chain migration did not run`);
  const checkpoint = await db
    .selectFrom('audit_checkpoint')
    .select(['seq', 'hash'])
    .orderBy('seq', 'desc')
    .limit(1)
    .executeTakeFirst();
  return checkpoint && { seq: String(checkpoint.seq), hash: checkpoint.hash };
}

/**
 * Appends one record inside `trx` (a transaction): takes the chain lock, then numbers the record after
 * the last one (no gap: a rolled-back append leaves none) and links it. Its `at` has millisecond
 * precision so that the stored value is exactly the hashed one.
 */
export async function appendToChain(trx: Kysely<Database>, fields: UnchainedFields): Promise<ChainRow> {
  await sql`select pg_advisory_xact_lock(${sql.lit(AUDIT_CHAIN_LOCK)}::bigint)`.execute(trx);
  const last = await lastLink(trx);
  const record = {
    ...fields,
    seq: last ? (BigInt(last.seq) + 1n).toString() : '1',
    at: new Date(),
    prev_hash: last?.hash ?? GENESIS_HASH,
  };
  const row = { ...record, hash: chainHash(record) };
  await trx
    .insertInto('audit_event')
    .values({
      ...row,
      amr: row.amr === null ? null : JSON.stringify(row.amr),
      detail: row.detail === null ? null : JSON.stringify(row.detail),
      outcome: fields.outcome,
    })
    .execute();
  return row;
}

/**
 * Allows UPDATE, DELETE and TRUNCATE of audit rows and checkpoints until `trx` ends (the retention purge,
 * run by the owner role: the application role has no such grant).
 */
export async function allowAuditPurge(trx: Kysely<Database>): Promise<void> {
  if (!trx.isTransaction) throw new Error('allowAuditPurge needs a transaction: the setting is local to it');
  await sql`select set_config('passerelle.audit_purge', 'on', true)`.execute(trx);
}

/** bigint columns come as strings from pg and as numbers from PGlite: seq is always a decimal string. */
export function toChainRow(row: Selectable<AuditEventTable>): ChainRow {
  return { ...row, seq: String(row.seq), prev_hash: row.prev_hash ?? '', hash: row.hash ?? '' };
}

/**
 * Rows with from ≤ seq ≤ to in seq order, read by pages (keyset pagination on seq): constant memory
 * whatever the size of the trail.
 */
export async function* chainRows(
  db: Kysely<Database>,
  range: { from?: string; to?: string } = {},
  pageSize = 5000,
): AsyncGenerator<ChainRow> {
  let after: string | undefined;
  for (;;) {
    let query = db.selectFrom('audit_event').selectAll().orderBy('seq').limit(pageSize);
    if (after !== undefined) query = query.where('seq', '>', after);
    else if (range.from !== undefined) query = query.where('seq', '>=', range.from);
    if (range.to !== undefined) query = query.where('seq', '<=', range.to);
    const page = await query.execute();
    for (const row of page) yield toChainRow(row);
    if (page.length < pageSize) return;
    after = String(page[page.length - 1]?.seq);
  }
}
