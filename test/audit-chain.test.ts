import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Kysely, sql } from 'kysely';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { canonical, chainHash, GENESIS_HASH } from '../src/audit/canonical.ts';
import { allowAuditPurge, chainRows, toChainRow } from '../src/audit/chain.ts';
import {
  AuditCheckpoints,
  AuditSigningKey,
  listCheckpoints,
  parsePublicKey,
  publicKeyExport,
  scheduleCheckpoints,
} from '../src/audit/checkpoints.ts';
import { type AuditEvent, AuditTrail } from '../src/audit/trail.ts';
import { type VerifyResult, verifyChain } from '../src/audit/verify.ts';
import { Sealer } from '../src/crypto/sealer.ts';
import { connectDatabase, type DatabaseHandle } from '../src/db/connect.ts';
import { migrateDown, migrateToLatest } from '../src/db/migrate.ts';
import type { Database } from '../src/db/types.ts';
import { cleanEnv, forCommands, runCli } from './helpers/cli.ts';
import { createTestDatabase, databasesUnderTest, queryOnce, type TestDatabase } from './helpers/databases.ts';

const silent = pino({ level: 'silent' });
const encryptionKey = randomBytes(32).toString('base64');

/** A login-like event, varied by `i` (nulls, unicode, nested detail). */
function loginEvent(i: number): AuditEvent {
  return {
    type: 'auth.attempt',
    outcome: i % 7 === 0 ? 'failure' : 'success',
    accountId: i % 5 === 0 ? undefined : '0b7e6f9c-3c8e-4a51-9d5e-2f1c4b8a7d60',
    clientId: 'dossier-patient',
    sessionId: `s${i}`,
    ip: `10.0.${i % 256}.${(i * 7) % 256}`,
    userAgent: 'Mozilla/5.0 (Windows NT 10.0) — « poste de soins »',
    method: i % 2 ? 'webauthn' : 'ldap',
    amr: i % 2 ? ['hwk', 'pin'] : ['pwd'],
    acr: 'urn:passerelle:loa:substantial',
    reason: i % 7 === 0 ? 'bad_password' : undefined,
    requestId: `req-${i}`,
    detail: { attempt: i, nested: { z: 1, a: [true, null, 'é'] }, dropped: undefined },
    nationalId: i % 3 === 0 ? `810100${String(i).padStart(5, '0')}` : undefined,
  };
}

class Rollback extends Error {}

