import { compactVerify, decodeProtectedHeader, importJWK, importSPKI, type JWK } from 'jose';

/**
 * How Keycloak's OIDC identity broker checks a JWT from an upstream identity provider (ID token, userinfo
 * JWT, logout token): `OIDCIdentityProvider.verify` (signature, only with `validateSignature`; key by `kid`
 * and `alg` from the JWKS, re-fetched for an unknown `kid` at most every 10 s) and `validateToken` (`exp`
 * without skew, `nbf` with `allowedClockSkew`, `iat` not checked, `aud` contains the client id, `azp` if
 * present equals it, `iss` in the configured comma-separated list when one is set).
 * Sources (keycloak-broker.md): OIDC `verify`, `validateToken`; JWT `isActive`; KEYS; JWKSU; KCACHE.
 */

/** Algorithms with a Keycloak SignatureProvider for asymmetric keys (RS, PS, ES families). */
export const KEYCLOAK_SIGNATURE_ALGS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
] as const;

/** Keycloak's default minimum time between two fetches of an IdP's JWKS (KCACHE `minTimeBetweenRequests`). */
export const JWKS_MIN_SECONDS_BETWEEN_REQUESTS = 10;

export type TokenRefusalReason =
  | 'malformed'
  | 'bad_signature'
  | 'token_expired'
  | 'token_not_yet_valid'
  | 'aud_mismatch'
  | 'azp_mismatch'
  | 'iss_mismatch';

export interface TokenRefusal {
  kind: 'refused';
  reason: TokenRefusalReason;
  detail: string;
}

export interface ValidatedToken {
  kind: 'valid';
  claims: Record<string, unknown>;
}

/** What a token is checked against: the IdP's config as Keycloak stores it. */
export interface TokenValidationConfig {
  clientId: string;
  /** `validateSignature`. */
  validateSignature: boolean;
  /** `issuer`: a comma-separated list; empty or undefined: not checked. */
  issuer: string | undefined;
  /** `allowedClockSkew` in seconds, applied to `nbf` only. */
  allowedClockSkew: number;
}

const familyOf = (alg: string) => alg.slice(0, 2);
const KTY_BY_FAMILY: Record<string, string> = { RS: 'RSA', PS: 'RSA', ES: 'EC' };

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * The signing keys of an upstream IdP as Keycloak's public key storage keeps them: from `jwksUrl`
 * (`useJwksUrl`, keys with `use=sig` or without `use`), loaded at first use, re-loaded when a `kid` is
 * unknown but not more than once every 10 s; or one stored PEM public key (`publicKeySignatureVerifier`).
 */
export class IdpKeys {
  readonly #jwksUrl: string | undefined;
  readonly #pem: string | undefined;
  readonly #pemKeyId: string | undefined;
  readonly #now: () => Date;
  #keys: JWK[] | undefined;
  #lastRequestMs = Number.NEGATIVE_INFINITY;
  /** The JWKS fetches made (for tests: the 10 s rule). */
  fetches = 0;

  constructor(
    source: { jwksUrl?: string; pem?: string; pemKeyId?: string },
    now: () => Date = () => new Date(),
  ) {
    this.#jwksUrl = source.jwksUrl;
    this.#pem = source.pem;
    this.#pemKeyId = source.pemKeyId;
    this.#now = now;
  }

