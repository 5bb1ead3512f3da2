import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config/load.ts';
import { connectDatabase } from '../src/db/connect.ts';
import { embeddedCli, forCommands, runCli } from './helpers/cli.ts';

/**
 * Redirect URIs (and post-logout redirect URIs) follow RFC 8252 and RFC 9700: https; http only on a
 * loopback address (127.0.0.1, [::1], localhost); a private-use scheme (reverse domain name) only for a
 * native application; never a wildcard, a fragment or credentials. The configuration file, the command
 * line and the console refuse anything else with a message naming the URI.
 */

/** Refused for every kind of application, with the words the message must carry. */
const REFUSED: [string, RegExp][] = [
  ['http://dpi.hopital.example/cb', /plain http only on a loopback address/],
  ['https://*.hopital.example/cb', /wildcard/],
  ['https://dpi.hopital.example/*', /wildcard/],
  ['https://dpi.hopital.example/cb?next=*', /wildcard/],
  ['https://dpi.hopital.example/cb#done', /fragment/],
  ['https://user:pass@dpi.hopital.example/cb', /user name or password/],
  ['fr.hopital.dpi:/cb', /private-use scheme .* native application/],
  ['javascript:alert(1)', /private-use scheme .* native application/],
  ['/cb', /not an absolute URI/],
];
/** Refused even for a native application. */
const REFUSED_NATIVE: [string, RegExp][] = [
  ['dpi:/cb', /reverse domain name/],
  ['javascript:alert(1)', /reverse domain name/],
  ['https://localhost/cb', /loopback/],
  ['http://dpi.hopital.example/cb', /plain http only on a loopback address/],
  ['fr.hopital.*:/cb', /wildcard/],
];
const ACCEPTED_WEB = [
  'https://dpi.hopital.example/oidc/callback',
  'https://dpi.hopital.example:8443/cb?tenant=1',
  'http://127.0.0.1:8080/cb',
  'http://[::1]:8080/cb',
  'http://localhost:3000/demo/callback',
];
const ACCEPTED_NATIVE = [
  'fr.hopital.dpi:/oauth2redirect',
  'http://127.0.0.1/cb',
  'https://dpi.hopital.example/app',
];

const KEY = Buffer.alloc(32, 3).toString('base64');

/** The problems loadConfig reports for this `clients:` section, or [] when it is accepted. */
function configProblems(clients: Record<string, unknown>[]): readonly string[] {
  try {
    loadConfig({
      env: {},
      overrides: { issuer: 'https://passerelle.hopital.example', keys: { encryptionKey: KEY }, clients },
    });
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.problems;
  }
}

const declared = (uri: string, extra: Record<string, unknown> = {}) => ({
  clientId: 'dpi',
  clientSecret: 'x'.repeat(40),
  redirectUris: ['https://dpi.hopital.example/cb', uri],
  ...extra,
});

describe('redirect URIs in the configuration file (clients:)', () => {
  it('each refused URI is named with its key and the rule it breaks', () => {
    for (const [uri, reason] of REFUSED) {
      const problems = configProblems([declared(uri)]);
      expect(problems, uri).toHaveLength(1);
      expect(problems[0], uri).toMatch(/^clients\.0\.redirectUris\.1: redirect URI /);
      expect(problems[0], uri).toContain(uri);
      expect(problems[0], uri).toMatch(reason);
    }
    for (const [uri, reason] of REFUSED_NATIVE) {
      const problems = configProblems([
        {
          ...declared(uri, { applicationType: 'native', tokenEndpointAuthMethod: 'none' }),
          clientSecret: undefined,
        },
      ]);
      expect(problems, uri).toHaveLength(1);
      expect(problems[0], uri).toContain(uri);
      expect(problems[0], uri).toMatch(reason);
    }
  });

  it('post-logout redirect URIs follow the same rules', () => {
    const problems = configProblems([
      declared('https://dpi.hopital.example/cb2', {
        postLogoutRedirectUris: ['http://dpi.hopital.example/'],
      }),
    ]);
    expect(problems).toEqual([
      'clients.0.postLogoutRedirectUris.0: post-logout redirect URI http://dpi.hopital.example/: plain http only on a loopback address (127.0.0.1, [::1], localhost); use https',
    ]);
  });

  it('https, http on loopback, and a private-use scheme for a native application are accepted', () => {
    for (const uri of ACCEPTED_WEB) expect(configProblems([declared(uri)]), uri).toEqual([]);
    for (const uri of ACCEPTED_NATIVE) {
      const client = { ...declared(uri, { applicationType: 'native', tokenEndpointAuthMethod: 'none' }) };
      delete (client as { clientSecret?: string }).clientSecret;
      expect(configProblems([client]), uri).toEqual([]);
    }
  });
});

// Each command is a process opening the embedded database: slow on a loaded machine.
describe('redirect URIs on the command line (clients add)', forCommands(2), () => {
  const cli = embeddedCli('passerelle-redirect-uris-');
  afterAll(() => cli.remove());

  it('refuses plain http and wildcards, naming each URI; registers nothing', async () => {
    const refused = await cli.cli([
      'clients',
      'add',
      'dpi',
      '--redirect-uri',
      'http://dpi.hopital.example/cb',
      '--post-logout-redirect-uri',
      'https://*.hopital.example/',
    ]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(
      '--redirect-uri: redirect URI http://dpi.hopital.example/cb: plain http only on a loopback address (127.0.0.1, [::1], localhost); use https',
    );
    expect(refused.stderr).toContain(
      '--post-logout-redirect-uri: post-logout redirect URI https://*.hopital.example/:',
    );
    expect(refused.stderr).toMatch(/wildcard/);
  });

  it('--native registers a native application with a private-use scheme', async () => {
    const added = await runCli(
      [
        'clients',
        'add',
        'mobile',
        '--native',
        '--auth-method',
        'none',
        '--redirect-uri',
        'fr.hopital.mobile:/oauth2redirect',
      ],
      { env: cli.env },
    );
    expect(added.code, added.stderr).toBe(0);
    // What the command stored (read in process: one process less), and the refused one never was.
    const database = await connectDatabase({
      database: { dataDir: cli.dataDir, poolSize: 1 },
    });
    try {
      const rows = await database.db
        .selectFrom('oidc_client')
        .select(['client_id', 'metadata'])
        .where('client_id', 'in', ['dpi', 'mobile'])
        .execute();
      expect(rows.map((r) => r.client_id)).toEqual(['mobile']);
      expect(rows[0]?.metadata).toMatchObject({
        application_type: 'native',
        redirect_uris: ['fr.hopital.mobile:/oauth2redirect'],
      });
    } finally {
      await database.close();
    }
  });
});
