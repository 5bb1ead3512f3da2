/**
 * Audit trail benchmark: the latency the hash chain adds to a login-like record (p50/p99 of
 * AuditTrail.record against the plain single INSERT it replaced), append throughput with 4 concurrent
 * writers, and `audit verify` over 1,000,000 records (rows/s), then the same records read alone.
 *
 *   npm run bench:audit                         # PGlite in memory
 *   BENCH_DATABASE_URL=postgres://… npm run bench:audit
 *   npm run bench:audit -- --records 100000     # fewer records to verify
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { sql } from 'kysely';
import pino from 'pino';
import { chainHash, GENESIS_HASH } from '../src/audit/canonical.ts';
import { chainRows } from '../src/audit/chain.ts';
import { AuditCheckpoints, AuditSigningKey, listCheckpoints } from '../src/audit/checkpoints.ts';
import { type AuditEvent, AuditTrail } from '../src/audit/trail.ts';
import { verifyChain } from '../src/audit/verify.ts';
import { Sealer } from '../src/crypto/sealer.ts';
import { connectDatabase } from '../src/db/connect.ts';
import { migrateToLatest } from '../src/db/migrate.ts';
import { createTestDatabase, type TestDatabase } from '../test/helpers/databases.ts';

const { values: args } = parseArgs({
  options: {
    records: { type: 'string', default: '1000000' },
    samples: { type: 'string', default: '2000' },
    writes: { type: 'string', default: '1000' },
  },
});
const recordCount = Number(args.records);
const samples = Number(args.samples);
const writesPerWriter = Number(args.writes);
const adminUrl = process.env.BENCH_DATABASE_URL || undefined;
const kind = adminUrl ? 'postgres' : 'pglite';

const login = (i: number): AuditEvent => ({
  type: 'auth.attempt',
  outcome: 'success',
  accountId: '0b7e6f9c-3c8e-4a51-9d5e-2f1c4b8a7d60',
  clientId: 'dossier-patient',
  sessionId: `session-${i}`,
  interactionId: `interaction-${i}`,
  ip: '10.12.0.34',
  userAgent: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36',
  method: 'webauthn',
  amr: ['hwk', 'pin'],
  acr: 'urn:passerelle:loa:high',
  requestId: `req-${i}`,
  detail: { credentialId: 'AbCdEfGhIjKlMnOpQrStUv', signCount: i },
});

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
const ms = (value: number) => Number(value.toFixed(3));

/** p50/p99 of two operations, measured alternately so that both see the same machine load. */
async function latencies(
  runs: Record<'chained' | 'plain', (i: number) => Promise<unknown>>,
): Promise<Record<'chained' | 'plain', { p50: number; p99: number }>> {
  const times = { chained: [] as number[], plain: [] as number[] };
  for (let i = -100; i < samples; i++) {
    for (const name of ['plain', 'chained'] as const) {
      const started = performance.now();
      await runs[name](i);
      if (i >= 0) times[name].push(performance.now() - started);
    }
  }
  const summary = (list: number[]) => {
    list.sort((a, b) => a - b);
    return { p50: ms(percentile(list, 50)), p99: ms(percentile(list, 99)) };
  };
  return { chained: summary(times.chained), plain: summary(times.plain) };
}

