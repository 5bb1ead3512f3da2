import { randomUUID } from 'node:crypto';
import type { Kysely, Selectable, Transaction } from 'kysely';
import type { AuditTrail } from '../audit/trail.ts';
import type {
  Database,
  NationalIdentityOrigin,
  NationalIdentitySource,
  NationalIdentityStatus,
  NationalIdentityTable,
  RppsReviewKind,
  RppsReviewState,
  RppsReviewTable,
} from '../db/types.ts';
import { rppsOf } from '../rpps/identifiers.ts';

/**
 * The national identity link of an account (idNatPS ↔ account), how it was proven, and the review queue
 * of candidates and conflicts. This module alone writes `national_identity` and `rpps_review`, and audits
 * every change in the same transaction. An identity comes from the RPPS (an idNatPS) or, proven through
 * Pro Santé Connect, from Pro Santé Identité (a PSI identifier): an identifier is a key within its origin.
 */

/** What the Annuaire Santé (or its open-data extract) says of the professional. */
export interface NationalRecord {
  familyName: string | null;
  givenName: string | null;
  professionCode: string | null;
  categoryCode: string | null;
  /** Unknown (open-data index) = undefined: the stored codes are kept. */
  roleCodes?: string[];
}

export interface NationalIdentity {
  accountId: string;
  /** The idNatPS, or the Pro Santé Identité identifier (origin `psi`). */
  idNat: string;
  origin: NationalIdentityOrigin;
  /** idNat without its leading `8` when it is an RPPS-based identifier (null for a PSI identity). */
  rpps: string | null;
  source: NationalIdentitySource;
  status: NationalIdentityStatus;
  statusReason: string | null;
  verifiedAt: Date | null;
  checkedAt: Date | null;
  updatedAt: Date;
  professionCode: string | null;
  categoryCode: string | null;
  roleCodes: string[];
  nationalFamilyName: string | null;
  nationalGivenName: string | null;
}

export interface LinkWithNames extends NationalIdentity {
  /** The local account's names, compared with the exercise names of the RPPS. */
  accountNames: { familyName: string | null; givenName: string | null };
  /** An administrator rejected a conflict about this very link: differing names are not raised again. */
  keptAfterReview: boolean;
}

/** Sources, strongest first. */
export const SOURCE_STRENGTH: readonly NationalIdentitySource[] = [
  'cps-certificate',
  'psc-login',
  'directory-attribute',
  'manual',
  'name-match',
];

/** Links usable to map a CPS card to an account (a candidate is confirmed by the card itself). */
export const USABLE_STATUSES: readonly NationalIdentityStatus[] = ['verified', 'candidate'];

/** A proof younger than this is not rewritten at each login. */
const REFRESH_AFTER_MS = 3600_000;

/** A national identifier and where it comes from. */
export interface NationalKey {
  idNat: string;
  origin: NationalIdentityOrigin;
}

export interface LinkProposal {
  accountId: string;
  idNat: string;
  /** Default `rpps`. */
  origin?: NationalIdentityOrigin;
  /**
   * The account's link that this proof replaces without a conflict: PSC proved the account's Pro Santé
   * Identité identifier together with this RPPS one (the professional entered the RPPS since).
   */
  supersedes?: NationalKey;
  source: NationalIdentitySource;
  /** Established: proven by the card or PSC, or confirmed active by the Annuaire Santé. */
  verified: boolean;
  national?: NationalRecord;
  /** Facts shown to the reviewer (certificate serial, directory DN, matched names…). */
  evidence?: Record<string, unknown>;
  /** Who or what proposes: `login`, `sync`, `admin:<name>`. */
  actor: string;
  now?: Date;
}

export type LinkOutcome =
  | { kind: 'linked'; status: 'verified' | 'candidate' }
  | { kind: 'unchanged' }
  /** Nothing applied: the proposal awaits an administrator in the review queue. */
  | { kind: 'conflict'; reviewId: string; existing?: NationalIdentity }
  /** The identifier's link is inactive: a proof does not reactivate it (the sync does, from the RPPS). */
  | { kind: 'inactive'; existing: NationalIdentity }
  /** An administrator rejected this very proposal before. */
  | { kind: 'rejected' };

