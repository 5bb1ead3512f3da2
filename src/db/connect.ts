import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, type LogEvent, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Config } from '../config/schema.ts';
import { PGliteDialect } from './pglite-dialect.ts';
import type { Database } from './types.ts';

export type DatabaseKind = 'pglite' | 'postgres';

export interface DatabaseHandle {
  db: Kysely<Database>;
  kind: DatabaseKind;
  /** Human-readable location without credentials. */
  location: string;
  close(): Promise<void>;
}

function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'postgres://(unparseable url)';
  }
}

export interface ConnectOptions {
  /** Called after every statement (instrumentation for benchmarks and diagnostics); off by default. */
  onQuery?: (event: LogEvent) => void;
}

export async function connectDatabase(
  config: Pick<Config, 'database'>,
  options: ConnectOptions = {},
): Promise<DatabaseHandle> {
  const { url, dataDir, poolSize } = config.database;
  const log = options.onQuery ? { log: options.onQuery } : {};
  if (url) {
    const pool = new pg.Pool({ connectionString: url, max: poolSize, application_name: 'passerelle' });
    // An idle client losing its server must not crash the process; the next query reports the outage.
    pool.on('error', () => {});
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }), ...log });
    return { db, kind: 'postgres', location: redactUrl(url), close: () => db.destroy() };
  }
  const inMemory = dataDir.startsWith('memory://');
  if (!inMemory) mkdirSync(dataDir, { recursive: true });
  const pglite = new PGlite(dataDir);
  const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite), ...log });
  return {
    db,
    kind: 'pglite',
    location: inMemory ? dataDir : `pglite:${dataDir}`,
    close: () => db.destroy(),
  };
}
