import { createHash, createPrivateKey, createPublicKey, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeJwt, importJWK, SignJWT } from 'jose';
import Provider, { type Configuration, interactionPolicy, type KoaContextWithOIDC } from 'oidc-provider';
import { privateSigningJwk, type SigningAlg } from './keys.ts';
import { BACKCHANNEL_LOGOUT_EVENT } from './logout.ts';

/**
 * A small establishment identity provider (an "FI habilité") for tests: a real OpenID Connect provider
 * whose every login authenticates the scripted `user` without a page, and whose ID tokens carry what
 * PSC checks (`tid`, `oid`, `amr`, `acr`, `auth_time`). Faults make it misbehave on demand. It records
 * what PSC sent: authorization requests (as received), token requests (parameters and headers), userinfo
 * calls, end_session calls. It accepts the client authentications of Keycloak's broker (per client) and
 * PKCE `plain` (which oidc-provider refuses: turned into the equivalent S256 challenge on the way in, so
 * that the verifier is still checked). For logout, it sends back-channel logout tokens when told to (each
 * check can be broken), and its end_session endpoint records the calls and sends the browser back.
 */

export interface ScriptedUser {
  sub: string;
  tid?: string;
  oid?: string;
  amr?: string[];
  acr?: string;
  /** When the user authenticated. Default: the moment of the login. */
  authTime?: Date;
}

export interface ScriptedFiClient {
  clientId: string;
  /** Without a secret: a public client (PKCE required), unless `private_key_jwt`. */
  clientSecret?: string;
  /**
   * Default `client_secret_basic` with a secret (oidc-provider accepts `client_secret_post` for it too),
   * `none` without.
   */
  tokenEndpointAuthMethod?:
    | 'client_secret_basic'
    | 'client_secret_post'
    | 'client_secret_jwt'
    | 'private_key_jwt'
    | 'none';
  /** The client's keys for `private_key_jwt` (PSC's certs URL). */
  jwksUri?: string;
  /** Userinfo answered as a JWT signed with the FI's key (`application/jwt`). Default: JSON. */
  userinfoSigned?: boolean;
  /** PKCE required (as Passerelle does). Default: only for public clients (oidc-provider's default). */
  pkceRequired?: boolean;
  redirectUris: string[];
  /** Where `sendLogoutToken` posts; with it, ID tokens carry `sid` (back-channel session required). */
  backchannelLogoutUri?: string;
  /** Accepted at the end_session endpoint (the browser is sent back there). */
  postLogoutRedirectUris?: string[];
}

export interface ScriptedFiOptions {
  clients: ScriptedFiClient[];
  user: ScriptedUser;
  /** Default ES256 (Passerelle's default). */
  signingAlg?: SigningAlg;
}

export interface ScriptedFiFaults {
  /** Replaces the nonce of the next authorization requests (the ID token then answers another login). */
  nonce?: string;
  /** Publishes another key under the signing key's id (signatures no longer verify). */
  foreignKeys?: boolean;
  /** The user refuses to log in: the FI answers `access_denied`. */
  deny?: boolean;
  /** Errors the next logins answer with, one per login, in order (`deny` aside). */
  errors?: { error: string; error_description?: string }[];
  /**
   * ID-token claims replaced or added in the token response (the token re-signed with the FI's key);
   * undefined removes a claim.
   */
  idTokenClaims?: Record<string, unknown>;
  /** The token response: another status, members removed. */
  tokenResponse?: { status?: number; omit?: string[] };
  /** The userinfo answer: another status or content type, claims replaced (JSON or re-signed JWT). */
  userinfo?: { status?: number; contentType?: string; claims?: Record<string, unknown> };
  /** The status of the end_session endpoint when no browser is to be sent back (a server-side call). */
  endSessionStatus?: number;
}

/** An authorization request as the FI received it (query parameters). */
export type AuthorizationRequest = Record<string, string>;

/** A token request as the FI received it. */
export interface TokenRequest {
  params: Record<string, unknown>;
  authorization: string | undefined;
  /** oidc-provider's answer status. */
  status: number;
}

/** A login the FI answered: the session its logout tokens name. */
export interface ScriptedSession {
  clientId: string;
  sub: string;
  sid: string;
}

