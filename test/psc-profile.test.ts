import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config/load.ts';
import { shapeForPsc } from '../src/federation/psc-profile.ts';
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

const RENNES = { finess: '350005179', name: 'CHU de Rennes', tid: 'tid-rennes-0001', pscAlias: 'chu-rennes' };
const VANNES = { finess: '560008799', name: 'CH de Vannes', tid: 'tid-vannes-0002' };
const PSC = {
  psc: {
    // The password method is enough for this test of the token shape; the PSC policy is tested elsewhere.
    amrAllowList: ['pwd', 'mfa'],
    acrValues: { 'urn:passerelle:loa:low': 'eidas1' },
  },
};

describe('PSC profile: amr and acr sent to PSC', () => {
  const psc = loadConfig({ env: {}, overrides: { demo: true } }).config.psc;
  it('keeps only the allowed amr values and maps the acr; an unmapped level sends no acr', () => {
    expect(
      shapeForPsc({ sub: 'x', amr: ['hwk', 'pin', 'mfa', 'user'], acr: 'urn:passerelle:loa:high' }, psc),
    ).toEqual({
      sub: 'x',
      amr: ['hwk', 'pin', 'mfa'],
      acr: 'eidas1',
    });
    expect(shapeForPsc({ amr: ['pwd'], acr: 'urn:passerelle:loa:low' }, psc)).toEqual({ amr: [] });
  });

  it('configuration errors name the key', () => {
    const load = (overrides: Record<string, unknown>) => () =>
      loadConfig({ env: {}, overrides: { demo: true, ...overrides } });
    expect(load({ establishments: [RENNES, { ...VANNES, tid: RENNES.tid }] })).toThrow(
      /establishments \(from command line\): each tid must be unique/,
    );
    expect(load({ establishments: [{ ...RENNES, finess: '35' }] })).toThrow(
      /establishments\.0\.finess: a FINESS number/,
    );
    expect(
      load({
        establishments: [RENNES],
        clients: [
          {
            clientId: 'psc',
            redirectUris: [REDIRECT],
            tokenEndpointAuthMethod: 'none',
            pscEstablishment: VANNES.finess,
          },
        ],
      }),
    ).toThrow(/clients\.0\.pscEstablishment: must be the FINESS of one of the establishments/);
    expect(load({ psc: { acrValues: { 'urn:other': 'eidas1' } } })).toThrow(ConfigError);
  });
});

for (const kind of databasesUnderTest()) {
  describe(`PSC as a client: tid, oid, amr and acr [${kind}]`, () => {
    let t: TestServer;
    let userId: string;

    beforeAll(async () => {
      t = await startTestServer(kind, { config: { establishments: [RENNES, VANNES], ...PSC } });
      userId = (await createUser(t, 'ines')).id;
    });
    afterAll(async () => {
      await t?.close();
    });

    const login = async (clientId: string, extra: Record<string, unknown> = {}) => {
      const secret = await registerWebClient(t, clientId, extra);
      const config = await discover(t, clientId, oidc.ClientSecretBasic(secret));
      const pending = await authorizationRequest(config, REDIRECT);
      const { callback } = await browserLogin(new BrowserAgent(), pending.url, t.issuer, {
        username: 'ines',
        password: TEST_PASSWORD,
      });
      const tokens = await oidc.authorizationCodeGrant(config, callback, {
        pkceCodeVerifier: pending.verifier,
        expectedState: pending.state,
        expectedNonce: pending.nonce,
      });
      return tokens.claims();
    };

    it('PSC acting for an establishment receives its tid, the account as oid, and the mapped acr', async () => {
      const claims = await login('psc-rennes', { psc_establishment: RENNES.finess });
      expect(claims).toMatchObject({
        sub: userId,
        tid: RENNES.tid,
        oid: userId,
        amr: ['pwd'],
        acr: 'eidas1',
      });
      expect(typeof claims?.auth_time).toBe('number');
      expect(claims?.idnat_ps).toBeUndefined();
      const vannes = await login('psc-vannes', { psc_establishment: VANNES.finess });
      expect(vannes).toMatchObject({ tid: VANNES.tid, oid: userId });
    });

    it('other clients receive neither tid nor oid, and Passerelle’s own acr', async () => {
      const claims = await login('dpi');
      expect(claims?.tid).toBeUndefined();
      expect(claims?.oid).toBeUndefined();
      expect(claims).toMatchObject({ amr: ['pwd'], acr: 'urn:passerelle:loa:low' });
    });

    it('a PSC client for an unknown establishment cannot be registered', async () => {
      await expect(registerWebClient(t, 'psc-nowhere', { psc_establishment: '999999999' })).rejects.toThrow(
        /psc_establishment must be the FINESS of a configured establishment/,
      );
    });
  });
}
