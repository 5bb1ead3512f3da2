import { createRemoteJWKSet, type JWTVerifyGetKey } from 'jose';
import * as oidc from 'openid-client';

/**
 * PSC as an OpenID Connect client of an establishment's identity provider (an "FI habilité"): the
 * authorization request (code flow, PKCE, state, nonce) and the checks on the returned ID token.
 */

export interface FiOptions {
  /** The `kc_idp_hint` value that selects this establishment. */
  alias: string;
  /** Shown in the "Délégation" tab. Default: the alias. */
  name?: string;
  /** The FI's issuer (discovery document under `.well-known/openid-configuration`), or the document's URL. */
  discoveryUrl: string;
  clientId: string;
  /** With `client_secret_basic` (the default when a secret is given). */
  clientSecret?: string;
  /** `none`: a public client with PKCE. Default: `client_secret_basic` with a secret, `none` without. */
  tokenEndpointAuthMethod?: 'client_secret_basic' | 'none';
  /** Scope asked of the FI. Default `openid`. */
  scope?: string;
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
   * When a service logs out at PSC, send the browser to the FI's `end_session_endpoint` first (Keycloak does
   * when the identity provider has a logout URL). Default true.
   */
  frontChannelLogout?: boolean;
  /**
   * What the `sid` of the FI's logout tokens is matched with: `id_token`, the `sid` of the ID token PSC
   * accepted (Keycloak since its PR #48674, 2026), or `session_state`, the token response's `session_state`
   * (earlier Keycloak; an FI that sends none, as Passerelle, then ends PSC sessions by `sub` only).
   * Default `id_token`.
   */
  logoutSessionId?: 'id_token' | 'session_state';
  /** Oldest accepted logout token (`iat`). Default 300 s (Keycloak only requires an `iat`). */
  logoutTokenMaxAgeSeconds?: number;
}

export const DEFAULT_MAX_AUTH_AGE_SECONDS = 4 * 3600;
export const DEFAULT_LOGOUT_TOKEN_MAX_AGE_SECONDS = 300;

/** Why PSC refused a delegated authentication. */
export type RefusalReason =
  | 'unknown_idp'
  | 'fi_unavailable'
  | 'fi_error'
  | 'state_unknown'
  | 'token_error'
  | 'bad_signature'
  | 'iss_mismatch'
  | 'aud_mismatch'
  | 'nonce_mismatch'
  | 'token_expired'
  | 'id_token_invalid'
  | 'tid_missing'
  | 'tid_not_allowed'
  | 'oid_missing'
  | 'auth_time_missing'
  | 'auth_too_old'
  | 'amr_missing'
  | 'amr_not_allowed'
  | 'acr_not_allowed';

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
}

export interface Refusal {
  kind: 'refused';
  reason: RefusalReason;
  detail: string;
}

export type BrokerOutcome = { kind: 'accepted'; login: FederatedLogin } | Refusal;

/** What PSC keeps of the FI's token response, for logout. */
export interface FiTokens {
  /** Sent back as `id_token_hint` to the FI's end_session endpoint. */
  idToken: string;
  /** Keycloak's broker session id before 2026 (most FIs, Passerelle included, send none). */
  sessionState: string | undefined;
}

/** The FI's issuer and signing keys, which its logout tokens are checked against. */
export interface FiKeys {
  issuer: string;
  keys: JWTVerifyGetKey;
}

/** What PSC remembers between its redirection to the FI and the FI's answer. */
export interface PendingBrokering {
  alias: string;
  state: string;
  nonce: string;
  verifier: string;
  /** The PSC login (interaction) waiting for this answer. */
  interactionUid: string;
  createdAt: number;
}

function refused(reason: RefusalReason, detail: string): Refusal {
  return { kind: 'refused', reason, detail };
}

/**
 * The checks PSC makes on the claims of a verified ID token (signature, iss, aud, nonce and exp are
 * checked before): tenant, local account, freshness, methods, level — the first failure is returned.
 */
export function checkFederatedClaims(
  fi: FiOptions,
  claims: Record<string, unknown>,
  now: Date,
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
    },
  };
}

/** Maps what openid-client rejects to a refusal reason. */
function refusalOf(error: unknown): Refusal {
  if (error instanceof oidc.AuthorizationResponseError) {
    return refused(
      'fi_error',
      `${error.error}${error.error_description ? `: ${error.error_description}` : ''}`,
    );
  }
  if (error instanceof oidc.ResponseBodyError) return refused('token_error', error.error);
  if (error instanceof oidc.WWWAuthenticateChallengeError) {
    // A 401 with a challenge: the FI did not authenticate PSC as its client.
    return refused('token_error', error.cause[0]?.parameters.error ?? `HTTP ${error.status}`);
  }
  if (!(error instanceof oidc.ClientError)) {
    return refused('fi_unavailable', error instanceof Error ? error.message : String(error));
  }
  // openid-client wraps the error of the protocol layer, whose cause names the claim at fault.
  const inner = error.cause instanceof Error ? error.cause : error;
  const claim = (inner.cause as { claim?: string } | undefined)?.claim;
  const detail = inner.message;
  switch (error.code) {
    case 'OAUTH_JWT_CLAIM_COMPARISON_FAILED':
      if (claim === 'nonce') return refused('nonce_mismatch', detail);
      if (claim === 'iss') return refused('iss_mismatch', detail);
      if (claim === 'aud' || claim === 'azp') return refused('aud_mismatch', detail);
      break;
    case 'OAUTH_KEY_SELECTION_FAILED':
      return refused('bad_signature', detail);
    case 'OAUTH_INVALID_RESPONSE':
      if (/signature/i.test(detail)) return refused('bad_signature', detail);
      break;
    case 'OAUTH_JWT_TIMESTAMP_CHECK_FAILED':
      if (claim === 'exp') return refused('token_expired', detail);
      break;
  }
  return refused('id_token_invalid', detail);
}

