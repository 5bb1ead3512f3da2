import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { importJWK, type JWK, SignJWT } from 'jose';
import {
  IdpKeys,
  jwsPayload,
  type TokenRefusalReason,
  type TokenValidationConfig,
  validateToken,
  verifySignature,
} from './token-validation.ts';

/**
 * PSC as an OpenID Connect client of an establishment's identity provider (an "FI habilité"), brokering as
 * Keycloak's OIDC identity provider does (`AbstractOAuth2IdentityProvider`, `OIDCIdentityProvider`; facts
 * and source keys in /work/shared/reference/keycloak-broker.md, cited in README.md): the authorization
 * request, the token request with its client authentication, the checks on the ID token and userinfo, the
 * logout request; plus PSC's own checks (tenant, local account, methods: guessed, not Keycloak's code).
 * No protocol library: Keycloak makes its own checks and no others (e.g. no `iat`, no `iss` response
 * parameter).
 */

/** Keycloak's `clientAuthMethod` values for an OIDC identity provider (UI-AUTH). */
export type ClientAuthMethod =
  | 'client_secret_post'
  | 'client_secret_basic'
  | 'client_secret_basic_unencoded'
  | 'private_key_jwt'
  | 'client_secret_jwt';

export type ClientAssertionSigningAlg =
  | 'RS256'
  | 'RS384'
  | 'RS512'
  | 'PS256'
  | 'PS384'
  | 'PS512'
  | 'ES256'
  | 'HS256'
  | 'HS384'
  | 'HS512';

/**
 * One identity provider entry of PSC's realm: Keycloak's config keys (same names, same defaults) and the
 * simulator's PSC-specific settings. The discovery document (`discoveryUrl`) is read once, at first use,
 * as an administrator's "import from discovery" fills the entry (FAC `parseOIDCConfig`): the URLs,
 * `issuer`, and `validateSignature`/`useJwksUrl` when it has a `jwks_uri`. An explicit key wins.
 */
export interface FiOptions {
  /** The alias, selected by `kc_idp_hint`. */
  alias: string;
  /** Shown in the "Délégation" tab. Default: the alias. */
  name?: string;
  /** The FI's issuer (discovery under `.well-known/openid-configuration`), or the document's URL. */
  discoveryUrl: string;
  /** Default: the discovered `authorization_endpoint`. */
  authorizationUrl?: string;
  /** Default: the discovered `token_endpoint`. */
  tokenUrl?: string;
  /** Default: the discovered `userinfo_endpoint`; '' none (no userinfo call). */
  userInfoUrl?: string;
  /** Default: the discovered `jwks_uri`. */
  jwksUrl?: string;
  /** Default: the discovered `end_session_endpoint`; '' none (no logout at the FI). */
  logoutUrl?: string;
  /** Accepted `iss` values, comma-separated. Default: the discovered issuer; '' not checked. */
  issuer?: string;
  clientId: string;
  clientSecret?: string;
  /** Default `client_secret_post` (O2C). */
  clientAuthMethod?: ClientAuthMethod;
  /** Default RS256 for `private_key_jwt`, HS256 for `client_secret_jwt` (AO2 `getSignatureContext`). */
  clientAssertionSigningAlg?: ClientAssertionSigningAlg;
  /** Default: the token endpoint URL. */
  clientAssertionAudience?: string;
  /** Default false (O2C). */
  pkceEnabled?: boolean;
  /** `plain` or `S256`; default `plain`, the admin console's preselection (UI-DISC). */
  pkceMethod?: 'plain' | 'S256';
  /** Default `openid`; `openid` is prepended when the value does not contain it. */
  defaultScope?: string;
  /** Default false: a nonce is sent and checked. */
  disableNonce?: boolean;
  /** Names of the service's request parameters copied to the FI, comma-separated. Default `acr_values`. */
  forwardParameters?: string;
  /**
   * Keycloak before KC#41671 (Aug 2025): `acr_values` forwarded whenever the service sent it, whatever
   * `forwardParameters` says. Default false.
   */
  acrValuesAlwaysForwarded?: boolean;
  /** `none`, `consent`, `login`, `select_account`; default unset: the service's `prompt` is forwarded. */
  prompt?: string;
  /** A service's `prompt=none` without PSC session goes to the FI (else `login_required`). Default false. */
  acceptsPromptNoneForwardFromClient?: boolean;
  /** Forward the service's `login_hint`. Default false. */
  loginHint?: boolean;
  /** Forward the service's `max_age`, and check `auth_time` against it. Default false. */
  passMaxAge?: boolean;
  /** Send PSC's locale as `ui_locales` ("Pass current locale"). Default false. */
  uiLocales?: boolean;
  /** State without its clientData part (also the form of Keycloak before 26.0). Default false. */
  requiresShortStateParameter?: boolean;
  /** Check the signatures. Default: true when discovery gave a `jwks_uri` (model default false). */
  validateSignature?: boolean;
  /** Keys from `jwksUrl`; false: the PEM `publicKeySignatureVerifier`. Default: as `validateSignature`. */
  useJwksUrl?: boolean;
  /** A PEM public key (SPKI), with `useJwksUrl` false. */
  publicKeySignatureVerifier?: string;
  /** Its key id, if any (a token with another `kid` is refused). */
  publicKeySignatureVerifierKeyId?: string;
  /** Seconds tolerated on `nbf` (not on `exp`). Default 0. */
  allowedClockSkew?: number;
  /** No userinfo call. Default false. */
  disableUserInfo?: boolean;
  /** Require the top-level ID-token claim `claimFilterName` to match the regex `claimFilterValue`. */
  filteredByClaim?: boolean;
  claimFilterName?: string;
  claimFilterValue?: string;
  /** Logout at the FI by a server-side GET instead of sending the browser there. Default false. */
  backchannelSupported?: boolean;
  /** `id_token_hint` in the logout request. Default true. */
  sendIdTokenOnLogout?: boolean;
  /** `client_id` in the logout request. Default false. */
  sendClientIdOnLogout?: boolean;

