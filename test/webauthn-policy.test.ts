import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SettingsService } from '@simplewebauthn/server';
import { importPKCS8, SignJWT } from 'jose';
import type { Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccountStore } from '../src/accounts/store.ts';
import { loadConfig } from '../src/config/load.ts';
import { connectDatabase, type DatabaseHandle } from '../src/db/connect.ts';
import { migrateToLatest } from '../src/db/migrate.ts';
import type { Database } from '../src/db/types.ts';
import { AttestationPolicy } from '../src/methods/webauthn/policy.ts';
import {
  ChallengeStore,
  CredentialStore,
  EnrollmentCodes,
  normaliseCode,
} from '../src/methods/webauthn/store.ts';
import { createTestDatabase, databasesUnderTest, type TestDatabase } from './helpers/databases.ts';

const YUBIKEY = 'ee882879-721c-4913-9775-3dfcce97072a';
const OTHER = '01020304-0506-0708-0102-030405060708';
const COMPROMISED = '11111111-2222-3333-4444-555555555555';

describe('attestation policy: AAGUID allow-list and trusted attestation', () => {
  it('without rules, any key model is accepted', () => {
    const policy = new AttestationPolicy({ requireTrustedAttestation: false });
    expect(policy.check({ fmt: 'none', aaguid: OTHER, hasCertificateChain: false })).toEqual({
      allowed: true,
    });
  });

  it('the allow-list accepts its models only (case does not matter)', () => {
    const policy = new AttestationPolicy({
      aaguidAllowList: [YUBIKEY.toUpperCase()],
      requireTrustedAttestation: false,
    });
    expect(policy.check({ fmt: 'packed', aaguid: YUBIKEY, hasCertificateChain: true })).toEqual({
      allowed: true,
    });
    expect(policy.check({ fmt: 'packed', aaguid: OTHER, hasCertificateChain: true })).toEqual({
      allowed: false,
      reason: 'aaguid_not_allowed',
      message: `AAGUID ${OTHER} is not in the allow-list`,
    });
  });

  it('requireTrustedAttestation refuses "none" and self attestation, before the allow-list', () => {
    const policy = new AttestationPolicy({ aaguidAllowList: [YUBIKEY], requireTrustedAttestation: true });
    expect(policy.check({ fmt: 'none', aaguid: YUBIKEY, hasCertificateChain: false })).toMatchObject({
      allowed: false,
      reason: 'attestation_untrusted',
    });
    expect(policy.check({ fmt: 'packed', aaguid: YUBIKEY, hasCertificateChain: false })).toMatchObject({
      allowed: false,
      reason: 'attestation_untrusted',
    });
    expect(policy.check({ fmt: 'packed', aaguid: YUBIKEY, hasCertificateChain: true })).toEqual({
      allowed: true,
    });
  });

  it('the configuration refuses requireTrustedAttestation with attestation none, and malformed AAGUIDs', () => {
    const base = { rpId: 'localhost', origins: ['http://localhost:3000'] };
    expect(() =>
      loadConfig({
        env: {},
        overrides: {
          demo: true,
          webauthn: { ...base, attestation: 'none', policy: { requireTrustedAttestation: true } },
        },
      }),
    ).toThrow(/webauthn\.policy\.requireTrustedAttestation/);
    expect(() =>
      loadConfig({
        env: {},
        overrides: { demo: true, webauthn: { ...base, policy: { aaguidAllowList: ['yubikey'] } } },
      }),
    ).toThrow(/aaguidAllowList/);
    expect(() =>
      loadConfig({
        env: {},
        overrides: { demo: true, webauthn: { ...base, origins: ['https://a.example/login'] } },
      }),
    ).toThrow(/origins/);
    const { config } = loadConfig({
      env: {},
      overrides: { demo: true, webauthn: { ...base, policy: { aaguidAllowList: [YUBIKEY.toUpperCase()] } } },
    });
    expect(config.webauthn?.policy.aaguidAllowList).toEqual([YUBIKEY]);
    expect(config.webauthn?.attestation).toBe('direct');
  });
});

