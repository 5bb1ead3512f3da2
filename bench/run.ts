/**
 * `npm run bench`: throughput per core and latency percentiles of Passerelle's hot paths.
 *
 * The server runs in a child process (bench/server.ts) on PostgreSQL when BENCH_DATABASE_URL is set
 * (a fresh database, dropped afterwards), else on PGlite in memory. This process generates the load
 * over keep-alive HTTP to 127.0.0.1 only, reads the server's CPU time from /proc, and prints a table
 * plus bench/results/<date>-<database>.json. Targets are printed next to the figures, never asserted.
 *
 *   npm run bench -- [--database pglite|postgres] [--duration 8] [--warmup 2] [--low-duration 5]
 *                    [--concurrency 16] [--login-concurrency 4] [--chains 32]
 *                    [--only client_credentials,refresh_token,introspection,code_login]
 *                    [--save-reference] (merge this run into bench/results/reference.json)
 *                    [--profile] (V8 CPU profile of the server in bench/results/profiles/)
 *                    [--server-node-options="--max-old-space-size=96"] (Node flags of the server process)
 *
 * Environment equivalents: BENCH_DURATION, BENCH_WARMUP, BENCH_LOW_DURATION, BENCH_CONCURRENCY,
 * BENCH_LOGIN_CONCURRENCY, BENCH_CHAINS, BENCH_MAX_REQUESTS, BENCH_ONLY, BENCH_SERVER_NODE_OPTIONS.
 * Run it on an otherwise idle machine: the "other" column shows how much CPU anything else used.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as oidc from 'openid-client';
import pg from 'pg';
import type { ClientMetadata } from '../src/oidc/clients.ts';
import { BrowserAgent, browserLogin } from '../test/helpers/browser-agent.ts';
import {
  authorizationRequest,
  basicAuthorization,
  discover,
  TEST_PASSWORD,
} from '../test/helpers/clients.ts';
import { createTestDatabase, type TestDatabase } from '../test/helpers/databases.ts';
import { closedLoop, HttpTarget, type LoopResult, openLoop, percentile } from './load.ts';
import {
  cpuByName,
  cpuDelta,
  machineBusySeconds,
  machineInfo,
  processCpuSeconds,
  processMemory,
} from './proc.ts';
import type { BenchUser, ServerStats } from './protocol.ts';
import { diffSnapshots, isWrite } from './queries.ts';
import {
  type BenchResults,
  checkTargets,
  type PassResult,
  perOp,
  render,
  round,
  type ScenarioResult,
  type WriteTrace,
} from './report.ts';
import { ServerProcess } from './server-process.ts';

const SCENARIOS = ['client_credentials', 'refresh_token', 'introspection', 'code_login'] as const;
type ScenarioName = (typeof SCENARIOS)[number];

function usageError(message: string): never {
  process.stderr.write(`bench: ${message} (see npm run bench -- --help)\n`);
  process.exit(2);
}

const { values: flags } = parseArgs({
  options: {
    database: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    'low-duration': { type: 'string' },
    concurrency: { type: 'string' },
    'login-concurrency': { type: 'string' },
    chains: { type: 'string' },
    'max-requests': { type: 'string' },
    only: { type: 'string' },
    'save-reference': { type: 'boolean' },
    profile: { type: 'boolean' },
    'server-node-options': { type: 'string' },
    help: { type: 'boolean' },
  },
});
if (flags.help) {
  const head = readFileSync(new URL(import.meta.url), 'utf8').split('*/')[0] ?? '';
  process.stdout.write(`${head.replace(/^\/\*\*?|^ \* ?/gm, '')}\n`);
  process.exit(0);
}

