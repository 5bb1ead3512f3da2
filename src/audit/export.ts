import type { Writable } from 'node:stream';
import { type Kysely, type Selectable, sql } from 'kysely';
import type { AuditEventTable, Database } from '../db/types.ts';
import { CHAINED_COLUMNS } from './canonical.ts';

/** Every column of audit_event, in the fixed order of the CSV export: the chained ones, then the hash. */
export const AUDIT_COLUMNS = [...CHAINED_COLUMNS, 'hash'] as const;

export const CHECKPOINT_COLUMNS = ['seq', 'hash', 'at', 'key_id', 'signature'] as const;

/** One audit record as exported: `at` in UTC with microseconds (the stored precision), `seq` as text. */
export type AuditRow = Omit<Selectable<AuditEventTable>, 'seq' | 'at'> & { seq: string; at: string };

export interface CheckpointRow {
  seq: string;
  hash: string;
  at: string;
  key_id: string;
  signature: string;
}

/** Chain verification of a range (src/audit/chain.ts `verifyChain`), given by the caller. */
export type ChainVerifier = (
  rows: AsyncIterable<AuditRow>,
  range: SeqRange,
) => Promise<{ ok: true } | { ok: false; seq: string; problem: string }>;

/** Inclusive range of sequence numbers. */
export interface SeqRange {
  fromSeq: string;
  toSeq: string;
}

