import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.ts';
import { connectDatabase } from '../src/db/connect.ts';
import { cleanEnv, forCommands, runCli } from './helpers/cli.ts';
import { TEST_PASSWORD } from './helpers/clients.ts';

/** Reads or writes the PGlite data directory between two CLI runs (PGlite allows one process at a time). */
async function withDatabase<T>(
  dataDir: string,
  run: (db: Awaited<ReturnType<typeof connectDatabase>>['db']) => Promise<T>,
) {
  const { config } = loadConfig({ env: {}, overrides: { demo: true, database: { dataDir } } });
  const handle = await connectDatabase(config);
  try {
    return await run(handle.db);
  } finally {
    await handle.close();
  }
}

describe('passerelle CLI: enrollment codes and security keys', forCommands(6), () => {
  const dir = mkdtempSync(join(tmpdir(), 'passerelle-cli-webauthn-'));
  const dataDir = join(dir, 'pglite');
  const file = join(dir, 'passerelle.yaml');
  writeFileSync(
    file,
    [
      'issuer: https://passerelle.hopital.example',
      'database:',
      `  dataDir: ${dataDir}`,
      'webauthn:',
      '  rpId: passerelle.hopital.example',
      '  origins: [https://passerelle.hopital.example]',
      '  enrollmentCodeTtlSeconds: 1800',
      '',
    ].join('\n'),
  );
  const env = cleanEnv({ PASSERELLE_KEYS__ENCRYPTION_KEY: randomBytes(32).toString('base64') });
  const cli = (args: string[], input?: string) => runCli(['--config', file, ...args], { env, input });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('enroll prints a one-time code and its expiry, stores only its hash, and audits the issue', async () => {
    expect((await cli(['users', 'add', 'alice', '--password-stdin'], `${TEST_PASSWORD}\n`)).code).toBe(0);
    const before = Date.now();
    const result = await cli(['enroll', 'alice', '--by', 'helpdesk:marie']);
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^enrollment code for alice: [A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}$/);
    const expiry = /^valid once, until (\S+)$/.exec(lines[1] ?? '')?.[1] ?? '';
    expect(Math.abs(new Date(expiry).getTime() - (before + 1800 * 1000))).toBeLessThan(60_000);
    expect(lines[2]).toBe(
      'the user signs in, opens https://passerelle.hopital.example/account/security-keys and types this code',
    );
    const code = lines[0]?.split(': ')[1] ?? '';
    await withDatabase(dataDir, async (db) => {
      const rows = await db.selectFrom('enrollment_code').selectAll().execute();
      expect(rows.map((r) => r.issued_by)).toEqual(['helpdesk:marie']);
      expect(JSON.stringify(rows)).not.toContain(code.replace(/-/g, ''));
      const events = await db
        .selectFrom('audit_event')
        .selectAll()
        .where('type', '=', 'webauthn.enrollment_code')
        .execute();
      expect(events).toHaveLength(1);
      expect(events[0]?.detail).toMatchObject({ issuedBy: 'helpdesk:marie' });
      expect(JSON.stringify(events)).not.toContain(code.replace(/-/g, ''));
    });
    const unknown = await cli(['enroll', 'nobody']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe('no account nobody\n');
  });

  it('users keys lists the keys; users revoke-key revokes by name or id, audited as an administrator act', async () => {
    const id = randomBytes(32).toString('base64url');
    await withDatabase(dataDir, async (db) => {
      const account = await db
        .selectFrom('account')
        .select('id')
        .where('username', '=', 'alice')
        .executeTakeFirstOrThrow();
      await db
        .insertInto('webauthn_credential')
        .values({
          id,
          account_id: account.id,
          name: 'Clé bleue',
          public_key: new Uint8Array([1]),
          counter: 0,
          transports: JSON.stringify(['usb']),
          aaguid: 'ee882879-721c-4913-9775-3dfcce97072a',
          device_type: 'singleDevice',
          backed_up: false,
        })
        .execute();
    });
    const listed = await cli(['users', 'keys', 'alice']);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(
      new RegExp(
        `^${id}\\tClé bleue\\tee882879-721c-4913-9775-3dfcce97072a\\t\\S+\\tnever used\\tactive\\n$`,
      ),
    );
    const missing = await cli(['users', 'revoke-key', 'alice', 'Clé rouge']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe('no active key Clé rouge for alice\n');
    const revoked = await cli(['users', 'revoke-key', 'alice', 'Clé bleue', '--by', 'helpdesk:marie']);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toBe(`key Clé bleue (${id}) of alice revoked\n`);
    expect((await cli(['users', 'keys', 'alice'])).stdout).toMatch(/\trevoked \S+\n$/);
    expect((await cli(['users', 'revoke-key', 'alice', id])).code).toBe(1);
    await withDatabase(dataDir, async (db) => {
      const events = await db
        .selectFrom('audit_event')
        .selectAll()
        .where('type', '=', 'webauthn.revoked')
        .execute();
      expect(events).toHaveLength(1);
      expect(events[0]?.detail).toEqual({
        via: 'cli',
        actor: 'helpdesk:marie',
        credentialId: id,
        by: 'admin',
        operator: 'helpdesk:marie',
      });
    });
  });
});