const setting = (flag: keyof typeof flags, env: string, fallback: number): number => {
  const raw = flags[flag] ?? process.env[env];
  const value = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isFinite(value) || value <= 0) usageError(`--${flag} / ${env}: not a positive number`);
  return value;
};
const concurrency = setting('concurrency', 'BENCH_CONCURRENCY', 16);
const settings = {
  durationSeconds: setting('duration', 'BENCH_DURATION', 8),
  warmupSeconds: setting('warmup', 'BENCH_WARMUP', 2),
  lowLoadDurationSeconds: setting('low-duration', 'BENCH_LOW_DURATION', 5),
  concurrency,
  loginConcurrency: setting('login-concurrency', 'BENCH_LOGIN_CONCURRENCY', 4),
  refreshChains: setting('chains', 'BENCH_CHAINS', concurrency * 2),
  maxRequestsPerPass: setting('max-requests', 'BENCH_MAX_REQUESTS', 200_000),
  lowLoadFraction: 0.7,
};
const only = (flags.only ?? process.env.BENCH_ONLY ?? SCENARIOS.join(','))
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
for (const name of only) {
  if (!SCENARIOS.includes(name as ScenarioName)) usageError(`unknown scenario ${name} (${SCENARIOS})`);
}
const wanted = (name: ScenarioName) => only.includes(name);

const adminUrl = process.env.BENCH_DATABASE_URL || undefined;
const chosen = flags.database ?? (adminUrl ? 'postgres' : 'pglite');
if (chosen !== 'pglite' && chosen !== 'postgres') usageError('--database: pglite or postgres');
const kind: 'pglite' | 'postgres' = chosen;
if (kind === 'postgres' && !adminUrl) usageError('--database postgres needs BENCH_DATABASE_URL');
const POOL_SIZE = 10;
const serverNodeOptions = (flags['server-node-options'] ?? process.env.BENCH_SERVER_NODE_OPTIONS ?? '')
  .split(/\s+/)
  .filter(Boolean);

const DPI_REDIRECT = 'https://dpi.bench.test/callback';
const MOBILE_REDIRECT = 'https://mobile.bench.test/callback';
const secrets = {
  service: randomBytes(32).toString('base64url'),
  dpi: randomBytes(32).toString('base64url'),
};
/** A back-end service (client_credentials), a first-party web app (no consent), a public mobile app. */
const CLIENTS: ClientMetadata[] = [
  {
    client_id: 'bench-service',
    client_name: 'Bench service',
    redirect_uris: [],
    grant_types: ['client_credentials'],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
    client_secret: secrets.service,
  },
  {
    client_id: 'bench-dpi',
    client_name: 'Bench DPI',
    redirect_uris: [DPI_REDIRECT],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: 'openid profile email offline_access',
    first_party: true,
    client_secret: secrets.dpi,
  },
  {
    client_id: 'bench-mobile',
    client_name: 'Bench mobile',
    redirect_uris: [MOBILE_REDIRECT],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
    scope: 'openid profile email offline_access',
  },
];
const USERS: BenchUser[] = [1, 2, 3, 4].map((i) => ({
  username: `bench-user-${i}`,
  password: TEST_PASSWORD,
}));

interface Sample {
  at: number;
  wallClock: Date;
  machineBusy: number;
  serverCpu: number;
  dbCpu: Map<number, number> | undefined;
  loadCpu: NodeJS.CpuUsage;
  stats: ServerStats;
}

async function sample(server: ServerProcess): Promise<Sample> {
  const stats = await server.call({ type: 'stats' });
  return {
    at: performance.now(),
    wallClock: new Date(),
    machineBusy: machineBusySeconds(),
    serverCpu: processCpuSeconds(server.pid) ?? Number.NaN,
    dbCpu: kind === 'postgres' ? cpuByName('postgres') : undefined,
    loadCpu: process.cpuUsage(),
    stats,
  };
}

