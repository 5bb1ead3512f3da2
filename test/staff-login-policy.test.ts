import { type Kysely, sql } from 'kysely';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chainRows } from '../src/audit/chain.ts';
import { AuditSigningKey, listCheckpoints } from '../src/audit/checkpoints.ts';
import { verifyChain } from '../src/audit/verify.ts';
import { Sealer } from '../src/crypto/sealer.ts';
import type { Database } from '../src/db/types.ts';
import { messages } from '../src/i18n/messages.ts';
import { purgeExpired } from '../src/oidc/adapter.ts';
import { BrowserAgent, browserLogin, formAction, formField } from './helpers/browser-agent.ts';
import {
  authorizationRequest,
  createUser,
  discover,
  REDIRECT,
  registerWebClient,
  TEST_PASSWORD,
} from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { errorText, escaped } from './helpers/pages.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

const fr = messages.fr;

interface Harness {
  t: TestServer;
  config: oidc.Configuration;
  db: Kysely<Database>;
}

async function harness(
  kind: 'pglite' | 'postgres',
  serverConfig: Record<string, unknown> = {},
): Promise<Harness> {
  const t = await startTestServer(kind, { config: serverConfig });
  const secret = await registerWebClient(t, 'dpi', { client_name: 'Dossier patient', first_party: true });
  const config = await discover(t, 'dpi', oidc.ClientSecretBasic(secret));
  return { t, config, db: t.passerelle.services.database.db };
}

/** Identify step then the password form; `post` submits a password on the same form. */
async function passwordForm(h: Harness, username: string, extra: Record<string, string> = {}) {
  const agent = new BrowserAgent();
  const pending = await authorizationRequest(h.config, REDIRECT, { prompt: 'login', ...extra });
  await agent.follow(pending.url, h.t.issuer);
  const identify = agent.lastHtml;
  const identified = await agent.postForm(new URL(formAction(identify, '/identify'), h.t.issuer), {
    csrf: formField(identify, 'csrf') ?? '',
    username,
  });
  await agent.follow(new URL(identified.headers.get('location') ?? '', h.t.issuer), h.t.issuer);
  const page = agent.lastHtml;
  const action = new URL(formAction(page, '/method/password'), h.t.issuer);
  const post = async (password: string) => {
    const response = await agent.postForm(action, { csrf: formField(page, 'csrf') ?? '', password });
    return { response, html: await response.text() };
  };
  return { agent, pending, post };
}

async function auditRows(db: Kysely<Database>, type: string) {
  return db.selectFrom('audit_event').selectAll().where('type', '=', type).orderBy('seq').execute();
}

/** Moves an account's last failure back in time, as if the delay had elapsed. */
async function elapse(db: Kysely<Database>, username: string, seconds: number) {
  await sql`update rate_limit set last_hit_at = last_hit_at - ${`${seconds} seconds`}::interval
            where key = ${`auth:acct:${username}`}`.execute(db);
}

