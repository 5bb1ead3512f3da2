import { z } from 'zod';
import { burnPasswordCheck, MAX_PASSWORD_LENGTH, verifyPassword } from '../../accounts/passwords.ts';
import type { AccountStore } from '../../accounts/store.ts';
import type { RateLimiter, RateLimitRule } from '../../ratelimit/limiter.ts';
import type { AuthMethod, AuthOutcome, MethodContext } from '../types.ts';

const input = z.object({ password: z.string().min(1).max(MAX_PASSWORD_LENGTH) });
type PasswordInput = z.infer<typeof input>;

export interface PasswordMethodDeps {
  accounts: AccountStore;
  limiter: RateLimiter;
  perAccount: RateLimitRule;
  perIp: RateLimitRule;
}

/** Local password (argon2id) for break-glass and demo accounts. */
export function passwordMethod(deps: PasswordMethodDeps): AuthMethod<PasswordInput> {
  return {
    id: 'password',
    label: 'method.password',
    amr: ['pwd'],
    phishingResistant: false,
    needsUsername: true,
    input,
    view: 'method-password',
    async authenticate({ password }, context: MethodContext): Promise<AuthOutcome> {
      const username = (context.username ?? '').toLowerCase();
      const accountKey = `pwd:acct:${username}`;
      const ipKey = `pwd:ip:${context.ip}`;
      const states = await deps.limiter.check([
        { key: accountKey, rule: deps.perAccount },
        { key: ipKey, rule: deps.perIp },
      ]);
      const blocked = states.find((state) => state.blocked);
      if (blocked)
        return {
          kind: 'failure',
          code: 'rate_limited',
          reason: 'throttled',
          retryAfterSeconds: blocked.retryAfterSeconds,
        };
      const accountFailures = states[0]?.hits ?? 0;

      const found = username ? await deps.accounts.findPasswordHash(username) : undefined;
      let valid = false;
      if (found) valid = await verifyPassword(found.hash, password);
      else await burnPasswordCheck(password);
      if (!found || !valid) {
        await deps.limiter.hit(accountKey, deps.perAccount);
        await deps.limiter.hit(ipKey, deps.perIp);
        return {
          kind: 'failure',
          code: 'invalid_credentials',
          reason: found ? 'wrong_password' : 'unknown_user',
        };
      }
      // A disabled account is reported only after the right password: no enumeration.
      if (found.account.disabledAt)
        return { kind: 'failure', code: 'account_disabled', reason: 'disabled', accountId: found.account.id };
      // Clear the account's failures, if any were counted: no write on the usual, failure-free login.
      if (accountFailures > 0) await deps.limiter.reset(accountKey);
      return { kind: 'success', accountId: found.account.id, amr: ['pwd'] };
    },
  };
}
