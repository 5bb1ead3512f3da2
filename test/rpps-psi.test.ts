import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NationalIdentities } from '../src/accounts/national-identity.ts';
import { connectDatabase } from '../src/db/connect.ts';
import { embeddedCli, forCommands, type runCli } from './helpers/cli.ts';
import { generateProfessionals, type Professional } from './simulators/annuaire/fixtures.ts';
import { type AnnuaireSimulator, startAnnuaireSimulator } from './simulators/annuaire/server.ts';

const API_KEY = 'cli-annuaire-key-psi-0123456789';
const PASSWORD = 'a long enough password for the cli';
/** A Pro Santé Identité identifier (format not published). */
const PSI_ID = 'PSI-2026-ines-0001';

/**
 * Identities from Pro Santé Identité (EXI PSC 18/19) seen from the command line: `rpps status` and
 * `rpps review` say which registry an identity comes from, and the RPPS sync leaves PSI identities alone
 * (the Annuaire Santé does not know them: they must not turn inactive as "not found").
 */
describe('passerelle rpps with Pro Santé Identité identities (PGlite)', forCommands(4), () => {
  const professionals = [...generateProfessionals({ count: 40, now: new Date() })];
  const [marie, lea] = professionals.filter((p) => p.active) as [Professional, Professional];
  let sim: AnnuaireSimulator;
  let cli: (args: string[], input?: string) => ReturnType<typeof runCli>;
  let remove: () => void;
  let dataDir: string;

  /** Runs `work` on the CLI's database (no CLI process is running meanwhile). */
  const onDatabase = async <T>(
    work: (db: Awaited<ReturnType<typeof connectDatabase>>['db']) => Promise<T>,
  ) => {
    const handle = await connectDatabase({ database: { url: undefined, dataDir, poolSize: 1 } } as never);
    try {
      return await work(handle.db);
    } finally {
      await handle.close();
    }
  };
  const accountId = (db: Awaited<ReturnType<typeof connectDatabase>>['db'], username: string) =>
    db
      .selectFrom('account')
      .select('id')
      .where('username', '=', username)
      .executeTakeFirstOrThrow()
      .then((r) => r.id);

  beforeAll(async () => {
    sim = await startAnnuaireSimulator({ professionals, apiKey: API_KEY });
    const embedded = embeddedCli('passerelle-cli-psi-');
    Object.assign(embedded.env, {
      PASSERELLE_RPPS__API__BASE_URL: sim.baseUrl,
      PASSERELLE_RPPS__API__API_KEY: API_KEY,
      PASSERELLE_RPPS__API__REQUESTS_PER_SECOND: '100',
    });
    ({ cli, remove, dataDir } = embedded);
    for (const [username, given, family] of [
      ['ines', 'Inès', 'Morel'],
      ['marie', marie.givenName, marie.familyName],
      ['lea', lea.givenName, lea.familyName],
    ] as const) {
      const created = await cli(
        ['users', 'add', username, '--given-name', given, '--family-name', family, '--password-stdin'],
        PASSWORD,
      );
      expect(created.code, created.stderr).toBe(0);
    }
    for (const [username, p] of [
      ['marie', marie],
      ['lea', lea],
    ] as const) {
      const linked = await cli(['rpps', 'link', username, p.rpps]);
      expect(linked.code, linked.stderr).toBe(0);
    }
    // As a login through PSC leaves them: Inès linked by her PSI id; a PSI proof for Léa, in conflict.
    await onDatabase(async (db) => {
      const identities = new NationalIdentities(db, undefined as never);
      await identities.set(await accountId(db, 'ines'), PSI_ID, 'psc-login', 'verified', 'psi');
      await db
        .insertInto('rpps_review')
        .values({
          id: randomUUID(),
          account_id: await accountId(db, 'lea'),
          kind: 'conflict',
          id_nat: 'PSI-2026-lea-0002',
          origin: 'psi',
          source: 'psc-login',
          other_account_id: null,
          evidence: JSON.stringify({
            reason: 'contradicts_existing_link',
            ownLinkBefore: { idNat: lea.idNatPs, origin: 'rpps', status: 'verified', source: 'manual' },
          }),
          state: 'open',
        })
        .execute();
    });
  });
  afterAll(async () => {
    remove?.();
    await sim?.close();
  });

  it('rpps status and rpps review name the registry', async () => {
    const ines = await cli(['rpps', 'status', 'ines']);
    expect(ines.code, ines.stderr).toBe(0);
    expect(ines.stdout).toContain(`${PSI_ID} (Pro Santé Identité), status verified, source psc-login`);
    const marieStatus = await cli(['rpps', 'status', 'marie']);
    expect(marieStatus.stdout).toContain(`${marie.idNatPs} (RPPS ${marie.rpps}), status verified`);
    const overview = await cli(['rpps', 'status']);
    expect(overview.stdout).toContain('links: 3');
    expect(overview.stdout).toContain('from Pro Santé Identité (not checked against the RPPS): 1');
    const review = await cli(['rpps', 'review']);
    expect(review.stdout).toContain('proposed     PSI-2026-lea-0002 (Pro Santé Identité) from psc-login');
    expect(review.stdout).toContain(`own link     ${lea.idNatPs} (RPPS, verified, manual)`);
  });

  it('the RPPS sync checks the RPPS links only: a PSI identity is not "not found"', async () => {
    const sync = await cli(['rpps', 'sync', '--full']);
    expect(sync.code, sync.stderr).toBe(0);
    expect(sync.stdout).toContain('links: 2; checked: 2');
    expect(sync.stdout).toContain('inactive 0');
    const ines = await cli(['rpps', 'status', 'ines']);
    expect(ines.stdout).toContain(`${PSI_ID} (Pro Santé Identité), status verified`);
    // No identifier of PSI was sent to the Annuaire Santé.
    expect(sim.requests.some((r) => JSON.stringify(r).includes('PSI-'))).toBe(false);
  });
});