export interface ReviewItem {
  id: string;
  accountId: string;
  kind: RppsReviewKind;
  idNat: string;
  origin: NationalIdentityOrigin;
  source: NationalIdentitySource;
  otherAccountId: string | null;
  evidence: Record<string, unknown>;
  state: RppsReviewState;
  createdAt: Date;
  decidedAt: Date | null;
  decidedBy: string | null;
}

/** A change of a link decided by the sync from what the Annuaire Santé says. */
export type LinkChange =
  | { kind: 'refresh'; link: NationalIdentity; national: NationalRecord; verify: boolean }
  | { kind: 'inactive'; link: NationalIdentity; reason: 'inactive_in_rpps' | 'not_found' }
  | { kind: 'reactivate'; link: NationalIdentity; national: NationalRecord }
  | { kind: 'names_mismatch'; link: NationalIdentity; national: NationalRecord };

export class ReviewDecisionError extends Error {}

function toIdentity(row: Selectable<NationalIdentityTable>): NationalIdentity {
  return {
    accountId: row.account_id,
    idNat: row.id_nat,
    origin: row.origin,
    rpps: row.rpps,
    source: row.source,
    status: row.status,
    statusReason: row.status_reason,
    verifiedAt: row.verified_at,
    checkedAt: row.checked_at,
    updatedAt: row.updated_at,
    professionCode: row.profession_code,
    categoryCode: row.category_code,
    roleCodes: row.role_codes,
    nationalFamilyName: row.national_family_name,
    nationalGivenName: row.national_given_name,
  };
}

function toReview(row: Selectable<RppsReviewTable>): ReviewItem {
  return {
    id: row.id,
    accountId: row.account_id,
    kind: row.kind,
    idNat: row.id_nat,
    origin: row.origin,
    source: row.source,
    otherAccountId: row.other_account_id,
    evidence: row.evidence,
    state: row.state,
    createdAt: row.created_at,
    decidedAt: row.decided_at,
    decidedBy: row.decided_by,
  };
}

function nationalColumns(national: NationalRecord | undefined) {
  if (!national) return {};
  return {
    profession_code: national.professionCode,
    category_code: national.categoryCode,
    national_family_name: national.familyName,
    national_given_name: national.givenName,
    ...(national.roleCodes ? { role_codes: JSON.stringify(national.roleCodes) } : {}),
  };
}

/** The RPPS number of an identifier of that origin (none for Pro Santé Identité). */
function rppsColumn(idNat: string, origin: NationalIdentityOrigin): string | null {
  return origin === 'rpps' ? rppsOf(idNat) : null;
}

const sameKey = (a: NationalKey, b: NationalKey) => a.idNat === b.idNat && a.origin === b.origin;

/** The link as stored, for evidence and for restoring it when a conflict is rejected. */
function snapshot(link: NationalIdentity | undefined) {
  if (!link) return null;
  return {
    idNat: link.idNat,
    origin: link.origin,
    source: link.source,
    status: link.status,
    statusReason: link.statusReason,
    verifiedAt: link.verifiedAt?.toISOString() ?? null,
  };
}
type LinkSnapshot = NonNullable<ReturnType<typeof snapshot>>;

const stronger = (a: NationalIdentitySource, b: NationalIdentitySource) =>
  SOURCE_STRENGTH.indexOf(a) <= SOURCE_STRENGTH.indexOf(b) ? a : b;

/** The link that owns an identifier: verified first, then inactive, conflict, candidate. */
const OWNERSHIP: readonly NationalIdentityStatus[] = ['verified', 'inactive', 'conflict', 'candidate'];

export class NationalIdentities {
  readonly #db: Kysely<Database>;
  readonly #audit: AuditTrail;

  constructor(db: Kysely<Database>, audit: AuditTrail) {
    this.#db = db;
    this.#audit = audit;
  }

  /** The link that owns the identifier of that origin (a verified one if any). */
  async findByIdNat(
    idNat: string,
    origin: NationalIdentityOrigin = 'rpps',
  ): Promise<NationalIdentity | undefined> {
    const rows = await this.#db
      .selectFrom('national_identity')
      .selectAll()
      .where('id_nat', '=', idNat)
      .where('origin', '=', origin)
      .execute();
    const links = rows.map(toIdentity);
    for (const status of OWNERSHIP) {
      const link = links.find((l) => l.status === status);
      if (link) return link;
    }
    return undefined;
  }

