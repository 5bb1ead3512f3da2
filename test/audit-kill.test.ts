import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.ts';
import { connectDatabase } from '../src/db/connect.ts';
import { tokenDigest } from '../src/oidc/protocol-audit.ts';
import { BrowserAgent, followThroughConsent, formAction, formField } from './helpers/browser-agent.ts';
import { cleanEnv, REPO_ROOT, runCli } from './helpers/cli.ts';
import { authorizationRequest, REDIRECT, TEST_PASSWORD } from './helpers/clients.ts';
import { createTestDatabase, databasesUnderTest, type TestDatabase } from './helpers/databases.ts';
import { type Daemon, samePortAgain, startDaemon, withPorts } from './helpers/net.ts';

const USERS = ['nina', 'omar', 'paul'];
const WORKERS = 6;

/** What one login saw from the browser's and the client's side before the process died (or not). */
interface Flow {
  uid?: string;
  /** The password form answered 303: the attempt is over for the user. */
  attempted?: boolean;
  /** Passerelle sent the browser back with a code: the session exists for the user. */
  code?: boolean;
  /** The client holds an access token. */
  accessToken?: string;
}

/** `passerelle serve` on `port` (the issuer's), ready once /readyz answers 200. */
function startServer(env: Record<string, string>, port: number): Promise<Daemon> {
  return startDaemon({
    name: 'passerelle serve',
    command: process.execPath,
    args: ['src/cli/main.ts', 'serve'],
    spawn: {
      cwd: REPO_ROOT,
      env: { ...env, PASSERELLE_ISSUER: `http://127.0.0.1:${port}`, PORT: String(port) },
    },
    ports: [port],
    // Migrations first: a minute or more on a loaded machine.
    timeoutMs: 240_000,
    ready: () =>
      fetch(`http://127.0.0.1:${port}/readyz`).then(
        (r) => r.status === 200,
        () => false,
      ),
  });
}

/** One login of `username` through the forms, then the code redeemed; records each step reached. */
async function login(
  client: oidc.Configuration,
  issuer: string,
  username: string,
  flow: Flow,
  passwordSent: () => void = () => {},
) {
  const agent = new BrowserAgent();
  const pending = await authorizationRequest(client, REDIRECT, { prompt: 'login' });
  await agent.follow(pending.url, issuer);
  const identify = agent.lastHtml;
  const identified = await agent.postForm(new URL(formAction(identify, '/identify'), issuer), {
    csrf: formField(identify, 'csrf') ?? '',
    username,
  });
  await agent.follow(new URL(identified.headers.get('location') ?? '', issuer), issuer);
  const page = agent.lastHtml;
  const action = new URL(formAction(page, '/method/password'), issuer);
  flow.uid = action.pathname.split('/')[2];
  const posting = agent.postForm(action, { csrf: formField(page, 'csrf') ?? '', password: TEST_PASSWORD });
  passwordSent();
  const posted = await posting;
  if (posted.status !== 303) throw new Error(`password form answered ${posted.status}`);
  flow.attempted = true;
  const callback = await followThroughConsent(agent, posted.headers.get('location') ?? '', issuer);
  if (!callback.url.searchParams.get('code')) throw new Error(`no code: ${callback.url}`);
  flow.code = true;
  const tokens = await oidc.authorizationCodeGrant(client, callback.url, {
    pkceCodeVerifier: pending.verifier,
    expectedState: pending.state,
    expectedNonce: pending.nonce,
  });
  flow.accessToken = tokens.access_token;
}

