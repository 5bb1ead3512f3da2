import type { TokenRefusal, ValidatedToken } from './token-validation.ts';
import { jwsPayload } from './token-validation.ts';

/**
 * Logout between PSC and the establishments' FIs, as Keycloak's OIDC identity brokering does it: the checks
 * on an FI's back-channel logout token (OpenID Connect Back-Channel Logout 1.0; Keycloak's TokenManager
 * `verifyLogoutToken`), and PSC's memory of which of its sessions came from which FI session.
 */

export const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

/** Why PSC refused an FI's logout token (answered with 400 `invalid_request`). */
export type LogoutTokenRefusalReason =
  | 'logout_token_missing'
  | 'malformed'
  | 'iss_unknown'
  | 'bad_signature'
  | 'aud_mismatch'
  | 'azp_mismatch'
  | 'iss_mismatch'
  | 'token_expired'
  | 'token_not_yet_valid'
  | 'iat_missing'
  | 'iat_stale'
  | 'events_missing'
  | 'sid_and_sub_missing'
  | 'nonce_present'
  | 'jti_missing'
  | 'jti_replayed';

export interface LogoutTokenRefusal {
  kind: 'refused';
  reason: LogoutTokenRefusalReason;
  detail: string;
}

/** An FI whose logout tokens PSC accepts (a broker entry), with what they are checked against. */
export interface LogoutTokenIssuer {
  alias: string;
  maxAgeSeconds: number;
  /** The entry's configured `issuer` names the token's `iss`. */
  issues(iss: unknown): Promise<boolean>;
  /** OIDCIdentityProvider.validateToken: signature (with `validateSignature`), exp, nbf, aud, azp, iss. */
  validateToken(token: string): Promise<ValidatedToken | TokenRefusal>;
}

/** A valid logout token: the FIs (aliases) it comes from and the FI session or user it names. */
export interface AcceptedLogoutToken {
  kind: 'accepted';
  aliases: string[];
  sid: string | undefined;
  sub: string | undefined;
}

/** Clock skew tolerated on a future `iat` (the freshness check is the specification's advice). */
const CLOCK_TOLERANCE_SECONDS = 30;

function refused(reason: LogoutTokenRefusalReason, detail: string): LogoutTokenRefusal {
  return { kind: 'refused', reason, detail };
}

/** The `jti` of accepted logout tokens, per issuer, remembered as long as the token could be accepted. */
export class SeenLogoutTokens {
  readonly #until = new Map<string, number>();

