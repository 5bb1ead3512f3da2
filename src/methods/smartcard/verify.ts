import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { CheckResult, ReadinessCheck } from '../../http/health.ts';
import {
  type CertificateFacts,
  certificateFacts,
  hasKeyUsage,
  KeyUsageFlags,
  lastAttribute,
  OID,
  pemBlocks,
} from './asn1.ts';
import type { CrlStore } from './crl.ts';
import { type CardIdentity, cardIdentity } from './identity.ts';

/** Internal reason codes of a refused card certificate (audit trail; the user sees certificate_rejected). */
export type RejectionReason =
  | 'malformed'
  | 'untrusted_issuer'
  | 'issuer_not_accepted'
  | 'expired'
  | 'not_yet_valid'
  | 'wrong_key_usage'
  | 'unknown_critical_extension'
  | 'revoked'
  | 'crl_unavailable'
  | 'crl_stale'
  | 'no_identifier'
  | 'identifier_mismatch';

export interface VerifiedCard {
  ok: true;
  leaf: X509Certificate;
  identity: CardIdentity;
  /** SHA-256 of the DER, lowercase hex without separators. */
  fingerprint: string;
  serial: string;
  issuer: string;
  /** Leaf first, trust anchor last. */
  chain: X509Certificate[];
  /** Revocation not checked because of `whenUnavailable: allow` (logged by the caller). */
  revocationUnchecked: string[];
}

export type VerificationResult = VerifiedCard | { ok: false; reason: RejectionReason; detail?: string };

export interface VerifierOptions {
  anchors: readonly X509Certificate[];
  intermediates: readonly X509Certificate[];
  /** Issuer CNs accepted for card certificates (exact, or a trailing part such as `FORT PERSONNES`). */
  acceptedIssuers?: readonly string[];
  crls: CrlStore;
  whenUnavailable: 'refuse' | 'allow';
  identifierPattern: RegExp;
  now?: () => Date;
}

const MAX_CHAIN = 6;

/** Every certificate of a list of PEM files (several per file allowed). */
export function readCertificates(files: readonly string[]): X509Certificate[] {
  return files.flatMap((file) => {
    const blocks = pemBlocks(readFileSync(file), /^CERTIFICATE$/);
    if (!blocks.length) throw new Error(`${file}: no PEM certificate found`);
    return blocks.map((der) => new X509Certificate(der));
  });
}

export function fingerprintOf(cert: X509Certificate): string {
  return cert.fingerprint256.replaceAll(':', '').toLowerCase();
}

function oneLine(dn: string): string {
  return dn.replaceAll('\n', ', ');
}

/** Issuer CN matching for `acceptedIssuers`: the whole CN or its trailing words. */
export function issuerAccepted(
  issuerCn: string | undefined,
  accepted: readonly string[] | undefined,
): boolean {
  if (!accepted) return true;
  const cn = (issuerCn ?? '').toUpperCase();
  return accepted.some((entry) => {
    const wanted = entry.trim().toUpperCase();
    return cn === wanted || cn.endsWith(` ${wanted}`);
  });
}

/**
 * Verification of a CPx authentication certificate: path to a configured IGC-Santé anchor, dates, CA
 * constraints, usage (authentication, not signature), revocation by CRL, then the national identifier.
 */
export class CardVerifier {
  readonly #options: VerifierOptions;
  readonly #now: () => Date;

