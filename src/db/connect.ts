import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, type LogEvent, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Config } from '../config/schema.ts';
import { lockDataDir } from './data-dir-lock.ts';
import { DatabaseStartError, EX_TEMPFAIL } from './errors.ts';
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
  if (dataDir.startsWith('memory://')) {
    const db = new Kysely<Database>({ dialect: new PGliteDialect(new PGlite(dataDir)), ...log });
    return { db, kind: 'pglite', location: dataDir, close: () => db.destroy() };
  }
  mkdirSync(dataDir, { recursive: true });
  // PGlite has no guard of its own: two processes on one directory lose writes. One owner at a time.
  const lock = await lockDataDir(dataDir);
  if (!lock) throw dataDirInUse(dataDir);
  try {
    const db = new Kysely<Database>({ dialect: new PGliteDialect(new PGlite(dataDir)), ...log });
    return {
      db,
      kind: 'pglite',
      location: `pglite:${dataDir}`,
      async close() {
        try {
          await db.destroy();
        } finally {
          lock.release();
        }
      },
    };
  } catch (err) {
    lock.release();
    throw err;
  }
}

function dataDirInUse(dataDir: string): DatabaseStartError {
  return new DatabaseStartError(
    `the embedded database ${resolve(dataDir)} is in use by a running Passerelle server (or another passerelle command): ` +
      'only one process may open it at a time. Stop the server first, or use PostgreSQL (DATABASE_URL) to run several processes.',
    EX_TEMPFAIL,
  );
}
