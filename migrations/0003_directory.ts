import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  // Link between a local account and its directory entry, by the entry's immutable id (objectGUID,
  // entryUUID): renames and moves in the directory keep the link.
  await db.schema
    .createTable('directory_link')
    .addColumn('account_id', 'uuid', (c) => c.primaryKey().references('account.id').onDelete('cascade'))
    .addColumn('stable_id', 'text', (c) => c.notNull().unique())
    .addColumn('dn', 'text', (c) => c.notNull())
    .addColumn('id_nat', 'text')
    .addColumn('groups', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('synced_at', 'timestamptz', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('directory_link_id_nat_idx').on('directory_link').column('id_nat').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('directory_link').execute();
}
