import { createRemoteJWKSet, decodeProtectedHeader, type JWK, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listSigningKeys, rotateSigningKeys } from '../src/oidc/keys.ts';
import { BrowserAgent, browserLogin } from './helpers/browser-agent.ts';
import {
  authorizationRequest,
  createUser,
  discover,
  REDIRECT,
  registerWebClient,
  TEST_PASSWORD,
} from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

/** How long retired keys stay published (the CLI uses the longest token lifetime plus a margin). */
const PUBLISH_RETIRED_FOR = 660;

/** A full code flow as alice through `t`, in the given browser (its session cookie is reused). */
async function codeFlow(
  t: Pick<TestServer, 'issuer'>,
  config: oidc.Configuration,
  agent = new BrowserAgent(),
) {
  const pending = await authorizationRequest(config, REDIRECT);
  const { callback, forms } = await browserLogin(agent, pending.url, t.issuer, {
    username: 'alice',
    password: TEST_PASSWORD,
  });
  const tokens = await oidc.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: pending.verifier,
    expectedState: pending.state,
    expectedNonce: pending.nonce,
    idTokenExpected: true,
  });
  return { tokens, idToken: tokens.id_token ?? '', forms };
}

async function publishedKeys(t: Pick<TestServer, 'issuer'>): Promise<JWK[]> {
  const response = await fetch(`${t.issuer}/jwks`);
  expect(response.status).toBe(200);
  return ((await response.json()) as { keys: JWK[] }).keys;
}

async function publishedKids(t: Pick<TestServer, 'issuer'>): Promise<string[]> {
  return (await publishedKeys(t)).map((k) => k.kid ?? '').sort();
}

/** The active kid of a family, as recorded in the database. */
async function activeKid(t: TestServer, family: 'EC-P256' | 'RSA-3072'): Promise<string> {
  const keys = await listSigningKeys(t.passerelle.services.database.db);
  const active = keys.filter((k) => k.family === family && !k.retiredAt);
  expect(active).toHaveLength(1);
  return active[0]?.kid ?? '';
}

async function rotate(t: TestServer): Promise<string[]> {
  const { database, sealer } = t.passerelle.services;
  return rotateSigningKeys(database.db, sealer, PUBLISH_RETIRED_FOR);
}

