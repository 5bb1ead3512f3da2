/**
 * `npm run bench:methods`: the server cost of one complete login, per login method.
 *
 * For each method (password with argon2id, LDAP against a real slapd, smart card with a real TLS client
 * certificate on the card listener, WebAuthn with a software FIDO2 authenticator in this process), N
 * logins one after the other (concurrency 1, after a warm-up), each with a fresh browser: GET /auth
 * (first-party confidential client, prompt=login) → identify (not for the card) → the method → code →
 * token exchange with PKCE. Measured around the N logins: CPU of the server process (/proc), SQL
 * statements and writes (the server's statement hook), CPU of PostgreSQL and slapd processes, latency.
 *
 *   npm run bench:methods -- [--database pglite|postgres] [--logins 40] [--warmup 5]
 *                            [--only password,ldap,smartcard,webauthn]
 *
 * PostgreSQL when BENCH_DATABASE_URL is set (a fresh database, dropped afterwards), else PGlite in memory.
 * Prints a table and writes bench/results/<date>-methods-<database>.json.
 */
import { createHash, createSign, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as oidc from 'openid-client';
import type { ClientMetadata } from '../src/oidc/clients.ts';
import { BrowserAgent, formAction, formField } from '../test/helpers/browser-agent.ts';
import { cardRequest } from '../test/helpers/card-client.ts';
import { authorizationRequest, discover, TEST_PASSWORD } from '../test/helpers/clients.ts';
import { createTestDatabase, type TestDatabase } from '../test/helpers/databases.ts';
import { createIgcSantePki, type IgcSantePki } from '../test/helpers/igc-sante-pki.ts';
import { BASE_DN, openldapConfig, type Slapd, slapdAvailable, startSlapd } from '../test/helpers/slapd.ts';
import { percentile } from './load.ts';
import { cpuByName, cpuDelta, machineInfo, processCpuSeconds } from './proc.ts';
import { diffSnapshots, type QuerySnapshot } from './queries.ts';
import { perOp, round } from './report.ts';
import { ServerProcess } from './server-process.ts';

const METHODS = ['password', 'ldap', 'smartcard', 'webauthn'] as const;
type Method = (typeof METHODS)[number];

const { values: flags } = parseArgs({
  options: {
    database: { type: 'string' },
    logins: { type: 'string' },
    warmup: { type: 'string' },
    only: { type: 'string' },
  },
});
const logins = Number(flags.logins ?? process.env.BENCH_LOGINS ?? 40);
const warmup = Number(flags.warmup ?? process.env.BENCH_WARMUP_LOGINS ?? 5);
const adminUrl = process.env.BENCH_DATABASE_URL || undefined;
const kind = flags.database ?? (adminUrl ? 'postgres' : 'pglite');
if ((kind !== 'pglite' && kind !== 'postgres') || (kind === 'postgres' && !adminUrl)) {
  throw new Error('--database: pglite, or postgres with BENCH_DATABASE_URL');
}
const only = (flags.only ?? METHODS.join(',')).split(',').filter(Boolean) as Method[];
for (const m of only) if (!METHODS.includes(m)) throw new Error(`unknown method ${m} (${METHODS})`);

const REDIRECT = 'https://dpi.bench.test/callback';
const CLIENT_SECRET = randomBytes(32).toString('base64url');
const CLIENT: ClientMetadata = {
  client_id: 'bench-dpi',
  client_name: 'Bench DPI',
  redirect_uris: [REDIRECT],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
  scope: 'openid profile email offline_access',
  first_party: true,
  client_secret: CLIENT_SECRET,
};
const LOCAL_USER = 'bench-local';
const CARD_USER = 'bench-card';
const KEY_USER = 'bench-key';
const LDAP_USER = { uid: 'bench-ldap', password: 'Bench-ldap-pw-1', givenName: 'Bench', sn: 'Ldap' };

function log(message: string): void {
  process.stderr.write(`[bench:methods] ${message}\n`);
}

/** A software FIDO2 authenticator: one P-256 credential, user presence and verification always given. */
class SoftwareAuthenticator {
  readonly credentialId = randomBytes(16).toString('base64url');
  readonly #keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  #signCount = 0;

  /** The COSE_Key (RFC 9053) of the public key: CBOR map {1: 2, 3: -7, -1: 1, -2: x, -3: y}. */
  cosePublicKey(): Buffer {
    const jwk = this.#keys.publicKey.export({ format: 'jwk' });
    const x = Buffer.from(jwk.x ?? '', 'base64url');
    const y = Buffer.from(jwk.y ?? '', 'base64url');
    // map(5); 1 → 2 (EC2); 3 → -7 (ES256); -1 → 1 (P-256); -2 → bstr(32) x; -3 → bstr(32) y.
    return Buffer.concat([
      Buffer.from([0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20]),
      x,
      Buffer.from([0x22, 0x58, 0x20]),
      y,
    ]);
  }

  /** navigator.credentials.get() as the browser script serialises it (SimpleWebAuthn's JSON). */
  assert(options: { challenge: string; rpId: string }, origin: string): string {
    this.#signCount++;
    const counter = Buffer.alloc(4);
    counter.writeUInt32BE(this.#signCount);
    const authenticatorData = Buffer.concat([
      createHash('sha256').update(options.rpId).digest(),
      Buffer.from([0x05]),
      counter,
    ]);
    const clientDataJSON = Buffer.from(
      JSON.stringify({ type: 'webauthn.get', challenge: options.challenge, origin, crossOrigin: false }),
    );
    const signature = createSign('sha256')
      .update(Buffer.concat([authenticatorData, createHash('sha256').update(clientDataJSON).digest()]))
      .sign(this.#keys.privateKey);
    return JSON.stringify({
      id: this.credentialId,
      rawId: this.credentialId,
      type: 'public-key',
      response: {
        clientDataJSON: clientDataJSON.toString('base64url'),
        authenticatorData: authenticatorData.toString('base64url'),
        signature: signature.toString('base64url'),
      },
      clientExtensionResults: {},
      authenticatorAttachment: 'cross-platform',
    });
  }
}

interface Context {
  server: ServerProcess;
  config: oidc.Configuration;
  pki: IgcSantePki | undefined;
  key: SoftwareAuthenticator;
}

function expectRedirect(response: { status: number }, what: string, body: string): void {
  if (response.status !== 303 && response.status !== 302)
    throw new Error(`${what}: status ${response.status}\n${body.slice(0, 2000)}`);
}

/** One complete login with a fresh browser; resolves once the tokens are received. */
async function login(ctx: Context, method: Method): Promise<void> {
  const issuer = ctx.server.issuer;
  const agent = new BrowserAgent();
  const pending = await authorizationRequest(ctx.config, REDIRECT, { prompt: 'login' });
  let step = await agent.follow(pending.url, issuer);
  if (!step.response) throw new Error('no login page');
  const interaction = step.url.pathname;
  const methodPage = async () => {
    step = await agent.follow(new URL(`${interaction}?method=${method}`, issuer), issuer);
    if (!agent.lastHtml.includes(`/method/${method}"`))
      throw new Error(`no ${method} form:\n${agent.lastHtml.slice(0, 2000)}`);
  };
  const username = { password: LOCAL_USER, ldap: LDAP_USER.uid, smartcard: CARD_USER, webauthn: KEY_USER }[
    method
  ];
  if (method !== 'smartcard') {
    const identified = await agent.postForm(new URL(formAction(agent.lastHtml, '/identify'), issuer), {
      csrf: formField(agent.lastHtml, 'csrf') ?? '',
      username,
    });
    expectRedirect(identified, 'identify', '');
    step = await agent.follow(new URL(identified.headers.get('location') ?? '', issuer), issuer);
  }
  if (!agent.lastHtml.includes(`/method/${method}"`)) await methodPage();
  const html = agent.lastHtml;
  const csrf = formField(html, 'csrf') ?? '';
  let location: string;
  if (method === 'smartcard') {
    const card = ctx.pki?.cards.cps;
    if (!card || !ctx.pki) throw new Error('no PKI');
    const posted = await cardRequest(formAction(html, '/method/smartcard'), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: issuer },
      body: new URLSearchParams({ csrf }).toString(),
      cert: card.pem,
      key: card.keyPem,
      ca: ctx.pki.serverCa.pem,
    });
    expectRedirect(posted, 'card form', posted.text);
    location = String(posted.headers.location);
  } else {
    let fields: Record<string, string>;
    if (method === 'webauthn') {
      const json = /<script type="application\/json" id="webauthn-options">([\s\S]*?)<\/script>/.exec(
        html,
      )?.[1];
      if (!json) throw new Error('no WebAuthn options in the page');
      const options = JSON.parse(json) as { challenge: string; rpId: string };
      fields = { csrf, response: ctx.key.assert(options, new URL(issuer).origin) };
    } else {
      const password = method === 'ldap' ? LDAP_USER.password : TEST_PASSWORD;
      fields = { csrf, username, password };
    }
    const posted = await agent.postForm(new URL(formAction(html, `/method/${method}`), issuer), fields);
    const body = posted.status === 303 ? '' : await posted.text();
    expectRedirect(posted, `${method} form`, body);
    location = posted.headers.get('location') ?? '';
  }
  step = await agent.follow(new URL(location, issuer), issuer);
  if (step.response) throw new Error(`login did not finish:\n${agent.lastHtml.slice(0, 2000)}`);
  const tokens = await oidc.authorizationCodeGrant(ctx.config, step.url, {
    pkceCodeVerifier: pending.verifier,
    expectedState: pending.state,
    expectedNonce: pending.nonce,
  });
  if (!tokens.id_token) throw new Error('no ID token');
}

interface MethodResult {
  method: Method;
  logins: number;
  serverCpuMsPerLogin: number;
  /** CPU of the PostgreSQL processes (postgres only) and of slapd, per login. */
  postgresCpuMsPerLogin: number | undefined;
  slapdCpuMsPerLogin: number | undefined;
  statementsPerLogin: number;
  writesPerLogin: number;
  dbMsPerLogin: number;
  latencyMs: { p50: number; p95: number; max: number };
  loginsPerSecond: number;
  statements: Record<string, number>;
}

async function measure(ctx: Context, method: Method, count: number): Promise<MethodResult> {
  for (let i = 0; i < warmup; i++) await login(ctx, method);
  const before = await ctx.server.call({ type: 'stats' });
  const pgBefore = kind === 'postgres' ? cpuByName('postgres') : undefined;
  const slapdBefore = cpuByName('slapd');
  const cpuBefore = processCpuSeconds(ctx.server.pid) ?? Number.NaN;
  const latencies = new Float64Array(count);
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await login(ctx, method);
    latencies[i] = performance.now() - t0;
  }
  const elapsed = (performance.now() - started) / 1000;
  const cpu = (processCpuSeconds(ctx.server.pid) ?? Number.NaN) - cpuBefore;
  const slapdCpu = cpuDelta(slapdBefore, cpuByName('slapd'));
  const pgCpu = pgBefore ? cpuDelta(pgBefore, cpuByName('postgres')) : undefined;
  const queries: QuerySnapshot = diffSnapshots(
    before.queries,
    (await ctx.server.call({ type: 'stats' })).queries,
  );
  latencies.sort();
  return {
    method,
    logins: count,
    serverCpuMsPerLogin: round((cpu * 1000) / count, 1),
    postgresCpuMsPerLogin: pgCpu === undefined ? undefined : round((pgCpu * 1000) / count, 1),
    slapdCpuMsPerLogin: method === 'ldap' ? round((slapdCpu * 1000) / count, 1) : undefined,
    statementsPerLogin: round(queries.statements / count, 2),
    writesPerLogin: round(queries.writes / count, 2),
    dbMsPerLogin: round(queries.dbMs / count, 2),
    latencyMs: {
      p50: round(percentile(latencies, 0.5), 1),
      p95: round(percentile(latencies, 0.95), 1),
      max: round(latencies[count - 1] ?? Number.NaN, 1),
    },
    loginsPerSecond: round(count / elapsed, 1),
    statements: perOp(queries, count),
  };
}

