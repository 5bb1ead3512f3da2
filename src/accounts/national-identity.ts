import type { Kysely, Selectable } from 'kysely';
import type {
  Database,
  NationalIdentitySource,
  NationalIdentityStatus,
  NationalIdentityTable,
} from '../db/types.ts';
import { rppsOf } from '../rpps/identifiers.ts';

/** The national identifier (idNat_PS) linked to an account, and how the link was established. */
export interface NationalIdentity {
  accountId: string;
  idNat: string;
  /** idNat without its leading `8` when it is an RPPS-based identifier. */
  rpps: string | null;
  source: NationalIdentitySource;
  status: NationalIdentityStatus;
  verifiedAt: Date | null;
  updatedAt: Date;
}

export type ProofOutcome =
  | { kind: 'recorded' | 'unchanged' }
  /** Nothing written: the identifier belongs to another account, or this account has another one. */
  | { kind: 'conflict'; existing: NationalIdentity };

/** Links are usable for login unless flagged. */
export const USABLE_STATUSES: readonly NationalIdentityStatus[] = ['verified', 'candidate'];

/** A proof younger than this is not rewritten at each login. */
const REFRESH_AFTER_MS = 3600_000;

function toIdentity(row: Selectable<NationalIdentityTable>): NationalIdentity {
  return {
    accountId: row.account_id,
    idNat: row.id_nat,
    rpps: row.rpps,
    source: row.source,
    status: row.status,
    verifiedAt: row.verified_at,
    updatedAt: row.updated_at,
  };
}

export class NationalIdentities {
  readonly #db: Kysely<Database>;
  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async findByIdNat(idNat: string): Promise<NationalIdentity | undefined> {
    const row = await this.#db
      .selectFrom('national_identity')
      .selectAll()
      .where('id_nat', '=', idNat)
      .executeTakeFirst();
    return row ? toIdentity(row) : undefined;
  }

  async findByAccount(accountId: string): Promise<NationalIdentity | undefined> {
    const row = await this.#db
      .selectFrom('national_identity')
      .selectAll()
      .where('account_id', '=', accountId)
      .executeTakeFirst();
    return row ? toIdentity(row) : undefined;
  }

  /** Sets a link as an administrator or a reconciliation would (tests, future RPPS import). */
  async set(
    accountId: string,
    idNat: string,
    source: NationalIdentitySource,
    status: NationalIdentityStatus,
  ): Promise<void> {
    const values = {
      id_nat: idNat,
      rpps: rppsOf(idNat),
      source,
      status,
      verified_at: status === 'verified' ? new Date() : null,
      updated_at: new Date(),
    };
    await this.#db
      .insertInto('national_identity')
      .values({ account_id: accountId, ...values })
      .onConflict((oc) => oc.column('account_id').doUpdateSet(values))
      .execute();
  }

  /**
   * Records that a verified CPS card proved `idNat` for the account (source cps-certificate, status
   * verified). An unproven link of the same account (candidate, inactive) is replaced; a link of another
   * account, a verified link to another identifier, or a link flagged as conflict is left untouched.
   */
  async recordProven(accountId: string, idNat: string, now = new Date()): Promise<ProofOutcome> {
    try {
      return await this.#db.transaction().execute(async (trx) => {
        const rows = await trx
          .selectFrom('national_identity')
          .selectAll()
          .where((eb) => eb.or([eb('account_id', '=', accountId), eb('id_nat', '=', idNat)]))
          .forUpdate()
          .execute();
        const existing = rows.map(toIdentity);
        const other = existing.find((l) => l.accountId !== accountId);
        if (other) return { kind: 'conflict', existing: other } as const;
        const own = existing[0];
        if (own) {
          const sameId = own.idNat === idNat;
          if (
            own.status === 'conflict' ||
            (own.status === 'verified' && !sameId) ||
            (own.status === 'inactive' && sameId)
          )
            return { kind: 'conflict', existing: own } as const;
          const fresh =
            sameId &&
            own.status === 'verified' &&
            own.source === 'cps-certificate' &&
            own.verifiedAt !== null &&
            now.getTime() - own.verifiedAt.getTime() < REFRESH_AFTER_MS;
          if (fresh) return { kind: 'unchanged' } as const;
        }
        const values = {
          id_nat: idNat,
          rpps: rppsOf(idNat),
          source: 'cps-certificate' as const,
          status: 'verified' as const,
          verified_at: now,
          updated_at: now,
        };
        await trx
          .insertInto('national_identity')
          .values({ account_id: accountId, ...values })
          .onConflict((oc) => oc.column('account_id').doUpdateSet(values))
          .execute();
        return { kind: 'recorded' } as const;
      });
    } catch (err) {
      // Another instance linked the same identifier meanwhile (unique id_nat): report the conflict.
      if ((err as { code?: string }).code !== '23505') throw err;
      const existing = await this.findByIdNat(idNat);
      if (!existing) throw err;
      return { kind: 'conflict', existing };
    }
  }
}
