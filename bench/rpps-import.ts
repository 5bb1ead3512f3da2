/**
 * `npm run bench:rpps-import`: import of a generated open-data extract (PS_LibreAcces_Personne_activite,
 * 2.2 million rows by default) into the local RPPS index, as `passerelle rpps import` does it.
 *
 *   npm run bench:rpps-import -- [--database pglite|postgres] [--rows 2200000] [--imports 2]
 *                                [--batch-size N] [--file <extract>]
 *
 * The extract is generated once in a child process (its memory is not counted) under the system's temporary
 * directory and reused by later runs. PGlite runs on a fresh data directory on disk (as in production, not in
 * memory); PostgreSQL when BENCH_DATABASE_URL is set (a fresh database, dropped afterwards). Each import
 * after the first replaces the previous generation. Measured per import: wall time, rows per second, CPU of
 * this process (and of the local PostgreSQL processes), peak RSS sampled every 50 ms; VmHWM at the end.
 * Writes bench/results/<date>-rpps-import-<database>.json.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { sql } from 'kysely';
import { connectDatabase } from '../src/db/connect.ts';
import { migrateToLatest } from '../src/db/migrate.ts';
import { DEFAULT_BATCH_SIZE, importOpenDataFile } from '../src/rpps/open-data.ts';
import { cleanEnv } from '../test/helpers/cli.ts';
import { createTestDatabase, type TestDatabase } from '../test/helpers/databases.ts';
import { cpuByName, cpuDelta, machineInfo, processMemory } from './proc.ts';
import { round } from './report.ts';

const TARGET_SECONDS = 60;
const TARGET_RSS_MIB = 300;

const { values: flags } = parseArgs({
  options: {
    database: { type: 'string' },
    rows: { type: 'string' },
    imports: { type: 'string' },
    'batch-size': { type: 'string' },
    file: { type: 'string' },
  },
});
const rows = Number(flags.rows ?? 2_200_000);
const imports = Number(flags.imports ?? 2);
const batchSize = Number(flags['batch-size'] ?? DEFAULT_BATCH_SIZE);
const adminUrl = process.env.BENCH_DATABASE_URL || undefined;
const kind = flags.database ?? (adminUrl ? 'postgres' : 'pglite');
if ((kind !== 'pglite' && kind !== 'postgres') || (kind === 'postgres' && !adminUrl)) {
  throw new Error('--database: pglite, or postgres with BENCH_DATABASE_URL');
}

function log(message: string): void {
  process.stderr.write(`[bench:rpps-import] ${message}\n`);
}

const mib = (bytes: number) => bytes / 2 ** 20;

/** The extract to import: given, or generated once (in a child process) and kept for later runs. */
function extract(): { path: string; bytes: number } {
  if (flags.file) return { path: flags.file, bytes: statSync(flags.file).size };
  const dir = join(tmpdir(), 'passerelle-bench-rpps');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `PS_LibreAcces_Personne_activite_${rows}.txt`);
  const done = `${path}.done`;
  if (!existsSync(done)) {
    log(`generating ${rows} rows in ${path}…`);
    // About 1.3 rows per generated professional: the count is an upper bound, the rows a limit.
    const generator = resolve(import.meta.dirname, '../test/simulators/annuaire/open-data-file.ts');
    const output = execFileSync(
      process.execPath,
      [generator, path, '--count', String(Math.ceil(rows / 1.1)), '--rows', String(rows)],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
    );
    writeFileSync(done, output);
  }
  return { path, bytes: statSync(path).size };
}

interface ImportRun {
  generation: number;
  lines: number;
  persons: number;
  malformed: number;
  wallSeconds: number;
  rowsPerSecond: number;
  cpuSeconds: number;
  postgresCpuSeconds?: number;
  peakRssMiB: number;
}