  async findByAccount(accountId: string): Promise<NationalIdentity | undefined> {
    const row = await this.#db
      .selectFrom('national_identity')
      .selectAll()
      .where('account_id', '=', accountId)
      .executeTakeFirst();
    return row ? toIdentity(row) : undefined;
  }

  /** Every link with the account's own names (the sync reads them in one statement). */
  async list(): Promise<LinkWithNames[]> {
    const rows = await this.#db
      .selectFrom('national_identity')
      .innerJoin('account', 'account.id', 'national_identity.account_id')
      .selectAll('national_identity')
      .select(['account.family_name as account_family_name', 'account.given_name as account_given_name'])
      .select((eb) =>
        eb
          .exists(
            eb
              .selectFrom('rpps_review')
              .select('rpps_review.id')
              .whereRef('rpps_review.account_id', '=', 'national_identity.account_id')
              .whereRef('rpps_review.id_nat', '=', 'national_identity.id_nat')
              .where('rpps_review.state', '=', 'rejected'),
          )
          .as('kept_after_review'),
      )
      .orderBy('national_identity.account_id')
      .execute();
    return rows.map((row) => ({
      ...toIdentity(row),
      accountNames: { familyName: row.account_family_name, givenName: row.account_given_name },
      keptAfterReview: Boolean(row.kept_after_review),
    }));
  }

