import * as oidc from 'openid-client';
import type { ClientMetadata } from '../../src/oidc/clients.ts';
import type { TestServer } from './server.ts';

export const TEST_PASSWORD = 'correct horse battery staple';

/** Registers a client through the registry (validated by the protocol engine) and returns its secret. */
export async function registerClient(t: TestServer, metadata: ClientMetadata): Promise<string | undefined> {
  const { clients, validateClient } = t.passerelle.services;
  const { generatedSecret } = await clients.save(metadata, 'cli', validateClient);
  return generatedSecret;
}

export async function createUser(t: TestServer, username: string, password = TEST_PASSWORD) {
  return t.passerelle.services.accounts.create(
    {
      username,
      displayName: `${username} Test`,
      givenName: username,
      familyName: 'Test',
      email: `${username}@hopital.test`,
    },
    password,
  );
}

/** openid-client configuration against the test issuer (plain http is allowed on loopback only). */
export function discover(
  t: TestServer,
  clientId: string,
  auth: oidc.ClientAuth,
  metadata: Partial<oidc.ClientMetadata> = {},
  customFetch?: oidc.CustomFetch,
): Promise<oidc.Configuration> {
  return oidc.discovery(new URL(t.issuer), clientId, metadata, auth, {
    execute: [oidc.allowInsecureRequests],
    ...(customFetch ? { [oidc.customFetch]: customFetch } : {}),
  });
}

export interface PendingAuthorization {
  url: URL;
  verifier: string;
  state: string;
  nonce: string;
}

export async function authorizationRequest(
  config: oidc.Configuration,
  redirectUri: string,
  extra: Record<string, string> = {},
): Promise<PendingAuthorization> {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid profile email offline_access',
    prompt: 'consent',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...extra,
  });
  return { url, verifier, state, nonce };
}