function passResult(
  mode: PassResult['mode'],
  loop: LoopResult,
  before: Sample,
  after: Sample,
  extra: { concurrency?: number; offeredRate?: number },
): PassResult {
  const ops = loop.completed;
  const serverCpuSeconds = after.serverCpu - before.serverCpu;
  const dbCpuSeconds = before.dbCpu && after.dbCpu ? cpuDelta(before.dbCpu, after.dbCpu) : undefined;
  const wall = (after.at - before.at) / 1000;
  const load = process.cpuUsage(before.loadCpu);
  const loadCpuSeconds = (load.user + load.system) / 1e6;
  const queries = diffSnapshots(before.stats.queries, after.stats.queries);
  const per = (n: number, digits = 2) => round(n / Math.max(1, ops), digits);
  return {
    mode,
    startedAt: before.wallClock.toISOString(),
    ...extra,
    completed: ops,
    errors: loop.errors,
    dropped: loop.dropped,
    ...(loop.firstError ? { firstError: loop.firstError } : {}),
    wallSeconds: round(loop.wallSeconds, 3),
    rps: round(ops / loop.wallSeconds, 1),
    serverCpuSeconds: round(serverCpuSeconds, 2),
    perCore: round(ops / serverCpuSeconds, 1),
    ...(dbCpuSeconds === undefined
      ? {}
      : {
          dbCpuSeconds: round(dbCpuSeconds, 2),
          perCoreWithDb: round(ops / (serverCpuSeconds + dbCpuSeconds), 1),
        }),
    loadGeneratorCpu: round(loadCpuSeconds / wall, 2),
    otherCpu: round(
      Math.max(
        0,
        after.machineBusy - before.machineBusy - serverCpuSeconds - loadCpuSeconds - (dbCpuSeconds ?? 0),
      ) / wall,
      2,
    ),
    latencyMs: {
      p50: round(percentile(loop.latencies, 0.5), 2),
      p95: round(percentile(loop.latencies, 0.95), 2),
      p99: round(percentile(loop.latencies, 0.99), 2),
      max: round(percentile(loop.latencies, 1), 2),
    },
    httpRequestsPerOp: per(after.stats.httpRequests - before.stats.httpRequests),
    statementsPerOp: per(queries.statements),
    writesPerOp: per(queries.writes),
    dbMsPerOp: per(queries.dbMs, 3),
    statementsByLabelPerOp: perOp(queries, ops),
    serverMemoryMiB: after.stats.memory,
    gcPauses: {
      count: after.stats.gc.count - before.stats.gc.count,
      totalMs: round(after.stats.gc.totalMs - before.stats.gc.totalMs, 1),
      maxMs: round(after.stats.gc.maxMs, 1),
    },
    stalls: loop.stalls,
  };
}

