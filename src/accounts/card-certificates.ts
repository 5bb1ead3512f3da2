import type { X509Certificate } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../db/types.ts';

export interface CardCertificate {
  fingerprint: string;
  accountId: string;
  subject: string;
  notAfter: Date;
  createdAt: Date;
}

export class CertificateTakenError extends Error {
  constructor(fingerprint: string) {
    super(`certificate ${fingerprint} is already registered for another account`);
    this.name = 'CertificateTakenError';
  }
}

/** SHA-256 of the DER, lowercase hex without separators. */
export function certificateFingerprint(cert: X509Certificate): string {
  return cert.fingerprint256.replaceAll(':', '').toLowerCase();
}

/** Card certificates registered for accounts by an administrator (login mapping by fingerprint). */
export class CardCertificates {
  readonly #db: Kysely<Database>;
  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  /** Registers the certificate for the account; returns false when it already was. */
  async register(accountId: string, cert: X509Certificate): Promise<boolean> {
    const fingerprint = certificateFingerprint(cert);
    const inserted = await this.#db
      .insertInto('smartcard_certificate')
      .values({
        fingerprint,
        account_id: accountId,
        subject: cert.subject.replaceAll('\n', ', '),
        not_after: cert.validToDate,
      })
      .onConflict((oc) => oc.column('fingerprint').doNothing())
      .returning('account_id')
      .executeTakeFirst();
    if (inserted) return true;
    if ((await this.findAccount(fingerprint)) !== accountId) throw new CertificateTakenError(fingerprint);
    return false;
  }

  async findAccount(fingerprint: string): Promise<string | undefined> {
    const row = await this.#db
      .selectFrom('smartcard_certificate')
      .select('account_id')
      .where('fingerprint', '=', fingerprint)
      .executeTakeFirst();
    return row?.account_id;
  }

  async list(accountId: string): Promise<CardCertificate[]> {
    const rows = await this.#db
      .selectFrom('smartcard_certificate')
      .selectAll()
      .where('account_id', '=', accountId)
      .orderBy('created_at')
      .execute();
    return rows.map((r) => ({
      fingerprint: r.fingerprint,
      accountId: r.account_id,
      subject: r.subject,
      notAfter: r.not_after,
      createdAt: r.created_at,
    }));
  }

  async remove(accountId: string, fingerprint: string): Promise<boolean> {
    const result = await this.#db
      .deleteFrom('smartcard_certificate')
      .where('account_id', '=', accountId)
      .where('fingerprint', '=', fingerprint.replaceAll(':', '').toLowerCase())
      .executeTakeFirst();
    return result.numDeletedRows > 0n;
  }
}
