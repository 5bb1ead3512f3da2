import type { Kysely } from 'kysely';
import type { AuditTrail } from '../audit/trail.ts';
import type { Config } from '../config/schema.ts';
import type { Database } from '../db/types.ts';

export type Establishment = Config['establishments'][number];

/** How an account belongs to an establishment; `undefined` when it does not. */
export type MembershipBasis = 'all' | 'listed' | 'directory-group';

/** `members` as configured, or its default: `all` for a single establishment, `listed` for a GHT. */
export function membersRule(config: Config, establishment: Establishment): 'all' | 'listed' {
  return establishment.members ?? (config.establishments.length === 1 ? 'all' : 'listed');
}

/** Two directory DNs name the same entry (case and spaces around commas ignored). */
export const sameDn = (a: string, b: string) =>
  a.replace(/\s*,\s*/g, ',').toLowerCase() === b.replace(/\s*,\s*/g, ',').toLowerCase();

/**
 * Which establishments (FINESS) an account belongs to. In a GHT each establishment federates only its
 * own staff to Pro Santé Connect under its `tid`: membership is every account (`members: all`), the
 * accounts listed by an administrator, or the members of configured directory groups.
 */
export class EstablishmentMembers {
  readonly #db: Kysely<Database>;
  readonly #audit: AuditTrail;
  readonly #config: Config;

  constructor(db: Kysely<Database>, audit: AuditTrail, config: Config) {
    this.#db = db;
    this.#audit = audit;
    this.#config = config;
  }

  /** The establishment with this FINESS, if configured. */
  establishment(finess: string): Establishment | undefined {
    return this.#config.establishments.find((e) => e.finess === finess);
  }

  async basis(accountId: string, establishment: Establishment): Promise<MembershipBasis | undefined> {
    if (membersRule(this.#config, establishment) === 'all') return 'all';
    const listed = await this.#db
      .selectFrom('account_establishment')
      .select('finess')
      .where('account_id', '=', accountId)
      .where('finess', '=', establishment.finess)
      .executeTakeFirst();
    if (listed) return 'listed';
    if (!establishment.directoryGroups.length) return undefined;
    const link = await this.#db
      .selectFrom('directory_link')
      .select('groups')
      .where('account_id', '=', accountId)
      .executeTakeFirst();
    const groups = link?.groups ?? [];
    const inGroup = establishment.directoryGroups.some((wanted) => groups.some((g) => sameDn(g, wanted)));
    return inGroup ? 'directory-group' : undefined;
  }

  async isMember(accountId: string, establishment: Establishment): Promise<boolean> {
    return (await this.basis(accountId, establishment)) !== undefined;
  }

  /** Every configured establishment the account belongs to, with how. */
  async of(accountId: string): Promise<{ establishment: Establishment; basis: MembershipBasis }[]> {
    const found = [];
    for (const establishment of this.#config.establishments) {
      const basis = await this.basis(accountId, establishment);
      if (basis) found.push({ establishment, basis });
    }
    return found;
  }

  /** How many enabled accounts belong to the establishment (listed, in its directory groups, or all). */
  async memberCount(establishment: Establishment): Promise<number> {
    const enabled = this.#db.selectFrom('account').select('account.id').where('disabled_at', 'is', null);
    if (membersRule(this.#config, establishment) === 'all') return (await enabled.execute()).length;
    const members = new Set(
      (
        await enabled
          .innerJoin('account_establishment', 'account_establishment.account_id', 'account.id')
          .where('account_establishment.finess', '=', establishment.finess)
          .execute()
      ).map((r) => r.id),
    );
    if (establishment.directoryGroups.length) {
      const links = await enabled
        .innerJoin('directory_link', 'directory_link.account_id', 'account.id')
        .select('directory_link.groups')
        .execute();
      for (const link of links) {
        const groups = link.groups ?? [];
        if (establishment.directoryGroups.some((wanted) => groups.some((g) => sameDn(g, wanted))))
          members.add(link.id);
      }
    }
    return members.size;
  }

  /** Lists the account as a member; `false` when it already was. Audited with the change. */
  async add(accountId: string, finess: string, actor: string): Promise<boolean> {
    this.#known(finess);
    return this.#db.transaction().execute(async (trx) => {
      const inserted = await trx
        .insertInto('account_establishment')
        .values({ account_id: accountId, finess })
        .onConflict((oc) => oc.columns(['account_id', 'finess']).doNothing())
        .executeTakeFirst();
      if (!inserted.numInsertedOrUpdatedRows) return false;
      await this.#audit.record(
        { type: 'establishment.member_added', outcome: 'success', accountId, detail: { finess, actor } },
        trx,
      );
      return true;
    });
  }

  /** Removes the listing; `false` when the account was not listed. Audited with the change. */
  async remove(accountId: string, finess: string, actor: string): Promise<boolean> {
    this.#known(finess);
    return this.#db.transaction().execute(async (trx) => {
      const deleted = await trx
        .deleteFrom('account_establishment')
        .where('account_id', '=', accountId)
        .where('finess', '=', finess)
        .executeTakeFirst();
      if (!deleted.numDeletedRows) return false;
      await this.#audit.record(
        { type: 'establishment.member_removed', outcome: 'success', accountId, detail: { finess, actor } },
        trx,
      );
      return true;
    });
  }

  #known(finess: string): void {
    if (!this.establishment(finess)) throw new Error(`no establishment with FINESS ${finess} is configured`);
  }
}
