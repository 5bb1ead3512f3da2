import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { text } from 'node:stream/consumers';
import { decodeJwt, decodeProtectedHeader, generateKeyPair, SignJWT } from 'jose';
import * as oidc from 'openid-client';
import type { Logger } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { NationalIdentities } from '../src/accounts/national-identity.ts';
import { loadConfig } from '../src/config/load.ts';
import { messages } from '../src/i18n/messages.ts';
import {
  acrRefusal,
  PSC_CALLBACK_PATH,
  type PscLoginSettings,
  pscIdentityOf,
  pscLoginMethod,
} from '../src/methods/psc/index.ts';
import { BrowserAgent, followThroughConsent, formAction, formField } from './helpers/browser-agent.ts';
import {
  authorizationRequest,
  codeClaims,
  createUser,
  discover,
  REDIRECT,
  registerWebClient,
  TEST_PASSWORD,
} from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { openHttpServer } from './helpers/net.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { generateProfessionals } from './simulators/annuaire/fixtures.ts';
import { type PscSimulator, REALM_PATH, startPscSimulator } from './simulators/psc/server.ts';

/**
 * « Se connecter avec Pro Santé Connect » against PSC as production and the ANS connector
 * (ansforge/keycloak-prosanteconnect) describe it: discovery from `wallet-openid-configuration`, the
 * authorization endpoint on the wallet host, userinfo as a signed JWT verified against PSC's JWKS, PSC's
 * acr checked against a minimum, and identities from Pro Santé Identité (EXI PSC 18 and 19). A hostile
 * network in front of PSC re-signs or garbles its answers: each is refused with a page, never a 500.
 */

const fr = messages.fr;
const PSC_CLIENT = { clientId: 'passerelle', clientSecret: 'passerelle-at-psc-secret' };
const WALLET_DISCOVERY = '/.well-known/wallet-openid-configuration';
const KEY = randomBytes(32).toString('base64');
const PROFESSIONALS = [...generateProfessionals({ count: 12, inactiveShare: 0, seed: 1313 })];
const professional = (index: number) => {
  const p = PROFESSIONALS[index];
  if (!p) throw new Error('no fixture');
  return p;
};
/** Identities of Pro Santé Identité: the format is not published, so the tests use several shapes. */
const PSI_ONLY = { psiId: 'PSI-4b1d-2026-0001', givenName: 'Inès', familyName: 'Morel' };
const PSI_OTHER = { psiId: '00000042', givenName: 'Paul', familyName: 'Roux' };
const PSI_REFUSED = { psiId: 'psi:refused-7', givenName: 'Léa', familyName: 'Petit' };
/** An RPPS professional enrolled in PSI too: PSC sends both identifiers. */
const IN_BOTH = { psiId: 'PSI-both-0007', idNatPs: professional(7).idNatPs };

interface Tamper {
  discovery?: (metadata: Record<string, unknown>) => Record<string, unknown>;
  token?: (body: Record<string, unknown>) => Promise<Record<string, unknown>>;
  userinfo?: (answer: {
    contentType: string;
    body: string;
  }) => Promise<{ status?: number; contentType: string; body: string }>;
}

/**
 * A hostile network between Passerelle and PSC: serves PSC's wallet discovery document with its token
 * and userinfo endpoints, and passes everything through unless told to tamper with it.
 */
