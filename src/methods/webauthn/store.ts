import { createHash, randomBytes, randomInt } from 'node:crypto';
import type { Kysely, Selectable } from 'kysely';
import type { Database, WebauthnCredentialTable } from '../../db/types.ts';

export interface StoredCredential {
  /** base64url credential id. */
  id: string;
  accountId: string;
  name: string;
  publicKey: Uint8Array<ArrayBuffer>;
  counter: number;
  transports: string[];
  aaguid: string;
  deviceType: 'singleDevice' | 'multiDevice';
  backedUp: boolean;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
  flaggedAt: Date | null;
  flagReason: string | null;
}

export type NewCredential = Omit<
  StoredCredential,
  'createdAt' | 'lastUsedAt' | 'revokedAt' | 'flaggedAt' | 'flagReason'
>;

function toCredential(row: Selectable<WebauthnCredentialTable>): StoredCredential {
  return {
    id: row.id,
    accountId: row.account_id,
    name: row.name,
    publicKey: new Uint8Array(row.public_key),
    counter: Number(row.counter),
    transports: row.transports,
    aaguid: row.aaguid,
    deviceType: row.device_type,
    backedUp: row.backed_up,
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
    revokedAt: row.revoked_at,
    flaggedAt: row.flagged_at,
    flagReason: row.flag_reason,
  };
}

export const MAX_KEY_NAME_LENGTH = 64;

/** The security keys of the accounts. Revoked keys stay (audit), never authenticate again. */
export class CredentialStore {
  readonly #db: Kysely<Database>;
  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async find(id: string): Promise<StoredCredential | undefined> {
    const row = await this.#db
      .selectFrom('webauthn_credential')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    return row ? toCredential(row) : undefined;
  }

  /** The account's keys, oldest first; revoked ones only when asked. */
  async listForAccount(accountId: string, options: { includeRevoked?: boolean } = {}) {
    let query = this.#db
      .selectFrom('webauthn_credential')
      .selectAll()
      .where('account_id', '=', accountId)
      .orderBy('created_at')
      .orderBy('id');
    if (!options.includeRevoked) query = query.where('revoked_at', 'is', null);
    return (await query.execute()).map(toCredential);
  }

