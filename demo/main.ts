import { parseArgs } from 'node:util';
import { DEMO_ACCOUNT } from '../src/demo/seed.ts';
import { DEFAULT_BASE_PORT, PORT_OFFSETS } from './config.ts';
import { type Demo, startDemo } from './start.ts';

/**
 * `npm run demo`: Passerelle, the Pro Santé Connect simulator, the Annuaire Santé simulator, a DPI and a
 * DRIMBOX stand-in, and a walkthrough page, on localhost (docs/demo.md).
 *   npm run demo -- [--base-port 3000] [--data <dir>] [--log-level warn]   (bin/demo.js checks the Node version first)
 */

const USAGE = `usage: npm run demo -- [--base-port N] [--data DIR] [--log-level LEVEL]
  --base-port N      Passerelle on N, walkthrough N+100, DPI N+101, DRIMBOX N+102, PSC N+200 (default ${DEFAULT_BASE_PORT})
  --data DIR         keep Passerelle's database in DIR (default: a temporary directory, removed on exit)
  --log-level LEVEL  Passerelle's log level on standard error: fatal, error, warn, info, debug (default warn)
`;

function fail(message: string): never {
  process.stderr.write(`demo: ${message}\n${USAGE}`);
  process.exit(2);
}

let values: { 'base-port'?: string; data?: string; 'log-level'?: string; help?: boolean };
try {
  ({ values } = parseArgs({
    options: {
      'base-port': { type: 'string' },
      data: { type: 'string' },
      'log-level': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  }));
} catch (err) {
  fail((err as Error).message);
}
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const basePort = Number(values['base-port'] ?? DEFAULT_BASE_PORT);
const highest = 65535 - Math.max(...Object.values(PORT_OFFSETS));
if (!Number.isInteger(basePort) || basePort < 1 || basePort > highest) {
  fail(`--base-port must be an integer from 1 to ${highest}`);
}
const logLevel = values['log-level'] ?? 'warn';
if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace'].includes(logLevel)) fail(`--log-level ${logLevel}`);

let demo: Demo;
try {
  demo = await startDemo({ basePort, dataDir: values.data, logLevel });
} catch (err) {
  process.stderr.write(`demo: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}

const { urls } = demo;
process.stdout.write(
  `
Passerelle — démonstration / demo

  Parcours guidé / walkthrough        ${urls.walkthrough}/
  DPI (application de l'établissement)  ${urls.dpi}/
  DRIMBOX (service externe, via PSC)    ${urls.drimbox}/
  Passerelle (fournisseur d'identité)   ${urls.passerelle}/
  Pro Santé Connect (simulateur)        ${urls.pscIssuer}
  Annuaire Santé (simulateur)           ${urls.annuaire}

  Compte / account: ${DEMO_ACCOUNT.username} / ${DEMO_ACCOUNT.password}
  Données / data: ${demo.dataDir}${demo.temporary ? ' (supprimées à l’arrêt / removed on exit)' : ''}

Prêt : ouvrez le parcours guidé. Ctrl+C pour arrêter. / Ready: open the walkthrough. Ctrl+C to stop.
`,
);

let stopping = false;
const shutdown = () => {
  if (stopping) return;
  stopping = true;
  process.stdout.write('Arrêt… / stopping…\n');
  demo
    .close()
    .then(() => process.exit(0))
    .catch((err: unknown) => {
      process.stderr.write(`demo: unclean shutdown: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    });
};
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
