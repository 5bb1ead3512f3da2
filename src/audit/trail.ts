import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Database } from '../db/types.ts';
import { asStoredJson } from './canonical.ts';
import { appendToChain, type UnchainedFields } from './chain.ts';

/** One security-relevant act. Never a password, secret, code or token value. */
export interface AuditEvent {
  /** Dotted type, e.g. `auth.attempt`, `webauthn.enrolled`, `webauthn.revoked`, `auth.locked`. */
  type: string;
  outcome: 'success' | 'failure';
  accountId?: string;
  clientId?: string;
  sessionId?: string;
  interactionId?: string;
  ip?: string;
  userAgent?: string;
  method?: string;
  amr?: readonly string[];
  acr?: string;
  /** Internal reason code on failure. */
  reason?: string;
  requestId?: string;
  /** Other facts (credential id, certificate serial, counts…). */
  detail?: Record<string, unknown>;
  /** The account's national identity (idNatPS), when linked: federation and link events. */
  nationalId?: string;
  /** PSC tenant id and FINESS of the establishment, for federation events. */
  tid?: string;
  establishment?: string;
}

/**
 * Whose sign-in an authentication record belongs to: `local` = Passerelle's own single sign-on for the
 * establishment's applications; `federation` = a login for Pro Santé Connect or through it, which is
 * never allowed without its record.
 */
export type AuthenticationScope = 'local' | 'federation';

/** The audit record of an authentication could not be written and the authentication must not proceed. */
export class AuditUnavailableError extends Error {
  constructor(cause: unknown) {
    super('audit record not written: authentication refused', { cause });
    this.name = 'AuditUnavailableError';
  }
}

export interface AuditTrailOptions {
  /** `audit.failOpenForLocalSso`: a local sign-in proceeds when its record cannot be written. */
  failOpenForLocalSso?: boolean;
}

/** The one place every security event goes through (the traceability issue makes it tamper evident). */
export class AuditTrail {
  readonly #db: Kysely<Database>;
  readonly #logger: Logger;
  readonly #failOpenForLocalSso: boolean;
  readonly instanceId = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  /** Since when authentication records fail to be written (undefined once one is written again). */
  failingSince: Date | undefined;

  constructor(db: Kysely<Database>, logger: Logger, options: AuditTrailOptions = {}) {
    this.#db = db;
    this.#logger = logger;
    this.#failOpenForLocalSso = options.failOpenForLocalSso ?? false;
  }

  /**
   * Appends the event to the hash chain; throws when it cannot be written (the caller fails closed).
   * `within` is the caller's transaction when the event must be committed with the change it describes:
   * the chain lock is then held until that transaction ends (docs/audit.md, "Chain").
   */
  async record(event: AuditEvent, within: Kysely<Database> = this.#db): Promise<void> {
    const append = (trx: Kysely<Database>) => appendToChain(trx, this.#fields(event));
    if (within.isTransaction) await append(within);
    else await within.transaction().execute(append);
    const { userAgent: _ua, detail: _detail, ...summary } = event;
    this.#logger.info(summary, 'audit');
  }

  /**
   * The record of an authentication, committed in one transaction with `change` (the state it
   * describes, e.g. the session saved). When the record cannot be written, the change is rolled back
   * and an AuditUnavailableError is thrown: the authentication fails closed. Only for a `local` sign-in,
   * and only with `audit.failOpenForLocalSso`, the change is then made alone and the record goes to the
   * operator's log instead; the result is false.
   */
  async recordAuthentication(
    event: AuditEvent,
    scope: AuthenticationScope,
    change?: (trx: Kysely<Database>) => Promise<void>,
  ): Promise<boolean> {
    try {
      await this.#db.transaction().execute(async (trx) => {
        if (change) await change(trx);
        try {
          await appendToChain(trx, this.#fields(event));
        } catch (err) {
          throw new AuditUnavailableError(err);
        }
      });
    } catch (err) {
      if (!(err instanceof AuditUnavailableError)) throw err;
      this.failingSince ??= new Date();
      const { detail: _detail, ...record } = event;
      if (scope !== 'local' || !this.#failOpenForLocalSso) {
        this.#logger.error({ err: err.cause, record, scope }, err.message);
        throw err;
      }
      this.#logger.error(
        { err: err.cause, record, scope },
        'audit record NOT written: local sign-in allowed (audit.failOpenForLocalSso)',
      );
      if (change) await this.#db.transaction().execute(change);
      return false;
    }
    this.failingSince = undefined;
    const { userAgent: _ua, detail: _detail, ...summary } = event;
    this.#logger.info(summary, 'audit');
    return true;
  }

  #fields(event: AuditEvent): UnchainedFields {
    return {
      type: event.type,
      outcome: event.outcome,
      // As the uuid column gives it back, so that the hash covers the stored value.
      account_id: event.accountId?.toLowerCase() ?? null,
      client_id: event.clientId ?? null,
      session_id: event.sessionId ?? null,
      interaction_id: event.interactionId ?? null,
      ip: event.ip ?? null,
      user_agent: event.userAgent?.slice(0, 512) ?? null,
      method: event.method ?? null,
      amr: asStoredJson(event.amr),
      acr: event.acr ?? null,
      reason: event.reason ?? null,
      request_id: event.requestId ?? null,
      instance_id: this.instanceId,
      detail: asStoredJson(event.detail),
      national_id: event.nationalId ?? null,
      tid: event.tid ?? null,
      establishment: event.establishment ?? null,
    };
  }
}