for (const kind of databasesUnderTest()) {
  describe(`credential throttling [${kind}]`, () => {
    let h: Harness;
    beforeAll(async () => {
      h = await harness(kind);
      for (const name of ['erin', 'frank', 'gina']) await createUser(h.t, name);
    });
    afterAll(async () => {
      await h?.t.close();
    });

    it('3 free failures, then growing delays (2 s, 4 s…), then a lock at the 5th failure, audited once', async () => {
      const { lockAfter, lockSeconds, directoryLockoutThreshold } = h.t.config.throttle;
      expect(lockAfter).toBeLessThan(directoryLockoutThreshold);
      const form = await passwordForm(h, 'erin');
      for (let i = 1; i <= 3; i++)
        expect((await form.post(`wrong-${i}`)).response.status, `failure ${i}`).toBe(401);

      // A 4th attempt right away waits for the first delay, even with the right password.
      const delayed = await form.post(TEST_PASSWORD);
      expect(delayed.response.status).toBe(429);
      expect(Number(delayed.response.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(Number(delayed.response.headers.get('retry-after'))).toBeLessThanOrEqual(2);
      expect(errorText(delayed.html)).toBe(escaped(fr['error.rate_limited'].replace('{minutes}', '1')));

      await elapse(h.db, 'erin', 2);
      expect((await form.post('wrong-4')).response.status).toBe(401);
      const longer = await form.post(TEST_PASSWORD);
      expect(longer.response.status).toBe(429);
      expect(Number(longer.response.headers.get('retry-after'))).toBeGreaterThan(2);
      expect(Number(longer.response.headers.get('retry-after'))).toBeLessThanOrEqual(4);

      await elapse(h.db, 'erin', 4);
      expect((await form.post('wrong-5')).response.status).toBe(401);
      const locked = await form.post(TEST_PASSWORD);
      expect(locked.response.status).toBe(429);
      expect(Number(locked.response.headers.get('retry-after'))).toBeGreaterThan(lockSeconds - 10);
      const locks = await auditRows(h.db, 'auth.locked');
      expect(locks).toHaveLength(1);
      expect(locks[0]).toMatchObject({ outcome: 'failure', reason: 'too_many_failures', method: 'password' });

      // The lock ends; the failures are not forgotten (sliding window): one more failure locks again.
      await elapse(h.db, 'erin', lockSeconds);
      expect((await form.post('wrong-6')).response.status).toBe(401);
      expect((await form.post(TEST_PASSWORD)).response.status).toBe(429);
      // The directory saw at most lockAfter + 1 failures: below its own lockout threshold.
      const failures = await h.db
        .selectFrom('audit_event')
        .select(sql<number>`count(*)::int`.as('n'))
        .where('type', '=', 'auth.attempt')
        .where('reason', '=', 'wrong_password')
        .executeTakeFirstOrThrow();
      expect(failures.n).toBe(lockAfter + 1);
      expect(failures.n).toBeLessThan(directoryLockoutThreshold);
    });

    it('a success forgets the failures, and another account from the same address is unaffected', async () => {
      const form = await passwordForm(h, 'frank');
      for (let i = 1; i <= 3; i++) expect((await form.post(`wrong-${i}`)).response.status).toBe(401);
      await elapse(h.db, 'frank', 2);
      expect((await form.post(TEST_PASSWORD)).response.status).toBe(303);
      const row = await h.db
        .selectFrom('rate_limit')
        .select('hits')
        .where('key', '=', 'auth:acct:frank')
        .executeTakeFirst();
      expect(row).toBeUndefined();
      const other = await passwordForm(h, 'gina');
      expect((await other.post(TEST_PASSWORD)).response.status).toBe(303);
    });
  });

  describe(`credential throttling per source address [${kind}]`, () => {
    let h: Harness;
    beforeAll(async () => {
      h = await harness(kind, { throttle: { perIp: { max: 3, windowSeconds: 600 } } });
      await createUser(h.t, 'hugo');
    });
    afterAll(async () => {
      await h?.t.close();
    });

    it('failures spread over many usernames from one address are capped too', async () => {
      for (const name of ['x1', 'x2', 'x3']) {
        expect((await (await passwordForm(h, name)).post('guess')).response.status).toBe(401);
      }
      const blocked = await (await passwordForm(h, 'hugo')).post(TEST_PASSWORD);
      expect(blocked.response.status).toBe(429);
      expect(Number(blocked.response.headers.get('retry-after'))).toBeGreaterThan(500);
    });
  });

  describe(`audit of attempts and single sign-on sessions [${kind}]`, () => {
    let h: Harness;
    beforeAll(async () => {
      h = await harness(kind);
      await createUser(h.t, 'iris');
      await createUser(h.t, 'jules');
      const { accounts } = h.t.passerelle.services;
      await accounts.setDisabled((await accounts.findByUsername('jules'))?.id ?? '', true);
    });
    afterAll(async () => {
      await h?.t.close();
    });

    it('every attempt is one audit record with its reason code, and never the password', async () => {
      const before = (await auditRows(h.db, 'auth.attempt')).length;
      await (await passwordForm(h, 'nobody')).post('guess-one');
      await (await passwordForm(h, 'iris')).post('guess-two');
      await (await passwordForm(h, 'jules')).post(TEST_PASSWORD);
      const ok = await (await passwordForm(h, 'iris')).post(TEST_PASSWORD);
      expect(ok.response.status).toBe(303);
      const rows = (await auditRows(h.db, 'auth.attempt')).slice(before);
      expect(rows.map((r) => [r.outcome, r.reason, r.method])).toEqual([
        ['failure', 'unknown_user', 'password'],
        ['failure', 'wrong_password', 'password'],
        ['failure', 'account_disabled', 'password'],
        ['success', null, 'password'],
      ]);
      const iris = await h.t.passerelle.services.accounts.findByUsername('iris');
      expect(rows[1]?.account_id).toBe(iris?.id);
      expect(rows[3]).toMatchObject({
        account_id: iris?.id,
        client_id: 'dpi',
        ip: '127.0.0.1',
        amr: ['pwd'],
      });
      expect(rows[3]?.interaction_id).toBeTruthy();
      expect(rows[3]?.request_id).toMatch(/^[0-9a-f-]{36}$/);
      const all = JSON.stringify(await h.db.selectFrom('audit_event').selectAll().execute());
      for (const secret of [TEST_PASSWORD, 'guess-one', 'guess-two']) expect(all).not.toContain(secret);
    });

    it('fails closed: when the audit record cannot be written, the login is refused (503) and nothing is granted', async () => {
      await sql`alter table audit_event add constraint audit_outage check (false) not valid`.execute(h.db);
      try {
        const refused = await (await passwordForm(h, 'iris')).post(TEST_PASSWORD);
        expect(refused.response.status).toBe(503);
        expect(errorText(refused.html)).toBe(escaped(fr['error.service_unavailable']));
        expect(h.t.logs.join('')).toContain('audit record not written: authentication refused');
      } finally {
        await sql`alter table audit_event drop constraint audit_outage`.execute(h.db);
      }
      expect((await (await passwordForm(h, 'iris')).post(TEST_PASSWORD)).response.status).toBe(303);
    });

    it('the session records its methods; it ends after the idle time and after the absolute lifetime', async () => {
      const agent = new BrowserAgent();
      const first = await authorizationRequest(h.config, REDIRECT, { prompt: 'login' });
      const { callback } = await browserLogin(agent, first.url, h.t.issuer, {
        username: 'iris',
        password: TEST_PASSWORD,
      });
      expect(callback.searchParams.get('code')).toBeTruthy();
      const iris = await h.t.passerelle.services.accounts.findByUsername('iris');
      const session = await h.db
        .selectFrom('auth_session')
        .selectAll()
        .where('account_id', '=', iris?.id ?? '')
        .executeTakeFirstOrThrow();
      expect(session.profile).toBe('standard');
      expect(session.methods).toEqual([
        { method: 'password', amr: ['pwd'], phishingResistant: false, at: expect.any(Number) },
      ]);
      const lifetime = (session.expires_at.getTime() - session.started_at.getTime()) / 1000;
      expect(Math.round(lifetime)).toBe(h.t.config.sessions.absoluteSeconds);

      const silent = async () => {
        const pending = await authorizationRequest(h.config, REDIRECT, { prompt: 'none' });
        return (await agent.follow(pending.url, h.t.issuer)).url;
      };
      expect((await silent()).searchParams.get('code')).toBeTruthy();

      const { idleSeconds } = h.t.config.sessions;
      await sql`update auth_session set last_active_at = now() - ${`${idleSeconds + 1} seconds`}::interval
                where session_uid = ${session.session_uid}`.execute(h.db);
      expect((await silent()).searchParams.get('error')).toBe('login_required');

      // A new login, then the absolute end.
      const again = await authorizationRequest(h.config, REDIRECT, { prompt: 'login' });
      await browserLogin(agent, again.url, h.t.issuer, { username: 'iris', password: TEST_PASSWORD });
      expect((await silent()).searchParams.get('code')).toBeTruthy();
      await sql`update auth_session set expires_at = now() - interval '1 second'
                where session_uid = ${session.session_uid}`.execute(h.db);
      expect((await silent()).searchParams.get('error')).toBe('login_required');
      // The purge removes ended sessions.
      await purgeExpired(h.db, 100);
      const left = await h.db
        .selectFrom('auth_session')
        .select('session_uid')
        .where('session_uid', '=', session.session_uid)
        .execute();
      expect(left).toEqual([]);
    });

    it('a client that needs more than any configured method provides gets a clear refusal', async () => {
      const secret = await registerWebClient(h.t, 'pharmacie', { required_acr: 'urn:passerelle:loa:high' });
      const config = await discover(h.t, 'pharmacie', oidc.ClientSecretBasic(secret));
      const agent = new BrowserAgent();
      const pending = await authorizationRequest(config, REDIRECT);
      const { response } = await agent.follow(pending.url, h.t.issuer);
      expect(response?.status).toBe(403);
      expect(errorText(agent.lastHtml)).toBe(escaped(fr['error.no_method']));
    });
  });

  describe(`no user enumeration by response or timing [${kind}]`, () => {
    let h: Harness;
    beforeAll(async () => {
      h = await harness(kind, {
        throttle: {
          freeFailures: 90,
          lockAfter: 90,
          directoryLockoutThreshold: 0,
          perIp: { max: 1000, windowSeconds: 60 },
        },
      });
      await createUser(h.t, 'lena');
      await createUser(h.t, 'marc');
      const { accounts } = h.t.passerelle.services;
      await accounts.setDisabled((await accounts.findByUsername('marc'))?.id ?? '', true);
    });
    afterAll(async () => {
      await h?.t.close();
    });

    it('unknown user, wrong password and disabled account: same status, same message, comparable work', async () => {
      const cases = {
        unknown: () => passwordForm(h, 'nobody-here'),
        wrong: () => passwordForm(h, 'lena'),
        disabled: () => passwordForm(h, 'marc'),
      };
      const passwords = { unknown: TEST_PASSWORD, wrong: 'not the password', disabled: 'not the password' };
      // CPU time of this process (the server runs in it), not wall-clock time: what the request costs,
      // whatever else the machine runs meanwhile.
      const cpu: Record<string, number[]> = { unknown: [], wrong: [], disabled: [] };
      const wall: Record<string, number[]> = { unknown: [], wrong: [], disabled: [] };
      const answers = new Set<string>();
      for (let round = 0; round < 12; round++) {
        for (const name of ['unknown', 'wrong', 'disabled'] as const) {
          const form = await cases[name]();
          const startCpu = process.cpuUsage();
          const start = performance.now();
          const { response, html } = await form.post(passwords[name]);
          wall[name]?.push(performance.now() - start);
          const used = process.cpuUsage(startCpu);
          cpu[name]?.push((used.user + used.system) / 1000);
          answers.add(`${response.status} ${errorText(html)}`);
        }
      }
      expect([...answers]).toEqual([`401 ${escaped(fr['error.invalid_credentials'])}`]);
      const median = (values: number[]) =>
        [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
      const medians = (samples: Record<string, number[]>) =>
        Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, Math.round(median(v) * 10) / 10]));
      const cpuMedians = medians(cpu);
      console.info(`password check medians (ms) on ${kind}: cpu`, cpuMedians, 'wall clock', medians(wall));
      // The hash dominates every path; a skipped hash would show as a ratio far below 0.5.
      for (const name of ['wrong', 'disabled']) {
        const ratio = (cpuMedians[name] ?? 0) / (cpuMedians.unknown ?? 1);
        expect(ratio, `${name} vs unknown`).toBeGreaterThan(0.5);
        expect(ratio, `${name} vs unknown`).toBeLessThan(2);
      }
    });
  });

  describe(`shared ward workstations [${kind}]`, () => {
    let h: Harness;
    beforeAll(async () => {
      h = await harness(kind, {
        sessions: { sharedWorkstations: { networks: ['127.0.0.0/8'], idleSeconds: 300 } },
      });
      await createUser(h.t, 'karim');
    });
    afterAll(async () => {
      await h?.t.close();
    });

    it('a login from a shared workstation gets the shared profile and a cookie that ends with the browser', async () => {
      const agent = new BrowserAgent();
      const pending = await authorizationRequest(h.config, REDIRECT, { prompt: 'login' });
      let sessionCookie: string | undefined;
      const original = agent.request.bind(agent);
      agent.request = async (url, init) => {
        const response = await original(url, init);
        sessionCookie ??= response.headers.getSetCookie().find((c) => c.startsWith('_session='));
        return response;
      };
      await browserLogin(agent, pending.url, h.t.issuer, { username: 'karim', password: TEST_PASSWORD });
      expect(sessionCookie).toBeDefined();
      expect(sessionCookie).not.toMatch(/expires=/i);
      const row = await h.db.selectFrom('auth_session').select(['profile']).executeTakeFirstOrThrow();
      expect(row.profile).toBe('shared');
    });
  });
}

