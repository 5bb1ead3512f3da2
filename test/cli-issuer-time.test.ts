import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { openServices } from '../src/app.ts';
import { installationExportMaterial } from '../src/audit/range-verifier.ts';
import { registerClients, registerKeys, registerWebauthn } from '../src/cli/admin.ts';
import { registerAudit } from '../src/cli/audit.ts';
import { registerAuditOutputs } from '../src/cli/audit-outputs.ts';
import { registerRpps } from '../src/cli/rpps.ts';
import { startServing } from '../src/cli/serve.ts';
import { loadConfig } from '../src/config/load.ts';
import type { Config } from '../src/config/schema.ts';
import { createLogger } from '../src/http/logger.ts';
import { monthIn } from '../src/i18n/time.ts';
import { createTestDatabase, databasesUnderTest, type TestDatabase } from './helpers/databases.ts';
import { fixtureRpps } from './simulators/annuaire/fixtures.ts';

/**
 * The command line prints the addresses of the configured issuer (behind its reverse proxy, not the
 * address the process listens on) and its times in the establishment's time zone (`ui.timeZone`), with
 * the offset: here an establishment in New Caledonia (UTC+11, never Paris's offset).
 */

const ISSUER = 'https://idp.example.test';
const TIME_ZONE = 'Pacific/Noumea';
/** An ISO 8601 time with Nouméa's offset. */
const NOUMEA_TIME = /\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+11:00\b/;
/** A UTC time as toISOString writes it. */
const UTC_TIME = /\d{2}:\d{2}:\d{2}\.\d{3}Z/;

const quiet = () => createLogger('warn', new Writable({ write: (_c, _e, done) => done() }) as never);

for (const kind of databasesUnderTest()) {
  describe(`the command line: the configured issuer, the establishment's time zone [${kind}]`, {
    timeout: 120_000,
  }, () => {
    let dir: string;
    let database: TestDatabase;
    let configFile: string;
    let config: Config;

    /** `passerelle --config <file> …args` in process (the commands' own definitions); its standard output. */
    const passerelle = async (...args: string[]): Promise<string> => {
      const program = new Command('passerelle').option('-c, --config <file>').exitOverride();
      registerKeys(program);
      registerClients(program);
      registerWebauthn(program);
      registerRpps(program);
      registerAudit(program);
      registerAuditOutputs(program, {
        verifyChain: (services) => installationExportMaterial.verifyChain(services.database.db),
        publicKey: (services) => installationExportMaterial.publicKey(services.database.db, services.sealer),
        auditKeys: (services) => installationExportMaterial.auditKeys(services.database.db),
      });
      let printed = '';
      const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
        printed += String(chunk);
        return true;
      });
      try {
        await program.parseAsync(['node', 'passerelle', '--config', configFile, ...args]);
      } finally {
        write.mockRestore();
      }
      return printed;
    };

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'passerelle-cli-time-'));
      database = await createTestDatabase(kind);
      configFile = join(dir, 'passerelle.json');
      writeFileSync(
        configFile,
        JSON.stringify({
          issuer: ISSUER,
          keys: { encryptionKey: randomBytes(32).toString('base64') },
          database: database.url ? { url: database.url } : { dataDir: join(dir, 'pglite') },
          ui: { timeZone: TIME_ZONE },
          log: { level: 'warn' },
          webauthn: { rpId: 'idp.example.test', origins: [ISSUER] },
        }),
      );
      config = loadConfig({ env: {}, file: configFile }).config;
      // An account, and a name-match candidate waiting for review (through the services the CLI uses).
      const services = await openServices(config, quiet());
      try {
        const alice = await services.accounts.create({ username: 'alice', displayName: 'Alice Martin' });
        await services.identities.propose({
          accountId: alice.id,
          idNat: `8${fixtureRpps(3)}`,
          source: 'name-match',
          verified: false,
          national: { familyName: 'MARTIN', givenName: 'Alice', professionCode: '60', categoryCode: 'C' },
          actor: 'test',
        });
      } finally {
        await services.database.close();
      }
    });
    afterAll(async () => {
      await database?.drop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('serve: the start banner names the issuer’s addresses and the start time in the time zone', async () => {
      // Port 0: any free port (the configuration itself accepts 1 to 65535).
      const serving = await startServing({ ...config, http: { ...config.http, port: 0 } }, quiet());
      try {
        const banner = serving.banner.join('\n');
        expect(banner).toContain(`${ISSUER}/.well-known/openid-configuration`);
        expect(banner).toContain(`${ISSUER}/portal`);
        expect(banner).toContain(`${ISSUER}/admin`);
        expect(banner).toMatch(NOUMEA_TIME);
        expect(banner).not.toMatch(/localhost|127\.0\.0\.1:3000/);
      } finally {
        await serving.stop();
      }
    });

    it('clients add: the issuer and discovery document the application is configured with', async () => {
      const printed = await passerelle(
        'clients',
        'add',
        'dpi',
        '--redirect-uri',
        'https://dpi.example.test/cb',
      );
      expect(printed).toContain('client dpi registered');
      expect(printed).toContain(`issuer: ${ISSUER}`);
      expect(printed).toContain(`discovery: ${ISSUER}/.well-known/openid-configuration`);
      expect(printed).not.toContain('localhost');
    });

    it('enroll: the key page at the issuer, and the code’s end in the time zone', async () => {
      const printed = await passerelle('enroll', 'alice');
      expect(printed).toContain(`${ISSUER}/account/security-keys`);
      expect(printed).toMatch(new RegExp(`valid once, until ${NOUMEA_TIME.source}`));
      expect(printed).not.toMatch(UTC_TIME);
    });

    it('listings: signing keys, audit keys and the RPPS review queue, in the time zone', async () => {
      const listings = {
        keys: await passerelle('keys', 'list'),
        audit: await passerelle('audit', 'keys'),
        review: await passerelle('rpps', 'review'),
      };
      for (const [name, printed] of Object.entries(listings)) {
        expect(printed, name).toMatch(NOUMEA_TIME);
        expect(printed, name).not.toMatch(UTC_TIME);
      }
    });

    it('audit report: the month is a calendar month of the time zone', async () => {
      const month = monthIn(TIME_ZONE);
      const printed = await passerelle('audit', 'report', '--month', month);
      expect(printed.split('\n')[0]).toContain(`${month} (${TIME_ZONE})`);
    });
  });
}