  // PSC's own settings (guessed: not Keycloak's broker code, see README "guessed").
  /** Accepted `tid` values (tenant of the establishment). */
  tidAllowList: string[];
  /** Accepted `amr` values: at least one must be present; the others are reported, not refused. */
  amrAllowList: string[];
  /** Oldest accepted `auth_time`. Default 4 h (the ANS maximum). */
  maxAuthAgeSeconds?: number;
  /** Accepted `acr` values; default: any (or none). */
  requireAcr?: string[];
  /** `authMode` of the tokens PSC issues after this FI. Default `DELEGATED` (real value unknown). */
  authMode?: string;
  /**
   * What the `sid` of the FI's logout tokens is matched with: `id_token`, the `sid` of the ID token PSC
   * accepted (Keycloak since KC#48674, 2026), or `session_state`, the token response's `session_state`
   * (earlier Keycloak; an FI that sends none then ends PSC sessions by `sub` only). Default `id_token`.
   */
  logoutSessionId?: 'id_token' | 'session_state';
  /** Oldest accepted logout token (`iat`). Default 300 s (Keycloak only requires an `iat`). */
  logoutTokenMaxAgeSeconds?: number;
}

export const DEFAULT_MAX_AUTH_AGE_SECONDS = 4 * 3600;
export const DEFAULT_LOGOUT_TOKEN_MAX_AGE_SECONDS = 300;
/** The realm's access-code lifespan (Keycloak's default), the lifetime of PSC's client assertions. */
export const ACCESS_CODE_LIFESPAN_SECONDS = 60;
/** PSC's resolved locale, sent as `ui_locales` (the simulator's pages are French). */
export const PSC_LOCALE = 'fr';

/**
 * Why PSC refused a delegated authentication. Keycloak's own failures end on its 502 page
 * (`errorIdentityProviderLogin`); `state_unknown` on its 400 page; PSC's checks (tid…acr) are guessed.
 */