  constructor(options: VerifierOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => new Date());
  }

  /** CAs whose CRLs must be loaded: the non-root CAs allowed to issue card certificates. */
  static issuingCas(
    anchors: readonly X509Certificate[],
    intermediates: readonly X509Certificate[],
    acceptedIssuers: readonly string[] | undefined,
  ): X509Certificate[] {
    return [...intermediates, ...anchors.filter((a) => !a.checkIssued(a))].filter((ca) =>
      issuerAccepted(
        lastAttribute(certificateFacts(ca.raw).asn.tbsCertificate.subject, OID.commonName),
        acceptedIssuers,
      ),
    );
  }

  /** Builds the path from the leaf to an anchor, using configured intermediates and those the peer sent. */
  #path(leaf: X509Certificate, presented: readonly X509Certificate[]): X509Certificate[] | undefined {
    const anchors = this.#options.anchors;
    const candidates = [...this.#options.intermediates, ...presented];
    const path = [leaf];
    let current = leaf;
    while (path.length < MAX_CHAIN) {
      const issuedBy = (ca: X509Certificate) =>
        ca.ca && current.checkIssued(ca) && current.verify(ca.publicKey) && !path.includes(ca);
      const anchor = anchors.find(issuedBy);
      if (anchor) return [...path, anchor];
      const next = candidates.find((c) => c.fingerprint256 !== current.fingerprint256 && issuedBy(c));
      if (!next) return undefined;
      path.push(next);
      current = next;
    }
    return undefined;
  }

  verify(chainDer: readonly Buffer[]): VerificationResult {
    const [leafDer, ...rest] = chainDer;
    if (!leafDer) return { ok: false, reason: 'malformed' };
    let leaf: X509Certificate;
    let leafFacts: CertificateFacts;
    const presented: X509Certificate[] = [];
    try {
      leaf = new X509Certificate(leafDer);
      leafFacts = certificateFacts(leafDer);
      for (const der of rest) presented.push(new X509Certificate(der));
    } catch {
      return { ok: false, reason: 'malformed' };
    }
    if (leaf.ca || leafFacts.basicConstraints?.ca)
      return { ok: false, reason: 'wrong_key_usage', detail: 'CA certificate' };

    const path = this.#path(leaf, presented);
    if (!path) return { ok: false, reason: 'untrusted_issuer', detail: oneLine(leaf.issuer) };

    const now = this.#now().getTime();
    for (const cert of path) {
      if (cert.validFromDate.getTime() > now)
        return { ok: false, reason: 'not_yet_valid', detail: oneLine(cert.subject) };
      if (cert.validToDate.getTime() < now)
        return { ok: false, reason: 'expired', detail: oneLine(cert.subject) };
    }

    // CA constraints: keyCertSign when key usage is present, and path length.
    for (const [index, ca] of path.slice(1).entries()) {
      const facts = certificateFacts(ca.raw);
      if (facts.keyUsage !== undefined && !hasKeyUsage(facts, KeyUsageFlags.keyCertSign))
        return { ok: false, reason: 'untrusted_issuer', detail: `${oneLine(ca.subject)}: no keyCertSign` };
      const limit = facts.basicConstraints?.pathLength;
      if (limit !== undefined && index > limit)
        return { ok: false, reason: 'untrusted_issuer', detail: `${oneLine(ca.subject)}: path length` };
    }

    const issuerCn = lastAttribute(leafFacts.asn.tbsCertificate.issuer, OID.commonName);
    if (!issuerAccepted(issuerCn, this.#options.acceptedIssuers))
      return { ok: false, reason: 'issuer_not_accepted', detail: issuerCn };

    // An authentication certificate: digitalSignature and clientAuth. The signature certificate of the
    // card (nonRepudiation, emailProtection) is refused.
    if (!hasKeyUsage(leafFacts, KeyUsageFlags.digitalSignature))
      return { ok: false, reason: 'wrong_key_usage', detail: 'no digitalSignature' };
    if (!leafFacts.extendedKeyUsage?.includes(OID.clientAuth))
      return { ok: false, reason: 'wrong_key_usage', detail: 'no clientAuth' };
    if (leafFacts.unknownCritical.length)
      return { ok: false, reason: 'unknown_critical_extension', detail: leafFacts.unknownCritical.join(' ') };

    // Revocation of every certificate below the anchor: the CRL of its issuer is required for the
    // leaf; for an intermediate, the root's CRL (ARL) is used when it was configured.
    const revocationUnchecked: string[] = [];
    const crls = this.#options.crls;
    for (const [index, cert] of path.slice(0, -1).entries()) {
      const issuer = path[index + 1] as X509Certificate;
      const crl = crls.find(issuer);
      const state = crls.stateOf(crl);
      if (crl?.revoked.has(cert.serialNumber.toUpperCase().replace(/^0+(?=.)/, '')))
        return { ok: false, reason: 'revoked', detail: oneLine(cert.subject) };
      if (state === 'fresh' || (state === 'missing' && index > 0)) continue;
      if (this.#options.whenUnavailable === 'allow') {
        revocationUnchecked.push(`${oneLine(issuer.subject)}: CRL ${state}`);
        continue;
      }
      return {
        ok: false,
        reason: state === 'missing' ? 'crl_unavailable' : 'crl_stale',
        detail: oneLine(issuer.subject),
      };
    }

    const identity = cardIdentity(leafFacts, this.#options.identifierPattern);
    if (!identity.ok) return { ok: false, reason: identity.reason, detail: oneLine(leaf.subject) };
    return {
      ok: true,
      leaf,
      identity: identity.identity,
      fingerprint: fingerprintOf(leaf),
      serial: leaf.serialNumber,
      issuer: oneLine(leaf.issuer),
      chain: path,
      revocationUnchecked,
    };
  }
}

/** /readyz: the CRL of every CA issuing cards is loaded and within its nextUpdate. */
export function crlReadinessCheck(crls: CrlStore, whenUnavailable: 'refuse' | 'allow'): ReadinessCheck {
  return {
    name: 'smartcard_crl',
    async run(): Promise<CheckResult> {
      const problems = crls
        .status()
        .filter((s) => s.state !== 'fresh')
        .map((s) => `${s.ca}: ${s.state}`);
      if (!problems.length) return { ok: true };
      // With `allow`, logins go on without revocation checking: reported, but not "not ready".
      return { ok: whenUnavailable === 'allow', detail: problems.join('; ') };
    },
  };
}
