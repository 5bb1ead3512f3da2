import type { Kysely } from 'kysely';
import type { AuditTrail } from '../audit/trail.ts';
import type { Config } from '../config/schema.ts';
import type { Database } from '../db/types.ts';
import { webauthnSettings } from '../methods/webauthn/settings.ts';
import { CredentialStore, EnrollmentCodes, type IssuedCode } from '../methods/webauthn/store.ts';
import type { CredentialThrottle } from '../ratelimit/throttle.ts';
import type { AuthSessions } from '../sessions/auth-sessions.ts';
import type { EndedSession } from '../sessions/end-sessions.ts';
import type { Account, AccountStore } from './store.ts';

/** Who does an administrative act, and from where (the audit trail's `via` and `actor`). */
export interface AdminActor {
  via: 'cli' | 'console';
  actor: string;
  /** The operator's own request (console): session, address, request id for the audit record. */
  context?: { sessionId?: string; ip?: string; userAgent?: string; requestId?: string };
}

export class AdminActError extends Error {
  readonly code: 'webauthn_disabled' | 'account_disabled' | 'no_key' | 'ambiguous_key';
  constructor(code: AdminActError['code'], message: string) {
    super(message);
    this.name = 'AdminActError';
    this.code = code;
  }
}

export interface AdminActsDeps {
  config: Config;
  db: Kysely<Database>;
  accounts: AccountStore;
  throttle: CredentialThrottle;
  sessions: AuthSessions;
  audit: AuditTrail;
}

/**
 * The helpdesk's and administrators' acts on an account, shared by the command line and the console:
 * each changes the account and records who did it.
 */
export class AccountAdminActs {
  readonly #deps: AdminActsDeps;

  constructor(deps: AdminActsDeps) {
    this.#deps = deps;
  }

  #record(
    by: AdminActor,
    event: { type: string; accountId?: string; method?: string; detail?: Record<string, unknown> },
    within?: Kysely<Database>,
  ) {
    return this.#deps.audit.record(
      {
        ...by.context,
        ...event,
        outcome: 'success',
        detail: { via: by.via, actor: by.actor, ...event.detail },
      },
      within,
    );
  }

  /** The change and its audit record in one transaction. */
  #together<T>(run: (trx: Kysely<Database>) => Promise<T>): Promise<T> {
    return this.#deps.db.transaction().execute(run);
  }

  async setDisabled(account: Account, disabled: boolean, by: AdminActor): Promise<void> {
    await this.#together(async (trx) => {
      await this.#deps.accounts.setDisabled(account.id, disabled, trx);
      await this.#record(
        by,
        {
          type: `admin.account.${disabled ? 'disabled' : 'enabled'}`,
          accountId: account.id,
          detail: { username: account.username },
        },
        trx,
      );
    });
  }

  /** Lifts the temporary lock and forgets the failed attempts (by the typed name when no account matches). */
  async unlock(account: Account | undefined, username: string, by: AdminActor): Promise<void> {
    await this.#deps.throttle.unlock(account?.username ?? username);
    await this.#record(by, {
      type: 'admin.account.unlocked',
      accountId: account?.id,
      detail: { username: account?.username ?? username },
    });
  }

  /** A one-time code with which the user adds a FIDO2 key (returned once, never stored in clear). */
  async issueEnrollmentCode(account: Account, by: AdminActor): Promise<IssuedCode> {
    const settings = webauthnSettings(this.#deps.config);
    if (!settings)
      throw new AdminActError(
        'webauthn_disabled',
        'security keys are not enabled (no webauthn section in the configuration)',
      );
    if (account.disabledAt)
      throw new AdminActError('account_disabled', `account ${account.username} is disabled`);
    const issued = await new EnrollmentCodes(this.#deps.db).issue(
      account.id,
      by.actor,
      settings.enrollmentCodeTtlSeconds,
    );
    await this.#record(by, {
      type: 'webauthn.enrollment_code',
      accountId: account.id,
      method: 'webauthn',
      detail: { issuedBy: by.actor, expiresAt: issued.expiresAt.toISOString() },
    });
    return issued;
  }

  /** Revokes an active security key of the account, by credential id or by its name. */
  async revokeKey(account: Account, key: string, by: AdminActor): Promise<{ id: string; name: string }> {
    const credentials = new CredentialStore(this.#deps.db);
    const active = await credentials.listForAccount(account.id);
    const byId = active.filter((k) => k.id === key);
    const matches = byId.length ? byId : active.filter((k) => k.name === key);
    const target = matches[0];
    if (!target) throw new AdminActError('no_key', `no active key ${key} for ${account.username}`);
    if (matches.length > 1)
      throw new AdminActError('ambiguous_key', `several keys are named ${key}: give the credential id`);
    await this.#together(async (trx) => {
      await credentials.revoke(account.id, target.id, trx);
      await this.#record(
        by,
        {
          type: 'webauthn.revoked',
          accountId: account.id,
          method: 'webauthn',
          detail: { credentialId: target.id, by: 'admin', operator: by.actor },
        },
        trx,
      );
    });
    return { id: target.id, name: target.name };
  }

  /**
   * Deletes every single sign-on session row of the account (the next request of each signs in again)
   * with its audit record; returns the sessions, whose engine sessions the caller then ends
   * (src/sessions/end-sessions.ts: applications told by back-channel logout).
   */
  async endSessions(account: Account, by: AdminActor): Promise<EndedSession[]> {
    return this.#together(async (trx) => {
      const ended = await this.#deps.sessions.deleteForAccount(account.id, trx);
      await this.#record(
        by,
        {
          type: 'admin.account.sessions_ended',
          accountId: account.id,
          detail: { username: account.username, sessions: ended.length },
        },
        trx,
      );
      return ended;
    });
  }
}
