import { type Kysely, sql } from 'kysely';
import type { Database } from '../db/types.ts';

export type LockAttempt = { kind: 'acquired' } | { kind: 'held'; holder: string; since: Date };

/**
 * A named lease in job_lock: one holder at a time across instances. A holder that dies without releasing
 * it blocks others only until the lease expires; a long job renews it as it progresses.
 */
export class JobLock {
  readonly #db: Kysely<Database>;
  readonly name: string;
  readonly holder: string;

  constructor(db: Kysely<Database>, name: string, holder: string) {
    this.#db = db;
    this.name = name;
    this.holder = holder;
  }

  async acquire(seconds: number): Promise<LockAttempt> {
    const row = await this.#db
      .insertInto('job_lock')
      .values({ name: this.name, holder: this.holder, acquired_at: sql`now()`, expires_at: expiry(seconds) })
      .onConflict((oc) =>
        oc
          .column('name')
          .doUpdateSet({ holder: this.holder, acquired_at: sql`now()`, expires_at: expiry(seconds) })
          .where('job_lock.expires_at', '<', sql<Date>`now()`),
      )
      .returning('holder')
      .executeTakeFirst();
    if (row) return { kind: 'acquired' };
    const current = await this.#db
      .selectFrom('job_lock')
      .select(['holder', 'acquired_at'])
      .where('name', '=', this.name)
      .executeTakeFirst();
    // Released in between: one more attempt.
    if (!current) return this.acquire(seconds);
    return { kind: 'held', holder: current.holder, since: current.acquired_at };
  }

  /** Extends the lease; throws when it is no longer ours (expired and taken over). */
  async renew(seconds: number): Promise<void> {
    const result = await this.#db
      .updateTable('job_lock')
      .set({ expires_at: expiry(seconds) })
      .where('name', '=', this.name)
      .where('holder', '=', this.holder)
      .executeTakeFirst();
    if (result.numUpdatedRows === 0n) throw new Error(`lock ${this.name} lost: its lease expired`);
  }

  async release(): Promise<void> {
    await this.#db
      .deleteFrom('job_lock')
      .where('name', '=', this.name)
      .where('holder', '=', this.holder)
      .execute();
  }
}

function expiry(seconds: number) {
  return sql<Date>`now() + make_interval(secs => ${seconds})`;
}
