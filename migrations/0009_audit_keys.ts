import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  // The public keys of the audit checkpoints: the first one (no endorsement) and each rotation's new key,
  // endorsed by the key it replaced (docs/audit.md, "Key rotation").
  await db.schema
    .createTable('audit_key')
    .addColumn('key_id', 'text', (c) => c.primaryKey())
    .addColumn('public_jwk', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('endorsed_by', 'text')
    .addColumn('endorsement', 'text')
    .addColumn('retired_at', 'timestamptz')
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('audit_key').execute();
}
