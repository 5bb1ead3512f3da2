import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AUDIT_COLUMNS,
  type AuditRow,
  auditRows,
  CHECKPOINT_COLUMNS,
  type ChainVerifier,
  exportAudit,
  parseRangeBound,
  resolveRange,
} from '../src/audit/export.ts';
import { appendEvents, auditDatabase, sampleEvents } from './helpers/audit-seed.ts';
import { databasesUnderTest } from './helpers/databases.ts';

/** RFC 4180 parser: quoted fields, doubled quotes, CRLF records; an unquoted empty field is null. */
function parseCsv(text: string): (string | null)[][] {
  const records: (string | null)[][] = [];
  let record: (string | null)[] = [];
  let i = 0;
  while (i < text.length) {
    let field: string | null;
    if (text[i] === '"') {
      let value = '';
      i++;
      for (;;) {
        const quote = text.indexOf('"', i);
        value += text.slice(i, quote);
        i = quote + 1;
        if (text[i] === '"') {
          value += '"';
          i++;
        } else break;
      }
      field = value;
    } else {
      const end = text.slice(i).search(/,|\r\n/);
      const raw = text.slice(i, i + end);
      if (raw.includes('"')) throw new Error(`bare quote in field at ${i}`);
      field = raw === '' ? null : raw;
      i += end;
    }
    record.push(field);
    if (text.startsWith('\r\n', i)) {
      records.push(record);
      record = [];
      i += 2;
    } else if (text[i] === ',') i++;
    else throw new Error(`unexpected character at ${i}`);
  }
  return records;
}

const JSON_COLUMNS = new Set(['amr', 'detail']);

