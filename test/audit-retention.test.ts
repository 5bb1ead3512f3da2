import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChainVerifier } from '../src/audit/export.ts';
import { planPurge, purgeAudit } from '../src/audit/retention.ts';
import { auditDatabase } from './helpers/audit-seed.ts';
import { databasesUnderTest } from './helpers/databases.ts';

const DAY = 86_400_000;
const NOW = new Date('2026-06-30T12:00:00Z');

for (const kind of databasesUnderTest()) {
  describe(`audit retention [${kind}]`, () => {
    let env: Awaited<ReturnType<typeof auditDatabase>>;
    const seqs = async () =>
      (
        await env.db
          .selectFrom('audit_event')
          .select('seq')
          .where('type', '=', 'seeded')
          .orderBy('seq')
          .execute()
      ).map((r) => Number(r.seq));

    beforeAll(async () => {
      env = await auditDatabase(kind);
      // Records 1–20 are 40 days old, 21–30 are 2 days old.
      await env.db
        .insertInto('audit_event')
        .values(
          Array.from({ length: 30 }, (_, i) => ({
            at: new Date(NOW.getTime() - (i < 20 ? 40 : 2) * DAY + i * 1000),
            type: 'seeded',
            outcome: 'success' as const,
            instance_id: 'test',
            hash: `h${i + 1}`,
          })),
        )
        .execute();
      await env.db
        .insertInto('audit_checkpoint')
        .values(['5', '10', '15', '25'].map((seq) => ({ seq, hash: `h${seq}`, key_id: 'k', signature: 's' })))
        .execute();
      await env.db
        .insertInto('audit_export')
        .values([
          { from_seq: '1', to_seq: '12', format: 'jsonl', verified: true, actor: 'a' },
          { from_seq: '13', to_seq: '20', format: 'csv', verified: false, actor: 'a' },
        ])
        .execute();
    });
    afterAll(async () => {
      await env?.close();
    });

    it('stops at the last checkpoint before the first record not exported and verified', async () => {
      const plan = await planPurge(env.db, { retentionDays: 30, now: NOW });
      expect(plan).toEqual({
        cutoff: new Date(NOW.getTime() - 30 * DAY),
        firstSeq: '1',
        throughSeq: '10',
        records: 10,
        keptFrom: { seq: '13', because: 'not_exported_verified' },
      });
      // --before earlier than the retention moves the cutoff back.
      const before = new Date(NOW.getTime() - 40 * DAY + 7_500);
      expect(await planPurge(env.db, { retentionDays: 30, before, now: NOW })).toMatchObject({
        throughSeq: '5',
        records: 5,
        keptFrom: { seq: '9', because: 'retention' },
      });
    });

    it('a broken chain refuses the purge; nothing is deleted', async () => {
      const plan = await planPurge(env.db, { retentionDays: 30, now: NOW });
      const broken: ChainVerifier = async () => ({ ok: false, seq: '7', problem: 'altered' });
      const outcome = await purgeAudit(env.db, plan, {
        audit: env.trail,
        actor: 'cli:x',
        verifyChain: broken,
      });
      expect(outcome).toEqual({ kind: 'refused', seq: '7', problem: 'altered' });
      expect(await seqs()).toHaveLength(30);
    });

    it('purges the verified prefix up to a checkpoint, keeps the checkpoints, audits itself', async () => {
      await env.db
        .insertInto('audit_export')
        .values({ from_seq: '13', to_seq: '20', format: 'jsonl', verified: true, actor: 'a' })
        .execute();
      const plan = await planPurge(env.db, { retentionDays: 30, now: NOW });
      expect(plan).toMatchObject({
        throughSeq: '15',
        records: 15,
        keptFrom: { seq: '21', because: 'retention' },
      });
      const verified: string[] = [];
      const holds: ChainVerifier = async (rows) => {
        for await (const row of rows) verified.push(row.seq);
        return { ok: true };
      };
      const outcome = await purgeAudit(env.db, plan, {
        audit: env.trail,
        actor: 'cli:dpo',
        verifyChain: holds,
      });
      expect(outcome).toEqual({ kind: 'purged', records: 15, throughSeq: '15' });
      expect(verified).toEqual(Array.from({ length: 15 }, (_, i) => String(i + 1)));
      expect(await seqs()).toEqual(Array.from({ length: 15 }, (_, i) => i + 16));
      const checkpoints = await env.db.selectFrom('audit_checkpoint').select('seq').orderBy('seq').execute();
      expect(checkpoints.map((c) => String(c.seq))).toEqual(['5', '10', '15', '25']);
      const purged = await env.db
        .selectFrom('audit_event')
        .select(['type', 'detail'])
        .where('type', '=', 'audit.purged')
        .executeTakeFirstOrThrow();
      expect(purged.detail).toEqual({
        throughSeq: '15',
        records: 15,
        cutoff: new Date(NOW.getTime() - 30 * DAY).toISOString(),
        actor: 'cli:dpo',
      });
      // What is left starts after a checkpoint; the next one is past the retention.
      expect(await planPurge(env.db, { retentionDays: 30, now: NOW })).toMatchObject({
        throughSeq: null,
        records: 0,
        keptFrom: { seq: '16', because: 'no_checkpoint' },
      });
      expect(
        await purgeAudit(env.db, await planPurge(env.db, { retentionDays: 30, now: NOW }), {
          audit: env.trail,
          actor: 'x',
        }),
      ).toEqual({
        kind: 'nothing',
      });
    });
  });
}
