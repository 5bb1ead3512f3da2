import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { embeddedCli, forCommands } from './helpers/cli.ts';

/** `passerelle audit export|report|purge` end to end: a real process on an embedded database. */
describe('passerelle audit outputs (PGlite)', forCommands(4), () => {
  const embedded = embeddedCli('passerelle-cli-audit-');
  const { cli, dataDir } = embedded;

  beforeAll(async () => {
    for (const name of ['marie', 'paul']) {
      const unlocked = await cli(['users', 'unlock', name]);
      expect(unlocked.code, unlocked.stderr).toBe(0);
    }
  });
  afterAll(() => embedded.remove());

  it('exports jsonl to stdout and csv to files, records both exports', async () => {
    const jsonl = await cli(['audit', 'export', '--by', 'auditor']);
    expect(jsonl.code, jsonl.stderr).toBe(0);
    const lines = jsonl.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines[0]).toMatchObject({ passerelle_audit_export: 1, from_seq: '1' });
    const records = lines.filter((l) => l.seq !== undefined);
    expect(records.map((l) => l.seq)).toEqual(records.map((_, i) => String(i + 1)));
    expect(records.filter((l) => l.type === 'admin.account.unlocked').map((l) => l.detail.username)).toEqual([
      'marie',
      'paul',
    ]);
    // The export verified the chain with the audit key, and carries that key.
    expect(jsonl.stderr).toMatch(
      new RegExp(
        `records 1\\.\\.${records.length} \\(${records.length}\\), \\d+ checkpoints?, chain verified`,
      ),
    );
    expect(lines.some((l) => l.public_key?.kty === 'OKP')).toBe(true);
    const out = join(dataDir, 'march.csv');
    const csv = await cli(['audit', 'export', '--from', '2', '--format', 'csv', '--out', out]);
    expect(csv.code, csv.stderr).toBe(0);
    expect(readFileSync(out, 'utf8').split('\r\n')[1]).toMatch(/^2,/);
    expect(readFileSync(`${out}.checkpoints.csv`, 'utf8').split('\r\n')[0]).toBe(
      'seq,hash,at,key_id,signature',
    );
    const refused = await cli(['audit', 'export', '--format', 'csv']);
    expect(refused).toMatchObject({ code: 1, stderr: expect.stringContaining('--format csv needs --out') });
  });

  it('reports the month; refuses to purge when no retention is configured', async () => {
    const month = new Date().toISOString().slice(0, 7);
    const report = await cli(['audit', 'report', '--month', month, '--format', 'json']);
    expect(report.code, report.stderr).toBe(0);
    expect(JSON.parse(report.stdout)).toMatchObject({ month, logins: { total: 0 }, lockouts: 0 });
    const purge = await cli(['audit', 'purge']);
    expect(purge).toMatchObject({
      code: 1,
      stderr: expect.stringContaining('audit.retention.days is not set'),
    });
  });
});
