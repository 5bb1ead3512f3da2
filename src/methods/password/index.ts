import { z } from 'zod';
import { burnPasswordCheck, MAX_PASSWORD_LENGTH, verifyPassword } from '../../accounts/passwords.ts';
import type { AccountStore } from '../../accounts/store.ts';
import type { AuthMethod, AuthOutcome, MethodContext } from '../types.ts';

const input = z.object({ password: z.string().min(1).max(MAX_PASSWORD_LENGTH) });
type PasswordInput = z.infer<typeof input>;

/** Local password (argon2id) for break-glass and demo accounts. */
export function passwordMethod(accounts: AccountStore): AuthMethod<PasswordInput> {
  return {
    id: 'password',
    label: 'method.password',
    amr: ['pwd'],
    phishingResistant: false,
    needsUsername: true,
    input,
    view: 'method-password',
    async authenticate({ password }, context: MethodContext): Promise<AuthOutcome> {
      const username = context.username ?? '';
      const found = username ? await accounts.findPasswordHash(username) : undefined;
      // An unknown user costs the same hash computation as a known one: no enumeration by timing.
      if (!found) {
        await burnPasswordCheck(password);
        return { kind: 'failure', code: 'invalid_credentials', reason: 'unknown_user' };
      }
      if (!(await verifyPassword(found.hash, password))) {
        return {
          kind: 'failure',
          code: 'invalid_credentials',
          reason: 'wrong_password',
          accountId: found.account.id,
        };
      }
      return { kind: 'success', accountId: found.account.id, amr: ['pwd'] };
    },
  };
}
