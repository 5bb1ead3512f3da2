import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CONFIG_EXIT_CODE, ConfigError, type LoadOptions, loadConfig } from '../src/config/load.ts';
import { configSchema } from '../src/config/schema.ts';
import { cleanEnv, runCli } from './helpers/cli.ts';

const KEY = randomBytes(32).toString('base64');
const dir = mkdtempSync(join(tmpdir(), 'passerelle-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** The problems reported by loadConfig, or a failure when the configuration is accepted. */
function problems(options: LoadOptions): readonly string[] {
  try {
    loadConfig(options);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('the configuration was accepted');
}

describe('loadConfig', () => {
  it('demo mode alone gives a complete configuration with the documented defaults', () => {
    const { config, warnings } = loadConfig({ env: { PASSERELLE_DEMO: 'true' } });
    expect(config.demo).toBe(true);
    expect(config.issuer).toBe('http://localhost:3000');
    expect(config.http).toEqual({
      host: '127.0.0.1',
      port: 3000,
      trustProxy: false,
      clientCertVerifyHeader: 'x-ssl-client-verify',
      bodyLimitBytes: 65_536,
      shutdownGraceSeconds: 10,
      outboundAllowPrivateAddresses: true,
    });
    expect(config.database).toEqual({ dataDir: './data/pglite', poolSize: 10, connectTimeoutSeconds: 30 });
    expect(config.keys.reloadIntervalSeconds).toBe(10);
    // The public demo key-encryption key: 32 bytes, never required from the operator in demo mode.
    expect(Buffer.from(config.keys.encryptionKey, 'base64')).toHaveLength(32);
    expect(config.tokens).toMatchObject({ authorizationCodeTtl: 60, accessTokenTtl: 600, idTokenTtl: 600 });
    expect(config.purge).toEqual({ intervalSeconds: 60, batchSize: 500 });
    expect(config.log.level).toBe('info');
    expect(config.ui.defaultLocale).toBe('fr');
    expect(config.policy.levels.map((l) => l.acr)).toEqual([
      'urn:passerelle:loa:low',
      'urn:passerelle:loa:substantial',
      'urn:passerelle:loa:high',
    ]);
    expect(config.clients).toEqual([]);
    expect(warnings.join('\n')).toMatch(/DEMO MODE/);
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('the documented sample deploy/passerelle.example.yaml is a valid configuration using every section', () => {
    const path = join(import.meta.dirname, '../deploy/passerelle.example.yaml');
    const { config } = loadConfig({
      env: {
        PASSERELLE_KEYS__ENCRYPTION_KEY: KEY,
        PASSERELLE_PSC_LOGIN__CLIENT_SECRET: 'from-the-environment',
      },
      file: path,
    });
    expect(config.pscLogin?.clientSecret).toBe('from-the-environment');
    const sections = Object.keys(configSchema.shape);
    const documented = readFileSync(path, 'utf8').match(/^[a-zA-Z]+(?=:)/gm) ?? [];
    expect(documented.sort()).toEqual(sections.sort());
    expect(config.sessions.sharedWorkstations.networks).toEqual(['10.20.0.0/16']);
  });

  it('throttling that would let the Active Directory lockout threshold be reached is refused, naming the key', () => {
    const reported = problems({
      env: { PASSERELLE_DEMO: 'true' },
      overrides: { throttle: { lockAfter: 8, directoryLockoutThreshold: 10 } },
    });
    expect(reported).toEqual([
      expect.stringMatching(/^throttle\.lockAfter: allows 10 failures within windowSeconds/),
    ]);
    expect(
      problems({
        env: { PASSERELLE_DEMO: 'true' },
        overrides: { throttle: { lockAfter: 99, directoryLockoutThreshold: 0 } },
      }),
    ).toEqual([
      expect.stringMatching(/^throttle\.lockSeconds: allows more than 100 failed attempts per hour/),
    ]);
  });

  it('a client or default level that is not one of the policy levels is refused, naming the key', () => {
    const reported = problems({
      env: { PASSERELLE_DEMO: 'true' },
      overrides: {
        policy: { defaultAcr: 'eidas3' },
        clients: [
          {
            clientId: 'app',
            redirectUris: ['https://app.example/cb'],
            tokenEndpointAuthMethod: 'none',
            requiredAcr: 'gold',
          },
        ],
      },
    });
    expect(reported).toContainEqual(expect.stringMatching(/^policy\.defaultAcr: must be one of the levels/));
    expect(reported).toContainEqual(
      expect.stringMatching(/^clients\.0\.requiredAcr: must be one of the levels/),
    );
  });

  it('command-line overrides turn demo mode on as well', () => {
    const { config } = loadConfig({ env: {}, overrides: { demo: true } });
    expect(config.demo).toBe(true);
  });

  it('outside demo mode a missing issuer and a missing encryption key are both reported by name', () => {
    const reported = problems({ env: {} });
    expect(reported).toHaveLength(2);
    expect(reported).toContainEqual(expect.stringMatching(/^issuer: is required outside demo mode/));
    expect(reported).toContainEqual(
      expect.stringMatching(/^keys\.encryptionKey: is required outside demo mode.*openssl rand -base64 32/),
    );
  });

  it('refuses a plain http issuer unless it is a loopback address', () => {
    for (const issuer of ['http://idp.hopital.fr', 'http://127.0.0.1.nip.io', 'http://10.0.0.5:3000']) {
      const reported = problems({
        env: { PASSERELLE_ISSUER: issuer, PASSERELLE_KEYS__ENCRYPTION_KEY: KEY },
      });
      expect(reported, issuer).toEqual([
        'issuer (from PASSERELLE_ISSUER): must be an https:// URL (plain http is accepted on loopback addresses only)',
      ]);
    }
    for (const issuer of [
      'https://idp.hopital.fr/',
      'http://127.0.0.1:3999',
      'http://localhost:3000',
      'http://[::1]:3000',
    ]) {
      const { config } = loadConfig({
        env: { PASSERELLE_ISSUER: issuer, PASSERELLE_KEYS__ENCRYPTION_KEY: KEY },
      });
      expect(config.issuer, issuer).toBe(issuer.replace(/\/$/, ''));
      expect(config.keys.encryptionKey).toBe(KEY);
    }
  });

  it('an encryption key that is not 32 bytes of base64 is refused', () => {
    expect(
      problems({
        env: {
          PASSERELLE_ISSUER: 'https://idp.hopital.fr',
          PASSERELLE_KEYS__ENCRYPTION_KEY: randomBytes(16).toString('base64'),
        },
      }),
    ).toEqual([
      'keys.encryptionKey (from PASSERELLE_KEYS__ENCRYPTION_KEY): must be 32 bytes encoded in base64',
    ]);
  });

  it('names the environment variable a bad value came from', () => {
    const reported = problems({ env: { PASSERELLE_DEMO: 'true', PASSERELLE_HTTP__PORT: '99999' } });
    expect(reported).toHaveLength(1);
    expect(reported[0]).toMatch(/^http\.port \(from PASSERELLE_HTTP__PORT\): \S/);
    expect(reported[0]).toContain('65535');
  });

  it('maps DATABASE_URL to database.url verbatim and PORT to http.port', () => {
    const url = 'postgres://passerelle:s3cret@db.hopital.fr:5432/passerelle?sslmode=require';
    const { config } = loadConfig({ env: { PASSERELLE_DEMO: 'true', DATABASE_URL: url, PORT: '8080' } });
    expect(config.database.url).toBe(url);
    expect(config.http.port).toBe(8080);
    expect(config.issuer).toBe('http://localhost:8080');
    expect(problems({ env: { PASSERELLE_DEMO: 'true', DATABASE_URL: 'mysql://db/passerelle' } })).toEqual([
      'database.url (from DATABASE_URL): must be a postgres:// or postgresql:// URL',
    ]);
  });

  it('reads nested keys from the environment (PASSERELLE_SECTION__SOME_KEY) over the file', () => {
    const path = file('layered.yaml', 'demo: true\nhttp:\n  port: 4000\n  host: 127.0.0.1\n');
    const { config } = loadConfig({
      env: { PASSERELLE_HTTP__PORT: '5000', PASSERELLE_KEYS__RELOAD_INTERVAL_SECONDS: '3' },
      file: path,
    });
    expect(config.http.port).toBe(5000);
    expect(config.http.host).toBe('127.0.0.1');
    expect(config.keys.reloadIntervalSeconds).toBe(3);
  });

  it('reports unknown keys of a YAML file as "unknown key", nested ones with their full path', () => {
    const path = file('unknown.yaml', 'demo: true\nbogus: 1\nhttp:\n  prot: 3000\n');
    const reported = problems({ env: {}, file: path });
    expect(reported).toHaveLength(2);
    expect(reported).toContain('bogus: unknown key');
    expect(reported).toContain('http.prot: unknown key');
  });

  it('finds the file through PASSERELLE_CONFIG', () => {
    const path = file('via-env.yml', 'demo: true\nui:\n  defaultLocale: en\n');
    const loaded = loadConfig({ env: { PASSERELLE_CONFIG: path } });
    expect(loaded.file).toBe(path);
    expect(loaded.config.ui.defaultLocale).toBe('en');
  });

  it('a file that is not valid YAML, not a mapping, or missing gives one clear message', () => {
    const broken = file('broken.yaml', 'demo: true\nhttp: [port: 3000\n  host: : :\n');
    const [message, ...rest] = problems({ env: {}, file: broken });
    expect(rest).toEqual([]);
    expect(message).toMatch(new RegExp(`^config file ${broken}: not valid YAML \\(.+\\)$`));

    const json = file('broken.json', '{"demo": true,');
    expect(problems({ env: {}, file: json })[0]).toMatch(/^config file .*broken\.json: not valid JSON \(/);

    const list = file('list.yaml', '- demo\n- true\n');
    expect(problems({ env: {}, file: list })).toEqual([
      `config file ${list}: must contain a mapping of keys`,
    ]);

    const missing = join(dir, 'absent.yaml');
    expect(problems({ env: {}, file: missing })).toEqual([`config file ${missing}: cannot be read (ENOENT)`]);
  });

  it('declared clients authenticating with a secret must declare it', () => {
    const client = { clientId: 'dpi', redirectUris: ['https://dpi.hopital.fr/cb'] };
    expect(problems({ env: {}, overrides: { demo: true, clients: [client] } })).toEqual([
      'clients.0.clientSecret: is required with client_secret_basic',
    ]);
    expect(
      problems({
        env: {},
        overrides: { demo: true, clients: [{ ...client, tokenEndpointAuthMethod: 'client_secret_post' }] },
      }),
    ).toEqual(['clients.0.clientSecret: is required with client_secret_post']);

    const secret = 'a'.repeat(32);
    const { config } = loadConfig({
      env: {},
      overrides: {
        demo: true,
        clients: [
          { ...client, clientSecret: secret },
          { clientId: 'mobile', redirectUris: ['https://m.hopital.fr/cb'], tokenEndpointAuthMethod: 'none' },
        ],
      },
    });
    expect(config.clients.map((c) => [c.clientId, c.tokenEndpointAuthMethod])).toEqual([
      ['dpi', 'client_secret_basic'],
      ['mobile', 'none'],
    ]);
    expect(config.clients[0]?.clientSecret).toBe(secret);
  });

  it('declared clients in a YAML file are validated too', () => {
    const path = file(
      'clients.yaml',
      [
        'demo: true',
        'clients:',
        '  - clientId: dpi',
        '    redirectUris: [https://dpi.hopital.fr/cb]',
        '    clientSecret: too-short',
      ].join('\n'),
    );
    expect(problems({ env: {}, file: path })).toEqual([
      'clients.0.clientSecret: must be at least 32 characters',
    ]);
  });
});

describe('passerelle CLI with an invalid configuration', () => {
  it(`serve exits with ${CONFIG_EXIT_CODE} (EX_CONFIG) and names each faulty key on stderr`, async () => {
    const result = await runCli(['serve'], {
      env: cleanEnv({
        PASSERELLE_ISSUER: 'http://idp.hopital.fr',
        PASSERELLE_HTTP__PORT: '99999',
        // Never touches the repository's data directory, even if the configuration were accepted.
        PASSERELLE_DATABASE__DATA_DIR: 'memory://',
      }),
    });
    expect(result.code, result.stderr).toBe(78);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^passerelle: invalid configuration:/);
    expect(result.stderr).toContain('http.port (from PASSERELLE_HTTP__PORT): ');
    expect(result.stderr).toContain('issuer (from PASSERELLE_ISSUER): must be an https:// URL');
    expect(result.stderr).toContain('keys.encryptionKey: is required outside demo mode');
  });

  it('a configuration file with an unknown key stops any command with exit code 78', async () => {
    const path = file('cli-unknown.yaml', 'demo: true\ndatabase:\n  dataDir: memory://\n  pool: 3\n');
    const result = await runCli(['--config', path, 'users', 'list'], { env: cleanEnv() });
    expect(result.code, result.stderr).toBe(78);
    expect(result.stderr).toContain('database.pool: unknown key');
  });
});
