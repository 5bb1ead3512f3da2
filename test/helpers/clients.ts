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

/** The redirect URI of every code-flow test client. */
export const REDIRECT = 'https://app.hopital.test/callback';

/** Code flow with refresh tokens back to REDIRECT, with the scopes `authorizationRequest` asks for by default. */
function codeFlowClient(
  clientId: string,
  authMethod: string,
  extra: Record<string, unknown>,
): ClientMetadata {
  return {
    client_id: clientId,
    redirect_uris: [REDIRECT],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: authMethod,
    scope: 'openid profile email offline_access',
    ...extra,
  };
}

/**
 * Registers a new confidential code-flow client (client_secret_basic) and returns its generated secret.
 * `extra` adds to the metadata or overrides it.
 */
export async function registerWebClient(
  t: TestServer,
  clientId: string,
  extra: Record<string, unknown> = {},
): Promise<string> {
  const secret = await registerClient(t, codeFlowClient(clientId, 'client_secret_basic', extra));
  if (!secret) throw new Error(`no secret generated for ${clientId}`);
  return secret;
}

/** Registers a public code-flow client (no client authentication). `extra` adds to the metadata or overrides it. */
export async function registerPublicClient(
  t: TestServer,
  clientId: string,
  extra: Record<string, unknown> = {},
): Promise<void> {
  await registerClient(t, codeFlowClient(clientId, 'none', extra));
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
  t: Pick<TestServer, 'issuer'>,
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
  // `prompt: ''` sends no prompt at all (the default asks for consent, for offline_access).
  if (url.searchParams.get('prompt') === '') url.searchParams.delete('prompt');
  return { url, verifier, state, nonce };
}

/** Redeems the code of `pending` at the token endpoint, checking PKCE, state and nonce. */
export function redeemCode(
  config: oidc.Configuration,
  pending: Pick<PendingAuthorization, 'verifier' | 'state' | 'nonce'>,
  callback: URL,
) {
  return oidc.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: pending.verifier,
    expectedState: pending.state,
    expectedNonce: pending.nonce,
  });
}

/** The ID token claims obtained for the code of `pending`. */
export async function codeClaims(
  config: oidc.Configuration,
  pending: Pick<PendingAuthorization, 'verifier' | 'state' | 'nonce'>,
  callback: URL,
) {
  return (await redeemCode(config, pending, callback)).claims();
}

/** A valid S256 code_challenge (RFC 7636 appendix B), for requests that never redeem their code. */
export const S256_CHALLENGE = 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM';

/** A raw /auth URL (no client library: the point is to send what a client library would refuse). */
export function authUrl(t: Pick<TestServer, 'issuer'>, params: Record<string, string>): URL {
  const url = new URL('/auth', t.issuer);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  return url;
}

/** `Authorization: Basic …` for client_secret_basic (RFC 6749 §2.3.1: form-encode, then base64). */
export function basicAuthorization(clientId: string, secret: string): string {
  const encode = (v: string) => encodeURIComponent(v).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${encode(clientId)}:${encode(secret)}`).toString('base64')}`;
}

export interface RawResponse {
  status: number;
  headers: Headers;
  /** Parsed JSON body, or undefined when the body is not JSON. */
  json: Record<string, unknown> | undefined;
  text: string;
}

async function readRaw(response: Response): Promise<RawResponse> {
  const text = await response.text();
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, json, text };
}

/** A raw POST to an endpoint of the issuer (form-encoded unless a string body and content type are given). */
export async function rawPost(
  t: Pick<TestServer, 'issuer'>,
  path: string,
  body: Record<string, string> | string,
  headers: Record<string, string> = {},
): Promise<RawResponse> {
  const form = typeof body !== 'string';
  const response = await fetch(new URL(path, t.issuer), {
    method: 'POST',
    redirect: 'manual',
    headers: form ? { 'content-type': 'application/x-www-form-urlencoded', ...headers } : headers,
    body: form ? new URLSearchParams(body).toString() : body,
  });
  return readRaw(response);
}

/** A raw GET that never follows redirects. */
export async function rawGet(url: string | URL, headers: Record<string, string> = {}): Promise<RawResponse> {
  return readRaw(await fetch(url, { redirect: 'manual', headers }));
}