/**
 * An MDS3 blob signed by a test PKI (made with openssl), trusted by SimpleWebAuthn's SettingsService in
 * place of the FIDO Alliance root: the same verification path as the real blob.
 */
describe('attestation policy: FIDO metadata blob loaded from a file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'passerelle-mds-'));
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  let leafKey: string;
  let leafDer: string;

  const blob = async (entries: unknown[], no = 42) => {
    const key = await importPKCS8(leafKey, 'ES256');
    return new SignJWT({ legalHeader: 'test', no, nextUpdate: '2099-01-01', entries })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT', x5c: [leafDer] })
      .sign(key);
  };

  const entry = (aaguid: string, status = 'FIDO_CERTIFIED_L1') => ({
    aaguid,
    metadataStatement: {
      aaguid,
      description: `Model ${aaguid.slice(0, 4)}`,
      attestationRootCertificates: [],
    },
    statusReports: [{ status, effectiveDate: '2024-01-01' }],
    timeOfLastStatusChange: '2024-01-01',
  });

  beforeAll(() => {
    openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'root.key');
    openssl(
      'req',
      '-x509',
      '-new',
      '-key',
      'root.key',
      '-subj',
      '/CN=Test MDS Root',
      '-days',
      '30',
      '-out',
      'root.pem',
    );
    openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'leaf.ec');
    openssl('pkcs8', '-topk8', '-nocrypt', '-in', 'leaf.ec', '-out', 'leaf.key');
    openssl('req', '-new', '-key', 'leaf.key', '-subj', '/CN=Test MDS Signer', '-out', 'leaf.csr');
    openssl(
      'x509',
      '-req',
      '-in',
      'leaf.csr',
      '-CA',
      'root.pem',
      '-CAkey',
      'root.key',
      '-CAcreateserial',
      '-days',
      '30',
      '-out',
      'leaf.pem',
    );
    leafKey = readFileSync(join(dir, 'leaf.key'), 'utf8');
    leafDer = readFileSync(join(dir, 'leaf.pem'), 'utf8').replace(/-----[^-]+-----|\s/g, '');
    SettingsService.setRootCertificates({
      identifier: 'mds',
      certificates: [readFileSync(join(dir, 'root.pem'), 'utf8')],
    });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('models listed are accepted (with their description), missing or compromised ones refused', async () => {
    const file = join(dir, 'good.jwt');
    writeFileSync(file, await blob([entry(YUBIKEY), entry(COMPROMISED, 'ATTESTATION_KEY_COMPROMISE')]));
    const policy = new AttestationPolicy({ metadataBlobFile: file, requireTrustedAttestation: false });
    await policy.load();
    expect(policy.metadata).toEqual({ serial: 42, nextUpdate: expect.any(Date), entries: 2 });
    expect(policy.check({ fmt: 'packed', aaguid: YUBIKEY, hasCertificateChain: true })).toEqual({
      allowed: true,
      description: 'Model ee88',
    });
    expect(policy.check({ fmt: 'packed', aaguid: OTHER, hasCertificateChain: true })).toMatchObject({
      allowed: false,
      reason: 'aaguid_not_in_metadata',
    });
    expect(policy.check({ fmt: 'packed', aaguid: COMPROMISED, hasCertificateChain: true })).toMatchObject({
      allowed: false,
      reason: 'authenticator_compromised',
      message: `AAGUID ${COMPROMISED} has status ATTESTATION_KEY_COMPROMISE in the FIDO metadata blob`,
    });
  });

  it('a tampered blob, or one signed outside the trusted root, is refused at load', async () => {
    const good = await blob([entry(YUBIKEY)]);
    const [header, , signature] = good.split('.');
    const forged = Buffer.from(
      JSON.stringify({ legalHeader: 'x', no: 43, nextUpdate: '2099-01-01', entries: [entry(OTHER)] }),
    ).toString('base64url');
    const file = join(dir, 'tampered.jwt');
    writeFileSync(file, `${header}.${forged}.${signature}`);
    await expect(
      new AttestationPolicy({ metadataBlobFile: file, requireTrustedAttestation: false }).load(),
    ).rejects.toThrow(/not a valid FIDO metadata blob/);
    // Another root only: the test signer is not trusted. (An empty list would skip path validation.)
    openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'other.key');
    openssl(
      'req',
      '-x509',
      '-new',
      '-key',
      'other.key',
      '-subj',
      '/CN=Other Root',
      '-days',
      '30',
      '-out',
      'other.pem',
    );
    SettingsService.setRootCertificates({
      identifier: 'mds',
      certificates: [readFileSync(join(dir, 'other.pem'), 'utf8')],
    });
    try {
      writeFileSync(file, good);
      await expect(
        new AttestationPolicy({ metadataBlobFile: file, requireTrustedAttestation: false }).load(),
      ).rejects.toThrow(/not a valid FIDO metadata blob/);
    } finally {
      SettingsService.setRootCertificates({
        identifier: 'mds',
        certificates: [readFileSync(join(dir, 'root.pem'), 'utf8')],
      });
    }
  });
});

