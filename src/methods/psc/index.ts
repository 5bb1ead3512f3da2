import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import * as oidc from 'openid-client';
import type { Logger } from 'pino';
import { z } from 'zod';
import { type NationalIdentities, USABLE_STATUSES } from '../../accounts/national-identity.ts';
import type { Config } from '../../config/schema.ts';
import type { Database } from '../../db/types.ts';
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
  idNat: string;
  authMode: string | undefined;
  /** PSC's session id: its back-channel logout names it. */
  sid: string | undefined;
}

const random = () => randomBytes(32).toString('base64url');

/** The PSC identity in the claims, or why not. */
export function pscIdentityOf(
  userinfo: Record<string, unknown>,
  idToken: Record<string, unknown>,
): PscIdentity | { invalid: string } {
  const raw = userinfo.SubjectNameID ?? userinfo.preferred_username ?? idToken.SubjectNameID;
  if (typeof raw !== 'string') return { invalid: 'no_national_id' };
  const idNat = normaliseIdNat(raw);
  if (!idNat) return { invalid: 'invalid_national_id' };
  const authMode = userinfo.authMode ?? idToken.authMode;
  return {
    idNat,
    authMode: typeof authMode === 'string' ? authMode : undefined,
    sid: typeof idToken.sid === 'string' ? idToken.sid : undefined,
  };
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
export function pscDiscoveryCheck(settings: { issuer: string }): ReadinessCheck {
  return {
    name: 'psc',
    optional: true,
    async run() {
      const url = `${settings.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
      const response = await fetch(url, { signal: AbortSignal.timeout(1500) });
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
  let discovered: Promise<oidc.Configuration> | undefined;

  const configuration = () => {
    const auth =
      settings.tokenEndpointAuthMethod === 'none'
        ? oidc.None()
        : settings.tokenEndpointAuthMethod === 'client_secret_post'
          ? oidc.ClientSecretPost(settings.clientSecret)
          : oidc.ClientSecretBasic(settings.clientSecret);
    discovered ??= oidc
      .discovery(
        new URL(settings.issuer),
        settings.clientId,
        { redirect_uris: [redirectUri] },
        auth,
        settings.allowInsecureHttp ? { execute: [oidc.allowInsecureRequests] } : undefined,
      )
      .catch((err: unknown) => {
        discovered = undefined; // PSC unreachable: try again at the next login
        throw err;
      });
    return discovered;
  };

  const failure = (reason: string, accountId?: string): AuthOutcome => ({
    kind: 'failure',
    code: 'upstream_failed',
    reason,
    ...(accountId ? { accountId } : {}),
  });

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
      return { pscUrl: oidc.buildAuthorizationUrl(await configuration(), parameters).href };
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
      let identity: PscIdentity | { invalid: string };
      try {
        const config = await configuration();
        const tokens = await oidc.authorizationCodeGrant(config, callback, {
          pkceCodeVerifier: pending.code_verifier,
          expectedState: pending.state,
          expectedNonce: pending.nonce,
          idTokenExpected: true,
        });
        const claims = tokens.claims();
        if (!claims) return failure('no_id_token');
        const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, claims.sub);
        identity = pscIdentityOf(userinfo, claims);
      } catch (err) {
        // A refused code, a bad ID token (signature, nonce, issuer) or PSC unreachable.
        deps.logger.warn(
          {
            requestId: context.requestId,
            error: (err as Error).message,
            code: (err as { code?: string }).code,
          },
          'psc login: token exchange failed',
        );
        return failure('token_exchange_failed');
      }
      if ('invalid' in identity) return failure(identity.invalid);

      const amr = amrOf(identity.authMode);
      const phishingResistant =
        identity.authMode !== undefined && settings.phishingResistantAuthModes.includes(identity.authMode);
      const detail = {
        idNat: identity.idNat,
        authMode: identity.authMode ?? 'unknown',
        ...(identity.sid ? { upstreamSid: identity.sid } : {}),
      };
      const success = (accountId: string, linked: string): AuthOutcome => ({
        kind: 'success',
        accountId,
        amr,
        phishingResistant,
        nationalId: { idNat: identity.idNat, source: 'psc-login' },
        ...(identity.sid ? { upstreamSid: identity.sid } : {}),
        detail: { ...detail, linked },
      });

      // This login already proved an account: PSC's proof links it (the strongest source).
      if (context.accountId) {
        const proof = await deps.identities.recordProven(context.accountId, identity.idNat, 'psc-login');
        if (proof.kind === 'conflict' || proof.kind === 'rejected' || proof.kind === 'inactive') {
          return {
            kind: 'failure',
            code: 'national_id_conflict',
            reason: `national_id_${proof.kind}`,
            accountId: context.accountId,
          };
        }
        return success(context.accountId, proof.kind === 'unchanged' ? 'existing' : 'new');
      }
      // As for the card: a verified link, or a candidate that this proof confirms. A link flagged
      // inactive or in conflict is not used.
      const link = await deps.identities.findByIdNat(identity.idNat);
      if (link && USABLE_STATUSES.includes(link.status)) {
        const proof = await deps.identities.recordProven(link.accountId, identity.idNat, 'psc-login');
        if (proof.kind !== 'conflict') return success(link.accountId, 'existing');
      }
      return {
        kind: 'failure',
        code: 'psc_not_linked',
        reason: link ? `link_${link.status}` : 'unknown_national_id',
        ...(link ? { accountId: link.accountId } : {}),
      };
    },
  };
}
