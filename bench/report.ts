/** Result shapes, the targets they are compared with, and the readable table. Nothing here fails a run. */
import type { QuerySnapshot } from './queries.ts';

export interface Latency {
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export interface PassResult {
  mode: 'peak' | 'load70';
  startedAt: string;
  /** Closed loop: outstanding requests. */
  concurrency?: number;
  /** Open loop: offered requests per second. */
  offeredRate?: number;
  completed: number;
  errors: number;
  dropped: number;
  firstError?: string;
  wallSeconds: number;
  /** Completed operations per wall-clock second. */
  rps: number;
  /** user+system CPU seconds of the server process during the pass. */
  serverCpuSeconds: number;
  /** Completed operations per server CPU second: throughput per core. */
  perCore: number;
  /** PostgreSQL processes' CPU seconds during the pass (PostgreSQL only). */
  dbCpuSeconds?: number;
  /** Completed operations per (server + PostgreSQL) CPU second. */
  perCoreWithDb?: number;
  /** Share of one core used by the load generator (near 100 % means it may be the bottleneck). */
  loadGeneratorCpu: number;
  /** Cores used by everything else on the machine (other programs disturb the figures when high). */
  otherCpu: number;
  latencyMs: Latency;
  /** Per completed operation. */
  httpRequestsPerOp: number;
  statementsPerOp: number;
  writesPerOp: number;
  dbMsPerOp: number;
  statementsByLabelPerOp: Record<string, number>;
  /** process.memoryUsage() of the server at the end of the pass, MiB. */
  serverMemoryMiB: Record<string, number>;
  /** Garbage-collection pauses of the server during the pass. */
  gcPauses: { count: number; totalMs: number; maxMs: number };
  /** The worst 100 ms windows (by send time, seconds into the pass) with a request slower than 50 ms. */
  stalls: { atSeconds: number; slowestMs: number; requests: number }[];
}

export interface ScenarioResult {
  name: string;
  description: string;
  unit: 'request' | 'login';
  peak: PassResult;
  load70?: PassResult;
  rssAfterMiB?: number;
  notes?: Record<string, unknown>;
}

export interface WriteTrace {
  flow: string;
  statements: string[];
  writes: number;
}

export interface TargetCheck {
  target: string;
  measured: string;
  /** Informational only: the benchmark never fails on a target. */
  verdict: 'meets' | 'below' | 'n/a';
}

export interface BenchResults {
  date: string;
  machine: Record<string, unknown>;
  database: { kind: 'pglite' | 'postgres'; version: string };
  server: Record<string, unknown>;
  settings: Record<string, unknown>;
  scenarios: ScenarioResult[];
  /**
   * Server process RSS, MiB: once started (clients and users created) and the peak until then (VmHWM),
   * at the end of the run and the peak over the whole run.
   */
  memory:
    | { afterStartMiB: number; peakDuringStartMiB: number; rssMiB: number; peakRssMiB: number }
    | undefined;
  writeTraces: WriteTrace[];
  targets: TargetCheck[];
  serverWarnings: string[];
  /** PostgreSQL only: pg_stat_user_tables of the bench database at the end (writes, autovacuum). */
  databaseActivity?: Record<string, unknown>[];
}

export function perOp(snapshot: QuerySnapshot, ops: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, n] of Object.entries(snapshot.byLabel).sort((a, b) => b[1] - a[1])) {
    out[name] = round(n / Math.max(1, ops), 2);
  }
  return out;
}

