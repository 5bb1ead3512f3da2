import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Kysely } from 'kysely';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chainRows } from '../src/audit/chain.ts';
import { AuditCheckpoints, AuditSigningKey, listCheckpoints } from '../src/audit/checkpoints.ts';
import { installationKeyring, publishedKeys, rotateAuditKey, trustedKeyring } from '../src/audit/keyring.ts';
import { AuditTrail } from '../src/audit/trail.ts';
import { verifyChain } from '../src/audit/verify.ts';
import { Sealer } from '../src/crypto/sealer.ts';
import { connectDatabase, type DatabaseHandle } from '../src/db/connect.ts';
import { migrateToLatest } from '../src/db/migrate.ts';
import type { Database } from '../src/db/types.ts';
import { embeddedCli, forCommands } from './helpers/cli.ts';
import { createTestDatabase, databasesUnderTest, type TestDatabase } from './helpers/databases.ts';

const silent = pino({ level: 'silent' });
const sealer = new Sealer(randomBytes(32).toString('base64'));

for (const kind of databasesUnderTest()) {
  describe(`audit key rotation [${kind}]`, () => {
    let testDb: TestDatabase;
    let handle: DatabaseHandle;
    let db: Kysely<Database>;
    let trail: AuditTrail;
    let first: AuditSigningKey;

    const record = async (n: number) => {
      for (let i = 0; i < n; i++)
        await trail.record({ type: 'auth.attempt', outcome: 'success', method: 'password' });
    };
    const verifyWith = async (keys: Parameters<typeof verifyChain>[2]) =>
      verifyChain(chainRows(db), await listCheckpoints(db), keys);

    beforeAll(async () => {
      testDb = await createTestDatabase(kind);
      handle = await connectDatabase({ database: { url: testDb.url, dataDir: testDb.dataDir, poolSize: 4 } });
      db = handle.db;
      await migrateToLatest(db);
      trail = new AuditTrail(db, silent);
      first = await AuditSigningKey.load(db, sealer);
      const checkpoints = new AuditCheckpoints(db, () => AuditSigningKey.load(db, sealer));
      await record(5);
      await checkpoints.write();
      const rotated = await rotateAuditKey(db, sealer, trail, 'cli:rssi');
      expect(rotated.previousKeyId).toBe(first.keyId);
      await record(3);
      // The same checkpoint writer now signs with the new key.
      expect(await checkpoints.write()).toMatchObject({ seq: '9', keyId: rotated.keyId });
    });
    afterAll(async () => {
      await handle?.close();
      await testDb?.drop();
    });

    it('publishes the new key endorsed by the old one, destroys the old private key, records the rotation', async () => {
      const current = await AuditSigningKey.load(db, sealer);
      expect(current.keyId).not.toBe(first.keyId);
      const keys = await publishedKeys(db);
      expect(keys.map((k) => [k.keyId, k.endorsedBy, k.retiredAt !== null])).toEqual([
        [first.keyId, null, true],
        [current.keyId, first.keyId, false],
      ]);
      const rows = await db
        .selectFrom('audit_event')
        .selectAll()
        .where('type', '=', 'admin.audit_key.rotated')
        .execute();
      expect(rows.map((r) => r.detail)).toEqual([
        { previousKeyId: first.keyId, keyId: current.keyId, via: 'cli', actor: 'cli:rssi' },
      ]);
      const sealed = await db
        .selectFrom('app_secret')
        .select('value_sealed')
        .where('name', '=', 'audit_signing_key')
        .execute();
      expect(sealed).toHaveLength(1);
    });

    it("verifies across the rotation from the installation's first key, or from the key an auditor kept", async () => {
      const byInstallation = await verifyWith(await installationKeyring(db));
      expect(byInstallation).toMatchObject({ kind: 'ok', summary: { rows: 9, checkpoints: 2 } });
      const byAuditor = await verifyWith(trustedKeyring([first.publicKey], await publishedKeys(db)));
      expect(byAuditor).toMatchObject({ kind: 'ok', summary: { checkpoints: 2 } });
      // Without the endorsements, the new key's checkpoint is not trusted.
      const alone = await verifyWith(first.publicKey);
      expect(alone).toMatchObject({ kind: 'problem', problem: { kind: 'bad-checkpoint', seq: '9' } });
    });

    it('a key slipped into audit_key (or a forged endorsement) is not trusted: its checkpoints fail', async () => {
      const intruder = new AuditSigningKey(generateKeyPairSync('ed25519').privateKey);
      const [, endorsed] = await publishedKeys(db);
      const forged = {
        ...endorsed,
        keyId: intruder.keyId,
        publicJwk: intruder.publicKey.export({ format: 'jwk' }),
      };
      // The old endorsement on a different key, and a valid-looking row endorsed by an unknown key.
      const ring = trustedKeyring(
        [first.publicKey],
        [
          ...(await publishedKeys(db)),
          forged as never,
          { ...forged, keyId: 'x', endorsedBy: intruder.keyId } as never,
        ],
      );
      expect([...ring.keys()].sort()).toEqual([first.keyId, endorsed?.keyId].sort());
      await record(1);
      await new AuditCheckpoints(db, intruder).write();
      const result = await verifyWith(ring);
      expect(result).toMatchObject({
        kind: 'problem',
        problem: {
          kind: 'bad-checkpoint',
          seq: '10',
          message: expect.stringContaining('not a trusted audit key'),
        },
      });
    });
  });
}

describe('passerelle audit rotate-key, keys, verify --public-key, export (PGlite)', forCommands(6), () => {
  const embedded = embeddedCli('passerelle-cli-audit-key-');
  afterAll(() => embedded.remove());

  it('rotates with a checkpoint on each side; the old public key still verifies; the export carries both keys', async () => {
    const { cli, dataDir } = embedded;
    expect((await cli(['users', 'unlock', 'marie'])).code).toBe(0);
    const publicKey = await cli(['audit', 'public-key']);
    const oldPem = join(dataDir, 'old.pem');
    writeFileSync(
      oldPem,
      publicKey.stdout.slice(0, publicKey.stdout.indexOf('-----END PUBLIC KEY-----') + 24),
    );

    const rotated = await cli(['audit', 'rotate-key', '--by', 'rssi']);
    expect(rotated.code, rotated.stderr).toBe(0);
    const [, oldId, newId] = /audit key rotated: (\S+) → (\S+)/.exec(rotated.stdout) ?? [];
    expect(oldId).toBeTruthy();
    const keys = await cli(['audit', 'keys']);
    expect(keys.stdout).toMatch(new RegExp(`^${oldId}  created \\S+  first key  retired \\S+$`, 'm'));
    expect(keys.stdout).toMatch(new RegExp(`^${newId}  created \\S+  endorsed by ${oldId}  current$`, 'm'));

    const verified = await cli(['audit', 'verify', '--public-key', oldPem]);
    expect(verified.code, verified.stdout).toBe(0);
    expect(verified.stdout).toMatch(/audit verify ok: \d+ records, 2 checkpoints/);

    const exported = await cli(['audit', 'export']);
    expect(exported.code, exported.stderr).toBe(0);
    const lines = exported.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.find((l) => l.public_key)?.public_key.kid).toBe(newId);
    expect(lines.find((l) => l.audit_keys)?.audit_keys.map((k: { keyId: string }) => k.keyId)).toEqual([
      oldId,
      newId,
    ]);
    expect(readFileSync(oldPem, 'utf8')).toContain('BEGIN PUBLIC KEY');
  });
});
