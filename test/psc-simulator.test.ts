import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BrowserAgent, browserLogin, formAction, formField } from './helpers/browser-agent.ts';
import { REPO_ROOT } from './helpers/cli.ts';
import { createUser, redeemCode, registerWebClient, TEST_PASSWORD } from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { pscSubject } from './simulators/psc/claims.ts';
import type { RefusalReason } from './simulators/psc/federation.ts';
import { type ScriptedFi, startScriptedFi } from './simulators/psc/scripted-fi.ts';
import { type PscSimulator, startPscSimulator } from './simulators/psc/server.ts';
import {
  ALIAS,
  FI_CLIENT,
  SERVICE,
  STRONG_USER,
  serviceConfiguration,
  serviceLogin,
  startLogoutReceiver,
  submit,
  TENANT,
  throughFi,
} from './simulators/psc/testing.ts';

/** A direct login at PSC with a simulated CPS card or e-CPS, from a new browser. */
async function cpsLogin(
  psc: PscSimulator,
  config: oidc.Configuration,
  idNatPs: string,
  authMode: 'CARD' | 'MOBILE',
) {
  const origin = new URL(psc.issuer).origin;
  const agent = new BrowserAgent();
  const login = await serviceLogin(config);
  const page = await agent.follow(login.url, origin);
  expect(page.response?.status).toBe(200);
  const choice = agent.lastHtml;
  const posted = await agent.postForm(new URL(formAction(choice, '/cps'), origin), { idNatPs, authMode });
  const back = await agent.follow(new URL(posted.headers.get('location') ?? '', origin), origin);
  return { agent, choice, callback: back.url, tokens: await redeemCode(config, login, back.url) };
}

describe('PSC simulator: provider side', () => {
  let psc: PscSimulator;
  let config: oidc.Configuration;
  let origin: string;
  let receiver: Awaited<ReturnType<typeof startLogoutReceiver>>;
  const dmp = {
    clientId: 'dmp',
    clientSecret: 'dmp-secret',
    redirectUris: ['https://dmp.test/cb'],
    postLogoutRedirectUris: ['https://dmp.test/bye'],
  };

  beforeAll(async () => {
    receiver = await startLogoutReceiver();
    psc = await startPscSimulator({ clients: [SERVICE, { ...dmp, backchannelLogoutUri: receiver.uri }] });
    origin = new URL(psc.issuer).origin;
    config = await serviceConfiguration(psc);
  });
  afterAll(async () => {
    await psc.close();
    await receiver.close();
  });

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
    const { choice, callback, tokens } = await cpsLogin(psc, config, professional.idNatPs, 'MOBILE');
    expect(choice).toContain('Délégation');
    expect(callback.href.startsWith(SERVICE.redirectUris[0] as string)).toBe(true);
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
    expect(await oidc.tokenIntrospection(config, tokens.access_token)).toMatchObject({
      active: true,
      client_id: SERVICE.clientId,
      sub: pscSubject(professional.idNatPs),
      SubjectNameID: professional.idNatPs,
      authMode: 'MOBILE',
    });
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

  it('ends the session on RP-initiated logout and sends a logout token to the back-channel', async () => {
    const dmpConfig = await serviceConfiguration(psc, dmp);
    const professional = psc.professionals[5];
    if (!professional) throw new Error('no fixture');
    const { agent, tokens } = await cpsLogin(psc, dmpConfig, professional.idNatPs, 'CARD');
    const idToken = tokens.claims();
    expect(idToken?.authMode).toBe('CARD');

    const logoutUrl = oidc.buildEndSessionUrl(dmpConfig, {
      id_token_hint: tokens.id_token ?? '',
      post_logout_redirect_uri: 'https://dmp.test/bye',
      state: 'after-logout',
    });
    await agent.follow(logoutUrl, origin);
    expect(agent.lastHtml).toContain('Se déconnecter');
    const logoutToken = receiver.next();
    const confirmed = await agent.postForm(new URL(formAction(agent.lastHtml, '/logout/confirm'), origin), {
      xsrf: formField(agent.lastHtml, 'xsrf') ?? '',
      logout: 'yes',
    });
    expect(confirmed.headers.get('location')).toBe('https://dmp.test/bye?state=after-logout');
    const { payload } = await jwtVerify(
      await logoutToken,
      createRemoteJWKSet(new URL(`${psc.issuer}/protocol/openid-connect/certs`)),
      { issuer: psc.issuer, audience: 'dmp', typ: 'logout+jwt' },
    );
    expect(payload).toMatchObject({ sub: idToken?.sub, sid: idToken?.sid });
    expect(payload.events).toEqual({ 'http://schemas.openid.net/event/backchannel-logout': {} });
    // No single sign-on any more: the login page is shown again.
    const again = await agent.follow((await serviceLogin(dmpConfig)).url, origin);
    expect(again.response?.status).toBe(200);
    expect(agent.lastHtml).toContain('/cps"');
  });
});