  async #fetch(): Promise<void> {
    if (!this.#jwksUrl) return;
    this.#lastRequestMs = this.#now().getTime();
    this.fetches++;
    const response = await fetch(this.#jwksUrl);
    if (!response.ok) throw new Error(`JWKS ${this.#jwksUrl}: HTTP ${response.status}`);
    const body = (await response.json()) as { keys?: unknown };
    const keys = Array.isArray(body.keys) ? (body.keys as JWK[]) : [];
    this.#keys = keys.filter((k) => k.use === undefined || k.use === 'sig');
  }

  #find(kid: string | undefined, alg: string): JWK | undefined {
    return this.#keys?.find(
      (k) =>
        (kid === undefined || k.kid === kid) &&
        (k.alg === undefined ? k.kty === KTY_BY_FAMILY[familyOf(alg)] : k.alg === alg),
    );
  }

  /** The verification key for a JWS header, or undefined. */
  async key(kid: string | undefined, alg: string): Promise<CryptoKey | Uint8Array | undefined> {
    if (this.#pem !== undefined) {
      if (this.#pemKeyId && kid !== undefined && kid !== this.#pemKeyId) return undefined;
      return importSPKI(this.#pem, alg);
    }
    if (!this.#keys) await this.#fetch();
    let jwk = this.#find(kid, alg);
    const sinceLast = this.#now().getTime() - this.#lastRequestMs;
    if (!jwk && sinceLast >= JWKS_MIN_SECONDS_BETWEEN_REQUESTS * 1000) {
      await this.#fetch();
      jwk = this.#find(kid, alg);
    }
    return jwk ? importJWK(jwk, alg) : undefined;
  }
}

function refused(reason: TokenRefusalReason, detail: string): TokenRefusal {
  return { kind: 'refused', reason, detail };
}

/** The payload of a compact JWS, without verification. */
export function jwsPayload(token: string): Record<string, unknown> | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(parts[1] ?? '', 'base64url').toString('utf8'));
    return isRecord(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** OIDCIdentityProvider.verify: true without `validateSignature`, else the signature checks out. */
export async function verifySignature(
  token: string,
  config: Pick<TokenValidationConfig, 'validateSignature'>,
  keys: IdpKeys,
): Promise<TokenRefusal | undefined> {
  if (!config.validateSignature) return undefined;
  let header: { alg?: string; kid?: string };
  try {
    header = decodeProtectedHeader(token);
  } catch (error) {
    return refused('malformed', (error as Error).message);
  }
  const alg = header.alg ?? '';
  if (!(KEYCLOAK_SIGNATURE_ALGS as readonly string[]).includes(alg)) {
    return refused('bad_signature', `no signature provider for alg ${alg}`);
  }
  try {
    const key = await keys.key(header.kid, alg);
    if (!key) return refused('bad_signature', `no key ${header.kid ?? '(no kid)'} for ${alg}`);
    await compactVerify(token, key, { algorithms: [alg] });
    return undefined;
  } catch (error) {
    return refused('bad_signature', (error as Error).message);
  }
}

/** OIDCIdentityProvider.validateToken (`ignoreAudience` false): signature, then the claims. */
export async function validateToken(
  token: string,
  config: TokenValidationConfig,
  keys: IdpKeys,
  now: Date,
): Promise<ValidatedToken | TokenRefusal> {
  const claims = jwsPayload(token);
  if (!claims) return refused('malformed', 'not a compact JWS with a JSON payload');
  const badSignature = await verifySignature(token, config, keys);
  if (badSignature) return badSignature;
  const nowSeconds = Math.floor(now.getTime() / 1000);
  // JsonWebToken.isActive: isExpired (no skew; an absent or 0 exp never expires), isNotBefore(skew).
  const { exp, nbf } = claims;
  if (typeof exp === 'number' && exp !== 0 && nowSeconds > exp) {
    return refused('token_expired', `expired at ${exp}, now ${nowSeconds}`);
  }
  if (typeof nbf === 'number' && nowSeconds < nbf - config.allowedClockSkew) {
    return refused('token_not_yet_valid', `not before ${nbf}, now ${nowSeconds}`);
  }
  const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!audiences.includes(config.clientId)) {
    return refused('aud_mismatch', `aud ${JSON.stringify(claims.aud)} lacks ${config.clientId}`);
  }
  if (claims.azp !== undefined && claims.azp !== null && claims.azp !== config.clientId) {
    return refused('azp_mismatch', `azp ${String(claims.azp)} is not ${config.clientId}`);
  }
  if (config.issuer) {
    const trusted = config.issuer.split(',').map((i) => i.trim());
    if (typeof claims.iss !== 'string' || !trusted.includes(claims.iss)) {
      return refused('iss_mismatch', `iss ${String(claims.iss)}, expected ${config.issuer}`);
    }
  }
  return { kind: 'valid', claims };
}
