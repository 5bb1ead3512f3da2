import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CardCertificates } from '../src/accounts/card-certificates.ts';
import { configDigest, redactedConfig } from '../src/app.ts';
import { loadConfig } from '../src/config/load.ts';
import { connectDatabase } from '../src/db/connect.ts';
import { tokenDigest } from '../src/oidc/protocol-audit.ts';
import {
  BrowserAgent,
  browserLogin,
  followThroughConsent,
  formAction,
  formField,
} from './helpers/browser-agent.ts';
import { presentCard } from './helpers/card-client.ts';
import { nodeCert, startWithCards } from './helpers/card-server.ts';
import { cleanEnv, forCommands, runCli } from './helpers/cli.ts';
import {
  authorizationRequest,
  createUser,
  discover,
  REDIRECT,
  redeemCode,
  registerPublicClient,
  registerWebClient,
  TEST_PASSWORD,
} from './helpers/clients.ts';
import { createTestDatabase, databasesUnderTest, type TestDatabase } from './helpers/databases.ts';
import { createIgcSantePki, IDNAT, type IgcSantePki } from './helpers/igc-sante-pki.ts';
import type { TestServer } from './helpers/server.ts';

const RENNES = { finess: '350005179', name: 'CHU de Rennes', tid: 'tid-rennes-0001' };

let pki: IgcSantePki;
beforeAll(async () => {
  pki = await createIgcSantePki();
});
afterAll(() => pki?.remove());

/** The audit fields a test asserts (time, sequence, hashes and instance left out). */
const FIELDS = [
  'type',
  'outcome',
  'account_id',
  'client_id',
  'session_id',
  'interaction_id',
  'method',
  'amr',
  'acr',
  'reason',
  'national_id',
  'tid',
  'establishment',
  'detail',
] as const;

describe('config.loaded: a digest of the configuration without its secrets', () => {
  it('masks every secret key and URL passwords; the digest changes with a setting, not with nothing', () => {
    const secrets = {
      encryption: randomBytes(32).toString('base64'),
      client: `client-secret-${randomBytes(16).toString('hex')}`,
      bind: `bind-${randomBytes(8).toString('hex')}`,
      api: `api-${randomBytes(8).toString('hex')}`,
      db: `dbpass${randomBytes(8).toString('hex')}`,
      psc: `psc-${randomBytes(16).toString('hex')}`,
    };
    const overrides = {
      issuer: 'https://sso.hopital.test',
      database: { url: `postgres://passerelle:${secrets.db}@db.hopital.test:5432/passerelle` },
      keys: { encryptionKey: secrets.encryption },
      clients: [
        { clientId: 'dpi', redirectUris: [REDIRECT], clientSecret: `${secrets.client}${'x'.repeat(8)}` },
      ],
      ldap: {
        urls: ['ldaps://ldap.hopital.test'],
        bindDn: 'cn=passerelle,dc=hopital,dc=test',
        bindPassword: secrets.bind,
        userBaseDn: 'ou=people,dc=hopital,dc=test',
      },
      rpps: { api: { apiKey: secrets.api } },
      pscLogin: {
        issuer: 'https://auth.bas.psc.esante.gouv.fr/auth/realms/esante-wallet',
        clientId: 'passerelle',
        clientSecret: secrets.psc,
      },
    };
    const { config } = loadConfig({ env: {}, overrides });
    const text = JSON.stringify(redactedConfig(config));
    for (const [name, value] of Object.entries(secrets)) expect(text, name).not.toContain(value);
    expect(text).toContain('postgres://passerelle@db.hopital.test:5432/passerelle');
    expect(text.match(/\(secret\)/g)?.length).toBe(5);
    expect(configDigest(config)).toMatch(/^[0-9a-f]{64}$/);
    expect(configDigest(loadConfig({ env: {}, overrides }).config)).toBe(configDigest(config));
    const other = loadConfig({ env: {}, overrides: { ...overrides, issuer: 'https://sso2.hopital.test' } });
    expect(configDigest(other.config)).not.toBe(configDigest(config));
  });
});