describe('PSC simulator: delegation to an establishment FI', () => {
  let psc: PscSimulator;
  let fi: ScriptedFi;
  let config: oidc.Configuration;
  /** Added to the simulator's clock. */
  let clockOffsetMs = 0;
  const now = () => new Date(Date.now() + clockOffsetMs);

  beforeAll(async () => {
    psc = await startPscSimulator({ clients: [SERVICE], pairingTtlSeconds: 30 * 86_400, now });
    fi = await startScriptedFi({
      clients: [
        { ...FI_CLIENT, redirectUris: [psc.brokerRedirectUri(ALIAS), psc.brokerRedirectUri('ght-strict')] },
      ],
      user: STRONG_USER,
    });
    const common = {
      discoveryUrl: fi.issuer,
      ...FI_CLIENT,
      tidAllowList: [TENANT],
      amrAllowList: ['sc', 'pin', 'hwk', 'swk', 'mfa'],
    };
    psc.addFi({ alias: ALIAS, name: 'CHU de Rennes', ...common });
    psc.addFi({ alias: 'ght-strict', ...common, requireAcr: ['eidas2'] });
    config = await serviceConfiguration(psc);
  });
  afterAll(async () => {
    await psc.close();
    await fi.close();
  });
  beforeEach(() => {
    fi.user = { ...STRONG_USER };
    fi.faults = {};
    clockOffsetMs = 0;
  });

  it('pairs the local account at the first login, then only asks for confirmation', async () => {
    const professional = psc.professionals[7];
    if (!professional) throw new Error('no fixture');
    const first = await throughFi(psc, config, fi);
    expect(first.page.response?.status).toBe(200);
    expect(first.agent.lastHtml).toContain('Appairage de votre compte');
    expect(first.agent.lastHtml).toContain('CHU de Rennes');
    const back = await submit(psc, first, '/pairing', { idNatPs: professional.idNatPs });
    const tokens = await redeemCode(config, first.login, back.url);
    expect(tokens.claims()).toMatchObject({
      sub: pscSubject(professional.idNatPs),
      SubjectNameID: professional.idNatPs,
      acr: 'eidas1',
      authMode: 'DELEGATED',
    });
    expect(psc.pairings.all()).toMatchObject([
      { alias: ALIAS, tid: TENANT, oid: 'oid-42', idNatPs: professional.idNatPs, confirmations: [] },
    ]);
    expect(psc.events.slice(-2)).toMatchObject([
      {
        kind: 'accepted',
        clientId: SERVICE.clientId,
        login: {
          alias: ALIAS,
          tid: TENANT,
          oid: 'oid-42',
          sub: 'local-42',
          amr: STRONG_USER.amr,
          amrNotAccepted: ['x-editor'],
        },
      },
      { kind: 'paired', alias: ALIAS, tid: TENANT, oid: 'oid-42', idNatPs: professional.idNatPs },
    ]);

    const second = await throughFi(psc, config, fi);
    expect(second.agent.lastHtml).toContain('Confirmer la connexion');
    expect(second.agent.lastHtml).toContain(professional.idNatPs);
    expect(second.agent.lastHtml).not.toContain('/pairing"');
    const again = await submit(psc, second, '/confirm');
    const userinfo = await oidc.fetchUserInfo(
      config,
      (await redeemCode(config, second.login, again.url)).access_token,
      pscSubject(professional.idNatPs),
    );
    expect(userinfo).toMatchObject({ SubjectNameID: professional.idNatPs, authMode: 'DELEGATED' });
    expect(psc.pairings.find(ALIAS, TENANT, 'oid-42')?.confirmations).toHaveLength(1);
    expect(psc.events.at(-1)).toMatchObject({
      kind: 'confirmed',
      oid: 'oid-42',
      idNatPs: professional.idNatPs,
    });
  });

  it('forgets a pairing after pairingTtlSeconds', async () => {
    fi.user = { ...STRONG_USER, oid: 'oid-ttl' };
    const professional = psc.professionals[8];
    if (!professional) throw new Error('no fixture');
    await submit(psc, await throughFi(psc, config, fi), '/pairing', { idNatPs: professional.idNatPs });
    clockOffsetMs = 30 * 86_400_000 - 60_000;
    fi.user.authTime = now();
    expect((await throughFi(psc, config, fi)).agent.lastHtml).toContain('Confirmer la connexion');
    clockOffsetMs = 30 * 86_400_000 + 1000;
    fi.user.authTime = now();
    expect((await throughFi(psc, config, fi)).agent.lastHtml).toContain('Appairage de votre compte');
  });

  const refusals: [string, () => void, RefusalReason][] = [
    ['a tenant outside the allow-list', () => (fi.user.tid = 'tenant-elsewhere'), 'tid_not_allowed'],
    ['no tenant', () => (fi.user.tid = undefined), 'tid_missing'],
    ['no local account id', () => (fi.user.oid = undefined), 'oid_missing'],
    ['a password only', () => (fi.user.amr = ['pwd']), 'amr_not_allowed'],
    ['no amr', () => (fi.user.amr = undefined), 'amr_missing'],
    [
      'an authentication older than 4 h',
      () => (fi.user.authTime = new Date(Date.now() - 4 * 3600_000 - 60_000)),
      'auth_too_old',
    ],
  ];
  for (const [what, arrange, reason] of refusals) {
    it(`refuses ${what} (PSC's own check, guessed): ${reason}`, async () => {
      arrange();
      const pairingsBefore = psc.pairings.all().length;
      const step = await throughFi(psc, config, fi);
      expect(step.page.response?.status).toBe(403);
      expect(step.agent.lastHtml).toContain('Connexion refusée');
      expect(step.agent.lastHtml).toContain(`<code>${reason}</code>`);
      expect(psc.events.at(-1)).toMatchObject({
        kind: 'refused',
        clientId: SERVICE.clientId,
        alias: ALIAS,
        reason,
      });
      expect(psc.pairings.all()).toHaveLength(pairingsBefore);
    });
  }

  it('refuses an acr outside requireAcr, and sends the user back to the service with access_denied', async () => {
    fi.user.acr = 'eidas1';
    const step = await throughFi(psc, config, fi, 'ght-strict');
    expect(psc.events.at(-1)).toMatchObject({
      kind: 'refused',
      alias: 'ght-strict',
      reason: 'acr_not_allowed',
    });
    const back = await submit(psc, step, '/abort');
    expect(back.url.searchParams.get('error')).toBe('access_denied');
    expect(back.url.searchParams.get('state')).toBe(step.login.state);
  });

  it("refuses an ID token for another login (nonce) on Keycloak's 502 page: nonce_mismatch", async () => {
    fi.faults.nonce = 'forged-nonce';
    const step = await throughFi(psc, config, fi);
    expect(step.page.response?.status).toBe(502);
    expect(step.agent.lastHtml).toContain('Erreur inattendue');
    expect(psc.events.at(-1)).toMatchObject({
      kind: 'refused',
      clientId: SERVICE.clientId,
      reason: 'nonce_mismatch',
      status: 502,
    });
  });

  it('shows the login page for an unknown kc_idp_hint; refuses an answer for no pending login (400)', async () => {
    const origin = new URL(psc.issuer).origin;
    const agent = new BrowserAgent();
    const page = await agent.follow((await serviceLogin(config, { kc_idp_hint: 'nowhere' })).url, origin);
    expect(page.response?.status).toBe(200);
    expect(agent.lastHtml).toContain('/cps"');
    expect(psc.events.at(-1)).toMatchObject({ kind: 'idp-hint-ignored', alias: 'nowhere' });
    const forged = await agent.follow(`${psc.brokerRedirectUri(ALIAS)}?code=abc&state=a.b.c`, origin);
    expect(forged.response?.status).toBe(400);
    expect(psc.events.at(-1)).toMatchObject({ kind: 'refused', alias: ALIAS, reason: 'state_unknown' });
  });

  it('lists the establishments when no kc_idp_hint is given', async () => {
    const origin = new URL(psc.issuer).origin;
    const agent = new BrowserAgent();
    await agent.follow((await serviceLogin(config)).url, origin);
    const link = /href="([^"]*\/broker\/chu-rennes)"/.exec(agent.lastHtml)?.[1];
    expect(agent.lastHtml).toContain('CHU de Rennes');
    if (!link) throw new Error('no link to the establishment');
    const toFi = await agent.follow(new URL(link, origin), origin);
    expect(toFi.url.origin).toBe(fi.issuer);
  });
});

