import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import * as oidc from 'openid-client';
import type { Logger } from 'pino';
import { z } from 'zod';
import { type NationalIdentities, USABLE_STATUSES } from '../../accounts/national-identity.ts';
import type { Config } from '../../config/schema.ts';
import type { Database, NationalIdentityOrigin } from '../../db/types.ts';
import type { ReadinessCheck } from '../../http/health.ts';
import { normaliseIdNat } from '../../rpps/identifiers.ts';
import type { AuthMethod, AuthOutcome, MethodContext } from '../types.ts';

export type PscLoginSettings = NonNullable<Config['pscLogin']>;

/** Paths on Passerelle's issuer that PSC knows (registered with PSC). */
export const PSC_CALLBACK_PATH = '/federation/psc/callback';
export const PSC_BACKCHANNEL_LOGOUT_PATH = '/federation/psc/backchannel-logout';

/** A login through PSC must come back within this time. */
const PENDING_TTL_MS = 10 * 60_000;

/** What PSC sends back to the redirect URI (authorization response, RFC 6749 §4.1.2 and RFC 9207). */
const input = z.object({
  state: z.string().min(1).max(200),
  code: z.string().min(1).max(4096).optional(),
  iss: z.string().max(500).optional(),
  error: z.string().max(200).optional(),
  error_description: z.string().max(1000).optional(),
});
type PscReturn = z.infer<typeof input>;

export interface PscLoginDeps {
  settings: PscLoginSettings;
  /** Passerelle's issuer (the redirect URI is built on it). */
  issuer: string;
  db: Kysely<Database>;
  identities: NationalIdentities;
  logger: Logger;
}

/** PSC's claims that matter here, from userinfo (PSC puts the national identity there) and the ID token. */
export interface PscIdentity {
  /** The identity's unique id: an idNatPS (origin `rpps`) or a Pro Santé Identité identifier (`psi`). */
  idNat: string;
  origin: NationalIdentityOrigin;
  /** `PSISubjectNameID` when PSC sent one, also beside an RPPS identity. */
  psiId: string | undefined;
  authMode: string | undefined;
  /** PSC's session id: its back-channel logout names it. */
  sid: string | undefined;
}

const random = () => randomBytes(32).toString('base64url');

/**
 * The PSC identity in the claims, or why not. EXI PSC 18 (Référentiel PSC v2.1): the unique id is
 * `SubjectNameID` and/or `PSISubjectNameID`. An idNatPS in `SubjectNameID` (else `preferred_username`,
 * when PSC sent no PSI id) makes an RPPS identity, with the PSI id beside it if any; otherwise a PSI id
 * matching `psiPattern` makes a Pro Santé Identité identity (`SubjectNameID` may then be absent, hold
 * the PSI id itself or anything that is not an idNatPS: what PSC sends there is not published).
 */
export function pscIdentityOf(
  userinfo: Record<string, unknown>,
  idToken: Record<string, unknown>,
  psiPattern: RegExp,
): PscIdentity | { invalid: string } {
  const claim = (name: string) => {
    const value = userinfo[name] ?? idToken[name];
    return typeof value === 'string' && value !== '' ? value : undefined;
  };
  const psiRaw = claim('PSISubjectNameID');
  const psiId = psiRaw !== undefined && psiPattern.test(psiRaw) ? psiRaw : undefined;
  const raw = claim('SubjectNameID') ?? (psiRaw === undefined ? claim('preferred_username') : undefined);
  // The PSI id copied into SubjectNameID is a PSI identity, whatever it looks like.
  const idNat = raw === undefined || raw === psiRaw ? null : normaliseIdNat(raw);
  const authMode = claim('authMode');
  const session = { authMode, sid: typeof idToken.sid === 'string' ? idToken.sid : undefined };
  if (idNat) return { idNat, origin: 'rpps', psiId, ...session };
  if (psiId) return { idNat: psiId, origin: 'psi', psiId, ...session };
  if (psiRaw !== undefined) return { invalid: 'invalid_psi_id' };
  return { invalid: raw === undefined ? 'no_national_id' : 'invalid_national_id' };
}