function log(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

function expectOk(response: { status: number; body: string }, what: string): void {
  if (response.status !== 200)
    throw new Error(`${what}: HTTP ${response.status} ${response.body.slice(0, 300)}`);
}

async function main(): Promise<void> {
  const machine = machineInfo();
  let database: TestDatabase | undefined;
  let databaseVersion = 'unknown';
  if (kind === 'postgres' && adminUrl) {
    database = await createTestDatabase('postgres', { admin: adminUrl, prefix: 'passerelle_bench' });
    const client = new pg.Client({ connectionString: adminUrl });
    await client.connect();
    try {
      databaseVersion = (await client.query<{ server_version: string }>('show server_version')).rows[0]
        ?.server_version as string;
    } finally {
      await client.end();
    }
    if (cpuByName('postgres').size === 0)
      log('PostgreSQL processes are not visible here: no +db CPU figures');
  } else {
    const pkg = resolve(import.meta.dirname, '../node_modules/@electric-sql/pglite/package.json');
    databaseVersion = `(@electric-sql/pglite ${JSON.parse(readFileSync(pkg, 'utf8')).version}, in memory, in-process)`;
  }

  // Whatever happens (failure, Ctrl-C), the server process stops and the bench database is dropped.
  let server: ServerProcess | undefined;
  let http: HttpTarget | undefined;
  const cleanup = async () => {
    http?.close();
    await server?.stop();
    await database?.drop();
  };
  const afterRun = async (results: BenchResults) => {
    if (database?.url) results.databaseActivity = await tableActivity(database.url);
  };
  const interrupted = () => {
    log('interrupted: stopping the server, dropping the database');
    cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    log(`starting the server on ${kind}…`);
    server = await ServerProcess.start(
      { BENCH_SERVER_DATABASE_URL: database?.url ?? '', BENCH_SERVER_POOL_SIZE: String(POOL_SIZE) },
      [
        ...serverNodeOptions,
        ...(flags.profile
          ? ['--cpu-prof', `--cpu-prof-dir=${resolve(import.meta.dirname, 'results/profiles')}`]
          : []),
      ],
    );
    http = new HttpTarget(server.issuer, Math.max(64, concurrency));
    await measureAll(server, http, machine, databaseVersion, afterRun);
  } finally {
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
    await cleanup();
  }
}

async function measureAll(
  server: ServerProcess,
  http: HttpTarget,
  machine: ReturnType<typeof machineInfo>,
  databaseVersion: string,
  afterRun: (results: BenchResults) => Promise<void>,
): Promise<void> {
  const scenarios: ScenarioResult[] = [];
  const writeTraces: WriteTrace[] = [];
  await server.call({ type: 'setup', clients: CLIENTS, users: USERS });
  const started = processMemory(server.pid);
  const dpi = await discover({ issuer: server.issuer }, 'bench-dpi', oidc.ClientSecretBasic(secrets.dpi));
  const mobile = await discover({ issuer: server.issuer }, 'bench-mobile', oidc.None());
  const metadata = dpi.serverMetadata();
  const tokenPath = new URL(metadata.token_endpoint ?? '').pathname;
  const introspectionPath = new URL(metadata.introspection_endpoint ?? '').pathname;

  /** identify → password → (consent) → code → token, as a browser and a relying party would. */
  const codeLogin = async (
    config: oidc.Configuration,
    redirect: string,
    user: BenchUser,
    consent: boolean,
  ) => {
    const agent = new BrowserAgent();
    const pending = await authorizationRequest(
      config,
      redirect,
      consent ? {} : { prompt: 'login', scope: 'openid profile email' },
    );
    const { callback } = await browserLogin(agent, pending.url, server.issuer, user);
    const tokens = await oidc.authorizationCodeGrant(config, callback, {
      pkceCodeVerifier: pending.verifier,
      expectedState: pending.state,
      expectedNonce: pending.nonce,
      idTokenExpected: true,
    });
    if (!tokens.access_token) throw new Error('no access token');
    return tokens;
  };
  const traced = async <T>(flow: string, run: () => Promise<T>): Promise<T> => {
    await server.call({ type: 'trace-start' });
    const value = await run();
    const statements = await server.call({ type: 'trace-stop' });
    writeTraces.push({ flow, statements, writes: statements.filter(isWrite).length });
    return value;
  };
  const firstUser = USERS[0] as BenchUser;

  // One traced login of each kind, on a quiet server: the exact statements of a login + code exchange.
  const dpiTokens = await traced('code login, first-party confidential client (no consent screen)', () =>
    codeLogin(dpi, DPI_REDIRECT, firstUser, false),
  );
  const mobileFirst = await traced('code login, public client with consent and offline_access', () =>
    codeLogin(mobile, MOBILE_REDIRECT, firstUser, true),
  );

  /** Runs warm-up, the closed-loop peak pass and, for token endpoints, the open-loop pass at 70 %. */
  const measure = async (
    name: ScenarioName,
    description: string,
    unit: ScenarioResult['unit'],
    closedOp: (worker: number) => Promise<void>,
    openOp: (() => Promise<void>) | undefined,
    workers: number,
  ): Promise<ScenarioResult> => {
    log(`${name}: warm-up ${settings.warmupSeconds}s`);
    const warm = await closedLoop(closedOp, {
      concurrency: workers,
      durationMs: settings.warmupSeconds * 1000,
      maxRequests: settings.maxRequestsPerPass,
    });
    if (warm.completed === 0) throw new Error(`${name}: every warm-up request failed: ${warm.firstError}`);
    log(`${name}: peak, closed loop, ${workers} concurrent, ${settings.durationSeconds}s`);
    let before = await sample(server);
    const peakLoop = await closedLoop(closedOp, {
      concurrency: workers,
      durationMs: settings.durationSeconds * 1000,
      maxRequests: settings.maxRequestsPerPass,
    });
    let after = await sample(server);
    const peak = passResult('peak', peakLoop, before, after, { concurrency: workers });
    const result: ScenarioResult = { name, description, unit, peak };
    if (openOp) {
      const rate = Math.max(1, Math.round(peak.rps * settings.lowLoadFraction));
      log(`${name}: open loop at ${rate}/s (70 % of peak), ${settings.lowLoadDurationSeconds}s`);
      before = await sample(server);
      const lowLoop = await openLoop(openOp, {
        rate,
        durationMs: settings.lowLoadDurationSeconds * 1000,
        maxInFlight: 1024,
      });
      after = await sample(server);
      result.load70 = passResult('load70', lowLoop, before, after, { offeredRate: rate });
    }
    result.rssAfterMiB = round(processMemory(server.pid)?.rssMiB ?? Number.NaN, 1);
    return result;
  };

  if (wanted('client_credentials')) {
    const authorization = basicAuthorization('bench-service', secrets.service);
    const op = async () =>
      expectOk(
        await http.post(tokenPath, 'grant_type=client_credentials', { authorization }),
        'client_credentials',
      );
    scenarios.push(
      await measure(
        'client_credentials',
        'POST /token grant_type=client_credentials, client_secret_basic, opaque access token',
        'request',
        op,
        op,
        concurrency,
      ),
    );
  }

  if (wanted('refresh_token')) {
    log(`refresh_token: ${settings.refreshChains} logins (consent, offline_access) to start the chains`);
    const chains: { token: string; previous?: string }[] = [];
    if (mobileFirst.refresh_token) chains.push({ token: mobileFirst.refresh_token });
    let next = 0;
    await Promise.all(
      USERS.map(async (user) => {
        while (next < settings.refreshChains - 1) {
          next++;
          const tokens = await codeLogin(mobile, MOBILE_REDIRECT, user, true);
          if (!tokens.refresh_token) throw new Error('no refresh token (offline_access)');
          chains.push({ token: tokens.refresh_token });
        }
      }),
    );
    const refresh = async (chain: { token: string; previous?: string }) => {
      const body = `grant_type=refresh_token&client_id=bench-mobile&refresh_token=${encodeURIComponent(chain.token)}`;
      const response = await http.post(tokenPath, body);
      expectOk(response, 'refresh_token');
      const rotated = (JSON.parse(response.body) as { refresh_token?: string }).refresh_token;
      if (!rotated || rotated === chain.token) throw new Error('refresh token was not rotated');
      chain.previous = chain.token;
      chain.token = rotated;
    };
    // Open loop: each scheduled request takes an idle chain (waiting, inside its latency, if none is).
    const idle = [...chains];
    const waiters: ((c: (typeof chains)[number]) => void)[] = [];
    const release = (chain: (typeof chains)[number]) => {
      const waiter = waiters.shift();
      if (waiter) waiter(chain);
      else idle.push(chain);
    };
    const openOp = async () => {
      const chain = idle.pop() ?? (await new Promise<(typeof chains)[number]>((r) => waiters.push(r)));
      try {
        await refresh(chain);
      } finally {
        release(chain);
      }
    };
    const result = await measure(
      'refresh_token',
      'POST /token grant_type=refresh_token, public client, rotation on every use (chains of dependent requests)',
      'request',
      (worker) => refresh(chains[worker % chains.length] as (typeof chains)[number]),
      openOp,
      Math.min(concurrency, chains.length),
    );
    // Reuse detection: replaying a rotated-out token is refused and revokes the whole grant.
    const victim = chains[0];
    if (victim?.previous) {
      const replay = await http.post(
        tokenPath,
        `grant_type=refresh_token&client_id=bench-mobile&refresh_token=${encodeURIComponent(victim.previous)}`,
      );
      const current = await http.post(
        tokenPath,
        `grant_type=refresh_token&client_id=bench-mobile&refresh_token=${encodeURIComponent(victim.token)}`,
      );
      result.notes = {
        chains: chains.length,
        reuseOfRotatedTokenRefused: replay.status === 400 && replay.body.includes('invalid_grant'),
        grantRevokedAfterReuse: current.status === 400 && current.body.includes('invalid_grant'),
      };
    }
    scenarios.push(result);
  }

  if (wanted('introspection')) {
    const authorization = basicAuthorization('bench-dpi', secrets.dpi);
    const body = `token=${encodeURIComponent(dpiTokens.access_token)}&token_type_hint=access_token`;
    const op = async () => {
      const response = await http.post(introspectionPath, body, { authorization });
      expectOk(response, 'introspection');
      if (!response.body.includes('"active":true')) throw new Error(`token not active: ${response.body}`);
    };
    scenarios.push(
      await measure(
        'introspection',
        'POST /token/introspection of a valid opaque access token, client_secret_basic',
        'request',
        op,
        op,
        concurrency,
      ),
    );
  }

  if (wanted('code_login')) {
    scenarios.push(
      await measure(
        'code_login',
        'GET /auth → identify → password (argon2id) → code → POST /token (PKCE, client_secret_basic), first-party client, fresh browser each time',
        'login',
        (worker) =>
          codeLogin(dpi, DPI_REDIRECT, USERS[worker % USERS.length] as BenchUser, false).then(() => {}),
        undefined,
        settings.loginConcurrency,
      ),
    );
  }

  const memory = processMemory(server.pid);
  const results: BenchResults = {
    date: new Date().toISOString(),
    machine: { ...machine },
    database: { kind, version: databaseVersion },
    server: {
      issuer: server.issuer,
      demo: 'off',
      logLevel: 'warn',
      databasePoolSize: kind === 'postgres' ? POOL_SIZE : 'n/a (one embedded connection)',
      nodeOptions: serverNodeOptions.join(' ') || 'none',
      passerelleCommit: gitDescribe(),
    },
    settings,
    scenarios,
    memory: memory && {
      afterStartMiB: round(started?.rssMiB ?? Number.NaN, 1),
      peakDuringStartMiB: round(started?.peakRssMiB ?? Number.NaN, 1),
      rssMiB: round(memory.rssMiB, 1),
      peakRssMiB: round(memory.peakRssMiB, 1),
    },
    writeTraces,
    targets: [],
    serverWarnings: await server.call({ type: 'logs' }),
  };
  results.targets = checkTargets(results);
  await afterRun(results);
  process.stdout.write(`${render(results)}\n`);
  saveResults(results);
}

/** PostgreSQL's own counters for the bench database: rows written and background maintenance. */
async function tableActivity(url: string): Promise<Record<string, unknown>[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query(
      `select relname as table, n_tup_ins as inserted, n_tup_upd as updated, n_tup_del as deleted,
              n_live_tup as live, n_dead_tup as dead, autovacuum_count, autoanalyze_count,
              last_autovacuum, last_autoanalyze
         from pg_stat_user_tables where n_tup_ins + n_tup_upd + n_tup_del > 0 order by relname`,
    );
    return rows;
  } finally {
    await client.end();
  }
}

function gitDescribe(): string {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src', 'migrations'], {
      encoding: 'utf8',
    }).trim();
    return dirty ? `${commit} + uncommitted changes in src/` : commit;
  } catch {
    return 'unknown';
  }
}

function saveResults(results: BenchResults): void {
  const dir = resolve(import.meta.dirname, 'results');
  mkdirSync(dir, { recursive: true });
  const file = resolve(dir, `${results.date.replace(/[:.]/g, '-')}-${results.database.kind}.json`);
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`\nresults: ${file}\n`);
  if (flags['save-reference']) {
    const reference = resolve(dir, 'reference.json');
    const existing = existsSync(reference)
      ? (JSON.parse(readFileSync(reference, 'utf8')) as Record<string, unknown>)
      : {};
    existing[results.database.kind] = results;
    writeFileSync(reference, `${JSON.stringify(existing, null, 2)}\n`);
    process.stdout.write(`reference updated: ${reference} (${results.database.kind})\n`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`[bench] failed: ${(err as Error)?.stack ?? err}\n`);
  process.exitCode = 1;
});
