import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const REPO_ROOT = resolve(import.meta.dirname, '../..');
const MAIN = resolve(REPO_ROOT, 'src/cli/main.ts');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The environment of the test process without any Passerelle setting (PASSERELLE_*, and the
 * DATABASE_URL / PORT aliases), so that a developer's own variables cannot leak into a CLI run.
 */
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value === undefined) continue;
    if (name.startsWith('PASSERELLE_') || name === 'DATABASE_URL' || name === 'PORT') continue;
    env[name] = value;
  }
  return { ...env, ...extra };
}

/**
 * Options of a `describe` whose tests run up to `commands` commands one after the other: a timeout in
 * proportion (each command takes seconds on an idle machine, a minute or more on a loaded one).
 */
export function forCommands(commands: number): { timeout: number } {
  return { timeout: commands * 120_000 };
}

/**
 * Runs `node src/cli/main.ts ...args` with the Node running the tests (Node 24, type stripping),
 * from the repository root. `input` is written to standard input, which is then closed.
 */
export function runCli(
  args: string[],
  options: { env: Record<string, string>; input?: string; timeoutMs?: number },
): Promise<CliResult> {
  // A hung command, not a slow one: one command took 50 s on a machine at load 20 (2 cores).
  const timeoutMs = options.timeoutMs ?? 240_000;
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [MAIN, ...args], {
      cwd: REPO_ROOT,
      env: options.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(new Error(`passerelle ${args.join(' ')}: no exit after ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      fail(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
    // A command that exits without reading its input (--help, a refused configuration) closes the pipe.
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
  });
}

/** The `passerelle` command on a fresh embedded (PGlite) data directory, outside demo mode. */
export function embeddedCli(prefix: string) {
  const dataDir = mkdtempSync(join(tmpdir(), prefix));
  const env = cleanEnv({
    PASSERELLE_DATABASE__DATA_DIR: dataDir,
    PASSERELLE_ISSUER: 'http://127.0.0.1:3999',
    PASSERELLE_KEYS__ENCRYPTION_KEY: randomBytes(32).toString('base64'),
  });
  return {
    dataDir,
    env,
    cli: (args: string[], input?: string) => runCli(args, { env, input }),
    remove: () => rmSync(dataDir, { recursive: true, force: true }),
  };
}
