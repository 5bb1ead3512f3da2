import { type Kysely, sql } from 'kysely';
import type { Database } from '../db/types.ts';

export interface RateLimitRule {
  max: number;
  windowSeconds: number;
}

export interface RateLimitState {
  blocked: boolean;
  retryAfterSeconds: number;
  /** Failures counted in the current window (0 when none). */
  hits: number;
  /** Seconds since the last failure, for counters that record it (credential throttle). */
  secondsSinceLastHit?: number;
}

/**
 * Fixed-window counters in the database, shared by every instance. Keys are opaque strings such as
 * `pwd:acct:<username>` or `pwd:ip:<address>`; only failures are counted.
 */
export class RateLimiter {
  readonly #db: Kysely<Database>;
  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  /** The state of each counter, in the order given, read in one statement. */
  async check(counters: readonly { key: string; rule: RateLimitRule }[]): Promise<RateLimitState[]> {
    const rows = await this.#db
      .selectFrom('rate_limit')
      .select([
        'key',
        'hits',
        sql<number>`ceil(extract(epoch from expires_at - now()))::int`.as('remaining'),
        sql<number | null>`extract(epoch from now() - last_hit_at)`.as('since'),
      ])
      .where(
        'key',
        'in',
        counters.map((c) => c.key),
      )
      .where('expires_at', '>', sql<Date>`now()`)
      .execute();
    return counters.map(({ key, rule }) => {
      const row = rows.find((r) => r.key === key);
      const since =
        row?.since === null || row?.since === undefined ? {} : { secondsSinceLastHit: Number(row.since) };
      if (!row || row.hits < rule.max)
        return { blocked: false, retryAfterSeconds: 0, hits: row?.hits ?? 0, ...since };
      return { blocked: true, retryAfterSeconds: Math.max(1, row.remaining), hits: row.hits, ...since };
    });
  }

  /** Counts one failure; returns the state after counting. */
  async hit(key: string, rule: RateLimitRule): Promise<RateLimitState> {
    const window = `${rule.windowSeconds} seconds`;
    const row = await sql<{ hits: number; remaining: number }>`
      insert into rate_limit (key, window_start, hits, expires_at)
      values (${key}, now(), 1, now() + ${window}::interval)
      on conflict (key) do update set
        hits = case when rate_limit.expires_at <= now() then 1 else rate_limit.hits + 1 end,
        window_start = case when rate_limit.expires_at <= now() then now() else rate_limit.window_start end,
        expires_at = case when rate_limit.expires_at <= now() then excluded.expires_at else rate_limit.expires_at end
      returning hits, ceil(extract(epoch from expires_at - now()))::int as remaining`.execute(this.#db);
    const state = row.rows[0];
    if (!state) throw new Error('rate limit upsert returned no row');
    return {
      blocked: state.hits >= rule.max,
      retryAfterSeconds: Math.max(1, state.remaining),
      hits: state.hits,
    };
  }

  async reset(key: string): Promise<void> {
    await this.#db.deleteFrom('rate_limit').where('key', '=', key).execute();
  }
}