const RENNES = { finess: '350005179', name: 'CHU de Rennes', tid: 'tid-rennes-0001' };

/** Makes every audit append fail (or only those of one type) until the returned function is called. */
async function auditOutage(db: Kysely<Database>, onlyType?: string): Promise<() => Promise<void>> {
  const condition = onlyType ? sql`type <> ${sql.lit(onlyType)}` : sql`false`;
  await sql`alter table audit_event add constraint audit_outage check (${condition}) not valid`.execute(db);
  return async () => {
    await sql`alter table audit_event drop constraint audit_outage`.execute(db);
  };
}

async function sessionsOf(h: Harness, username: string) {
  const account = await h.t.passerelle.services.accounts.findByUsername(username);
  return h.db
    .selectFrom('auth_session')
    .selectAll()
    .where('account_id', '=', account?.id ?? '')
    .execute();
}

async function readiness(h: Harness) {
  const response = await fetch(new URL('/readyz', h.t.issuer));
  const body = (await response.json()) as { checks: Record<string, { ok: boolean; detail?: string }> };
  return { status: response.status, body };
}

async function chainVerifies(h: Harness) {
  const key = await AuditSigningKey.load(h.db, new Sealer(h.t.config.keys.encryptionKey));
  return verifyChain(chainRows(h.db), await listCheckpoints(h.db), key.publicKey);
}

