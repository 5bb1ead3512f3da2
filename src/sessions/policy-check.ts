import { interactionPolicy, type KoaContextWithOIDC } from 'oidc-provider';
import type { AuditTrail } from '../audit/trail.ts';
import type { Config } from '../config/schema.ts';
import type { CompletedMethod } from '../db/types.ts';
import { passerelleAcrValues, pscEstablishmentOf, pscLevelAcr } from '../federation/psc-profile.ts';
import { REQUEST_ID_HEADER } from '../oidc/host.ts';
import { assess, provenLocally, reaches, requiredLevel, withinMaxAge } from '../policy/assurance.ts';
import type { AuthSessions, SessionProfile } from './auth-sessions.ts';

/** What the login flow hands to the engine with its login result, for the session record. */
export interface LoginRecord {
  methods: CompletedMethod[];
  profile: SessionProfile;
}

export const SESSION_CHECK = 'session_policy';
export type SessionCheckReason = 'expired' | 'step_up';

const reasons = new WeakMap<KoaContextWithOIDC, SessionCheckReason>();

/**
 * The assurance level the current authorization request needs (PSC: two-factor, phishing resistant).
 * PSC's broker forwards its services' `acr_values` (`eidas1`…): those name PSC's levels, read back
 * through `psc.acrValues`; a value nobody configured is ignored, never an error.
 */
export function levelForRequest(config: Config, clientMetadata: Record<string, unknown>, acrValues: unknown) {
  const psc = pscEstablishmentOf(config, clientMetadata) !== undefined;
  return requiredLevel(config.policy.levels, {
    defaultAcr: config.policy.defaultAcr ?? config.policy.levels[0]?.acr ?? '',
    clientAcr: typeof clientMetadata.required_acr === 'string' ? clientMetadata.required_acr : undefined,
    profileAcr: psc ? pscLevelAcr(config.policy.levels) : undefined,
    acrValues: psc ? passerelleAcrValues(config, acrValues) : acrValues,
  });
}

function parseMaxAge(value: unknown): number | undefined {
  const n = Number(value);
  return value === undefined || value === null || Number.isNaN(n) ? undefined : n;
}

/** The maximum authentication age of the request: `max_age`, and for PSC at most `psc.maxAuthAgeSeconds`. */
export function maxAgeOf(
  config: Config,
  clientMetadata: Record<string, unknown>,
  value: unknown,
): number | undefined {
  const requested = parseMaxAge(value);
  if (!pscEstablishmentOf(config, clientMetadata)) return requested;
  return Math.min(requested ?? Number.POSITIVE_INFINITY, config.psc.maxAuthAgeSeconds);
}

/**
 * The login prompt's own check: the single sign-on session must be alive (idle and absolute
 * lifetimes) and its methods, within max_age, must reach the level the client needs; otherwise the
 * user is asked to authenticate (again, or only for the missing factor). It also records the methods
 * of a login that just completed. Audited: session start, refresh (a new login on a live session of
 * the same account: step-up or re-authentication) and expiry.
 */