export type RefusalReason =
  | 'unknown_idp'
  | 'fi_unavailable'
  | 'state_missing'
  | 'state_unknown'
  | 'code_missing'
  | 'token_error'
  | 'access_token_missing'
  | 'id_token_missing'
  | TokenRefusalReason
  | 'nonce_mismatch'
  | 'auth_time_expired'
  | 'userinfo_error'
  | 'userinfo_sub_mismatch'
  | 'claim_filter'
  | 'tid_missing'
  | 'tid_not_allowed'
  | 'oid_missing'
  | 'auth_time_missing'
  | 'auth_too_old'
  | 'amr_missing'
  | 'amr_not_allowed'
  | 'acr_not_allowed';

/** PSC's own checks (guessed), refused with a 403 page; the others are Keycloak's. */
export const PSC_CHECKS: readonly RefusalReason[] = [
  'tid_missing',
  'tid_not_allowed',
  'oid_missing',
  'auth_time_missing',
  'auth_too_old',
  'amr_missing',
  'amr_not_allowed',
  'acr_not_allowed',
];

/** The HTTP status of PSC's page for a refusal. */
export function refusalStatus(reason: RefusalReason): number {
  if (PSC_CHECKS.includes(reason)) return 403;
  if (reason === 'state_unknown' || reason === 'unknown_idp') return 400;
  return 502;
}

/** An authentication the FI made and PSC accepted. */
export interface FederatedLogin {
  alias: string;
  tid: string;
  oid: string;
  /** The FI's `sub`. */
  sub: string;
  /** The FI's session (`sid` of its ID token), named by its logout tokens. */
  sid: string | undefined;
  amr: string[];
  /** `amr` values outside the allow-list (ignored, since another value was accepted). */
  amrNotAccepted: string[];
  acr: string | undefined;
  authTime: Date;
  /** The userinfo answer, when called (JSON, or the claims of a JWT). */
  userinfo: Record<string, unknown> | undefined;
}

export interface Refusal {
  kind: 'refused';
  reason: RefusalReason;
  detail: string;
}

export type BrokerOutcome = { kind: 'accepted'; login: FederatedLogin } | Refusal;

/** What PSC keeps of the FI's token response, for logout. */
export interface FiTokens {
  /** Sent back as `id_token_hint` to the FI's logout URL (as is, even expired). */
  idToken: string;
  /** Keycloak's broker session id before 2026 (most FIs, Passerelle included, send none). */
  sessionState: string | undefined;
}

/** The service's authorization request to PSC, as PSC's login (interaction) holds it. */
export interface ServiceRequest {
  interactionUid: string;
  /** The service's client id. */
  clientId: string;
  /** The parameters the service sent to PSC. */
  params: Record<string, unknown>;
  /** The service asked `prompt=none` (the engine is not given it, see server.ts). */
  promptNone?: boolean;
}

/** What PSC remembers between its redirection to the FI and the FI's answer. */
export interface PendingBrokering {
  alias: string;
  /** `<code>.<tabId>.<client>`: what identifies the login in the state (clientData excluded). */
  stateKey: string;
  /** The state sent. */
  state: string;
  nonce: string | undefined;
  codeVerifier: string | undefined;
  interactionUid: string;
  request: ServiceRequest;
  createdAt: number;
}

/** The part of a returned state that names the login (Keycloak's IdentityBrokerState.encoded). */
export function stateKey(state: string): string | undefined {
  const parts = state.split('.');
  if (parts.length < 3 || parts.length > 4 || parts.some((p) => p === '')) return undefined;
  return parts.slice(0, 3).join('.');
}

/** PSC's realm keys (private JWKs, published in its certs), which sign its client assertions. */
export interface RealmKeys {
  rsa: JWK;
  ec: JWK;
}

/** The entry's effective settings once the discovery document is read. */
export interface EffectiveFi {
  authorizationUrl: string;
  tokenUrl: string;
  userInfoUrl: string | undefined;
  jwksUrl: string | undefined;
  logoutUrl: string | undefined;
  issuer: string | undefined;
  validateSignature: boolean;
  useJwksUrl: boolean;
}

function refused(reason: RefusalReason, detail: string): Refusal {
  return { kind: 'refused', reason, detail };
}