for (const kind of databasesUnderTest()) {
  describe(`no audit record lost when the process is killed mid-login [${kind}]`, () => {
    let database: TestDatabase;
    let dataDir: string;
    let env: Record<string, string>;
    let issuer: string;
    let server: Daemon | undefined;

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      dataDir = mkdtempSync(join(tmpdir(), 'passerelle-kill-'));
      // The commands before the server runs need an issuer: the server's is known once it listens.
      env = cleanEnv({
        PASSERELLE_ISSUER: 'http://127.0.0.1:3999',
        PASSERELLE_HTTP__HOST: '127.0.0.1',
        PASSERELLE_KEYS__ENCRYPTION_KEY: randomBytes(32).toString('base64'),
        ...(database.url ? { DATABASE_URL: database.url } : { PASSERELLE_DATABASE__DATA_DIR: dataDir }),
      });
    });
    afterAll(async () => {
      server?.child.kill('SIGKILL');
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
      await database?.drop();
    });

    it('every attempt, session and token the user or client saw answered is in the trail, which verifies', async () => {
      for (const username of USERS) {
        const added = await runCli(['users', 'add', username, '--password-stdin'], {
          env,
          input: TEST_PASSWORD,
        });
        expect(added.code, added.stderr).toBe(0);
      }
      const added = await runCli(['clients', 'add', 'dpi', '--redirect-uri', REDIRECT, '--first-party'], {
        env,
      });
      expect(added.code, added.stderr).toBe(0);
      const secret = /shown once, store it now\): (\S+)/.exec(added.stdout)?.[1] ?? '';
      expect(secret).not.toBe('');

      server = await withPorts(1, ([port]) => startServer(env, port as number));
      const port = server.ports[0] as number;
      issuer = `http://127.0.0.1:${port}`;
      env.PASSERELLE_ISSUER = issuer;
      const client = await oidc.discovery(new URL(issuer), 'dpi', undefined, oidc.ClientSecretBasic(secret), {
        execute: [oidc.allowInsecureRequests],
      });
      const flows: Flow[] = [];
      let completed = 0;
      let killed = false;
      const victim = server.child;
      // Once every worker has logged in a few times, a password sent while another login is past its
      // password is the moment: the process dies with that request in flight and the other past it.
      const passwordSent = () => {
        const midway = flows.some((f) => f.attempted && !f.accessToken);
        if (killed || completed < 3 * WORKERS || !midway) return;
        killed = true;
        setTimeout(() => victim.kill('SIGKILL'), 2);
      };
      const worker = async (n: number) => {
        while (!killed) {
          const flow: Flow = {};
          flows.push(flow);
          try {
            await login(client, issuer, USERS[n % USERS.length] ?? '', flow, passwordSent);
            completed++;
          } catch (err) {
            if (killed) return;
            throw err;
          }
        }
      };
      await Promise.all(Array.from({ length: WORKERS }, (_, n) => worker(n)));
      if (victim.exitCode === null && victim.signalCode === null) await once(victim, 'exit');
      const interrupted = flows.filter((f) => !f.accessToken);
      expect(interrupted.filter((f) => f.attempted).length).toBeGreaterThan(0);

      // The trail as the dead process left it.
      const { config } = loadConfig({
        env: {},
        overrides: {
          issuer,
          database: database.url ? { url: database.url } : { dataDir },
          keys: { encryptionKey: env.PASSERELLE_KEYS__ENCRYPTION_KEY },
        },
      });
      const handle = await connectDatabase(config);
      try {
        const rows = await handle.db.selectFrom('audit_event').selectAll().orderBy('seq').execute();
        const having = (type: string, test: (row: (typeof rows)[number]) => boolean) =>
          rows.some((row) => row.type === type && test(row));
        for (const flow of flows) {
          if (flow.attempted)
            expect(
              having('auth.attempt', (r) => r.interaction_id === flow.uid && r.outcome === 'success'),
            ).toBe(true);
          if (flow.code)
            expect(
              having('session.started', (r) => r.interaction_id === flow.uid),
              `session of ${flow.uid}`,
            ).toBe(true);
          if (flow.accessToken) {
            const digest = tokenDigest(flow.accessToken);
            expect(
              having('token.issued', (r) => (r.detail as { jtiSha256?: string })?.jtiSha256 === digest),
            ).toBe(true);
          }
        }
        // No session without its record.
        const sessions = await handle.db.selectFrom('auth_session').select('session_uid').execute();
        for (const { session_uid } of sessions)
          expect(
            having('session.started', (r) => r.session_id === session_uid),
            `record of session ${session_uid}`,
          ).toBe(true);
        expect(sessions.length).toBeGreaterThanOrEqual(flows.filter((f) => f.code).length);
        console.info(
          `${kind}: ${flows.length} logins, ${interrupted.length} interrupted by the kill ` +
            `(${interrupted.filter((f) => f.attempted).length} after the password), ${rows.length} records`,
        );
      } finally {
        await handle.close();
      }

      const verified = await runCli(['audit', 'verify'], { env });
      expect(verified.code, verified.stdout + verified.stderr).toBe(0);

      // A new process takes over, on the same port (the client's issuer): its logins chain after the dead
      // one's records.
      server = await samePortAgain(() => startServer(env, port));
      const flow: Flow = {};
      await login(client, issuer, 'nina', flow);
      expect(flow.accessToken).toBeTruthy();
      await server.stop();
      server = undefined;
      expect((await runCli(['audit', 'verify'], { env })).code).toBe(0);
      // Six commands and two server starts, each up to a minute on a loaded machine.
    }, 900_000);
  });
}