// The machine is shared (2 vCPUs): its load at the start says how far the figures can be trusted.
const loadAtStart = loadavg().map((l) => l.toFixed(2));
let database: TestDatabase | undefined;
try {
  database = await createTestDatabase(kind, { admin: adminUrl, prefix: 'passerelle_bench' });
  const handle = await connectDatabase({
    database: { url: database.url, dataDir: database.dataDir, poolSize: 4 },
  });
  const db = handle.db;
  await migrateToLatest(db);
  const trail = new AuditTrail(db, pino({ level: 'silent' }));
  const key = await AuditSigningKey.load(db, new Sealer(randomBytes(32).toString('base64')));
  console.log(
    `audit bench: ${kind}, ${samples} samples, 4 × ${writesPerWriter} concurrent appends, verify ${recordCount}; load ${loadAtStart.join(' ')}`,
  );

  // The insert record() did before the chain, into a copy of the table.
  await sql`create table audit_event_plain (like audit_event including defaults)`.execute(db);
  const plain = (i: number) => {
    const e = login(i);
    return sql`insert into audit_event_plain (type, outcome, account_id, client_id, session_id, interaction_id,
        ip, user_agent, method, amr, acr, request_id, instance_id, detail)
      values (${e.type}, ${e.outcome}, ${e.accountId}, ${e.clientId}, ${e.sessionId}, ${e.interactionId}, ${e.ip},
        ${e.userAgent}, ${e.method}, ${JSON.stringify(e.amr)}, ${e.acr}, ${e.requestId}, 'bench',
        ${JSON.stringify(e.detail)})`.execute(db);
  };
  const { chained, plain: unchained } = await latencies({ plain, chained: (i) => trail.record(login(i)) });
  const added = { p50: ms(chained.p50 - unchained.p50), p99: ms(chained.p99 - unchained.p99) };
  console.log(
    `record(): p50 ${chained.p50} ms, p99 ${chained.p99} ms; plain insert p50 ${unchained.p50} ms, p99 ${unchained.p99} ms; added p50 ${added.p50} ms, p99 ${added.p99} ms`,
  );

  let started = performance.now();
  await Promise.all(
    [0, 1, 2, 3].map(async (w) => {
      for (let i = 0; i < writesPerWriter; i++) await trail.record(login(w * writesPerWriter + i));
    }),
  );
  const appendSeconds = (performance.now() - started) / 1000;
  const throughput = Math.round((4 * writesPerWriter) / appendSeconds);
  console.log(
    `4 concurrent writers: ${4 * writesPerWriter} records in ${appendSeconds.toFixed(2)} s, ${throughput} records/s`,
  );

  // A long trail written directly (multi-row inserts of rows hashed here), a checkpoint every 100,000.
  started = performance.now();
  const checkpoints = new AuditCheckpoints(db, key);
  let last = (await db
    .selectFrom('audit_event')
    .select(['seq', 'hash'])
    .orderBy('seq', 'desc')
    .limit(1)
    .executeTakeFirst()) ?? {
    seq: '0',
    hash: GENESIS_HASH,
  };
  const base = new Date();
  for (let next = Number(last.seq) + 1; next <= recordCount; ) {
    const rows = [];
    for (let n = 0; n < 1000 && next <= recordCount; n++, next++) {
      const e = login(next);
      const record = {
        seq: String(next),
        at: new Date(base.getTime() + next),
        type: e.type,
        outcome: e.outcome,
        account_id: e.accountId ?? null,
        client_id: e.clientId ?? null,
        session_id: e.sessionId ?? null,
        interaction_id: e.interactionId ?? null,
        ip: e.ip ?? null,
        user_agent: e.userAgent ?? null,
        method: e.method ?? null,
        amr: e.amr ?? null,
        acr: e.acr ?? null,
        reason: null,
        request_id: e.requestId ?? null,
        instance_id: 'bench',
        detail: e.detail ?? null,
        national_id: null,
        tid: null,
        establishment: null,
        prev_hash: String(last.hash),
      };
      const hash = chainHash(record);
      rows.push({ ...record, hash, amr: JSON.stringify(record.amr), detail: JSON.stringify(record.detail) });
      last = { seq: record.seq, hash };
    }
    const batchStart = Number(rows[0]?.seq);
    await db.insertInto('audit_event').values(rows).execute();
    if (Math.floor(batchStart / 100_000) !== Math.floor(Number(last.seq) / 100_000))
      await checkpoints.writeAt({ seq: String(last.seq), hash: String(last.hash) });
  }
  await checkpoints.write();
  const fillSeconds = (performance.now() - started) / 1000;
  console.log(`filled ${recordCount} records in ${fillSeconds.toFixed(1)} s`);

  const heapBefore = process.memoryUsage().heapUsed;
  const result = await verifyChain(chainRows(db), await listCheckpoints(db), key.publicKey);
  const heapAfter = process.memoryUsage().heapUsed;
  if (result.kind !== 'ok') throw new Error(`verify found a problem: ${JSON.stringify(result.problem)}`);
  const verifySeconds = result.summary.durationMs / 1000;
  const rowsPerSecond = Math.round(result.summary.rows / verifySeconds);
  console.log(
    `verify: ${result.summary.rows} records, ${result.summary.checkpoints} checkpoints in ${verifySeconds.toFixed(1)} s, ${rowsPerSecond} rows/s`,
  );
  // The same records read without hashing (a second pass over warm pages): reading against hashing.
  started = performance.now();
  let readRows = 0;
  for await (const _ of chainRows(db)) readRows++;
  const readSeconds = (performance.now() - started) / 1000;
  console.log(`read alone (second pass): ${readRows} records in ${readSeconds.toFixed(1)} s`);

  const results = {
    date: new Date().toISOString(),
    database: kind,
    vcpus: cpus().length,
    cpu: cpus()[0]?.model,
    node: process.version,
    loadAverageAtStart: loadAtStart.join(' '),
    record: { samples, chainedMs: chained, plainInsertMs: unchained, addedMs: added },
    concurrentAppend: {
      writers: 4,
      records: 4 * writesPerWriter,
      seconds: Number(appendSeconds.toFixed(2)),
      recordsPerSecond: throughput,
    },
    verify: {
      records: result.summary.rows,
      checkpoints: result.summary.checkpoints,
      seconds: Number(verifySeconds.toFixed(2)),
      rowsPerSecond,
      heapGrowthMiB: Number(((heapAfter - heapBefore) / 2 ** 20).toFixed(1)),
      readAloneSeconds: Number(readSeconds.toFixed(2)),
      fillSeconds: Number(fillSeconds.toFixed(1)),
    },
  };
  mkdirSync('bench/results', { recursive: true });
  const file = `bench/results/${results.date.replace(/[:.]/g, '-')}-audit-${kind}.json`;
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`results: ${file}`);
  await handle.close();
} finally {
  await database?.drop();
}
