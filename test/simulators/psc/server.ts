import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Router } from '@koa/router';
import Koa, { type Context } from 'koa';
import Provider, { type Configuration, errors } from 'oidc-provider';
import { readForm } from '../../../src/interaction/form.ts';
import { generateProfessionals, type Professional } from '../annuaire/fixtures.ts';
import { type Delegation, type LogoutEvent, setUpBrokeredLogout } from './broker-logout.ts';
import {
  CLAIMS_BY_SCOPE,
  type DirectAuthMode,
  type PsiIdentity,
  type PsiSubjectNameId,
  professionalClaims,
  pscSubject,
  psiClaims,
  SCOPES_WITHOUT_CLAIMS,
} from './claims.ts';
import {
  type FederatedLogin,
  FiBroker,
  type FiOptions,
  type PendingBrokering,
  type Refusal,
  type RefusalReason,
  refusalStatus,
  type ServiceRequest,
  stateKey,
} from './federation.ts';
import { privateSigningJwk, type SigningAlg } from './keys.ts';
import type { BrokeredSession } from './logout.ts';
import {
  choicePage,
  confirmPage,
  LOGIN_MESSAGES,
  logoutPage,
  messagePage,
  pairingPage,
  refusalPage,
} from './pages.ts';
import { Pairings } from './pairings.ts';
import {
  BACKCHANNEL_LOGOUT_PATH,
  PROTOCOL,
  pscBackchannelLogoutUri,
  pscBrokerLogoutResponseUri,
  pscBrokerRedirectUri,
  REALM_PATH,
} from './urls.ts';

export {
  pscBackchannelLogoutUri,
  pscBrokerLogoutResponseUri,
  pscBrokerRedirectUri,
  REALM_PATH,
} from './urls.ts';

/**
 * A stand-in for Pro Santé Connect: a real OpenID Connect provider (oidc-provider) with Keycloak's paths
 * under `/auth/realms/esante-wallet`, PSC-style tokens and userinfo for its clients (the services), a
 * simulated CPS / e-CPS login, and the delegation of authentication to establishments' identity
 * providers (`kc_idp_hint`), with PSC's checks on their ID tokens and the pairing of local accounts.
 */

/** A service (a client of PSC). */
export interface PscClientOptions {
  clientId: string;
  /** Without a secret: a public client (PKCE required). */
  clientSecret?: string;
  /** Default: `client_secret_basic` with a secret, `none` without. */
  tokenEndpointAuthMethod?: 'client_secret_basic' | 'client_secret_post' | 'none';
  redirectUris: string[];
  postLogoutRedirectUris?: string[];
  /** Receives a logout token when the PSC session ends. */
  backchannelLogoutUri?: string;
  /**
   * Userinfo answered as a signed JWT (`application/jwt`) with this algorithm; unset: JSON. A per-client
   * setting in Keycloak ("User info signed response algorithm"); which one PSC uses for a service is not
   * published, and the ANS connector accepts both.
   */
  userinfoSignedResponseAlg?: SigningAlg;
}

export interface PscSimulatorOptions {
  /** Default 0: a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /**
   * An HTTP server already listening, with no request handler (`openHttpServer()` of test/helpers/net.ts),
   * to serve on instead of `port` and `host`: its issuer can be configured elsewhere before the simulator
   * starts. `close()` closes it.
   */
  server?: Server;
  /** National identities offered at pairing and at the CPS / e-CPS login. Default: 200 active fixtures. */
  professionals?: Professional[];
  clients: PscClientOptions[];
  /** Establishments' identity providers PSC delegates to. */
  fis?: FiOptions[];
  /** How long a pairing is remembered. Default: forever. */
  pairingTtlSeconds?: number;
  /** ID token signing algorithm. Default RS256 (Keycloak's default); both keys are published. */
  signingAlg?: SigningAlg;
  /**
   * Clock of PSC's own checks on a delegated login (auth_time at most 4 h old), the pairing lifetime and
   * the events. Default: the system clock. Keycloak's checks (exp, nbf, max_age) and client assertions
   * use the system clock: tests shift the FI's tokens instead.
   */
  now?: () => Date;
  /**
   * Request parameters PSC keeps from a service's authorization request besides the standard ones, so
   * that an FI's `forwardParameters` can copy them. Default: those named by `fis` at start.
   */
  extraParams?: string[];
  /**
   * Production's split (ANS connector's psc.properties): authorization requests at
   * `https://wallet.esw.esante.gouv.fr/auth`, on another origin than the realm, which keeps the token,
   * userinfo, JWKS and logout endpoints (`https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet/…`).
   * When set, a second origin answers `GET /auth` and `wallet-openid-configuration` names it. Default: one
   * origin.
   */
  walletOrigin?: boolean;
  /**
   * The `acr` of PSC's logins (ID token and userinfo), or a function of the login's `authMode` (asked at
   * each login). Default `eidas1`, as in PSC's samples; null: none.
   */
  acr?: string | null | ((authMode: string) => string | null);
  /** Identities enrolled in Pro Santé Identité (EXI PSC 18, Référentiel PSC v2.1). Default: none. */
  psi?: {
    identities: PsiIdentity[];
    /** `SubjectNameID` of an identity outside the RPPS (not published). Default: absent. */
    subjectNameId?: PsiSubjectNameId;
  };
}

