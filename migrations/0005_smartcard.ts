import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  // The national identifier (idNat_PS) of an account and how it was established; the RPPS issue extends it.
  await db.schema
    .createTable('national_identity')
    .addColumn('account_id', 'uuid', (c) => c.primaryKey().references('account.id').onDelete('cascade'))
    .addColumn('id_nat', 'text', (c) => c.notNull().unique())
    .addColumn('rpps', 'text')
    .addColumn('source', 'text', (c) =>
      c
        .notNull()
        .check(
          sql`source in ('cps-certificate', 'psc-login', 'directory-attribute', 'manual', 'name-match')`,
        ),
    )
    .addColumn('status', 'text', (c) =>
      c.notNull().check(sql`status in ('verified', 'candidate', 'conflict', 'inactive')`),
    )
    .addColumn('verified_at', 'timestamptz')
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('national_identity_rpps_idx').on('national_identity').column('rpps').execute();

  // Card certificates registered by an administrator for an account (mapping by fingerprint).
  await db.schema
    .createTable('smartcard_certificate')
    .addColumn('fingerprint', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'uuid', (c) => c.notNull().references('account.id').onDelete('cascade'))
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('not_after', 'timestamptz', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema
    .createIndex('smartcard_certificate_account_idx')
    .on('smartcard_certificate')
    .column('account_id')
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('smartcard_certificate').execute();
  await db.schema.dropTable('national_identity').execute();
}
