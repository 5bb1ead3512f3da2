import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as oidc from 'openid-client';
import { escaped } from './pages.ts';

/**
 * A tiny relying party for browser tests (the DPI of the establishment, an external service): a real
 * OpenID Connect client (openid-client) on node:http, code flow with PKCE, state and nonce, the state
 * bound to the browser by a cookie. It records what each callback brought: the claims it received, or the
 * error the provider answered, or why it rejected the answer.
 *
 * `GET /login?<params>` starts a login (the query adds to the authorization parameters); the provider
 * sends the browser back to `redirectUri`, which shows a page: `#claims` (JSON) or `#error`.
 */

export interface RelyingPartyClient {
  /** The provider's issuer (discovery under `.well-known/openid-configuration`). */
  issuer: string;
  clientId: string;
  /** client_secret_basic. */
  clientSecret: string;
  /** Default `openid`. */
  scope?: string;
  /** Authorization parameters of every login, e.g. `{ kc_idp_hint: 'chu-rennes', acr_values: 'eidas1' }`. */
  params?: Record<string, string>;
}

export type RelyingPartyOutcome =
  | {
      kind: 'signed-in';
      /** The ID token's claims. */
      claims: oidc.IDToken;
      userinfo: oidc.UserInfoResponse;
      accessToken: string;
    }
  /** The provider answered with an error (`error` and `error_description` of the callback). */
  | { kind: 'error'; error: string; description: string | undefined }
  /** The relying party refused the answer (unknown state, state of another browser, failed token exchange). */
  | { kind: 'rejected'; reason: string };

export interface RelyingParty {
  /** `http://<host>:<port>` */
  origin: string;
  /** Where the provider sends the browser back: register it at the provider. */
  redirectUri: string;
  /** Sets the client once registered at the provider (its secret is known then). */
  configure(client: RelyingPartyClient): void;
  /** The URL that starts a login, with authorization parameters added to the configured ones. */
  loginUrl(params?: Record<string, string>): string;
  /** Every callback received, in order. */
  outcomes: RelyingPartyOutcome[];
  close(): Promise<void>;
}

interface PendingLogin {
  browser: string;
  verifier: string;
  nonce: string;
}

function page(res: ServerResponse, status: number, title: string, body: string) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`<!doctype html><html lang="fr"><head><meta charset="utf-8"><title>${escaped(title)}</title></head>
<body><h1>${escaped(title)}</h1>${body}</body></html>`);
}

function cookieValue(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [key, ...value] = part.trim().split('=');
    if (key === name) return value.join('=');
  }
  return undefined;
}

/**
 * Starts a relying party on 127.0.0.1 (a free port); `host` names it in its URLs (default 127.0.0.1).
 * `name` makes its cookie its own (cookies are per host, not per port).
 */
export async function startRelyingParty(options: { name: string; host?: string }): Promise<RelyingParty> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://${options.host ?? '127.0.0.1'}:${(server.address() as AddressInfo).port}`;
  const redirectUri = `${origin}/callback`;
  const cookie = `rp_${options.name}`;
  const outcomes: RelyingPartyOutcome[] = [];
  const pendingByState = new Map<string, PendingLogin>();
  let client: RelyingPartyClient | undefined;
  let discovered: Promise<oidc.Configuration> | undefined;

  const configuration = () => {
    if (!client) throw new Error(`relying party ${options.name} is not configured`);
    const { issuer, clientId, clientSecret } = client;
    discovered ??= oidc.discovery(
      new URL(issuer),
      clientId,
      { redirect_uris: [redirectUri] },
      oidc.ClientSecretBasic(clientSecret),
      { execute: [oidc.allowInsecureRequests] },
    );
    return discovered;
  };

  async function login(url: URL, req: IncomingMessage, res: ServerResponse) {
    const config = await configuration();
    const browser = cookieValue(req, cookie) ?? randomBytes(16).toString('base64url');
    const state = oidc.randomState();
    const pending: PendingLogin = {
      browser,
      verifier: oidc.randomPKCECodeVerifier(),
      nonce: oidc.randomNonce(),
    };
    pendingByState.set(state, pending);
    const authorization = oidc.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: client?.scope ?? 'openid',
      code_challenge: await oidc.calculatePKCECodeChallenge(pending.verifier),
      code_challenge_method: 'S256',
      state,
      nonce: pending.nonce,
      ...client?.params,
      ...Object.fromEntries(url.searchParams),
    });
    res.writeHead(303, {
      location: authorization.href,
      'set-cookie': `${cookie}=${browser}; Path=/; HttpOnly; SameSite=Lax`,
    });
    res.end();
  }

  async function callback(url: URL, req: IncomingMessage, res: ServerResponse) {
    const state = url.searchParams.get('state') ?? '';
    const pending = pendingByState.get(state);
    const rejected = (reason: string) => {
      outcomes.push({ kind: 'rejected', reason });
      page(res, 400, 'Réponse refusée', `<p id="rejected">${escaped(reason)}</p>`);
    };
    if (!pending || pending.browser !== cookieValue(req, cookie)) return rejected('unknown state');
    pendingByState.delete(state);
    const error = url.searchParams.get('error');
    if (error) {
      const description = url.searchParams.get('error_description') ?? undefined;
      outcomes.push({ kind: 'error', error, description });
      return page(res, 200, 'Connexion refusée', `<p id="error">${escaped(error)}</p>`);
    }
    const config = await configuration();
    let tokens: Awaited<ReturnType<typeof oidc.authorizationCodeGrant>>;
    try {
      tokens = await oidc.authorizationCodeGrant(config, url, {
        pkceCodeVerifier: pending.verifier,
        expectedState: state,
        expectedNonce: pending.nonce,
        idTokenExpected: true,
      });
    } catch (err) {
      return rejected(err instanceof Error ? err.message : String(err));
    }
    const claims = tokens.claims() as oidc.IDToken;
    const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, claims.sub);
    outcomes.push({ kind: 'signed-in', claims, userinfo, accessToken: tokens.access_token });
    page(res, 200, 'Connecté', `<pre id="claims">${escaped(JSON.stringify(claims, null, 2))}</pre>`);
  }

  server.on('request', (req, res) => {
    const url = new URL(req.url ?? '/', origin);
    const route = url.pathname === '/login' ? login : url.pathname === '/callback' ? callback : undefined;
    if (!route) {
      res.writeHead(404).end();
      return;
    }
    route(url, req, res).catch((err: unknown) => {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(String(err));
    });
  });

  return {
    origin,
    redirectUri,
    configure(settings) {
      client = settings;
      discovered = undefined;
    },
    loginUrl(params = {}) {
      const url = new URL('/login', origin);
      for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
      return url.href;
    },
    outcomes,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
