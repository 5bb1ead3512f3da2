import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  // The link now carries what the Annuaire Santé says of the professional, and how it was last checked.
  // One identifier may be claimed by several accounts while a conflict awaits review: only one link to
  // it may be verified.
  await sql`alter table national_identity drop constraint national_identity_id_nat_key`.execute(db);
  await db.schema
    .alterTable('national_identity')
    .addColumn('profession_code', 'text')
    .addColumn('category_code', 'text')
    .addColumn('role_codes', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('national_family_name', 'text')
    .addColumn('national_given_name', 'text')
    .addColumn('checked_at', 'timestamptz')
    .addColumn('status_reason', 'text')
    .execute();
  await db.schema
    .createIndex('national_identity_id_nat_idx')
    .on('national_identity')
    .column('id_nat')
    .execute();
  await db.schema
    .createIndex('national_identity_verified_id_nat_key')
    .on('national_identity')
    .column('id_nat')
    .unique()
    .where(sql.ref('status'), '=', 'verified')
    .execute();

  // Candidates and conflicts awaiting an administrator, and the decisions taken (a rejected proposal is
  // not proposed again).
  await db.schema
    .createTable('rpps_review')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('account_id', 'uuid', (c) => c.notNull().references('account.id').onDelete('cascade'))
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('candidate', 'conflict')`))
    .addColumn('id_nat', 'text', (c) => c.notNull())
    .addColumn('source', 'text', (c) => c.notNull())
    .addColumn('other_account_id', 'uuid', (c) => c.references('account.id').onDelete('set null'))
    .addColumn('evidence', 'jsonb', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull().check(sql`state in ('open', 'accepted', 'rejected')`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('decided_at', 'timestamptz')
    .addColumn('decided_by', 'text')
    .execute();
  await db.schema
    .createIndex('rpps_review_open_key')
    .on('rpps_review')
    .columns(['account_id', 'id_nat'])
    .unique()
    .where(sql.ref('state'), '=', 'open')
    .execute();
  await db.schema.createIndex('rpps_review_account_idx').on('rpps_review').column('account_id').execute();

  // Sync runs and their summaries; the lease that keeps one runner at a time across instances.
  await db.schema
    .createTable('rpps_sync_run')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('mode', 'text', (c) => c.notNull().check(sql`mode in ('full', 'delta')`))
    .addColumn('trigger', 'text', (c) => c.notNull())
    .addColumn('instance_id', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) =>
      c.notNull().check(sql`status in ('running', 'completed', 'halted', 'failed')`),
    )
    .addColumn('delta_since', 'timestamptz')
    .addColumn('started_at', 'timestamptz', (c) => c.notNull())
    .addColumn('finished_at', 'timestamptz')
    .addColumn('summary', 'jsonb')
    .addColumn('error', 'text')
    .execute();
  await db.schema.createIndex('rpps_sync_run_started_idx').on('rpps_sync_run').column('started_at').execute();
  await db.schema
    .createTable('job_lock')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('holder', 'text', (c) => c.notNull())
    .addColumn('acquired_at', 'timestamptz', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .execute();

  // Alerts for administrators (professional no longer active, sync halted…), until acknowledged.
  await db.schema
    .createTable('admin_alert')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('account_id', 'uuid', (c) => c.references('account.id').onDelete('cascade'))
    .addColumn('message', 'text', (c) => c.notNull())
    .addColumn('detail', 'jsonb')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('acknowledged_at', 'timestamptz')
    .addColumn('acknowledged_by', 'text')
    .execute();

  // Local index of the open-data extract (PS_LibreAcces_Personne_activite): one row per identifier and
  // generation. Each generation is a partition: loaded as a table of its own (secondary index built after
  // the load), attached and made current in one transaction, dropped when replaced (no mass delete).
  await db.schema
    .createTable('rpps_index_import')
    .addColumn('generation', 'integer', (c) => c.primaryKey())
    .addColumn('file_name', 'text', (c) => c.notNull())
    .addColumn('started_at', 'timestamptz', (c) => c.notNull())
    .addColumn('completed_at', 'timestamptz')
    .addColumn('is_current', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('summary', 'jsonb')
    .execute();
  await db.schema
    .createIndex('rpps_index_import_current_key')
    .on('rpps_index_import')
    .column('is_current')
    .unique()
    .where(sql.ref('is_current'), '=', sql.lit(true))
    .execute();
  await db.schema
    .createTable('rpps_index_entry')
    .addColumn('generation', 'integer', (c) => c.notNull())
    .addColumn('id_nat', 'text', (c) => c.notNull())
    .addColumn('rpps', 'text')
    .addColumn('family_name', 'text', (c) => c.notNull())
    .addColumn('given_name', 'text', (c) => c.notNull())
    .addColumn('family_folded', 'text', (c) => c.notNull())
    .addColumn('given_folded', 'text', (c) => c.notNull())
    .addColumn('profession_code', 'text')
    .addColumn('profession_label', 'text')
    .addColumn('category_code', 'text')
    .addColumn('activity_count', 'integer', (c) => c.notNull())
    .addPrimaryKeyConstraint('rpps_index_entry_pkey', ['generation', 'id_nat'])
    .modifyEnd(sql`partition by list (generation)`)
    .execute();
  await db.schema
    .createIndex('rpps_index_entry_name_idx')
    .on('rpps_index_entry')
    .columns(['family_folded', 'given_folded'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  // Dropping the partitioned table drops its partitions; a generation still being loaded is a table apart.
  const loading = await sql<{ tablename: string }>`
    select tablename from pg_tables
    where schemaname = current_schema() and tablename ~ '^rpps_index_entry_[0-9]+$'`.execute(db);
  for (const { tablename } of loading.rows) await db.schema.dropTable(tablename).ifExists().execute();
  await db.schema.dropTable('rpps_index_entry').execute();
  await db.schema.dropTable('rpps_index_import').execute();
  await db.schema.dropTable('admin_alert').execute();
  await db.schema.dropTable('job_lock').execute();
  await db.schema.dropTable('rpps_sync_run').execute();
  await db.schema.dropTable('rpps_review').execute();
  await db.schema.dropIndex('national_identity_verified_id_nat_key').execute();
  await db.schema.dropIndex('national_identity_id_nat_idx').execute();
  await db.schema
    .alterTable('national_identity')
    .dropColumn('profession_code')
    .dropColumn('category_code')
    .dropColumn('role_codes')
    .dropColumn('national_family_name')
    .dropColumn('national_given_name')
    .dropColumn('checked_at')
    .dropColumn('status_reason')
    .execute();
  await sql`alter table national_identity add constraint national_identity_id_nat_key unique (id_nat)`.execute(
    db,
  );
}
