import { parseArgs } from 'node:util';
import { generateProfessionals } from './fixtures.ts';
import { startAnnuaireSimulator } from './server.ts';

/**
 * Runs the Annuaire Santé simulator for the demo:
 *   node test/simulators/annuaire/main.ts --port 3100 --count 5000 --api-key demo-key
 */
const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '3100' },
    host: { type: 'string', default: '127.0.0.1' },
    count: { type: 'string', default: '3000' },
    seed: { type: 'string', default: '2026' },
    'api-key': { type: 'string', default: 'demo-key' },
    'rate-limit': { type: 'string' },
  },
});

const simulator = await startAnnuaireSimulator({
  professionals: generateProfessionals({
    count: Number(values.count),
    seed: Number(values.seed),
    now: new Date(),
  }),
  apiKey: values['api-key'],
  port: Number(values.port),
  host: values.host,
  rateLimitPerSecond: values['rate-limit'] === undefined ? undefined : Number(values['rate-limit']),
});
process.stdout.write(`Annuaire Santé simulator: ${simulator.baseUrl} (${values.count} professionals)\n`);

for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => {
    void simulator.close().then(() => process.exit(0));
  });
