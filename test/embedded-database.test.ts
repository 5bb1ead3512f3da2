import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { connectDatabase } from '../src/db/connect.ts';
import { cleanEnv, REPO_ROOT, runCli } from './helpers/cli.ts';
import { freePort } from './helpers/net.ts';
import { startTestServer } from './helpers/server.ts';

// One process at a time owns an embedded (PGlite) data directory: PGlite itself has no guard, and two
// instances on one directory lose writes (and may corrupt it). PGlite only: PostgreSQL has its own server.

const REDIRECT = 'https://x.example/cb';

/** The directory of a fresh embedded database, removed after the file. */
function freshDataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'passerelle-embedded-'));
  dirs.push(dir);
  return dir;
}
const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** Environment of a `passerelle` process on `dataDir`, outside demo mode. */
function envFor(dataDir: string, encryptionKey: string, port = 3999): Record<string, string> {
  return cleanEnv({
    PASSERELLE_DATABASE__DATA_DIR: dataDir,
    PASSERELLE_ISSUER: `http://127.0.0.1:${port}`,
    PORT: String(port),
    PASSERELLE_HTTP__HOST: '127.0.0.1',
    PASSERELLE_KEYS__ENCRYPTION_KEY: encryptionKey,
  });
}

interface Started {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/** `passerelle serve` in a child process; resolves once it serves, or once it has exited. */
async function serve(env: Record<string, string>, deadlineMs = 60_000): Promise<Started> {
  const child = spawn(process.execPath, ['src/cli/main.ts', 'serve'], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  const serving = new Promise<void>((done) => {
    const onData = (chunk: string) => {
      output += chunk;
      if (output.includes('Passerelle is serving')) done();
    };
    child.stdout?.setEncoding('utf8').on('data', onData);
    child.stderr?.setEncoding('utf8').on('data', onData);
  });
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((_, fail) => {
    timer = setTimeout(
      () => fail(new Error(`serve: neither serving nor exited after ${deadlineMs} ms`)),
      deadlineMs,
    );
  });
  try {
    await Promise.race([serving, exited, late]);
  } finally {
    clearTimeout(timer);
  }
  return { child, output: () => output, exited };
}

describe('one process owns an embedded (PGlite) data directory', { timeout: 120_000 }, () => {
  it('a command run while the server runs is refused at once, names the directory and writes nothing', async () => {
    const dataDir = freshDataDir();
    const server = await startTestServer('pglite', {
      database: { url: undefined, dataDir, drop: async () => {} },
    });
    const encryptionKey = server.config.keys.encryptionKey ?? '';
    try {
      const added = await runCli(['clients', 'add', 'x', '--redirect-uri', REDIRECT], {
        env: envFor(dataDir, encryptionKey),
      });
      expect(added.code, added.stdout + added.stderr).toBe(75);
      expect(added.stdout).toBe('');
      expect(added.stderr).toContain(resolve(dataDir));
      expect(added.stderr).toMatch(/in use by a running Passerelle server/);
      expect(added.stderr).not.toMatch(/\n\s+at /);
    } finally {
      await server.close();
    }
    const reopened = await connectDatabase({ database: { url: undefined, dataDir, poolSize: 1 } });
    try {
      const client = await reopened.db
        .selectFrom('oidc_client')
        .select('client_id')
        .where('client_id', '=', 'x')
        .executeTakeFirst();
      expect(client).toBeUndefined();
    } finally {
      await reopened.close();
    }
  });

  it('a second server on the directory fails at once with a clear message; kill -9 of the first frees it', async () => {
    const dataDir = freshDataDir();
    const encryptionKey = randomBytes(32).toString('base64');
    const first = await serve(envFor(dataDir, encryptionKey, await freePort()));
    try {
      expect(first.output()).toContain('Passerelle is serving');
      const second = await serve(envFor(dataDir, encryptionKey, await freePort()), 20_000);
      if (second.child.exitCode === null) second.child.kill('SIGKILL');
      const code = await second.exited;
      expect(code, second.output()).toBe(75);
      expect(second.output()).toContain(resolve(dataDir));
      expect(second.output()).toMatch(/in use by a running Passerelle server/);
      expect(second.output()).not.toContain('Passerelle is serving');
      expect(second.output()).not.toMatch(/\n\s+at /);
    } finally {
      first.child.kill('SIGKILL');
      await first.exited;
    }
    // The kernel released the lock with the killed process: the next start works.
    const next = await startTestServer('pglite', {
      database: { url: undefined, dataDir, drop: async () => {} },
      config: { keys: { encryptionKey, reloadIntervalSeconds: 1 } },
    });
    try {
      const ready = await fetch(new URL('/readyz', next.issuer));
      expect(ready.status).toBe(200);
    } finally {
      await next.close();
    }
  });
});
