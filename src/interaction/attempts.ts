import type { Logger } from 'pino';
import type { Account, AccountStore } from '../accounts/store.ts';
import {
  type AuditEvent,
  type AuditTrail,
  AuditUnavailableError,
  type AuthenticationScope,
} from '../audit/trail.ts';
import type { AuthFailureCode, AuthMethod, AuthOutcome, MethodContext } from '../methods/types.ts';
import type { CredentialThrottle } from '../ratelimit/throttle.ts';

/** Failures that count against the throttle: a credential was presented and was wrong. */
const COUNTED_FAILURES: ReadonlySet<AuthFailureCode> = new Set([
  'invalid_credentials',
  'ceremony_failed',
  'certificate_rejected',
  'card_not_linked',
  'account_mismatch',
]);

export interface AttemptDeps {
  accounts: AccountStore;
  audit: AuditTrail;
  throttle: CredentialThrottle;
  logger: Logger;
}

export interface Attempt {
  outcome: AuthOutcome;
  /** The account proven, on success. */
  account?: Account;
}

/**
 * One credential check, whatever the method: throttled per account and source address, the method's
 * outcome checked against the account (disabled, or not the one being stepped up: the only place these
 * are checked), and audited once. Fails closed: when the audit record cannot be written, the attempt fails
 * (a `local` one proceeds with `audit.failOpenForLocalSso`).
 */
export async function attemptMethod(
  deps: AttemptDeps,
  method: AuthMethod,
  input: unknown,
  context: MethodContext,
  clientId: string,
  scope: AuthenticationScope,
): Promise<Attempt> {
  const subjects = { account: context.username?.toLowerCase(), ip: context.ip };
  const decision = await deps.throttle.check(subjects);
  let outcome: AuthOutcome;
  let account: Account | undefined;
  if (!decision.allowed) {
    outcome = {
      kind: 'failure',
      code: 'rate_limited',
      reason: `throttle_${decision.state}`,
      retryAfterSeconds: decision.retryAfterSeconds,
    };
  } else {
    try {
      outcome = await method.authenticate(input, context);
    } catch (err) {
      deps.logger.error(
        { err, requestId: context.requestId, method: method.id },
        'authentication method failed',
      );
      outcome = { kind: 'failure', code: 'service_unavailable', reason: 'method_error' };
    }
    ({ outcome, account } = await checkAccount(deps.accounts, outcome, context));
  }

  let locked = false;
  if (outcome.kind === 'failure' && COUNTED_FAILURES.has(outcome.code)) {
    // Usernameless methods learn the account only from the credential itself.
    const username =
      subjects.account ??
      (outcome.accountId ? (await deps.accounts.findById(outcome.accountId))?.username : undefined);
    const counted = await deps.throttle.fail({ account: username, ip: context.ip });
    locked = counted.locked;
  } else if (outcome.kind === 'success') {
    await deps.throttle.succeed(subjects, decision);
  }

  const base = {
    clientId,
    interactionId: context.interactionUid,
    ip: context.ip,
    userAgent: context.userAgent,
    requestId: context.requestId,
    method: method.id,
  };
  const record = async (event: AuditEvent) => deps.audit.recordAuthentication(event, scope);
  try {
    await record(
      outcome.kind === 'success'
        ? {
            ...base,
            type: 'auth.attempt',
            outcome: 'success',
            accountId: outcome.accountId,
            amr: outcome.amr,
            nationalId: outcome.nationalId?.idNat,
            detail: withoutNationalId(outcome.detail),
          }
        : {
            ...base,
            type: 'auth.attempt',
            outcome: 'failure',
            accountId: outcome.accountId,
            reason: outcome.reason,
            ...(typeof outcome.detail?.idNat === 'string' ? { nationalId: outcome.detail.idNat } : {}),
            ...(outcome.detail ? { detail: withoutNationalId(outcome.detail) } : {}),
          },
    );
    if (locked)
      await record({ ...base, type: 'auth.locked', outcome: 'failure', reason: 'too_many_failures' });
  } catch (err) {
    if (!(err instanceof AuditUnavailableError)) throw err;
    return { outcome: { kind: 'failure', code: 'service_unavailable', reason: 'audit_unavailable' } };
  }
  return { outcome, account };
}

/** The national id proven by a login has its own field in the record (`nationalId`), not the detail. */
function withoutNationalId(detail: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (!detail) return undefined;
  const { idNat: _idNat, ...rest } = detail;
  return rest;
}

/** A proven credential still fails for a disabled account or for another account than the one established. */
async function checkAccount(
  accounts: AccountStore,
  outcome: AuthOutcome,
  context: MethodContext,
): Promise<Attempt> {
  if (outcome.kind !== 'success') return { outcome };
  const { accountId } = outcome;
  const refuse = (code: AuthFailureCode, reason: string): Attempt => ({
    outcome: { kind: 'failure', code, reason, accountId },
  });
  if (context.accountId && context.accountId !== accountId)
    return refuse('account_mismatch', 'account_mismatch');
  const account = await accounts.findById(accountId);
  if (!account) return refuse('invalid_credentials', 'account_missing');
  if (account.disabledAt) return refuse('account_disabled', 'account_disabled');
  return { outcome, account };
}