for (const kind of databasesUnderTest()) {
  describe(`signing key rotation [${kind}]`, () => {
    let t: TestServer;
    let secret: string;
    beforeAll(async () => {
      t = await startTestServer(kind);
      await createUser(t, 'alice');
      secret = await registerWebClient(t, 'dpi');
    });
    afterAll(async () => {
      await t?.close();
    });

    it('tokens issued before a rotation stay valid, the JWKS publishes old and new keys, new ID tokens use the new key', async () => {
      const config = await discover(t, 'dpi', oidc.ClientSecretBasic(secret));
      const jwksUri = new URL(config.serverMetadata().jwks_uri ?? '');
      expect(jwksUri.href).toBe(`${t.issuer}/jwks`);
      const agent = new BrowserAgent();
      const before = await codeFlow(t, config, agent);
      const oldEc = await activeKid(t, 'EC-P256');
      const oldRsa = await activeKid(t, 'RSA-3072');
      expect(decodeProtectedHeader(before.idToken)).toMatchObject({ alg: 'ES256', kid: oldEc });
      expect(await publishedKids(t)).toEqual([oldEc, oldRsa].sort());

      const created = await rotate(t);
      expect(created).toHaveLength(2);
      const newEc = await activeKid(t, 'EC-P256');
      const newRsa = await activeKid(t, 'RSA-3072');
      expect(created.sort()).toEqual([newEc, newRsa].sort());

      // The running instance notices the new fingerprint (reloadIntervalSeconds is 1 in tests).
      await expect
        .poll(() => publishedKids(t), { timeout: 60_000, interval: 200 })
        .toEqual([oldEc, oldRsa, newEc, newRsa].sort());
      for (const key of await publishedKeys(t)) {
        // Public parts only.
        expect(key, key.kid).not.toHaveProperty('d');
        expect(key, key.kid).not.toHaveProperty('p');
        expect(key.use).toBe('sig');
      }

      // Signed before the rotation: still verifiable against the published set.
      const jwks = createRemoteJWKSet(jwksUri);
      const verified = await jwtVerify(before.idToken, jwks, { issuer: t.issuer, audience: 'dpi' });
      expect(verified.protectedHeader.kid).toBe(oldEc);
      // The opaque access token issued before the engine swap still works.
      const sub = before.tokens.claims()?.sub ?? '';
      expect((await oidc.fetchUserInfo(config, before.tokens.access_token, sub)).preferred_username).toBe(
        'alice',
      );

      // A refresh after the rotation: new ID token, new key.
      const refreshed = await oidc.refreshTokenGrant(config, before.tokens.refresh_token ?? '');
      expect(decodeProtectedHeader(refreshed.id_token ?? '')).toMatchObject({ alg: 'ES256', kid: newEc });
      await jwtVerify(refreshed.id_token ?? '', jwks, { issuer: t.issuer, audience: 'dpi' });

      // A new authorization in the same browser: the SSO session survived the engine swap.
      const after = await codeFlow(t, config, agent);
      // No identifier or password asked for (authorizationRequest asks for prompt=consent).
      expect(after.forms).toEqual(['consent']);
      expect(decodeProtectedHeader(after.idToken)).toMatchObject({ alg: 'ES256', kid: newEc });
      expect(after.tokens.claims()?.sid).toBe(before.tokens.claims()?.sid);
      await jwtVerify(after.idToken, jwks, { issuer: t.issuer, audience: 'dpi' });
    });

    it('a client asking for PS256 or RS256 gets ID tokens signed with the 3072-bit RSA key', async () => {
      const meta = (await discover(t, 'dpi', oidc.ClientSecretBasic(secret))).serverMetadata();
      expect(meta.id_token_signing_alg_values_supported).toEqual(
        expect.arrayContaining(['ES256', 'PS256', 'RS256']),
      );
      const rsaKid = await activeKid(t, 'RSA-3072');
      const rsaJwk = (await publishedKeys(t)).find((k) => k.kid === rsaKid);
      expect(rsaJwk?.kty).toBe('RSA');
      expect(Buffer.from(rsaJwk?.n ?? '', 'base64url').length * 8).toBe(3072);

      for (const alg of ['PS256', 'RS256'] as const) {
        const clientId = `dpi-${alg.toLowerCase()}`;
        const clientSecret = await registerWebClient(t, clientId, { id_token_signed_response_alg: alg });
        const config = await discover(t, clientId, oidc.ClientSecretBasic(clientSecret), {
          id_token_signed_response_alg: alg,
        });
        const { idToken } = await codeFlow(t, config);
        expect(decodeProtectedHeader(idToken), alg).toMatchObject({ alg, kid: rsaKid });
        const verified = await jwtVerify(idToken, createRemoteJWKSet(new URL(`${t.issuer}/jwks`)), {
          issuer: t.issuer,
          audience: clientId,
          algorithms: [alg],
        });
        expect(verified.payload.aud).toBe(clientId);
      }
    });
  });
}

// PGlite keeps its data in the memory of one process: only PostgreSQL can be shared by two instances.
if (databasesUnderTest().includes('postgres')) {
  describe('key rotation seen by a second instance on the same database [postgres]', () => {
    let first: TestServer;
    let second: TestServer;
    let secret: string;
    beforeAll(async () => {
      first = await startTestServer('postgres');
      second = await startTestServer('postgres', {
        database: first.database,
        // The same key-encryption key: the instances share sealed keys and secrets.
        config: { keys: { encryptionKey: first.config.keys.encryptionKey, reloadIntervalSeconds: 1 } },
      });
      await createUser(first, 'alice');
      secret = await registerWebClient(first, 'dpi');
    });
    afterAll(async () => {
      await second?.close();
      await first?.close();
    });

    it('picks up a rotation made through the first instance without a restart', async () => {
      const initial = await publishedKids(first);
      expect(initial).toHaveLength(2);
      expect(await publishedKids(second)).toEqual(initial);
      const config = await discover(second, 'dpi', oidc.ClientSecretBasic(secret));
      const before = await codeFlow(second, config);
      const oldEc = await activeKid(first, 'EC-P256');
      expect(decodeProtectedHeader(before.idToken).kid).toBe(oldEc);

      const created = await rotate(first);
      const expected = [...initial, ...created].sort();
      await expect.poll(() => publishedKids(second), { timeout: 60_000, interval: 200 }).toEqual(expected);
      await expect.poll(() => publishedKids(first), { timeout: 60_000, interval: 200 }).toEqual(expected);

      const newEc = await activeKid(second, 'EC-P256');
      expect(created).toContain(newEc);
      const after = await codeFlow(second, config);
      expect(decodeProtectedHeader(after.idToken)).toMatchObject({ alg: 'ES256', kid: newEc });
      const secondJwks = createRemoteJWKSet(new URL(`${second.issuer}/jwks`));
      await jwtVerify(after.idToken, secondJwks, { issuer: second.issuer, audience: 'dpi' });
      await jwtVerify(before.idToken, secondJwks, { issuer: second.issuer, audience: 'dpi' });
    });
  });
}