const b64url = (bytes: Buffer | Uint8Array) => Buffer.from(bytes).toString('base64url');
const str = (value: unknown) => (typeof value === 'string' && value !== '' ? value : undefined);

/** java.net.URLEncoder.encode(value, UTF-8): form encoding (space as +; only `.-*_` kept). */
export function javaUrlEncode(value: string): string {
  return encodeURIComponent(value)
    .replace(/[!'()~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%20/g, '+');
}

/**
 * PSC's own checks on the claims of an ID token Keycloak's checks accepted: tenant, local account,
 * freshness, methods, level — the first failure is returned (guessed, see README).
 */
export function checkFederatedClaims(
  fi: FiOptions,
  claims: Record<string, unknown>,
  now: Date,
  userinfo?: Record<string, unknown>,
): BrokerOutcome {
  const { tid, oid, amr, acr, auth_time: authTime } = claims;
  if (typeof tid !== 'string' || tid === '') return refused('tid_missing', 'no tid claim');
  if (!fi.tidAllowList.includes(tid)) return refused('tid_not_allowed', `tid ${tid} is not allowed`);
  if (typeof oid !== 'string' || oid === '') return refused('oid_missing', 'no oid claim');
  if (typeof authTime !== 'number') return refused('auth_time_missing', 'no auth_time claim');
  const age = Math.floor(now.getTime() / 1000) - authTime;
  const maxAge = fi.maxAuthAgeSeconds ?? DEFAULT_MAX_AUTH_AGE_SECONDS;
  if (age > maxAge) return refused('auth_too_old', `authenticated ${age} s ago, more than ${maxAge} s`);
  if (!Array.isArray(amr) || amr.length === 0 || !amr.every((v) => typeof v === 'string')) {
    return refused('amr_missing', 'amr is not a non-empty array of strings');
  }
  const notAccepted = amr.filter((v) => !fi.amrAllowList.includes(v));
  if (notAccepted.length === amr.length)
    return refused('amr_not_allowed', `amr ${amr.join(',')} not accepted`);
  if (fi.requireAcr && !(typeof acr === 'string' && fi.requireAcr.includes(acr))) {
    return refused('acr_not_allowed', `acr ${String(acr)} is not accepted`);
  }
  return {
    kind: 'accepted',
    login: {
      alias: fi.alias,
      tid,
      oid,
      sub: String(claims.sub),
      sid: typeof claims.sid === 'string' ? claims.sid : undefined,
      amr,
      amrNotAccepted: notAccepted,
      acr: typeof acr === 'string' ? acr : undefined,
      authTime: new Date(authTime * 1000),
      userinfo,
    },
  };
}

/** The ClientData part of a long state: the service's redirect URI, response type and mode, state. */
function clientData(params: Record<string, unknown>): string {
  const data = {
    ru: str(params.redirect_uri),
    rt: str(params.response_type),
    rm: str(params.response_mode),
    st: str(params.state),
  };
  return b64url(Buffer.from(JSON.stringify(data)));
}

/** A client's internal id (a UUID, as Keycloak's database ids), stable per service. */
const internalIds = new Map<string, string>();
function encodedClientId(clientId: string): string {
  let uuid = internalIds.get(clientId);
  if (!uuid) {
    uuid = randomUUID();
    internalIds.set(clientId, uuid);
  }
  // IdentityBrokerState.decoded: the client's UUID as 16 bytes, Base64url (22 characters).
  return b64url(Buffer.from(uuid.replaceAll('-', ''), 'hex'));
}

/** The service's value of a request parameter, as Keycloak keeps it in client notes. */
function serviceParam(request: ServiceRequest, name: string): string | undefined {
  const value = request.params[name];
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  return undefined;
}

/** One identity provider entry of PSC: its discovered settings, its keys, its requests. */
export class FiBroker {
  readonly fi: FiOptions;
  readonly redirectUri: string;
  readonly #realmKeys: RealmKeys | undefined;
  readonly #now: () => Date;
  #effective: Promise<EffectiveFi> | undefined;
  #keys: IdpKeys | undefined;

  /** The clock of PSC's own checks (Keycloak's use the system clock). */
  readonly #pscNow: () => Date;

  constructor(
    fi: FiOptions,
    redirectUri: string,
    realmKeys?: RealmKeys,
    pscNow: () => Date = () => new Date(),
  ) {
    this.fi = fi;
    this.redirectUri = redirectUri;
    this.#realmKeys = realmKeys;
    this.#now = () => new Date();
    this.#pscNow = pscNow;
  }

  /** The entry once "imported" from the discovery document (read once; retried after a failure). */
  effective(): Promise<EffectiveFi> {
    if (!this.#effective) {
      this.#effective = this.#import();
      this.#effective.catch(() => {
        this.#effective = undefined;
      });
    }
    return this.#effective;
  }

  async #import(): Promise<EffectiveFi> {
    const { fi } = this;
    const url = new URL(fi.discoveryUrl);
    if (!url.pathname.includes('/.well-known/')) {
      url.pathname = `${url.pathname.replace(/\/$/, '')}/.well-known/openid-configuration`;
    }
    const response = await fetch(url);
    if (!response.ok) throw new Error(`discovery ${url.href}: HTTP ${response.status}`);
    const d = (await response.json()) as Record<string, unknown>;
    const jwksUrl = fi.jwksUrl ?? str(d.jwks_uri);
    const validateSignature = fi.validateSignature ?? str(d.jwks_uri) !== undefined;
    const pick = (explicit: string | undefined, discovered: unknown) =>
      explicit !== undefined ? explicit || undefined : str(discovered);
    const authorizationUrl = pick(fi.authorizationUrl, d.authorization_endpoint);
    const tokenUrl = pick(fi.tokenUrl, d.token_endpoint);
    if (!authorizationUrl || !tokenUrl) throw new Error('no authorization or token endpoint');
    return {
      authorizationUrl,
      tokenUrl,
      userInfoUrl: pick(fi.userInfoUrl, d.userinfo_endpoint),
      jwksUrl,
      logoutUrl: pick(fi.logoutUrl, d.end_session_endpoint),
      issuer: pick(fi.issuer, d.issuer),
      validateSignature,
      useJwksUrl: fi.useJwksUrl ?? validateSignature,
    };
  }

  async #idpKeys(): Promise<IdpKeys> {
    if (!this.#keys) {
      const effective = await this.effective();
      this.#keys = new IdpKeys(
        effective.useJwksUrl
          ? { jwksUrl: effective.jwksUrl }
          : { pem: this.fi.publicKeySignatureVerifier, pemKeyId: this.fi.publicKeySignatureVerifierKeyId },
        this.#now,
      );
    }
    return this.#keys;
  }

  async #validationConfig(): Promise<TokenValidationConfig> {
    const effective = await this.effective();
    return {
      clientId: this.fi.clientId,
      validateSignature: effective.validateSignature,
      issuer: effective.issuer,
      allowedClockSkew: this.fi.allowedClockSkew ?? 0,
    };
  }

  /** OIDCIdentityProvider.validateToken on a token from this FI (ID token, logout token). */
  async validateToken(token: string) {
    return validateToken(token, await this.#validationConfig(), await this.#idpKeys(), this.#now());
  }

  /** Whether a token's `iss` is this entry's configured issuer (TM `verifyLogoutToken`). */
  async issues(iss: unknown): Promise<boolean> {
    let issuer: string | undefined;
    try {
      issuer = (await this.effective()).issuer;
    } catch {
      return false;
    }
    return !!issuer && issuer.split(',').some((i) => i.trim() === iss);
  }

  /** The scope sent: `defaultScope`, `openid` prepended when the value does not contain it. */
  scope(): string {
    const scope = this.fi.defaultScope ?? 'openid';
    return scope.includes('openid') ? scope : `openid ${scope}`.trim();
  }

  /** The FI's authorization URL for a login of the service's request, or a refusal (FI unreachable). */
  async start(
    request: ServiceRequest,
  ): Promise<{ kind: 'redirect'; url: URL; pending: PendingBrokering } | Refusal> {
    let effective: EffectiveFi;
    try {
      effective = await this.effective();
    } catch (error) {
      return refused('fi_unavailable', (error as Error).message);
    }
    const { fi } = this;
    const key = `${b64url(randomBytes(32))}.${b64url(randomBytes(8))}.${encodedClientId(request.clientId)}`;
    const state = fi.requiresShortStateParameter ? key : `${key}.${clientData(request.params)}`;
    const nonce = fi.disableNonce ? undefined : b64url(randomBytes(16));
    const pkceMethod = fi.pkceMethod ?? 'plain';
    const codeVerifier = fi.pkceEnabled ? b64url(randomBytes(64)) : undefined;

    const url = new URL(effective.authorizationUrl);
    const q = url.searchParams;
    // AbstractOAuth2IdentityProvider.createAuthorizationUrl, then OIDCIdentityProvider's additions.
    q.set('scope', this.scope());
    q.set('state', state);
    q.set('response_type', 'code');
    q.set('client_id', fi.clientId);
    q.set('redirect_uri', this.redirectUri);
    const prompt = fi.prompt || (request.promptNone ? 'none' : serviceParam(request, 'prompt'));
    if (prompt) q.set('prompt', prompt);
    if (fi.loginHint) {
      const loginHint = serviceParam(request, 'login_hint');
      if (loginHint !== undefined) q.set('login_hint', loginHint);
    }
    if (fi.uiLocales) q.set('ui_locales', PSC_LOCALE);
    if (codeVerifier) {
      const challenge =
        pkceMethod === 'S256' ? b64url(createHash('sha256').update(codeVerifier).digest()) : codeVerifier;
      q.set('code_challenge', challenge);
      q.set('code_challenge_method', pkceMethod);
    }
    const forwarded = (fi.forwardParameters ?? 'acr_values')
      .split(',')
      .map((n) => n.trim())
      .filter(Boolean);
    if (fi.acrValuesAlwaysForwarded && !forwarded.includes('acr_values')) forwarded.push('acr_values');
    for (const name of forwarded) {
      const value = serviceParam(request, name);
      if (value !== undefined && !q.has(name)) q.set(name, value);
    }
    if (nonce) q.set('nonce', nonce);
    if (fi.passMaxAge) {
      const maxAge = serviceParam(request, 'max_age');
      if (maxAge !== undefined) q.set('max_age', maxAge);
    }
    const pending: PendingBrokering = {
      alias: fi.alias,
      stateKey: key,
      state,
      nonce,
      codeVerifier,
      interactionUid: request.interactionUid,
      request,
      createdAt: Date.now(),
    };
    return { kind: 'redirect', url, pending };
  }

  /** A signed client assertion (AO2 `generateToken`): PSC's realm key, or the client secret (HMAC). */
  async #clientAssertion(tokenUrl: string, method: 'private_key_jwt' | 'client_secret_jwt') {
    const { fi } = this;
    const alg = fi.clientAssertionSigningAlg ?? (method === 'private_key_jwt' ? 'RS256' : 'HS256');
    const nowSeconds = Math.floor(this.#now().getTime() / 1000);
    const claims = {
      jti: randomUUID(),
      iss: fi.clientId,
      sub: fi.clientId,
      aud: fi.clientAssertionAudience || tokenUrl,
      iat: nowSeconds,
      exp: nowSeconds + ACCESS_CODE_LIFESPAN_SECONDS,
    };
    if (method === 'client_secret_jwt') {
      return new SignJWT(claims)
        .setProtectedHeader({ alg, typ: 'JWT' })
        .sign(new TextEncoder().encode(fi.clientSecret ?? ''));
    }
    const jwk = alg.startsWith('ES') ? this.#realmKeys?.ec : this.#realmKeys?.rsa;
    if (!jwk) throw new Error('no realm key to sign the client assertion');
    return new SignJWT(claims)
      .setProtectedHeader({ alg, typ: 'JWT', kid: String(jwk.kid) })
      .sign(await importJWK(jwk, alg));
  }

  /** The token request's body and headers (AO2 `generateTokenRequest`, `authenticateTokenRequest`). */
  async #tokenRequest(code: string, pending: PendingBrokering, tokenUrl: string) {
    const { fi } = this;
    const body = new URLSearchParams({
      code,
      redirect_uri: this.redirectUri,
      grant_type: 'authorization_code',
    });
    if (pending.codeVerifier) body.set('code_verifier', pending.codeVerifier);
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
    const secret = fi.clientSecret;
    const method = fi.clientAuthMethod ?? 'client_secret_post';
    switch (method) {
      case 'client_secret_post':
        body.set('client_id', fi.clientId);
        if (secret !== undefined) body.set('client_secret', secret);
        break;
      case 'client_secret_basic':
        headers.authorization = `Basic ${Buffer.from(`${javaUrlEncode(fi.clientId)}:${javaUrlEncode(secret ?? '')}`).toString('base64')}`;
        break;
      case 'client_secret_basic_unencoded':
        headers.authorization = `Basic ${Buffer.from(`${fi.clientId}:${secret ?? ''}`).toString('base64')}`;
        break;
      case 'private_key_jwt':
      case 'client_secret_jwt':
        body.set('client_assertion_type', 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
        body.set('client_assertion', await this.#clientAssertion(tokenUrl, method));
        body.set('client_id', fi.clientId);
        break;
    }
    return { body, headers };
  }

  /** The userinfo call (OIDC `extractIdentity`): 200 with JSON or a JWT verified like the ID token. */
  async #userinfo(
    userInfoUrl: string,
    accessToken: string,
  ): Promise<{ claims: Record<string, unknown> } | Refusal> {
    let response: Response;
    try {
      response = await fetch(userInfoUrl, { headers: { authorization: `Bearer ${accessToken}` } });
    } catch (error) {
      return refused('userinfo_error', (error as Error).message);
    }
    const text = await response.text();
    if (response.status !== 200) return refused('userinfo_error', `HTTP ${response.status}`);
    const contentType = (response.headers.get('content-type') ?? '').split(';')[0]?.trim().toLowerCase();
    if (contentType === 'application/json') {
      try {
        const claims: unknown = JSON.parse(text);
        if (typeof claims === 'object' && claims !== null)
          return { claims: claims as Record<string, unknown> };
      } catch {}
      return refused('userinfo_error', 'userinfo is not a JSON object');
    }
    if (contentType === 'application/jwt') {
      const config = await this.#validationConfig();
      const bad = await verifySignature(text.trim(), config, await this.#idpKeys());
      if (bad) return refused('userinfo_error', `userinfo JWT: ${bad.detail}`);
      const claims = jwsPayload(text.trim());
      return claims ? { claims } : refused('userinfo_error', 'userinfo JWT without JSON payload');
    }
    return refused('userinfo_error', `unsupported content-type ${contentType || '(none)'}`);
  }

  /**
   * Redeems the code of the FI's answer and checks what comes back, in Keycloak's order: token response,
   * ID token (`validateToken`), `auth_time` with `passMaxAge`, userinfo, claim filter, nonce; then PSC's
   * own checks.
   */
  async complete(
    code: string,
    pending: PendingBrokering,
  ): Promise<{ kind: 'accepted'; login: FederatedLogin; tokens: FiTokens } | Refusal> {
    const { fi } = this;
    const now = this.#now();
    let effective: EffectiveFi;
    try {
      effective = await this.effective();
    } catch (error) {
      return refused('fi_unavailable', (error as Error).message);
    }
    let response: Response;
    let text: string;
    try {
      const { body, headers } = await this.#tokenRequest(code, pending, effective.tokenUrl);
      response = await fetch(effective.tokenUrl, { method: 'POST', headers, body, redirect: 'manual' });
      text = await response.text();
    } catch (error) {
      return refused('token_error', (error as Error).message);
    }
    if (response.status < 200 || response.status > 399) {
      return refused('token_error', `HTTP ${response.status}: ${text.slice(0, 200)}`);
    }
    let tokenResponse: Record<string, unknown>;
    try {
      tokenResponse = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return refused('token_error', 'the token response is not JSON');
    }
    const accessToken = str(tokenResponse.access_token);
    if (!accessToken) return refused('access_token_missing', 'no access_token in the token response');
    const idToken = str(tokenResponse.id_token);
    if (!idToken) return refused('id_token_missing', 'no id_token in the token response');

    const validated = await this.validateToken(idToken);
    if (validated.kind === 'refused') return validated;
    const { claims } = validated;

    const maxAge = Number(serviceParam(pending.request, 'max_age'));
    if (fi.passMaxAge && serviceParam(pending.request, 'max_age') !== undefined) {
      const authTime = claims.auth_time;
      if (typeof authTime !== 'number' || authTime + maxAge < Math.floor(now.getTime() / 1000)) {
        return refused('auth_time_expired', `auth_time ${String(authTime)} older than max_age ${maxAge}`);
      }
    }

    let userinfo: Record<string, unknown> | undefined;
    if (!fi.disableUserInfo && effective.userInfoUrl) {
      const answer = await this.#userinfo(effective.userInfoUrl, accessToken);
      if ('kind' in answer) return answer;
      userinfo = answer.claims;
      if (userinfo.sub !== claims.sub) {
        return refused(
          'userinfo_sub_mismatch',
          `userinfo sub ${String(userinfo.sub)} ≠ ${String(claims.sub)}`,
        );
      }
    }

    if (fi.filteredByClaim) {
      const name = fi.claimFilterName ?? '';
      const value = claims[name];
      const values = (Array.isArray(value) ? value : [value]).filter((v) => v !== undefined && v !== null);
      const pattern = new RegExp(`^(?:${fi.claimFilterValue ?? ''})$`);
      if (!values.some((v) => pattern.test(String(v)))) {
        return refused('claim_filter', `claim ${name} ${JSON.stringify(value)} does not match`);
      }
    }

    if (!fi.disableNonce && (pending.nonce === undefined || claims.nonce !== pending.nonce)) {
      return refused('nonce_mismatch', `nonce ${String(claims.nonce)} is not the one sent`);
    }

    const outcome = checkFederatedClaims(fi, claims, this.#pscNow(), userinfo);
    if (outcome.kind === 'refused') return outcome;
    const sessionState = str(tokenResponse.session_state);
    return { ...outcome, tokens: { idToken, sessionState } };
  }

  /**
   * How PSC ends the FI session when a PSC session brokered from it ends (OIDC
   * `keycloakInitiatedBrowserLogout`): none without `logoutUrl`; else the browser sent there (`front`) or,
   * with `backchannelSupported`, a server-side GET (`back`), with `state`, `id_token_hint` (the stored one,
   * as is), `client_id` as configured, and `post_logout_redirect_uri` for the browser.
   */
  async logoutRequest(
    session: string,
    idToken: string | undefined,
    postLogoutRedirectUri: string,
  ): Promise<{ mode: 'front' | 'back'; url: URL } | undefined> {
    let logoutUrl: string | undefined;
    try {
      logoutUrl = (await this.effective()).logoutUrl;
    } catch {
      return undefined;
    }
    if (!logoutUrl) return undefined;
    const { fi } = this;
    const url = new URL(logoutUrl);
    url.searchParams.set('state', session);
    if (idToken && fi.sendIdTokenOnLogout !== false) url.searchParams.set('id_token_hint', idToken);
    if (fi.sendClientIdOnLogout) url.searchParams.set('client_id', fi.clientId);
    if (fi.backchannelSupported) return { mode: 'back', url };
    url.searchParams.set('post_logout_redirect_uri', postLogoutRedirectUri);
    return { mode: 'front', url };
  }
}

/** OIDC `backchannelLogout`: a GET without cookies; 200–399 is a success, failures are only logged. */
export async function backchannelLogoutCall(url: URL): Promise<{ status?: number; error?: string }> {
  try {
    const response = await fetch(url);
    await response.arrayBuffer();
    return response.status >= 200 && response.status < 400
      ? { status: response.status }
      : { status: response.status, error: `HTTP ${response.status}` };
  } catch (error) {
    return { error: (error as Error).message };
  }
}
