import { parseArgs } from 'node:util';
import { generateProfessionals } from '../annuaire/fixtures.ts';
import type { ClientAssertionSigningAlg, ClientAuthMethod, FiOptions } from './federation.ts';
import { startPscSimulator } from './server.ts';

/**
 * Runs the Pro Santé Connect simulator for the demo, with one service and, optionally, one establishment FI:
 *   node test/simulators/psc/main.ts --port 3200 \
 *     --client-id drimbox --client-secret drimbox-secret --redirect-uri http://localhost:3300/callback \
 *     --fi-alias chu-demo --fi-name "CHU de démonstration" --fi-discovery-url http://localhost:3000 \
 *     --fi-client-id psc --fi-client-secret … --fi-tid tenant-chu-demo --fi-amr hwk,sc,pin,mfa
 * Without --client-secret the service is a public client (PKCE). Register the printed broker redirect URI,
 * post-logout redirect URI and back-channel logout URI at the FI.
 * PSC brokers as Keycloak does with its defaults (client_secret_post, no PKCE, long state, acr_values
 * forwarded, signature and issuer from the FI's discovery); each identity provider setting has a flag
 * (README.md, "Broker settings"):
 *   --fi-client-auth-method client_secret_post|client_secret_basic|client_secret_basic_unencoded|
 *                           private_key_jwt|client_secret_jwt
 *   --fi-client-assertion-signing-alg RS256…  --fi-client-assertion-audience URL
 *   --fi-pkce plain|S256 (pkceEnabled with that pkceMethod)    --fi-default-scope "openid …"
 *   --fi-disable-nonce  --fi-forward-parameters acr_values,…  --fi-acr-values-always-forwarded
 *   --fi-prompt login|consent|select_account|none  --fi-accepts-prompt-none-forward
 *   --fi-login-hint  --fi-pass-max-age  --fi-ui-locales  --fi-short-state
 *   --fi-validate-signature true|false  --fi-issuer "iss1,iss2" ('' : not checked)  --fi-allowed-clock-skew S
 *   --fi-disable-userinfo  --fi-claim-filter name=regex
 *   --fi-logout-url URL ('' : none)  --fi-backchannel-logout  --fi-send-id-token-on-logout true|false
 *   --fi-send-client-id-on-logout
 * --fi-no-front-channel-logout: no logout at the FI (logoutUrl empty); --fi-logout-session-id
 * session_state: logout tokens' sid matched as Keycloak did before 2026.
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
    'fi-client-auth-method': { type: 'string' },
    'fi-client-assertion-signing-alg': { type: 'string' },
    'fi-client-assertion-audience': { type: 'string' },
    'fi-pkce': { type: 'string' },
    'fi-default-scope': { type: 'string' },
    'fi-disable-nonce': { type: 'boolean', default: false },
    'fi-forward-parameters': { type: 'string' },
    'fi-acr-values-always-forwarded': { type: 'boolean', default: false },
    'fi-prompt': { type: 'string' },
    'fi-accepts-prompt-none-forward': { type: 'boolean', default: false },
    'fi-login-hint': { type: 'boolean', default: false },
    'fi-pass-max-age': { type: 'boolean', default: false },
    'fi-ui-locales': { type: 'boolean', default: false },
    'fi-short-state': { type: 'boolean', default: false },
    'fi-validate-signature': { type: 'string' },
    'fi-issuer': { type: 'string' },
    'fi-allowed-clock-skew': { type: 'string' },
    'fi-disable-userinfo': { type: 'boolean', default: false },
    'fi-claim-filter': { type: 'string' },
    'fi-logout-url': { type: 'string' },
    'fi-backchannel-logout': { type: 'boolean', default: false },
    'fi-send-id-token-on-logout': { type: 'string' },
    'fi-send-client-id-on-logout': { type: 'boolean', default: false },
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

const CLIENT_AUTH_METHODS: ClientAuthMethod[] = [
  'client_secret_post',
  'client_secret_basic',
  'client_secret_basic_unencoded',
  'private_key_jwt',
  'client_secret_jwt',
];
const ASSERTION_ALGS: ClientAssertionSigningAlg[] = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'HS256',
  'HS384',
  'HS512',
];

/** A true|false flag value, undefined when absent. */
function bool(name: string, value: string | undefined): boolean | undefined {
  if (value === undefined) return undefined;
  if (value === 'true' || value === 'false') return value === 'true';
  return fail(`--${name}: true or false`);
}