interface EventBase {
  at: Date;
  /** The service the login is for (empty for an answer matching no pending login). */
  clientId: string;
}

/**
 * What happened at PSC, in order: delegated logins accepted or refused, pairings, direct logins; sessions
 * ended (`logout`, by a `service` or by the `fi`'s logout token), the FI's logout tokens, the FI logout
 * steps. `clientId` is the service concerned, empty when none (an FI's logout token).
 */
export type PscEvent = EventBase &
  (
    | { kind: 'refused'; alias: string; reason: RefusalReason; detail: string; status: number }
    | {
        kind: 'fi-error';
        alias: string;
        /** The FI's `error` and `error_description` on the broker endpoint. */
        error: string;
        description: string | undefined;
        /**
         * Keycloak's handling (AO2 `authResponse`): `login_page`, back to PSC's login with a message
         * (`access_denied`: "cancelled"; any other error: "unexpected error"); `service`, the same error
         * returned to the service (`login_required`, `interaction_required`); `restarted`, a new
         * authorization request to the FI (`temporarily_unavailable` + `authentication_expired`).
         */
        handling: 'login_page' | 'service' | 'restarted';
      }
    | { kind: 'idp-hint-ignored'; alias: string }
    | { kind: 'accepted'; login: FederatedLogin }
    | { kind: 'paired'; alias: string; tid: string; oid: string; idNatPs: string }
    | { kind: 'confirmed'; alias: string; tid: string; oid: string; idNatPs: string }
    | { kind: 'direct-login'; idNatPs: string; psiId?: string; authMode: DirectAuthMode }
    | LogoutEvent
  );

export interface PscSimulator {
  /** `http://host:port/auth/realms/esante-wallet` */
  issuer: string;
  /** The authorization endpoint `wallet-openid-configuration` names (on the wallet origin if any). */
  authorizationEndpoint: string;
  /** The wallet origin (option `walletOrigin`). */
  walletOrigin?: string;
  /** The redirect URI PSC uses at the FI `alias` (Keycloak's broker endpoint): register it there. */
  brokerRedirectUri(alias: string): string;
  /** PSC's `post_logout_redirect_uri` at the FI `alias`: register it there. */
  brokerLogoutResponseUri(alias: string): string;
  /** Where FIs send their logout tokens: register it at each FI as PSC's back-channel logout URI. */
  backchannelLogoutUri: string;
  /** The live PSC sessions brokered from an FI, with the FI session and ID token PSC keeps. */
  brokeredSessions(): BrokeredSession[];
  /** Adds (or replaces) an establishment's FI, e.g. once the FI knows `brokerRedirectUri`. */
  addFi(fi: FiOptions): void;
  professionals: readonly Professional[];
  pairings: Pairings;
  events: PscEvent[];
  close(): Promise<void>;
}

/** How the user authenticated for a PSC login, released as `authMode`, and its `acr`. */
interface LoginRecord {
  authMode: string;
  acr?: string | null;
}

const INTERACTION_TTL_SECONDS = 3600;
/** Marks a service's `prompt=none` that PSC forwards to an FI (see `promptNoneForwarded`). */
const PROMPT_NONE_PARAM = 'psc_simulator_prompt_none';
/** The authorization endpoint on the wallet origin (production: `https://wallet.esw.esante.gouv.fr/auth`). */
const WALLET_AUTHORIZE_PATH = '/auth';
const WALLET_DISCOVERY = '/.well-known/wallet-openid-configuration';
const COOKIE_NAMES = { session: 'psc_session', interaction: 'psc_interaction', resume: 'psc_resume' };
/** The cookies of a browser's PSC session (signed: with their signature cookie). */
export const PSC_SESSION_COOKIES = [COOKIE_NAMES.session, `${COOKIE_NAMES.session}.sig`] as const;

