import { parseArgs } from 'node:util';
import { generateProfessionals } from '../annuaire/fixtures.ts';
import type { FiOptions } from './federation.ts';
import { startPscSimulator } from './server.ts';

/**
 * Runs the Pro Santé Connect simulator for the demo, with one service and, optionally, one establishment FI:
 *   node test/simulators/psc/main.ts --port 3200 \
 *     --client-id drimbox --client-secret drimbox-secret --redirect-uri http://localhost:3300/callback \
 *     --fi-alias chu-demo --fi-name "CHU de démonstration" --fi-discovery-url http://localhost:3000 \
 *     --fi-client-id psc --fi-client-secret … --fi-tid tenant-chu-demo --fi-amr hwk,sc,pin,mfa
 * Without --client-secret the service is a public client (PKCE); without --fi-client-secret PSC is one at
 * the FI. Register the printed broker redirect URI, post-logout redirect URI and back-channel logout URI at
 * the FI. --fi-no-front-channel-logout: a service's logout does not go through the FI's end_session;
 * --fi-logout-session-id session_state: logout tokens' sid matched as Keycloak did before 2026.
 */
const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '3200' },
    host: { type: 'string', default: '127.0.0.1' },
    count: { type: 'string', default: '200' },
    seed: { type: 'string', default: '2026' },
    'signing-alg': { type: 'string', default: 'RS256' },
    'pairing-ttl': { type: 'string' },
    'client-id': { type: 'string', default: 'drimbox' },
    'client-secret': { type: 'string' },
    'redirect-uri': { type: 'string', multiple: true, default: [] },
    'post-logout-redirect-uri': { type: 'string', multiple: true, default: [] },
    'backchannel-logout-uri': { type: 'string' },
    'fi-alias': { type: 'string' },
    'fi-name': { type: 'string' },
    'fi-discovery-url': { type: 'string' },
    'fi-client-id': { type: 'string', default: 'psc' },
    'fi-client-secret': { type: 'string' },
    'fi-tid': { type: 'string', multiple: true, default: [] },
    'fi-amr': { type: 'string', default: 'sc,pin,hwk,swk,mfa' },
    'fi-acr': { type: 'string' },
    'fi-max-auth-age': { type: 'string' },
    'fi-no-front-channel-logout': { type: 'boolean', default: false },
    'fi-logout-session-id': { type: 'string', default: 'id_token' },
  },
});

function fail(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(2);
}

const list = (value: string | undefined) => (value ? value.split(',').filter(Boolean) : undefined);
if (values['redirect-uri'].length === 0) fail('--redirect-uri is required (the service callback)');
if (values['signing-alg'] !== 'RS256' && values['signing-alg'] !== 'ES256')
  fail('--signing-alg: RS256 or ES256');
const logoutSessionId = values['fi-logout-session-id'];
if (logoutSessionId !== 'id_token' && logoutSessionId !== 'session_state')
  fail('--fi-logout-session-id: id_token or session_state');

let fi: FiOptions | undefined;
if (values['fi-alias']) {
  const discoveryUrl = values['fi-discovery-url'] ?? fail('--fi-discovery-url is required with --fi-alias');
  if (values['fi-tid'].length === 0) fail('--fi-tid is required with --fi-alias (the accepted tenant ids)');
  fi = {
    alias: values['fi-alias'],
    name: values['fi-name'],
    discoveryUrl,
    clientId: values['fi-client-id'],
    clientSecret: values['fi-client-secret'],
    tidAllowList: values['fi-tid'],
    amrAllowList: list(values['fi-amr']) ?? [],
    requireAcr: list(values['fi-acr']),
    maxAuthAgeSeconds:
      values['fi-max-auth-age'] === undefined ? undefined : Number(values['fi-max-auth-age']),
    frontChannelLogout: !values['fi-no-front-channel-logout'],
    logoutSessionId,
  };
}

const simulator = await startPscSimulator({
  port: Number(values.port),
  host: values.host,
  professionals: [
    ...generateProfessionals({ count: Number(values.count), seed: Number(values.seed), inactiveShare: 0 }),
  ],
  signingAlg: values['signing-alg'],
  pairingTtlSeconds: values['pairing-ttl'] === undefined ? undefined : Number(values['pairing-ttl']),
  clients: [
    {
      clientId: values['client-id'],
      clientSecret: values['client-secret'],
      redirectUris: values['redirect-uri'],
      postLogoutRedirectUris: values['post-logout-redirect-uri'],
      backchannelLogoutUri: values['backchannel-logout-uri'],
    },
  ],
  fis: fi ? [fi] : [],
});
process.stdout.write(
  [
    `Pro Santé Connect simulator: ${simulator.issuer}`,
    `  discovery: ${simulator.issuer}/.well-known/wallet-openid-configuration`,
    `  service: ${values['client-id']} → ${values['redirect-uri'].join(' ')}`,
    ...(fi
      ? [
          `  FI ${fi.alias}: ${fi.discoveryUrl}, redirect URI to register there: ${simulator.brokerRedirectUri(fi.alias)}`,
          `    post-logout redirect URI to register there: ${simulator.brokerLogoutResponseUri(fi.alias)}`,
          `    back-channel logout URI to register there: ${simulator.backchannelLogoutUri}`,
        ]
      : []),
    '',
  ].join('\n'),
);

for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => {
    void simulator.close().then(() => process.exit(0));
  });