for (const kind of databasesUnderTest()) {
  describe(`audit trail: every event family [${kind}]`, () => {
    let t: TestServer;
    let alice: { id: string; username: string };
    let cecile: { id: string; username: string };
    let dpiSecret: string;
    let dpi: oidc.Configuration;
    /** Values that must never appear in an audit row. */
    const secrets: string[] = [TEST_PASSWORD];
    const loggedOut: string[] = [];

    beforeAll(async () => {
      t = await startWithCards(kind, pki, { establishments: [RENNES] });
      alice = await createUser(t, 'alice');
      cecile = await createUser(t, 'cecile.sage');
      await t.passerelle.services.establishments.add(cecile.id, RENNES.finess, 'test');
      await new CardCertificates(t.passerelle.services.database.db).register(
        cecile.id,
        nodeCert(pki.cards.cps),
      );
      dpiSecret = await registerWebClient(t, 'dpi', { first_party: true });
      secrets.push(dpiSecret);
      dpi = await discover(t, 'dpi', oidc.ClientSecretBasic(dpiSecret));
    });
    afterAll(async () => {
      await t?.close();
    });

    /** Rows after `seq`, with the asserted fields only (amr sorted). */
    const rowsAfter = async (seq: string, types?: string[]) => {
      let query = t.passerelle.services.database.db
        .selectFrom('audit_event')
        .select([...FIELDS, 'seq', 'ip', 'request_id'])
        .where('seq', '>', seq)
        .orderBy('seq');
      if (types) query = query.where('type', 'in', types);
      return (await query.execute()).map((r) => ({ ...r, amr: r.amr ? [...r.amr].sort() : r.amr }));
    };
    const lastSeq = async () => {
      const row = await t.passerelle.services.database.db
        .selectFrom('audit_event')
        .select(sql<string>`coalesce(max(seq), 0)::text`.as('seq'))
        .executeTakeFirstOrThrow();
      return row.seq;
    };
    const pick = <R extends Record<string, unknown>>(rows: R[]) =>
      rows.map((r) => Object.fromEntries(FIELDS.map((f) => [f, r[f]])));

    it('config.loaded at start: the digest of the running configuration and the instance id', async () => {
      const rows = await t.passerelle.services.database.db
        .selectFrom('audit_event')
        .selectAll()
        .where('type', '=', 'config.loaded')
        .execute();
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({
        outcome: 'success',
        instance_id: t.passerelle.services.audit.instanceId,
        detail: {
          sha256: configDigest(t.config),
          instanceId: t.passerelle.services.audit.instanceId,
          demo: false,
        },
      });
      expect(JSON.stringify(rows)).not.toContain(t.config.keys.encryptionKey);
    });

    it('sessions: start, refresh (re-authentication), expiry recorded once, logout with back-channel deliveries', async () => {
      const agent = new BrowserAgent();
      const before = await lastSeq();
      const pending = await authorizationRequest(dpi, REDIRECT);
      const { callback } = await browserLogin(agent, pending.url, t.issuer, {
        username: 'alice',
        password: TEST_PASSWORD,
      });
      const tokens = await redeemCode(dpi, pending, callback);
      secrets.push(
        String(callback.searchParams.get('code')),
        tokens.access_token,
        tokens.refresh_token ?? '',
      );
      const sessionRow = await t.passerelle.services.database.db
        .selectFrom('auth_session')
        .select('session_uid')
        .where('account_id', '=', alice.id)
        .executeTakeFirstOrThrow();
      const sessionId = sessionRow.session_uid;
      const started = await rowsAfter(before, ['session.started']);
      expect(pick(started)).toEqual([
        {
          type: 'session.started',
          outcome: 'success',
          account_id: alice.id,
          client_id: 'dpi',
          session_id: sessionId,
          interaction_id: expect.any(String),
          method: 'password',
          amr: ['pwd'],
          acr: 'urn:passerelle:loa:low',
          reason: null,
          national_id: null,
          tid: null,
          establishment: null,
          detail: { methods: ['password'], profile: 'standard' },
        },
      ]);
      expect(started[0]?.ip).toBe('127.0.0.1');
      expect(started[0]?.request_id).toEqual(expect.any(String));
      // The interaction id is the one of the password attempt.
      const attempt = await rowsAfter(before, ['auth.attempt']);
      expect(attempt.map((r) => r.interaction_id)).toEqual([started[0]?.interaction_id]);

      // prompt=login on a live session of the same account: a refresh, not a new session.
      const mark = await lastSeq();
      const again = await authorizationRequest(dpi, REDIRECT, { prompt: 'login' });
      const relogin = await browserLogin(agent, again.url, t.issuer, {
        username: 'alice',
        password: TEST_PASSWORD,
      });
      expect(relogin.callback.searchParams.get('code')).toBeTruthy();
      expect(
        (await rowsAfter(mark, ['session.started', 'session.refreshed'])).map((r) => [r.type, r.session_id]),
      ).toEqual([['session.refreshed', sessionId]]);

      // Idle for too long: two requests find it expired, one record.
      const idle = await lastSeq();
      await t.passerelle.services.database.db
        .updateTable('auth_session')
        .set({ last_active_at: new Date(Date.now() - (t.config.sessions.idleSeconds + 60) * 1000) })
        .where('session_uid', '=', sessionId)
        .execute();
      for (let i = 0; i < 2; i++) {
        const step = await agent.follow((await authorizationRequest(dpi, REDIRECT)).url, t.issuer);
        expect(step.url.pathname).toMatch(/^\/interaction\//);
      }
      expect(pick(await rowsAfter(idle, ['session.expired']))).toEqual([
        {
          type: 'session.expired',
          outcome: 'success',
          account_id: alice.id,
          client_id: 'dpi',
          session_id: sessionId,
          interaction_id: null,
          method: null,
          amr: null,
          acr: null,
          reason: 'idle',
          national_id: null,
          tid: null,
          establishment: null,
          detail: null,
        },
      ]);
      // A new login on that session brings it back to life: started anew (the expired one is not live).
      const back = await authorizationRequest(dpi, REDIRECT);
      await browserLogin(agent, back.url, t.issuer, { username: 'alice', password: TEST_PASSWORD });
      expect((await rowsAfter(idle, ['session.started'])).map((r) => r.session_id)).toEqual([sessionId]);

      // Front-channel logout, confirmed; the back-channel delivery to an unreachable client fails.
      await registerWebClient(t, 'dpi-logout', {
        first_party: true,
        backchannel_logout_uri: 'http://127.0.0.1:9/logout',
        backchannel_logout_session_required: true,
      });
      const withLogout = await discover(t, 'dpi-logout', oidc.None());
      const toLogout = await authorizationRequest(withLogout, REDIRECT);
      await followThroughConsent(agent, toLogout.url.toString(), t.issuer);
      const out = await lastSeq();
      await agent.follow(new URL('/session/end', t.issuer), t.issuer);
      const confirm = await agent.postForm(
        new URL(formAction(agent.lastHtml, '/session/end/confirm'), t.issuer),
        {
          xsrf: formField(agent.lastHtml, 'xsrf') ?? '',
          logout: 'yes',
        },
      );
      expect(confirm.status).toBe(303);
      loggedOut.push(sessionId);
      const ended = pick(await rowsAfter(out));
      expect(
        ended.map((r) => [r.type, r.outcome, r.client_id, r.reason, r.session_id, r.account_id]),
      ).toEqual([
        ['session.ended', 'success', null, 'rp_initiated_logout', sessionId, alice.id],
        ['logout.backchannel', 'failure', 'dpi-logout', 'delivery_failed', sessionId, alice.id],
      ]);
      expect(ended[0]?.detail).toBeNull();
      expect(ended[1]?.detail).toEqual({ sid: expect.any(String), error: 'TypeError' });
    });

    it('tokens: issued (code, refresh), introspection, revocation, refused, refresh-token reuse', async () => {
      const agent = new BrowserAgent();
      const pending = await authorizationRequest(dpi, REDIRECT);
      const { callback } = await browserLogin(agent, pending.url, t.issuer, {
        username: 'alice',
        password: TEST_PASSWORD,
      });
      const before = await lastSeq();
      const tokens = await redeemCode(dpi, pending, callback);
      const refreshed = await oidc.refreshTokenGrant(dpi, tokens.refresh_token ?? '');
      expect((await oidc.tokenIntrospection(dpi, refreshed.access_token)).active).toBe(true);
      await oidc.tokenRevocation(dpi, refreshed.refresh_token ?? '');
      await oidc.tokenRevocation(dpi, refreshed.refresh_token ?? '');
      const wrong = await discover(t, 'dpi', oidc.ClientSecretBasic(`${dpiSecret}x`));
      // A 401 with a challenge: openid-client reports it as such; the record says invalid_client.
      await expect(oidc.refreshTokenGrant(wrong, tokens.refresh_token ?? '')).rejects.toThrow();
      secrets.push(
        String(callback.searchParams.get('code')),
        tokens.access_token,
        tokens.refresh_token ?? '',
        tokens.id_token ?? '',
        refreshed.access_token,
        refreshed.refresh_token ?? '',
      );

      const rows = await rowsAfter(before);
      const sessionId = rows[0]?.session_id;
      expect(sessionId).toEqual(expect.any(String));
      const grantId = (rows[0]?.detail as { grantId?: string } | undefined)?.grantId;
      const common = {
        account_id: alice.id,
        client_id: 'dpi',
        interaction_id: null,
        method: null,
        national_id: null,
        tid: null,
        establishment: null,
      };
      const issued = (grantType: string, access: string) => ({
        ...common,
        type: 'token.issued',
        outcome: 'success',
        session_id: sessionId,
        amr: ['pwd'],
        acr: 'urn:passerelle:loa:low',
        reason: null,
        detail: {
          grantType,
          scopes: ['openid', 'profile', 'email', 'offline_access'],
          jtiSha256: tokenDigest(access),
          // Not rotated for a confidential client: the same refresh token both times.
          refreshTokenSha256: tokenDigest(tokens.refresh_token ?? ''),
          idToken: true,
          grantId,
        },
      });
      const none = { session_id: null, amr: null, acr: null };
      expect(pick(rows)).toEqual([
        issued('authorization_code', tokens.access_token),
        issued('refresh_token', refreshed.access_token),
        {
          ...common,
          ...none,
          type: 'token.introspected',
          outcome: 'success',
          reason: null,
          detail: {
            active: true,
            kind: 'AccessToken',
            jtiSha256: tokenDigest(refreshed.access_token),
            tokenClientId: 'dpi',
          },
        },
        {
          ...common,
          ...none,
          type: 'token.revoked',
          outcome: 'success',
          session_id: sessionId,
          reason: null,
          detail: {
            kind: 'RefreshToken',
            jtiSha256: tokenDigest(refreshed.refresh_token ?? ''),
            revokedGrants: [grantId],
          },
        },
        // Already revoked: nothing to revoke.
        {
          ...common,
          ...none,
          type: 'token.revoked',
          outcome: 'failure',
          account_id: null,
          reason: 'token_unknown',
          detail: null,
        },
        {
          ...common,
          ...none,
          type: 'token.issued',
          outcome: 'failure',
          account_id: null,
          reason: 'invalid_client',
          detail: { grantType: 'refresh_token' },
        },
      ]);

      // A public client's refresh tokens rotate: the consumed one presented again revokes the grant.
      await registerPublicClient(t, 'spa', { first_party: true });
      const spa = await discover(t, 'spa', oidc.None());
      const spaPending = await authorizationRequest(spa, REDIRECT);
      const spaResult = await followThroughConsent(agent, spaPending.url.toString(), t.issuer);
      const spaTokens = await redeemCode(spa, spaPending, spaResult.url);
      const rotated = await oidc.refreshTokenGrant(spa, spaTokens.refresh_token ?? '');
      expect(rotated.refresh_token).not.toBe(spaTokens.refresh_token);
      secrets.push(spaTokens.access_token, spaTokens.refresh_token ?? '', rotated.refresh_token ?? '');
      const mark = await lastSeq();
      await expect(oidc.refreshTokenGrant(spa, spaTokens.refresh_token ?? '')).rejects.toMatchObject({
        error: 'invalid_grant',
      });
      const reuse = pick(await rowsAfter(mark));
      expect(reuse).toEqual([
        {
          ...common,
          ...none,
          client_id: 'spa',
          type: 'token.refresh_reuse',
          outcome: 'failure',
          session_id: expect.any(String),
          reason: 'reuse_detected',
          detail: {
            grantType: 'refresh_token',
            jtiSha256: tokenDigest(spaTokens.refresh_token ?? ''),
            revokedGrants: [expect.any(String)],
          },
        },
      ]);

      // An authorization code redeemed twice: the second attempt revokes the grant.
      const codeRequest = await authorizationRequest(dpi, REDIRECT);
      const codeResult = await followThroughConsent(agent, codeRequest.url.toString(), t.issuer);
      const code = String(codeResult.url.searchParams.get('code'));
      const redeemed = await redeemCode(dpi, codeRequest, codeResult.url);
      secrets.push(code, redeemed.access_token, redeemed.refresh_token ?? '');
      const replay = await lastSeq();
      await expect(redeemCode(dpi, codeRequest, codeResult.url)).rejects.toMatchObject({
        error: 'invalid_grant',
      });
      expect(pick(await rowsAfter(replay))).toEqual([
        {
          ...common,
          ...none,
          type: 'token.code_reuse',
          outcome: 'failure',
          // The engine deletes the code with its grant before saying so: the client and grant identify it.
          account_id: null,
          reason: 'reuse_detected',
          detail: {
            grantType: 'authorization_code',
            jtiSha256: tokenDigest(code),
            revokedGrants: [expect.any(String)],
          },
        },
      ]);
    });
    it('federation to PSC: one psc.federation.accepted with tid, establishment, oid, amr and acr as sent, national id', async () => {
      await t.passerelle.services.identities.set(cecile.id, IDNAT.cps, 'cps-certificate', 'verified');
      const pscSecret = await registerWebClient(t, 'psc-rennes', { psc_establishment: RENNES.finess });
      secrets.push(pscSecret);
      const psc = await discover(t, 'psc-rennes', oidc.ClientSecretBasic(pscSecret));
      const agent = new BrowserAgent();
      const pending = await authorizationRequest(psc, REDIRECT, { acr_values: 'eidas1' });
      const step = await agent.follow(pending.url, t.issuer);
      const uid = /\/interaction\/([^/?"]+)/.exec(step.url.pathname)?.[1] ?? '';
      await agent.follow(new URL(`/interaction/${uid}?method=smartcard`, t.issuer), t.issuer);
      const landed = await presentCard(agent, t.issuer, pki.cards.cps, pki.serverCa.pem);
      const before = await lastSeq();
      const tokens = await redeemCode(psc, pending, landed.url);
      secrets.push(tokens.access_token, tokens.id_token ?? '', String(landed.url.searchParams.get('code')));
      const claims = tokens.claims();
      const rows = pick(await rowsAfter(before, ['psc.federation.accepted']));
      expect(rows).toEqual([
        {
          type: 'psc.federation.accepted',
          outcome: 'success',
          account_id: cecile.id,
          client_id: 'psc-rennes',
          session_id: expect.any(String),
          interaction_id: null,
          method: null,
          amr: [...((claims?.amr ?? []) as string[])].sort(),
          acr: 'eidas1',
          reason: null,
          national_id: IDNAT.cps,
          tid: RENNES.tid,
          establishment: RENNES.finess,
          detail: { oid: cecile.id, grantType: 'authorization_code', nationalIdOrigin: 'rpps' },
        },
      ]);
      expect(rows[0]?.amr).toEqual(['hwk', 'mfa', 'pin', 'sc']);
      // The card login carries the national id in its own field, not in the detail.
      const login = await t.passerelle.services.database.db
        .selectFrom('audit_event')
        .select(['national_id', 'detail'])
        .where('type', '=', 'auth.attempt')
        .where('method', '=', 'smartcard')
        .where('interaction_id', '=', uid)
        .execute();
      expect(login).toHaveLength(1);
      expect(login[0]?.national_id).toBe(IDNAT.cps);
      expect(login[0]?.detail).not.toHaveProperty('idNat');
    });

    it('no password, client secret, authorization code or token value in any audit row', async () => {
      const rows = await t.passerelle.services.database.db.selectFrom('audit_event').selectAll().execute();
      const text = JSON.stringify(rows);
      expect(rows.length).toBeGreaterThan(20);
      const values = secrets.filter((s) => s.length >= 16);
      expect(values.length).toBeGreaterThanOrEqual(15);
      for (const value of values) expect(text).not.toContain(value);
      // The session that was logged out has its records, and none is about another type than expected.
      expect(loggedOut).toHaveLength(1);
    });
  });

  describe(`audit trail: administration from the command line [${kind}]`, forCommands(11), () => {
    let database: TestDatabase;
    const dataDir = join(tmpdir(), `passerelle-audit-cli-${randomBytes(6).toString('hex')}`);
    let env: Record<string, string>;
    beforeAll(async () => {
      database = await createTestDatabase(kind);
      env = cleanEnv({
        PASSERELLE_ISSUER: 'http://127.0.0.1:3999',
        PASSERELLE_KEYS__ENCRYPTION_KEY: randomBytes(32).toString('base64'),
        ...(database.url ? { DATABASE_URL: database.url } : { PASSERELLE_DATABASE__DATA_DIR: dataDir }),
      });
    });
    afterAll(async () => {
      rmSync(dataDir, { recursive: true, force: true });
      await database?.drop();
    });

    it('accounts, clients and signing keys: one record per act, with the operator, never the secret', async () => {
      const cli = async (args: string[], input?: string) => {
        const result = await runCli(args, { env, input });
        expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(0);
        return result.stdout;
      };
      const newPassword = `${TEST_PASSWORD} again`;
      const accountActs = async () => {
        await cli(['users', 'add', 'bob', '--password-stdin'], TEST_PASSWORD);
        await cli(['users', 'disable', 'bob']);
        await cli(['users', 'enable', 'bob']);
        await cli(['users', 'set-password', 'bob', '--password-stdin'], newPassword);
      };
      const clientActs = async () => {
        const added = await cli(['clients', 'add', 'lab', '--redirect-uri', REDIRECT]);
        const rotated = await cli(['clients', 'rotate-secret', 'lab']);
        await cli(['clients', 'remove', 'lab']);
        return [added, rotated];
      };
      // PGlite's data directory takes one process at a time; PostgreSQL runs the independent chains at once.
      let outputs: string[];
      let keys: string;
      if (kind === 'pglite') {
        await accountActs();
        outputs = await clientActs();
        keys = await cli(['keys', 'rotate']);
      } else {
        [, outputs, keys] = await Promise.all([accountActs(), clientActs(), cli(['keys', 'rotate'])]);
      }
      const clientSecrets = outputs.map((o) => /shown once, store it now\): (\S+)/.exec(o)?.[1] ?? '');
      const kids = [...keys.matchAll(/new key (\S+)/g)].map((m) => m[1]);
      expect(kids).toHaveLength(2);

      const { config } = loadConfig({
        env: {},
        overrides: {
          issuer: env.PASSERELLE_ISSUER,
          database: database.url ? { url: database.url } : { dataDir },
          keys: { encryptionKey: env.PASSERELLE_KEYS__ENCRYPTION_KEY },
        },
      });
      const handle = await connectDatabase(config);
      try {
        const rows = await handle.db.selectFrom('audit_event').selectAll().orderBy('seq').execute();
        // In the order of each chain of commands (the chains may interleave).
        const family = (type: string) => type.split('.').slice(0, 2).join('.');
        const byChain = rows.toSorted((a, b) => family(a.type).localeCompare(family(b.type)));
        const bob = await handle.db
          .selectFrom('account')
          .select('id')
          .where('username', '=', 'bob')
          .executeTakeFirstOrThrow();
        const actor = expect.stringMatching(/^cli(:|$)/);
        expect(byChain.map((r) => [r.type, r.outcome, r.account_id, r.client_id, r.detail])).toEqual([
          ['admin.account.added', 'success', bob.id, null, { via: 'cli', actor, username: 'bob' }],
          ['admin.account.disabled', 'success', bob.id, null, { via: 'cli', actor, username: 'bob' }],
          ['admin.account.enabled', 'success', bob.id, null, { via: 'cli', actor, username: 'bob' }],
          ['admin.account.password_set', 'success', bob.id, null, { via: 'cli', actor, username: 'bob' }],
          [
            'admin.client.added',
            'success',
            null,
            'lab',
            {
              via: 'cli',
              actor,
              authMethod: 'client_secret_basic',
              redirectUris: [REDIRECT],
              grantTypes: ['authorization_code', 'refresh_token'],
              pkceRequired: true,
            },
          ],
          ['admin.client.secret_rotated', 'success', null, 'lab', { via: 'cli', actor }],
          ['admin.client.removed', 'success', null, 'lab', { via: 'cli', actor }],
          // The first command on the new database created the signing keys.
          [
            'admin.keys.created',
            'success',
            null,
            null,
            { via: 'start', family: 'EC-P256', kid: expect.any(String) },
          ],
          [
            'admin.keys.created',
            'success',
            null,
            null,
            { via: 'start', family: 'RSA-3072', kid: expect.any(String) },
          ],
          ['admin.keys.rotated', 'success', null, null, { via: 'cli', actor, kids }],
        ]);
        const text = JSON.stringify(rows);
        for (const value of [TEST_PASSWORD, newPassword, ...clientSecrets]) {
          expect(value.length).toBeGreaterThan(20);
          expect(text).not.toContain(value);
        }
      } finally {
        await handle.close();
      }
    });
  });
}
