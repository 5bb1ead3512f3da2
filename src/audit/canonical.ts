import { hash } from 'node:crypto';
import type { Selectable } from 'kysely';
import type { AuditEventTable } from '../db/types.ts';

/** prev_hash of the first record of the trail. */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * Every stored field of an audit_event row, `hash` aside (the fields its hash covers). amr and detail are
 * the JSON values as read back (or from an export file); outcome is any text there.
 */
export type ChainedRecord = Omit<
  Selectable<AuditEventTable>,
  'hash' | 'prev_hash' | 'outcome' | 'amr' | 'detail'
> & {
  outcome: string;
  amr: unknown;
  detail: unknown;
  prev_hash: string;
};

/** A stored row: its fields and its hash. */
export type ChainRow = ChainedRecord & { hash: string };

/** The columns a canonical form covers, in the order an auditor reads them (the output sorts keys). */
export const CHAINED_COLUMNS = [
  'seq',
  'at',
  'type',
  'outcome',
  'account_id',
  'client_id',
  'session_id',
  'interaction_id',
  'ip',
  'user_agent',
  'method',
  'amr',
  'acr',
  'reason',
  'request_id',
  'instance_id',
  'detail',
  'national_id',
  'tid',
  'establishment',
  'prev_hash',
] as const satisfies readonly (keyof ChainedRecord)[];

/**
 * JSON with object keys sorted (by UTF-16 code units, as Array.prototype.sort), no whitespace, and
 * members whose value is undefined left out (as JSON.stringify does); arrays keep their order.
 */
export function canonicalJson(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v ?? null)).join(',')}]`;
  const object = value as Record<string, unknown>;
  let members = '';
  // sort() without a comparator orders strings by UTF-16 code units.
  for (const key of Object.keys(object).sort()) {
    const member = object[key];
    if (member !== undefined)
      members += `${members ? ',' : ''}${JSON.stringify(key)}:${canonicalJson(member)}`;
  }
  return `{${members}}`;
}

/** The columns in canonical (sorted) order, and each one's key as written: `"name":`, comma-led after the first. */
const SORTED_COLUMNS = [...CHAINED_COLUMNS].sort();
const SORTED_KEYS = SORTED_COLUMNS.map((column, i) => `${i ? ',' : ''}${JSON.stringify(column)}:`);

/**
 * The canonical form of a record (docs/audit.md, "Chain"): one JSON object of every chained column,
 * keys sorted, `seq` as a decimal string, `at` as ISO-8601 UTC with milliseconds, nulls kept, amr and
 * detail as canonical JSON values.
 */
export function canonical(record: ChainedRecord): string {
  let text = '{';
  for (let i = 0; i < SORTED_COLUMNS.length; i++) {
    const column = SORTED_COLUMNS[i] as (typeof CHAINED_COLUMNS)[number];
    const value =
      column === 'seq' ? String(record.seq) : column === 'at' ? record.at.toISOString() : record[column];
    text += SORTED_KEYS[i] + (value === null ? 'null' : canonicalJson(value));
  }
  return `${text}}`;
}

/** hash = hex(SHA-256(prev_hash + '\n' + canonical)). */
export function chainHash(record: ChainedRecord): string {
  return hash('sha256', `${record.prev_hash}\n${canonical(record)}`, 'hex');
}

/** What jsonb gives back for a value: what the hash must cover (undefined members dropped). */
export function asStoredJson<T>(value: T | undefined): T | null {
  return value === undefined ? null : (JSON.parse(JSON.stringify(value)) as T);
}
