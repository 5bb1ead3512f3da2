import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, type LogEvent, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Config } from '../config/schema.ts';
import { lockDataDir } from './data-dir-lock.ts';
import { DatabaseStartError, EX_CONFIG, EX_TEMPFAIL, EX_UNAVAILABLE } from './errors.ts';
import { PGliteDialect } from './pglite-dialect.ts';
import { RelayDialect, relayAnswers } from './relay-dialect.ts';
import { relaySocketPath } from './relay-frames.ts';
import { startRelay } from './relay-server.ts';
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
  /**
   * The server: opens an embedded (PGlite) data directory as its sole owner, never through another
   * process, and serves the `passerelle` commands run beside it through a relay socket in the directory.
   */
  owner?: boolean;
  /** Told once when PostgreSQL does not answer at first and the start waits for it. */
  onWait?: (message: string) => void;
}

/** The database settings; the wait for PostgreSQL defaults to the configuration's default (30 s). */
export type DatabaseSettings = Omit<Config['database'], 'connectTimeoutSeconds'> & {
  connectTimeoutSeconds?: number;
};

export async function connectDatabase(
  config: { database: DatabaseSettings },
  options: ConnectOptions = {},
): Promise<DatabaseHandle> {
  const { url, dataDir, poolSize, connectTimeoutSeconds = 30 } = config.database;
  const log = options.onQuery ? { log: options.onQuery } : {};
  if (url) {
    await reachPostgres(url, connectTimeoutSeconds, options.onWait);
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
  return options.owner ? openOwned(dataDir, log) : openShared(dataDir, log);
}

/** Where a PostgreSQL URL points: host and port (a `host` parameter wins, as in libpq). */
function serverOf(url: string): string {
  const parsed = new URL(url);
  const host = parsed.searchParams.get('host') ?? (decodeURIComponent(parsed.hostname) || 'localhost');
  const port = parsed.searchParams.get('port') ?? (parsed.port || '5432');
  return host.startsWith('/') ? `${host} (Unix socket, port ${port})` : `${host}:${port}`;
}

/** Errors that waiting does not cure: wrong credentials (SQLSTATE class 28), unknown database (3D000). */
function refusedForGood(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && (code.startsWith('28') || code === '3D000');
}

/**
 * Waits (up to `timeoutSeconds`) for the PostgreSQL server to accept a connection, so that an outage at
 * start is reported as such, naming the server, instead of failing in the first statement.
 */
async function reachPostgres(
  url: string,
  timeoutSeconds: number,
  onWait: ((message: string) => void) | undefined,
): Promise<void> {
  const server = serverOf(url);
  const named = `database.url / DATABASE_URL ${redactUrl(url)}`;
  const deadline = Date.now() + timeoutSeconds * 1000;
  let told = false;
  for (;;) {
    const remaining = deadline - Date.now();
    const client = new pg.Client({
      connectionString: url,
      connectionTimeoutMillis: Math.max(remaining, 1),
      application_name: 'passerelle',
    });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.end();
      return;
    } catch (err) {
      await client.end().catch(() => {});
      const cause = (err as Error).message;
      if (refusedForGood(err)) {
        throw new DatabaseStartError(
          `the PostgreSQL server at ${server} refused the connection (${named}): ${cause}`,
          EX_CONFIG,
          {
            cause: err,
          },
        );
      }
      if (Date.now() >= deadline) {
        throw new DatabaseStartError(
          `cannot reach the PostgreSQL server at ${server} (${named}) within ${timeoutSeconds} s: ${cause}. ` +
            'Check that it runs and that this host may connect to it; database.connectTimeoutSeconds sets the wait.',
          EX_UNAVAILABLE,
          { cause: err },
        );
      }
      if (!told) {
        told = true;
        onWait?.(`PostgreSQL at ${server} does not answer (${cause}): waiting up to ${timeoutSeconds} s`);
      }
      await new Promise((resolve) =>
        setTimeout(resolve, Math.min(1_000, Math.max(deadline - Date.now(), 0))),
      );
    }
  }
}

type LogOption = { log?: (event: LogEvent) => void };

/** How long a command waits for the directory's owner to finish or to offer its relay. */
const SHARED_WAIT_MS = 5_000;

/**
 * The server: PGlite has no guard of its own (two processes on one directory lose writes), so the
 * server owns the directory alone and serves `passerelle` commands through its relay.
 */
async function openOwned(dataDir: string, log: LogOption): Promise<DatabaseHandle> {
  const lock = await lockDataDir(dataDir);
  if (!lock) throw await dataDirInUse(dataDir);
  let db: Kysely<Database> | undefined;
  try {
    db = new Kysely<Database>({ dialect: new PGliteDialect(new PGlite(dataDir)), ...log });
    const socketPath = relaySocketPath(dataDir);
    const relay = socketPath ? await startRelay(db as Kysely<unknown>, socketPath) : undefined;
    const owned = db;
    return {
      db: owned,
      kind: 'pglite',
      location: `pglite:${dataDir}`,
      async close() {
        try {
          await relay?.close();
          await owned.destroy();
        } finally {
          lock.release();
        }
      },
    };
  } catch (err) {
    await db?.destroy().catch(() => {});
    lock.release();
    throw err;
  }
}

/**
 * A command: the directory's own PGlite when no process holds it, else the running server's through its
 * relay (statements serialised with the server's, transactions whole).
 */
async function openShared(dataDir: string, log: LogOption): Promise<DatabaseHandle> {
  const socketPath = relaySocketPath(dataDir);
  const deadline = Date.now() + SHARED_WAIT_MS;
  for (;;) {
    const lock = await lockDataDir(dataDir);
    if (lock) {
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
    const relay = socketPath ? await RelayDialect.connect(socketPath).catch(() => undefined) : undefined;
    if (relay) {
      const db = new Kysely<Database>({ dialect: relay, ...log });
      return {
        db,
        kind: 'pglite',
        location: `pglite:${dataDir} (through the running server)`,
        async close() {
          await db.destroy();
          await relay.close();
        },
      };
    }
    // Held by another command (or a server still starting): wait a little for it.
    if (Date.now() >= deadline) throw await dataDirInUse(dataDir);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Whether a server answers on the directory's relay: it says who holds the directory. */
async function serverRunning(dataDir: string): Promise<boolean> {
  const socketPath = relaySocketPath(dataDir);
  return socketPath ? relayAnswers(socketPath) : false;
}

async function dataDirInUse(dataDir: string): Promise<DatabaseStartError> {
  const where = `the embedded database ${resolve(dataDir)}`;
  return (await serverRunning(dataDir))
    ? new DatabaseStartError(
        `${where} is in use by a running Passerelle server: only one server may open it. Stop that server first, ` +
          'or use PostgreSQL (DATABASE_URL) to run several instances.',
        EX_TEMPFAIL,
      )
    : new DatabaseStartError(
        `${where} is in use by another passerelle process: only one may open it at a time. ` +
          'Try again when it has finished.',
        EX_TEMPFAIL,
      );
}
