// A test PKI mimicking IGC-Santé (ANS): roots → PERSONNES intermediates → CPx card certificates.
// Generated in memory at each run; nothing is committed.
import 'reflect-metadata';
import { X509Certificate as NodeCertificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';

const RSA: RsaHashedKeyGenParams = {
  name: 'RSASSA-PKCS1-v1_5',
  hash: 'SHA-256',
  publicExponent: new Uint8Array([1, 0, 1]),
  modulusLength: 2048,
};
const DAY = 86_400_000;

export const OIDS = {
  C: '2.5.4.6',
  ST: '2.5.4.8',
  O: '2.5.4.10',
  OU: '2.5.4.11',
  CN: '2.5.4.3',
  title: '2.5.4.12',
  GN: '2.5.4.42',
  SN: '2.5.4.4',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  smartcardLogon: '1.3.6.1.4.1.311.20.2.2',
  emailProtection: '1.3.6.1.5.5.7.3.4',
} as const;

type JsonName = x509.JsonName;

/** IGC-Santé CA names: C=FR, O=ASIP-SANTE, OU=0002 187512751, OU=IGC-SANTE TEST, CN=… */
export function igcSanteName(cn: string): JsonName {
  return [
    { [OIDS.C]: ['FR'] },
    { [OIDS.O]: ['ASIP-SANTE'] },
    { [OIDS.OU]: ['0002 187512751'] },
    { [OIDS.OU]: ['IGC-SANTE TEST'] },
    { [OIDS.CN]: [cn] },
  ];
}

/** A professional's subject: C=FR, title=…, then the multi-valued RDN GN + CN (idNat) + SN. */
export function cpsSubject(title: string, givenName: string, idNat: string, surname: string): JsonName {
  return [
    { [OIDS.C]: ['FR'] },
    { [OIDS.title]: [title] },
    { [OIDS.GN]: [givenName], [OIDS.CN]: [idNat], [OIDS.SN]: [surname] },
  ];
}

export interface Ca {
  name: string;
  cert: x509.X509Certificate;
  keys: CryptoKeyPair;
  pem: string;
}

export interface Card {
  label: string;
  cert: x509.X509Certificate;
  pem: string;
  keyPem: string;
  der: Buffer;
  /** Serial as Node prints it (uppercase hex). */
  serial: string;
  /** SHA-256 fingerprint, lowercase hex. */
  fingerprint: string;
}

function pem(label: string, der: ArrayBuffer | Uint8Array): string {
  const b64 = Buffer.from(der as ArrayBuffer).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END ${label}-----\n`;
}

async function newKeys(): Promise<CryptoKeyPair> {
  return (await crypto.subtle.generateKey(RSA, true, ['sign', 'verify'])) as CryptoKeyPair;
}

let serialCounter = 0x1000;
function nextSerial(): string {
  serialCounter += 1;
  return `0${(Date.now() % 1e9).toString(16)}${serialCounter.toString(16)}`;
}

async function makeCa(cn: string, parent: Ca | undefined, options: { name?: JsonName } = {}): Promise<Ca> {
  const keys = await newKeys();
  const name = options.name ?? igcSanteName(cn);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: nextSerial(),
    subject: name,
    issuer: parent ? parent.cert.subjectName : name,
    notBefore: new Date(now - 365 * DAY),
    notAfter: new Date(now + 10 * 365 * DAY),
    publicKey: keys.publicKey,
    signingKey: (parent?.keys ?? keys).privateKey,
    signingAlgorithm: RSA,
    extensions: [
      new x509.BasicConstraintsExtension(true, parent ? 0 : undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { name: cn, cert, keys, pem: cert.toString('pem') };
}

export interface CardOptions {
  subject: JsonName;
  keyUsage?: number;
  eku?: string[];
  upn?: string;
  notBefore?: Date;
  notAfter?: Date;
  crlUrl?: string;
  dnsName?: string;
  ip?: string;
}

export async function issue(ca: Ca, label: string, options: CardOptions): Promise<Card> {
  const keys = await newKeys();
  const now = Date.now();
  const names: x509.JsonGeneralNames = [];
  if (options.upn) names.push({ type: 'upn', value: options.upn });
  if (options.dnsName) names.push({ type: 'dns', value: options.dnsName });
  if (options.ip) names.push({ type: 'ip', value: options.ip });
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, false),
    new x509.KeyUsagesExtension(options.keyUsage ?? x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension(options.eku ?? [OIDS.clientAuth, OIDS.smartcardLogon], false),
    await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey),
  ];
  if (names.length) extensions.push(new x509.SubjectAlternativeNameExtension(names, false));
  if (options.crlUrl) extensions.push(new x509.CRLDistributionPointsExtension([options.crlUrl]));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: nextSerial(),
    subject: options.subject,
    issuer: ca.cert.subjectName,
    notBefore: options.notBefore ?? new Date(now - DAY),
    notAfter: options.notAfter ?? new Date(now + 3 * 365 * DAY),
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm: RSA,
    extensions,
  });
  const der = Buffer.from(cert.rawData);
  const node = new NodeCertificate(der);
  const pkcs8 = await crypto.subtle.exportKey('pkcs8', keys.privateKey);
  return {
    label,
    cert,
    pem: cert.toString('pem'),
    keyPem: pem('PRIVATE KEY', pkcs8),
    der,
    serial: node.serialNumber,
    fingerprint: node.fingerprint256.replaceAll(':', '').toLowerCase(),
  };
}

export interface CrlOptions {
  revoked?: Card[];
  thisUpdate?: Date;
  nextUpdate?: Date | null;
}

/** A CRL signed by the CA, PEM with the `X509 CRL` label (the one nginx and OpenSSL read). */
export async function crlOf(ca: Ca, options: CrlOptions = {}): Promise<string> {
  const now = Date.now();
  const crl = await x509.X509CrlGenerator.create({
    issuer: ca.cert.subjectName,
    thisUpdate: options.thisUpdate ?? new Date(now - 3600_000),
    nextUpdate: options.nextUpdate === null ? undefined : (options.nextUpdate ?? new Date(now + 7 * DAY)),
    entries: (options.revoked ?? []).map((card) => ({
      serialNumber: card.cert.serialNumber,
      revocationDate: new Date(now - 2 * 3600_000),
      reason: x509.X509CrlReason.keyCompromise,
    })),
    signingKey: ca.keys.privateKey,
    signingAlgorithm: RSA,
  });
  return pem('X509 CRL', crl.rawData);
}

export const CRL_URL = {
  fort: 'http://igc-sante.esante.gouv.fr/CRL/ACI-FO-PP-TEST.crl',
  standard: 'http://igc-sante.esante.gouv.fr/CRL/ACI-ST-PP-TEST.crl',
};

export const IDNAT = {
  cps: '899700075064',
  cpsDotted: '899700434378',
  cpe: '30B0057881/CPET0002',
} as const;

/** The whole test PKI, with one card per case, and files for the configuration. */
export interface IgcSantePki {
  rootFort: Ca;
  rootStandard: Ca;
  fort: Ca;
  standard: Ca;
  foreignRoot: Ca;
  /** CA of the TLS server certificate of the card listener and of nginx. */
  serverCa: Ca;
  cards: Record<
    | 'cps'
    | 'cpsDottedUpn'
    | 'signature'
    | 'wrongEku'
    | 'cpe'
    | 'expired'
    | 'notYetValid'
    | 'revoked'
    | 'foreign'
    | 'noIdentifier'
    | 'upnMismatch',
    Card
  >;
  server: Card;
  dir: string;
  files: {
    rootFort: string;
    rootStandard: string;
    fort: string;
    standard: string;
    /** Both intermediates in one PEM file. */
    intermediates: string;
    /** Both roots and intermediates (nginx ssl_client_certificate). */
    chain: string;
    crlFort: string;
    crlStandard: string;
    crlRootFort: string;
    crlRootStandard: string;
    serverCert: string;
    serverKey: string;
    serverCa: string;
  };
  /** Writes a CRL of this CA to a file of the PKI directory (replacing it) and returns the path. */
  writeCrl(ca: Ca, file: string, options?: CrlOptions): Promise<string>;
  remove(): void;
}

export async function createIgcSantePki(): Promise<IgcSantePki> {
  const rootFort = await makeCa('TEST AC RACINE IGC-SANTE FORT', undefined);
  const rootStandard = await makeCa('TEST AC RACINE IGC-SANTE STANDARD', undefined);
  const fort = await makeCa('TEST AC IGC-SANTE FORT PERSONNES', rootFort);
  const standard = await makeCa('TEST AC IGC-SANTE STANDARD PERSONNES', rootStandard);
  const foreignRoot = await makeCa('AC FOREIGN CARDS', undefined, {
    name: [{ [OIDS.C]: ['FR'] }, { [OIDS.O]: ['AUTRE PKI'] }, { [OIDS.CN]: ['AC FOREIGN CARDS'] }],
  });
  const serverCa = await makeCa('TEST AC SERVEURS', undefined, {
    name: [{ [OIDS.C]: ['FR'] }, { [OIDS.O]: ['HOPITAL TEST'] }, { [OIDS.CN]: ['TEST AC SERVEURS'] }],
  });
  const now = Date.now();
  const cps = (label: string, extra: Partial<CardOptions> = {}, idNat: string = IDNAT.cps) =>
    issue(fort, label, {
      subject: cpsSubject('Sage-Femme', 'CECILE', idNat, 'SAGECH0007506'),
      upn: `${idNat}@carte-cps.fr`,
      crlUrl: CRL_URL.fort,
      ...extra,
    });
  const cards: IgcSantePki['cards'] = {
    cps: await cps('cps'),
    cpsDottedUpn: await issue(fort, 'cpsDottedUpn', {
      subject: cpsSubject('Medecin', 'PAUL', IDNAT.cpsDotted, 'MEDECIN0043437'),
      upn: '8.99700434378@CARTE-CPS.FR',
      crlUrl: CRL_URL.fort,
    }),
    signature: await cps('signature', {
      keyUsage: x509.KeyUsageFlags.nonRepudiation,
      eku: [OIDS.emailProtection],
    }),
    wrongEku: await cps('wrongEku', { eku: [OIDS.emailProtection] }),
    cpe: await issue(standard, 'cpe', {
      subject: [
        { [OIDS.C]: ['FR'] },
        { [OIDS.ST]: ['Paris (75)'] },
        { [OIDS.O]: ['HOPITAL DES 3 DAMES'] },
        { [OIDS.OU]: ['10B0057881'] },
        { [OIDS.title]: ['Personnel santé ou social'] },
        { [OIDS.GN]: ['CHARLES'], [OIDS.CN]: [IDNAT.cpe], [OIDS.SN]: ['ADMINISTRATIF-CH057880002'] },
      ],
      crlUrl: CRL_URL.standard,
    }),
    expired: await cps('expired', { notBefore: new Date(now - 700 * DAY), notAfter: new Date(now - DAY) }),
    notYetValid: await cps('notYetValid', { notBefore: new Date(now + DAY) }),
    revoked: await cps('revoked'),
    foreign: await issue(foreignRoot, 'foreign', {
      subject: cpsSubject('Sage-Femme', 'CECILE', IDNAT.cps, 'SAGECH0007506'),
      upn: `${IDNAT.cps}@carte-cps.fr`,
    }),
    noIdentifier: await cps('noIdentifier', { upn: undefined }, 'PAS-UN-IDNAT'),
    upnMismatch: await cps('upnMismatch', { upn: '899700099999@carte-cps.fr' }, '899700075065'),
  };
  const server = await issue(serverCa, 'server', {
    subject: [{ [OIDS.CN]: ['carte.passerelle.test'] }],
    keyUsage: x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
    eku: ['1.3.6.1.5.5.7.3.1'],
    dnsName: 'localhost',
    ip: '127.0.0.1',
  });

  const dir = mkdtempSync(join(tmpdir(), 'passerelle-igc-'));
  const write = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  const writeCrl = async (ca: Ca, file: string, options?: CrlOptions) =>
    write(file, await crlOf(ca, options));
  const files: IgcSantePki['files'] = {
    rootFort: write('root-fort.pem', rootFort.pem),
    rootStandard: write('root-standard.pem', rootStandard.pem),
    fort: write('fort-personnes.pem', fort.pem),
    standard: write('standard-personnes.pem', standard.pem),
    intermediates: write('intermediates.pem', fort.pem + standard.pem),
    chain: write('chain.pem', rootFort.pem + rootStandard.pem + fort.pem + standard.pem),
    crlFort: await writeCrl(fort, 'ACI-FO-PP-TEST.crl', { revoked: [cards.revoked] }),
    crlStandard: await writeCrl(standard, 'ACI-ST-PP-TEST.crl'),
    crlRootFort: await writeCrl(rootFort, 'ACR-FO-TEST.crl'),
    crlRootStandard: await writeCrl(rootStandard, 'ACR-ST-TEST.crl'),
    serverCert: write('server.pem', server.pem),
    serverKey: write('server.key', server.keyPem),
    serverCa: write('server-ca.pem', serverCa.pem),
  };
  return {
    rootFort,
    rootStandard,
    fort,
    standard,
    foreignRoot,
    serverCa,
    cards,
    server,
    dir,
    files,
    writeCrl,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