/** Why PSC's `acr` is refused (ranked by `acrLevels`), or undefined when it is at least `minimumAcr`. */
export function acrRefusal(
  acr: unknown,
  settings: Pick<PscLoginSettings, 'acrLevels' | 'minimumAcr'>,
): 'acr_missing' | 'acr_unknown' | 'acr_too_low' | undefined {
  if (typeof acr !== 'string' || acr === '') return 'acr_missing';
  const rank = settings.acrLevels.indexOf(acr);
  if (rank < 0) return 'acr_unknown';
  return rank < settings.acrLevels.indexOf(settings.minimumAcr) ? 'acr_too_low' : undefined;
}

/** PSC's discovery document: the configured URL, else the one the ANS names. */
export function pscDiscoveryUrl(settings: Pick<PscLoginSettings, 'issuer' | 'discoveryUrl'>): string {
  return (
    settings.discoveryUrl ?? `${settings.issuer.replace(/\/$/, '')}/.well-known/wallet-openid-configuration`
  );
}

/**
 * "Se connecter avec Pro Santé Connect": Passerelle is an OpenID Connect client of PSC (code flow, PKCE,
 * state, nonce). PSC proves a national identity (e-CPS or CPS); the account is the one whose link to
 * that identity is established, or — when this login already proved an account — the proof links it
 * (source `psc-login`). An identity linked to no account never creates one.
 */
/**
 * PSC's discovery document answers and names the configured issuer (an optional readiness check: local
 * sign-ins do not depend on PSC). Fetched at each check, not the login's cached copy.
 */
export function pscDiscoveryCheck(
  settings: Pick<PscLoginSettings, 'issuer' | 'discoveryUrl'>,
): ReadinessCheck {
  return {
    name: 'psc',
    optional: true,
    async run() {
      const response = await fetch(pscDiscoveryUrl(settings), { signal: AbortSignal.timeout(1500) });
      if (!response.ok) return { ok: false, detail: `discovery answered ${response.status}` };
      const issuer = ((await response.json()) as { issuer?: unknown }).issuer;
      return issuer === settings.issuer
        ? { ok: true }
        : { ok: false, detail: 'discovery names another issuer' };
    },
  };
}

