import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BrowserAgent, formAction } from './helpers/browser-agent.ts';
import { redeemCode } from './helpers/clients.ts';
import { generateProfessionals } from './simulators/annuaire/fixtures.ts';
import { pscSubject } from './simulators/psc/claims.ts';
import { type PscSimulator, startPscSimulator } from './simulators/psc/server.ts';
import { SERVICE, serviceLogin } from './simulators/psc/testing.ts';

/**
 * The PSC simulator towards services (its OP side), with the options that reproduce what is known of
 * production and switch what is not: the wallet origin for authorization requests, userinfo as a signed
 * JWT, PSC's acr, and identities from Pro Santé Identité (PSISubjectNameID).
 */

const JWT_SERVICE = { ...SERVICE, clientId: 'jwt-service', userinfoSignedResponseAlg: 'RS256' as const };
/** Identifiers of Pro Santé Identité: their format is not published, the tests use several shapes. */
const PSI_ONLY = { psiId: 'PSI-7f3a-0001', givenName: 'Inès', familyName: 'Morel' };
const PSI_DIGITS = { psiId: '812345678901', givenName: 'Paul', familyName: 'Roux' };

/** A service's configuration from one of PSC's discovery documents. */
function configurationFrom(url: string, service: { clientId: string; clientSecret: string } = SERVICE) {
  return oidc.discovery(
    new URL(url),
    service.clientId,
    { redirect_uris: SERVICE.redirectUris },
    oidc.ClientSecretBasic(service.clientSecret),
    { execute: [oidc.allowInsecureRequests] },
  );
}

/** A direct login at PSC (the simulated CPS / e-CPS page) for `identifier`: an idNatPS or a PSI id. */
async function directLogin(psc: PscSimulator, config: oidc.Configuration, identifier: string) {
  const origin = new URL(psc.issuer).origin;
  const agent = new BrowserAgent();
  const login = await serviceLogin(config);
  let step = await agent.follow(login.url, new URL(login.url).origin);
  if (step.url.origin !== new URL(login.url).origin) step = await agent.follow(step.url, origin);
  expect(step.response?.status).toBe(200);
  const posted = await agent.postForm(new URL(formAction(agent.lastHtml, '/cps'), origin), {
    idNatPs: identifier,
    authMode: 'MOBILE',
  });
  const back = await agent.follow(new URL(posted.headers.get('location') ?? '', origin), origin);
  const tokens = await redeemCode(config, login, back.url);
  return { login, tokens, choice: agent.lastHtml };
}

describe('PSC simulator towards services: production defaults', () => {
  let psc: PscSimulator;

  beforeAll(async () => {
    psc = await startPscSimulator({ clients: [SERVICE, JWT_SERVICE] });
  });
  afterAll(() => psc.close());

  it('one origin by default: both discovery documents name the realm’s authorization endpoint', async () => {
    const wallet = await (await fetch(`${psc.issuer}/.well-known/wallet-openid-configuration`)).json();
    expect(wallet.authorization_endpoint).toBe(`${psc.issuer}/protocol/openid-connect/auth`);
    expect(psc.authorizationEndpoint).toBe(wallet.authorization_endpoint);
    expect(psc.walletOrigin).toBeUndefined();
    // Userinfo may be asked signed (Keycloak: per client): the algorithms are published.
    expect(wallet.userinfo_signing_alg_values_supported).toEqual(['RS256', 'ES256']);
  });

  it('answers userinfo in JSON by default, and as a JWT signed with its realm key when the client asks', async () => {
    const professional = psc.professionals[2];
    if (!professional) throw new Error('no fixture');
    const json = await configurationFrom(`${psc.issuer}/.well-known/wallet-openid-configuration`);
    const plain = await directLogin(psc, json, professional.idNatPs);
    const asJson = await fetch(`${psc.issuer}/protocol/openid-connect/userinfo`, {
      headers: { authorization: `Bearer ${plain.tokens.access_token}` },
    });
    expect(asJson.headers.get('content-type')).toMatch(/^application\/json/);
    expect(plain.tokens.claims()?.acr).toBe('eidas1');

    const signed = await configurationFrom(
      `${psc.issuer}/.well-known/wallet-openid-configuration`,
      JWT_SERVICE,
    );
    const { tokens } = await directLogin(psc, signed, professional.idNatPs);
    const response = await fetch(`${psc.issuer}/protocol/openid-connect/userinfo`, {
      headers: { authorization: `Bearer ${tokens.access_token}` },
    });
    expect(response.headers.get('content-type')).toMatch(/^application\/jwt/);
    const jwt = await response.text();
    const { payload, protectedHeader } = await jwtVerify(
      jwt,
      createRemoteJWKSet(new URL(`${psc.issuer}/protocol/openid-connect/certs`)),
      { issuer: psc.issuer, audience: JWT_SERVICE.clientId },
    );
    expect(protectedHeader.alg).toBe('RS256');
    expect(payload).toMatchObject({
      sub: pscSubject(professional.idNatPs),
      SubjectNameID: professional.idNatPs,
      acr: 'eidas1',
    });
    expect(payload.PSISubjectNameID).toBeUndefined();
  });
});

