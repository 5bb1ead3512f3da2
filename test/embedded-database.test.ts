import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { chainRows } from '../src/audit/chain.ts';
import { listCheckpoints } from '../src/audit/checkpoints.ts';
import { installationKeyring } from '../src/audit/keyring.ts';
import { verifyChain } from '../src/audit/verify.ts';
import { connectDatabase, type DatabaseHandle } from '../src/db/connect.ts';
import { PGliteDialect } from '../src/db/pglite-dialect.ts';
import { RelayDialect } from '../src/db/relay-dialect.ts';
import { startRelay } from '../src/db/relay-server.ts';
import { cleanEnv, forCommands, REPO_ROOT, runCli } from './helpers/cli.ts';
import { AddressInUseError, withPorts } from './helpers/net.ts';
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
async function serve(env: Record<string, string>, deadlineMs: number): Promise<Started> {
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

/** An embedded database with one table, owned by this process as a server owns it. */
async function ownedDatabase(dataDir: string) {
  const owner = await connectDatabase(
    { database: { url: undefined, dataDir, poolSize: 1 } },
    { owner: true },
  );
  await sql`create table t (n int primary key)`.execute(owner.db);
  return owner;
}

const count = async (handle: DatabaseHandle) =>
  Number((await sql<{ n: number }>`select count(*)::int as n from t`.execute(handle.db)).rows[0]?.n);

// Generous deadlines: a first start on a new directory (initdb, migrations) takes a minute on a loaded machine.
// Two server starts and a command in one test: forCommands(3).
describe('the command line beside a server on an embedded (PGlite) data directory', forCommands(3), () => {
  // One directory, created by the first test's server and started again by the second's (no second initdb).
  const dataDir = freshDataDir();
  const encryptionKey = randomBytes(32).toString('base64');

  it('a command run while the server runs writes through it: seen at once, kept after the stop, chain verified', async () => {
    const server = await startTestServer('pglite', {
      database: { url: undefined, dataDir, drop: async () => {} },
      config: { keys: { encryptionKey, reloadIntervalSeconds: 1 } },
    });
    try {
      const added = await runCli(['clients', 'add', 'x', '--redirect-uri', REDIRECT], {
        env: envFor(dataDir, encryptionKey),
      });
      expect(added.code, added.stdout + added.stderr).toBe(0);
      expect(added.stdout).toContain('client x registered');

      // The running server knows the client at once: its authorization endpoint takes it.
      const auth = new URL('/auth', server.issuer);
      auth.search = new URLSearchParams({
        client_id: 'x',
        response_type: 'code',
        scope: 'openid',
        redirect_uri: REDIRECT,
        code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
        code_challenge_method: 'S256',
      }).toString();
      const answer = await fetch(auth, { redirect: 'manual' });
      expect(answer.status, await answer.text()).toBe(303);
      expect(answer.headers.get('location')).toMatch(/^\/interaction\//);
    } finally {
      await server.close();
    }

    const reopened = await connectDatabase({ database: { url: undefined, dataDir, poolSize: 1 } });
    try {
      expect(reopened.location).toBe(`pglite:${dataDir}`);
      const db = reopened.db;
      const client = await db
        .selectFrom('oidc_client')
        .select('client_id')
        .where('client_id', '=', 'x')
        .executeTakeFirst();
      expect(client?.client_id).toBe('x');
      const record = await db
        .selectFrom('audit_event')
        .select(['type', 'detail'])
        .where('client_id', '=', 'x')
        .executeTakeFirst();
      expect(record?.type).toBe('admin.client.added');
      expect(record?.detail).toMatchObject({ via: 'cli' });
      const verified = await verifyChain(
        chainRows(db),
        await listCheckpoints(db),
        await installationKeyring(db),
      );
      expect(verified.kind, JSON.stringify(verified)).toBe('ok');
    } finally {
      await reopened.close();
    }
  });

  it('a second server on the directory fails at once with a clear message; kill -9 of the first frees it', async () => {
    const { first, port } = await withPorts(1, async ([port = 0]) => {
      const first = await serve(envFor(dataDir, encryptionKey, port), 180_000);
      if (first.child.exitCode !== null && /EADDRINUSE/.test(first.output())) throw new AddressInUseError();
      return { first, port };
    });
    try {
      expect(first.output()).toContain('Passerelle is serving');
      // The same port: the second must stop at the directory's lock, before it would listen.
      const second = await serve(envFor(dataDir, encryptionKey, port), 120_000);
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
    // The kernel released the lock with the killed process (its relay socket is left behind): the next start works.
    expect(existsSync(join(dataDir, 'passerelle.sock'))).toBe(true);
    const next = await startTestServer('pglite', {
      database: { url: undefined, dataDir, drop: async () => {} },
      config: { keys: { encryptionKey, reloadIntervalSeconds: 1 } },
    });
    try {
      const ready = await fetch(new URL('/readyz', next.issuer));
      expect(ready.status).toBe(200);
      // Its relay took the dead one's place.
      const shared = await connectDatabase({ database: { url: undefined, dataDir, poolSize: 1 } });
      expect(shared.location).toContain('through the running server');
      await shared.close();
    } finally {
      await next.close();
    }
  });
});

describe('the relay of an embedded database', () => {
  it('serialises a relayed transaction with the owner: the owner waits, then sees it whole', async () => {
    const dataDir = freshDataDir();
    const owner = await ownedDatabase(dataDir);
    const shared = await connectDatabase({ database: { url: undefined, dataDir, poolSize: 1 } });
    try {
      expect(shared.location).toBe(`pglite:${dataDir} (through the running server)`);
      expect((statSync(join(dataDir, 'passerelle.sock')).mode & 0o777).toString(8)).toBe('600');
      let ownerSaw: number | undefined;
      let ownerCount: Promise<number> | undefined;
      await shared.db.transaction().execute(async (trx) => {
        await sql`insert into t values (1)`.execute(trx);
        ownerCount = count(owner).then((n) => {
          ownerSaw = n;
          return n;
        });
        // A full round trip through the relay: the owner's statement, queued before it, has not run.
        await sql`insert into t values (2)`.execute(trx);
        expect(ownerSaw).toBeUndefined();
      });
      expect(await ownerCount).toBe(2);
      // A database error keeps its SQLSTATE through the relay (callers test 23505).
      const duplicate = await sql`insert into t values (1)`.execute(shared.db).catch((err: unknown) => err);
      expect((duplicate as { code?: string }).code).toBe('23505');
    } finally {
      await shared.close();
      await owner.close();
    }
  });

  it('rolls back what a client left open when it disconnects, and frees the directory when the owner closes', async () => {
    const dataDir = freshDataDir();
    const owner = await ownedDatabase(dataDir);
    const shared = await connectDatabase({ database: { url: undefined, dataDir, poolSize: 1 } });
    const left = await shared.db
      .transaction()
      .execute(async (trx) => {
        await sql`insert into t values (3)`.execute(trx);
        // The command dies mid-transaction: its connection to the server goes.
        await shared.close();
        await sql`insert into t values (4)`.execute(trx);
      })
      .catch((err: unknown) => err);
    expect(String(left)).toMatch(/lost|closed/);
    expect(await count(owner)).toBe(0);
    await owner.close();
    expect(existsSync(join(dataDir, 'passerelle.sock'))).toBe(false);
    const alone = await connectDatabase({ database: { url: undefined, dataDir, poolSize: 1 } });
    try {
      expect(alone.location).toBe(`pglite:${dataDir}`);
      expect(await count(alone)).toBe(0);
    } finally {
      await alone.close();
    }
  });
  it('cuts off a client that holds the database and says nothing, rolling back its transaction', async () => {
    const owner = new Kysely<{ t: { n: number } }>({ dialect: new PGliteDialect(new PGlite('memory://')) });
    await sql`create table t (n int primary key)`.execute(owner);
    const socketPath = join(freshDataDir(), 'relay.sock');
    // Cut off after 3 s of silence: an active client, slowed down by a loaded machine, is never silent that long.
    const relay = await startRelay(owner as Kysely<unknown>, socketPath, { idleHoldMs: 3000 });
    const dialect = await RelayDialect.connect(socketPath);
    const client = new Kysely<{ t: { n: number } }>({ dialect });
    try {
      let stalled!: () => void;
      const stall = new Promise<void>((resolve) => {
        stalled = resolve;
      });
      let resume!: () => void;
      const resumed = new Promise<void>((resolve) => {
        resume = resolve;
      });
      const left = client
        .transaction()
        .execute(async (trx) => {
          await sql`insert into t values (5)`.execute(trx);
          stalled();
          // Stopped (Ctrl+Z, a hung prompt): its connection goes quiet while the transaction is open.
          await resumed;
          await sql`insert into t values (6)`.execute(trx);
        })
        .catch((err: unknown) => err);
      await stall;
      // The owner waits for the held database, then goes on once the silent client is cut off.
      const seen = await sql<{ n: number }>`select count(*)::int as n from t`.execute(owner);
      expect(seen.rows[0]?.n).toBe(0);
      resume();
      expect(String(await left)).toMatch(/lost/);
      expect((await sql<{ n: number }>`select count(*)::int as n from t`.execute(owner)).rows[0]?.n).toBe(0);
    } finally {
      await dialect.close();
      await relay.close();
      await owner.destroy();
    }
  });
});
