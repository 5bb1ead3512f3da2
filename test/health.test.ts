import { sql } from 'kysely';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BrowserAgent } from './helpers/browser-agent.ts';
import { authorizationRequest, discover, REDIRECT, registerWebClient } from './helpers/clients.ts';
import { type DatabaseKind, databasesUnderTest, queryOnce } from './helpers/databases.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

const UNAVAILABLE = 'Le service de connexion est momentanément indisponible';

/**
 * A real, reversible PostgreSQL outage: the server refuses new connections to the test database and
 * terminates the existing ones. Returns what ends it.
 */
async function cutPostgres(t: TestServer): Promise<() => Promise<void>> {
  const name = new URL(t.database.url ?? '').pathname.slice(1);
  expect(name).toMatch(/^passerelle_test_[0-9a-f]+$/);
  await queryOnce(`alter database ${name} with allow_connections false`);
  // Only the application's own sessions: an autovacuum worker on that database belongs to the superuser,
  // which a non-superuser CI role may not signal.
  await queryOnce(
    `select pg_terminate_backend(pid) from pg_stat_activity
     where datname = '${name}' and backend_type = 'client backend' and usename = current_user`,
  );
  return async () => {
    await queryOnce(`alter database ${name} with allow_connections true`);
  };
}

/**
 * Makes the database unreachable. PGlite lives inside the process and cannot fail on its own: closing
 * its handle is the nearest equivalent, and it cannot come back (no undo is returned).
 */
async function cutDatabase(kind: DatabaseKind, t: TestServer): Promise<(() => Promise<void>) | undefined> {
  if (kind === 'postgres') return cutPostgres(t);
  await t.passerelle.services.database.close();
  return undefined;
}

async function readyz(t: TestServer) {
  const response = await fetch(`${t.issuer}/readyz`);
  return {
    status: response.status,
    cache: response.headers.get('cache-control'),
    body: await response.json(),
  };
}

for (const kind of databasesUnderTest()) {
  describe(`health and readiness [${kind}]`, () => {
    let t: TestServer;
    let config: oidc.Configuration;
    let restore: (() => Promise<void>) | undefined;
    beforeAll(async () => {
      t = await startTestServer(kind);
      const secret = await registerWebClient(t, 'dpi');
      config = await discover(t, 'dpi', oidc.ClientSecretBasic(secret));
    });
    afterAll(async () => {
      await restore?.();
      await t?.close();
    });

    /** Opens an authorization request in `agent` and returns the URL of the login page it shows. */
    async function openLoginPage(agent: BrowserAgent): Promise<URL> {
      const pending = await authorizationRequest(config, REDIRECT);
      const { response, url } = await agent.follow(pending.url, t.issuer);
      expect(response?.status).toBe(200);
      expect(url.pathname).toMatch(/^\/interaction\/[\w-]+$/);
      expect(agent.lastHtml).toContain('/identify"');
      return url;
    }

    it('/healthz answers 200', async () => {
      const response = await fetch(`${t.issuer}/healthz`);
      expect(response.status).toBe(200);
      expect(response.headers.get('cache-control')).toBe('no-store');
      expect(await response.json()).toEqual({ status: 'ok' });
    });

    it('/readyz answers 200 with the database, migrations and audit checks ok', async () => {
      expect(await readyz(t)).toEqual({
        status: 200,
        cache: 'no-store',
        body: {
          status: 'ready',
          checks: { database: { ok: true }, migrations: { ok: true }, audit: { ok: true, optional: true } },
          shuttingDown: false,
        },
      });
    });

    it('/readyz answers 503 while a migration is pending', async () => {
      const { db } = t.passerelle.services.database;
      const applied = await sql<{ name: string; timestamp: string }>`
        delete from kysely_migration where name = '0001_initial' returning name, timestamp`.execute(db);
      expect(applied.rows).toHaveLength(1);
      try {
        const { status, body } = await readyz(t);
        expect(status).toBe(503);
        expect(body).toMatchObject({
          status: 'not ready',
          checks: { database: { ok: true }, migrations: { ok: false, detail: 'pending migrations' } },
        });
      } finally {
        const [row] = applied.rows;
        await sql`insert into kysely_migration (name, timestamp) values (${row?.name}, ${row?.timestamp})`.execute(
          db,
        );
      }
      expect((await readyz(t)).status).toBe(200);
    });

    // PGlite cannot come back from a closed handle: the recovery is a PostgreSQL requirement only (and
    // PostgreSQL is mandatory with CI=true). It runs before the outage test below, which leaves the
    // database unreachable.
    if (kind === 'postgres') {
      it('after a PostgreSQL outage, /readyz and the pending login page come back without a restart', async () => {
        const agent = new BrowserAgent();
        const loginPage = await openLoginPage(agent);

        restore = await cutPostgres(t);
        expect((await readyz(t)).status).toBe(503);
        const down = await agent.request(loginPage, { headers: { accept: 'text/html' } });
        expect(down.status).toBe(503);
        expect(await down.text()).toContain(UNAVAILABLE);

        await restore();
        restore = undefined;
        await expect.poll(async () => (await readyz(t)).status, { timeout: 60_000, interval: 250 }).toBe(200);
        // The interaction started before the outage is still there.
        const again = await agent.request(loginPage);
        expect(again.status).toBe(200);
        expect(await again.text()).toContain('/identify"');
      });
    }

    it('database outage: /readyz answers 503, the login page answers 503 with the French "unavailable" page', async () => {
      const agent = new BrowserAgent();
      const loginPage = await openLoginPage(agent);

      restore = await cutDatabase(kind, t);

      const notReady = await readyz(t);
      expect(notReady.status).toBe(503);
      expect(notReady.body).toMatchObject({
        status: 'not ready',
        checks: { database: { ok: false } },
        shuttingDown: false,
      });
      // Liveness does not depend on the database: an orchestrator must not restart a healthy process.
      expect((await fetch(`${t.issuer}/healthz`)).status).toBe(200);

      const page = await agent.request(loginPage, { headers: { accept: 'text/html' } });
      expect(page.status).toBe(503);
      expect(page.headers.get('content-type')).toMatch(/^text\/html/);
      const html = await page.text();
      expect(html).toContain(UNAVAILABLE);
      expect(html).toContain('lang="fr"');
      // The reference shown to the user is the request id found in the logs.
      expect(html).toContain(page.headers.get('x-request-id') ?? 'no request id');
      expect(html).not.toMatch(/kysely|pglite|postgres|destroyed|stack|at \w+ \(/i);

      // A new sign-in from an application: the protocol engine fails on the database, same page.
      const fresh = await authorizationRequest(config, REDIRECT);
      const authorize = await new BrowserAgent().request(fresh.url, { headers: { accept: 'text/html' } });
      expect(authorize.status).toBe(503);
      const authorizeHtml = await authorize.text();
      expect(authorizeHtml).toContain(UNAVAILABLE);
      expect(authorizeHtml).not.toContain('oops');

      // The process is still serving.
      expect((await fetch(`${t.issuer}/healthz`)).status).toBe(200);
    });
  });
}