for (const kind of databasesUnderTest()) {
  describe(`webauthn stores [${kind}]`, () => {
    let testDb: TestDatabase;
    let handle: DatabaseHandle;
    let db: Kysely<Database>;
    let accountId: string;
    let otherId: string;

    beforeAll(async () => {
      testDb = await createTestDatabase(kind);
      const { config } = loadConfig({
        env: {},
        overrides: { demo: true, database: { url: testDb.url, dataDir: testDb.dataDir, poolSize: 3 } },
      });
      handle = await connectDatabase(config);
      db = handle.db;
      await migrateToLatest(db);
      const accounts = new AccountStore(db);
      accountId = (await accounts.create({ username: 'store.user' })).id;
      otherId = (await accounts.create({ username: 'store.other' })).id;
    });
    afterAll(async () => {
      await handle?.close();
      await testDb?.drop();
    });

    it('a challenge is consumed once, only for its purpose and subject, and not after it expired', async () => {
      const challenges = new ChallengeStore(db, 300);
      const bytes = await challenges.create('authentication', 'interaction:a', null);
      expect(bytes).toHaveLength(32);
      const value = Buffer.from(bytes).toString('base64url');
      expect(await challenges.consume(value, 'registration', 'interaction:a')).toBeUndefined();
      expect(await challenges.consume(value, 'authentication', 'interaction:b')).toBeUndefined();
      expect(await challenges.consume(value, 'authentication', 'interaction:a')).toEqual({
        challenge: value,
        accountId: null,
      });
      expect(await challenges.consume(value, 'authentication', 'interaction:a')).toBeUndefined();
      // Two concurrent consumers: exactly one wins.
      const again = Buffer.from(
        await challenges.create('registration', `account:${accountId}`, accountId),
      ).toString('base64url');
      const results = await Promise.all(
        Array.from({ length: 5 }, () => challenges.consume(again, 'registration', `account:${accountId}`)),
      );
      expect(results.filter((r) => r !== undefined)).toEqual([{ challenge: again, accountId }]);
      const expired = new ChallengeStore(db, 1);
      const old = Buffer.from(await expired.create('authentication', 'interaction:c', null)).toString(
        'base64url',
      );
      await db
        .updateTable('webauthn_challenge')
        .set({ expires_at: new Date(Date.now() - 1) })
        .execute();
      expect(await expired.consume(old, 'authentication', 'interaction:c')).toBeUndefined();
      expect(await expired.purgeExpired()).toBeGreaterThanOrEqual(0);
      expect(await db.selectFrom('webauthn_challenge').selectAll().execute()).toEqual([]);
    });

    it('enrollment codes: typable, hashed at rest, single use, for their account only, expiring', async () => {
      const codes = new EnrollmentCodes(db);
      const issued = await codes.issue(accountId, 'helpdesk:marie', 600);
      expect(issued.code).toMatch(/^[A-HJKMNP-TW-Z2-9]{4}-[A-HJKMNP-TW-Z2-9]{4}-[A-HJKMNP-TW-Z2-9]{4}$/);
      const rows = await db.selectFrom('enrollment_code').selectAll().execute();
      expect(rows).toHaveLength(1);
      expect(JSON.stringify(rows)).not.toContain(normaliseCode(issued.code));
      expect(rows[0]).toMatchObject({ account_id: accountId, issued_by: 'helpdesk:marie', used_at: null });
      expect(await codes.isValid(otherId, issued.code)).toBe(false);
      expect(await codes.isValid(accountId, ` ${issued.code.toLowerCase().replace(/-/g, ' ')} `)).toBe(true);
      expect(await codes.consume(otherId, issued.code)).toBe(false);
      expect(await codes.consume(accountId, issued.code)).toBe(true);
      expect(await codes.consume(accountId, issued.code)).toBe(false);
      expect(await codes.isValid(accountId, issued.code)).toBe(false);
      const late = await codes.issue(accountId, 'cli:root', 600);
      await db
        .updateTable('enrollment_code')
        .set({ expires_at: new Date(Date.now() - 1000) })
        .where('used_at', 'is', null)
        .execute();
      expect(await codes.consume(accountId, late.code)).toBe(false);
    });

    it('credentials: counter checked and written atomically, flag, rename and revoke for the owner only', async () => {
      const credentials = new CredentialStore(db);
      const base = {
        accountId,
        name: 'Clé',
        publicKey: new Uint8Array([1, 2, 3]),
        transports: ['usb'],
        aaguid: YUBIKEY,
        deviceType: 'singleDevice' as const,
        backedUp: false,
      };
      await credentials.insert({ ...base, id: 'zero', counter: 0 });
      await credentials.insert({ ...base, id: 'counting', counter: 5 });
      // A key without a counter keeps answering 0; once a counter moved, it must keep growing.
      expect(await credentials.recordUse('zero', 0, false)).toBe(true);
      expect(await credentials.recordUse('zero', 3, false)).toBe(true);
      expect(await credentials.recordUse('zero', 0, false)).toBe(false);
      expect(await credentials.recordUse('counting', 5, false)).toBe(false);
      expect(await credentials.recordUse('counting', 4, false)).toBe(false);
      const concurrent = await Promise.all([6, 6, 6].map((n) => credentials.recordUse('counting', n, false)));
      expect(concurrent.filter(Boolean)).toHaveLength(1);
      const stored = await credentials.find('counting');
      expect(stored).toMatchObject({ counter: 6, transports: ['usb'], aaguid: YUBIKEY, revokedAt: null });
      expect(stored?.publicKey).toEqual(new Uint8Array([1, 2, 3]));
      expect(stored?.lastUsedAt).toBeInstanceOf(Date);

      await credentials.flag('counting', 'counter_regression');
      expect((await credentials.find('counting'))?.flagReason).toBe('counter_regression');
      expect(await credentials.rename(otherId, 'counting', 'Volée')).toBe(false);
      expect(await credentials.rename(accountId, 'counting', 'Clé bleue')).toBe(true);
      expect(await credentials.countActive(accountId)).toBe(2);
      expect(await credentials.revoke(otherId, 'zero')).toBe(false);
      expect(await credentials.revoke(accountId, 'zero')).toBe(true);
      expect(await credentials.revoke(accountId, 'zero')).toBe(false);
      expect(await credentials.recordUse('zero', 10, false)).toBe(false);
      expect(await credentials.countActive(accountId)).toBe(1);
      expect((await credentials.listForAccount(accountId)).map((c) => c.name)).toEqual(['Clé bleue']);
      expect(
        (await credentials.listForAccount(accountId, { includeRevoked: true })).map((c) => c.id),
      ).toEqual(['zero', 'counting']);
    });
  });
}