async function main(): Promise<void> {
  const file = extract();
  let database: TestDatabase | undefined;
  let dataDir: string | undefined;
  if (kind === 'postgres')
    database = await createTestDatabase('postgres', { admin: adminUrl, prefix: 'passerelle_bench' });
  else {
    // Created and migrated by `passerelle migrate` in a child process: PGlite's initdb, which runs when a data
    // directory is new, does not count in this process's peak (in production the directory exists).
    dataDir = mkdtempSync(join(tmpdir(), 'passerelle-bench-pglite-'));
    execFileSync(process.execPath, [resolve(import.meta.dirname, '../src/cli/main.ts'), 'migrate'], {
      env: cleanEnv({
        PASSERELLE_DATABASE__DATA_DIR: dataDir,
        PASSERELLE_ISSUER: 'http://127.0.0.1:3999',
        PASSERELLE_KEYS__ENCRYPTION_KEY: randomBytes(32).toString('base64'),
      }),
      stdio: 'ignore',
    });
  }
  const handle = await connectDatabase({
    database: { url: database?.url, dataDir: dataDir ?? 'memory://', poolSize: 4 },
  });
  const cleanup = async () => {
    await handle.close();
    await database?.drop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  };
  const interrupted = () => {
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    await migrateToLatest(handle.db);
    const version = await sql<{ server_version: string }>`show server_version`.execute(handle.db);
    const baselineRssMiB = mib(process.memoryUsage.rss());
    log(`${kind}: baseline RSS ${baselineRssMiB.toFixed(0)} MiB after opening and migrating`);

    const runs: ImportRun[] = [];
    for (let i = 0; i < imports; i++) {
      let peak = process.memoryUsage.rss();
      const sampler = setInterval(() => {
        peak = Math.max(peak, process.memoryUsage.rss());
      }, 50);
      const cpuBefore = process.cpuUsage();
      const postgresBefore = kind === 'postgres' ? cpuByName('postgres') : undefined;
      const started = performance.now();
      const outcome = await importOpenDataFile(handle.db, file.path, {
        batchSize,
        onProgress: () => {
          peak = Math.max(peak, process.memoryUsage.rss());
        },
      });
      const wallSeconds = (performance.now() - started) / 1000;
      clearInterval(sampler);
      if (outcome.kind !== 'imported') throw new Error(`import refused: ${outcome.reason}`);
      const cpu = process.cpuUsage(cpuBefore);
      const s = outcome.summary;
      const run: ImportRun = {
        generation: s.generation,
        lines: s.lines,
        persons: s.persons,
        malformed: s.malformed,
        wallSeconds: round(wallSeconds, 2),
        rowsPerSecond: Math.round(s.rows / wallSeconds),
        cpuSeconds: round((cpu.user + cpu.system) / 1e6, 2),
        postgresCpuSeconds: postgresBefore
          ? round(cpuDelta(postgresBefore, cpuByName('postgres')), 2)
          : undefined,
        peakRssMiB: round(mib(peak)),
      };
      runs.push(run);
      log(`import ${i + 1}: ${JSON.stringify(run)}`);
    }
    const vmHwmMiB = round(processMemory(process.pid)?.peakRssMiB ?? Number.NaN);
    const date = new Date().toISOString();
    const slowest = Math.max(...runs.map((r) => r.wallSeconds));
    const highest = Math.max(...runs.map((r) => r.peakRssMiB));
    const output = {
      date,
      database: { kind, version: version.rows[0]?.server_version },
      machine: machineInfo(),
      settings: { rows, imports, batchSize, file: file.path, fileMiB: round(mib(file.bytes)) },
      baselineRssMiB: round(baselineRssMiB),
      vmHwmMiB,
      runs,
      targets: [
        {
          target: `${rows} rows in under ${TARGET_SECONDS} s`,
          measured: `${slowest} s (slowest import)`,
          verdict: slowest < TARGET_SECONDS ? 'meets' : 'below',
        },
        {
          target: `under ${TARGET_RSS_MIB} MiB RSS`,
          measured: `${highest} MiB sampled peak, ${vmHwmMiB} MiB VmHWM, ${round(baselineRssMiB)} MiB before the first import`,
          verdict: vmHwmMiB < TARGET_RSS_MIB ? 'meets' : 'below',
        },
      ],
    };
    process.stdout.write(
      `RPPS open-data import — ${date} — ${kind} ${output.database.version}, ${rows} rows ` +
        `(${output.settings.fileMiB} MiB), batches of ${batchSize}\n\n` +
        'import   wall s   rows/s   cpu s   postgres cpu s   peak RSS MiB   persons\n' +
        runs
          .map(
            (r, i) =>
              `${String(i + 1).padEnd(9)}${String(r.wallSeconds).padEnd(9)}${String(r.rowsPerSecond).padEnd(9)}` +
              `${String(r.cpuSeconds).padEnd(8)}${String(r.postgresCpuSeconds ?? '-').padEnd(17)}` +
              `${String(r.peakRssMiB).padEnd(15)}${r.persons}`,
          )
          .join('\n') +
        `\n\nRSS before the first import ${round(baselineRssMiB)} MiB, VmHWM ${vmHwmMiB} MiB\n` +
        output.targets.map((t) => `target ${t.target}: ${t.measured} — ${t.verdict}`).join('\n') +
        '\n',
    );
    const dir = resolve(import.meta.dirname, 'results');
    mkdirSync(dir, { recursive: true });
    const path = resolve(dir, `${date.replace(/[:.]/g, '-')}-rpps-import-${kind}.json`);
    writeFileSync(path, `${JSON.stringify(output, null, 2)}\n`);
    process.stdout.write(`\nresults: ${path}\n`);
  } finally {
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
    await cleanup();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`[bench:rpps-import] failed: ${(err as Error)?.stack ?? err}\n`);
  process.exitCode = 1;
});