export function pscLoginMethod(deps: PscLoginDeps): AuthMethod<PscReturn> & {
  configuration(): Promise<oidc.Configuration>;
  /** Deletes logins through PSC that never came back (for the periodic purge). */
  purgeExpired(): Promise<number>;
} {
  const { settings } = deps;
  const redirectUri = `${deps.issuer}${PSC_CALLBACK_PATH}`;
  const psiPattern = new RegExp(settings.psi.identifierPattern, 'u');
  let discovered: Promise<oidc.Configuration> | undefined;

  /**
   * PSC's discovery document, read from the configured URL (a /.well-known/ URL, taken as it is): it must
   * name the configured issuer. ID tokens and userinfo JWTs are verified against its JWKS.
   */
  const discover = async () => {
    const auth =
      settings.tokenEndpointAuthMethod === 'none'
        ? oidc.None()
        : settings.tokenEndpointAuthMethod === 'client_secret_post'
          ? oidc.ClientSecretPost(settings.clientSecret)
          : oidc.ClientSecretBasic(settings.clientSecret);
    const client = { redirect_uris: [redirectUri] };
    const found = await oidc.discovery(new URL(pscDiscoveryUrl(settings)), settings.clientId, client, auth, {
      timeout: 10,
      ...(settings.allowInsecureHttp ? { execute: [oidc.allowInsecureRequests] } : {}),
    });
    const metadata = found.serverMetadata();
    if (metadata.issuer !== settings.issuer) {
      throw new Error(`PSC discovery names the issuer ${metadata.issuer}, not ${settings.issuer}`);
    }
    const { supportsPKCE: _, ...plain } = metadata;
    const config = settings.authorizationEndpoint
      ? new oidc.Configuration(
          { ...plain, authorization_endpoint: settings.authorizationEndpoint },
          settings.clientId,
          client,
          auth,
        )
      : found;
    if (settings.allowInsecureHttp) oidc.allowInsecureRequests(config);
    oidc.enableNonRepudiationChecks(config);
    return config;
  };
  const configuration = () => {
    discovered ??= discover().catch((err: unknown) => {
      discovered = undefined; // PSC unreachable or misconfigured: try again at the next login
      throw err;
    });
    return discovered;
  };

  type Detail = Record<string, string | number | boolean>;
  const failure = (reason: string, accountId?: string, detail?: Detail): AuthOutcome => ({
    kind: 'failure',
    code: 'upstream_failed',
    reason,
    ...(accountId ? { accountId } : {}),
    ...(detail ? { detail } : {}),
  });
  /** What the audit trail keeps of an identity PSC proved. */
  const identityDetail = (identity: PscIdentity): Detail => ({
    idNat: identity.idNat,
    identityOrigin: identity.origin,
    ...(identity.psiId && identity.psiId !== identity.idNat ? { psiId: identity.psiId } : {}),
  });
  const warn = (context: MethodContext, err: unknown, message: string) =>
    deps.logger.warn(
      {
        requestId: context.requestId,
        error: (err as Error).message,
        code: (err as { code?: string }).code,
      },
      message,
    );

  /** PSC's proof, marked federated (RFC 8176 `fed`): it was made at PSC, not at Passerelle. */
  const amrOf = (authMode: string | undefined) => [
    'fed',
    ...((authMode && settings.amrByAuthMode[authMode]) || settings.amrByAuthMode.default || ['mfa']),
  ];

  return {
    id: 'psc',
    label: 'method.psc',
    // Planning uses the strongest login PSC offers (the card); each login reports what it was.
    amr: amrOf('CARD'),
    phishingResistant: settings.phishingResistantAuthModes.length > 0,
    federated: true,
    needsUsername: false,
    input,
    view: 'method-psc',
    returnsByRedirect: true,
    configuration,

    async purgeExpired() {
      const result = await deps.db
        .deleteFrom('psc_login_pending')
        .where('expires_at', '<', new Date())
        .executeTakeFirst();
      return Number(result.numDeletedRows);
    },

    async prepare(context: MethodContext) {
      let config: oidc.Configuration;
      try {
        config = await configuration();
      } catch (err) {
        // PSC unreachable, or its discovery document is not what it should be: the page says so.
        warn(context, err, 'psc login: discovery failed');
        return { pscUnavailable: true };
      }
      const state = random();
      const nonce = random();
      const verifier = oidc.randomPKCECodeVerifier();
      await deps.db
        .insertInto('psc_login_pending')
        .values({
          state,
          interaction_uid: context.interactionUid,
          nonce,
          code_verifier: verifier,
          expires_at: new Date(Date.now() + PENDING_TTL_MS),
        })
        .execute();
      const parameters: Record<string, string> = {
        redirect_uri: redirectUri,
        scope: settings.scope,
        state,
        nonce,
        code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        ui_locales: context.locale,
      };
      if (settings.acrValues) parameters.acr_values = settings.acrValues;
      return { pscUrl: oidc.buildAuthorizationUrl(config, parameters).href };
    },

    async authenticate(answer: PscReturn, context: MethodContext): Promise<AuthOutcome> {
      // Single use, and only for the interaction that started it.
      const pending = await deps.db
        .deleteFrom('psc_login_pending')
        .where('state', '=', answer.state)
        .where('interaction_uid', '=', context.interactionUid)
        .where('expires_at', '>', new Date())
        .returningAll()
        .executeTakeFirst();
      if (!pending) return failure('state_mismatch');
      if (answer.error) return failure(`psc_${answer.error}`.slice(0, 64));
      if (!answer.code) return failure('no_code');

      const callback = new URL(redirectUri);
      for (const [key, value] of Object.entries(answer)) if (value) callback.searchParams.set(key, value);
      let config: oidc.Configuration;
      try {
        config = await configuration();
      } catch (err) {
        warn(context, err, 'psc login: discovery failed');
        return failure('discovery_failed');
      }
      let tokens: Awaited<ReturnType<typeof oidc.authorizationCodeGrant>>;
      try {
        tokens = await oidc.authorizationCodeGrant(config, callback, {
          pkceCodeVerifier: pending.code_verifier,
          expectedState: pending.state,
          expectedNonce: pending.nonce,
          idTokenExpected: true,
        });
      } catch (err) {
        // A refused code, a bad ID token (signature, nonce, issuer, audience) or PSC unreachable.
        warn(context, err, 'psc login: token exchange failed');
        return failure('token_exchange_failed');
      }
      const claims = tokens.claims();
      if (!claims) return failure('no_id_token');
      let userinfo: Record<string, unknown>;
      try {
        // JSON, or a JWT (application/jwt) whose signature is verified against PSC's JWKS; same `sub`.
        userinfo = await oidc.fetchUserInfo(config, tokens.access_token, claims.sub);
      } catch (err) {
        warn(context, err, 'psc login: userinfo refused');
        return failure('userinfo_failed');
      }
      const identity = pscIdentityOf(userinfo, claims, psiPattern);
      // PSC's level, from its signed ID token (as the ANS connector reads it).
      const acrRefused = acrRefusal(claims.acr, settings);
      if (acrRefused) {
        return {
          kind: 'failure',
          code: 'psc_level_too_low',
          reason: acrRefused,
          detail: {
            ...('invalid' in identity ? {} : identityDetail(identity)),
            acr: typeof claims.acr === 'string' ? claims.acr.slice(0, 64) : 'none',
            minimumAcr: settings.minimumAcr,
          },
        };
      }
      if ('invalid' in identity) return failure(identity.invalid);
      if (identity.origin === 'psi' && !settings.psi.accept) {
        return {
          kind: 'failure',
          code: 'psc_identity_not_accepted',
          reason: 'psi_not_accepted',
          detail: identityDetail(identity),
        };
      }

      const amr = amrOf(identity.authMode);
      const phishingResistant =
        identity.authMode !== undefined && settings.phishingResistantAuthModes.includes(identity.authMode);
      const detail = {
        ...identityDetail(identity),
        authMode: identity.authMode ?? 'unknown',
        ...(identity.sid ? { upstreamSid: identity.sid } : {}),
      };
      const success = (accountId: string, linked: string): AuthOutcome => ({
        kind: 'success',
        accountId,
        amr,
        phishingResistant,
        nationalId: { idNat: identity.idNat, origin: identity.origin, source: 'psc-login' },
        ...(identity.sid ? { upstreamSid: identity.sid } : {}),
        detail: { ...detail, linked },
      });
      // EXI PSC 19: accounts merge around the national identity, from the RPPS or from PSI. A proof
      // of both ids replaces the account's PSI link by its RPPS one (the professional entered the RPPS).
      const proven = {
        origin: identity.origin,
        ...(identity.origin === 'rpps' && identity.psiId
          ? { supersedes: { idNat: identity.psiId, origin: 'psi' as const } }
          : {}),
      };

      // This login already proved an account: PSC's proof links it (the strongest source).
      if (context.accountId) {
        const proof = await deps.identities.recordProven(
          context.accountId,
          identity.idNat,
          'psc-login',
          proven,
        );
        if (proof.kind === 'conflict' || proof.kind === 'rejected' || proof.kind === 'inactive') {
          return {
            kind: 'failure',
            code: 'national_id_conflict',
            reason: `national_id_${proof.kind}`,
            accountId: context.accountId,
            detail,
          };
        }
        return success(context.accountId, proof.kind === 'unchanged' ? 'existing' : 'new');
      }
      // As for the card: a verified link, or a candidate that this proof confirms. A link flagged
      // inactive or in conflict is not used. An account linked by its PSI id is found by it too.
      const link =
        (await deps.identities.findByIdNat(identity.idNat, identity.origin)) ??
        (proven.supersedes && (await deps.identities.findByIdNat(proven.supersedes.idNat, 'psi')));
      if (link && USABLE_STATUSES.includes(link.status)) {
        const proof = await deps.identities.recordProven(link.accountId, identity.idNat, 'psc-login', proven);
        if (proof.kind !== 'conflict') return success(link.accountId, 'existing');
      }
      return {
        kind: 'failure',
        code: 'psc_not_linked',
        reason: link ? `link_${link.status}` : 'unknown_national_id',
        ...(link ? { accountId: link.accountId } : {}),
        detail,
      };
    },
  };
}
