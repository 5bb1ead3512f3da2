import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  // FIDO2 security keys: several per account, each named; revoked keys are kept for the audit trail.
  await db.schema
    .createTable('webauthn_credential')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'uuid', (c) => c.notNull().references('account.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('public_key', 'bytea', (c) => c.notNull())
    .addColumn('counter', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('transports', 'jsonb', (c) => c.notNull())
    .addColumn('aaguid', 'text', (c) => c.notNull())
    .addColumn('device_type', 'text', (c) =>
      c.notNull().check(sql`device_type in ('singleDevice', 'multiDevice')`),
    )
    .addColumn('backed_up', 'boolean', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('last_used_at', 'timestamptz')
    .addColumn('revoked_at', 'timestamptz')
    .addColumn('flagged_at', 'timestamptz')
    .addColumn('flag_reason', 'text')
    .execute();
  await db.schema
    .createIndex('webauthn_credential_account_idx')
    .on('webauthn_credential')
    .column('account_id')
    .execute();

  // Challenges: single use (consumed by one delete … returning), expiring, bound to a purpose and subject.
  await db.schema
    .createTable('webauthn_challenge')
    .addColumn('challenge', 'text', (c) => c.primaryKey())
    .addColumn('purpose', 'text', (c) =>
      c.notNull().check(sql`purpose in ('registration', 'authentication')`),
    )
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('account_id', 'uuid')
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('webauthn_challenge_expires_at_idx')
    .on('webauthn_challenge')
    .column('expires_at')
    .execute();

  // One-time enrollment codes issued by the helpdesk: only a hash is stored.
  await db.schema
    .createTable('enrollment_code')
    .addColumn('code_hash', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'uuid', (c) => c.notNull().references('account.id').onDelete('cascade'))
    .addColumn('issued_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('used_at', 'timestamptz')
    .execute();
  await db.schema
    .createIndex('enrollment_code_account_idx')
    .on('enrollment_code')
    .column('account_id')
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('enrollment_code').execute();
  await db.schema.dropTable('webauthn_challenge').execute();
  await db.schema.dropTable('webauthn_credential').execute();
}
