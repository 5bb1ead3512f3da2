import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { BrowserAgent, browserLogin } from './helpers/browser-agent.ts';
import {
  authorizationRequest,
  basicAuthorization,
  createUser,
  discover,
  type RawResponse,
  REDIRECT,
  rawPost,
  registerWebClient,
  TEST_PASSWORD,
} from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

const PARALLEL = 10;

for (const kind of databasesUnderTest()) {
  describe(`concurrent redemption of one authorization code [${kind}]`, () => {
    let t: TestServer;
    let secret: string;
    let authorization: string;
    /** The engine's reason for each refused token request (error_detail is not sent to clients). */
    const reasons: string[] = [];

    beforeAll(async () => {
      t = await startTestServer(kind);
      await createUser(t, 'alice');
      secret = await registerWebClient(t, 'dpi', {
        scope: 'openid profile offline_access',
        first_party: true,
      });
      authorization = basicAuthorization('dpi', secret);
      t.passerelle.services.host.provider.on('grant.error', (_ctx, err) => {
        reasons.push(String((err as { error_detail?: string }).error_detail));
      });
    });
    afterAll(async () => {
      await t?.close();
    });

    /** Logs alice in and returns the code and its verifier, not yet redeemed. */
    async function obtainCode() {
      const config = await discover(t, 'dpi', oidc.ClientSecretBasic(secret));
      const pending = await authorizationRequest(config, REDIRECT, {
        scope: 'openid profile offline_access',
      });
      const { callback } = await browserLogin(new BrowserAgent(), pending.url, t.issuer, {
        username: 'alice',
        password: TEST_PASSWORD,
      });
      const code = callback.searchParams.get('code');
      if (!code) throw new Error(`no code in ${callback}`);
      return { code, verifier: pending.verifier };
    }

    function redeemInParallel(code: string, verifier: string): Promise<RawResponse[]> {
      const form = {
        grant_type: 'authorization_code',
        code,
        redirect_uri: REDIRECT,
        code_verifier: verifier,
      };
      return Promise.all(
        Array.from({ length: PARALLEL }, () => rawPost(t, '/token', form, { authorization })),
      );
    }

    /** Exactly one 200; every other answer invalid_grant; afterwards the winner's tokens are dead. */
    async function expectOneWinnerThenRevoked(responses: RawResponse[]) {
      const statuses = responses.map((r) => r.status).sort();
      expect(statuses, JSON.stringify(responses.map((r) => r.json))).toEqual([
        200,
        ...Array(PARALLEL - 1).fill(400),
      ]);
      for (const loser of responses.filter((r) => r.status !== 200)) {
        expect(loser.json?.error).toBe('invalid_grant');
        expect(loser.json).not.toHaveProperty('access_token');
      }
      const winner = responses.find((r) => r.status === 200)?.json ?? {};
      const accessToken = String(winner.access_token ?? '');
      const refreshToken = String(winner.refresh_token ?? '');
      expect(accessToken).not.toBe('');
      expect(refreshToken).not.toBe('');

      // Every loser is a replay: the grant, and with it the winner's tokens, are revoked.
      const introspect = async (token: string) =>
        (await rawPost(t, '/token/introspection', { token }, { authorization })).json;
      expect(await introspect(accessToken)).toEqual({ active: false });
      expect(await introspect(refreshToken)).toEqual({ active: false });
      const userinfo = await fetch(new URL('/me', t.issuer), {
        headers: { authorization: `Bearer ${accessToken}` },
      });
      expect(userinfo.status).toBe(401);
      const refreshed = await rawPost(
        t,
        '/token',
        { grant_type: 'refresh_token', refresh_token: refreshToken },
        { authorization },
      );
      expect(refreshed.status).toBe(400);
      expect(refreshed.json?.error).toBe('invalid_grant');
    }

    it(`${PARALLEL} parallel redemptions: exactly one succeeds, then the whole grant is revoked`, async () => {
      const { code, verifier } = await obtainCode();
      reasons.length = 0;
      const responses = await redeemInParallel(code, verifier);
      expect(reasons).toHaveLength(PARALLEL - 1);
      for (const reason of reasons) {
        expect([
          'grant already used', // lost the atomic consume (adapter)
          'authorization code already consumed', // found it consumed (engine), revoked the grant
          'authorization code not found', // arrived after the revocation
          'grant not found',
        ]).toContain(reason);
      }
      await expectOneWinnerThenRevoked(responses);
    });

    it(`${PARALLEL} redemptions that all found the code unspent: the atomic consume lets one through`, async () => {
      const { code, verifier } = await obtainCode();
      // Hold every request at the consume step until all of them got there: each has found the code
      // unconsumed, so only the database's conditional update can tell them apart.
      const { AuthorizationCode } = t.passerelle.services.host.provider;
      const consume = AuthorizationCode.prototype.consume;
      let arrived = 0;
      let release: () => void = () => {};
      const barrier = new Promise<void>((resolve) => {
        release = resolve;
      });
      // Only against a hang: on a loaded machine the requests may take long to get there.
      const timeout = setTimeout(release, 120_000);
      // A spy is restored to exactly what was there, wherever in the prototype chain consume lives.
      const held = vi.spyOn(AuthorizationCode.prototype, 'consume').mockImplementation(async function (
        this: InstanceType<typeof AuthorizationCode>,
      ) {
        arrived++;
        if (arrived === PARALLEL) release();
        await barrier;
        return consume.call(this);
      });
      reasons.length = 0;
      let responses: RawResponse[];
      try {
        responses = await redeemInParallel(code, verifier);
      } finally {
        clearTimeout(timeout);
        held.mockRestore();
      }
      expect(AuthorizationCode.prototype.consume).toBe(consume);
      expect(arrived).toBe(PARALLEL);
      expect(reasons).toEqual(Array(PARALLEL - 1).fill('grant already used'));
      await expectOneWinnerThenRevoked(responses);
    });
  });
}