export async function startPscSimulator(options: PscSimulatorOptions): Promise<PscSimulator> {
  const now = options.now ?? (() => new Date());
  const professionals = options.professionals ?? [...generateProfessionals({ count: 200, inactiveShare: 0 })];
  const bySubject = new Map(professionals.map((p) => [pscSubject(p.idNatPs), p]));
  const byIdNat = new Map(professionals.map((p) => [p.idNatPs, p]));
  // Pro Santé Identité: the PSI id of RPPS professionals enrolled there too, and the identities outside
  // the RPPS (subjects of their own).
  const psiIdentities = options.psi?.identities ?? [];
  const psiIdOf = new Map(psiIdentities.flatMap((i) => (i.idNatPs ? [[i.idNatPs, i.psiId] as const] : [])));
  const psiOnly = psiIdentities.filter((i) => !i.idNatPs);
  const psiBySubject = new Map(psiOnly.map((i) => [pscSubject(i.psiId), i]));
  const psiById = new Map(psiOnly.map((i) => [i.psiId, i]));
  const acrOf = (authMode: string): string | null =>
    typeof options.acr === 'function'
      ? options.acr(authMode)
      : options.acr === undefined
        ? 'eidas1'
        : options.acr;
  /** Every claim of a subject (RPPS professional or PSI identity) for a login by `authMode`. */
  const subjectClaims = (sub: string, authMode: string) => {
    const professional = bySubject.get(sub);
    if (professional) return professionalClaims(professional, authMode, psiIdOf.get(professional.idNatPs));
    const identity = psiBySubject.get(sub);
    return identity && psiClaims(identity, options.psi?.subjectNameId ?? 'absent', authMode);
  };
  const pairings = new Pairings(options.pairingTtlSeconds, now);
  const events: PscEvent[] = [];
  /** Login records by grant (what tokens and userinfo release), and the latest per account. */
  const loginsByGrant = new Map<string, LoginRecord>();
  const latestLoginByAccount = new Map<string, LoginRecord>();
  /** Brokerings waiting for the FI's answer, by state; accepted ones waiting for pairing, by interaction. */
  const pendingByState = new Map<string, PendingBrokering>();
  const delegatedByInteraction = new Map<string, Delegation>();

  const server = options.server ?? createServer();
  if (!options.server)
    await new Promise<void>((resolve) =>
      server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve),
    );
  const { port, address } = server.address() as AddressInfo;
  const listenHost = options.server ? address : (options.host ?? '127.0.0.1');
  const origin = `http://${listenHost}:${port}`;
  const issuer = `${origin}${REALM_PATH}`;
  const nativeAuthorize = `${issuer}${PROTOCOL}/auth`;
  // The wallet origin only takes authorization requests, and hands them to the realm's endpoint: how the
  // real wallet front does it is not published; a redirect keeps PSC's cookies on the realm's origin.
  const wallet = options.walletOrigin ? await startWallet(listenHost, nativeAuthorize) : undefined;
  const authorizationEndpoint = wallet ? `${wallet.origin}${WALLET_AUTHORIZE_PATH}` : nativeAuthorize;
  const brokerRedirectUri = (alias: string) => pscBrokerRedirectUri(issuer, alias);
  // PSC's realm keys: they sign its tokens and its client assertions at the FIs (private_key_jwt).
  const realmKeys = { rsa: privateSigningJwk('RS256'), ec: privateSigningJwk('ES256') };
  const newBroker = (fi: FiOptions) => new FiBroker(fi, brokerRedirectUri(fi.alias), realmKeys, now);
  const brokers = new Map((options.fis ?? []).map((fi) => [fi.alias, newBroker(fi)]));
  const forwardable = (options.fis ?? []).flatMap((fi) =>
    (fi.forwardParameters ?? '').split(',').map((n) => n.trim()),
  );
  const extraParams = [
    ...new Set(
      ['kc_idp_hint', PROMPT_NONE_PARAM, ...forwardable, ...(options.extraParams ?? [])].filter(Boolean),
    ),
  ];

  const signingAlg = options.signingAlg ?? 'RS256';
  const configuration: Configuration = {
    clients: options.clients.map((c) => ({
      client_id: c.clientId,
      client_secret: c.clientSecret,
      token_endpoint_auth_method:
        c.tokenEndpointAuthMethod ?? (c.clientSecret ? 'client_secret_basic' : 'none'),
      redirect_uris: c.redirectUris,
      post_logout_redirect_uris: c.postLogoutRedirectUris ?? [],
      ...(c.backchannelLogoutUri
        ? { backchannel_logout_uri: c.backchannelLogoutUri, backchannel_logout_session_required: true }
        : {}),
      ...(c.userinfoSignedResponseAlg ? { userinfo_signed_response_alg: c.userinfoSignedResponseAlg } : {}),
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      // Keycloak puts auth_time in every ID token.
      require_auth_time: true,
    })),
    jwks: {
      keys: signingAlg === 'RS256' ? [realmKeys.rsa, realmKeys.ec] : [realmKeys.ec, realmKeys.rsa],
    },
    cookies: {
      keys: [randomBytes(32).toString('base64url')],
      names: COOKIE_NAMES,
      long: { signed: true, httpOnly: true, sameSite: 'lax' },
      short: { signed: true, httpOnly: true, sameSite: 'lax' },
    },
    async findAccount(_ctx, sub, token) {
      if (!bySubject.has(sub) && !psiBySubject.has(sub)) return undefined;
      return {
        accountId: sub,
        async claims() {
          const record =
            (token?.grantId && loginsByGrant.get(token.grantId)) || latestLoginByAccount.get(sub);
          // For userinfo; in ID tokens the engine sets acr and sid from the session.
          const sid = token && 'sid' in token ? token.sid : undefined;
          const claims = subjectClaims(sub, record?.authMode ?? 'CARD') ?? { sub };
          const acr = record ? record.acr : acrOf('CARD');
          return { ...claims, ...(acr ? { acr } : {}), sid };
        },
      };
    },
    claims: {
      auth_time: null,
      ...CLAIMS_BY_SCOPE,
      openid: [...(CLAIMS_BY_SCOPE.openid ?? []), 'acr', 'sid'],
    },
    scopes: [...Object.keys(CLAIMS_BY_SCOPE), ...SCOPES_WITHOUT_CLAIMS],
    // Keycloak's protocol mappers add the user's claims to the ID token as well as to userinfo.
    conformIdTokenClaims: false,
    extraParams,
    acrValues: ['eidas1', 'eidas2', 'eidas3'],
    responseTypes: ['code'],
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: signingAlg,
    },
    enabledJWA: {
      idTokenSigningAlgValues: ['RS256', 'ES256'],
      userinfoSigningAlgValues: ['RS256', 'ES256'],
      introspectionSigningAlgValues: ['RS256', 'ES256'],
    },
    // Keycloak asks PKCE of public clients only (unless configured otherwise).
    pkce: { required: (_ctx, client) => client.clientAuthMethod === 'none' },
    routes: {
      authorization: `${PROTOCOL}/auth`,
      token: `${PROTOCOL}/token`,
      userinfo: `${PROTOCOL}/userinfo`,
      jwks: `${PROTOCOL}/certs`,
      end_session: `${PROTOCOL}/logout`,
      introspection: `${PROTOCOL}/token/introspect`,
      revocation: `${PROTOCOL}/revoke`,
    },
    interactions: { url: (_ctx, interaction) => `${REALM_PATH}/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      // As in Keycloak, any confidential client of the realm may introspect a token.
      introspection: {
        enabled: true,
        allowedPolicy: async (_ctx, client) => client.clientAuthMethod !== 'none',
      },
      revocation: { enabled: true },
      userinfo: { enabled: true },
      // Userinfo as a signed JWT for clients registered so (Keycloak: per client).
      jwtUserinfo: { enabled: true },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        async logoutSource(ctx, form) {
          // A session brokered from an FI: to the FI's end_session endpoint first, without confirmation.
          if (await logout.startServiceLogout(ctx)) return;
          ctx.type = 'html';
          ctx.body = logoutPage(form);
        },
        async postLogoutSuccessSource(ctx) {
          ctx.type = 'html';
          ctx.body = messagePage('Déconnexion', 'Vous êtes déconnecté de Pro Santé Connect.');
        },
      },
    },
    // Introspection answers with the professional's claims, as Keycloak's does.
    async extraTokenClaims(_ctx, token) {
      if (!('accountId' in token) || !token.accountId) return undefined;
      const record = (token.grantId && loginsByGrant.get(token.grantId)) || undefined;
      const all = subjectClaims(token.accountId, record?.authMode ?? 'CARD');
      if (!all) return undefined;
      const { sub: _sub, ...claims } = all;
      return claims;
    },
    // Back-channel logout tokens go to services on loopback addresses too.
    fetch(url, init) {
      delete (init as { dispatcher?: unknown }).dispatcher;
      return globalThis.fetch(url, init);
    },
    ttl: {
      AccessToken: 3600,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: 8 * 3600,
      Interaction: INTERACTION_TTL_SECONDS,
      Session: 10 * 3600,
      Grant: 10 * 3600,
    },
    async renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = messagePage('Erreur', `${out.error}: ${out.error_description ?? ''}`);
    },
  };
  const provider = new Provider(issuer, configuration);
  // Keycloak puts sid in every ID token, not only for clients asking for back-channel logout.
  (provider.Client.prototype as unknown as { includeSid(): boolean }).includeSid = () => true;

  const record = (event: PscEvent) => events.push(event);
  const logout = setUpBrokeredLogout({
    provider,
    brokers,
    issuer,
    now,
    record,
    clearSessionCookie: (ctx) =>
      (provider as unknown as { createContext(req: unknown, res: unknown): Context })
        .createContext(ctx.req, ctx.res)
        .cookies.set(COOKIE_NAMES.session, null, configuration.cookies?.long),
  });

  /** Ends the interaction with a login for `professional` (PSC has no consent screen). */
  async function finishLogin(
    ctx: Context,
    clientId: string,
    scope: string,
    professional: Professional,
    login: LoginRecord,
  ) {
    await finishLoginOf(ctx, clientId, scope, pscSubject(professional.idNatPs), login);
  }

  /** Ends the interaction with a login for the subject `accountId` (RPPS professional or PSI identity). */
  async function finishLoginOf(
    ctx: Context,
    clientId: string,
    scope: string,
    accountId: string,
    login: LoginRecord,
  ) {
    const grant = new provider.Grant({ accountId, clientId });
    grant.addOIDCScope(scope);
    const grantId = await grant.save();
    const acr = acrOf(login.authMode);
    login = { ...login, acr };
    loginsByGrant.set(grantId, login);
    latestLoginByAccount.set(accountId, login);
    const location = await provider.interactionResult(
      ctx.req,
      ctx.res,
      { login: { accountId, ...(acr ? { acr } : {}) }, consent: { grantId } },
      { mergeWithLastSubmission: false },
    );
    ctx.status = 303;
    ctx.redirect(location);
  }

  const interactionPath = (uid: string, action = '') => `${REALM_PATH}/interaction/${uid}${action}`;

  /**
   * What PSC's login page shows next, by interaction, after an FI error on the broker endpoint (Keycloak's
   * forwarded error: a message on the login page, `kc_idp_hint` not followed again), or the error returned
   * to the service (`login_required`, `interaction_required`).
   */
  const afterFiError = new Map<string, { message: string } | { error: string; description?: string }>();

  function refuse(ctx: Context, clientId: string, alias: string, outcome: Refusal, uid?: string) {
    const status = refusalStatus(outcome.reason);
    const { reason, detail } = outcome;
    record({ at: now(), clientId, kind: 'refused', alias, reason, detail, status });
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = refusalPage(reason, uid ? interactionPath(uid, '/abort') : undefined);
  }

  /** The service's request to PSC, as the engine keeps it for the login (interaction). */
  function serviceRequest(details: { uid: string; params: Record<string, unknown> }): ServiceRequest {
    const { params } = details;
    return {
      interactionUid: details.uid,
      clientId: String(params.client_id),
      params,
      promptNone: params[PROMPT_NONE_PARAM] === '1',
    };
  }

  async function startBrokering(ctx: Context, request: ServiceRequest, alias: string) {
    const broker = brokers.get(alias);
    const uid = request.interactionUid;
    if (!broker) {
      refuse(
        ctx,
        request.clientId,
        alias,
        { kind: 'refused', reason: 'unknown_idp', detail: `no FI ${alias}` },
        uid,
      );
      return;
    }
    const started = await broker.start(request);
    if (started.kind === 'refused') {
      refuse(ctx, request.clientId, alias, started, uid);
      return;
    }
    // Brokerings abandoned for longer than a login may last are forgotten.
    for (const [key, pending] of pendingByState) {
      if (Date.now() - pending.createdAt > INTERACTION_TTL_SECONDS * 1000) pendingByState.delete(key);
    }
    pendingByState.set(started.pending.stateKey, started.pending);
    // AO2 performLogin: 303 See Other to the FI's authorization endpoint.
    ctx.status = 303;
    ctx.redirect(started.url.href);
  }

  /** An `error` on the broker endpoint (AO2 `authResponse`), handled as Keycloak does. */
  async function fiError(ctx: Context, pending: PendingBrokering, error: string, description?: string) {
    const { request, interactionUid: uid, alias } = pending;
    const base = {
      at: now(),
      clientId: request.clientId,
      kind: 'fi-error',
      alias,
      error,
      description,
    } as const;
    if (error === 'temporarily_unavailable' && description === 'authentication_expired') {
      record({ ...base, handling: 'restarted' });
      await startBrokering(ctx, request, alias);
      return;
    }
    if (error === 'login_required' || error === 'interaction_required') {
      record({ ...base, handling: 'service' });
      afterFiError.set(uid, { error, description });
    } else {
      record({ ...base, handling: 'login_page' });
      afterFiError.set(uid, {
        message: error === 'access_denied' ? LOGIN_MESSAGES.accessDenied : LOGIN_MESSAGES.unexpected,
      });
    }
    ctx.status = 303;
    ctx.redirect(interactionPath(uid));
  }

  function fiName(alias: string): string {
    return brokers.get(alias)?.fi.name ?? alias;
  }

  const router = new Router({ prefix: REALM_PATH });

  router.get('/interaction/:uid', async (ctx) => {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const clientId = String(details.params.client_id);
    const scope = String(details.params.scope ?? 'openid');
    if (details.prompt.name === 'consent' && details.session?.accountId) {
      // Single sign-on: an existing PSC session, a service not yet granted.
      const login = latestLoginByAccount.get(details.session.accountId);
      if (login && subjectClaims(details.session.accountId, login.authMode)) {
        await finishLoginOf(ctx, clientId, scope, details.session.accountId, login);
        return;
      }
    }
    const delegated = delegatedByInteraction.get(details.uid)?.login;
    ctx.type = 'html';
    if (delegated) {
      const pairing = pairings.find(delegated.alias, delegated.tid, delegated.oid);
      const professional = pairing && byIdNat.get(pairing.idNatPs);
      const abort = interactionPath(details.uid, '/abort');
      ctx.body = professional
        ? confirmPage(fiName(delegated.alias), professional, interactionPath(details.uid, '/confirm'), abort)
        : pairingPage(
            fiName(delegated.alias),
            delegated.oid,
            interactionPath(details.uid, '/pairing'),
            abort,
            professionals,
          );
      return;
    }
    const after = afterFiError.get(details.uid);
    afterFiError.delete(details.uid);
    if (after && 'error' in after) {
      // IBS checkPassiveLoginError: the FI's error goes back to the service.
      const location = await provider.interactionResult(
        ctx.req,
        ctx.res,
        { error: after.error, error_description: after.description },
        { mergeWithLastSubmission: false },
      );
      ctx.status = 303;
      ctx.redirect(location);
      return;
    }
    const hint = details.params.kc_idp_hint;
    // IdentityProviderAuthenticator: after an FI error the hint is not followed again (forwarded error);
    // an empty hint or an alias of no identity provider shows the login page.
    if (!after && typeof hint === 'string' && hint !== '') {
      if (brokers.has(hint)) {
        await startBrokering(ctx, serviceRequest(details), hint);
        return;
      }
      record({ at: now(), clientId, kind: 'idp-hint-ignored', alias: hint });
    }
    const establishments = [...brokers.values()].map((b) => ({
      name: b.fi.name ?? b.fi.alias,
      url: interactionPath(details.uid, `/broker/${encodeURIComponent(b.fi.alias)}`),
    }));
    ctx.body = choicePage(establishments, interactionPath(details.uid, '/cps'), professionals, {
      message: after?.message,
      abortAction: interactionPath(details.uid, '/abort'),
      psiOnly,
    });
  });

  router.get('/interaction/:uid/broker/:alias', async (ctx) => {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    await startBrokering(ctx, serviceRequest(details), ctx.params.alias ?? '');
  });

  // Keycloak's broker endpoint (AO2 `Endpoint.authResponse`, a GET handler: query responses only).
  router.get('/broker/:alias/endpoint', async (ctx) => {
    const alias = ctx.params.alias ?? '';
    const query = new URLSearchParams(ctx.querystring);
    const refusal = (reason: RefusalReason, detail: string): Refusal => ({ kind: 'refused', reason, detail });
    const state = query.get('state');
    if (state === null) {
      refuse(ctx, '', alias, refusal('state_missing', 'no state parameter'));
      return;
    }
    const key = stateKey(state);
    const pending = key === undefined ? undefined : pendingByState.get(key);
    const broker = brokers.get(alias);
    if (!key || !pending || !broker || pending.alias !== alias) {
      refuse(ctx, '', alias, refusal('state_unknown', 'no brokering with this state'));
      return;
    }
    pendingByState.delete(key);
    const { clientId } = pending.request;
    const uid = pending.interactionUid;
    const error = query.get('error');
    if (error !== null) {
      await fiError(ctx, pending, error, query.get('error_description') ?? undefined);
      return;
    }
    const code = query.get('code');
    if (code === null) {
      refuse(ctx, clientId, alias, refusal('code_missing', 'neither code nor error'), uid);
      return;
    }
    const outcome = await broker.complete(code, pending);
    if (outcome.kind === 'refused') {
      refuse(ctx, clientId, alias, outcome, uid);
      return;
    }
    record({ at: now(), clientId, kind: 'accepted', login: outcome.login });
    delegatedByInteraction.set(uid, { login: outcome.login, tokens: outcome.tokens });
    ctx.status = 303;
    ctx.redirect(interactionPath(uid));
  });

  router.get('/broker/:alias/endpoint/logout_response', (ctx) => logout.logoutResponse(ctx));
  router.post(BACKCHANNEL_LOGOUT_PATH, (ctx) => logout.backchannelLogout(ctx));

  function badRequest(ctx: Context, title: string, message: string) {
    ctx.status = 400;
    ctx.type = 'html';
    ctx.body = messagePage(title, message);
  }

  /** The professional chosen in a form, or a 400 page. */
  async function chosenProfessional(
    ctx: Context,
  ): Promise<{ professional: Professional; form: Record<string, string> } | undefined> {
    const form = await readForm(ctx, 4096);
    const professional = byIdNat.get(form.idNatPs ?? '');
    if (professional) return { professional, form };
    badRequest(ctx, 'Identité inconnue', "Cette identité nationale n'est pas proposée par le simulateur.");
    return undefined;
  }

  router.post('/interaction/:uid/cps', async (ctx) => {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const form = await readForm(ctx, 4096);
    // An RPPS professional (idNatPS) or an identity known to Pro Santé Identité only (its PSI id).
    const professional = byIdNat.get(form.idNatPs ?? '');
    const psiIdentity = psiById.get(form.idNatPs ?? '');
    if (!professional && !psiIdentity) {
      badRequest(ctx, 'Identité inconnue', "Cette identité nationale n'est pas proposée par le simulateur.");
      return;
    }
    const authMode: DirectAuthMode = form.authMode === 'CARD' ? 'CARD' : 'MOBILE';
    const clientId = String(details.params.client_id);
    const psiId = professional ? psiIdOf.get(professional.idNatPs) : psiIdentity?.psiId;
    record({
      at: now(),
      clientId,
      kind: 'direct-login',
      idNatPs: professional?.idNatPs ?? '',
      ...(psiId ? { psiId } : {}),
      authMode,
    });
    const subject = professional ? pscSubject(professional.idNatPs) : pscSubject(psiId ?? '');
    await finishLoginOf(ctx, clientId, String(details.params.scope), subject, { authMode });
  });

  /** The delegated login waiting at this interaction, or a 400 page. */
  function delegatedLogin(ctx: Context, uid: string): FederatedLogin | undefined {
    const delegation = delegatedByInteraction.get(uid);
    if (delegation) return delegation.login;
    badRequest(
      ctx,
      'Aucune délégation en cours',
      "Aucune authentification d'établissement n'attend de confirmation.",
    );
    return undefined;
  }

  /** The delegated login leaves its interaction, for the logout side to remember its session. */
  function delegationDone(uid: string) {
    const delegation = delegatedByInteraction.get(uid);
    delegatedByInteraction.delete(uid);
    if (delegation) logout.delegationDone(uid, delegation);
  }

  const delegatedAuthMode = (alias: string) => brokers.get(alias)?.fi.authMode ?? 'DELEGATED';

  router.post('/interaction/:uid/pairing', async (ctx) => {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const login = delegatedLogin(ctx, details.uid);
    if (!login) return;
    const chosen = await chosenProfessional(ctx);
    if (!chosen) return;
    const { alias, tid, oid } = login;
    const { idNatPs } = chosen.professional;
    pairings.pair(alias, tid, oid, idNatPs);
    const clientId = String(details.params.client_id);
    record({ at: now(), clientId, kind: 'paired', alias, tid, oid, idNatPs });
    delegationDone(details.uid);
    await finishLogin(ctx, clientId, String(details.params.scope), chosen.professional, {
      authMode: delegatedAuthMode(alias),
    });
  });

  router.post('/interaction/:uid/confirm', async (ctx) => {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const login = delegatedLogin(ctx, details.uid);
    if (!login) return;
    const { alias, tid, oid } = login;
    const pairing = pairings.find(alias, tid, oid);
    const professional = pairing && byIdNat.get(pairing.idNatPs);
    if (!pairing || !professional) {
      // The pairing expired since the page was shown: pair again.
      ctx.status = 303;
      ctx.redirect(interactionPath(details.uid));
      return;
    }
    pairing.confirmations.push(now());
    const clientId = String(details.params.client_id);
    record({ at: now(), clientId, kind: 'confirmed', alias, tid, oid, idNatPs: pairing.idNatPs });
    delegationDone(details.uid);
    await finishLogin(ctx, clientId, String(details.params.scope), professional, {
      authMode: delegatedAuthMode(alias),
    });
  });

  router.post('/interaction/:uid/abort', async (ctx) => {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    delegatedByInteraction.delete(details.uid);
    const location = await provider.interactionResult(
      ctx.req,
      ctx.res,
      { error: 'access_denied', error_description: 'authentication abandoned or refused' },
      { mergeWithLastSubmission: false },
    );
    ctx.status = 303;
    ctx.redirect(location);
  });

  /**
   * IdentityProviderAuthenticator (IPA): a service's `prompt=none` with the `kc_idp_hint` of an FI that
   * `acceptsPromptNoneForwardFromClient` goes to that FI with `prompt=none` when PSC has no session. The
   * engine would answer `login_required` at once: it gets the request without `prompt=none`, and a marker.
   */
  function promptNoneForwarded(url: string): string {
    const [path = '', search = ''] = url.split('?', 2);
    if (path !== `${PROTOCOL}/auth`) return url;
    const params = new URLSearchParams(search);
    if (params.get('prompt') !== 'none') return url;
    if (!brokers.get(params.get('kc_idp_hint') ?? '')?.fi.acceptsPromptNoneForwardFromClient) return url;
    params.delete('prompt');
    params.set(PROMPT_NONE_PARAM, '1');
    return `${path}?${params}`;
  }

  const host = new Koa();
  host.use(async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      if (!(error instanceof errors.SessionNotFound)) throw error;
      badRequest(
        ctx,
        'Session expirée',
        'La connexion en cours est introuvable ou a expiré : recommencez depuis le service.',
      );
    }
  });
  host.use(router.routes());
  const hostCallback = host.callback();
  const providerCallback = provider.callback();

  server.on('request', (req: IncomingMessage & { originalUrl?: string }, res) => {
    const url = req.url ?? '/';
    const path = url.split('?')[0] ?? '/';
    if (!path.startsWith(`${REALM_PATH}/`)) {
      res.writeHead(404).end();
      return;
    }
    const inner = url.slice(REALM_PATH.length);
    const innerPath = path.slice(REALM_PATH.length);
    if (
      inner.startsWith('/interaction/') ||
      inner.startsWith('/broker/') ||
      innerPath === BACKCHANNEL_LOGOUT_PATH
    ) {
      void hostCallback(req, res);
      return;
    }
    if (wallet && innerPath === WALLET_DISCOVERY) {
      void walletDiscovery(res);
      return;
    }
    // PSC publishes its discovery document under a name of its own too.
    req.url = promptNoneForwarded(
      inner.replace(/^\/\.well-known\/wallet-openid-configuration/, '/.well-known/openid-configuration'),
    );
    // The engine derives its mount path from the part of originalUrl before req.url.
    req.originalUrl = `${REALM_PATH}${req.url}`;
    void providerCallback(req, res);
  });

  /** PSC's own discovery document, naming the wallet's authorization endpoint. */
  async function walletDiscovery(res: ServerResponse) {
    try {
      const metadata = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
      const body = JSON.stringify({ ...metadata, authorization_endpoint: authorizationEndpoint });
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' }).end(body);
    } catch {
      res.writeHead(500).end();
    }
  }

  return {
    issuer,
    authorizationEndpoint,
    ...(wallet ? { walletOrigin: wallet.origin } : {}),
    brokerRedirectUri,
    brokerLogoutResponseUri: (alias) => pscBrokerLogoutResponseUri(issuer, alias),
    backchannelLogoutUri: pscBackchannelLogoutUri(issuer),
    brokeredSessions: () => logout.sessions.all(),
    addFi: (fi) => brokers.set(fi.alias, newBroker(fi)),
    professionals,
    pairings,
    events,
    close: async () => {
      await wallet?.close();
      await new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      });
    },
  };
}

/** The wallet origin: `GET /auth?…` goes on to the realm's authorization endpoint, with the same query. */
async function startWallet(host: string, realmAuthorize: string) {
  const wallet = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://wallet');
    if (req.method !== 'GET' || url.pathname !== WALLET_AUTHORIZE_PATH) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(302, { location: `${realmAuthorize}${url.search}`, 'cache-control': 'no-store' }).end();
  });
  await new Promise<void>((resolve) => wallet.listen(0, host, resolve));
  return {
    origin: `http://${host}:${(wallet.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        wallet.closeAllConnections();
        wallet.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
