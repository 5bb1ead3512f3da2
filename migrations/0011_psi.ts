import { type Kysely, sql } from 'kysely';

/**
 * Pro Santé Identité (Référentiel PSC v2.1, EXI PSC 18 and 19): a national identity proven through PSC
 * may come from the RPPS (an idNatPS, `SubjectNameID`) or from Pro Santé Identité (`PSISubjectNameID`,
 * an identifier of its own whose format is not published). Each link and each review item says which; an
 * identifier is unique within its origin.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  for (const table of ['national_identity', 'rpps_review']) {
    await db.schema
      .alterTable(table)
      .addColumn('origin', 'text', (c) => c.notNull().defaultTo('rpps').check(sql`origin in ('rpps', 'psi')`))
      .execute();
  }
  await db.schema.dropIndex('national_identity_verified_id_nat_key').execute();
  await db.schema
    .createIndex('national_identity_verified_id_nat_key')
    .on('national_identity')
    .columns(['origin', 'id_nat'])
    .unique()
    .where(sql.ref('status'), '=', 'verified')
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  // A PSI identifier has no place in a schema that knows the RPPS only.
  await sql`delete from national_identity where origin = 'psi'`.execute(db);
  await sql`delete from rpps_review where origin = 'psi'`.execute(db);
  await db.schema.dropIndex('national_identity_verified_id_nat_key').execute();
  await db.schema
    .createIndex('national_identity_verified_id_nat_key')
    .on('national_identity')
    .column('id_nat')
    .unique()
    .where(sql.ref('status'), '=', 'verified')
    .execute();
  for (const table of ['rpps_review', 'national_identity']) {
    await db.schema.alterTable(table).dropColumn('origin').execute();
  }
}
