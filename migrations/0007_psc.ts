import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  // Accounts listed as members of an establishment (FINESS), besides `members: all` and directory groups.
  await db.schema
    .createTable('account_establishment')
    .addColumn('account_id', 'uuid', (c) => c.notNull().references('account.id').onDelete('cascade'))
    .addColumn('finess', 'text', (c) => c.notNull())
    .addColumn('added_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('account_establishment_pk', ['account_id', 'finess'])
    .execute();
  await db.schema
    .createIndex('account_establishment_finess_idx')
    .on('account_establishment')
    .column('finess')
    .execute();

  // A login through Pro Santé Connect on its way (state, nonce and PKCE verifier), single use.
  await db.schema
    .createTable('psc_login_pending')
    .addColumn('state', 'text', (c) => c.primaryKey())
    .addColumn('interaction_uid', 'text', (c) => c.notNull())
    .addColumn('nonce', 'text', (c) => c.notNull())
    .addColumn('code_verifier', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .execute();

  // The PSC session (sid) a single sign-on session came from: PSC's back-channel logout ends it.
  await db.schema.alterTable('auth_session').addColumn('upstream_sid', 'text').execute();
  await db.schema
    .createIndex('auth_session_upstream_sid_idx')
    .on('auth_session')
    .column('upstream_sid')
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('auth_session_upstream_sid_idx').execute();
  await db.schema.alterTable('auth_session').dropColumn('upstream_sid').execute();
  await db.schema.dropTable('psc_login_pending').execute();
  await db.schema.dropTable('account_establishment').execute();
}
