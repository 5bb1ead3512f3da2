import { AsnConvert } from '@peculiar/asn1-schema';
import {
  BasicConstraints,
  Certificate,
  ExtendedKeyUsage,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_subjectAltName,
  KeyUsage,
  KeyUsageFlags,
  type Name,
  SubjectAlternativeName,
} from '@peculiar/asn1-x509';

/** X.520 attribute types found in IGC-Santé names. */
export const OID = {
  commonName: '2.5.4.3',
  surname: '2.5.4.4',
  organizationalUnit: '2.5.4.11',
  title: '2.5.4.12',
  givenName: '2.5.4.42',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  smartcardLogon: '1.3.6.1.4.1.311.20.2.2',
  emailProtection: '1.3.6.1.5.5.7.3.4',
  upn: '1.3.6.1.4.1.311.20.2.3',
} as const;

export interface NameAttribute {
  type: string;
  value: string;
}

/** The relative distinguished names of a name, in order, each with its (possibly several) attributes. */
export function nameRdns(name: Name): NameAttribute[][] {
  return name.map((rdn) => rdn.map((atv) => ({ type: atv.type, value: atv.value.toString() })));
}

/** The last value of one attribute type in a name (the most specific one). */
export function lastAttribute(name: Name, type: string): string | undefined {
  const values = nameRdns(name)
    .flat()
    .filter((a) => a.type === type);
  return values.at(-1)?.value;
}

/** The certificate fields Node's X509Certificate does not expose in a usable form. */
export interface CertificateFacts {
  asn: Certificate;
  /** Key usage bits, undefined when the extension is absent. */
  keyUsage: number | undefined;
  extendedKeyUsage: string[] | undefined;
  basicConstraints: { ca: boolean; pathLength: number | undefined } | undefined;
  /** userPrincipalName values of the subject alternative name. */
  upns: string[];
  /** Critical extensions this module does not understand (RFC 5280: the certificate must be refused). */
  unknownCritical: string[];
}

const UNDERSTOOD = new Set<string>([
  id_ce_keyUsage,
  id_ce_extKeyUsage,
  id_ce_basicConstraints,
  id_ce_subjectAltName,
  '2.5.29.32', // certificate policies (not pinned: production policy OIDs are not public)
  '2.5.29.35', // authority key identifier
  '2.5.29.14', // subject key identifier
  '2.5.29.31', // CRL distribution points
]);

function decodeUpn(value: ArrayBuffer): string | undefined {
  // [0] EXPLICIT UTF8String: the explicit tag is stripped by the OtherName schema; this is the UTF8String.
  const bytes = new Uint8Array(value);
  if (bytes[0] !== 0x0c || bytes.length < 2) return undefined;
  let offset = 2;
  let length = bytes[1] ?? 0;
  if (length & 0x80) {
    const count = length & 0x7f;
    length = 0;
    for (let i = 0; i < count; i++) length = (length << 8) | (bytes[2 + i] ?? 0);
    offset = 2 + count;
  }
  return Buffer.from(bytes.subarray(offset, offset + length)).toString('utf8');
}

export function certificateFacts(der: Uint8Array): CertificateFacts {
  const asn = AsnConvert.parse(der, Certificate);
  const facts: CertificateFacts = {
    asn,
    keyUsage: undefined,
    extendedKeyUsage: undefined,
    basicConstraints: undefined,
    upns: [],
    unknownCritical: [],
  };
  for (const ext of asn.tbsCertificate.extensions ?? []) {
    const value = ext.extnValue.buffer;
    switch (ext.extnID) {
      case id_ce_keyUsage: {
        const usage = AsnConvert.parse(value, KeyUsage);
        facts.keyUsage = usage.toNumber();
        break;
      }
      case id_ce_extKeyUsage:
        facts.extendedKeyUsage = [...AsnConvert.parse(value, ExtendedKeyUsage)];
        break;
      case id_ce_basicConstraints: {
        const bc = AsnConvert.parse(value, BasicConstraints);
        facts.basicConstraints = { ca: bc.cA, pathLength: bc.pathLenConstraint };
        break;
      }
      case id_ce_subjectAltName:
        for (const name of AsnConvert.parse(value, SubjectAlternativeName)) {
          if (name.otherName?.typeId === OID.upn) {
            const upn = decodeUpn(name.otherName.value);
            if (upn) facts.upns.push(upn);
          }
        }
        break;
      default:
        if (ext.critical && !UNDERSTOOD.has(ext.extnID)) facts.unknownCritical.push(ext.extnID);
    }
  }
  return facts;
}

export function hasKeyUsage(facts: CertificateFacts, flag: KeyUsageFlags): boolean {
  return facts.keyUsage !== undefined && (facts.keyUsage & flag) !== 0;
}

export { KeyUsageFlags };

/** Serial number as uppercase hexadecimal without leading zeros (Node's and the CRL's forms agree). */
export function normalizeSerial(hexOrBytes: string | ArrayBuffer): string {
  const hex =
    typeof hexOrBytes === 'string' ? hexOrBytes : Buffer.from(new Uint8Array(hexOrBytes)).toString('hex');
  return hex.toUpperCase().replace(/^0+(?=.)/, '');
}

/** DER of a name, to compare names exactly (issuer of a CRL and subject of a CA). */
export function nameDer(name: Name): Buffer {
  return Buffer.from(AsnConvert.serialize(name));
}

/** DER from PEM text (any label) or from DER bytes. */
export function pemBlocks(data: Buffer | string, label: RegExp): Buffer[] {
  const text = typeof data === 'string' ? data : data.toString('latin1');
  const blocks: Buffer[] = [];
  const re = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
  for (const match of text.matchAll(re)) {
    if (label.test(match[1] ?? '')) blocks.push(Buffer.from((match[2] ?? '').replace(/\s+/g, ''), 'base64'));
  }
  return blocks;
}
