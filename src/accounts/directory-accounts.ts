import { randomUUID } from 'node:crypto';
import { type Kysely, sql, type Transaction } from 'kysely';
import type { Database } from '../db/types.ts';
import { type Account, type AccountStore, USERNAME_PATTERN } from './store.ts';

/** What the directory says about a user whose password was just proven. */
export interface DirectoryProfile {
  /** objectGUID (canonical string) or entryUUID: the only key of the link. */
  stableId: string;
  dn: string;
  username: string;
  displayName?: string;
  givenName?: string;
  familyName?: string;
  mail?: string;
  idNat?: string;
  groups: readonly string[];
}

export interface DirectoryLink {
  accountId: string;
  stableId: string;
  dn: string;
  idNat: string | null;
  groups: string[];
  syncedAt: Date;
}

export type ProvisionResult =
  | { kind: 'linked'; account: Account; created: boolean; renamedFrom?: string }
  | {
      /**
       * `username_conflict`: another local account (not linked to this entry) owns the directory username;
       * Passerelle never links by name, and does not invent a second name either: an administrator
       * renames or removes the local account. `username_invalid`: the name has characters accounts refuse.
       */
      kind: 'refused';
      reason: 'username_conflict' | 'username_invalid';
      /** The account already linked to the entry, if any (audit). */
      accountId?: string;
    };

/** A link unchanged for this long is still rewritten (synced_at), to show when it was last confirmed. */
const RESYNC_AFTER_MS = 3600_000;

function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: string })?.code === '23505';
}

function sameGroups(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((g, i) => g === b[i]);
}

/**
 * Local accounts of directory users, linked by the entry's stable id, never by username: a rename or a
 * move in the directory updates the same account.
 */
export class DirectoryAccounts {
  readonly #db: Kysely<Database>;
  readonly #accounts: AccountStore;

  constructor(db: Kysely<Database>, accounts: AccountStore) {
    this.#db = db;
    this.#accounts = accounts;
  }

  async findByStableId(stableId: string): Promise<Account | undefined> {
    const row = await this.#db
      .selectFrom('directory_link')
      .select('account_id')
      .where('stable_id', '=', stableId)
      .executeTakeFirst();
    return row ? this.#accounts.findById(row.account_id) : undefined;
  }

  /**
   * The account whose directory entry carries this national identifier (RPPS/ADELI idNat), as last
   * synchronised; undefined when none or when several entries claim it.
   */
  async findByDirectoryIdNat(idNat: string): Promise<Account | undefined> {
    const rows = await this.#db
      .selectFrom('directory_link')
      .select('account_id')
      .where('id_nat', '=', idNat)
      .limit(2)
      .execute();
    return rows.length === 1 && rows[0] ? this.#accounts.findById(rows[0].account_id) : undefined;
  }

  /** National identifiers carried by directory entries (HR attribute), as of each account's last login. */
  async idNatClaims(): Promise<{ accountId: string; idNat: string; dn: string }[]> {
    const rows = await this.#db
      .selectFrom('directory_link')
      .select(['account_id', 'id_nat', 'dn'])
      .where('id_nat', 'is not', null)
      .execute();
    return rows.map((r) => ({ accountId: r.account_id, idNat: r.id_nat as string, dn: r.dn }));
  }

  async linkOf(accountId: string): Promise<DirectoryLink | undefined> {
    const row = await this.#db
      .selectFrom('directory_link')
      .selectAll()
      .where('account_id', '=', accountId)
      .executeTakeFirst();
    if (!row) return undefined;
    return {
      accountId: row.account_id,
      stableId: row.stable_id,
      dn: row.dn,
      idNat: row.id_nat,
      groups: row.groups,
      syncedAt: row.synced_at,
    };
  }

  /** Directory group DNs of the account as of its last login (for claims). */
  async groupsOf(accountId: string): Promise<string[]> {
    return (await this.linkOf(accountId))?.groups ?? [];
  }

