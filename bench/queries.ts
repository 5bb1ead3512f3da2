/**
 * Counts the statements that reach the database, by verb and table (and by oidc-provider model for
 * oidc_payload), from the database layer's statement hook. Used inside the server process.
 */
import type { LogEvent } from 'kysely';

export type Verb = 'select' | 'insert' | 'update' | 'delete' | 'other';

export interface Statement {
  verb: Verb;
  table: string;
  /** The periodic purge of expired rows (background work, not caused by a request). */
  purge: boolean;
}

const TABLE_AFTER: Record<Verb, RegExp | undefined> = {
  // Kysely quotes identifiers: the first quoted name after FROM is the table (not `extract(epoch from x)`).
  select: /\bfrom\s+"(\w+)"/,
  insert: /^insert\s+into\s+"?(\w+)"?/,
  update: /^update\s+"?(\w+)"?/,
  delete: /^delete\s+from\s+"?(\w+)"?/,
  other: undefined,
};

export function classify(sql: string): Statement {
  let text = sql.trim().toLowerCase();
  let purge = false;
  if (text.startsWith('with')) {
    // Common table expression: the statement proper follows the last closing parenthesis of the CTEs.
    purge = /^with\s+doomed\s+as/.test(text);
    const main = /\)\s*(insert|update|delete|select)\b[\s\S]*$/.exec(text);
    text = main ? main[0].replace(/^\)\s*/, '') : text;
  }
  const first = /^(\w+)/.exec(text)?.[1] ?? '';
  const verb: Verb = ['select', 'insert', 'update', 'delete'].includes(first) ? (first as Verb) : 'other';
  const table = TABLE_AFTER[verb]?.exec(text)?.[1] ?? '-';
  return { verb, table, purge };
}

const MODEL = /^[A-Z][A-Za-z]+$/;

/** "insert oidc_payload:AccessToken", "select account", "delete rate_limit"… */
export function label(statement: Statement, parameters: readonly unknown[]): string {
  let target = statement.table;
  if (target === 'oidc_payload') {
    const first = parameters[0];
    target += typeof first === 'string' && MODEL.test(first) ? `:${first}` : ':(grant)';
  }
  return `${statement.purge ? 'purge ' : ''}${statement.verb} ${target}`;
}

export function isWrite(label: string): boolean {
  return /^(insert|update|delete) /.test(label);
}

export interface QuerySnapshot {
  statements: number;
  /** INSERT/UPDATE/DELETE statements, excluding the background purge. */
  writes: number;
  /** Time spent in the database driver, milliseconds (includes waiting for PGlite's single connection). */
  dbMs: number;
  byLabel: Record<string, number>;
}

export class QueryCounter {
  readonly #classified = new Map<string, Statement>();
  readonly #byLabel = new Map<string, number>();
  #statements = 0;
  #writes = 0;
  #dbMs = 0;
  #trace: string[] | undefined;

  /** The hook given to the database layer. */
  readonly record = (event: LogEvent): void => {
    const { sql, parameters } = event.query;
    let statement = this.#classified.get(sql);
    if (!statement) {
      statement = classify(sql);
      this.#classified.set(sql, statement);
    }
    const name = label(statement, parameters);
    this.#byLabel.set(name, (this.#byLabel.get(name) ?? 0) + 1);
    this.#statements++;
    if (isWrite(name)) this.#writes++;
    this.#dbMs += event.queryDurationMillis;
    this.#trace?.push(event.level === 'error' ? `${name} (failed)` : name);
  };

  snapshot(): QuerySnapshot {
    return {
      statements: this.#statements,
      writes: this.#writes,
      dbMs: this.#dbMs,
      byLabel: Object.fromEntries(this.#byLabel),
    };
  }

  /** Starts recording the ordered list of statements. */
  startTrace(): void {
    this.#trace = [];
  }

  stopTrace(): string[] {
    const trace = this.#trace ?? [];
    this.#trace = undefined;
    return trace;
  }
}

export function diffSnapshots(before: QuerySnapshot, after: QuerySnapshot): QuerySnapshot {
  const byLabel: Record<string, number> = {};
  for (const [name, n] of Object.entries(after.byLabel)) {
    const d = n - (before.byLabel[name] ?? 0);
    if (d) byLabel[name] = d;
  }
  return {
    statements: after.statements - before.statements,
    writes: after.writes - before.writes,
    dbMs: after.dbMs - before.dbMs,
    byLabel,
  };
}