for (const kind of databasesUnderTest()) {
  describe(`audit outage during a sign-in [${kind}]`, () => {
    let closed: Harness;
    let open: Harness;
    let psc: oidc.Configuration;
    beforeAll(async () => {
      closed = await harness(kind);
      open = await harness(kind, {
        audit: { failOpenForLocalSso: true },
        establishments: [RENNES],
        // A phishing-resistant method, so that PSC's level can be reached after the password.
        webauthn: { rpId: 'localhost', origins: ['http://localhost'] },
      });
      const secret = await registerWebClient(open.t, 'psc-rennes', { psc_establishment: RENNES.finess });
      psc = await discover(open.t, 'psc-rennes', oidc.ClientSecretBasic(secret));
      for (const h of [closed, open]) await createUser(h.t, 'lena');
    });
    afterAll(async () => {
      await closed?.t.close();
      await open?.t.close();
    });

    it('a session exists only with its record: session.started not written → 503 page and no session', async () => {
      const restore = await auditOutage(closed.db, 'session.started');
      try {
        const { agent, post } = await passwordForm(closed, 'lena');
        const accepted = await post(TEST_PASSWORD);
        expect(accepted.response.status).toBe(303);
        const resumed = await agent.follow(
          new URL(accepted.response.headers.get('location') ?? '', closed.t.issuer),
          closed.t.issuer,
        );
        expect(resumed.response?.status).toBe(503);
        expect(errorText(agent.lastHtml)).toBe(escaped(fr['error.service_unavailable']));
        expect(closed.t.logs.join('')).toContain('audit record not written: authentication refused');
      } finally {
        await restore();
      }
      // The attempt was recorded; the session was rolled back with its missing record.
      expect(await sessionsOf(closed, 'lena')).toEqual([]);
      const attempts = await auditRows(closed.db, 'auth.attempt');
      expect(attempts.at(-1)).toMatchObject({ outcome: 'success', method: 'password' });
      expect(await chainVerifies(closed)).toMatchObject({ kind: 'ok' });
    });

    it('audit.failOpenForLocalSso: a local sign-in proceeds to its tokens, its records in the operator log', async () => {
      const before = await open.db.selectFrom('audit_event').select(['seq']).execute();
      const restore = await auditOutage(open.db);
      const during = async () => open.db.selectFrom('audit_event').select(['seq']).execute();
      try {
        const pending = await authorizationRequest(open.config, REDIRECT, { prompt: 'login' });
        const { callback } = await browserLogin(new BrowserAgent(), pending.url, open.t.issuer, {
          username: 'lena',
          password: TEST_PASSWORD,
        });
        const tokens = await oidc.authorizationCodeGrant(open.config, callback, {
          pkceCodeVerifier: pending.verifier,
          expectedState: pending.state,
          expectedNonce: pending.nonce,
        });
        expect(tokens.claims()?.amr).toEqual(['pwd']);
        const unwritten = open.t.logs
          .flatMap((chunk) => chunk.split('\n').filter(Boolean))
          .map((line) => JSON.parse(line) as { msg?: string; record?: { type?: string } })
          .filter((entry) => entry.msg?.startsWith('audit record NOT written: local sign-in allowed'))
          .map((entry) => entry.record?.type);
        expect(unwritten).toEqual(['auth.attempt', 'session.started', 'token.issued']);
        expect(await during()).toHaveLength(before.length);
        // The instance stays in the load balancer's rotation and tells the operator.
        const degraded = await readiness(open);
        expect(degraded.status).toBe(200);
        expect(degraded.body.checks.audit).toMatchObject({ ok: false, optional: true });
        expect(degraded.body.checks.audit?.detail).toMatch(/^records not written since \d{4}-/);
      } finally {
        await restore();
      }
      expect(await sessionsOf(open, 'lena')).toHaveLength(1);
      const pending = await authorizationRequest(open.config, REDIRECT, { prompt: 'login' });
      await browserLogin(new BrowserAgent(), pending.url, open.t.issuer, {
        username: 'lena',
        password: TEST_PASSWORD,
      });
      expect((await readiness(open)).body.checks.audit).toEqual({ ok: true, optional: true });
      expect(await chainVerifies(open)).toMatchObject({ kind: 'ok' });
    });

    it('audit.failOpenForLocalSso never applies to PSC: its sign-in is refused (503)', async () => {
      const restore = await auditOutage(open.db);
      try {
        const agent = new BrowserAgent();
        const pending = await authorizationRequest(psc, REDIRECT, { acr_values: 'eidas1', prompt: 'login' });
        await agent.follow(pending.url, open.t.issuer);
        const identify = agent.lastHtml;
        const identified = await agent.postForm(new URL(formAction(identify, '/identify'), open.t.issuer), {
          csrf: formField(identify, 'csrf') ?? '',
          username: 'lena',
        });
        // The key is offered first; the password (first factor) is one of the other methods.
        const step = new URL(identified.headers.get('location') ?? '', open.t.issuer);
        step.searchParams.set('method', 'password');
        await agent.follow(step, open.t.issuer);
        const page = agent.lastHtml;
        const refused = await agent.postForm(new URL(formAction(page, '/method/password'), open.t.issuer), {
          csrf: formField(page, 'csrf') ?? '',
          password: TEST_PASSWORD,
        });
        expect(refused.status).toBe(503);
        expect(errorText(await refused.text())).toBe(escaped(fr['error.service_unavailable']));
        expect(open.t.logs.join('')).toMatch(
          /"scope":"federation".*audit record not written: authentication refused/,
        );
      } finally {
        await restore();
      }
    });
  });
}
