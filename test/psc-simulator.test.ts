import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BrowserAgent, formAction } from './helpers/browser-agent.ts';
import { pscSubject } from './simulators/psc/claims.ts';
import { type PscSimulator, startPscSimulator } from './simulators/psc/server.ts';

const SERVICE = {
  clientId: 'drimbox',
  clientSecret: 'drimbox-secret',
  redirectUris: ['https://drimbox.test/cb'],
};

/** openid-client configuration of a service against the simulator. */
function serviceConfiguration(psc: PscSimulator): Promise<oidc.Configuration> {
  return oidc.discovery(
    new URL(psc.issuer),
    SERVICE.clientId,
    undefined,
    oidc.ClientSecretBasic(SERVICE.clientSecret),
    { execute: [oidc.allowInsecureRequests] },
  );
}

interface ServiceLogin {
  url: URL;
  verifier: string;
  state: string;
  nonce: string;
}

async function serviceLogin(
  config: oidc.Configuration,
  extra: Record<string, string> = {},
): Promise<ServiceLogin> {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: SERVICE.redirectUris[0] as string,
    scope: 'openid scope_all',
    acr_values: 'eidas1',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...extra,
  });
  return { url, verifier, state, nonce };
}

function redeem(config: oidc.Configuration, login: ServiceLogin, callback: URL) {
  return oidc.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: login.verifier,
    expectedState: login.state,
    expectedNonce: login.nonce,
  });
}

describe('PSC simulator: provider side', () => {
  let psc: PscSimulator;
  let config: oidc.Configuration;
  let origin: string;

  beforeAll(async () => {
    psc = await startPscSimulator({ clients: [SERVICE] });
    origin = new URL(psc.issuer).origin;
    config = await serviceConfiguration(psc);
  });
  afterAll(() => psc.close());

  it('publishes its discovery document under both well-known names, with Keycloak paths', async () => {
    const standard = await (await fetch(`${psc.issuer}/.well-known/openid-configuration`)).json();
    const wallet = await (await fetch(`${psc.issuer}/.well-known/wallet-openid-configuration`)).json();
    expect(wallet).toEqual(standard);
    expect(standard.issuer).toBe(psc.issuer);
    expect(psc.issuer).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/auth\/realms\/esante-wallet$/);
    const protocol = `${psc.issuer}/protocol/openid-connect`;
    expect(standard).toMatchObject({
      authorization_endpoint: `${protocol}/auth`,
      token_endpoint: `${protocol}/token`,
      userinfo_endpoint: `${protocol}/userinfo`,
      jwks_uri: `${protocol}/certs`,
      end_session_endpoint: `${protocol}/logout`,
      introspection_endpoint: `${protocol}/token/introspect`,
    });
    expect(standard.scopes_supported).toEqual(
      expect.arrayContaining(
        'openid scope_all rpps referentiel identity eidas1 eidas2 profile email offline_access'.split(' '),
      ),
    );
    expect(standard.acr_values_supported).toContain('eidas1');
    expect(standard.id_token_signing_alg_values_supported).toEqual(['RS256', 'ES256']);
  });

  it('publishes public RS256 and ES256 keys', async () => {
    const { keys } = (await (await fetch(`${psc.issuer}/protocol/openid-connect/certs`)).json()) as {
      keys: Record<string, string>[];
    };
    expect(keys.map((k) => [k.kty, k.alg]).sort()).toEqual([
      ['EC', 'ES256'],
      ['RSA', 'RS256'],
    ]);
    for (const key of keys) expect(key.d).toBeUndefined();
  });

  it('logs a professional in with a simulated e-CPS and releases PSC claims', async () => {
    const professional = psc.professionals[3];
    if (!professional) throw new Error('no fixture');
    const login = await serviceLogin(config);
    const agent = new BrowserAgent();
    const page = await agent.follow(login.url, origin);
    expect(page.response?.status).toBe(200);
    expect(agent.lastHtml).toContain('Délégation');
    const posted = await agent.postForm(new URL(formAction(agent.lastHtml, '/card'), origin), {
      idNatPs: professional.idNatPs,
      authMode: 'MOBILE',
    });
    const back = await agent.follow(new URL(posted.headers.get('location') ?? '', origin), origin);
    expect(back.url.href.startsWith(SERVICE.redirectUris[0] as string)).toBe(true);
    const tokens = await redeem(config, login, back.url);
    const idToken = tokens.claims();
    expect(idToken).toMatchObject({
      iss: psc.issuer,
      aud: SERVICE.clientId,
      sub: pscSubject(professional.idNatPs),
      acr: 'eidas1',
      SubjectNameID: professional.idNatPs,
      authMode: 'MOBILE',
    });
    const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, idToken?.sub as string);
    expect(userinfo).toMatchObject({
      sub: pscSubject(professional.idNatPs),
      SubjectNameID: professional.idNatPs,
      preferred_username: professional.idNatPs,
      given_name: professional.givenName,
      family_name: professional.familyName,
      otherIds: [{ identifiant: professional.idNatPs, origine: 'RPPS', qualite: 1 }],
      SubjectRole: [`${professional.profession.code}^1.2.250.1.213.1.1.5.5`],
      authMode: 'MOBILE',
      acr: 'eidas1',
      sid: idToken?.sid,
    });
    expect(typeof idToken?.auth_time).toBe('number');
    expect(userinfo.SubjectRefPro).toMatchObject({
      exercices: [
        {
          codeProfession: professional.profession.code,
          codeCategorieProfessionnelle: professional.category.code,
          nomDexercice: professional.familyName,
          prenomDexercice: professional.givenName,
          activities: professional.activities.map((a) => ({
            codeModeExercice: a.mode.code,
            numeroFinessSite: a.finessSite ?? '',
            raisonSocialeSite: a.organizationName,
          })),
        },
      ],
    });
    expect(psc.events.at(-1)).toMatchObject({
      kind: 'direct-login',
      clientId: SERVICE.clientId,
      idNatPs: professional.idNatPs,
      authMode: 'MOBILE',
    });
  });
});
