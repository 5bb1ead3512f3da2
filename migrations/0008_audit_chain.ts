import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  // Context of federation events, and the hash chain (each record carries the hash of the previous one).
  await db.schema
    .alterTable('audit_event')
    .addColumn('national_id', 'text')
    .addColumn('tid', 'text')
    .addColumn('establishment', 'text')
    .addColumn('prev_hash', 'text')
    .addColumn('hash', 'text')
    .execute();

  // Signed checkpoints: the chain's hash at a sequence number, signed with the audit key.
  await db.schema
    .createTable('audit_checkpoint')
    .addColumn('seq', 'bigint', (c) => c.primaryKey())
    .addColumn('hash', 'text', (c) => c.notNull())
    .addColumn('at', 'timestamptz', (c) => c.notNull().defaultTo(sql`clock_timestamp()`))
    .addColumn('key_id', 'text', (c) => c.notNull())
    .addColumn('signature', 'text', (c) => c.notNull())
    .execute();

  // Ranges exported (and verified) for long-term storage: retention purges only those.
  await db.schema
    .createTable('audit_export')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('from_seq', 'bigint', (c) => c.notNull())
    .addColumn('to_seq', 'bigint', (c) => c.notNull())
    .addColumn('format', 'text', (c) => c.notNull())
    .addColumn('verified', 'boolean', (c) => c.notNull())
    .addColumn('exported_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('actor', 'text', (c) => c.notNull())
    .execute();

  // How far each forwarder (SIEM syslog) has delivered: nothing is lost while the collector is down.
  await db.schema
    .createTable('audit_forward_cursor')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('last_seq', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('audit_forward_cursor').execute();
  await db.schema.dropTable('audit_export').execute();
  await db.schema.dropTable('audit_checkpoint').execute();
  await db.schema
    .alterTable('audit_event')
    .dropColumn('hash')
    .dropColumn('prev_hash')
    .dropColumn('establishment')
    .dropColumn('tid')
    .dropColumn('national_id')
    .execute();
}
