import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  // Growing delays after failed credential checks need the time of the last failure.
  await db.schema.alterTable('rate_limit').addColumn('last_hit_at', 'timestamptz').execute();

  // The methods completed in each SSO session, with their times (idle and absolute lifetimes, step-up).
  await db.schema
    .createTable('auth_session')
    .addColumn('session_uid', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'uuid', (c) => c.notNull().references('account.id').onDelete('cascade'))
    .addColumn('methods', 'jsonb', (c) => c.notNull())
    .addColumn('profile', 'text', (c) => c.notNull().check(sql`profile in ('standard', 'shared')`))
    .addColumn('started_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('last_active_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('auth_session_account_idx').on('auth_session').column('account_id').execute();
  await db.schema
    .createIndex('auth_session_expires_at_idx')
    .on('auth_session')
    .column('expires_at')
    .execute();

  await db.schema
    .createTable('audit_event')
    .addColumn('seq', 'bigserial', (c) => c.primaryKey())
    .addColumn('at', 'timestamptz', (c) => c.notNull().defaultTo(sql`clock_timestamp()`))
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('outcome', 'text', (c) => c.notNull().check(sql`outcome in ('success', 'failure')`))
    .addColumn('account_id', 'uuid')
    .addColumn('client_id', 'text')
    .addColumn('session_id', 'text')
    .addColumn('interaction_id', 'text')
    .addColumn('ip', 'text')
    .addColumn('user_agent', 'text')
    .addColumn('method', 'text')
    .addColumn('amr', 'jsonb')
    .addColumn('acr', 'text')
    .addColumn('reason', 'text')
    .addColumn('request_id', 'text')
    .addColumn('instance_id', 'text', (c) => c.notNull())
    .addColumn('detail', 'jsonb')
    .execute();
  await db.schema
    .createIndex('audit_event_account_idx')
    .on('audit_event')
    .columns(['account_id', 'at'])
    .execute();
  await db.schema.createIndex('audit_event_at_idx').on('audit_event').column('at').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('audit_event').execute();
  await db.schema.dropTable('auth_session').execute();
  await db.schema.alterTable('rate_limit').dropColumn('last_hit_at').execute();
}
