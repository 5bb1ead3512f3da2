import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LDAP_DEFAULT_FILTERS, type LdapConfig } from '../../src/config/schema.ts';
import { type Daemon, samePortAgain, startDaemon, withPorts } from './net.ts';

export const SLAPD = '/usr/sbin/slapd';
const SLAPADD = '/usr/sbin/slapadd';
const SCHEMA_DIR = '/etc/ldap/schema';
const MODULE_DIR = '/usr/lib/ldap';

/**
 * Whether the OpenLDAP tests can run. With CI=true a missing slapd fails the suite (the caller throws);
 * otherwise the tests are skipped with a message.
 */
export function slapdAvailable(): boolean {
  const present =
    existsSync(SLAPD) && existsSync(SLAPADD) && existsSync(join(SCHEMA_DIR, 'inetorgperson.schema'));
  if (!present && process.env.CI === 'true') {
    throw new Error(
      `CI=true but OpenLDAP is missing (${SLAPD}): install the Debian packages slapd and ldap-utils`,
    );
  }
  if (!present)
    console.warn(`skipping OpenLDAP tests: ${SLAPD} not installed (Debian packages slapd, ldap-utils)`);
  return present;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

export interface TestPki {
  caFile: string;
  caPem: Buffer;
  certFile: string;
  keyFile: string;
}

/** A test CA and a server certificate for 127.0.0.1 / localhost, made with the openssl command. */
export function makePki(dir: string, name: string): TestPki {
  const ca = `${name}-ca`;
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=Passerelle test CA ${name}`,
      '-keyout',
      `${ca}.key`,
      '-out',
      `${ca}.pem`,
    ],
    dir,
  );
  writeFileSync(
    join(dir, `${name}.ext`),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n',
  );
  openssl(
    [
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-subj',
      '/CN=localhost',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
    ],
    dir,
  );
  openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${ca}.pem`,
      '-CAkey',
      `${ca}.key`,
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.pem`,
    ],
    dir,
  );
  return {
    caFile: join(dir, `${ca}.pem`),
    caPem: readFileSync(join(dir, `${ca}.pem`)),
    certFile: join(dir, `${name}.pem`),
    keyFile: join(dir, `${name}.key`),
  };
}

/** {SSHA} as slapd stores it. */
export function ssha(password: string): string {
  const salt = randomBytes(8);
  const digest = createHash('sha1').update(password).update(salt).digest();
  return `{SSHA}${Buffer.concat([digest, salt]).toString('base64')}`;
}

export const BASE_DN = 'dc=passerelle,dc=test';
export const PEOPLE_DN = `ou=people,${BASE_DN}`;
export const GROUPS_DN = `ou=groups,${BASE_DN}`;
export const SERVICE_DN = `cn=passerelle,ou=services,${BASE_DN}`;
export const ROOT_DN = `cn=admin,${BASE_DN}`;
/** Password of every generated userNNNN entry. */
export const GENERATED_PASSWORD = 'Generated-pw-1';
/** The server's size limit for ordinary searches: listing every user needs paged results. */
export const SIZE_LIMIT = 500;

export interface NamedUser {
  uid: string;
  password: string;
  givenName: string;
  sn: string;
  mail?: string;
  idNat?: string;
  /** Under ou=people unless given. */
  ou?: string;
}

/** Named directory users of the LDAP tests (besides the generated ones). */
export const DIRECTORY_USERS: NamedUser[] = [
  {
    uid: 'alice',
    password: 'Alice-pw-1',
    givenName: 'Alice',
    sn: 'Martin',
    mail: 'alice@chu.test',
    idNat: '810001',
  },
  { uid: 'bob', password: 'Bob-pw-1', givenName: 'Bob', sn: 'Durand' },
  { uid: 'carol', password: 'Carol-pw-1', givenName: 'Carol', sn: 'Petit' },
  { uid: 'dave', password: 'Dave-pw-1', givenName: 'Dave', sn: 'Roux' },
  { uid: 'erin', password: 'Erin-pw-1', givenName: 'Erin', sn: 'Blanc' },
];
/** The password of one of DIRECTORY_USERS. */
export const pw = (uid: string) => DIRECTORY_USERS.find((u) => u.uid === uid)?.password ?? '';

export interface Slapd {
  url: string;
  ldapsUrl: string;
  /** The test CA that issued the server certificate. */
  pki: TestPki;
  /** Another CA, which did not. */
  otherCa: TestPki;
  servicePassword: string;
  rootPassword: string;
  generatedUsers: number;
  dir: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

function ldifEntry(dn: string, attrs: Record<string, string | string[]>): string {
  const lines = [`dn: ${dn}`];
  for (const [name, value] of Object.entries(attrs)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      // base64 for values LDIF cannot carry as is.
      if (/^[\x20-\x7e]*$/.test(v) && !/^[ :<]/.test(v) && !/ $/.test(v)) lines.push(`${name}: ${v}`);
      else lines.push(`${name}:: ${Buffer.from(v, 'utf8').toString('base64')}`);
    }
  }
  return `${lines.join('\n')}\n\n`;
}

export interface SlapdOptions {
  generatedUsers?: number;
  users?: NamedUser[];
  /** Groups: name → member uids (under ou=people). */
  groups?: Record<string, string[]>;
  /** [ldap, ldaps] ports to try before free ones (see `withPorts`). */
  tryPortsFirst?: number[][];
}

/**
 * A real OpenLDAP slapd in a temporary directory: mdb backend, generated slapd.conf, LDAP with StartTLS
 * and LDAPS on ports it reports, a test CA, a low size limit, and a few thousand entries loaded with slapadd.
 */
export async function startSlapd(options: SlapdOptions = {}): Promise<Slapd> {
  const dir = mkdtempSync(join(tmpdir(), 'passerelle-slapd-'));
  const generatedUsers = options.generatedUsers ?? 3000;
  const pki = makePki(dir, 'server');
  const otherCa = makePki(dir, 'other');
  const servicePassword = randomBytes(12).toString('hex');
  const rootPassword = randomBytes(12).toString('hex');
  const dataDir = join(dir, 'data');
  execFileSync('mkdir', ['-p', dataDir]);

  const conf = `
include ${SCHEMA_DIR}/core.schema
include ${SCHEMA_DIR}/cosine.schema
include ${SCHEMA_DIR}/nis.schema
include ${SCHEMA_DIR}/inetorgperson.schema
modulepath ${MODULE_DIR}
moduleload back_mdb
pidfile ${dir}/slapd.pid
argsfile ${dir}/slapd.args
TLSCACertificateFile ${pki.caFile}
TLSCertificateFile ${pki.certFile}
TLSCertificateKeyFile ${pki.keyFile}
# Like permissive directories: an unauthenticated bind (DN, empty password) succeeds (RFC 4513 §5.1.2).
allow bind_anon_dn
sizelimit size.soft=${SIZE_LIMIT} size.hard=${SIZE_LIMIT} size.prtotal=unlimited
access to dn.base="" by * read
access to dn.base="cn=Subschema" by * read
access to attrs=userPassword by anonymous auth by self =xw by * none
access to * by dn.exact="${SERVICE_DN}" read by self read by * none

database mdb
maxsize 268435456
suffix "${BASE_DN}"
rootdn "${ROOT_DN}"
rootpw ${rootPassword}
directory ${dataDir}
index objectClass eq
index uid,cn,mail eq,sub
index member,uniqueMember eq
index entryUUID eq
`;
  const confFile = join(dir, 'slapd.conf');
  writeFileSync(confFile, conf);

  let ldif = '';
  ldif += ldifEntry(BASE_DN, {
    objectClass: ['dcObject', 'organization'],
    dc: 'passerelle',
    o: 'Passerelle test',
  });
  for (const ou of ['people', 'groups', 'services', 'moved'])
    ldif += ldifEntry(`ou=${ou},${BASE_DN}`, { objectClass: 'organizationalUnit', ou });
  ldif += ldifEntry(SERVICE_DN, {
    objectClass: ['organizationalRole', 'simpleSecurityObject'],
    cn: 'passerelle',
    userPassword: ssha(servicePassword),
  });
  const genHash = ssha(GENERATED_PASSWORD);
  for (let i = 1; i <= generatedUsers; i++) {
    const uid = `user${String(i).padStart(4, '0')}`;
    ldif += ldifEntry(`uid=${uid},${PEOPLE_DN}`, {
      objectClass: 'inetOrgPerson',
      uid,
      cn: `User ${i}`,
      sn: `Number${i}`,
      givenName: 'User',
      mail: `${uid}@passerelle.test`,
      userPassword: genHash,
    });
  }
  for (const u of options.users ?? []) {
    const parent = u.ou ? `ou=${u.ou},${BASE_DN}` : PEOPLE_DN;
    const attrs: Record<string, string | string[]> = {
      objectClass: 'inetOrgPerson',
      uid: u.uid,
      cn: `${u.givenName} ${u.sn}`,
      sn: u.sn,
      givenName: u.givenName,
      displayName: `${u.givenName} ${u.sn}`,
      userPassword: ssha(u.password),
    };
    if (u.mail) attrs.mail = u.mail;
    if (u.idNat) attrs.employeeNumber = u.idNat;
    ldif += ldifEntry(`uid=${escapeRdn(u.uid)},${parent}`, attrs);
  }
  for (const [name, members] of Object.entries(options.groups ?? {})) {
    ldif += ldifEntry(`cn=${name},${GROUPS_DN}`, {
      objectClass: 'groupOfNames',
      cn: name,
      member: members.map((m) => `uid=${escapeRdn(m)},${PEOPLE_DN}`),
    });
  }
  const ldifFile = join(dir, 'data.ldif');
  writeFileSync(ldifFile, ldif);
  execFileSync(SLAPADD, ['-q', '-f', confFile, '-l', ldifFile], { stdio: 'pipe' });

  let daemon: Daemon | undefined;
  // -d none: in the foreground, printing only what it always logs (a port in use, a failed start).
  const launch = async ([ldap, ldaps]: number[]) => {
    daemon = await startDaemon({
      name: 'slapd',
      command: SLAPD,
      args: ['-f', confFile, '-h', `ldap://127.0.0.1:${ldap}/ ldaps://127.0.0.1:${ldaps}/`, '-d', 'none'],
      ports: [ldap as number, ldaps as number],
    });
  };
  const [ldapPort, ldapsPort] = await withPorts(
    2,
    async (ports) => {
      await launch(ports);
      return ports;
    },
    { first: options.tryPortsFirst },
  ).catch((err: unknown) => {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  });
  /** Restarted on its ports (its URLs are in the clients' configurations). */
  const start = () => samePortAgain(() => launch([ldapPort as number, ldapsPort as number]));
  const stop = async () => {
    const running = daemon;
    daemon = undefined;
    await running?.stop();
  };
  return {
    url: `ldap://127.0.0.1:${ldapPort}`,
    ldapsUrl: `ldaps://127.0.0.1:${ldapsPort}`,
    pki,
    otherCa,
    servicePassword,
    rootPassword,
    generatedUsers,
    dir,
    stop,
    start,
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** RFC 4514 escaping for the RDN values the helper writes. */
function escapeRdn(value: string): string {
  return value.replace(/[\\,+"<>;=]/g, (c) => `\\${c}`).replace(/^[ #]/, (c) => `\\${c}`);
}

/** The `ldap` configuration of Passerelle for this test directory (LDAPS with the test CA). */
export function openldapConfig(slapd: Slapd, over: Partial<LdapConfig> = {}): LdapConfig {
  return {
    urls: [slapd.ldapsUrl],
    startTls: false,
    caFile: slapd.pki.caFile,
    flavour: 'openldap',
    bindDn: SERVICE_DN,
    bindPassword: slapd.servicePassword,
    userBaseDn: PEOPLE_DN,
    userFilter: LDAP_DEFAULT_FILTERS.openldap,
    groupBaseDn: GROUPS_DN,
    attributes: {
      username: 'uid',
      displayName: 'displayName',
      givenName: 'givenName',
      familyName: 'sn',
      mail: 'mail',
      stableId: 'entryUUID',
      idNat: 'employeeNumber',
      groups: 'memberOf',
    },
    // Generous: a loaded machine may take seconds to answer (a stopped slapd refuses at once; the tests of
    // a hung directory set their own).
    connectTimeoutMs: 10_000,
    operationTimeoutMs: 15_000,
    poolSize: 2,
    ...over,
  };
}
