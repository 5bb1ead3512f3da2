import { randomBytes } from 'node:crypto';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrations } from '../migrations/index.ts';
import { type CliResult, cleanEnv, embeddedCli, forCommands, runCli } from './helpers/cli.ts';
import { TEST_PASSWORD } from './helpers/clients.ts';
import { createTestDatabase, databasesUnderTest, queryOnce, type TestDatabase } from './helpers/databases.ts';

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;
const SECRET_LINE = /^client secret \(shown once, store it now\): (\S+)$/m;

function occurrences(text: string, needle: string): number {
  return text.split(needle).length - 1;
}

/** Lines of `keys list`: kid, family, created, state. */
function keyLines(stdout: string): { kid: string; family: string; state: string }[] {
  return stdout
    .trim()
    .split('\n')
    .map((line) => {
      const [kid = '', family = '', , state = ''] = line.split('\t');
      return { kid, family, state };
    });
}

describe('passerelle CLI help', forCommands(8), () => {
  const commands: [string[], string][] = [
    [[], 'Usage: passerelle [options] [command]'],
    [['serve'], 'Usage: passerelle serve [options]'],
    [['migrate'], 'Usage: passerelle migrate [options] [direction]'],
    [['keys'], 'Usage: passerelle keys [options] [command]'],
    [['keys', 'list'], 'Usage: passerelle keys list [options]'],
    [['keys', 'rotate'], 'Usage: passerelle keys rotate [options]'],
    [['clients'], 'Usage: passerelle clients [options] [command]'],
    [['clients', 'add'], 'Usage: passerelle clients add [options] <client-id>'],
    [['clients', 'list'], 'Usage: passerelle clients list [options]'],
    [['clients', 'show'], 'Usage: passerelle clients show [options] <client-id>'],
    [['clients', 'rotate-secret'], 'Usage: passerelle clients rotate-secret [options] <client-id>'],
    [['clients', 'remove'], 'Usage: passerelle clients remove [options] <client-id>'],
    [['users'], 'Usage: passerelle users [options] [command]'],
    [['users', 'add'], 'Usage: passerelle users add [options] <username>'],
    [['users', 'list'], 'Usage: passerelle users list [options]'],
    [['users', 'disable'], 'Usage: passerelle users disable [options] <username>'],
    [['users', 'enable'], 'Usage: passerelle users enable [options] <username>'],
    [['users', 'set-password'], 'Usage: passerelle users set-password [options] <username>'],
    [['users', 'add-card'], 'Usage: passerelle users add-card [options] <username> <certificate>'],
    [['users', 'cards'], 'Usage: passerelle users cards [options] <username>'],
    [['users', 'remove-card'], 'Usage: passerelle users remove-card [options] <username> <fingerprint>'],
  ];

  it('--help works for every command and subcommand, without any configuration', async () => {
    const results: CliResult[] = [];
    // A few at a time: the machine also runs other test files.
    for (let i = 0; i < commands.length; i += 6) {
      const batch = commands.slice(i, i + 6);
      results.push(
        ...(await Promise.all(batch.map(([args]) => runCli([...args, '--help'], { env: cleanEnv() })))),
      );
    }
    for (const [i, [args, usage]] of commands.entries()) {
      const result = results[i];
      const label = `passerelle ${args.join(' ')} --help`;
      expect(result?.code, `${label}\n${result?.stderr}`).toBe(0);
      expect(result?.stdout.split('\n')[0], label).toBe(usage);
      expect(result?.stdout, label).toContain('-h, --help');
    }
    const byArgs = (args: string) => results[commands.findIndex(([a]) => a.join(' ') === args)]?.stdout ?? '';
    expect(byArgs('serve')).toContain('--demo');
    expect(byArgs('clients add')).toContain('--redirect-uri <uri>');
    expect(byArgs('users add')).toContain('--password-stdin');
    expect(byArgs('users set-password')).toContain('--password-stdin');
    for (const sub of ['serve', 'migrate', 'keys', 'clients', 'users']) expect(byArgs('')).toContain(sub);
  });
});

