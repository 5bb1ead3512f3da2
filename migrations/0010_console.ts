import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  // Roles in the administration console (docs/console.md): administrator, helpdesk, auditor.
  await db.schema
    .createTable('account_role')
    .addColumn('account_id', 'uuid', (c) => c.notNull().references('account.id').onDelete('cascade'))
    .addColumn('role', 'text', (c) =>
      c.notNull().check(sql`role in ('administrator', 'helpdesk', 'auditor')`),
    )
    .addColumn('granted_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('granted_by', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('account_role_pk', ['account_id', 'role'])
    .execute();
  // Passerelle's own clients (the portal and the console sign in through the engine like any application).
  await sql`alter table oidc_client drop constraint oidc_client_source_check`.execute(db);
  await sql`alter table oidc_client add constraint oidc_client_source_check
            check (source in ('cli', 'config', 'demo', 'internal'))`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`delete from oidc_client where source = 'internal'`.execute(db);
  await sql`alter table oidc_client drop constraint oidc_client_source_check`.execute(db);
  await sql`alter table oidc_client add constraint oidc_client_source_check
            check (source in ('cli', 'config', 'demo'))`.execute(db);
  await db.schema.dropTable('account_role').execute();
}