/** What the end_session endpoint received. */
export interface EndSessionCall {
  idTokenHint: string | undefined;
  postLogoutRedirectUri: string | undefined;
  state: string | undefined;
  clientId: string | undefined;
  /** The request's Cookie header (a browser's FI cookies; none from a server-side call). */
  cookie?: string | undefined;
}

export interface LogoutTokenOptions {
  /** The FI session ended. Default: the `sid` of the client's latest login; null: no `sid` claim. */
  sid?: string | null;
  /** Default: the `sub` of the client's latest login; null: no `sub` claim. */
  sub?: string | null;
  /** Claims replaced or added (`iss`, `aud`, `iat`, `jti`, `nonce`…); undefined removes one (`events`). */
  claims?: Record<string, unknown>;
  /** Signed with another key under the signing key's id: the signature does not verify. */
  foreignKey?: boolean;
}

export interface ScriptedFi {
  issuer: string;
  /** The account the next logins authenticate; change it between logins. */
  user: ScriptedUser;
  faults: ScriptedFiFaults;
  /** Logins completed so far. */
  logins: number;
  /** The sessions of the logins answered, in order. */
  sessions: ScriptedSession[];
  /** What PSC sent, in order. */
  authorizationRequests: AuthorizationRequest[];
  tokenRequests: TokenRequest[];
  userinfoRequests: { authorization: string | undefined }[];
  endSessionCalls: EndSessionCall[];
  /** Lifetime of the next ID tokens. Default 600 s. */
  idTokenTtlSeconds: number;
  /**
   * Posts a logout token for `clientId` (its audience), signed with the FI's key, to the client's
   * back-channel logout URI; returns the answer.
   */
  sendLogoutToken(clientId: string, options?: LogoutTokenOptions): Promise<Response>;
  close(): Promise<void>;
}

const END_SESSION_PATH = '/session/end';

function publicJwk(privateJwk: ReturnType<typeof privateSigningJwk>) {
  const key = createPublicKey(createPrivateKey({ key: privateJwk, format: 'jwk' }));
  return { ...key.export({ format: 'jwk' }), kid: privateJwk.kid, alg: privateJwk.alg, use: 'sig' };
}

