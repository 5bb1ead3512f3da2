import { parseArgs } from 'node:util';
import { generateProfessionals } from './fixtures.ts';
import { startAnnuaireSimulator } from './server.ts';

/**
 * Runs the Annuaire Santé simulator for the demo, with the real service's limits by default (17
 * requests/s per key, 429 without Retry-After, 504 after 30 s on heavy searches):
 *   node test/simulators/annuaire/main.ts --port 3100 --count 5000 --api-key demo-key
 *   … --rate-limit off | --rate-limit 10 --retry-after 1 --gateway-timeout-ms 2000
 */
const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '3100' },
    host: { type: 'string', default: '127.0.0.1' },
    count: { type: 'string', default: '3000' },
    seed: { type: 'string', default: '2026' },
    'api-key': { type: 'string', default: 'demo-key' },
    'rate-limit': { type: 'string', default: '17' },
    'retry-after': { type: 'string' },
    'gateway-timeout-ms': { type: 'string', default: '30000' },
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
  rateLimitPerSecond: values['rate-limit'] === 'off' ? null : Number(values['rate-limit']),
  quotaRetryAfterSeconds: values['retry-after'] === undefined ? null : Number(values['retry-after']),
  gatewayTimeoutMs: Number(values['gateway-timeout-ms']),
});
process.stdout.write(`Annuaire Santé simulator: ${simulator.baseUrl} (${values.count} professionals)\n`);

for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => {
    void simulator.close().then(() => process.exit(0));
  });
