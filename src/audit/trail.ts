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

/** The one place every security event goes through (the traceability issue makes it tamper evident). */
export class AuditTrail {
  readonly #db: Kysely<Database>;
  readonly #logger: Logger;
  readonly instanceId = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;

  constructor(db: Kysely<Database>, logger: Logger) {
    this.#db = db;
    this.#logger = logger;
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
