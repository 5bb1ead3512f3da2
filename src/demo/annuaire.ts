import type { Logger } from 'pino';
import type { Professional } from '../../test/simulators/annuaire/fixtures.ts';
import type { Passerelle } from '../app.ts';
import type { Config } from '../config/schema.ts';
import { DEMO_ACCOUNT } from './seed.ts';

/** Public key of the demo Annuaire Santé simulator (not a secret: the simulator runs in this process). */
const DEMO_ANNUAIRE_KEY = 'passerelle-demo-annuaire-key';
/** The demo account's professional in the simulated RPPS (a valid RPPS number: Luhn key). */
const DEMO_RPPS_INDEX = 999_999;

/**
 * The demo account's professional record in the simulated directories (Annuaire Santé, and the national
 * identities the PSC simulator offers at pairing in `npm run demo`).
 */
export async function demoProfessional(now: Date): Promise<Professional> {
  const { generateProfessionals, fixtureRpps } = await import('../../test/simulators/annuaire/fixtures.ts');
  const [model] = [...generateProfessionals({ count: 1, now })];
  if (!model) throw new Error('no fixture');
  const rpps = fixtureRpps(DEMO_RPPS_INDEX);
  return {
    ...model,
    rpps,
    idNatPs: `8${rpps}`,
    civility: 'MME',
    familyName: DEMO_ACCOUNT.familyName,
    givenName: DEMO_ACCOUNT.givenName,
    profession: { code: '60', label: 'Infirmier' },
    active: true,
    activities: model.activities.map((a) => ({
      ...a,
      id: `${rpps}-1`,
      organizationName: 'CHU de démonstration',
      active: true,
    })),
  };
}

/**
 * Demo mode without an Annuaire Santé key: the simulator of the test suite (a real FHIR server on a
 * loopback port, 2,000 generated professionals plus the demo account's own) stands in for the API.
 */
export async function startDemoAnnuaire(
  config: Config,
  logger: Logger,
): Promise<{ config: Config; close(): Promise<void> }> {
  const { generateProfessionals } = await import('../../test/simulators/annuaire/fixtures.ts');
  const { startAnnuaireSimulator } = await import('../../test/simulators/annuaire/server.ts');
  const professionals = [...generateProfessionals({ count: 2000, now: new Date() })];
  professionals.push(await demoProfessional(new Date()));
  const simulator = await startAnnuaireSimulator({ professionals, apiKey: DEMO_ANNUAIRE_KEY });
  logger.info({ baseUrl: simulator.baseUrl }, 'demo: simulated Annuaire Santé (rpps.api.apiKey not set)');
  return {
    config: {
      ...config,
      rpps: {
        ...config.rpps,
        api: { ...config.rpps.api, baseUrl: simulator.baseUrl, apiKey: DEMO_ANNUAIRE_KEY },
      },
    },
    close: () => simulator.close(),
  };
}

/** Links the demo account to its professional (source manual, verified against the simulated API). */
export async function linkDemoAccount(passerelle: Passerelle): Promise<void> {
  const { accounts, identities } = passerelle.services;
  const { client } = passerelle.rpps;
  const account = await accounts.findByUsername(DEMO_ACCOUNT.username);
  if (!account || !client || (await identities.findByAccount(account.id))) return;
  const [found] = await client.searchByName(DEMO_ACCOUNT.familyName, DEMO_ACCOUNT.givenName);
  if (!found?.active) return;
  await identities.propose({
    accountId: account.id,
    idNat: found.idNatPs,
    source: 'manual',
    verified: true,
    national: {
      familyName: found.familyName,
      givenName: found.givenName,
      professionCode: found.professionCode,
      categoryCode: found.categoryCode,
      roleCodes: found.roleCodes,
    },
    actor: 'demo',
  });
}
