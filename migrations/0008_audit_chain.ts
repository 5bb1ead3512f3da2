import { type Kysely, sql } from 'kysely';
import { type ChainedRecord, chainHash, GENESIS_HASH } from '../src/audit/canonical.ts';

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

  await chainExistingRows(db);
  await sql`
    create function audit_append_only() returns trigger language plpgsql as $$
    begin
      if coalesce(current_setting('passerelle.audit_purge', true), '') = 'on' then
        return case tg_op when 'DELETE' then old when 'UPDATE' then new else null end;
      end if;
      raise exception '% is append-only: % refused', tg_table_name, tg_op
        using errcode = 'insufficient_privilege',
              hint = 'only the retention purge (passerelle.audit_purge = on) removes audit records';
    end $$`.execute(db);
  for (const table of ['audit_event', 'audit_checkpoint']) {
    await sql`create trigger ${sql.id(`${table}_append_only`)} before update or delete on ${sql.table(table)}
      for each row execute function audit_append_only()`.execute(db);
    await sql`create trigger ${sql.id(`${table}_no_truncate`)} before truncate on ${sql.table(table)}
      for each statement execute function audit_append_only()`.execute(db);
  }
}

/**
 * Rows written before the chain: numbered again without gaps (rolled-back inserts left some), their time
 * cut to the millisecond (the precision the canonical form covers), then hashed in seq order.
 */
async function chainExistingRows(db: Kysely<unknown>): Promise<void> {
  await sql`
    update audit_event e set seq = -n.rank, at = date_trunc('milliseconds', e.at)
    from (select seq, row_number() over (order by seq) as rank from audit_event) n
    where n.seq = e.seq`.execute(db);
  await sql`update audit_event set seq = -seq`.execute(db);
  let prev = GENESIS_HASH;
  let after = 0n;
  for (;;) {
    const { rows } = await sql<ChainedRecord>`
      select * from audit_event where seq > ${after.toString()} order by seq limit 1000`.execute(db);
    if (rows.length === 0) return;
    const links: string[] = [];
    for (const row of rows) {
      const record = { ...row, seq: String(row.seq), prev_hash: prev };
      prev = chainHash(record);
      links.push(record.seq, record.prev_hash, prev);
    }
    const values = sql.join(
      rows.map((_, i) => sql`(${links[3 * i]}::bigint, ${links[3 * i + 1]}, ${links[3 * i + 2]})`),
    );
    await sql`
      update audit_event e set prev_hash = v.prev_hash, hash = v.hash
      from (values ${values}) as v(seq, prev_hash, hash) where e.seq = v.seq`.execute(db);
    after = BigInt(rows[rows.length - 1]?.seq ?? after);
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  // Drops the triggers with it.
  await sql`drop function audit_append_only() cascade`.execute(db);
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