describe('PSC simulator: an FI whose signature does not verify', () => {
  it('refuses its ID token on the 502 page: bad_signature', async () => {
    const psc = await startPscSimulator({ clients: [SERVICE] });
    const fi = await startScriptedFi({
      clients: [{ ...FI_CLIENT, redirectUris: [psc.brokerRedirectUri(ALIAS)] }],
      user: STRONG_USER,
    });
    try {
      fi.faults.foreignKeys = true;
      psc.addFi({
        alias: ALIAS,
        discoveryUrl: fi.issuer,
        ...FI_CLIENT,
        tidAllowList: [TENANT],
        amrAllowList: ['hwk'],
      });
      const step = await throughFi(psc, await serviceConfiguration(psc), fi);
      expect(step.page.response?.status).toBe(502);
      expect(psc.events).toMatchObject([{ kind: 'refused', reason: 'bad_signature', status: 502 }]);
    } finally {
      await psc.close();
      await fi.close();
    }
  });
});

for (const kind of databasesUnderTest()) {
  describe(`PSC simulator with a real Passerelle as FI (${kind})`, () => {
    let t: TestServer;
    let psc: PscSimulator;
    let config: oidc.Configuration;

    beforeAll(async () => {
      t = await startTestServer(kind);
      psc = await startPscSimulator({ clients: [SERVICE] });
      await createUser(t, 'alice');
      const redirect_uris = ['passerelle', 'passerelle-wrong-secret'].map((alias) =>
        psc.brokerRedirectUri(alias),
      );
      // PSC registered as Keycloak's broker is by default: client_secret_post, no PKCE.
      const secret = await registerWebClient(t, 'psc', {
        redirect_uris,
        token_endpoint_auth_method: 'client_secret_post',
        pkce_required: false,
      });
      const fi = {
        discoveryUrl: t.issuer,
        clientId: 'psc',
        tidAllowList: [TENANT],
        amrAllowList: ['hwk', 'sc'],
      };
      psc.addFi({ alias: 'passerelle', ...fi, clientSecret: secret });
      psc.addFi({ alias: 'passerelle-wrong-secret', ...fi, clientSecret: 'not-the-secret' });
      config = await serviceConfiguration(psc);
    });
    afterAll(async () => {
      await psc.close();
      await t.close();
    });

    /** From the service through PSC to Passerelle's login pages, and back to PSC. */
    async function throughPasserelle(alias: string) {
      const origin = new URL(psc.issuer).origin;
      const agent = new BrowserAgent();
      const toFi = await agent.follow((await serviceLogin(config, { kc_idp_hint: alias })).url, origin);
      expect(toFi.url.origin).toBe(new URL(t.issuer).origin);
      const { callback } = await browserLogin(agent, toFi.url, t.issuer, {
        username: 'alice',
        password: TEST_PASSWORD,
      });
      expect(callback.href.startsWith(psc.brokerRedirectUri(alias))).toBe(true);
      return { agent, page: await agent.follow(callback, origin) };
    }

    it("verifies Passerelle's ID token (signature, iss, aud, nonce) and refuses it for lack of tid", async () => {
      const { page } = await throughPasserelle('passerelle');
      expect(page.response?.status).toBe(403);
      expect(psc.events.at(-1)).toMatchObject({
        kind: 'refused',
        alias: 'passerelle',
        reason: 'tid_missing',
      });
    });

    it('reports a code Passerelle would not redeem: token_error', async () => {
      await throughPasserelle('passerelle-wrong-secret');
      expect(psc.events.at(-1)).toMatchObject({
        kind: 'refused',
        alias: 'passerelle-wrong-secret',
        reason: 'token_error',
        detail: expect.stringContaining('invalid_client'),
        status: 502,
      });
    });
  });
}