describe('PSC simulator towards services: options', () => {
  let psc: PscSimulator;
  const inBoth = () => {
    const p = psc.professionals[1];
    if (!p) throw new Error('no fixture');
    return p;
  };

  beforeAll(async () => {
    const professionals = [...generateProfessionals({ count: 10, inactiveShare: 0 })];
    const both = professionals[1];
    if (!both) throw new Error('no fixture');
    psc = await startPscSimulator({
      clients: [SERVICE],
      professionals,
      walletOrigin: true,
      acr: 'eidas2',
      psi: {
        identities: [
          PSI_ONLY,
          PSI_DIGITS,
          {
            psiId: 'PSI-both-42',
            givenName: both.givenName,
            familyName: both.familyName,
            idNatPs: both.idNatPs,
          },
        ],
      },
    });
  });
  afterAll(() => psc.close());

  it('takes authorization requests on the wallet origin and keeps the rest on the realm’s', async () => {
    const walletOrigin = psc.walletOrigin ?? '';
    expect(walletOrigin).not.toBe(new URL(psc.issuer).origin);
    const wallet = await (await fetch(`${psc.issuer}/.well-known/wallet-openid-configuration`)).json();
    const standard = await (await fetch(`${psc.issuer}/.well-known/openid-configuration`)).json();
    const protocol = `${psc.issuer}/protocol/openid-connect`;
    // As production: https://wallet.esw.esante.gouv.fr/auth, the rest under auth.esw…/realms/esante-wallet.
    expect(wallet).toMatchObject({
      issuer: psc.issuer,
      authorization_endpoint: `${walletOrigin}/auth`,
      token_endpoint: `${protocol}/token`,
      userinfo_endpoint: `${protocol}/userinfo`,
      jwks_uri: `${protocol}/certs`,
      end_session_endpoint: `${protocol}/logout`,
    });
    // Keycloak's own document keeps the realm's endpoint (still served).
    expect(standard.authorization_endpoint).toBe(`${protocol}/auth`);
    expect({ ...wallet, authorization_endpoint: '' }).toEqual({ ...standard, authorization_endpoint: '' });

    const forwarded = await fetch(`${walletOrigin}/auth?client_id=x&state=a.b.c`, { redirect: 'manual' });
    expect(forwarded.status).toBe(302);
    expect(forwarded.headers.get('location')).toBe(`${protocol}/auth?client_id=x&state=a.b.c`);
    expect((await fetch(`${walletOrigin}/other`)).status).toBe(404);

    // A whole login from the wallet's endpoint.
    const config = await configurationFrom(`${psc.issuer}/.well-known/wallet-openid-configuration`);
    const { login, tokens } = await directLogin(psc, config, inBoth().idNatPs);
    expect(login.url.origin).toBe(walletOrigin);
    expect(tokens.claims()?.sub).toBe(pscSubject(inBoth().idNatPs));
  });

  it('sends the acr it is given', async () => {
    const config = await configurationFrom(`${psc.issuer}/.well-known/openid-configuration`);
    const { tokens } = await directLogin(psc, config, inBoth().idNatPs);
    expect(tokens.claims()?.acr).toBe('eidas2');
    const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, oidc.skipSubjectCheck);
    expect(userinfo.acr).toBe('eidas2');
  });

  it('releases PSISubjectNameID: alone for an identity outside the RPPS, with SubjectNameID for one in both', async () => {
    const config = await configurationFrom(`${psc.issuer}/.well-known/openid-configuration`);
    const psiOnly = await directLogin(psc, config, PSI_ONLY.psiId);
    expect(psiOnly.choice).toContain(`Inès Morel — Pro Santé Identité (${PSI_ONLY.psiId})`);
    const claims = await oidc.fetchUserInfo(config, psiOnly.tokens.access_token, pscSubject(PSI_ONLY.psiId));
    expect(claims).toMatchObject({
      PSISubjectNameID: PSI_ONLY.psiId,
      given_name: PSI_ONLY.givenName,
      family_name: PSI_ONLY.familyName,
    });
    expect(claims.SubjectNameID).toBeUndefined();
    expect(psiOnly.tokens.claims()?.PSISubjectNameID).toBe(PSI_ONLY.psiId);
    expect(psc.events.at(-1)).toMatchObject({ kind: 'direct-login', idNatPs: '', psiId: PSI_ONLY.psiId });

    const both = await directLogin(psc, config, inBoth().idNatPs);
    const bothClaims = await oidc.fetchUserInfo(config, both.tokens.access_token, oidc.skipSubjectCheck);
    expect(bothClaims).toMatchObject({ SubjectNameID: inBoth().idNatPs, PSISubjectNameID: 'PSI-both-42' });
  });
});

describe('PSC simulator towards services: SubjectNameID of a PSI identity (unknown, a setting)', () => {
  let psc: PscSimulator;
  beforeAll(async () => {
    psc = await startPscSimulator({
      clients: [SERVICE],
      psi: { identities: [PSI_DIGITS], subjectNameId: 'psi' },
    });
  });
  afterAll(() => psc.close());

  it('puts the PSI id in SubjectNameID too when set so', async () => {
    const config = await configurationFrom(`${psc.issuer}/.well-known/openid-configuration`);
    const { tokens } = await directLogin(psc, config, PSI_DIGITS.psiId);
    const idToken = decodeJwt(tokens.id_token ?? '');
    expect(idToken).toMatchObject({ SubjectNameID: PSI_DIGITS.psiId, PSISubjectNameID: PSI_DIGITS.psiId });
  });
});
