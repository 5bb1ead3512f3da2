import type { Name } from '@peculiar/asn1-x509';
import { type CertificateFacts, lastAttribute, nameRdns, OID } from './asn1.ts';

export { DEFAULT_IDNAT_PATTERN } from '../../config/schema.ts';

/** Card families, from the intermediate CA that issued the certificate. */
export type CardFamily = 'CPS' | 'CPE' | 'ELEMENTAIRE' | 'other';

export interface CardIdentity {
  idNat: string;
  /** The RPPS number when idNat is `8` + RPPS. */
  rpps: string | undefined;
  family: CardFamily;
  givenName: string | undefined;
  surname: string | undefined;
  /** Profession (CPS) or function (CPE) as written in the subject `title`. */
  title: string | undefined;
  /** userPrincipalName on carte-cps.fr, if any (cross-check only). */
  upn: string | undefined;
  issuerCommonName: string | undefined;
}

export type IdentityResult =
  | { ok: true; identity: CardIdentity }
  | { ok: false; reason: 'no_identifier' | 'identifier_mismatch' };

export function cardFamily(issuerCommonName: string | undefined): CardFamily {
  const cn = (issuerCommonName ?? '').toUpperCase();
  if (cn.includes('FORT PERSONNES')) return 'CPS';
  if (cn.includes('STANDARD PERSONNES')) return 'CPE';
  if (cn.includes('ELEMENTAIRE PERSONNES')) return 'ELEMENTAIRE';
  return 'other';
}

/**
 * The identifier of a UPN on carte-cps.fr: ANS writes it with or without a dot after the type digit
 * (`8.99700434378@carte-cps.fr` and `899700434378@carte-cps.fr`). Undefined for other domains.
 */
export function upnIdentifier(upn: string): string | undefined {
  const at = upn.lastIndexOf('@');
  if (at < 1 || upn.slice(at + 1).toLowerCase() !== 'carte-cps.fr') return undefined;
  const local = upn.slice(0, at);
  return /^\d\./.test(local) ? `${local[0]}${local.slice(2)}` : local;
}

/** The CN of the last RDN (multi-valued GN + CN + SN on CPx cards), else the last CN of the subject. */
function subjectIdentifier(subject: Name): string | undefined {
  const last = nameRdns(subject).at(-1) ?? [];
  return last.find((a) => a.type === OID.commonName)?.value ?? lastAttribute(subject, OID.commonName);
}

/** Reads the national identifier of a verified card certificate; the UPN only confirms it. */
export function cardIdentity(facts: CertificateFacts, pattern: RegExp): IdentityResult {
  const subject = facts.asn.tbsCertificate.subject;
  const idNat = subjectIdentifier(subject)?.trim();
  if (!idNat || !pattern.test(idNat)) return { ok: false, reason: 'no_identifier' };
  const upn = facts.upns.find((u) => upnIdentifier(u) !== undefined);
  if (upn && upnIdentifier(upn) !== idNat) return { ok: false, reason: 'identifier_mismatch' };
  const issuerCommonName = lastAttribute(facts.asn.tbsCertificate.issuer, OID.commonName);
  return {
    ok: true,
    identity: {
      idNat,
      rpps: /^8\d{11}$/.test(idNat) ? idNat.slice(1) : undefined,
      family: cardFamily(issuerCommonName),
      givenName: lastAttribute(subject, OID.givenName),
      surname: lastAttribute(subject, OID.surname),
      title: lastAttribute(subject, OID.title),
      upn,
      issuerCommonName,
    },
  };
}
