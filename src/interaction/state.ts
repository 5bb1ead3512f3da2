import type { Kysely } from 'kysely';
import type { CompletedMethod, Database } from '../db/types.ts';
import type { Locale } from '../i18n/messages.ts';
import type { AuthFailureCode } from '../methods/types.ts';

/** What the login flow remembers between the steps of one interaction (never secrets). */
export interface LoginState {
  /** Set when the interaction is first shown; a state without it was never started. */
  clientId?: string;
  locale?: Locale;
  /** The level needed (acr) and the maximum authentication age, fixed at the start. */
  requiredAcr?: string;
  maxAge?: number;
  /** The client is Pro Santé Connect (federation): its sign-ins never proceed without their audit record. */
  pscFederation?: boolean;
  /** Method ids this client accepts. */
  allowedMethods?: string[];
  /** A step-up of an existing session: the account is known, only the missing factor is asked. */
  stepUp?: boolean;
  username?: string;
  /** The account proven by the first completed method (or the session's, for a step-up). */
  accountId?: string;
  completed?: CompletedMethod[];
  /**
   * PSC proved a national identity linked to no account: once the user has proven their account,
   * the login goes through PSC again to link it (source `psc-login`).
   */
  linkPsc?: boolean;
  /** A failure on another origin (smart card listener), shown once back on the issuer's pages. */
  failure?: { code: AuthFailureCode; method: string; retryAfterSeconds?: number };
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