describe('PSC simulator: the runnable entry (npm run simulator:psc)', () => {
  it('serves the configured service and FI until stopped', async () => {
    const child = spawn(
      process.execPath,
      [
        join(REPO_ROOT, 'test/simulators/psc/main.ts'),
        ...['--port', '0', '--client-id', 'drimbox', '--redirect-uri', 'https://drimbox.test/cb'],
        ...['--fi-alias', 'chu', '--fi-discovery-url', 'http://127.0.0.1:9/', '--fi-tid', TENANT],
        ...['--fi-client-auth-method', 'private_key_jwt', '--fi-pkce', 'S256', '--fi-short-state'],
        ...['--fi-validate-signature', 'false', '--fi-claim-filter', 'tid=tenant-.*'],
      ],
      { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    let stdout = '';
    for await (const chunk of child.stdout) {
      stdout += String(chunk);
      if (stdout.includes('broker settings')) break;
    }
    const issuer = /simulator: (\S+)/.exec(stdout)?.[1] ?? '';
    expect(stdout).toContain(`redirect URI to register there: ${issuer}/broker/chu/endpoint`);
    expect(stdout).toContain(
      `post-logout redirect URI to register there: ${issuer}/broker/chu/endpoint/logout_response`,
    );
    expect(stdout).toContain(
      `back-channel logout URI to register there: ${issuer}/protocol/openid-connect/logout/backchannel-logout`,
    );
    expect(JSON.parse(/broker settings[^:]*: (.*)/.exec(stdout)?.[1] ?? '')).toEqual({
      clientAuthMethod: 'private_key_jwt',
      pkceEnabled: true,
      pkceMethod: 'S256',
      requiresShortStateParameter: true,
      validateSignature: false,
      filteredByClaim: true,
      claimFilterName: 'tid',
      claimFilterValue: 'tenant-.*',
    });
    const discovery = await (await fetch(`${issuer}/.well-known/wallet-openid-configuration`)).json();
    expect(discovery.issuer).toBe(issuer);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
