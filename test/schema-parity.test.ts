import { type Kysely, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrations } from '../migrations/index.ts';
import { connectDatabase, type DatabaseHandle } from '../src/db/connect.ts';
import { migrateDown, migrateReset, migrateToLatest, migrationStatus } from '../src/db/migrate.ts';
import type { Database } from '../src/db/types.ts';
import {
  createTestDatabase,
  type DatabaseKind,
  databasesUnderTest,
  type TestDatabase,
} from './helpers/databases.ts';

/** Kysely's own bookkeeping tables: created by the migrator, never dropped by a migration. */
const MIGRATOR_TABLES = ['kysely_migration', 'kysely_migration_lock'];

interface Schema {
  tables: string[];
  columns: Record<string, unknown>[];
  indexes: Record<string, unknown>[];
  constraints: Record<string, unknown>[];
  /** Partitioned tables and their partition keys. */
  partitioned: Record<string, unknown>[];
}

/** The public schema as the catalogs describe it, in a stable order. */
async function readSchema(db: Kysely<Database>): Promise<Schema> {
  const tables = await sql<{ table_name: string }>`
    select table_name from information_schema.tables
    where table_schema = 'public' and table_type = 'BASE TABLE'
    order by table_name`.execute(db);
  const columns = await sql<Record<string, unknown>>`
    select table_name, column_name, data_type, udt_name, is_nullable, column_default,
           character_maximum_length, numeric_precision
    from information_schema.columns
    where table_schema = 'public'
    order by table_name, column_name`.execute(db);
  const indexes = await sql<Record<string, unknown>>`
    select tablename, indexname, indexdef from pg_indexes
    where schemaname = 'public'
    order by tablename, indexname`.execute(db);
  // PostgreSQL 18 (PGlite) also records NOT NULL as pg_constraint rows (contype 'n'), older servers do
  // not: nullability is compared through information_schema.columns instead.
  const constraints = await sql<Record<string, unknown>>`
    select cls.relname as table_name, con.conname, con.contype::text as contype,
           pg_get_constraintdef(con.oid) as definition
    from pg_constraint con
    join pg_class cls on cls.oid = con.conrelid
    join pg_namespace ns on ns.oid = cls.relnamespace
    where ns.nspname = 'public' and con.contype <> 'n'
    order by cls.relname, con.conname`.execute(db);
  const partitioned = await sql<Record<string, unknown>>`
    select cls.relname as table_name, pg_get_partkeydef(cls.oid) as partition_key
    from pg_partitioned_table pt
    join pg_class cls on cls.oid = pt.partrelid
    join pg_namespace ns on ns.oid = cls.relnamespace
    where ns.nspname = 'public'
    order by cls.relname`.execute(db);
  return {
    tables: tables.rows.map((r) => r.table_name),
    // By name: a column dropped and added again by a down/up cycle comes back last.
    columns: columns.rows,
    indexes: indexes.rows,
    constraints: constraints.rows,
    partitioned: partitioned.rows,
  };
}

async function open(kind: DatabaseKind): Promise<{ handle: DatabaseHandle; database: TestDatabase }> {
  const database = await createTestDatabase(kind);
  const handle = await connectDatabase({
    database: { url: database.url, dataDir: database.dataDir, poolSize: 2 },
  });
  return { handle, database };
}

const opened: { handle: DatabaseHandle; database: TestDatabase }[] = [];
afterAll(async () => {
  for (const { handle, database } of opened) {
    await handle.close();
    await database.drop();
  }
});

async function migrated(kind: DatabaseKind): Promise<Kysely<Database>> {
  const o = await open(kind);
  opened.push(o);
  await migrateToLatest(o.handle.db);
  return o.handle.db;
}

