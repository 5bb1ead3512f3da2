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
    return this.#change('admin.role.granted', accountId, role, actor, via, async (trx) => {
      const inserted = await trx
        .insertInto('account_role')
        .values({ account_id: accountId, role, granted_by: actor })
        .onConflict((oc) => oc.columns(['account_id', 'role']).doNothing())
        .executeTakeFirst();
      return Boolean(inserted.numInsertedOrUpdatedRows);
    });
  }

  /** Revokes the role; `false` when the account did not have it. */
  async revoke(
    accountId: string,
    role: ConsoleRole,
    actor: string,
    via?: 'cli' | 'console',
  ): Promise<boolean> {
    return this.#change('admin.role.revoked', accountId, role, actor, via, async (trx) => {
      const deleted = await trx
        .deleteFrom('account_role')
        .where('account_id', '=', accountId)
        .where('role', '=', role)
        .executeTakeFirst();
      return Boolean(deleted.numDeletedRows);
    });
  }

  /** One change and its audit record in one transaction; nothing recorded when nothing changed. */
  async #change(
    type: string,
    accountId: string,
    role: ConsoleRole,
    actor: string,
    via: 'cli' | 'console' | undefined,
    apply: (trx: Kysely<Database>) => Promise<boolean>,
  ): Promise<boolean> {
    return this.#db.transaction().execute(async (trx) => {
      if (!(await apply(trx))) return false;
      const detail = { role, actor, ...(via ? { via } : {}) };
      await this.#audit.record({ type, outcome: 'success', accountId, detail }, trx);
      return true;
    });
  }
}