  /** Creates or updates the account linked to the entry. */
  async provision(profile: DirectoryProfile): Promise<ProvisionResult> {
    if (!USERNAME_PATTERN.test(profile.username)) {
      const linked = await this.findByStableId(profile.stableId);
      return { kind: 'refused', reason: 'username_invalid', accountId: linked?.id };
    }
    for (let attempt = 0; ; attempt++) {
      try {
        const result = await this.#db.transaction().execute((trx) => this.#provision(trx, profile));
        if (result.kind === 'refused') return result;
        const account = await this.#accounts.findById(result.accountId);
        if (!account) throw new Error(`account ${result.accountId} vanished`);
        return { kind: 'linked', account, created: result.created, renamedFrom: result.renamedFrom };
      } catch (err) {
        // Two first logins of the same user at once: the second sees the first one's link on retry.
        if (attempt === 0 && isUniqueViolation(err)) continue;
        throw err;
      }
    }
  }

  async #provision(
    trx: Transaction<Database>,
    profile: DirectoryProfile,
  ): Promise<
    | { kind: 'linked'; accountId: string; created: boolean; renamedFrom?: string }
    | (ProvisionResult & { kind: 'refused' })
  > {
    const now = new Date();
    const groups = [...profile.groups];
    const names = {
      display_name: profile.displayName ?? null,
      given_name: profile.givenName ?? null,
      family_name: profile.familyName ?? null,
      email: profile.mail ?? null,
    };
    const owner = await trx
      .selectFrom('account')
      .select('id')
      .where(sql`lower(username)`, '=', profile.username.toLowerCase())
      .executeTakeFirst();
    const link = await trx
      .selectFrom('directory_link')
      .innerJoin('account', 'account.id', 'directory_link.account_id')
      .select([
        'directory_link.account_id',
        'directory_link.dn',
        'directory_link.id_nat',
        'directory_link.groups',
        'directory_link.synced_at',
        'account.username',
        'account.display_name',
        'account.given_name',
        'account.family_name',
        'account.email',
      ])
      .where('directory_link.stable_id', '=', profile.stableId)
      .executeTakeFirst();

    if (!link) {
      if (owner) return { kind: 'refused', reason: 'username_conflict' };
      const id = randomUUID();
      await trx
        .insertInto('account')
        .values({
          id,
          username: profile.username,
          ...names,
          is_demo: false,
          disabled_at: null,
          updated_at: now,
        })
        .execute();
      await trx
        .insertInto('directory_link')
        .values({
          account_id: id,
          stable_id: profile.stableId,
          dn: profile.dn,
          id_nat: profile.idNat ?? null,
          groups: JSON.stringify(groups),
          synced_at: now,
        })
        .execute();
      return { kind: 'linked', accountId: id, created: true };
    }

    const accountId = link.account_id;
    if (owner && owner.id !== accountId) return { kind: 'refused', reason: 'username_conflict', accountId };
    const renamed = link.username !== profile.username;
    const accountChanged =
      renamed ||
      link.display_name !== names.display_name ||
      link.given_name !== names.given_name ||
      link.family_name !== names.family_name ||
      link.email !== names.email;
    if (accountChanged) {
      await trx
        .updateTable('account')
        .set({ username: profile.username, ...names, updated_at: now })
        .where('id', '=', accountId)
        .execute();
    }
    const linkChanged =
      link.dn !== profile.dn ||
      link.id_nat !== (profile.idNat ?? null) ||
      !sameGroups(link.groups, groups) ||
      now.getTime() - new Date(link.synced_at).getTime() > RESYNC_AFTER_MS;
    if (linkChanged) {
      await trx
        .updateTable('directory_link')
        .set({
          dn: profile.dn,
          id_nat: profile.idNat ?? null,
          groups: JSON.stringify(groups),
          synced_at: now,
        })
        .where('account_id', '=', accountId)
        .execute();
    }
    return { kind: 'linked', accountId, created: false, renamedFrom: renamed ? link.username : undefined };
  }
}