export function round(value: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

const fmt = (n: number | undefined, digits = 0) =>
  n === undefined || Number.isNaN(n)
    ? '–'
    : n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

function scenario(results: BenchResults, name: string): ScenarioResult | undefined {
  return results.scenarios.find((s) => s.name === name);
}

/** Compares the figures with the targets of the specification. */
export function checkTargets(results: BenchResults): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const pg = results.database.kind === 'postgres';
  const perCore = (s: ScenarioResult | undefined, goal: number, label: string) => {
    if (!s) return;
    const p = s.peak;
    const withDb =
      p.perCoreWithDb === undefined ? '' : `; ${fmt(p.perCoreWithDb)}/s per core of node+PostgreSQL`;
    checks.push({
      target: `${label} ≥ ${fmt(goal)}/s/vCPU (keep-alive)`,
      measured: `${fmt(p.perCore)}/s per server core${withDb}; ${fmt(p.rps)}/s wall`,
      verdict: p.perCore >= goal ? 'meets' : 'below',
    });
  };
  perCore(scenario(results, 'client_credentials'), 1200, 'client_credentials');
  perCore(scenario(results, 'refresh_token'), 1200, 'refresh_token rotation (public client)');

  const intro = scenario(results, 'introspection');
  if (intro) {
    const p = intro.peak;
    const estimate = 2 * (p.perCoreWithDb ?? p.perCore);
    checks.push({
      target: 'introspection ≥ 5,000 rps on 2 vCPU, PostgreSQL-backed',
      measured:
        `${fmt(p.rps)} rps wall (1 server process, DB and load generator on the same ${results.machine.nproc} vCPU); ` +
        `2-vCPU capacity ≈ 2 × ${fmt(p.perCoreWithDb ?? p.perCore)} = ${fmt(estimate)} rps`,
      verdict: pg ? (estimate >= 5000 ? 'meets' : 'below') : 'n/a',
    });
  }

  for (const name of ['client_credentials', 'refresh_token']) {
    const low = scenario(results, name)?.load70;
    if (!low) continue;
    checks.push({
      target: `token endpoint (${name}) p99 ≤ 20 ms at 70 % of peak`,
      measured: `p99 ${fmt(low.latencyMs.p99, 1)} ms at ${fmt(low.offeredRate)}/s`,
      verdict: low.latencyMs.p99 <= 20 ? 'meets' : 'below',
    });
  }

  const login = scenario(results, 'code_login');
  if (login) {
    checks.push({
      target: 'full authorization-code login (password, argon2id): logins/s per core (no threshold)',
      measured: `${fmt(login.peak.perCore, 1)} logins/s per server core; ${fmt(login.peak.rps, 1)}/s wall; p99 ${fmt(login.peak.latencyMs.p99)} ms`,
      verdict: 'n/a',
    });
  }

  if (results.memory) {
    checks.push({
      target: 'server memory ≤ 150 MB RSS',
      measured:
        `peak ${fmt(results.memory.peakRssMiB)} MiB (${fmt(results.memory.peakDuringStartMiB)} MiB during start-up), ` +
        `${fmt(results.memory.afterStartMiB)} MiB once started, ` +
        `${fmt(results.memory.rssMiB)} MiB at the end${pg ? '' : ' (includes the in-memory PGlite database)'}`,
      verdict: results.memory.peakRssMiB * 1.048576 <= 150 ? 'meets' : 'below',
    });
  }

  const trace = results.writeTraces[0];
  if (trace) {
    const average = login?.peak.writesPerOp;
    checks.push({
      target: 'database writes per code login (login + code exchange) ≤ 10',
      measured: `${trace.writes} (${trace.flow})${average === undefined ? '' : `; ${fmt(average, 1)} on average under load`}`,
      verdict: trace.writes <= 10 ? 'meets' : 'below',
    });
  }
  return checks;
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  const line = (r: string[]) =>
    r.map((cell, i) => (i < 2 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join('  ');
  const [head, ...body] = rows;
  return [line(head ?? []), widths.map((w) => '─'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

export function render(results: BenchResults): string {
  const out: string[] = [];
  const m = results.machine;
  out.push(
    `Passerelle benchmark — ${results.date}`,
    `machine: ${m.nproc} vCPU ${m.cpuModel}, ${m.memoryGiB} GiB, node ${m.node}, load average at start ${m.loadAverageAtStart}`,
    `database: ${results.database.kind} ${results.database.version}`,
    `server: one Node process (one core budget), ${Object.entries(results.server)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
    `settings: ${Object.entries(results.settings)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')}`,
    '',
  );
  const rows: string[][] = [
    [
      'scenario',
      'pass',
      'ops',
      'err',
      'ops/s wall',
      'srv CPU',
      'ops/s/core',
      '+db /core',
      'p50 ms',
      'p95 ms',
      'p99 ms',
      'SQL/op',
      'writes/op',
      'loadgen',
      'other',
    ],
  ];
  for (const s of results.scenarios) {
    for (const p of [s.peak, s.load70]) {
      if (!p) continue;
      const digits = s.unit === 'login' ? 1 : 0;
      rows.push([
        p === s.peak ? s.name : '',
        p.mode === 'peak' ? `peak c=${p.concurrency}` : `70% @${fmt(p.offeredRate)}/s`,
        fmt(p.completed),
        fmt(p.errors + p.dropped),
        fmt(p.rps, digits),
        `${fmt((p.serverCpuSeconds / p.wallSeconds) * 100)}%`,
        fmt(p.perCore, digits),
        fmt(p.perCoreWithDb, digits),
        fmt(p.latencyMs.p50, 1),
        fmt(p.latencyMs.p95, 1),
        fmt(p.latencyMs.p99, 1),
        fmt(p.statementsPerOp, 1),
        fmt(p.writesPerOp, 1),
        `${fmt(p.loadGeneratorCpu * 100)}%`,
        `${fmt(p.otherCpu * 100)}%`,
      ]);
    }
  }
  out.push(table(rows), '');
  const disturbed = results.scenarios.flatMap((s) =>
    [s.peak, s.load70].filter((p) => p && p.otherCpu > 0.25).map((p) => `${s.name} ${p?.mode}`),
  );
  if (disturbed.length) {
    out.push(
      `WARNING: other processes used more than a quarter of a core during ${disturbed.join(', ')}:`,
      'those figures are disturbed (latency most of all); rerun on a quiet machine.',
      '',
    );
  }
  out.push(
    'ops/s/core = completed operations / server process CPU seconds (user+system, /proc/<pid>/stat);',
    '+db /core also counts the PostgreSQL processes; loadgen = CPU share of the load generator process;',
    'other = CPU used by any other process on the machine during the pass (high values disturb the figures).',
    '',
  );
  for (const s of results.scenarios) {
    if (s.notes && Object.keys(s.notes).length) out.push(`${s.name}: ${JSON.stringify(s.notes)}`);
  }
  for (const trace of results.writeTraces) {
    out.push(`statements of one ${trace.flow} (${trace.writes} writes):`);
    out.push(`  ${trace.statements.join(', ')}`);
  }
  out.push('', 'targets (informational, never asserted):');
  for (const c of results.targets) {
    const mark = c.verdict === 'meets' ? 'ok   ' : c.verdict === 'below' ? 'BELOW' : '  -  ';
    out.push(`  [${mark}] ${c.target}`, `          measured: ${c.measured}`);
  }
  if (results.serverWarnings.length) {
    out.push('', `server warnings/errors logged (${results.serverWarnings.length}, first shown):`);
    out.push(`  ${results.serverWarnings[0]?.slice(0, 400)}`);
  }
  return out.join('\n');
}
