import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config/load.ts';
import { cleanEnv, runCli } from './helpers/cli.ts';
import { REFUSED_PORT } from './helpers/net.ts';

// A PostgreSQL server that cannot be reached at start is named (host, port, the URL without its password),
// after a bounded wait, with its own exit code: not « migration (unknown) failed ».

function configProblems(env: Record<string, string>): string[] {
  try {
    loadConfig({ env: { PASSERELLE_DEMO: 'true', ...env } });
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
}

describe('a database that cannot be reached at start', () => {
  it('names the host, the port and DATABASE_URL (without the password) and exits 69 after the bounded wait', async () => {
    // Nothing can listen there: connecting is refused at once.
    const port = REFUSED_PORT;
    const url = `postgres://passerelle:Tr3s-secret@127.0.0.1:${port}/passerelle`;
    const started = Date.now();
    const result = await runCli(['serve'], {
      env: cleanEnv({
        PASSERELLE_DEMO: 'true',
        DATABASE_URL: url,
        PASSERELLE_DATABASE__CONNECT_TIMEOUT_SECONDS: '2',
      }),
    });
    const waited = Date.now() - started;
    expect(result.code, result.stderr).toBe(69);
    const message = result.stderr.trim().split('\n').at(-1) ?? '';
    expect(message).toMatch(/^passerelle: cannot reach the PostgreSQL server/);
    expect(message).toContain(`127.0.0.1:${port}`);
    expect(message).toContain('DATABASE_URL');
    expect(message).toContain(`postgres://passerelle:***@127.0.0.1:${port}/passerelle`);
    expect(message).toContain('2 s');
    expect(result.stderr).not.toContain('Tr3s-secret');
    expect(result.stderr).not.toContain('migration');
    expect(result.stderr).not.toMatch(/\n\s+at /);
    // It tried for the configured time, not once and not forever.
    expect(waited).toBeGreaterThanOrEqual(2_000);
  });

  it('a URL that is not one is a configuration error (exit 78), before any connection', async () => {
    expect(
      configProblems({ DATABASE_URL: 'postgres://passerelle:pw@db.hopital.example:port/passerelle' }),
    ).toEqual([
      'database.url (from DATABASE_URL): is not a valid URL (postgres://user:password@host:port/database)',
    ]);
    const result = await runCli(['migrate'], {
      env: cleanEnv({
        PASSERELLE_DEMO: 'true',
        DATABASE_URL: 'postgres://passerelle:pw@db.hopital.example:port/x',
      }),
    });
    expect(result.code, result.stderr).toBe(78);
    expect(result.stderr).toContain('database.url (from DATABASE_URL)');
    expect(result.stderr).not.toContain(':pw@');
  });

  it('database.connectTimeoutSeconds: 30 by default, a positive number of seconds', () => {
    expect(loadConfig({ env: { PASSERELLE_DEMO: 'true' } }).config.database.connectTimeoutSeconds).toBe(30);
    expect(configProblems({ PASSERELLE_DATABASE__CONNECT_TIMEOUT_SECONDS: '0' })).toEqual([
      expect.stringMatching(
        /^database\.connectTimeoutSeconds \(from PASSERELLE_DATABASE__CONNECT_TIMEOUT_SECONDS\): /,
      ),
    ]);
  });
});
