/**
 * RPPS sync benchmark: 10,000 accounts linked to professionals of the simulated Annuaire Santé, which
 * enforces the ANS quota (17 requests/s, 429 beyond) and answers 504 to oversized batches (> 50
 * identifiers with _revinclude). Passerelle runs with its shipped throttle (15 requests/s) and batches
 * (50 identifier values) unless --rate / --batch say otherwise. Measures the first run (a full pass filling every
 * link), a full pass where nothing changed, and a delta run (50 professionals left meanwhile): API requests, 429s, wall time, CPU time of this process.
 *
 *   npm run bench:rpps-sync                       # PGlite in memory
 *   BENCH_DATABASE_URL=postgres://… npm run bench:rpps-sync
 *   npm run bench:rpps-sync -- --links 2000       # fewer links
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { openServices } from '../src/app.ts';
import { loadConfig } from '../src/config/load.ts';
import { createLogger } from '../src/http/logger.ts';
import { createRpps } from '../src/rpps/runtime.ts';
import type { SyncSummary } from '../src/rpps/sync.ts';
import { createTestDatabase, type TestDatabase } from '../test/helpers/databases.ts';
import { generateProfessionals } from '../test/simulators/annuaire/fixtures.ts';
import { startAnnuaireSimulator } from '../test/simulators/annuaire/server.ts';

const { values: args } = parseArgs({
  options: {
    links: { type: 'string', default: '10000' },
    /** The simulated quota (requests/s per key). */
    quota: { type: 'string', default: '17' },
    /** Passerelle's rpps.api.requestsPerSecond. */
    rate: { type: 'string', default: '15' },
    /** Passerelle's rpps.api.batchSize (identifier values per search). */
    batch: { type: 'string', default: '50' },
  },
});
const linkCount = Number(args.links);
const rate = Number(args.rate);
const quota = Number(args.quota);
const adminUrl = process.env.BENCH_DATABASE_URL || undefined;
const kind = adminUrl ? 'postgres' : 'pglite';
const API_KEY = 'bench-annuaire-key';

const professionals = [
  ...generateProfessionals({ count: Math.ceil(linkCount * 1.1), now: new Date() }),
].filter((p) => p.active);
if (professionals.length < linkCount) throw new Error('not enough active professionals generated');
const sim = await startAnnuaireSimulator({ professionals, apiKey: API_KEY, rateLimitPerSecond: quota });
let database: TestDatabase | undefined;
try {
  database = await createTestDatabase(kind, { admin: adminUrl, prefix: 'passerelle_bench' });
  const { config } = loadConfig({
    env: {},
    overrides: {
      issuer: 'http://127.0.0.1:3999',
      database: { url: database.url, dataDir: database.dataDir },
      keys: { encryptionKey: Buffer.alloc(32, 7).toString('base64') },
      log: { level: 'warn' },
      rpps: {
        api: {
          baseUrl: sim.baseUrl,
          apiKey: API_KEY,
          requestsPerSecond: rate,
          batchSize: Number(args.batch),
        },
        sync: { intervalSeconds: 0, maxChangeFloor: 100 },
      },
    },
  });
  const logger = createLogger('error', process.stderr as never);
  const services = await openServices(config, logger);
  const db = services.database.db;

  // Setup: accounts named like their professional, each with a verified link (set by an administrator).
  const linked = professionals.slice(0, linkCount);
  for (let i = 0; i < linked.length; i += 1000) {
    const chunk = linked.slice(i, i + 1000).map((p) => ({ p, id: randomUUID() }));
    await db
      .insertInto('account')
      .values(
        chunk.map(({ p, id }) => ({
          id,
          username: `pro${p.rpps}`,
          given_name: p.givenName,
          family_name: p.familyName,
          is_demo: false,
          disabled_at: null,
          updated_at: new Date(),
        })),
      )
      .execute();
    await db
      .insertInto('national_identity')
      .values(
        chunk.map(({ p, id }) => ({
          account_id: id,
          id_nat: p.idNatPs,
          rpps: p.rpps,
          source: 'manual' as const,
          status: 'verified' as const,
          verified_at: new Date(),
          updated_at: new Date(),
        })),
      )
      .execute();
  }

  const { sync } = createRpps(services);
  const measure = async (label: string, full = false) => {
    const requestsBefore = sim.requests.length;
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    const result = await sync.run({ trigger: 'command', full });
    const wallMs = performance.now() - started;
    const cpu = process.cpuUsage(cpuBefore);
    if (result.kind !== 'done') throw new Error('sync busy');
    const requests = sim.requests.slice(requestsBefore);
    const s: SyncSummary = result.summary;
    const row = {
      run: label,
      status: s.status,
      mode: s.mode,
      links: s.links,
      checked: s.checked,
      changed: s.changed,
      apiRequests: requests.length,
      throttled429: requests.filter((r) => r.status === 429).length,
      wallSeconds: Number((wallMs / 1000).toFixed(2)),
      requestsPerSecond: Number((requests.length / (wallMs / 1000)).toFixed(1)),
      cpuSeconds: Number(((cpu.user + cpu.system) / 1e6).toFixed(2)),
    };
    console.log(
      `${label.padEnd(6)} ${row.mode.padEnd(5)} ${row.status}: ${row.checked} checked, ${row.apiRequests} API requests (${row.throttled429} × 429), ${row.wallSeconds} s wall, ${row.requestsPerSecond} req/s, ${row.cpuSeconds} s CPU (Passerelle + simulator, one process)`,
    );
    return row;
  };

  console.log(
    `RPPS sync: ${linkCount} links, ${kind}, quota ${quota} requests/s, client ${rate} requests/s, batches of ${args.batch} identifiers`,
  );
  // First run: every link gets what the Annuaire says (one audited change each).
  const first = await measure('first');
  // Steady state: a full pass where nothing changed (one statement per batch of unchanged links).
  const steady = await measure('full', true);
  for (const p of linked.slice(0, 50)) sim.deactivate(p.idNatPs);
  const delta = await measure('delta');
  const results = {
    date: new Date().toISOString(),
    database: kind,
    vcpus: cpus().length,
    cpu: cpus()[0]?.model,
    node: process.version,
    links: linkCount,
    quota,
    requestsPerSecond: rate,
    batchSize: Number(args.batch),
    runs: [first, steady, delta],
  };
  mkdirSync('bench/results', { recursive: true });
  const file = `bench/results/${results.date.replace(/[:.]/g, '-')}-rpps-sync-${kind}.json`;
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`written ${file}`);
  await services.database.close();
} finally {
  await sim.close();
  await database?.drop();
}