function render(results: MethodResult[]): string {
  const head = [
    'method',
    'server CPU ms',
    'stmts',
    'writes',
    'db ms',
    'pg CPU ms',
    'slapd CPU ms',
    'p50 ms',
    'p95 ms',
    'logins/s',
  ];
  const show = (n: number | undefined) => (n === undefined || Number.isNaN(n) ? '–' : String(n));
  const rows = results.map((r) => [
    r.method,
    show(r.serverCpuMsPerLogin),
    show(r.statementsPerLogin),
    show(r.writesPerLogin),
    show(r.dbMsPerLogin),
    show(r.postgresCpuMsPerLogin),
    show(r.slapdCpuMsPerLogin),
    show(r.latencyMs.p50),
    show(r.latencyMs.p95),
    show(r.loginsPerSecond),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

async function main(): Promise<void> {
  let database: TestDatabase | undefined;
  let server: ServerProcess | undefined;
  let slapd: Slapd | undefined;
  let pki: IgcSantePki | undefined;
  const cleanup = async () => {
    await server?.stop();
    await database?.drop();
    await slapd?.close();
    pki?.remove();
  };
  const interrupted = () => {
    log('interrupted: stopping the server, slapd, dropping the database');
    cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    if (kind === 'postgres' && adminUrl)
      database = await createTestDatabase('postgres', { admin: adminUrl, prefix: 'passerelle_bench' });
    const config: Record<string, unknown> = {
      webauthn: { rpId: 'localhost', origins: ['{issuer}'] },
    };
    if (only.includes('ldap')) {
      if (!slapdAvailable()) throw new Error('slapd is not installed');
      slapd = await startSlapd({
        generatedUsers: 100,
        users: [LDAP_USER],
        groups: { staff: [LDAP_USER.uid] },
      });
      config.ldap = openldapConfig(slapd, { userBaseDn: BASE_DN });
    }
    if (only.includes('smartcard')) {
      pki = await createIgcSantePki();
      // bench/server.ts puts the port its card listener got in place of "{cardPort}".
      config.smartcard = {
        trustAnchors: [pki.files.rootFort, pki.files.rootStandard],
        intermediates: [pki.files.intermediates],
        crl: { files: [pki.files.crlFort, pki.files.crlStandard] },
        listener: {
          host: '127.0.0.1',
          port: '{cardPort}',
          certFile: pki.files.serverCert,
          keyFile: pki.files.serverKey,
        },
        formOrigin: 'https://127.0.0.1:{cardPort}',
      };
    }
    log(`starting the server on ${kind}…`);
    server = await ServerProcess.start({
      BENCH_SERVER_DATABASE_URL: database?.url ?? '',
      BENCH_SERVER_POOL_SIZE: '10',
      BENCH_SERVER_CONFIG: JSON.stringify(config),
      BENCH_SERVER_ISSUER_HOST: 'localhost',
    });
    await server.call({
      type: 'setup',
      clients: [CLIENT],
      users: [LOCAL_USER, CARD_USER, KEY_USER].map((username) => ({ username, password: TEST_PASSWORD })),
    });
    const key = new SoftwareAuthenticator();
    if (pki)
      await server.call({
        type: 'register-card',
        username: CARD_USER,
        certificate: pki.cards.cps.der.toString('base64'),
      });
    await server.call({
      type: 'add-webauthn-key',
      username: KEY_USER,
      credentialId: key.credentialId,
      publicKey: key.cosePublicKey().toString('base64'),
    });
    const ctx: Context = {
      server,
      config: await discover(server, CLIENT.client_id, oidc.ClientSecretBasic(CLIENT_SECRET)),
      pki,
      key,
    };
    const results: MethodResult[] = [];
    for (const method of only) {
      log(`${method}: ${warmup} warm-up logins, then ${logins}…`);
      results.push(await measure(ctx, method, logins));
    }
    const logs = await server.call({ type: 'logs' });
    const date = new Date().toISOString();
    const output = {
      date,
      database: kind,
      machine: machineInfo(),
      settings: { logins, warmup, concurrency: 1 },
      results,
      serverWarnings: logs,
    };
    process.stdout.write(
      `Passerelle login methods — ${date} — ${kind}, ${logins} logins per method (concurrency 1, ${warmup} warm-up)\n` +
        'per login: server CPU, SQL statements, writes, time in the database driver, CPU of PostgreSQL and slapd\n\n' +
        `${render(results)}\n`,
    );
    for (const r of results) {
      process.stdout.write(
        `\n${r.method}: ${Object.entries(r.statements)
          .map(([k, v]) => `${k} ×${v}`)
          .join(', ')}\n`,
      );
    }
    if (logs.length)
      process.stdout.write(`\nserver warnings/errors logged: ${logs.length}\n  ${logs[0]?.slice(0, 400)}\n`);
    const dir = resolve(import.meta.dirname, 'results');
    mkdirSync(dir, { recursive: true });
    const file = resolve(dir, `${date.replace(/[:.]/g, '-')}-methods-${kind}.json`);
    writeFileSync(file, `${JSON.stringify(output, null, 2)}\n`);
    process.stdout.write(`\nresults: ${file}\n`);
  } finally {
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
    await cleanup();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`[bench:methods] failed: ${(err as Error)?.stack ?? err}\n`);
  process.exitCode = 1;
});