  /** Records the token; false when it was already seen (a replay). */
  add(issuer: string, jti: string, untilMs: number, nowMs: number): boolean {
    for (const [key, until] of this.#until) if (until < nowMs) this.#until.delete(key);
    const key = JSON.stringify([issuer, jti]);
    if (this.#until.has(key)) return false;
    this.#until.set(key, untilMs);
    return true;
  }
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Checks a logout token in Keycloak's manner: the identity provider entries whose configured `issuer` is
 * the token's `iss` (none: refused), of which those whose `validateToken` passes (signature when
 * `validateSignature`, `exp`, `nbf`, `aud` ⊇ the entry's client id, `azp`); the back-channel event, `sid`
 * or `sub`, no `nonce`, `jti`, `iat`. Plus what the specification advises a receiver (guessed for PSC): a
 * recent `iat`, a `jti` not seen before. The first failing check is returned.
 */
export async function checkLogoutToken(
  token: string | undefined,
  issuers: readonly LogoutTokenIssuer[],
  seen: SeenLogoutTokens,
  now: Date,
): Promise<AcceptedLogoutToken | LogoutTokenRefusal> {
  if (!token) return refused('logout_token_missing', 'no logout_token parameter');
  const unverified = jwsPayload(token);
  if (!unverified) return refused('malformed', 'not a compact JWS with a JSON payload');
  const { iss } = unverified;
  const sameIssuer: LogoutTokenIssuer[] = [];
  for (const issuer of issuers) if (await issuer.issues(iss)) sameIssuer.push(issuer);
  if (sameIssuer.length === 0) return refused('iss_unknown', `no FI with issuer ${String(iss)}`);

  const addressed: LogoutTokenIssuer[] = [];
  let firstRefusal: TokenRefusal | undefined;
  let claims: Record<string, unknown> = unverified;
  for (const issuer of sameIssuer) {
    const validated = await issuer.validateToken(token);
    if (validated.kind === 'valid') {
      addressed.push(issuer);
      claims = validated.claims;
    } else firstRefusal ??= validated;
  }
  if (addressed.length === 0 && firstRefusal) return refused(firstRefusal.reason, firstRefusal.detail);

  if (!isRecord(claims.events) || !isRecord(claims.events[BACKCHANNEL_LOGOUT_EVENT])) {
    return refused('events_missing', `no ${BACKCHANNEL_LOGOUT_EVENT} event`);
  }
  const sid = typeof claims.sid === 'string' && claims.sid !== '' ? claims.sid : undefined;
  const sub = typeof claims.sub === 'string' && claims.sub !== '' ? claims.sub : undefined;
  if (!sid && !sub) return refused('sid_and_sub_missing', 'neither sid nor sub');
  if ('nonce' in claims) return refused('nonce_present', 'a logout token carries no nonce');
  const { jti, iat } = claims;
  if (typeof jti !== 'string' || jti === '') return refused('jti_missing', 'no jti claim');
  if (typeof iat !== 'number') return refused('iat_missing', 'no iat claim');
  const nowSeconds = Math.floor(now.getTime() / 1000);
  const maxAge = Math.min(...addressed.map((i) => i.maxAgeSeconds));
  const age = nowSeconds - iat;
  if (age > maxAge || age < -CLOCK_TOLERANCE_SECONDS) {
    return refused('iat_stale', `issued ${age} s ago, accepted up to ${maxAge} s`);
  }
  if (!seen.add(String(iss), jti, (iat + maxAge) * 1000, now.getTime())) {
    return refused('jti_replayed', `jti ${jti} already received`);
  }
  return { kind: 'accepted', aliases: addressed.map((i) => i.alias), sid, sub };
}

/** A PSC session that came from a delegated login at an FI. */
export interface BrokeredSession {
  /** The PSC session (its stable uid, Keycloak's user session id). */
  session: string;
  accountId: string;
  alias: string;
  /** The FI's `sub` and session, as its logout tokens name them. */
  fiSub: string;
  fiSessionId: string | undefined;
  /** The FI's ID token, sent back as `id_token_hint`. */
  fiIdToken: string;
  /** Set while the browser is at the FI's end_session endpoint (Keycloak's LOGGING_OUT): the service logging out. */
  loggingOut?: { clientId: string };
}

/** PSC's memory of its brokered sessions, by PSC session. */
export class BrokeredSessions {
  readonly #bySession = new Map<string, BrokeredSession>();

  /** Records (or replaces, after a new delegated login in the same PSC session) a brokered session. */
  record(brokered: BrokeredSession): void {
    this.#bySession.set(brokered.session, brokered);
  }

  get(session: string): BrokeredSession | undefined {
    return this.#bySession.get(session);
  }

  delete(session: string): boolean {
    return this.#bySession.delete(session);
  }

  /**
   * The sessions a logout token ends: brokered from one of `aliases`, from the FI session `sid` when the
   * token names one (Keycloak then ignores `sub`), else from any session of the FI user `sub`.
   */
  matching(aliases: readonly string[], sid: string | undefined, sub: string | undefined): BrokeredSession[] {
    return [...this.#bySession.values()].filter(
      (b) => aliases.includes(b.alias) && (sid !== undefined ? b.fiSessionId === sid : b.fiSub === sub),
    );
  }

  all(): BrokeredSession[] {
    return [...this.#bySession.values()];
  }
}
