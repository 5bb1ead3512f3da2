import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  authUrl,
  basicAuthorization,
  REDIRECT,
  rawGet,
  rawPost,
  registerWebClient,
  S256_CHALLENGE,
} from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

for (const kind of databasesUnderTest()) {
  describe(`failed client authentications are throttled per source address [${kind}]`, () => {
    let t: TestServer;
    let secret: string;

    beforeAll(async () => {
      // trustProxy lets the test speak from two addresses through X-Forwarded-For.
      t = await startTestServer(kind, {
        config: {
          http: { trustProxy: true },
          rateLimits: { clientAuthPerIp: { max: 3, windowSeconds: 300 } },
        },
      });
      secret = await registerWebClient(t, 'svc', {
        grant_types: ['client_credentials', 'authorization_code'],
      });
    });
    afterAll(async () => {
      await t?.close();
    });

    const token = (from: string, clientSecret: string) =>
      rawPost(
        t,
        '/token',
        { grant_type: 'client_credentials' },
        { authorization: basicAuthorization('svc', clientSecret), 'x-forwarded-for': from },
      );

    it('after the limit, even the right secret fails from that address; other addresses and browsers are unaffected', async () => {
      const attacker = '203.0.113.50';
      const neighbour = '203.0.113.51';
      expect((await token(attacker, secret)).status).toBe(200);
      for (let i = 0; i < 3; i++) {
        const wrong = await token(attacker, `${secret}-wrong`);
        expect(wrong.status).toBe(401);
        expect(wrong.json?.error).toBe('invalid_client');
      }
      // Failures are counted just after each response: wait until the third one is recorded.
      await expect.poll(async () => (await token(attacker, secret)).status, { timeout: 60_000 }).toBe(401);
      const blocked = await token(attacker, secret);
      expect(blocked.json?.error).toBe('invalid_client');
      const introspection = await rawPost(
        t,
        '/token/introspection',
        { token: 'whatever' },
        { authorization: basicAuthorization('svc', secret), 'x-forwarded-for': attacker },
      );
      expect(introspection.status).toBe(401);

      expect((await token(neighbour, secret)).status).toBe(200);

      // The browser-facing authorization endpoint does not authenticate the client: not throttled.
      const auth = authUrl(t, {
        client_id: 'svc',
        response_type: 'code',
        scope: 'openid',
        redirect_uri: REDIRECT,
        code_challenge: S256_CHALLENGE,
        code_challenge_method: 'S256',
      });
      const browser = await rawGet(auth, { 'x-forwarded-for': attacker });
      expect(browser.status).toBe(303);
      expect(browser.headers.get('location')).toMatch(/^\/interaction\//);

      const counted = t.logs.filter((line) => line.includes('"msg":"client authentication failed"'));
      expect(counted.length).toBeGreaterThanOrEqual(3);
      expect(counted.join('\n')).not.toContain(secret);
    });
  });
}