for (const kind of databasesUnderTest()) {
  describe(`audit hash chain, checkpoints and verify [${kind}]`, () => {
    let testDb: TestDatabase;
    let handle: DatabaseHandle;
    let db: Kysely<Database>;
    let trail: AuditTrail;
    let key: AuditSigningKey;
    let checkpoints: AuditCheckpoints;

    const verifyAll = async (on: Kysely<Database> = db) =>
      verifyChain(chainRows(on, {}, 64), await listCheckpoints(on), key.publicKey);

    /** Tampers as the owner inside a transaction that is rolled back, and verifies what it sees. */
    async function tampered(change: (trx: Kysely<Database>) => Promise<unknown>): Promise<VerifyResult> {
      let result: VerifyResult | undefined;
      await db
        .transaction()
        .execute(async (trx) => {
          await allowAuditPurge(trx);
          await change(trx);
          result = await verifyAll(trx);
          throw new Rollback();
        })
        .catch((err) => {
          if (!(err instanceof Rollback)) throw err;
        });
      if (!result) throw new Error('no verification result');
      return result;
    }
    const problemOf = (result: VerifyResult) => (result.kind === 'problem' ? result.problem : undefined);

    beforeAll(async () => {
      testDb = await createTestDatabase(kind);
      handle = await connectDatabase({ database: { url: testDb.url, dataDir: testDb.dataDir, poolSize: 4 } });
      db = handle.db;
      await migrateToLatest(db);
      trail = new AuditTrail(db, silent);
      key = await AuditSigningKey.load(db, new Sealer(encryptionKey));
      checkpoints = new AuditCheckpoints(db, key);
      for (let i = 1; i <= 200; i++) await trail.record(loginEvent(i));
      expect(await checkpoints.write()).toMatchObject({ seq: '200' });
      for (let i = 201; i <= 300; i++) await trail.record(loginEvent(i));
      expect(await checkpoints.write()).toMatchObject({ seq: '300' });
    });
    afterAll(async () => {
      await handle?.close();
      await testDb?.drop();
    });

    it('a chain of 300 records with 2 checkpoints verifies; each row hashes its stored canonical form', async () => {
      const result = await verifyAll();
      expect(result).toMatchObject({
        kind: 'ok',
        summary: { rows: 300, checkpoints: 2, firstSeq: '1', lastSeq: '300', anchored: true },
      });
      const [first, second] = await db
        .selectFrom('audit_event')
        .selectAll()
        .orderBy('seq')
        .limit(2)
        .execute();
      expect(first?.prev_hash).toBe(GENESIS_HASH);
      expect(second?.prev_hash).toBe(first?.hash);
      if (!first) throw new Error('no first row');
      const text = canonical(toChainRow(first));
      expect(chainHash(toChainRow(first))).toBe(first.hash);
      // The stored time is the hashed time: no sub-millisecond part in timestamptz.
      const { submillisecond } = await sql<{ submillisecond: string }>`
        select count(*)::text as submillisecond from audit_event
        where extract(microseconds from at)::bigint % 1000 <> 0`
        .execute(db)
        .then((r) => r.rows[0] ?? { submillisecond: '?' });
      expect(submillisecond).toBe('0');
      expect(text).toContain(`"at":"${first.at.toISOString()}"`);
      expect(text).toContain('"seq":"1"');
      expect(text).toContain('"detail":{"attempt":1,"nested":{"a":[true,null,"é"],"z":1}}');
      expect(text).toContain('"reason":null');
      expect(text).not.toContain('"hash"');
    });

    it('the signing key is created once and sealed: loading it again gives the same key id', async () => {
      const again = await AuditSigningKey.load(db, new Sealer(encryptionKey));
      expect(again.keyId).toBe(key.keyId);
      const { pem, jwk } = publicKeyExport(key.publicKey);
      expect(jwk).toMatchObject({ kty: 'OKP', crv: 'Ed25519', kid: key.keyId });
      expect(jwk).not.toHaveProperty('d');
      expect(parsePublicKey(pem).equals(key.publicKey)).toBe(true);
      expect(parsePublicKey(JSON.stringify(jwk)).equals(key.publicKey)).toBe(true);
      const sealed = await db
        .selectFrom('app_secret')
        .select('value_sealed')
        .where('name', '=', 'audit_signing_key');
      expect((await sealed.executeTakeFirstOrThrow()).value_sealed).not.toContain('PRIVATE KEY');
    });

    it('an updated field is named altered at its seq', async () => {
      const result = await tampered((trx) =>
        trx.updateTable('audit_event').set({ ip: '192.0.2.66' }).where('seq', '=', '123').execute(),
      );
      expect(problemOf(result)).toMatchObject({ kind: 'altered', seq: '123' });
      expect(result.summary.rows).toBe(123);
    });

    it('a row rewritten with a recomputed hash is named altered: its successor no longer links to it', async () => {
      const rewrite = (seq: string, prevHash?: string) => async (trx: Kysely<Database>) => {
        const row = toChainRow(
          await trx.selectFrom('audit_event').selectAll().where('seq', '=', seq).executeTakeFirstOrThrow(),
        );
        const forged = {
          ...row,
          outcome: 'success' as const,
          reason: null,
          prev_hash: prevHash ?? row.prev_hash,
        };
        await trx
          .updateTable('audit_event')
          .set({ outcome: 'success', reason: null, prev_hash: forged.prev_hash, hash: chainHash(forged) })
          .where('seq', '=', seq)
          .execute();
      };
      expect(problemOf(await tampered(rewrite('77')))).toMatchObject({ kind: 'altered', seq: '77' });
      // The first record re-linked to another start: it no longer starts from the genesis hash.
      expect(problemOf(await tampered(rewrite('1', 'a'.repeat(64))))).toMatchObject({
        kind: 'altered',
        seq: '1',
      });
    });

    it('a deleted middle row is named deleted at its seq', async () => {
      const result = await tampered((trx) =>
        trx.deleteFrom('audit_event').where('seq', '=', '150').execute(),
      );
      expect(problemOf(result)).toMatchObject({ kind: 'deleted', seq: '150' });
    });

    it('a forged row inserted in the middle (later rows renumbered, its own hash correct) is named inserted', async () => {
      const result = await tampered(async (trx) => {
        await sql`update audit_event set seq = seq + 1000000 where seq >= 100`.execute(trx);
        await sql`update audit_event set seq = seq - 999999 where seq >= 1000000`.execute(trx);
        const before = await trx
          .selectFrom('audit_event')
          .select('hash')
          .where('seq', '=', '99')
          .executeTakeFirstOrThrow();
        const forged = {
          seq: '100',
          at: new Date(),
          type: 'auth.attempt',
          outcome: 'success' as const,
          account_id: null,
          client_id: 'dossier-patient',
          session_id: null,
          interaction_id: null,
          ip: '10.9.9.9',
          user_agent: null,
          method: 'ldap',
          amr: ['pwd'],
          acr: null,
          reason: null,
          request_id: null,
          instance_id: 'forger',
          detail: null,
          national_id: null,
          tid: null,
          establishment: null,
          prev_hash: before.hash ?? '',
        };
        await trx
          .insertInto('audit_event')
          .values({ ...forged, amr: JSON.stringify(forged.amr), hash: chainHash(forged) })
          .execute();
      });
      expect(problemOf(result)).toMatchObject({ kind: 'inserted', seq: '100' });
    });

    it('two rows whose contents were swapped are named reordered at the first of them', async () => {
      const columns = sql.raw(
        'at, type, outcome, account_id, client_id, session_id, interaction_id, ip, user_agent, method, amr, acr, ' +
          'reason, request_id, instance_id, detail, national_id, tid, establishment, prev_hash, hash',
      );
      const swap = (a: number, b: number) => (trx: Kysely<Database>) =>
        sql`update audit_event x set (${columns}) = (select ${columns} from audit_event y
            where y.seq = case x.seq when ${sql.lit(a)} then ${sql.lit(b)} else ${sql.lit(a)} end)
            where x.seq in (${sql.lit(a)}, ${sql.lit(b)})`.execute(trx);
      expect(problemOf(await tampered(swap(40, 60)))).toMatchObject({ kind: 'reordered', seq: '40' });
      expect(problemOf(await tampered(swap(70, 71)))).toMatchObject({ kind: 'reordered', seq: '70' });
    });

    it('a tail deleted after a checkpoint signed it is named truncated at the first missing seq', async () => {
      const result = await tampered((trx) =>
        trx.deleteFrom('audit_event').where('seq', '>', '250').execute(),
      );
      expect(problemOf(result)).toMatchObject({ kind: 'truncated', seq: '251' });
    });

    it('a tail recomputed consistently is caught by the signed checkpoint', async () => {
      const result = await tampered(async (trx) => {
        let prev = (
          await trx
            .selectFrom('audit_event')
            .select('hash')
            .where('seq', '=', '279')
            .executeTakeFirstOrThrow()
        ).hash as string;
        for await (const row of chainRows(trx, { from: '280' })) {
          const forged = { ...row, ip: '192.0.2.1', prev_hash: prev };
          prev = chainHash(forged);
          await trx
            .updateTable('audit_event')
            .set({ ip: forged.ip, prev_hash: forged.prev_hash, hash: prev })
            .where('seq', '=', row.seq)
            .execute();
        }
      });
      expect(problemOf(result)).toMatchObject({ kind: 'altered', seq: '300' });
    });

    it('a checkpoint whose signature does not verify is named bad-checkpoint; so is another key', async () => {
      const forgedHash = await tampered((trx) =>
        trx
          .updateTable('audit_checkpoint')
          .set({ hash: 'f'.repeat(64) })
          .where('seq', '=', '200')
          .execute(),
      );
      expect(problemOf(forgedHash)).toMatchObject({ kind: 'bad-checkpoint', seq: '200' });
      const other = generateKeyPairSync('ed25519').publicKey;
      const result = await verifyChain(chainRows(db), await listCheckpoints(db), other);
      expect(problemOf(result)).toMatchObject({ kind: 'bad-checkpoint', seq: '200' });
    });

    it('the trigger refuses UPDATE, DELETE and TRUNCATE of audit rows and checkpoints', async () => {
      await expect(
        db.updateTable('audit_event').set({ ip: '192.0.2.7' }).where('seq', '=', '5').execute(),
      ).rejects.toThrow(/audit_event is append-only: UPDATE refused/);
      await expect(db.deleteFrom('audit_event').where('seq', '=', '5').execute()).rejects.toThrow(
        /audit_event is append-only: DELETE refused/,
      );
      await expect(sql`truncate audit_event`.execute(db)).rejects.toThrow(/append-only: TRUNCATE refused/);
      await expect(db.deleteFrom('audit_checkpoint').execute()).rejects.toThrow(
        /audit_checkpoint is append-only: DELETE refused/,
      );
      expect(await verifyAll()).toMatchObject({ kind: 'ok', summary: { rows: 300 } });
    });

    it('an append rolled back with the caller’s transaction leaves no gap', async () => {
      await db
        .transaction()
        .execute(async (trx) => {
          await trail.record(loginEvent(999), trx);
          throw new Rollback();
        })
        .catch((err) => {
          if (!(err instanceof Rollback)) throw err;
        });
      await trail.record(loginEvent(301));
      expect(await verifyAll()).toMatchObject({ kind: 'ok', summary: { rows: 301, lastSeq: '301' } });
    });

    it('4 concurrent writers produce one valid chain without gap', async () => {
      const before = Number(
        (
          await db
            .selectFrom('audit_event')
            .select((e) => e.fn.countAll().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );
      await Promise.all(
        [0, 1, 2, 3].map(async (writer) => {
          for (let i = 0; i < 50; i++) await trail.record({ ...loginEvent(i), sessionId: `w${writer}-${i}` });
        }),
      );
      await checkpoints.write();
      const result = await verifyAll();
      expect(result).toMatchObject({
        kind: 'ok',
        summary: { rows: before + 200, lastSeq: String(before + 200) },
      });
      const sessions = await db
        .selectFrom('audit_event')
        .select('session_id')
        .where('session_id', 'like', 'w%')
        .execute();
      expect(new Set(sessions.map((s) => s.session_id)).size).toBe(200);
    });

    it('the scheduler signs the chain’s end once an interval has passed since the last checkpoint', async () => {
      await trail.record({ ...loginEvent(1), accountId: '0B7E6F9C-3C8E-4A51-9D5E-2F1C4B8A7D60' });
      const end = await db
        .selectFrom('audit_event')
        .select('seq')
        .orderBy('seq', 'desc')
        .executeTakeFirstOrThrow();
      const stop = scheduleCheckpoints(
        db,
        checkpoints,
        { checkpointIntervalSeconds: 1 },
        'test-instance',
        silent,
      );
      try {
        await vi.waitFor(async () => expect((await checkpoints.latest())?.seq).toBe(String(end.seq)), {
          timeout: 60_000,
          interval: 200,
        });
      } finally {
        stop();
      }
      expect(
        await db.selectFrom('job_lock').selectAll().where('name', '=', 'audit-checkpoint').execute(),
      ).toEqual([]);
      expect(await verifyAll()).toMatchObject({ kind: 'ok', summary: { lastSeq: String(end.seq) } });
    });

    it('verifying a range anchors on the row before it', async () => {
      const rows = chainRows(db, { from: '101', to: '200' });
      const anchor = await db
        .selectFrom('audit_event')
        .select(['seq', 'hash'])
        .where('seq', '=', '100')
        .executeTakeFirstOrThrow();
      const result = await verifyChain(
        rows,
        await listCheckpoints(db, { from: '100', to: '200' }),
        key.publicKey,
        {
          anchor: { seq: anchor.seq, hash: anchor.hash ?? '' },
        },
      );
      expect(result).toMatchObject({
        kind: 'ok',
        summary: { rows: 100, checkpoints: 1, firstSeq: '101', anchored: true },
      });
      // Without the row before it, a trail starting after seq 1 is a deletion.
      const unanchored = await verifyChain(chainRows(db, { from: '101' }), [], key.publicKey);
      expect(problemOf(unanchored)).toMatchObject({ kind: 'deleted', seq: '100' });
    });
  });
}

for (const kind of databasesUnderTest()) {
  describe(`audit chain migration, database roles and CLI [${kind}]`, forCommands(6), () => {
    let testDb: TestDatabase;
    const open = () =>
      connectDatabase({ database: { url: testDb.url, dataDir: testDb.dataDir, poolSize: 2 } });

    beforeAll(async () => {
      testDb = await createTestDatabase(kind);
      if (kind === 'pglite') testDb.dataDir = mkdtempSync(join(tmpdir(), 'audit-chain-'));
    });
    afterAll(async () => {
      await testDb?.drop();
      if (kind === 'pglite') rmSync(testDb.dataDir, { recursive: true, force: true });
    });

    it('the migration renumbers and chains the rows written before it; appends continue the chain', async () => {
      const handle = await open();
      try {
        await migrateToLatest(handle.db);
        // Back to before the chain migration (and those after it).
        while (!(await migrateDown(handle.db)).includes('reverted 0008_audit_chain'));
        for (const seq of [3, 4, 8, 20]) {
          await sql`insert into audit_event (seq, at, type, outcome, instance_id, amr)
            values (${sql.lit(seq)}, '2026-01-02 03:04:05.123456+00', 'auth.attempt', 'success', 'old', '["pwd"]')`.execute(
            handle.db,
          );
        }
        await migrateToLatest(handle.db);
        const rows = await handle.db.selectFrom('audit_event').select(['seq', 'at']).orderBy('seq').execute();
        expect(rows.map((r) => String(r.seq))).toEqual(['1', '2', '3', '4']);
        expect(rows[0]?.at.toISOString()).toBe('2026-01-02T03:04:05.123Z');
        await new AuditTrail(handle.db, silent).record(loginEvent(1));
        const key = await AuditSigningKey.load(handle.db, new Sealer(encryptionKey));
        const result = await verifyChain(chainRows(handle.db), [], key.publicKey);
        expect(result).toMatchObject({ kind: 'ok', summary: { rows: 5, firstSeq: '1', lastSeq: '5' } });
      } finally {
        await handle.close();
      }
    });

    it('passerelle audit verify: exit code 0 on an intact trail, 1 with the first problem named', async () => {
      const env = cleanEnv({
        PASSERELLE_ISSUER: 'http://127.0.0.1:3999',
        PASSERELLE_KEYS__ENCRYPTION_KEY: encryptionKey,
        ...(testDb.url
          ? { PASSERELLE_DATABASE__URL: testDb.url }
          : { PASSERELLE_DATABASE__DATA_DIR: testDb.dataDir }),
      });
      const cli = (args: string[]) => runCli(['audit', ...args], { env });

      // The first command on this database also creates the signing keys: records 6 and 7.
      const keyOut = await cli(['public-key']);
      expect(keyOut.code).toBe(0);
      const [pem, jwk] = keyOut.stdout.split(/(?<=-----END PUBLIC KEY-----)\n/);
      const keyFile = join(tmpdir(), `audit-key-${randomBytes(4).toString('hex')}.pem`);
      writeFileSync(keyFile, pem ?? '');
      expect(JSON.parse(jwk ?? '')).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA' });
      expect(await cli(['checkpoint'])).toMatchObject({
        code: 0,
        stdout: expect.stringMatching(/^checkpoint at seq 7 /),
      });

      const intact = await cli(['verify', '--public-key', keyFile]);
      expect(intact.stdout).toMatch(/^audit verify ok: 7 records, 1 checkpoints, seq 1–7, [\d.]+ s\n$/);
      expect(intact.code).toBe(0);

      const handle = await open();
      try {
        await handle.db.transaction().execute(async (trx) => {
          await allowAuditPurge(trx);
          await trx.updateTable('audit_event').set({ outcome: 'failure' }).where('seq', '=', '2').execute();
        });
      } finally {
        await handle.close();
      }
      const broken = await cli(['verify']);
      expect(broken.stdout).toMatch(
        /^altered at seq 2: .*\naudit verify FAILED: 2 records, 0 checkpoints, seq 1–2/,
      );
      expect(broken.code).toBe(1);

      const otherKey = join(tmpdir(), `audit-other-${randomBytes(4).toString('hex')}.pem`);
      writeFileSync(
        otherKey,
        generateKeyPairSync('ed25519').publicKey.export({ format: 'pem', type: 'spki' }),
      );
      const wrongKey = await cli([
        'verify',
        '--from',
        '3',
        '--to',
        '2100-01-01T00:00:00Z',
        '--public-key',
        otherKey,
      ]);
      expect(wrongKey.stdout).toMatch(/^bad-checkpoint at seq 7: checkpoint 7 is signed by key /);
      expect(wrongKey.code).toBe(1);
      rmSync(keyFile);
      rmSync(otherKey);
    });

    const canCreateRoles = async () =>
      (
        await queryOnce<{ allowed: boolean }>(
          'select rolsuper or rolcreaterole as allowed from pg_roles where rolname = current_user',
        )
      )[0]?.allowed === true;

    // Roles and grants are PostgreSQL's (PGlite has one user): defined for PostgreSQL only.
    if (kind === 'postgres')
      it('an application role with INSERT and SELECT only appends, and can neither update nor delete', async (context) => {
        if (!(await canCreateRoles())) {
          // .ci/run gives its role CREATEROLE: on CI a missing right is a failure, not a skip.
          if (process.env.CI === 'true') throw new Error('CI=true but the test role lacks CREATEROLE');
          context.skip('PostgreSQL role without CREATEROLE');
        }
        const role = `passerelle_app_${randomBytes(4).toString('hex')}`;
        const password = randomBytes(12).toString('hex');
        const url = new URL(testDb.url ?? '');
        await queryOnce(`create role ${role} login password '${password}'`);
        try {
          await queryOnce(
            `grant usage on schema public to ${role}; grant select, insert on audit_event to ${role};
           grant select on audit_checkpoint to ${role};`,
            url.toString(),
          );
          url.username = role;
          url.password = password;
          const app = await connectDatabase({ database: { url: url.toString(), dataDir: '', poolSize: 2 } });
          try {
            await new AuditTrail(app.db, silent).record(loginEvent(2));
            await expect(
              app.db.transaction().execute(async (trx) => {
                await allowAuditPurge(trx);
                await trx.updateTable('audit_event').set({ ip: null }).execute();
              }),
            ).rejects.toThrow(/permission denied for table audit_event/);
            await expect(app.db.deleteFrom('audit_event').execute()).rejects.toThrow(/permission denied/);
            await expect(app.db.deleteFrom('audit_checkpoint').execute()).rejects.toThrow(
              /permission denied/,
            );
          } finally {
            await app.close();
          }
        } finally {
          // Its grants go first (DROP OWNED would need membership of the role).
          await queryOnce(
            `revoke all on audit_event, audit_checkpoint from ${role}; revoke usage on schema public from ${role};`,
            testDb.url,
          );
          await queryOnce(`drop role ${role}`);
        }
      });
  });
}
