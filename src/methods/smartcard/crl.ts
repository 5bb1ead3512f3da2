import { verify as verifySignature, type X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificateList } from '@peculiar/asn1-x509';
import type { Logger } from 'pino';
import { certificateFacts, nameDer, normalizeSerial, pemBlocks } from './asn1.ts';

/** A CRL whose signature was verified with the key of the CA that issued it. */
export interface LoadedCrl {
  /** SHA-256 fingerprint of the issuing CA certificate. */
  issuer: string;
  issuerSubject: string;
  thisUpdate: Date;
  nextUpdate: Date | undefined;
  revoked: ReadonlySet<string>;
  source: string;
  loadedAt: Date;
}

export type CrlState = 'fresh' | 'stale' | 'missing';

export interface CrlStatus {
  /** Subject of the CA whose CRL this is. */
  ca: string;
  state: CrlState;
  source?: string;
  thisUpdate?: string;
  nextUpdate?: string;
}

export interface CrlStoreOptions {
  /** Every CA certificate of the trust material (roots and intermediates). */
  cas: readonly X509Certificate[];
  /** CAs whose CRL is required (the ones issuing card certificates). */
  required: readonly X509Certificate[];
  files: readonly string[];
  urls: readonly string[];
  fetchTimeoutMs: number;
  logger: Logger;
  now?: () => Date;
}

const SIGNATURE_HASH: Record<string, string> = {
  '1.2.840.113549.1.1.11': 'sha256', // sha256WithRSAEncryption
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
  '1.2.840.10045.4.3.2': 'sha256', // ecdsa-with-SHA256
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
};
const DELTA_CRL_INDICATOR = '2.5.29.27';

/** The bytes of the first element inside a DER SEQUENCE (the signed part of a CRL). */
function firstElement(der: Uint8Array): Uint8Array {
  const headerLength = (at: number) => {
    const first = der[at + 1] ?? 0;
    if (!(first & 0x80)) return { header: 2, length: first };
    const count = first & 0x7f;
    let length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + (der[at + 2 + i] ?? 0);
    return { header: 2 + count, length };
  };
  const outer = headerLength(0);
  const inner = headerLength(outer.header);
  return der.subarray(outer.header, outer.header + inner.header + inner.length);
}

export class CrlError extends Error {}

/** Parses and verifies one CRL against the known CAs. */
export function parseCrl(
  der: Uint8Array,
  cas: readonly X509Certificate[],
  source: string,
  loadedAt: Date,
): LoadedCrl {
  let list: CertificateList;
  try {
    list = AsnConvert.parse(der, CertificateList);
  } catch {
    throw new CrlError('not a CRL');
  }
  const tbs = list.tbsCertList;
  if (tbs.crlExtensions?.some((e) => e.extnID === DELTA_CRL_INDICATOR)) throw new CrlError('delta CRL');
  const hash = SIGNATURE_HASH[list.signatureAlgorithm.algorithm];
  if (!hash) throw new CrlError(`unsupported signature algorithm ${list.signatureAlgorithm.algorithm}`);
  const issuerName = nameDer(tbs.issuer);
  const signed = firstElement(der);
  const signature = Buffer.from(new Uint8Array(list.signature));
  const issuer = cas.find(
    (ca) =>
      nameDer(certificateFacts(ca.raw).asn.tbsCertificate.subject).equals(issuerName) &&
      verifySignature(hash, signed, ca.publicKey, signature),
  );
  if (!issuer) throw new CrlError('not signed by a configured CA');
  return {
    issuer: issuer.fingerprint256,
    issuerSubject: issuer.subject.replaceAll('\n', ', '),
    thisUpdate: tbs.thisUpdate.getTime(),
    nextUpdate: tbs.nextUpdate?.getTime(),
    revoked: new Set((tbs.revokedCertificates ?? []).map((r) => normalizeSerial(r.userCertificate))),
    source,
    loadedAt,
  };
}

/**
 * CRLs from local files and HTTP URLs, reloaded periodically. A source that fails keeps the last good
 * CRL of its CA (its freshness still ends at its nextUpdate). Per instance, read-only: nothing to share.
 */
export class CrlStore {
  readonly #options: CrlStoreOptions;
  readonly #now: () => Date;
  /** By CA fingerprint: the newest CRL seen. */
  readonly #crls = new Map<string, LoadedCrl>();
  #lastErrors: string[] = [];

  constructor(options: CrlStoreOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => new Date());
  }

  async #read(source: string, isUrl: boolean): Promise<Buffer> {
    if (!isUrl) return readFile(source);
    const response = await fetch(source, { signal: AbortSignal.timeout(this.#options.fetchTimeoutMs) });
    if (!response.ok) throw new CrlError(`HTTP ${response.status}`);
    return Buffer.from(await response.arrayBuffer());
  }

  #accept(crl: LoadedCrl): void {
    const current = this.#crls.get(crl.issuer);
    if (!current || crl.thisUpdate.getTime() >= current.thisUpdate.getTime()) this.#crls.set(crl.issuer, crl);
  }

  /** Loads every source once; returns the problems met (also logged). */
  async refresh(): Promise<string[]> {
    const errors: string[] = [];
    const sources = [
      ...this.#options.files.map((s) => [s, false] as const),
      ...this.#options.urls.map((s) => [s, true] as const),
    ];
    await Promise.all(
      sources.map(async ([source, isUrl]) => {
        try {
          const data = await this.#read(source, isUrl);
          const blocks = pemBlocks(data, /^(X509 )?CRL$/);
          for (const der of blocks.length ? blocks : [data]) {
            this.#accept(parseCrl(der, this.#options.cas, source, this.#now()));
          }
        } catch (err) {
          errors.push(`${source}: ${(err as Error).message}`);
        }
      }),
    );
    for (const error of errors) this.#options.logger.warn({ error }, 'smartcard: CRL not loaded');
    this.#lastErrors = errors;
    return errors;
  }

  get lastErrors(): readonly string[] {
    return this.#lastErrors;
  }

  /** The CRL issued by this CA, if any was loaded. */
  find(ca: X509Certificate): LoadedCrl | undefined {
    return this.#crls.get(ca.fingerprint256);
  }

  stateOf(crl: LoadedCrl | undefined): CrlState {
    if (!crl) return 'missing';
    const now = this.#now().getTime();
    // A CRL without nextUpdate gives no freshness guarantee (RFC 5280 requires the field).
    if (!crl.nextUpdate || crl.nextUpdate.getTime() <= now || crl.thisUpdate.getTime() > now + 300_000)
      return 'stale';
    return 'fresh';
  }

  /** Freshness of the CRL of each CA that issues card certificates. */
  status(): CrlStatus[] {
    return this.#options.required.map((ca) => {
      const crl = this.find(ca);
      return {
        ca: ca.subject.replaceAll('\n', ', '),
        state: this.stateOf(crl),
        source: crl?.source,
        thisUpdate: crl?.thisUpdate.toISOString(),
        nextUpdate: crl?.nextUpdate?.toISOString(),
      };
    });
  }
}