const utcMicros = (column: string) =>
  sql<string>`to_char(${sql.ref(column)} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/** The records of a range in sequence order, fetched by keyset pages: memory stays constant. */
export async function* auditRows(
  db: Kysely<Database>,
  range: SeqRange,
  pageSize = 1000,
): AsyncGenerator<AuditRow> {
  let after = (BigInt(range.fromSeq) - 1n).toString();
  for (;;) {
    const page = await db
      .selectFrom('audit_event')
      .select([
        sql<string>`seq::text`.as('seq'),
        utcMicros('at').as('at'),
        ...AUDIT_COLUMNS.filter((c) => c !== 'seq' && c !== 'at'),
      ])
      .where('seq', '>', after)
      .where('seq', '<=', range.toSeq)
      // The table's column, not the text alias of the same name.
      .orderBy('audit_event.seq')
      .limit(pageSize)
      .execute();
    for (const row of page) yield row as AuditRow;
    if (page.length < pageSize) return;
    after = (page.at(-1) as AuditRow).seq;
  }
}

export async function checkpointRows(db: Kysely<Database>, range: SeqRange): Promise<CheckpointRow[]> {
  const rows = await db
    .selectFrom('audit_checkpoint')
    .select([sql<string>`seq::text`.as('seq'), 'hash', utcMicros('at').as('at'), 'key_id', 'signature'])
    .where('seq', '>=', range.fromSeq)
    .where('seq', '<=', range.toSeq)
    .orderBy('audit_checkpoint.seq')
    .execute();
  return rows;
}

/** A bound given on the command line: a sequence number, or a date (ISO 8601). */
export type RangeBound = { seq: string } | { at: Date };

export function parseRangeBound(text: string): RangeBound | undefined {
  if (/^\d+$/.test(text)) return { seq: text };
  const at = new Date(text);
  return Number.isNaN(at.getTime()) ? undefined : { at };
}

/**
 * The records a range covers: `from` inclusive, `to` inclusive for a sequence number and exclusive for a
 * date (a month is `--from 2026-01-01 --to 2026-02-01`). Undefined when no record lies in it.
 */
export async function resolveRange(
  db: Kysely<Database>,
  from: RangeBound | undefined,
  to: RangeBound | undefined,
): Promise<SeqRange | undefined> {
  let query = db
    .selectFrom('audit_event')
    .select([sql<string | null>`min(seq)::text`.as('first'), sql<string | null>`max(seq)::text`.as('last')]);
  if (from) query = 'seq' in from ? query.where('seq', '>=', from.seq) : query.where('at', '>=', from.at);
  if (to) query = 'seq' in to ? query.where('seq', '<=', to.seq) : query.where('at', '<', to.at);
  const { first, last } = await query.executeTakeFirstOrThrow();
  return first && last ? { fromSeq: first, toSeq: last } : undefined;
}

export type ExportFormat = 'jsonl' | 'csv';

export interface ExportOptions {
  range: SeqRange;
  format: ExportFormat;
  /** The records (jsonl: with the header and the verification material). */
  out: Writable;
  /** CSV only: where the checkpoints of the range go (`<out>.checkpoints.csv`). */
  checkpointsOut?: Writable;
  /** Identifies the installation in the header (its issuer). */
  instance: string;
  /** Who exported, recorded in audit_export. */
  actor: string;
  /** When given, the range is verified first; the export is recorded as verified only if it holds. */
  verifyChain?: ChainVerifier;
  /** The audit trail's public key (as the chain module publishes it), so an auditor verifies offline. */
  publicKey?: unknown;
  /** Every published key with its endorsement by the previous one: checkpoints after a key rotation verify. */
  auditKeys?: unknown[];
  pageSize?: number;
  now?: () => Date;
}

export type ExportVerification = 'not_run' | 'verified' | { seq: string; problem: string };

export interface ExportSummary {
  exportId: string;
  range: SeqRange;
  records: number;
  checkpoints: number;
  verification: ExportVerification;
}

export const EXPORT_FORMAT_VERSION = 1;

/** Streams a range of the trail with its verification material and records it in audit_export. */
export async function exportAudit(db: Kysely<Database>, options: ExportOptions): Promise<ExportSummary> {
  const { range, format, out } = options;
  let verification: ExportVerification = 'not_run';
  if (options.verifyChain) {
    const result = await options.verifyChain(auditRows(db, range, options.pageSize), range);
    verification = result.ok ? 'verified' : { seq: result.seq, problem: result.problem };
  }
  const exportedAt = (options.now ?? (() => new Date()))();
  const checkpoints = await checkpointRows(db, range);
  let records = 0;
  if (format === 'jsonl') {
    await write(
      out,
      `${JSON.stringify({
        passerelle_audit_export: EXPORT_FORMAT_VERSION,
        from_seq: range.fromSeq,
        to_seq: range.toSeq,
        instance: options.instance,
        exported_at: exportedAt.toISOString(),
        columns: AUDIT_COLUMNS,
      })}\n`,
    );
    for await (const row of auditRows(db, range, options.pageSize)) {
      await write(out, `${JSON.stringify(Object.fromEntries(AUDIT_COLUMNS.map((c) => [c, row[c]])))}\n`);
      records++;
    }
    for (const checkpoint of checkpoints) await write(out, `${JSON.stringify({ checkpoint })}\n`);
    if (options.publicKey !== undefined) {
      await write(out, `${JSON.stringify({ public_key: options.publicKey })}\n`);
    }
    if (options.auditKeys !== undefined) {
      await write(out, `${JSON.stringify({ audit_keys: options.auditKeys })}\n`);
    }
  } else {
    if (!options.checkpointsOut) throw new Error('a CSV export needs a destination for its checkpoints');
    await write(out, csvLine(AUDIT_COLUMNS));
    for await (const row of auditRows(db, range, options.pageSize)) {
      await write(out, csvLine(AUDIT_COLUMNS.map((c) => csvValue(row[c]))));
      records++;
    }
    const checkpointsOut = options.checkpointsOut;
    await write(checkpointsOut, csvLine(CHECKPOINT_COLUMNS));
    for (const checkpoint of checkpoints) {
      await write(checkpointsOut, csvLine(CHECKPOINT_COLUMNS.map((c) => checkpoint[c])));
    }
  }
  const recorded = await db
    .insertInto('audit_export')
    .values({
      from_seq: range.fromSeq,
      to_seq: range.toSeq,
      format,
      verified: verification === 'verified',
      exported_at: exportedAt,
      actor: options.actor,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return { exportId: recorded.id, range, records, checkpoints: checkpoints.length, verification };
}

/** Writes and waits while the destination's buffer is full (a slow pipe slows the export, not memory). */
function write(out: Writable, text: string): Promise<void> {
  if (out.write(text)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    out.once('error', onError);
    out.once('drain', () => {
      out.off('error', onError);
      resolve();
    });
  });
}

/** null is an empty field; JSON columns are their JSON text; an empty string is quoted (`""`). */
function csvValue(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** One RFC 4180 record, CRLF-terminated: fields with a comma, quote, CR or LF (or empty) are quoted. */
export function csvLine(fields: readonly (string | null)[]): string {
  return `${fields
    .map((f) => {
      if (f === null) return '';
      return f === '' || /[",\r\n]/.test(f) ? `"${f.replaceAll('"', '""')}"` : f;
    })
    .join(',')}\r\n`;
}