export function sessionPolicyCheck(config: Config, sessions: AuthSessions, audit: AuditTrail) {
  const { Check } = interactionPolicy;
  return new Check(
    SESSION_CHECK,
    'the single sign-on session does not satisfy the policy',
    'login_required',
    async (ctx: KoaContextWithOIDC) => {
      const { session, result, client, params } = ctx.oidc;
      const accountId = session?.accountId;
      if (!session || !accountId || !client) return Check.NO_NEED_TO_PROMPT;
      const context = {
        accountId,
        sessionId: session.uid,
        clientId: client.clientId,
        ip: ctx.ip,
        userAgent: ctx.get('user-agent') || undefined,
        requestId: ctx.get(REQUEST_ID_HEADER) || undefined,
      };
      const completed = result?.passerelle as LoginRecord | undefined;
      if (result?.login && completed) {
        const live = await sessions.active(session.uid, accountId);
        const federation =
          pscEstablishmentOf(config, client.metadata()) !== undefined ||
          completed.methods.some((m) => m.federated);
        // The session and its record are committed together: neither exists without the other.
        await audit.recordAuthentication(
          {
            ...context,
            type: live ? 'session.refreshed' : 'session.started',
            outcome: 'success',
            interactionId: ctx.oidc.entities.Interaction?.uid,
            method: completed.methods.at(-1)?.method,
            amr: result.login.amr,
            acr: result.login.acr,
            detail: { methods: completed.methods.map((m) => m.method), profile: completed.profile },
          },
          federation ? 'federation' : 'local',
          (trx) => sessions.save(session.uid, accountId, completed.methods, completed.profile, trx),
        );
        return Check.NO_NEED_TO_PROMPT;
      }
      const active = await sessions.active(session.uid, accountId);
      if (!active) {
        const expiry = await sessions.claimExpiry(session.uid, accountId);
        if (expiry)
          await audit.record({ ...context, type: 'session.expired', outcome: 'success', reason: expiry });
        reasons.set(ctx, 'expired');
        return Check.REQUEST_PROMPT;
      }
      const level = levelForRequest(config, client.metadata(), params?.acr_values);
      const now = Math.floor(Date.now() / 1000);
      const valid = withinMaxAge(active.methods, maxAgeOf(config, client.metadata(), params?.max_age), now);
      // For PSC, only what Passerelle proved itself counts (never a login through PSC).
      const forPsc = pscEstablishmentOf(config, client.metadata()) !== undefined;
      const counted = forPsc ? provenLocally(valid) : valid;
      const assurance = assess(config.policy.levels, counted);
      if (!reaches(assurance, level)) {
        reasons.set(ctx, 'step_up');
        return Check.REQUEST_PROMPT;
      }
      // The session's latest login may include a login through PSC: what PSC's code, ID token and access
      // token carry is restated from Passerelle's own proofs (amr, acr, and their latest time).
      if (forPsc) {
        session.loginAccount({
          accountId,
          amr: assurance.amr,
          acr: assurance.acr,
          loginTs: Math.max(...counted.map((m) => m.at)),
          transient: session.transient,
        });
      }
      await sessions.touch(active);
      return Check.NO_NEED_TO_PROMPT;
    },
    (ctx: KoaContextWithOIDC) => ({ session_reason: reasons.get(ctx) }),
  );
}

export const SELECT_ACCOUNT_PROMPT = 'select_account';

/** What the account choice page answers: this account, or another one (a new login). */
export interface SelectAccountResult {
  other?: boolean;
}

/**
 * OpenID Connect `prompt=select_account` (Keycloak's broker forwards its services' prompt, or sends its
 * own configured one): with a single sign-on session, the user chooses between that account and another
 * one; without, the login page is the choice. A new login answers it too.
 */
function selectAccountPrompt() {
  const { Prompt, Check } = interactionPolicy;
  const prompt = new Prompt(
    { name: SELECT_ACCOUNT_PROMPT, requestable: true },
    new Check(
      'select_account_requested',
      'the client asks to choose the account',
      'account_selection_required',
      (ctx) => {
        const { oidc } = ctx;
        if (!oidc.prompts.has(SELECT_ACCOUNT_PROMPT) || !oidc.session?.accountId)
          return Check.NO_NEED_TO_PROMPT;
        return oidc.result?.[SELECT_ACCOUNT_PROMPT] || oidc.result?.login
          ? Check.NO_NEED_TO_PROMPT
          : Check.REQUEST_PROMPT;
      },
    ),
  );
  // The engine's own check for a requested prompt would ask without a session too, and again after a
  // new login: the check above decides alone.
  prompt.checks.remove(`${SELECT_ACCOUNT_PROMPT}_prompt`);
  return prompt;
}

/** "Use another account" on the account choice page: a new login, whatever the session. */
function anotherAccountCheck() {
  const { Check } = interactionPolicy;
  return new Check('another_account', 'the user chose another account', 'login_required', (ctx) => {
    const chosen = ctx.oidc.result?.[SELECT_ACCOUNT_PROMPT] as SelectAccountResult | undefined;
    return chosen?.other && !ctx.oidc.result?.login ? Check.REQUEST_PROMPT : Check.NO_NEED_TO_PROMPT;
  });
}

/**
 * The engine's default prompts, with the account choice before login, our session check in the login
 * prompt, and prompts that come between login and consent (PSC eligibility).
 */
export function interactionPolicyWith(
  check: ReturnType<typeof sessionPolicyCheck>,
  afterLogin: InstanceType<typeof interactionPolicy.Prompt>[] = [],
) {
  const policy = interactionPolicy.base();
  const login = policy.get('login');
  login?.checks.add(anotherAccountCheck());
  login?.checks.add(check);
  policy.add(selectAccountPrompt(), 0);
  for (const [i, prompt] of afterLogin.entries()) policy.add(prompt, 2 + i);
  return policy;
}