// Each command starts the embedded database (1–3 s, more on a loaded machine): generous timeouts.
describe('passerelle CLI administration on an embedded PGlite data directory', forCommands(5), () => {
  const { cli, remove, dataDir } = embeddedCli('passerelle-cli-');
  afterAll(remove);

  let secret = '';
  let initialKeys: { kid: string; family: string; state: string }[] = [];

  const migrationNames = Object.keys(migrations);

  it('migrate applies every migration, in order', async () => {
    const result = await cli(['migrate']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe(migrationNames.map((name) => `applied ${name}\n`).join(''));
  });

  it('users add reads the password from standard input', async () => {
    const result = await cli(
      ['users', 'add', 'alice', '--name', 'Alice Martin', '--password-stdin'],
      `${TEST_PASSWORD}\n`,
    );
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(new RegExp(`^account alice created \\(id ${UUID.source}\\)\\n$`));
    expect(result.stdout + result.stderr).not.toContain(TEST_PASSWORD);
  });

  it('users add refuses a password that is too short', async () => {
    const result = await cli(['users', 'add', 'bob', '--password-stdin'], 'short\n');
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('password: at least 12 characters');
    expect(result.stdout).toBe('');
  });

  it('users list shows alice (and not the refused bob)', async () => {
    const result = await cli(['users', 'list']);
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^alice\\t${UUID.source}\\tactive\\tAlice Martin$`));
  });

  it('users establishments lists, adds and removes the establishments of an account', async () => {
    const file = join(dataDir, 'ght.yaml');
    writeFileSync(
      file,
      [
        'establishments:',
        '  - { finess: "350005179", name: CHU de Rennes, tid: tid-rennes }',
        '  - { finess: "560008799", name: CH de Vannes, tid: tid-vannes, members: all }',
      ].join('\n'),
    );
    const run = (...args: string[]) => cli(['--config', file, 'users', 'establishments', 'alice', ...args]);
    expect((await run()).stdout).toBe('560008799\tCH de Vannes\ttid tid-vannes\tall\n');
    const added = await run('--add', '350005179', '--by', 'helpdesk.dupont');
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toBe(
      'alice: listed in 350005179\n350005179\tCHU de Rennes\ttid tid-rennes\tlisted\n560008799\tCH de Vannes\ttid tid-vannes\tall\n',
    );
    const removed = await run('--remove', '350005179');
    expect(removed.stdout.split('\n')[0]).toBe('alice: removed from 350005179');
    const unknown = await run('--add', '111111111');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no establishment with FINESS 111111111');
  });

  it('clients add prints the generated secret exactly once', async () => {
    const result = await cli([
      'clients',
      'add',
      'app',
      '--redirect-uri',
      'https://app.example/cb',
      '--name',
      'App',
    ]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('client app registered\n');
    secret = SECRET_LINE.exec(result.stdout)?.[1] ?? '';
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(occurrences(result.stdout + result.stderr, secret)).toBe(1);
  });

  it('clients show displays the metadata but never the secret', async () => {
    const result = await cli(['clients', 'show', 'app']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).not.toContain(secret);
    expect(JSON.parse(result.stdout)).toMatchObject({
      client_id: 'app',
      client_name: 'App',
      redirect_uris: ['https://app.example/cb'],
      token_endpoint_auth_method: 'client_secret_basic',
      client_secret: '(set)',
    });
  });

  it("clients add --no-pkce: Keycloak's broker (PSC) without PKCE; never a public client", async () => {
    // The GHT's establishments (written by the establishments test above).
    const file = join(dataDir, 'ght.yaml');
    const added = await cli([
      '--config',
      file,
      'clients',
      'add',
      'psc-vannes',
      '--redirect-uri',
      'https://auth.bas.psc.esante.gouv.fr/auth/realms/esante-wallet/broker/ch-vannes/endpoint',
      '--psc-establishment',
      '560008799',
      '--no-pkce',
    ]);
    expect(added.code, added.stderr).toBe(0);
    expect(JSON.parse((await cli(['--config', file, 'clients', 'show', 'psc-vannes'])).stdout)).toMatchObject(
      {
        token_endpoint_auth_method: 'client_secret_post',
        pkce_required: false,
        psc_establishment: '560008799',
      },
    );
    const refused = await cli([
      'clients',
      'add',
      'pub',
      '--redirect-uri',
      'https://pub.example/cb',
      '--auth-method',
      'none',
      '--no-pkce',
    ]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('pkceRequired: cannot be false for a public client');
    await cli(['--config', file, 'clients', 'remove', 'psc-vannes']);
  });

  it('clients rotate-secret prints a new secret once', async () => {
    const result = await cli(['clients', 'rotate-secret', 'app']);
    expect(result.code, result.stderr).toBe(0);
    const rotated = SECRET_LINE.exec(result.stdout)?.[1] ?? '';
    expect(rotated).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(rotated).not.toBe(secret);
    expect(occurrences(result.stdout + result.stderr, rotated)).toBe(1);
  });

  it('clients list lists the client', async () => {
    const result = await cli(['clients', 'list']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe('app\tclient_secret_basic\tcli\tApp\thttps://app.example/cb\n');
  });

  it('clients remove removes it', async () => {
    const removed = await cli(['clients', 'remove', 'app']);
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout).toBe('client app removed\n');
    const shown = await cli(['clients', 'show', 'app']);
    expect(shown.code).toBe(1);
    expect(shown.stderr).toContain('no client app');
  });

  it('keys list shows one active key per family', async () => {
    const result = await cli(['keys', 'list']);
    expect(result.code, result.stderr).toBe(0);
    initialKeys = keyLines(result.stdout);
    expect(initialKeys.map((k) => k.family).sort()).toEqual(['EC-P256', 'RSA-3072']);
    for (const key of initialKeys) expect(key.state).toBe('active');
  });

  it('keys rotate adds new keys; the previous ones show as retired but still published', async () => {
    const rotated = await cli(['keys', 'rotate']);
    expect(rotated.code, rotated.stderr).toBe(0);
    const newKids = [...rotated.stdout.matchAll(/^new key (\S+)$/gm)].map((m) => m[1]);
    expect(newKids).toHaveLength(2);
    expect(rotated.stdout).toContain('running instances pick the new keys up within 10 s');

    const listed = keyLines((await cli(['keys', 'list'])).stdout);
    expect(listed).toHaveLength(4);
    for (const kid of newKids) expect(listed.find((k) => k.kid === kid)?.state).toBe('active');
    for (const old of initialKeys) {
      expect(listed.find((k) => k.kid === old.kid)?.state).toMatch(
        // In the establishment's time zone (ui.timeZone, default Europe/Paris), with its offset.
        /^retired \d{4}-\d\d-\d\dT[\d:]+[+-]\d\d:\d\d, published until \d{4}-\d\d-\d\dT[\d:]+[+-]\d\d:\d\d$/,
      );
    }
    expect(
      listed
        .filter((k) => k.state === 'active')
        .map((k) => k.family)
        .sort(),
    ).toEqual(['EC-P256', 'RSA-3072']);
  });

  it('migrate status lists every migration as applied', async () => {
    const result = await cli(['migrate', 'status']);
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines.map((line) => line.split('\t')[0])).toEqual(migrationNames);
    for (const line of lines) expect(line).toMatch(/^\w+\tapplied \d{4}-\d\d-\d\dT[\d:]+[+-]\d\d:\d\d$/);
  });
});

if (databasesUnderTest().includes('postgres')) {
  describe('passerelle CLI administration on PostgreSQL (DATABASE_URL)', forCommands(5), () => {
    let database: TestDatabase;
    const unusedDataDir = join(tmpdir(), `passerelle-cli-unused-${randomBytes(6).toString('hex')}`);
    beforeAll(async () => {
      database = await createTestDatabase('postgres');
    });
    afterAll(async () => {
      rmSync(unusedDataDir, { recursive: true, force: true });
      await database?.drop();
    });

    it('users add, users list and migrate status work against the server, not PGlite', async () => {
      const env = cleanEnv({
        DATABASE_URL: database.url ?? '',
        PASSERELLE_DATABASE__DATA_DIR: unusedDataDir,
        PASSERELLE_DEMO: 'true',
      });
      const added = await runCli(['users', 'add', 'carol', '--password-stdin'], {
        env,
        input: TEST_PASSWORD,
      });
      expect(added.code, added.stderr).toBe(0);
      expect(added.stdout).toMatch(/^account carol created/);
      const listed = await runCli(['users', 'list'], { env });
      expect(listed.code, listed.stderr).toBe(0);
      expect(listed.stdout).toMatch(/^carol\t\S+\tactive\t/);
      const status = await runCli(['migrate', 'status'], { env });
      expect(status.code, status.stderr).toBe(0);
      expect(status.stdout).toMatch(/^0001_initial\tapplied /);

      // The rows are on the server, and no embedded data directory was created.
      expect(existsSync(unusedDataDir)).toBe(false);
      expect(await queryOnce('select username from account', database.url)).toEqual([{ username: 'carol' }]);
      expect(
        await queryOnce('select family from signing_key where retired_at is null order by 1', database.url),
      ).toEqual([{ family: 'EC-P256' }, { family: 'RSA-3072' }]);
    });

    it('users unlock forgets the failed attempts of an account and audits the act', async () => {
      const env = cleanEnv({ DATABASE_URL: database.url ?? '', PASSERELLE_DEMO: 'true' });
      await queryOnce(
        `insert into rate_limit (key, window_start, hits, expires_at, last_hit_at)
         values ('auth:acct:carol', now(), 5, now() + interval '30 minutes', now())`,
        database.url,
      );
      const unlocked = await runCli(['users', 'unlock', 'Carol'], { env });
      expect(unlocked.code, unlocked.stderr).toBe(0);
      expect(unlocked.stdout).toBe('failed attempts of carol forgotten; the account may sign in again\n');
      expect(
        await queryOnce(`select key from rate_limit where key like 'auth:acct:%'`, database.url),
      ).toEqual([]);
      expect(
        await queryOnce(
          `select type, outcome from audit_event where type = 'admin.account.unlocked'`,
          database.url,
        ),
      ).toEqual([{ type: 'admin.account.unlocked', outcome: 'success' }]);
    });
  });
}