function collect() {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

async function allRows(iterable: AsyncIterable<AuditRow>): Promise<AuditRow[]> {
  const rows: AuditRow[] = [];
  for await (const row of iterable) rows.push(row);
  return rows;
}

for (const kind of databasesUnderTest()) {
  describe(`audit export [${kind}]`, () => {
    let env: Awaited<ReturnType<typeof auditDatabase>>;
    let seqs: string[];

    beforeAll(async () => {
      env = await auditDatabase(kind);
      seqs = await appendEvents(env.db, env.trail, sampleEvents(25));
      // The trail chains the records itself; checkpoints with made-up values (the export copies them as they are).
      await env.db
        .insertInto('audit_checkpoint')
        .values([
          { seq: seqs[9] as string, hash: 'h9', key_id: 'audit-1', signature: 'sig,"9"' },
          { seq: seqs[19] as string, hash: 'h19', key_id: 'audit-1', signature: 'sig19' },
        ])
        .execute();
    });
    afterAll(async () => {
      await env?.close();
    });

    it('jsonl: header, every record with every column and value, checkpoints and public key; recorded unverified', async () => {
      const range = { fromSeq: seqs[5] as string, toSeq: seqs[24] as string };
      const expected = await allRows(auditRows(env.db, range));
      expect(expected).toHaveLength(20);
      const out = collect();
      const summary = await exportAudit(env.db, {
        range,
        format: 'jsonl',
        out: out.stream,
        instance: 'https://passerelle.hopital.example',
        actor: 'cli:auditor',
        publicKey: { kty: 'OKP', crv: 'Ed25519', x: 'abc', kid: 'audit-1' },
        pageSize: 7,
        now: () => new Date('2026-03-01T10:00:00.123Z'),
      });
      expect(summary).toMatchObject({ range, records: 20, checkpoints: 2, verification: 'not_run' });
      const lines = out
        .text()
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(lines[0]).toEqual({
        passerelle_audit_export: 1,
        from_seq: range.fromSeq,
        to_seq: range.toSeq,
        instance: 'https://passerelle.hopital.example',
        exported_at: '2026-03-01T10:00:00.123Z',
        columns: [...AUDIT_COLUMNS],
      });
      const records = lines.slice(1, 21);
      expect(records).toEqual(expected);
      for (const record of records) expect(Object.keys(record)).toEqual([...AUDIT_COLUMNS]);
      expect(records[1]).toMatchObject({ detail: { note: 'ligne 1\r\nligne 2 — é' } });
      expect(records[0].at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
      expect(lines.slice(21)).toEqual([
        {
          checkpoint: {
            seq: seqs[9],
            hash: 'h9',
            at: expect.any(String),
            key_id: 'audit-1',
            signature: 'sig,"9"',
          },
        },
        {
          checkpoint: {
            seq: seqs[19],
            hash: 'h19',
            at: expect.any(String),
            key_id: 'audit-1',
            signature: 'sig19',
          },
        },
        { public_key: { kty: 'OKP', crv: 'Ed25519', x: 'abc', kid: 'audit-1' } },
      ]);
      const recorded = await env.db
        .selectFrom('audit_export')
        .selectAll()
        .where('id', '=', summary.exportId)
        .executeTakeFirstOrThrow();
      expect({
        ...recorded,
        from_seq: String(recorded.from_seq),
        to_seq: String(recorded.to_seq),
      }).toMatchObject({
        from_seq: range.fromSeq,
        to_seq: range.toSeq,
        format: 'jsonl',
        verified: false,
        actor: 'cli:auditor',
      });
    });

    it('csv round trip: fixed column order, RFC 4180 quoting, same rows and values; checkpoints apart', async () => {
      const range = { fromSeq: seqs[0] as string, toSeq: seqs[24] as string };
      const expected = await allRows(auditRows(env.db, range));
      const out = collect();
      const checkpoints = collect();
      const summary = await exportAudit(env.db, {
        range,
        format: 'csv',
        out: out.stream,
        checkpointsOut: checkpoints.stream,
        instance: 'x',
        actor: 'cli:auditor',
      });
      expect(summary.records).toBe(25);
      const [header, ...records] = parseCsv(out.text());
      expect(header).toEqual([...AUDIT_COLUMNS]);
      const parsed = records.map((fields) =>
        Object.fromEntries(
          AUDIT_COLUMNS.map((c, i) => {
            const v = fields[i] ?? null;
            return [c, v !== null && JSON_COLUMNS.has(c) ? JSON.parse(v) : v];
          }),
        ),
      );
      expect(parsed).toEqual(expected);
      // The empty user agent stays an empty string, distinct from an absent one.
      expect(parsed[1]?.user_agent).toBe('');
      expect(parsed[2]?.user_agent).toBeNull();
      expect(out.text()).toContain('"Mozilla/5.0 (X11; Linux x86_64) ""quoted"", comma"');
      const [cpHeader, ...cps] = parseCsv(checkpoints.text());
      expect(cpHeader).toEqual([...CHECKPOINT_COLUMNS]);
      expect(cps.map((c) => [c[0], c[1], c[3], c[4]])).toEqual([
        [seqs[9], 'h9', 'audit-1', 'sig,"9"'],
        [seqs[19], 'h19', 'audit-1', 'sig19'],
      ]);
    });

    it('runs the chain verifier over the whole range and records the outcome', async () => {
      const range = { fromSeq: seqs[0] as string, toSeq: seqs[24] as string };
      const seen: string[] = [];
      const holds: ChainVerifier = async (rows) => {
        for await (const row of rows) seen.push(row.seq);
        return { ok: true };
      };
      const exportWith = (verifyChain: ChainVerifier) =>
        exportAudit(env.db, {
          range,
          format: 'jsonl',
          out: collect().stream,
          instance: 'x',
          actor: 'a',
          verifyChain,
          pageSize: 4,
        });
      const ok = await exportWith(holds);
      expect(seen).toEqual(seqs);
      expect(ok.verification).toBe('verified');
      const broken: ChainVerifier = async () => ({ ok: false, seq: seqs[3] as string, problem: 'altered' });
      const bad = await exportWith(broken);
      expect(bad.verification).toEqual({ seq: seqs[3], problem: 'altered' });
      const verified = await env.db
        .selectFrom('audit_export')
        .select(['id', 'verified'])
        .where('id', 'in', [ok.exportId, bad.exportId])
        .execute();
      expect(Object.fromEntries(verified.map((v) => [v.id, v.verified]))).toEqual({
        [ok.exportId]: true,
        [bad.exportId]: false,
      });
    });

    it('resolves ranges from sequence numbers and dates (to-date exclusive)', async () => {
      // A record whose millisecond differs from its predecessor's: dates bound ranges to the millisecond.
      const rows = await allRows(
        auditRows(env.db, { fromSeq: seqs[0] as string, toSeq: seqs[24] as string }),
      );
      const ms = rows.map((r) => Date.parse(r.at));
      const index = ms.findIndex((t, i) => i >= 5 && t > (ms[i - 1] as number));
      expect(index).toBeGreaterThan(0);
      const boundary = new Date(ms[index] as number);
      expect(
        await resolveRange(env.db, parseRangeBound(seqs[3] as string), parseRangeBound(seqs[6] as string)),
      ).toEqual({
        fromSeq: seqs[3],
        toSeq: seqs[6],
      });
      expect(await resolveRange(env.db, { at: boundary }, undefined)).toEqual({
        fromSeq: seqs[index],
        toSeq: seqs[24],
      });
      expect(await resolveRange(env.db, undefined, { at: boundary })).toEqual({
        fromSeq: seqs[0],
        toSeq: seqs[index - 1],
      });
      expect(
        await resolveRange(env.db, parseRangeBound('2000-01-01'), parseRangeBound('2000-02-01')),
      ).toBeUndefined();
      expect(parseRangeBound('not a date')).toBeUndefined();
    });
  });
}
