import { type Kysely, sql } from 'kysely';
import type { Database } from './types.ts';

/**
 * A lease in the database that lets one instance at a time run a job (the RPPS sync). The lease expires
 * on its own when its holder dies; a live holder renews it while it works.
 */
export class JobLock {
  readonly #db: Kysely<Database>;
  readonly name: string;
  readonly holder: string;
  readonly #ttlSeconds: number;

  constructor(db: Kysely<Database>, name: string, holder: string, ttlSeconds: number) {
    this.#db = db;
    this.name = name;
    this.holder = holder;
    this.#ttlSeconds = ttlSeconds;
  }

  /** Takes the lease if it is free or expired; false when another holder has it. */
  async acquire(): Promise<boolean> {
    const expires = sql<Date>`now() + make_interval(secs => ${this.#ttlSeconds})`;
    const row = await this.#db
      .insertInto('job_lock')
      .values({ name: this.name, holder: this.holder, acquired_at: sql`now()`, expires_at: expires })
      .onConflict((oc) =>
        oc
          .column('name')
          .doUpdateSet({ holder: this.holder, acquired_at: sql`now()`, expires_at: expires })
          .where('job_lock.expires_at', '<', sql<Date>`now()`),
      )
      .returning('holder')
      .executeTakeFirst();
    return row?.holder === this.holder;
  }

  /** Extends the lease; false when it was lost (expired and taken by another instance). */
  async renew(): Promise<boolean> {
    const result = await this.#db
      .updateTable('job_lock')
      .set({ expires_at: sql`now() + make_interval(secs => ${this.#ttlSeconds})` })
      .where('name', '=', this.name)
      .where('holder', '=', this.holder)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async release(): Promise<void> {
    await this.#db
      .deleteFrom('job_lock')
      .where('name', '=', this.name)
      .where('holder', '=', this.holder)
      .execute();
  }
}
