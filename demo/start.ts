import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPasserelle } from '../src/app.ts';
import { loadConfig } from '../src/config/load.ts';
import { demoProfessional, linkDemoAccount, startDemoAnnuaire } from '../src/demo/annuaire.ts';
import { createLogger } from '../src/http/logger.ts';
import { generateProfessionals } from '../test/simulators/annuaire/fixtures.ts';
import { startPscSimulator } from '../test/simulators/psc/server.ts';
import {
  DEMO_ESTABLISHMENT,
  type DemoPorts,
  type DemoUrls,
  demoPorts,
  demoUrls,
  passerelleOverrides,
  pscFi,
  pscOptions,
} from './config.ts';
import { closeServer, listen } from './listen.ts';
import { startDpi, startDrimbox } from './stand-ins.ts';
import { startWalkthrough } from './walkthrough.ts';

export interface DemoOptions {
  basePort: number;
  /** Where Passerelle keeps its PGlite database; default: a new temporary directory, removed at close. */
  dataDir?: string;
  /** Passerelle's log level (JSON lines on standard error); default `warn`. */
  logLevel?: string;
}

export interface Demo {
  urls: DemoUrls & { annuaire: string };
  dataDir: string;
  /** Whether dataDir is removed at close. */
  temporary: boolean;
  /** Closes every server, Passerelle's database, and removes a temporary data directory. */
  close(): Promise<void>;
}

/** Other national identities PSC offers at pairing, next to the demo account's. */
const OTHER_PROFESSIONALS = 20;

/** Fails early, naming the part, when one of the demo's ports is taken. */
async function checkPortsFree(ports: DemoPorts): Promise<void> {
  for (const [name, port] of Object.entries(ports)) await closeServer(await listen(() => {}, port, name));
}

/**
 * Starts the whole demo in this process: the PSC simulator, Passerelle (demo mode, PGlite, with its
 * in-process Annuaire Santé simulator), the DPI and DRIMBOX stand-ins, and the walkthrough page.
 */
export async function startDemo(options: DemoOptions): Promise<Demo> {
  const ports = demoPorts(options.basePort);
  await checkPortsFree(ports);
  const urls = demoUrls(ports);
  const temporary = options.dataDir === undefined;
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'passerelle-demo-')));
  const closers: (() => Promise<void>)[] = [];
  if (temporary) closers.push(() => rm(dataDir, { recursive: true, force: true }));
  const closeAll = async () => {
    for (const close of closers.splice(0).reverse()) await close();
  };

  try {
    const now = new Date();
    const psc = await startPscSimulator(
      pscOptions(ports, [
        await demoProfessional(now),
        ...generateProfessionals({ count: OTHER_PROFESSIONALS, now, inactiveShare: 0 }),
      ]),
    );
    closers.push(() => psc.close());

    const logLevel = options.logLevel ?? 'warn';
    const { config: loaded, warnings } = loadConfig({
      // The demo is self-contained: no PASSERELLE_* variable or DATABASE_URL of the shell applies.
      env: {},
      overrides: passerelleOverrides(ports, {
        dataDir,
        logLevel,
        pscBrokerRedirectUri: psc.brokerRedirectUri(DEMO_ESTABLISHMENT.pscAlias),
      }),
    });
    const logger = createLogger(logLevel, process.stderr as never);
    for (const warning of warnings) logger.warn(warning);
    psc.addFi(pscFi(ports, loaded.psc.amrAllowList));

    const annuaire = await startDemoAnnuaire(loaded, logger);
    closers.push(() => annuaire.close());
    const config = annuaire.config;
    const passerelle = await createPasserelle(config, logger);
    await linkDemoAccount(passerelle);
    let passerelleServer: Awaited<ReturnType<typeof listen>> | undefined;
    closers.push(() => passerelle.stop(...(passerelleServer ? [passerelleServer] : [])));
    passerelleServer = await listen(passerelle.app.callback(), ports.passerelle, 'Passerelle');
    passerelle.start();

    const dpi = await startDpi(ports);
    closers.push(() => dpi.close());
    const drimbox = await startDrimbox(ports);
    closers.push(() => drimbox.close());
    const running = { ...urls, annuaire: config.rpps.api.baseUrl };
    const walkthrough = await startWalkthrough(
      { urls: running, passerelle, psc, dpi, drimbox },
      ports.walkthrough,
    );
    closers.push(() => closeServer(walkthrough));

    return { urls: running, dataDir, temporary, close: closeAll };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
