import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chainRows } from '../src/audit/chain.ts';
import { AuditCheckpoints, AuditSigningKey, listCheckpoints } from '../src/audit/checkpoints.ts';
import { exportAudit } from '../src/audit/export.ts';
import { rangeVerifier } from '../src/audit/range-verifier.ts';
import { planPurge, purgeAudit } from '../src/audit/retention.ts';
import { verifyChain } from '../src/audit/verify.ts';
import { Sealer } from '../src/crypto/sealer.ts';
import { appendEvents, auditDatabase, sampleEvents } from './helpers/audit-seed.ts';
import { databasesUnderTest } from './helpers/databases.ts';

const DAY = 86_400_000;

/** Nowhere: the export's bytes are not the point here, its verification is. */
const sink = () =>
  new Writable({
    write(_chunk, _encoding, done) {
      done();
    },
  });

/**
 * Export, retention and verification together, on the real chain: an export verified with the audit
 * key allows the purge of its range up to a checkpoint, and what remains still verifies from that
 * checkpoint (issue #6 §4).
 */
for (const kind of databasesUnderTest()) {
  describe(`export, purge and verify on the real chain [${kind}]`, () => {
    let env: Awaited<ReturnType<typeof auditDatabase>>;
    let key: AuditSigningKey;

    beforeAll(async () => {
      env = await auditDatabase(kind);
      key = await AuditSigningKey.load(env.db, new Sealer(randomBytes(32).toString('base64')));
    });
    afterAll(async () => {
      await env?.close();
    });

    it('purges a verified export up to its checkpoint, and the remainder still verifies', async () => {
      const checkpoints = new AuditCheckpoints(env.db, key);
      const first = await appendEvents(env.db, env.trail, sampleEvents(10));
      await checkpoints.write();
      const second = await appendEvents(env.db, env.trail, sampleEvents(10));
      await checkpoints.write();
      await appendEvents(env.db, env.trail, sampleEvents(5));
      const verifier = rangeVerifier(env.db, key.publicKey);

      const exported = await exportAudit(env.db, {
        range: { fromSeq: first[0] as string, toSeq: second.at(-1) as string },
        format: 'jsonl',
        out: sink(),
        instance: 'test',
        actor: 'dpo',
        verifyChain: verifier,
      });
      expect(exported.verification).toBe('verified');

      // Forty days later, with a 30-day retention: the verified export, through its last checkpoint.
      const now = new Date(Date.now() + 40 * DAY);
      const plan = await planPurge(env.db, { retentionDays: 30, now });
      expect(plan).toMatchObject({ firstSeq: first[0], throughSeq: second.at(-1), records: 20 });
      const outcome = await purgeAudit(env.db, plan, {
        audit: env.trail,
        actor: 'dpo',
        verifyChain: verifier,
      });
      expect(outcome).toEqual({ kind: 'purged', records: 20, throughSeq: second.at(-1) });

      // The remainder (and the purge's own record) verifies from the checkpoint at the cut.
      const result = await verifyChain(chainRows(env.db), await listCheckpoints(env.db), key.publicKey);
      expect(result).toMatchObject({ kind: 'ok', summary: { rows: 6, checkpoints: 2, anchored: true } });
    });
  });
}