/** One configured FI: its discovered metadata, cached once reached. */
export class FiBroker {
  readonly fi: FiOptions;
  readonly redirectUri: string;
  #configuration: Promise<oidc.Configuration> | undefined;
  #keys: FiKeys | undefined;

  constructor(fi: FiOptions, redirectUri: string) {
    this.fi = fi;
    this.redirectUri = redirectUri;
  }

  #discover(): Promise<oidc.Configuration> {
    if (!this.#configuration) {
      const { fi } = this;
      const secret = fi.tokenEndpointAuthMethod === 'none' ? undefined : fi.clientSecret;
      const auth = secret === undefined ? oidc.None() : oidc.ClientSecretBasic(secret);
      const insecure = new URL(fi.discoveryUrl).protocol === 'http:';
      this.#configuration = oidc.discovery(new URL(fi.discoveryUrl), fi.clientId, undefined, auth, {
        // The ID token's signature is verified with the FI's keys, even though it comes over TLS.
        execute: [oidc.enableNonRepudiationChecks, ...(insecure ? [oidc.allowInsecureRequests] : [])],
      });
      // A failed discovery is retried at the next login.
      this.#configuration.catch(() => {
        this.#configuration = undefined;
      });
    }
    return this.#configuration;
  }

  /** The FI's authorization URL for a new login, or a refusal when the FI cannot be reached. */
  async start(
    interactionUid: string,
  ): Promise<{ kind: 'redirect'; url: URL; pending: PendingBrokering } | Refusal> {
    let configuration: oidc.Configuration;
    try {
      configuration = await this.#discover();
    } catch (error) {
      return refusalOf(error);
    }
    const pending: PendingBrokering = {
      alias: this.fi.alias,
      state: oidc.randomState(),
      nonce: oidc.randomNonce(),
      verifier: oidc.randomPKCECodeVerifier(),
      interactionUid,
      createdAt: Date.now(),
    };
    const url = oidc.buildAuthorizationUrl(configuration, {
      redirect_uri: this.redirectUri,
      scope: this.fi.scope ?? 'openid',
      response_type: 'code',
      code_challenge: await oidc.calculatePKCECodeChallenge(pending.verifier),
      code_challenge_method: 'S256',
      state: pending.state,
      nonce: pending.nonce,
    });
    return { kind: 'redirect', url, pending };
  }

  /** Redeems the code of the FI's answer (`search`: the query string received) and checks the ID token. */
  async complete(
    search: string,
    pending: PendingBrokering,
    now: Date,
  ): Promise<{ kind: 'accepted'; login: FederatedLogin; tokens: FiTokens } | Refusal> {
    const callback = new URL(this.redirectUri);
    callback.search = search;
    try {
      const configuration = await this.#discover();
      const tokens = await oidc.authorizationCodeGrant(configuration, callback, {
        pkceCodeVerifier: pending.verifier,
        expectedState: pending.state,
        expectedNonce: pending.nonce,
        idTokenExpected: true,
      });
      const outcome = checkFederatedClaims(this.fi, { ...tokens.claims() }, now);
      if (outcome.kind === 'refused') return outcome;
      const sessionState = typeof tokens.session_state === 'string' ? tokens.session_state : undefined;
      return { ...outcome, tokens: { idToken: tokens.id_token ?? '', sessionState } };
    } catch (error) {
      return refusalOf(error);
    }
  }

  /** The FI's issuer and keys (from its discovery), or undefined while the FI cannot be reached. */
  async keys(): Promise<FiKeys | undefined> {
    if (!this.#keys) {
      let metadata: oidc.ServerMetadata;
      try {
        metadata = (await this.#discover()).serverMetadata();
      } catch {
        return undefined;
      }
      if (!metadata.jwks_uri) return undefined;
      this.#keys = { issuer: metadata.issuer, keys: createRemoteJWKSet(new URL(metadata.jwks_uri)) };
    }
    return this.#keys;
  }

  /**
   * Where PSC sends the browser to end the FI session, with Keycloak's parameters (`id_token_hint`,
   * `post_logout_redirect_uri`, `state`; no `client_id`), or undefined when the FI publishes no
   * end_session_endpoint.
   */
  async endSessionUrl(
    idTokenHint: string,
    postLogoutRedirectUri: string,
    state: string,
  ): Promise<URL | undefined> {
    let endpoint: string | undefined;
    try {
      endpoint = (await this.#discover()).serverMetadata().end_session_endpoint;
    } catch {
      return undefined;
    }
    if (!endpoint) return undefined;
    const url = new URL(endpoint);
    url.searchParams.set('id_token_hint', idTokenHint);
    url.searchParams.set('post_logout_redirect_uri', postLogoutRedirectUri);
    url.searchParams.set('state', state);
    return url;
  }
}