export async function startScriptedFi(options: ScriptedFiOptions): Promise<ScriptedFi> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const alg = options.signingAlg ?? 'ES256';
  const signingKey = privateSigningJwk(alg);
  const foreignKey = privateSigningJwk(alg, signingKey.kid as string);
  const foreignJwks = { keys: [publicJwk(foreignKey)] };
  const clientOf = (clientId: unknown) => options.clients.find((c) => c.clientId === clientId);

  const { Check, base } = interactionPolicy;
  const policy = base();
  // Every authorization request authenticates anew (a resumed one carries the login just made).
  policy
    .get('login')
    ?.checks.add(
      new Check('scripted_login', 'each request logs the scripted user in', (ctx) =>
        ctx.oidc.result?.login ? Check.NO_NEED_TO_PROMPT : Check.REQUEST_PROMPT,
      ),
    );

  /** A logout token for `clientId`, signed with the FI's key. */
  async function logoutToken(clientId: string, tokenOptions: LogoutTokenOptions = {}): Promise<string> {
    const latest = fi.sessions.findLast((s) => s.clientId === clientId);
    const sid = tokenOptions.sid === undefined ? latest?.sid : tokenOptions.sid;
    const sub = tokenOptions.sub === undefined ? latest?.sub : tokenOptions.sub;
    const claims: Record<string, unknown> = {
      iss: issuer,
      aud: clientId,
      iat: Math.floor(Date.now() / 1000),
      jti: randomUUID(),
      events: { [BACKCHANNEL_LOGOUT_EVENT]: {} },
      ...(sid === null ? {} : { sid }),
      ...(sub === null ? {} : { sub }),
      ...tokenOptions.claims,
    };
    for (const [name, value] of Object.entries(claims)) if (value === undefined) delete claims[name];
    const key = tokenOptions.foreignKey ? foreignKey : signingKey;
    return new SignJWT(claims)
      .setProtectedHeader({ alg, kid: key.kid as string, typ: 'logout+jwt' })
      .sign(await importJWK(key, alg));
  }

  const fi: ScriptedFi = {
    issuer,
    user: options.user,
    faults: {},
    logins: 0,
    sessions: [],
    authorizationRequests: [],
    tokenRequests: [],
    userinfoRequests: [],
    endSessionCalls: [],
    idTokenTtlSeconds: 600,
    async sendLogoutToken(clientId, tokenOptions) {
      const uri = clientOf(clientId)?.backchannelLogoutUri;
      if (!uri) throw new Error(`client ${clientId} registered no back-channel logout URI`);
      return fetch(uri, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ logout_token: await logoutToken(clientId, tokenOptions) }),
      });
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };

  const configuration: Configuration = {
    clients: options.clients.map((c) => ({
      client_id: c.clientId,
      client_secret: c.clientSecret,
      token_endpoint_auth_method:
        c.tokenEndpointAuthMethod ?? (c.clientSecret ? 'client_secret_basic' : 'none'),
      ...(c.jwksUri ? { jwks_uri: c.jwksUri } : {}),
      ...(c.userinfoSigned ? { userinfo_signed_response_alg: alg } : {}),
      redirect_uris: c.redirectUris,
      post_logout_redirect_uris: c.postLogoutRedirectUris ?? [],
      ...(c.backchannelLogoutUri
        ? { backchannel_logout_uri: c.backchannelLogoutUri, backchannel_logout_session_required: true }
        : {}),
      grant_types: ['authorization_code'],
      response_types: ['code'],
      require_auth_time: true,
    })),
    clientDefaults: { id_token_signed_response_alg: alg },
    jwks: { keys: [signingKey] },
    cookies: {
      keys: [randomBytes(32).toString('base64url')],
      names: { session: 'fi_session', interaction: 'fi_interaction', resume: 'fi_resume' },
    },
    async findAccount(_ctx, sub) {
      return {
        accountId: sub,
        claims: () => ({ sub, tid: fi.user.tid, oid: fi.user.oid }),
      };
    },
    claims: { auth_time: null, sid: null, openid: ['sub', 'tid', 'oid', 'acr', 'amr'] },
    // tid and oid in the ID token, as PSC reads them there.
    conformIdTokenClaims: false,
    acrValues: ['eidas1', 'eidas2', 'eidas3'],
    responseTypes: ['code'],
    interactions: { policy, url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    routes: { end_session: END_SESSION_PATH },
    features: {
      devInteractions: { enabled: false },
      backchannelLogout: { enabled: true },
      jwtUserinfo: { enabled: true },
    },
    pkce: {
      required: (_ctx, client) =>
        client.clientAuthMethod === 'none' || !!clientOf(client.clientId)?.pkceRequired,
    },
    // PSC's keys (private_key_jwt) on a loopback address.
    fetch(url, init) {
      delete (init as { dispatcher?: unknown }).dispatcher;
      return globalThis.fetch(url, init);
    },
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      IdToken: () => fi.idTokenTtlSeconds,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
    },
  };
  const provider = new Provider(issuer, configuration);

  /** A JWT of the FI with claims replaced (undefined removes one), re-signed with its key. */
  async function resigned(token: string, changes: Record<string, unknown>): Promise<string> {
    const claims: Record<string, unknown> = { ...decodeJwt(token), ...changes };
    for (const [name, value] of Object.entries(claims)) if (value === undefined) delete claims[name];
    return new SignJWT(claims)
      .setProtectedHeader({ alg, kid: signingKey.kid as string })
      .sign(await importJWK(signingKey, alg));
  }

  // What PSC sent to the token endpoint, and the faults of the token and userinfo answers.
  provider.use(async (ctx, next) => {
    await next();
    const { oidc } = ctx as KoaContextWithOIDC;
    if (oidc?.route === 'token') {
      fi.tokenRequests.push({
        params: { ...(oidc.body ?? {}) },
        authorization: ctx.get('authorization') || undefined,
        status: ctx.status,
      });
      const body = ctx.body as Record<string, unknown> | undefined;
      const { idTokenClaims, tokenResponse } = fi.faults;
      if (ctx.status !== 200 || !body) return;
      if (idTokenClaims && typeof body.id_token === 'string') {
        body.id_token = await resigned(body.id_token, idTokenClaims);
      }
      for (const name of tokenResponse?.omit ?? []) delete body[name];
      if (tokenResponse?.status) ctx.status = tokenResponse.status;
    }
    if (oidc?.route === 'userinfo') {
      fi.userinfoRequests.push({ authorization: ctx.get('authorization') || undefined });
      const fault = fi.faults.userinfo;
      if (!fault || ctx.status !== 200) return;
      if (fault.claims) {
        ctx.body =
          typeof ctx.body === 'string'
            ? await resigned(ctx.body, fault.claims)
            : { ...(ctx.body as Record<string, unknown>), ...fault.claims };
      }
      if (fault.contentType) ctx.type = fault.contentType;
      if (fault.status) ctx.status = fault.status;
    }
  });

  provider.on('authorization.success', (ctx) => {
    const clientId = ctx.oidc.client?.clientId;
    const { session } = ctx.oidc;
    const sid = clientId === undefined ? undefined : session?.sidFor(clientId);
    if (clientId && sid && session?.accountId) fi.sessions.push({ clientId, sub: session.accountId, sid });
  });

  /** Records the call; sends the browser to a registered post_logout_redirect_uri of the hint's audience. */
  function endSession(url: URL, req: IncomingMessage, res: ServerResponse) {
    const param = (name: string) => url.searchParams.get(name) ?? undefined;
    const call: EndSessionCall = {
      idTokenHint: param('id_token_hint'),
      postLogoutRedirectUri: param('post_logout_redirect_uri'),
      state: param('state'),
      clientId: param('client_id'),
      cookie: req.headers.cookie,
    };
    fi.endSessionCalls.push(call);
    if (call.postLogoutRedirectUri === undefined) {
      // A server-side call (Keycloak's backchannelSupported): nobody to send back.
      const status = fi.faults.endSessionStatus ?? 200;
      res.writeHead(status, { 'content-type': 'text/plain' }).end(status === 200 ? 'logged out' : 'error');
      return;
    }
    let audience: unknown;
    try {
      audience = call.idTokenHint ? decodeJwt(call.idTokenHint).aud : call.clientId;
    } catch {
      audience = undefined;
    }
    const target = call.postLogoutRedirectUri;
    if (!target || !clientOf(audience)?.postLogoutRedirectUris?.includes(target)) {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('post_logout_redirect_uri not registered');
      return;
    }
    const back = new URL(target);
    if (call.state !== undefined) back.searchParams.set('state', call.state);
    res.writeHead(303, { location: back.href }).end();
  }

  const providerCallback = provider.callback();
  server.on('request', async (req: IncomingMessage, res) => {
    const url = new URL(req.url ?? '/', issuer);
    if (url.pathname.startsWith('/interaction/')) {
      try {
        const details = await provider.interactionDetails(req, res);
        const { user } = fi;
        let result: Parameters<Provider['interactionResult']>[2];
        const scripted = fi.faults.errors?.shift();
        if (fi.faults.deny) {
          result = { error: 'access_denied', error_description: 'the user refused to log in' };
        } else if (scripted) {
          result = { ...scripted };
        } else {
          const grant = new provider.Grant({
            accountId: user.sub,
            clientId: String(details.params.client_id),
          });
          grant.addOIDCScope(String(details.params.scope));
          result = {
            login: {
              accountId: user.sub,
              amr: user.amr,
              acr: user.acr,
              ts: Math.floor((user.authTime ?? new Date()).getTime() / 1000),
            },
            consent: { grantId: await grant.save() },
          };
          fi.logins++;
        }
        const location = await provider.interactionResult(req, res, result, {
          mergeWithLastSubmission: false,
        });
        res.writeHead(303, { location }).end();
      } catch (error) {
        res.writeHead(400, { 'content-type': 'text/plain' }).end(String(error));
      }
      return;
    }
    if (url.pathname === END_SESSION_PATH) {
      endSession(url, req, res);
      return;
    }
    if (url.pathname === '/jwks' && fi.faults.foreignKeys) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(foreignJwks));
      return;
    }
    if (url.pathname === '/auth') {
      fi.authorizationRequests.push(Object.fromEntries(url.searchParams));
      if (fi.faults.nonce !== undefined) url.searchParams.set('nonce', fi.faults.nonce);
      // PKCE plain: the same challenge as S256 of the verifier (which equals the plain challenge).
      const challenge = url.searchParams.get('code_challenge');
      if (url.searchParams.get('code_challenge_method') === 'plain' && challenge) {
        url.searchParams.set('code_challenge', createHash('sha256').update(challenge).digest('base64url'));
        url.searchParams.set('code_challenge_method', 'S256');
      }
      req.url = `${url.pathname}${url.search}`;
    }
    void providerCallback(req, res);
  });
  return fi;
}