  async count(): Promise<number> {
    const row = await this.#db
      .selectFrom('national_identity')
      .select((eb) => eb.fn.countAll<string | number>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** Accounts (enabled, not demo) without any link, with their names: input of name matching. */
  async accountsWithoutLink(): Promise<
    { id: string; familyName: string | null; givenName: string | null }[]
  > {
    return this.#db
      .selectFrom('account')
      .leftJoin('national_identity', 'national_identity.account_id', 'account.id')
      .select(['account.id', 'account.family_name as familyName', 'account.given_name as givenName'])
      .where('national_identity.account_id', 'is', null)
      .where('account.disabled_at', 'is', null)
      .where('account.is_demo', '=', false)
      .execute();
  }

  /** Sets a link directly (tests, fixtures); real changes go through propose() and the sync. */
  async set(
    accountId: string,
    idNat: string,
    source: NationalIdentitySource,
    status: NationalIdentityStatus,
    origin: NationalIdentityOrigin = 'rpps',
  ): Promise<void> {
    const values = {
      id_nat: idNat,
      origin,
      rpps: rppsColumn(idNat, origin),
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
   * Records that a verified CPS card or a login through Pro Santé Connect proved `idNat` for the account. Kept short for the login path:
   * a proof younger than an hour is not rewritten.
   */
  async recordProven(
    accountId: string,
    idNat: string,
    source: 'cps-certificate' | 'psc-login' = 'cps-certificate',
    options: { now?: Date; origin?: NationalIdentityOrigin; supersedes?: NationalKey } = {},
  ): Promise<LinkOutcome> {
    const { now = new Date(), origin = 'rpps', supersedes } = options;
    const own = await this.findByAccount(accountId);
    const fresh =
      own?.idNat === idNat &&
      own.origin === origin &&
      own.status === 'verified' &&
      own.source === source &&
      own.verifiedAt !== null &&
      now.getTime() - own.verifiedAt.getTime() < REFRESH_AFTER_MS;
    if (fresh) return { kind: 'unchanged' };
    return this.propose({
      accountId,
      idNat,
      origin,
      supersedes,
      source,
      verified: true,
      actor: 'login',
      now,
    });
  }

  /**
   * Applies a proof or claim of the account's national identity, or queues it for review. Never
   * resolves a conflict: a claim on an identifier held by another account, or contradicting the
   * account's own link, is flagged and waits for an administrator. A name-match candidate is always
   * reviewed; a stronger claim replaces it.
   */
  async propose(p: LinkProposal): Promise<LinkOutcome> {
    const now = p.now ?? new Date();
    try {
      return await this.#db.transaction().execute((trx) => this.#propose(trx, p, now));
    } catch (err) {
      // Another instance verified the same identifier meanwhile (unique verified id_nat): start over,
      // which now sees it and reports the conflict.
      if ((err as { code?: string }).code !== '23505') throw err;
      return this.#db.transaction().execute((trx) => this.#propose(trx, p, now));
    }
  }

  async #propose(trx: Transaction<Database>, p: LinkProposal, now: Date): Promise<LinkOutcome> {
    const origin = p.origin ?? 'rpps';
    const key: NationalKey = { idNat: p.idNat, origin };
    const rows = await trx
      .selectFrom('national_identity')
      .selectAll()
      .where((eb) =>
        eb.or([
          eb('account_id', '=', p.accountId),
          eb.and([eb('id_nat', '=', p.idNat), eb('origin', '=', origin)]),
        ]),
      )
      .forUpdate()
      .execute();
    const links = rows.map(toIdentity);
    const own = links.find((l) => l.accountId === p.accountId);
    const holders = links.filter((l) => l.accountId !== p.accountId);
    /** The account's own link is this identity. */
    const ownIsKey = own !== undefined && sameKey(own, key);

    const reviews = await trx
      .selectFrom('rpps_review')
      .selectAll()
      .where('account_id', '=', p.accountId)
      .where('id_nat', '=', p.idNat)
      .where('origin', '=', origin)
      .where('state', 'in', ['open', 'rejected'])
      .execute();
    if (reviews.some((r) => r.state === 'rejected' && r.source === p.source)) return { kind: 'rejected' };
    const open = reviews.find((r) => r.state === 'open');
    if (open?.kind === 'conflict') return { kind: 'conflict', reviewId: open.id, existing: own };

    const isCandidate = (l: NationalIdentity) => l.status === 'candidate' && l.source === 'name-match';
    const blocking = holders.find((l) => !isCandidate(l));
    const audit = (type: string, outcome: 'success' | 'failure', detail: Record<string, unknown>) =>
      this.#audit.record(
        {
          type,
          outcome,
          accountId: p.accountId,
          nationalId: p.idNat,
          reason: outcome === 'failure' ? type.split('.').pop() : undefined,
          detail: { idNat: p.idNat, origin, source: p.source, actor: p.actor, ...detail },
        },
        trx,
      );

    // Conflicts: another account holds the identifier, or the account's own link says otherwise (unless
    // the proof names that link as the one it supersedes: the same person, proven by both registries).
    const superseded = own !== undefined && p.supersedes !== undefined && sameKey(own, p.supersedes);
    const contradicted =
      own && !ownIsKey && !superseded && !(own.status === 'candidate' && (p.verified || isCandidate(own)));
    if (blocking || contradicted || own?.status === 'conflict') {
      const reason = blocking ? 'held_by_another_account' : 'contradicts_existing_link';
      const reviewId = await this.#openReview(trx, {
        accountId: p.accountId,
        kind: 'conflict',
        idNat: p.idNat,
        origin,
        source: p.source,
        otherAccountId: blocking?.accountId ?? null,
        evidence: {
          reason,
          proposal: p.evidence ?? {},
          national: p.national ?? null,
          ownLinkBefore: snapshot(own),
          otherLink: blocking ? { accountId: blocking.accountId, ...snapshot(blocking) } : null,
        },
        now,
      });
      if (own) {
        await trx
          .updateTable('national_identity')
          .set({ status: 'conflict', status_reason: reason, updated_at: now })
          .where('account_id', '=', p.accountId)
          .execute();
      } else {
        await trx
          .insertInto('national_identity')
          .values({
            account_id: p.accountId,
            id_nat: p.idNat,
            origin,
            rpps: rppsColumn(p.idNat, origin),
            source: p.source,
            status: 'conflict',
            status_reason: reason,
            updated_at: now,
            ...nationalColumns(p.national),
          })
          .execute();
      }
      await audit('rpps.link.conflict', 'failure', {
        reviewId,
        conflictReason: reason,
        otherAccountId: blocking?.accountId,
        previous: snapshot(own),
      });
      return { kind: 'conflict', reviewId, existing: blocking ?? own };
    }

    if (ownIsKey && own.status === 'inactive') return { kind: 'inactive', existing: own };

    // Name-match candidates of other accounts give way to a stronger claim.
    for (const candidate of holders) {
      await trx.deleteFrom('national_identity').where('account_id', '=', candidate.accountId).execute();
      await this.#closeReviews(
        trx,
        candidate.accountId,
        key,
        'rejected',
        `system:superseded-by:${p.source}`,
        now,
      );
      await this.#audit.record(
        {
          type: 'rpps.link.removed',
          outcome: 'success',
          accountId: candidate.accountId,
          nationalId: p.idNat,
          reason: 'superseded',
          detail: { idNat: p.idNat, origin, previous: snapshot(candidate), supersededBy: p.accountId },
        },
        trx,
      );
    }

    // An unverified claim never refreshes a verified link, nor a candidate from an equal or stronger source.
    const weaker = own && SOURCE_STRENGTH.indexOf(p.source) >= SOURCE_STRENGTH.indexOf(own.source);
    if (ownIsKey && !p.verified && (own.status === 'verified' || weaker)) {
      return { kind: 'unchanged' };
    }

    const status = p.verified ? 'verified' : 'candidate';
    const source = ownIsKey && own.status === 'verified' ? stronger(own.source, p.source) : p.source;
    const values = {
      id_nat: p.idNat,
      origin,
      rpps: rppsColumn(p.idNat, origin),
      source,
      status,
      status_reason: null,
      verified_at: p.verified ? now : null,
      checked_at: p.national ? now : ownIsKey ? own.checkedAt : null,
      updated_at: now,
      ...nationalColumns(p.national),
    } as const;
    await trx
      .insertInto('national_identity')
      .values({ account_id: p.accountId, ...values })
      .onConflict((oc) => oc.column('account_id').doUpdateSet(values))
      .execute();
    if (own && !ownIsKey) {
      await this.#closeReviews(trx, p.accountId, own, 'rejected', `system:superseded-by:${p.source}`, now);
    }
    if (status === 'verified') {
      await this.#closeReviews(trx, p.accountId, key, 'accepted', `system:proven-by:${p.source}`, now);
    } else if (p.source === 'name-match') {
      await this.#openReview(trx, {
        accountId: p.accountId,
        kind: 'candidate',
        idNat: p.idNat,
        origin,
        source: p.source,
        otherAccountId: null,
        evidence: { proposal: p.evidence ?? {}, national: p.national ?? null },
        now,
      });
    }
    await audit(own ? 'rpps.link.updated' : 'rpps.link.created', 'success', {
      status,
      linkSource: source,
      previous: snapshot(own),
    });
    return { kind: 'linked', status };
  }

  async #openReview(
    trx: Transaction<Database>,
    item: Pick<
      ReviewItem,
      'accountId' | 'kind' | 'idNat' | 'origin' | 'source' | 'otherAccountId' | 'evidence'
    > & {
      now: Date;
    },
  ): Promise<string> {
    const existing = await trx
      .selectFrom('rpps_review')
      .select('id')
      .where('account_id', '=', item.accountId)
      .where('id_nat', '=', item.idNat)
      .where('state', '=', 'open')
      .executeTakeFirst();
    if (existing) return existing.id;
    const id = randomUUID();
    await trx
      .insertInto('rpps_review')
      .values({
        id,
        account_id: item.accountId,
        kind: item.kind,
        id_nat: item.idNat,
        origin: item.origin,
        source: item.source,
        other_account_id: item.otherAccountId,
        evidence: JSON.stringify(item.evidence),
        state: 'open',
        created_at: item.now,
      })
      .execute();
    return id;
  }

  async #closeReviews(
    trx: Transaction<Database>,
    accountId: string,
    key: NationalKey,
    state: 'accepted' | 'rejected',
    by: string,
    now: Date,
  ): Promise<void> {
    await trx
      .updateTable('rpps_review')
      .set({ state, decided_at: now, decided_by: by })
      .where('account_id', '=', accountId)
      .where('id_nat', '=', key.idNat)
      .where('origin', '=', key.origin)
      .where('state', '=', 'open')
      .execute();
  }

  /** The review queue: open candidates and conflicts, oldest first. */
  async openReviews(): Promise<ReviewItem[]> {
    const rows = await this.#db
      .selectFrom('rpps_review')
      .selectAll()
      .where('state', '=', 'open')
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(toReview);
  }

  async findReview(id: string): Promise<ReviewItem | undefined> {
    if (!/^[0-9a-f-]{36}$/i.test(id)) return undefined;
    const row = await this.#db.selectFrom('rpps_review').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? toReview(row) : undefined;
  }

  /**
   * An administrator's decision. Accepting makes the proposal the account's verified link (and removes
   * the other account's link to that identifier); rejecting restores the account's previous link and
   * remembers the decision so that the same proposal is not raised again.
   */
  async decide(
    id: string,
    decision: 'accept' | 'reject',
    actor: string,
    now = new Date(),
  ): Promise<ReviewItem> {
    return this.#db.transaction().execute(async (trx) => {
      const row = await trx
        .selectFrom('rpps_review')
        .selectAll()
        .where('id', '=', id)
        .forUpdate()
        .executeTakeFirst();
      if (!row) throw new ReviewDecisionError('no such review item');
      const item = toReview(row);
      if (item.state !== 'open') throw new ReviewDecisionError(`already ${item.state} by ${item.decidedBy}`);
      const links = (
        await trx
          .selectFrom('national_identity')
          .selectAll()
          .where((eb) =>
            eb.or([
              eb('account_id', '=', item.accountId),
              eb.and([eb('id_nat', '=', item.idNat), eb('origin', '=', item.origin)]),
            ]),
          )
          .forUpdate()
          .execute()
      ).map(toIdentity);
      const own = links.find((l) => l.accountId === item.accountId);
      const removed: LinkSnapshot[] = [];

      if (decision === 'accept') {
        for (const other of links.filter((l) => l.accountId !== item.accountId)) {
          await trx.deleteFrom('national_identity').where('account_id', '=', other.accountId).execute();
          await this.#closeReviews(trx, other.accountId, item, 'rejected', `system:review:${id}`, now);
          removed.push(snapshot(other) as LinkSnapshot);
          await this.#audit.record(
            {
              type: 'rpps.link.removed',
              outcome: 'success',
              accountId: other.accountId,
              nationalId: other.idNat,
              reason: 'review_accepted_for_another_account',
              detail: { reviewId: id, origin: other.origin, previous: snapshot(other), actor },
            },
            trx,
          );
        }
        const national = item.evidence.national as NationalRecord | null | undefined;
        const values = {
          id_nat: item.idNat,
          origin: item.origin,
          rpps: rppsColumn(item.idNat, item.origin),
          source: item.source,
          status: 'verified' as const,
          status_reason: null,
          verified_at: now,
          updated_at: now,
          ...nationalColumns(national ?? undefined),
        };
        await trx
          .insertInto('national_identity')
          .values({ account_id: item.accountId, ...values })
          .onConflict((oc) => oc.column('account_id').doUpdateSet(values))
          .execute();
      } else {
        const before = item.evidence.ownLinkBefore as LinkSnapshot | null | undefined;
        // Snapshots taken before Pro Santé Identité have no origin: the RPPS then.
        const beforeOrigin = before?.origin ?? 'rpps';
        if (before && !sameKey({ idNat: before.idNat, origin: beforeOrigin }, item)) {
          await trx
            .updateTable('national_identity')
            .set({
              id_nat: before.idNat,
              origin: beforeOrigin,
              rpps: rppsColumn(before.idNat, beforeOrigin),
              source: before.source,
              status: before.status,
              status_reason: before.statusReason,
              verified_at: before.verifiedAt,
              updated_at: now,
            })
            .where('account_id', '=', item.accountId)
            .execute();
        } else if (before) {
          await trx
            .updateTable('national_identity')
            .set({ status: before.status, status_reason: before.statusReason, updated_at: now })
            .where('account_id', '=', item.accountId)
            .execute();
        } else if (own && sameKey(own, item)) {
          await trx.deleteFrom('national_identity').where('account_id', '=', item.accountId).execute();
        }
      }

      const state = decision === 'accept' ? 'accepted' : 'rejected';
      await trx
        .updateTable('rpps_review')
        .set({ state, decided_at: now, decided_by: actor })
        .where('id', '=', id)
        .execute();
      await this.#audit.record(
        {
          type: `rpps.review.${state}`,
          outcome: 'success',
          accountId: item.accountId,
          nationalId: item.idNat,
          detail: {
            reviewId: id,
            kind: item.kind,
            idNat: item.idNat,
            origin: item.origin,
            source: item.source,
            otherAccountId: item.otherAccountId,
            previous: snapshot(own),
            removed,
            actor,
          },
        },
        trx,
      );
      return { ...item, state, decidedAt: now, decidedBy: actor };
    });
  }

  /** Applies what the sync learnt of a link (each change audited with it). */
  async apply(change: LinkChange, actor: string, now = new Date()): Promise<void> {
    const { link } = change;
    await this.#db.transaction().execute(async (trx) => {
      const current = await trx
        .selectFrom('national_identity')
        .selectAll()
        .where('account_id', '=', link.accountId)
        .forUpdate()
        .executeTakeFirst();
      // Changed since the plan (a login proved something meanwhile): leave it to the next run.
      if (!current || current.id_nat !== link.idNat || current.status !== link.status) return;
      let type: string;
      let outcome: 'success' | 'failure' = 'success';
      let reviewId: string | undefined;
      switch (change.kind) {
        case 'refresh':
          type = change.verify && link.status === 'candidate' ? 'rpps.link.verified' : 'rpps.link.refreshed';
          await trx
            .updateTable('national_identity')
            .set({
              ...nationalColumns(change.national),
              ...(change.verify ? { status: 'verified', status_reason: null, verified_at: now } : {}),
              checked_at: now,
              updated_at: now,
            })
            .where('account_id', '=', link.accountId)
            .execute();
          if (change.verify) {
            await this.#closeReviews(trx, link.accountId, link, 'accepted', `system:${actor}`, now);
          }
          break;
        case 'inactive':
          type = 'rpps.link.inactive';
          outcome = 'failure';
          await trx
            .updateTable('national_identity')
            .set({ status: 'inactive', status_reason: change.reason, checked_at: now, updated_at: now })
            .where('account_id', '=', link.accountId)
            .execute();
          break;
        case 'reactivate':
          type = 'rpps.link.reactivated';
          await trx
            .updateTable('national_identity')
            .set({
              ...nationalColumns(change.national),
              status: 'verified',
              status_reason: null,
              verified_at: now,
              checked_at: now,
              updated_at: now,
            })
            .where('account_id', '=', link.accountId)
            .execute();
          break;
        case 'names_mismatch': {
          type = 'rpps.link.conflict';
          outcome = 'failure';
          reviewId = await this.#openReview(trx, {
            accountId: link.accountId,
            kind: 'conflict',
            idNat: link.idNat,
            origin: link.origin,
            source: link.source,
            otherAccountId: null,
            evidence: {
              reason: 'names_mismatch',
              national: change.national,
              ownLinkBefore: snapshot(link),
            },
            now,
          });
          await trx
            .updateTable('national_identity')
            .set({
              ...nationalColumns(change.national),
              status: 'conflict',
              status_reason: 'names_mismatch',
              checked_at: now,
              updated_at: now,
            })
            .where('account_id', '=', link.accountId)
            .execute();
          break;
        }
      }
      await this.#audit.record(
        {
          type,
          outcome,
          accountId: link.accountId,
          nationalId: link.idNat,
          reason:
            outcome === 'failure'
              ? change.kind === 'inactive'
                ? change.reason
                : 'names_mismatch'
              : undefined,
          detail: {
            idNat: link.idNat,
            actor,
            reviewId,
            previous: snapshot(link),
            ...('national' in change ? { profession: change.national.professionCode } : {}),
          },
        },
        trx,
      );
    });
  }

  /**
   * Records that links were looked up and found unchanged (one statement per batch, not audited: nothing
   * changed). `reverified`: the Annuaire Santé confirmed them, so verified links count as re-verified.
   */
  async touch(accountIds: readonly string[], reverified: boolean, now = new Date()): Promise<void> {
    if (!accountIds.length) return;
    await this.#db
      .updateTable('national_identity')
      .set((eb) => ({
        checked_at: now,
        ...(reverified
          ? {
              verified_at: eb
                .case()
                .when('status', '=', 'verified')
                .then(now)
                .else(eb.ref('verified_at'))
                .end(),
            }
          : {}),
      }))
      .where('account_id', 'in', accountIds)
      .execute();
  }
}
