import { type Kysely, sql } from 'kysely';
import type { Config } from '../config/schema.ts';
import type { Database } from '../db/types.ts';
import type { RateLimiter, RateLimitRule } from './limiter.ts';

export interface ThrottleDecision {
  allowed: boolean;
  /** Seconds before the next attempt is accepted, when not allowed. */
  retryAfterSeconds: number;
  /** `locked` once the account reached `lockAfter` failures; `delayed` during a growing delay. */
  state: 'open' | 'delayed' | 'locked';
  /** The account's failures counted so far. */
  failures: number;
}

export interface ThrottleSubjects {
  /** The account as identified (typed username, lower-cased, or account id); absent when unknown. */
  account?: string | undefined;
  ip: string;
}

const accountKey = (account: string) => `auth:acct:${account.toLowerCase()}`;
const ipKey = (ip: string) => `auth:ip:${ip}`;

/**
 * Throttling of every credential check, shared by all instances through the database: per account,
 * growing delays then a temporary lock that always triggers before the directory's own lockout; per
 * source address, a fixed window.
 */
export class CredentialThrottle {
  readonly #db: Kysely<Database>;
  readonly #limiter: RateLimiter;
  readonly #rules: Config['throttle'];
  /** The account's counter is judged on its failures and the time since the last one, not on a maximum. */
  readonly #accountRule: RateLimitRule;

  constructor(db: Kysely<Database>, limiter: RateLimiter, rules: Config['throttle']) {
    this.#db = db;
    this.#limiter = limiter;
    this.#rules = rules;
    this.#accountRule = { max: Number.MAX_SAFE_INTEGER, windowSeconds: rules.windowSeconds };
  }

  /** Seconds to wait after the last failure, given the failures counted. */
  #waitAfter(failures: number): { seconds: number; state: ThrottleDecision['state'] } {
    const r = this.#rules;
    if (failures >= r.lockAfter) return { seconds: r.lockSeconds, state: 'locked' };
    if (failures < r.freeFailures) return { seconds: 0, state: 'open' };
    const doubling = r.baseDelaySeconds * 2 ** (failures - r.freeFailures);
    return { seconds: Math.min(doubling, r.lockSeconds), state: 'delayed' };
  }

  /** May a credential be checked now? One read for the address and the account. */
  async check(subjects: ThrottleSubjects): Promise<ThrottleDecision> {
    const counters = [{ key: ipKey(subjects.ip), rule: this.#rules.perIp }];
    if (subjects.account) counters.push({ key: accountKey(subjects.account), rule: this.#accountRule });
    const [ipState, accountState] = await this.#limiter.check(counters);
    const open: ThrottleDecision = { allowed: true, retryAfterSeconds: 0, state: 'open', failures: 0 };
    if (ipState?.blocked) {
      return { allowed: false, retryAfterSeconds: ipState.retryAfterSeconds, state: 'locked', failures: 0 };
    }
    if (!accountState?.hits) return open;
    const failures = accountState.hits;
    const wait = this.#waitAfter(failures);
    const remaining = Math.ceil(wait.seconds - (accountState.secondsSinceLastHit ?? 0));
    if (remaining <= 0) return { ...open, failures };
    return { allowed: false, retryAfterSeconds: remaining, state: wait.state, failures };
  }

  /** Counts a failure; returns whether this failure locked the account. */
  async fail(subjects: ThrottleSubjects): Promise<{ locked: boolean; failures: number }> {
    await this.#limiter.hit(ipKey(subjects.ip), this.#rules.perIp);
    if (!subjects.account) return { locked: false, failures: 0 };
    const window = `${this.#rules.windowSeconds} seconds`;
    // The window slides: failures are forgotten only after windowSeconds without a failure.
    const result = await sql<{ hits: number }>`
      insert into rate_limit (key, window_start, hits, expires_at, last_hit_at)
      values (${accountKey(subjects.account)}, now(), 1, now() + ${window}::interval, now())
      on conflict (key) do update set
        hits = case when rate_limit.expires_at <= now() then 1 else rate_limit.hits + 1 end,
        window_start = case when rate_limit.expires_at <= now() then now() else rate_limit.window_start end,
        expires_at = excluded.expires_at,
        last_hit_at = now()
      returning hits`.execute(this.#db);
    const failures = result.rows[0]?.hits ?? 0;
    return { locked: failures === this.#rules.lockAfter, failures };
  }

  /** A successful check forgets the account's failures (no write when there were none). */
  async succeed(subjects: ThrottleSubjects, before: ThrottleDecision): Promise<void> {
    if (subjects.account && before.failures > 0) await this.#limiter.reset(accountKey(subjects.account));
  }

  /** The account's failures and whether it is delayed or locked now (the console's account page). */
  async accountState(account: string): Promise<ThrottleDecision> {
    const [state] = await this.#limiter.check([{ key: accountKey(account), rule: this.#accountRule }]);
    const open: ThrottleDecision = { allowed: true, retryAfterSeconds: 0, state: 'open', failures: 0 };
    if (!state?.hits) return open;
    const wait = this.#waitAfter(state.hits);
    const remaining = Math.ceil(wait.seconds - (state.secondsSinceLastHit ?? 0));
    if (remaining <= 0) return { ...open, failures: state.hits };
    return { allowed: false, retryAfterSeconds: remaining, state: wait.state, failures: state.hits };
  }

  /** Lifts a lock (helpdesk "unlock"). */
  async unlock(account: string): Promise<void> {
    await this.#limiter.reset(accountKey(account));
  }
}