  async countActive(accountId: string, db: Kysely<Database> = this.#db): Promise<number> {
    const row = await db
      .selectFrom('webauthn_credential')
      .select((eb) => eb.fn.countAll<string | number>().as('n'))
      .where('account_id', '=', accountId)
      .where('revoked_at', 'is', null)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async insert(credential: NewCredential, db: Kysely<Database> = this.#db): Promise<void> {
    await db
      .insertInto('webauthn_credential')
      .values({
        id: credential.id,
        account_id: credential.accountId,
        name: credential.name,
        public_key: credential.publicKey,
        counter: credential.counter,
        transports: JSON.stringify(credential.transports),
        aaguid: credential.aaguid,
        device_type: credential.deviceType,
        backed_up: credential.backedUp,
      })
      .execute();
  }

  /**
   * Records a use: the new counter must be greater than the stored one (or both zero, for keys without
   * a counter). Checked and written in one statement, so two concurrent assertions cannot both pass.
   * Returns false on a counter regression (or a key revoked meanwhile).
   */
  async recordUse(id: string, newCounter: number, backedUp: boolean): Promise<boolean> {
    const row = await this.#db
      .updateTable('webauthn_credential')
      .set({ counter: newCounter, last_used_at: new Date(), backed_up: backedUp })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .where((eb) => (newCounter === 0 ? eb('counter', '=', 0) : eb('counter', '<', newCounter)))
      .returning('id')
      .executeTakeFirst();
    return row !== undefined;
  }

  async flag(id: string, reason: string): Promise<void> {
    await this.#db
      .updateTable('webauthn_credential')
      .set({ flagged_at: new Date(), flag_reason: reason })
      .where('id', '=', id)
      .execute();
  }

  async rename(accountId: string, id: string, name: string): Promise<boolean> {
    const result = await this.#db
      .updateTable('webauthn_credential')
      .set({ name })
      .where('id', '=', id)
      .where('account_id', '=', accountId)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async revoke(accountId: string, id: string, db: Kysely<Database> = this.#db): Promise<boolean> {
    const result = await db
      .updateTable('webauthn_credential')
      .set({ revoked_at: new Date() })
      .where('id', '=', id)
      .where('account_id', '=', accountId)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }
}

export type ChallengePurpose = 'registration' | 'authentication';

export interface ConsumedChallenge {
  challenge: string;
  accountId: string | null;
}

/**
 * Server-side WebAuthn challenges: 256 random bits, bound to a purpose and a subject (the interaction or
 * the enrolling account), expiring, and consumed by a single `delete … returning` (used once at most).
 */
export class ChallengeStore {
  readonly #db: Kysely<Database>;
  readonly #ttlSeconds: number;
  constructor(db: Kysely<Database>, ttlSeconds: number) {
    this.#db = db;
    this.#ttlSeconds = ttlSeconds;
  }

  /** A new challenge, stored; returns its bytes (the options carry them base64url-encoded). */
  async create(
    purpose: ChallengePurpose,
    subject: string,
    accountId: string | null,
  ): Promise<Uint8Array<ArrayBuffer>> {
    const bytes = randomBytes(32);
    await this.#db
      .insertInto('webauthn_challenge')
      .values({
        challenge: bytes.toString('base64url'),
        purpose,
        subject,
        account_id: accountId,
        expires_at: new Date(Date.now() + this.#ttlSeconds * 1000),
      })
      .execute();
    return new Uint8Array(bytes);
  }

  /** Deletes and returns the challenge if it is live and bound to this purpose and subject. */
  async consume(
    challenge: string,
    purpose: ChallengePurpose,
    subject: string,
  ): Promise<ConsumedChallenge | undefined> {
    const row = await this.#db
      .deleteFrom('webauthn_challenge')
      .where('challenge', '=', challenge)
      .where('purpose', '=', purpose)
      .where('subject', '=', subject)
      .where('expires_at', '>', new Date())
      .returning(['challenge', 'account_id'])
      .executeTakeFirst();
    return row ? { challenge: row.challenge, accountId: row.account_id } : undefined;
  }

  async purgeExpired(): Promise<number> {
    const result = await this.#db
      .deleteFrom('webauthn_challenge')
      .where('expires_at', '<', new Date())
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}

/** Letters and digits that cannot be confused when read aloud or typed (no 0/O, 1/I/L, U/V). */
const CODE_ALPHABET = 'ABCDEFGHJKMNPQRSTWXYZ23456789';
const CODE_LENGTH = 12;

/** Normalises what a person typed: case, spaces and dashes do not matter. */
export function normaliseCode(typed: string): string {
  return typed.toUpperCase().replace(/[\s-]/g, '');
}

function hashCode(code: string): string {
  return createHash('sha256')
    .update(`passerelle-enrollment:${normaliseCode(code)}`)
    .digest('base64url');
}

export interface IssuedCode {
  /** Shown once, grouped for reading (XXXX-XXXX-XXXX). */
  code: string;
  expiresAt: Date;
}

/**
 * One-time enrollment codes given by the helpdesk: 12 characters of a 29-letter alphabet (58 bits),
 * short-lived and single use, so a SHA-256 hash is enough at rest (nothing to brute-force offline in time).
 */
export class EnrollmentCodes {
  readonly #db: Kysely<Database>;
  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async issue(accountId: string, issuedBy: string, ttlSeconds: number): Promise<IssuedCode> {
    let raw = '';
    for (let i = 0; i < CODE_LENGTH; i++) raw += CODE_ALPHABET[randomInt(CODE_ALPHABET.length)];
    const expiresAt = new Date(Date.now() + ttlSeconds * 1000);
    await this.#db
      .insertInto('enrollment_code')
      .values({ code_hash: hashCode(raw), account_id: accountId, issued_by: issuedBy, expires_at: expiresAt })
      .execute();
    return { code: raw.match(/.{4}/g)?.join('-') ?? raw, expiresAt };
  }

  /** Whether the code is live for this account (not consumed). */
  async isValid(accountId: string, code: string): Promise<boolean> {
    const row = await this.#db
      .selectFrom('enrollment_code')
      .select('code_hash')
      .where('code_hash', '=', hashCode(code))
      .where('account_id', '=', accountId)
      .where('used_at', 'is', null)
      .where('expires_at', '>', new Date())
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Marks the code used, once: false if it was already used, expired, or not this account's. */
  async consume(accountId: string, code: string, db: Kysely<Database> = this.#db): Promise<boolean> {
    const row = await db
      .updateTable('enrollment_code')
      .set({ used_at: new Date() })
      .where('code_hash', '=', hashCode(code))
      .where('account_id', '=', accountId)
      .where('used_at', 'is', null)
      .where('expires_at', '>', new Date())
      .returning('code_hash')
      .executeTakeFirst();
    return row !== undefined;
  }

  async purgeExpired(): Promise<number> {
    const result = await this.#db
      .deleteFrom('enrollment_code')
      .where('expires_at', '<', new Date(Date.now() - 30 * 24 * 3600 * 1000))
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
