import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Database } from '../db/types.ts';

export interface AdminAlert {
  id: string;
  kind: string;
  accountId: string | null;
  message: string;
  detail: Record<string, unknown> | null;
  createdAt: Date;
  acknowledgedAt: Date | null;
  acknowledgedBy: string | null;
}

/**
 * What administrators must act on (a professional no longer active, a sync stopped by its circuit
 * breaker…): kept until acknowledged, and logged at warn level for the log collector.
 */
export class AdminAlerts {
  readonly #db: Kysely<Database>;
  readonly #logger: Logger;

  constructor(db: Kysely<Database>, logger: Logger) {
    this.#db = db;
    this.#logger = logger;
  }

  async raise(alert: {
    kind: string;
    accountId?: string;
    message: string;
    detail?: Record<string, unknown>;
  }): Promise<string> {
    const id = randomUUID();
    await this.#db
      .insertInto('admin_alert')
      .values({
        id,
        kind: alert.kind,
        account_id: alert.accountId ?? null,
        message: alert.message,
        detail: alert.detail ? JSON.stringify(alert.detail) : null,
      })
      .execute();
    this.#logger.warn({ alert: alert.kind, alertId: id, accountId: alert.accountId }, alert.message);
    return id;
  }

  async open(): Promise<AdminAlert[]> {
    const rows = await this.#db
      .selectFrom('admin_alert')
      .selectAll()
      .where('acknowledged_at', 'is', null)
      .orderBy('created_at')
      .execute();
    return rows.map((r) => ({
      id: r.id,
      kind: r.kind,
      accountId: r.account_id,
      message: r.message,
      detail: r.detail,
      createdAt: r.created_at,
      acknowledgedAt: r.acknowledged_at,
      acknowledgedBy: r.acknowledged_by,
    }));
  }

  /** False when the alert does not exist or was already acknowledged. */
  async acknowledge(id: string, by: string): Promise<boolean> {
    if (!/^[0-9a-f-]{36}$/i.test(id)) return false;
    const result = await this.#db
      .updateTable('admin_alert')
      .set({ acknowledged_at: new Date(), acknowledged_by: by })
      .where('id', '=', id)
      .where('acknowledged_at', 'is', null)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }
}
