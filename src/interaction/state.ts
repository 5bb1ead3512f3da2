import type { Kysely } from 'kysely';
import type { Database } from '../db/types.ts';

/** What the login flow remembers between steps of one interaction (never secrets). */
export interface LoginState {
  username?: string;
}

export class InteractionStates {
  readonly #db: Kysely<Database>;
  readonly #ttlSeconds: number;

  constructor(db: Kysely<Database>, ttlSeconds: number) {
    this.#db = db;
    this.#ttlSeconds = ttlSeconds;
  }

  async get(uid: string): Promise<LoginState> {
    const row = await this.#db
      .selectFrom('interaction_state')
      .select('state')
      .where('uid', '=', uid)
      .where('expires_at', '>', new Date())
      .executeTakeFirst();
    return (row?.state as LoginState | undefined) ?? {};
  }

  async set(uid: string, state: LoginState): Promise<void> {
    const row = {
      uid,
      state: JSON.stringify(state),
      expires_at: new Date(Date.now() + this.#ttlSeconds * 1000),
    };
    await this.#db
      .insertInto('interaction_state')
      .values(row)
      .onConflict((oc) => oc.column('uid').doUpdateSet({ state: row.state, expires_at: row.expires_at }))
      .execute();
  }

  async delete(uid: string): Promise<void> {
    await this.#db.deleteFrom('interaction_state').where('uid', '=', uid).execute();
  }
}