for (const kind of databasesUnderTest()) {
  describe(`migrations on ${kind}`, () => {
    let db: Kysely<Database>;
    let latest: Schema;
    beforeAll(async () => {
      db = await migrated(kind);
      latest = await readSchema(db);
    });

    it('create every table of the application, each with a primary key', () => {
      expect(latest.tables).toEqual(
        [
          'account',
          'account_role',
          'app_secret',
          'audit_event',
          'auth_session',
          'directory_link',
          'interaction_state',
          'national_identity',
          'oidc_client',
          'oidc_payload',
          'password_credential',
          'rate_limit',
          'signing_key',
          'smartcard_certificate',
          'webauthn_credential',
          'webauthn_challenge',
          'enrollment_code',
          'rpps_review',
          'rpps_sync_run',
          'job_lock',
          'admin_alert',
          'rpps_index_import',
          'rpps_index_entry',
          'account_establishment',
          'psc_login_pending',
          'audit_checkpoint',
          'audit_export',
          'audit_key',
          'audit_forward_cursor',
          ...MIGRATOR_TABLES,
        ].sort(),
      );
      for (const table of latest.tables.filter((t) => !MIGRATOR_TABLES.includes(t))) {
        expect(
          latest.constraints.filter((c) => c.table_name === table && c.contype === 'p'),
          table,
        ).toHaveLength(1);
      }
      // One partition per generation of the open-data index (attached when complete, dropped when replaced).
      expect(latest.partitioned).toEqual([
        { table_name: 'rpps_index_entry', partition_key: 'LIST (generation)' },
      ]);
      expect(latest.indexes.find((i) => i.indexname === 'account_username_key')?.indexdef).toMatch(
        /^CREATE UNIQUE INDEX account_username_key ON public\.account USING btree \(lower\(username\)\)$/,
      );
    });

    it('down then up again leaves the same schema', async () => {
      expect(await migrateDown(db)).toEqual([`reverted ${Object.keys(migrations).at(-1)}`]);
      await migrateToLatest(db);
      expect(await readSchema(db)).toEqual(latest);
    });

    it('reset removes every table of the application; migrating again restores the same schema', async () => {
      const reverted = await migrateReset(db);
      expect(reverted).toEqual(
        Object.keys(migrations)
          .reverse()
          .map((name) => `reverted ${name}`),
      );
      const empty = await readSchema(db);
      expect(empty.tables).toEqual(MIGRATOR_TABLES);
      expect(empty.indexes.filter((i) => !MIGRATOR_TABLES.includes(String(i.tablename)))).toEqual([]);
      // Every known migration listed, none applied (an empty list must not pass).
      expect(await migrationStatus(db)).toEqual(
        Object.keys(migrations).map((name) => ({ name, executedAt: undefined })),
      );

      await migrateToLatest(db);
      expect(await readSchema(db)).toEqual(latest);
    });
  });
}

if (databasesUnderTest().includes('postgres')) {
  describe('schema parity between PGlite and PostgreSQL', () => {
    let pglite: Schema;
    let postgres: Schema;
    beforeAll(async () => {
      [pglite, postgres] = await Promise.all([
        migrated('pglite').then(readSchema),
        migrated('postgres').then(readSchema),
      ]);
    });

    it('the same tables', () => {
      expect(pglite.tables).toEqual(postgres.tables);
    });

    it('the same columns: name, type, nullability, default', () => {
      expect(pglite.columns.length).toBeGreaterThan(30);
      expect(pglite.columns).toEqual(postgres.columns);
    });

    it('the same indexes', () => {
      expect(pglite.indexes).toContainEqual(expect.objectContaining({ indexname: 'account_username_key' }));
      expect(pglite.indexes).toEqual(postgres.indexes);
    });

    it('the same constraints: primary keys, foreign keys, checks', () => {
      expect(pglite.constraints.map((c) => c.contype)).toEqual(expect.arrayContaining(['p', 'f', 'c']));
      expect(pglite.constraints).toEqual(postgres.constraints);
    });

    it('the same partitioned tables', () => {
      expect(pglite.partitioned).toEqual(postgres.partitioned);
    });
  });
}
