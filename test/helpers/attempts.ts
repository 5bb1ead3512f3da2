import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import { AccountStore } from '../../src/accounts/store.ts';
import { AuditTrail } from '../../src/audit/trail.ts';
import { configSchema } from '../../src/config/schema.ts';
import type { Database } from '../../src/db/types.ts';
import { type AttemptDeps, attemptMethod } from '../../src/interaction/attempts.ts';
import {
  type AuthMethod,
  type AuthOutcome,
  type MethodContext,
  registered,
} from '../../src/methods/types.ts';
import { RateLimiter } from '../../src/ratelimit/limiter.ts';
import { CredentialThrottle } from '../../src/ratelimit/throttle.ts';

/** What the interaction layer wraps around a method, on a bare database (default throttle settings). */
export function attemptDeps(db: Kysely<Database>, logger: Logger): AttemptDeps {
  return {
    accounts: new AccountStore(db),
    audit: new AuditTrail(db, logger),
    throttle: new CredentialThrottle(db, new RateLimiter(db), configSchema.shape.throttle.parse(undefined)),
    logger,
  };
}

/** One attempt as the login pages run it: throttle, method, account checks, audit. */
export async function attempt<Input>(
  deps: AttemptDeps,
  method: AuthMethod<Input>,
  input: Input,
  context: MethodContext,
): Promise<AuthOutcome> {
  return (await attemptMethod(deps, registered(method), input, context, 'test-client', 'local')).outcome;
}