async function startHostileNetwork(pscIssuer: string) {
  const tamper: Tamper = {};
  const protocol = `${pscIssuer}/protocol/openid-connect`;
  const server = createServer(async (req, res) => {
    const path = new URL(req.url ?? '/', 'http://proxy').pathname;
    try {
      if (path === WALLET_DISCOVERY) {
        const metadata = await (await fetch(`${pscIssuer}${WALLET_DISCOVERY}`)).json();
        metadata.token_endpoint = `${origin}/token`;
        metadata.userinfo_endpoint = `${origin}/userinfo`;
        const body = JSON.stringify(tamper.discovery ? tamper.discovery(metadata) : metadata);
        res.writeHead(200, { 'content-type': 'application/json' }).end(body);
      } else if (path === '/token') {
        const upstream = await fetch(`${protocol}/token`, {
          method: 'POST',
          headers: {
            'content-type': req.headers['content-type'] ?? '',
            ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
          },
          body: await text(req),
        });
        let body = (await upstream.json()) as Record<string, unknown>;
        if (upstream.ok && tamper.token) body = await tamper.token(body);
        res.writeHead(upstream.status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      } else if (path === '/userinfo') {
        const upstream = await fetch(`${protocol}/userinfo`, {
          headers: { authorization: req.headers.authorization ?? '' },
        });
        const answer = {
          contentType: upstream.headers.get('content-type') ?? '',
          body: await upstream.text(),
        };
        const out = tamper.userinfo ? await tamper.userinfo(answer) : { ...answer, status: upstream.status };
        res.writeHead(out.status ?? 200, { 'content-type': out.contentType }).end(out.body);
      } else {
        res.writeHead(404).end();
      }
    } catch {
      res.writeHead(502).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    discoveryUrl: `${origin}${WALLET_DISCOVERY}`,
    tamper,
    reset: () => {
      for (const key of Object.keys(tamper)) delete tamper[key as keyof Tamper];
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A JWT with the same header and claims, signed by a key PSC never published. */
const rogue = await generateKeyPair('RS256');
async function resigned(jwt: string): Promise<string> {
  const header = decodeProtectedHeader(jwt);
  return new SignJWT(decodeJwt(jwt))
    .setProtectedHeader({ alg: 'RS256', ...(header.kid ? { kid: header.kid } : {}) })
    .sign(rogue.privateKey);
}

describe('reading PSC’s answers (no server)', () => {
  const settings = (extra: Record<string, unknown> = {}): PscLoginSettings => {
    const { config } = loadConfig({
      env: {},
      overrides: {
        issuer: 'https://passerelle.chu.test',
        database: { url: 'postgres://x@127.0.0.1/x' },
        keys: { encryptionKey: KEY },
        pscLogin: {
          issuer: 'https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet',
          clientId: 'c',
          clientSecret: 's',
          ...extra,
        },
      },
    });
    if (!config.pscLogin) throw new Error('no pscLogin');
    return config.pscLogin;
  };
  const psi = new RegExp(settings().psi.identifierPattern, 'u');

  it('defaults: wallet discovery, minimum eidas1 among eidas1 < eidas2, PSI identities accepted', () => {
    const s = settings();
    expect(s.discoveryUrl).toBeUndefined();
    expect(s.authorizationEndpoint).toBeUndefined();
    expect(s).toMatchObject({
      minimumAcr: 'eidas1',
      acrLevels: ['eidas1', 'eidas2'],
      psi: { accept: true, identifierPattern: '^[!-~]{1,128}$' },
    });
  });

  it('refuses a configuration that cannot work', () => {
    expect(() => settings({ minimumAcr: 'eidas3' })).toThrow(/minimumAcr/);
    expect(() => settings({ psi: { identifierPattern: '([' } })).toThrow(/identifierPattern/);
    expect(() => settings({ discoveryUrl: 'https://auth.esw.esante.gouv.fr/discovery' })).toThrow(
      /\.well-known/,
    );
    expect(() => settings({ authorizationEndpoint: 'http://wallet.esw.esante.gouv.fr/auth' })).toThrow(
      /authorizationEndpoint/,
    );
  });

  it('acr: at least the minimum by the configured order; missing or unknown refused', () => {
    const s = settings();
    expect(acrRefusal('eidas1', s)).toBeUndefined();
    expect(acrRefusal('eidas2', s)).toBeUndefined();
    expect(acrRefusal(undefined, s)).toBe('acr_missing');
    expect(acrRefusal('', s)).toBe('acr_missing');
    expect(acrRefusal(['eidas1'], s)).toBe('acr_missing');
    // Keycloak's own levels when no PSC level is set, and a level nobody published.
    expect(acrRefusal('0', s)).toBe('acr_unknown');
    expect(acrRefusal('eidas3', s)).toBe('acr_unknown');
    const strict = settings({ minimumAcr: 'eidas2' });
    expect(acrRefusal('eidas1', strict)).toBe('acr_too_low');
    expect(acrRefusal('eidas2', strict)).toBeUndefined();
  });

  it('SubjectNameID and/or PSISubjectNameID (EXI PSC 18): which identity, from which registry', () => {
    const rpps = professional(0).idNatPs;
    const session = { sid: 's-1', authMode: 'MOBILE' };
    expect(pscIdentityOf({ SubjectNameID: rpps, authMode: 'MOBILE' }, { sid: 's-1' }, psi)).toEqual({
      idNat: rpps,
      origin: 'rpps',
      psiId: undefined,
      ...session,
    });
    // Both: the RPPS identity, with the PSI id beside it.
    expect(pscIdentityOf({ SubjectNameID: rpps, PSISubjectNameID: 'PSI-1' }, {}, psi)).toMatchObject({
      idNat: rpps,
      origin: 'rpps',
      psiId: 'PSI-1',
    });
    // PSI only: SubjectNameID absent, the same id, or something that is not an idNatPS.
    for (const subjectNameId of [undefined, 'PSI-1', 'not-an-idnat']) {
      expect(
        pscIdentityOf({ SubjectNameID: subjectNameId, PSISubjectNameID: 'PSI-1' }, {}, psi),
      ).toMatchObject({ idNat: 'PSI-1', origin: 'psi', psiId: 'PSI-1' });
    }
    // The PSI id copied into SubjectNameID stays a PSI identity, even shaped like an idNatPS.
    expect(pscIdentityOf({ SubjectNameID: rpps, PSISubjectNameID: rpps }, {}, psi)).toMatchObject({
      idNat: rpps,
      origin: 'psi',
    });
    // From the ID token when userinfo lacks it; digits only are a PSI id too when PSC says so.
    expect(pscIdentityOf({ sub: 'x' }, { PSISubjectNameID: '00000042' }, psi)).toMatchObject({
      idNat: '00000042',
      origin: 'psi',
    });
    // preferred_username stands for SubjectNameID only without a PSI id.
    expect(pscIdentityOf({ preferred_username: rpps }, {}, psi)).toMatchObject({ origin: 'rpps' });
    expect(pscIdentityOf({ preferred_username: rpps, PSISubjectNameID: 'PSI-1' }, {}, psi)).toMatchObject({
      origin: 'psi',
    });
    // Refusals.
    expect(pscIdentityOf({}, {}, psi)).toEqual({ invalid: 'no_national_id' });
    expect(pscIdentityOf({ SubjectNameID: '12345' }, {}, psi)).toEqual({ invalid: 'invalid_national_id' });
    for (const bad of ['with space', '', 'x'.repeat(129), 'é', 'a\nb']) {
      expect(pscIdentityOf({ PSISubjectNameID: bad }, {}, psi), JSON.stringify(bad)).toEqual(
        bad === '' ? { invalid: 'no_national_id' } : { invalid: 'invalid_psi_id' },
      );
    }
    expect(pscIdentityOf({ PSISubjectNameID: 42 }, {}, psi)).toEqual({ invalid: 'no_national_id' });
    // A narrower pattern, once the format is known, is a setting.
    expect(pscIdentityOf({ PSISubjectNameID: 'PSI-1' }, {}, /^\d{8}$/u)).toEqual({
      invalid: 'invalid_psi_id',
    });
  });
});

describe('PSC’s discovery: which document, which authorization endpoint (simulator with a wallet origin)', () => {
  let psc: PscSimulator;
  beforeAll(async () => {
    psc = await startPscSimulator({ clients: [], professionals: PROFESSIONALS, walletOrigin: true });
  });
  afterAll(() => psc?.close());

  const configurationWith = (extra: Record<string, unknown>) => {
    const { config } = loadConfig({
      env: {},
      overrides: {
        issuer: 'https://passerelle.chu.test',
        database: { url: 'postgres://x@127.0.0.1/x' },
        keys: { encryptionKey: KEY },
        pscLogin: { issuer: psc.issuer, ...PSC_CLIENT, allowInsecureHttp: true, ...extra },
      },
    });
    if (!config.pscLogin) throw new Error('no pscLogin');
    return pscLoginMethod({
      settings: config.pscLogin,
      issuer: 'https://passerelle.chu.test',
      db: undefined as never,
      identities: undefined as unknown as NationalIdentities,
      logger: undefined as unknown as Logger,
    }).configuration();
  };

  it('wallet-openid-configuration by default: the wallet’s authorization endpoint, the realm’s others', async () => {
    const metadata = (await configurationWith({})).serverMetadata();
    expect(metadata.authorization_endpoint).toBe(`${psc.walletOrigin}/auth`);
    expect(metadata.token_endpoint).toBe(`${psc.issuer}/protocol/openid-connect/token`);
    expect(metadata.jwks_uri).toBe(`${psc.issuer}/protocol/openid-connect/certs`);
  });

  it('Keycloak’s openid-configuration, with or without the wallet’s endpoint set by hand', async () => {
    const standard = `${psc.issuer}/.well-known/openid-configuration`;
    expect(
      (await configurationWith({ discoveryUrl: standard })).serverMetadata().authorization_endpoint,
    ).toBe(`${psc.issuer}/protocol/openid-connect/auth`);
    const forced = await configurationWith({
      discoveryUrl: standard,
      authorizationEndpoint: `${psc.walletOrigin}/auth`,
    });
    expect(forced.serverMetadata().authorization_endpoint).toBe(`${psc.walletOrigin}/auth`);
    expect(forced.serverMetadata().issuer).toBe(psc.issuer);
  });

  it('a document naming another issuer, or none at that URL, is refused', async () => {
    await expect(configurationWith({ issuer: `${psc.issuer}/` })).rejects.toThrow(/names the issuer/);
    await expect(
      configurationWith({ discoveryUrl: `${psc.walletOrigin}/.well-known/openid-configuration` }),
    ).rejects.toThrow();
  });
});

for (const kind of databasesUnderTest()) {
  describe(`login through PSC as the ANS connector does it [${kind}]`, () => {
    /** Passerelle with the defaults. */
    let t: TestServer;
    /** A second instance (its own database): minimum eidas2, RPPS identities only, behind a hostile network. */
    let strict: TestServer;
    let psc: PscSimulator;
    let network: Awaited<ReturnType<typeof startHostileNetwork>>;
    let rp: oidc.Configuration;
    let strictRp: oidc.Configuration;
    /** The acr PSC gives its next logins. */
    let pscAcr: string | null = 'eidas1';

    beforeAll(async () => {
      const pscServer = await openHttpServer();
      const pscIssuer = `${pscServer.origin}${REALM_PATH}`;
      const pscLogin = { issuer: pscIssuer, ...PSC_CLIENT, allowInsecureHttp: true };
      t = await startTestServer(kind, { config: { pscLogin } });
      network = await startHostileNetwork(pscIssuer);
      strict = await startTestServer(kind, {
        config: {
          pscLogin: {
            ...pscLogin,
            discoveryUrl: network.discoveryUrl,
            minimumAcr: 'eidas2',
            psi: { accept: false },
          },
        },
      });
      psc = await startPscSimulator({
        server: pscServer.server,
        professionals: PROFESSIONALS,
        walletOrigin: true,
        acr: () => pscAcr,
        psi: {
          identities: [PSI_ONLY, PSI_OTHER, PSI_REFUSED, { ...IN_BOTH, givenName: 'x', familyName: 'y' }],
        },
        // One registration at PSC for both instances; userinfo answered as a signed JWT.
        clients: [
          {
            ...PSC_CLIENT,
            redirectUris: [`${t.issuer}${PSC_CALLBACK_PATH}`, `${strict.issuer}${PSC_CALLBACK_PATH}`],
            userinfoSignedResponseAlg: 'RS256',
          },
        ],
      });
      rp = await discover(t, 'dpi', oidc.ClientSecretBasic(await registerWebClient(t, 'dpi')));
      strictRp = await discover(
        strict,
        'dpi',
        oidc.ClientSecretBasic(await registerWebClient(strict, 'dpi')),
      );
    });
    afterEach(() => {
      pscAcr = 'eidas1';
      network?.reset();
    });
    afterAll(async () => {
      await network?.close();
      await psc?.close();
      await strict?.close();
      await t?.close();
    });

    const pscOrigin = () => new URL(psc.issuer).origin;
    const rpOf = (server: TestServer) => (server === t ? rp : strictRp);
    const startLogin = async (server: TestServer, agent: BrowserAgent) => {
      const pending = await authorizationRequest(rpOf(server), REDIRECT);
      const first = await agent.follow(pending.url, server.issuer);
      const uid = /\/interaction\/([^/?"]+)/.exec(first.url.pathname)?.[1] ?? '';
      return { pending, uid };
    };
    /** The « Pro Santé Connect » page's button: to the wallet host, which hands over to the realm. */
    const pscButton = (html: string) =>
      new URL(/<a class="button" href="([^"]+)"/.exec(html)?.[1]?.replaceAll('&amp;', '&') ?? 'x:');
    const toPsc = async (server: TestServer, agent: BrowserAgent, uid: string) => {
      await agent.follow(new URL(`/interaction/${uid}?method=psc`, server.issuer), server.issuer);
      const url = pscButton(agent.lastHtml);
      expect(url.origin).toBe(psc.walletOrigin);
      expect(url.pathname).toBe('/auth');
      expect(url.searchParams.get('acr_values')).toBe('eidas1');
      const handedOver = await agent.follow(url, url.origin);
      expect(handedOver.url.href.startsWith(`${psc.issuer}/protocol/openid-connect/auth?`)).toBe(true);
      return agent.follow(handedOver.url, pscOrigin());
    };
    /** The simulated e-CPS at PSC for `identifier` (idNatPS or PSI id), then back into Passerelle. */
    const identifyAtPsc = async (server: TestServer, agent: BrowserAgent, identifier: string) => {
      const posted = await agent.postForm(new URL(formAction(agent.lastHtml, '/cps'), pscOrigin()), {
        idNatPs: identifier,
        authMode: 'MOBILE',
      });
      const back = await agent.follow(
        new URL(posted.headers.get('location') ?? '', pscOrigin()),
        pscOrigin(),
      );
      expect(back.url.href.startsWith(`${server.issuer}${PSC_CALLBACK_PATH}`)).toBe(true);
      return followThroughConsent(agent, back.url.href, server.issuer);
    };
    const login = async (server: TestServer, identifier: string) => {
      const agent = new BrowserAgent();
      const { pending, uid } = await startLogin(server, agent);
      await toPsc(server, agent, uid);
      const done = await identifyAtPsc(server, agent, identifier);
      return { agent, pending, uid, done };
    };
    const proveAccount = async (server: TestServer, agent: BrowserAgent, uid: string, username: string) => {
      const identified = await agent.postForm(new URL(`/interaction/${uid}/identify`, server.issuer), {
        csrf: formField(agent.lastHtml, 'csrf') ?? '',
        username,
      });
      await agent.follow(new URL(identified.headers.get('location') ?? '', server.issuer), server.issuer);
      const password = await agent.postForm(
        new URL(formAction(agent.lastHtml, '/method/password'), server.issuer),
        { csrf: formField(agent.lastHtml, 'csrf') ?? '', password: TEST_PASSWORD },
      );
      await agent.follow(new URL(password.headers.get('location') ?? '', server.issuer), server.issuer);
    };
    /** The PSC attempts of one login, as audited. */
    const attempts = (uid: string, server = t) =>
      server.passerelle.services.database.db
        .selectFrom('audit_event')
        .select(['outcome', 'reason', 'account_id', 'national_id', 'detail'])
        .where('type', '=', 'auth.attempt')
        .where('method', '=', 'psc')
        .where('interaction_id', '=', uid)
        .orderBy('seq')
        .execute();
    /** A refusal shown at Passerelle: the status, the French message, and no internal id on the page. */
    const expectRefusal = (
      agent: BrowserAgent,
      done: { response?: Response },
      status: number,
      message: string,
    ) => {
      expect(done.response?.status).toBe(status);
      expect(agent.lastHtml).toContain('lang="fr"');
      // The message alone: no reason code, identifier or level on the page.
      const alert = /<p class="error" role="alert"[^>]*>([^<]*)<\/p>/.exec(agent.lastHtml)?.[1];
      expect(alert).toBe(message.replaceAll('’', '’'));
    };

    it('wallet host for the authorization request, the realm for the rest; userinfo as a signed JWT', async () => {
      const alice = await createUser(t, 'alice.wallet');
      await t.passerelle.services.identities.set(alice.id, professional(1).idNatPs, 'manual', 'verified');
      const { pending, uid, done } = await login(t, professional(1).idNatPs);
      expect(await codeClaims(rp, pending, done.url)).toMatchObject({ sub: alice.id });
      expect(await attempts(uid)).toEqual([
        {
          outcome: 'success',
          reason: null,
          account_id: alice.id,
          national_id: professional(1).idNatPs,
          detail: expect.objectContaining({ identityOrigin: 'rpps', authMode: 'MOBILE', linked: 'existing' }),
        },
      ]);
    });

    it('PSC’s acr: a higher level passes; a missing or unknown one is refused with a French page', async () => {
      const bruno = await createUser(t, 'bruno.acr');
      await t.passerelle.services.identities.set(bruno.id, professional(2).idNatPs, 'manual', 'verified');
      pscAcr = 'eidas2';
      const higher = await login(t, professional(2).idNatPs);
      expect(await codeClaims(rp, higher.pending, higher.done.url)).toMatchObject({ sub: bruno.id });

      for (const [acr, reason] of [
        [null, 'acr_missing'],
        ['0', 'acr_unknown'],
      ] as const) {
        pscAcr = acr;
        const { agent, uid, done } = await login(t, professional(2).idNatPs);
        expectRefusal(agent, done, 403, fr['error.psc_level_too_low']);
        expect(await attempts(uid)).toEqual([
          {
            outcome: 'failure',
            reason,
            account_id: null,
            national_id: professional(2).idNatPs,
            detail: { identityOrigin: 'rpps', acr: acr ?? 'none', minimumAcr: 'eidas1' },
          },
        ]);
      }
    });

    it('a discovery document naming another issuer: PSC is shown unavailable, never a 500', async () => {
      // The first login on the strict instance: it has not read PSC's discovery yet (failures are not kept).
      network.tamper.discovery = (m) => ({ ...m, issuer: 'https://auth.esw.esante.gouv.fr/evil' });
      const agent = new BrowserAgent();
      const { uid } = await startLogin(strict, agent);
      const page = await agent.follow(
        new URL(`/interaction/${uid}?method=psc`, strict.issuer),
        strict.issuer,
      );
      expect(page.response?.status).toBe(200);
      expect(agent.lastHtml).toContain(fr['psc.login.unavailable']);
      expect(agent.lastHtml).not.toContain(fr['psc.login.submit']);
      network.reset();
      await agent.follow(new URL(`/interaction/${uid}?method=psc`, strict.issuer), strict.issuer);
      expect(pscButton(agent.lastHtml).origin).toBe(psc.walletOrigin);
    });

    it('below the configured minimum (eidas2 here) is refused with a French page', async () => {
      const { agent, uid, done } = await login(strict, professional(2).idNatPs);
      expectRefusal(agent, done, 403, fr['error.psc_level_too_low']);
      expect(await attempts(uid, strict)).toMatchObject([
        { outcome: 'failure', reason: 'acr_too_low', detail: { acr: 'eidas1', minimumAcr: 'eidas2' } },
      ]);
      pscAcr = 'eidas2';
      const passed = await login(strict, professional(2).idNatPs);
      expect(passed.done.url.searchParams.get('code')).toBeTruthy();
    });

    it('an ID token or a userinfo JWT signed by a key PSC never published is refused', async () => {
      pscAcr = 'eidas2';
      network.tamper.token = async (body) => ({ ...body, id_token: await resigned(String(body.id_token)) });
      const forgedIdToken = await login(strict, professional(3).idNatPs);
      expectRefusal(forgedIdToken.agent, forgedIdToken.done, 401, fr['error.upstream_failed']);
      expect(await attempts(forgedIdToken.uid, strict)).toMatchObject([
        { outcome: 'failure', reason: 'token_exchange_failed' },
      ]);
      network.reset();

      network.tamper.userinfo = async (answer) => {
        expect(answer.contentType).toMatch(/^application\/jwt/);
        return { ...answer, body: await resigned(answer.body) };
      };
      const forgedUserinfo = await login(strict, professional(3).idNatPs);
      expectRefusal(forgedUserinfo.agent, forgedUserinfo.done, 401, fr['error.upstream_failed']);
      expect(await attempts(forgedUserinfo.uid, strict)).toMatchObject([
        { outcome: 'failure', reason: 'userinfo_failed' },
      ]);
    });

    it('a malformed userinfo answer is refused with a page: HTML, garbage JWT, another sub, an error', async () => {
      pscAcr = 'eidas2';
      const answers = [
        { contentType: 'text/html', body: '<html><body>Maintenance</body></html>' },
        { contentType: 'application/jwt', body: 'not.a.jwt' },
        {
          contentType: 'application/json',
          body: JSON.stringify({ sub: 'someone-else', SubjectNameID: '8' }),
        },
        { contentType: 'application/json', body: '{"sub":' },
        { status: 500, contentType: 'application/json', body: '{"error":"server_error"}' },
      ];
      for (const answer of answers) {
        network.tamper.userinfo = async () => answer;
        const { agent, uid, done } = await login(strict, professional(3).idNatPs);
        expectRefusal(agent, done, 401, fr['error.upstream_failed']);
        expect(await attempts(uid, strict), answer.body).toMatchObject([
          { outcome: 'failure', reason: 'userinfo_failed' },
        ]);
      }
    });

    it('a Pro Santé Identité identity: the user proves the account, PSC links it (origin psi); then it signs in alone', async () => {
      const ines = await createUser(t, 'ines.psi');
      const first = await login(t, PSI_ONLY.psiId);
      expectRefusal(first.agent, first.done, 403, fr['error.psc_not_linked']);
      expect(await attempts(first.uid)).toEqual([
        {
          outcome: 'failure',
          reason: 'unknown_national_id',
          account_id: null,
          national_id: PSI_ONLY.psiId,
          detail: { identityOrigin: 'psi', authMode: 'MOBILE', upstreamSid: expect.any(String) },
        },
      ]);
      await proveAccount(t, first.agent, first.uid, ines.username);
      const back = await first.agent.follow(pscButton(first.agent.lastHtml), psc.walletOrigin ?? '');
      const atPsc = await first.agent.follow(back.url, pscOrigin());
      const linked = await followThroughConsent(first.agent, atPsc.url.href, t.issuer);
      expect(await codeClaims(rp, first.pending, linked.url)).toMatchObject({ sub: ines.id });
      expect(await t.passerelle.services.identities.findByAccount(ines.id)).toMatchObject({
        idNat: PSI_ONLY.psiId,
        origin: 'psi',
        rpps: null,
        source: 'psc-login',
        status: 'verified',
      });
      const created = await t.passerelle.services.database.db
        .selectFrom('audit_event')
        .select(['national_id', 'detail'])
        .where('type', '=', 'rpps.link.created')
        .where('account_id', '=', ines.id)
        .execute();
      expect(created).toMatchObject([{ national_id: PSI_ONLY.psiId, detail: { origin: 'psi' } }]);

      // Alone, another time; an idNatPS equal to nothing, the RPPS never asked.
      const again = await login(t, PSI_ONLY.psiId);
      expect(await codeClaims(rp, again.pending, again.done.url)).toMatchObject({ sub: ines.id });
      expect(await t.passerelle.services.identities.findByIdNat(PSI_ONLY.psiId)).toBeUndefined();
      expect((await t.passerelle.services.identities.findByIdNat(PSI_ONLY.psiId, 'psi'))?.accountId).toBe(
        ines.id,
      );
    });

    it('the RPPS id and the PSI id together: an account linked by its PSI id moves to its RPPS id, no conflict', async () => {
      const { identities } = t.passerelle.services;
      const paul = await createUser(t, 'paul.both');
      await identities.set(paul.id, IN_BOTH.psiId, 'psc-login', 'verified', 'psi');
      const { pending, uid, done } = await login(t, IN_BOTH.idNatPs);
      expect(await codeClaims(rp, pending, done.url)).toMatchObject({ sub: paul.id });
      expect(await identities.findByAccount(paul.id)).toMatchObject({
        idNat: IN_BOTH.idNatPs,
        origin: 'rpps',
        status: 'verified',
        source: 'psc-login',
      });
      expect(await attempts(uid)).toMatchObject([
        {
          outcome: 'success',
          national_id: IN_BOTH.idNatPs,
          detail: { identityOrigin: 'rpps', psiId: IN_BOTH.psiId },
        },
      ]);
      expect((await identities.openReviews()).filter((r) => r.accountId === paul.id)).toEqual([]);
    });

    it('a PSI identity that contradicts the account’s RPPS link is a conflict queued with its origin', async () => {
      const { identities } = t.passerelle.services;
      const lea = await createUser(t, 'lea.conflict');
      await identities.set(lea.id, professional(5).idNatPs, 'manual', 'verified');
      const agent = new BrowserAgent();
      const { uid } = await startLogin(t, agent);
      await toPsc(t, agent, uid);
      await identifyAtPsc(t, agent, PSI_OTHER.psiId);
      await proveAccount(t, agent, uid, lea.username);
      const back = await agent.follow(pscButton(agent.lastHtml), psc.walletOrigin ?? '');
      const atPsc = await agent.follow(back.url, pscOrigin());
      const refused = await followThroughConsent(agent, atPsc.url.href, t.issuer);
      expectRefusal(agent, refused, 403, fr['error.national_id_conflict']);
      const review = (await identities.openReviews()).find((r) => r.accountId === lea.id);
      expect(review).toMatchObject({
        kind: 'conflict',
        idNat: PSI_OTHER.psiId,
        origin: 'psi',
        source: 'psc-login',
      });
      expect(review?.evidence.ownLinkBefore).toMatchObject({
        idNat: professional(5).idNatPs,
        origin: 'rpps',
      });
      // Rejected: the RPPS link is back as it was.
      await identities.decide(review?.id ?? '', 'reject', 'test');
      expect(await identities.findByAccount(lea.id)).toMatchObject({
        idNat: professional(5).idNatPs,
        origin: 'rpps',
        status: 'verified',
      });
      // Another one accepted: the account's link becomes the PSI identity (no RPPS number).
      const marc = await createUser(t, 'marc.accepted');
      await identities.set(marc.id, professional(6).idNatPs, 'manual', 'verified');
      const proof = await identities.recordProven(marc.id, 'PSI-accepted-01', 'psc-login', { origin: 'psi' });
      expect(proof.kind).toBe('conflict');
      if (proof.kind !== 'conflict') return;
      expect((await identities.decide(proof.reviewId, 'accept', 'test')).origin).toBe('psi');
      expect(await identities.findByAccount(marc.id)).toMatchObject({
        idNat: 'PSI-accepted-01',
        origin: 'psi',
        rpps: null,
        status: 'verified',
        source: 'psc-login',
      });
    });

    it('an establishment that takes RPPS identities only refuses a PSI identity with a French page', async () => {
      pscAcr = 'eidas2';
      const { agent, uid, done } = await login(strict, PSI_REFUSED.psiId);
      expectRefusal(agent, done, 403, fr['error.psc_identity_not_accepted']);
      expect(await attempts(uid, strict)).toMatchObject([
        {
          outcome: 'failure',
          reason: 'psi_not_accepted',
          national_id: PSI_REFUSED.psiId,
          detail: { identityOrigin: 'psi' },
        },
      ]);
    });
  });
}
