import { randomBytes } from 'node:crypto';
import pg from 'pg';

export type DatabaseKind = 'pglite' | 'postgres';

/**
 * The database matrix: PGlite always; PostgreSQL when TEST_DATABASE_URL is set. With CI=true
 * PostgreSQL is mandatory: a missing server fails the suite instead of skipping it.
 */
export function databasesUnderTest(): DatabaseKind[] {
  const kinds: DatabaseKind[] = ['pglite'];
  if (process.env.TEST_DATABASE_URL || process.env.CI === 'true') kinds.push('postgres');
  return kinds;
}

export function adminUrl(): string {
  const url = process.env.TEST_DATABASE_URL;
  if (!url) throw new Error('CI=true but TEST_DATABASE_URL is not set: PostgreSQL is required (see .ci/run)');
  return url;
}

/**
 * Runs one statement on a connection of its own and returns its rows: on TEST_DATABASE_URL (the server's
 * administration database) unless `url` names another database.
 */
export async function queryOnce<Row = Record<string, unknown>>(
  text: string,
  url: string = adminUrl(),
): Promise<Row[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text)).rows as Row[];
  } finally {
    await client.end();
  }
}

export interface TestDatabase {
  /** Value for database.url (undefined for PGlite). */
  url: string | undefined;
  dataDir: string;
  drop(): Promise<void>;
}

/**
 * A fresh, empty database for one test file (or one benchmark run: `admin` and `prefix` default to
 * TEST_DATABASE_URL and passerelle_test).
 */
export async function createTestDatabase(
  kind: DatabaseKind,
  options: { admin?: string; prefix?: string } = {},
): Promise<TestDatabase> {
  if (kind === 'pglite') return { url: undefined, dataDir: 'memory://', drop: async () => {} };
  const admin = options.admin ?? adminUrl();
  const name = `${options.prefix ?? 'passerelle_test'}_${randomBytes(6).toString('hex')}`;
  await queryOnce(`create database ${name}`, admin);
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    dataDir: 'memory://',
    async drop() {
      // WITH (FORCE) must signal every session of the database; a role that is not a superuser may not
      // signal an autovacuum worker that happens to be there. That worker ends within moments: retry.
      for (let attempt = 1; ; attempt++) {
        try {
          await queryOnce(`drop database if exists ${name} with (force)`, admin);
          return;
        } catch (err) {
          const notAllowed = /must be (a member of the role|a superuser) .*terminat/.test(
            (err as Error).message,
          );
          if (!notAllowed || attempt >= 20) throw err;
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
      }
    },
  };
}
