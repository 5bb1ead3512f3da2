import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider, { type Configuration, interactionPolicy } from 'oidc-provider';
import { privateSigningJwk, type SigningAlg } from './keys.ts';

/**
 * A small establishment identity provider (an "FI habilité") for tests: a real OpenID Connect provider
 * whose every login authenticates the scripted `user` without a page, and whose ID tokens carry what
 * PSC checks (`tid`, `oid`, `amr`, `acr`, `auth_time`). Faults make it misbehave on demand.
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
  /** Without a secret: a public client (PKCE required). */
  clientSecret?: string;
  redirectUris: string[];
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
}

export interface ScriptedFi {
  issuer: string;
  /** The account the next logins authenticate; change it between logins. */
  user: ScriptedUser;
  faults: ScriptedFiFaults;
  /** Logins completed so far. */
  logins: number;
  close(): Promise<void>;
}

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
  const foreignJwks = { keys: [publicJwk(privateSigningJwk(alg, signingKey.kid as string))] };

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

  const fi: ScriptedFi = {
    issuer,
    user: options.user,
    faults: {},
    logins: 0,
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
      token_endpoint_auth_method: c.clientSecret ? 'client_secret_basic' : 'none',
      redirect_uris: c.redirectUris,
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
    features: { devInteractions: { enabled: false } },
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      IdToken: 600,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
    },
  };
  const provider = new Provider(issuer, configuration);

  const providerCallback = provider.callback();
  server.on('request', async (req: IncomingMessage, res) => {
    const url = new URL(req.url ?? '/', issuer);
    if (url.pathname.startsWith('/interaction/')) {
      try {
        const details = await provider.interactionDetails(req, res);
        const { user } = fi;
        let result: Parameters<Provider['interactionResult']>[2];
        if (fi.faults.deny) {
          result = { error: 'access_denied', error_description: 'the user refused to log in' };
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
    if (url.pathname === '/jwks' && fi.faults.foreignKeys) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(foreignJwks));
      return;
    }
    if (url.pathname === '/auth' && fi.faults.nonce !== undefined) {
      url.searchParams.set('nonce', fi.faults.nonce);
      req.url = `${url.pathname}${url.search}`;
    }
    void providerCallback(req, res);
  });
  return fi;
}
