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
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('account_role').execute();
}
