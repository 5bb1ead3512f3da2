/**
 * The server under test, in its own process (one Node process = one core budget): a real Passerelle
 * on 127.0.0.1 with a random port, demo mode off, log level warn. Driven by bench/run.ts over IPC.
 */
import { randomBytes, X509Certificate } from 'node:crypto';
import { PerformanceObserver } from 'node:perf_hooks';
import { CardCertificates } from '../src/accounts/card-certificates.ts';
import { CredentialStore } from '../src/methods/webauthn/store.ts';
import { createUser, registerClient } from '../test/helpers/clients.ts';
import { startTestServer } from '../test/helpers/server.ts';
import type { Command, Ready, Replies, Reply, Request, ServerStats } from './protocol.ts';
import { QueryCounter } from './queries.ts';

const url = process.env.BENCH_SERVER_DATABASE_URL || undefined;
const poolSize = Number(process.env.BENCH_SERVER_POOL_SIZE || 10);
const counter = new QueryCounter();
// Extra configuration sections from the driver (bench/login-methods.ts): JSON in which every string
// "{issuer}" is replaced by the issuer URL once the port is known, and "{cardPort}" by the port of the smart
// card listener (a number where it is a whole string); BENCH_SERVER_ISSUER_HOST: the issuer's host name.
const extraConfig = process.env.BENCH_SERVER_CONFIG || '{}';
const issuerHost = process.env.BENCH_SERVER_ISSUER_HOST || undefined;

const t = await startTestServer(url ? 'postgres' : 'pglite', {
  // The driver creates (and drops) the PostgreSQL database; PGlite lives in this process's memory.
  database: { url, dataDir: 'memory://', drop: async () => {} },
  logLevel: 'warn',
  onQuery: counter.record,
  issuerHost,
  config: (issuer, ports) => ({
    demo: false,
    log: { level: 'warn' },
    database: { url, dataDir: 'memory://', poolSize },
    // Production-like: key reload poll every 10 s (the tests use 1 s).
    keys: { encryptionKey: randomBytes(32).toString('base64'), reloadIntervalSeconds: 10 },
    ...(JSON.parse(
      extraConfig
        .replaceAll('{issuer}', issuer)
        .replaceAll('"{cardPort}"', String(ports.card))
        .replaceAll('{cardPort}', String(ports.card)),
    ) as Record<string, unknown>),
  }),
});
// As `passerelle serve` does: keep-alive connections of the load generator outlive pauses between scenarios.
t.server.keepAliveTimeout = 65_000;
// Garbage-collection pauses: the usual suspect behind latency tails.
const gc = { count: 0, totalMs: 0, maxMs: 0 };
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    gc.count++;
    gc.totalMs += entry.duration;
    gc.maxMs = Math.max(gc.maxMs, entry.duration);
  }
}).observe({ entryTypes: ['gc'] });
let httpRequests = 0;
t.server.on('request', () => {
  httpRequests++;
});

async function accountOf(username: string) {
  const account = await t.passerelle.services.accounts.findByUsername(username);
  if (!account) throw new Error(`no account ${username}`);
  return account;
}

async function handle(command: Command): Promise<Replies[Command['type']]> {
  switch (command.type) {
    case 'setup':
      for (const metadata of command.clients) await registerClient(t, metadata);
      for (const user of command.users) await createUser(t, user.username, user.password);
      return null;
    case 'register-card': {
      const account = await accountOf(command.username);
      const cards = new CardCertificates(t.passerelle.services.database.db);
      await cards.register(account.id, new X509Certificate(Buffer.from(command.certificate, 'base64')));
      return null;
    }
    case 'add-webauthn-key': {
      const account = await accountOf(command.username);
      await new CredentialStore(t.passerelle.services.database.db).insert({
        id: command.credentialId,
        accountId: account.id,
        name: 'bench key',
        publicKey: new Uint8Array(Buffer.from(command.publicKey, 'base64')),
        counter: 0,
        transports: ['usb'],
        aaguid: '00000000-0000-0000-0000-000000000000',
        deviceType: 'singleDevice',
        backedUp: false,
      });
      return null;
    }
    case 'stats': {
      const pauses = { ...gc };
      gc.maxMs = 0;
      return {
        queries: counter.snapshot(),
        httpRequests,
        gc: pauses,
        memory: Object.fromEntries(
          Object.entries(process.memoryUsage()).map(([k, v]) => [k, Math.round((v / 2 ** 20) * 10) / 10]),
        ),
      } satisfies ServerStats;
    }
    case 'trace-start':
      counter.startTrace();
      return null;
    case 'trace-stop':
      return counter.stopTrace();
    case 'logs':
      return t.logs.slice(0, 20);
    case 'stop':
      await t.close();
      setImmediate(() => process.exit(0));
      return null;
  }
}

process.on('message', (message: Request) => {
  handle(message).then(
    (result) => process.send?.({ id: message.id, result } satisfies Reply),
    (err: unknown) =>
      process.send?.({ id: message.id, error: String((err as Error)?.stack ?? err) } satisfies Reply),
  );
});
// Orphaned (driver killed): do not linger. Ctrl-C reaches the whole process group: the driver stops us.
process.on('disconnect', () => process.exit(0));
process.on('SIGINT', () => {});
process.send?.({ type: 'ready', issuer: t.issuer, pid: process.pid } satisfies Ready);
