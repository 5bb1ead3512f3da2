import type { Kysely } from 'kysely';
import type { AuditTrail } from '../audit/trail.ts';
import type { Database } from '../db/types.ts';

/** Console roles: administrator (everything), helpdesk (accounts, enrollment codes, unlock), auditor (read-only audit). */
export const CONSOLE_ROLES = ['administrator', 'helpdesk', 'auditor'] as const;
export type ConsoleRole = (typeof CONSOLE_ROLES)[number];

export function isConsoleRole(value: string): value is ConsoleRole {
  return (CONSOLE_ROLES as readonly string[]).includes(value);
}

/** Who may do what in the administration console. Granting and revoking are audited with the change. */
export class AccountRoles {
  readonly #db: Kysely<Database>;
  readonly #audit: AuditTrail;

  constructor(db: Kysely<Database>, audit: AuditTrail) {
    this.#db = db;
    this.#audit = audit;
  }

  async of(accountId: string): Promise<ConsoleRole[]> {
    const rows = await this.#db
      .selectFrom('account_role')
      .select('role')
      .where('account_id', '=', accountId)
      .orderBy('role')
      .execute();
    return rows.map((r) => r.role);
  }

  /** Grants the role; `false` when the account already had it. */
  async grant(
    accountId: string,
    role: ConsoleRole,
    actor: string,
    via?: 'cli' | 'console',
  ): Promise<boolean> {
    return this.#db.transaction().execute(async (trx) => {
      const inserted = await trx
        .insertInto('account_role')
        .values({ account_id: accountId, role, granted_by: actor })
        .onConflict((oc) => oc.columns(['account_id', 'role']).doNothing())
        .executeTakeFirst();
      if (!inserted.numInsertedOrUpdatedRows) return false;
      await this.#audit.record(
        {
          type: 'admin.role.granted',
          outcome: 'success',
          accountId,
          detail: { role, actor, ...(via ? { via } : {}) },
        },
        trx,
      );
      return true;
    });
  }

  /** Revokes the role; `false` when the account did not have it. */
  async revoke(
    accountId: string,
    role: ConsoleRole,
    actor: string,
    via?: 'cli' | 'console',
  ): Promise<boolean> {
    return this.#db.transaction().execute(async (trx) => {
      const deleted = await trx
        .deleteFrom('account_role')
        .where('account_id', '=', accountId)
        .where('role', '=', role)
        .executeTakeFirst();
      if (!deleted.numDeletedRows) return false;
      await this.#audit.record(
        {
          type: 'admin.role.revoked',
          outcome: 'success',
          accountId,
          detail: { role, actor, ...(via ? { via } : {}) },
        },
        trx,
      );
      return true;
    });
  }
}
