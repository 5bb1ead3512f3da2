import { randomUUID } from 'node:crypto';
import { type Kysely, type Selectable, sql } from 'kysely';
import type { AccountTable, Database } from '../db/types.ts';
import { hashPassword } from './passwords.ts';

export interface Account {
  /** Immutable, never reused: the `sub` and the future `oid`. */
  id: string;
  username: string;
  displayName: string | null;
  givenName: string | null;
  familyName: string | null;
  email: string | null;
  isDemo: boolean;
  disabledAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface NewAccount {
  username: string;
  displayName?: string;
  givenName?: string;
  familyName?: string;
  email?: string;
  isDemo?: boolean;
}

export class AccountExistsError extends Error {
  constructor(username: string) {
    super(`an account named ${username} already exists`);
    this.name = 'AccountExistsError';
  }
}

function toAccount(row: Selectable<AccountTable>): Account {
  return {
    id: row.id,
    username: row.username,
    displayName: row.display_name,
    givenName: row.given_name,
    familyName: row.family_name,
    email: row.email,
    isDemo: row.is_demo,
    disabledAt: row.disabled_at,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export const USERNAME_PATTERN = /^[\p{L}\p{N}._@-]{1,128}$/u;

/** Local accounts: break-glass administrators, the demo, and (later) directory-provisioned staff. */
export class AccountStore {
  readonly #db: Kysely<Database>;
  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async create(input: NewAccount, password?: string): Promise<Account> {
    if (!USERNAME_PATTERN.test(input.username)) throw new Error('username: letters, digits and . _ @ - only');
    const hash = password === undefined ? undefined : await hashPassword(password);
    return this.#db.transaction().execute(async (trx) => {
      const clash = await trx
        .selectFrom('account')
        .select('id')
        .where(sql`lower(username)`, '=', input.username.toLowerCase())
        .executeTakeFirst();
      if (clash) throw new AccountExistsError(input.username);
      const row = await trx
        .insertInto('account')
        .values({
          id: randomUUID(),
          username: input.username,
          display_name: input.displayName ?? null,
          given_name: input.givenName ?? null,
          family_name: input.familyName ?? null,
          email: input.email ?? null,
          is_demo: input.isDemo ?? false,
          disabled_at: null,
          updated_at: new Date(),
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      if (hash) {
        await trx
          .insertInto('password_credential')
          .values({ account_id: row.id, hash, updated_at: new Date() })
          .execute();
      }
      return toAccount(row);
    });
  }

  async findById(id: string): Promise<Account | undefined> {
    const row = await this.#db.selectFrom('account').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? toAccount(row) : undefined;
  }

  async findByUsername(username: string): Promise<Account | undefined> {
    const row = await this.#db
      .selectFrom('account')
      .selectAll()
      .where(sql`lower(username)`, '=', username.toLowerCase())
      .executeTakeFirst();
    return row ? toAccount(row) : undefined;
  }

  /** The account with its password hash, for the password method only. */
  async findPasswordHash(username: string): Promise<{ account: Account; hash: string } | undefined> {
    const row = await this.#db
      .selectFrom('account')
      .innerJoin('password_credential', 'password_credential.account_id', 'account.id')
      .selectAll('account')
      .select('password_credential.hash')
      .where(sql`lower(account.username)`, '=', username.toLowerCase())
      .executeTakeFirst();
    if (!row) return undefined;
    const { hash, ...account } = row;
    return { account: toAccount(account), hash };
  }

  async list(): Promise<Account[]> {
    const rows = await this.#db.selectFrom('account').selectAll().orderBy('username').execute();
    return rows.map(toAccount);
  }

  /**
   * Accounts whose username or display name contains `query`, or whose national identifier (idNatPS) is
   * `query`, by username; `limit + 1` rows are read so the caller knows whether there is a next page.
   */
  async search(query: string, offset: number, limit: number): Promise<Account[]> {
    const q = query.trim();
    let select = this.#db.selectFrom('account').selectAll('account');
    if (q) {
      const like = `%${q.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      select = select.where((eb) =>
        eb.or([
          eb(sql`lower(account.username)`, 'like', like),
          eb(sql`lower(coalesce(account.display_name, ''))`, 'like', like),
          eb.exists(
            eb
              .selectFrom('national_identity')
              .select('national_identity.account_id')
              .whereRef('national_identity.account_id', '=', 'account.id')
              .where('national_identity.id_nat', '=', q),
          ),
        ]),
      );
    }
    const rows = await select
      .orderBy('account.username')
      .offset(offset)
      .limit(limit + 1)
      .execute();
    return rows.map(toAccount);
  }

  /** Whether the account has a local password. */
  async hasPassword(id: string): Promise<boolean> {
    const row = await this.#db
      .selectFrom('password_credential')
      .select('account_id')
      .where('account_id', '=', id)
      .executeTakeFirst();
    return row !== undefined;
  }

  async setPassword(id: string, password: string): Promise<void> {
    const hash = await hashPassword(password);
    await this.#db
      .insertInto('password_credential')
      .values({ account_id: id, hash, updated_at: new Date() })
      .onConflict((oc) => oc.column('account_id').doUpdateSet({ hash, updated_at: new Date() }))
      .execute();
  }

  async setDisabled(id: string, disabled: boolean, db: Kysely<Database> = this.#db): Promise<void> {
    await db
      .updateTable('account')
      .set({ disabled_at: disabled ? new Date() : null, updated_at: new Date() })
      .where('id', '=', id)
      .execute();
  }

  /** Outside demo mode, demo accounts cannot sign in. Returns how many were disabled. */
  async disableDemoAccounts(): Promise<number> {
    const result = await this.#db
      .updateTable('account')
      .set({ disabled_at: new Date(), updated_at: new Date() })
      .where('is_demo', '=', true)
      .where('disabled_at', 'is', null)
      .executeTakeFirst();
    return Number(result.numUpdatedRows);
  }
}