function oneOf<T extends string>(
  name: string,
  value: string | undefined,
  allowed: readonly T[],
): T | undefined {
  if (value === undefined) return undefined;
  if ((allowed as readonly string[]).includes(value)) return value as T;
  return fail(`--${name}: one of ${allowed.join(', ')}`);
}

/** Keycloak's identity provider settings from the flags (unset: Keycloak's defaults). */
function brokerSettings(): Partial<FiOptions> {
  const pkce = oneOf('fi-pkce', values['fi-pkce'], ['plain', 'S256'] as const);
  const filter = values['fi-claim-filter'];
  const eq = filter?.indexOf('=') ?? -1;
  if (filter !== undefined && eq < 1) fail('--fi-claim-filter: name=regex');
  const skew = values['fi-allowed-clock-skew'];
  const settings: Partial<FiOptions> = {
    clientAuthMethod: oneOf('fi-client-auth-method', values['fi-client-auth-method'], CLIENT_AUTH_METHODS),
    clientAssertionSigningAlg: oneOf(
      'fi-client-assertion-signing-alg',
      values['fi-client-assertion-signing-alg'],
      ASSERTION_ALGS,
    ),
    clientAssertionAudience: values['fi-client-assertion-audience'],
    pkceEnabled: pkce !== undefined || undefined,
    pkceMethod: pkce,
    defaultScope: values['fi-default-scope'],
    disableNonce: values['fi-disable-nonce'] || undefined,
    forwardParameters: values['fi-forward-parameters'],
    acrValuesAlwaysForwarded: values['fi-acr-values-always-forwarded'] || undefined,
    prompt: values['fi-prompt'],
    acceptsPromptNoneForwardFromClient: values['fi-accepts-prompt-none-forward'] || undefined,
    loginHint: values['fi-login-hint'] || undefined,
    passMaxAge: values['fi-pass-max-age'] || undefined,
    uiLocales: values['fi-ui-locales'] || undefined,
    requiresShortStateParameter: values['fi-short-state'] || undefined,
    validateSignature: bool('fi-validate-signature', values['fi-validate-signature']),
    issuer: values['fi-issuer'],
    allowedClockSkew: skew === undefined ? undefined : Number(skew),
    disableUserInfo: values['fi-disable-userinfo'] || undefined,
    ...(filter === undefined
      ? {}
      : {
          filteredByClaim: true,
          claimFilterName: filter.slice(0, eq),
          claimFilterValue: filter.slice(eq + 1),
        }),
    logoutUrl: values['fi-no-front-channel-logout'] ? '' : values['fi-logout-url'],
    backchannelSupported: values['fi-backchannel-logout'] || undefined,
    sendIdTokenOnLogout: bool('fi-send-id-token-on-logout', values['fi-send-id-token-on-logout']),
    sendClientIdOnLogout: values['fi-send-client-id-on-logout'] || undefined,
  };
  for (const [key, value] of Object.entries(settings)) {
    if (value === undefined) delete settings[key as keyof FiOptions];
  }
  return settings;
}

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
    logoutSessionId,
    ...brokerSettings(),
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
          `    broker settings (Keycloak's defaults otherwise): ${JSON.stringify(brokerSettings())}`,
        ]
      : []),
    '',
  ].join('\n'),
);

for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => {
    void simulator.close().then(() => process.exit(0));
  });
