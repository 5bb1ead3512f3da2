import { X509Certificate } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import Provider, { type Adapter, type Configuration, errors, type KoaContextWithOIDC } from 'oidc-provider';
import type { Logger } from 'pino';
import type { EstablishmentMembers } from '../accounts/establishments.ts';
import type { NationalIdentities } from '../accounts/national-identity.ts';
import type { AccountStore } from '../accounts/store.ts';
import type { AuditTrail } from '../audit/trail.ts';
import type { Config } from '../config/schema.ts';
import { clientAuthMethods, signingAlgs } from '../config/schema.ts';
import { pscEligibilityPrompt } from '../federation/psc-eligibility.ts';
import { PSC_LOGOUT_COOKIE } from '../federation/psc-login-routes.ts';
import { PSC_INITIATED_LOGOUT_COOKIE, pscLogoutInitiator } from '../federation/psc-logout.ts';
import { pscAccountClaims, pscEstablishmentOf, shapeForPsc } from '../federation/psc-profile.ts';
import { forwardedCertificatePem } from '../http/client-certificate.ts';
import { engineErrorPage, respondNotFound } from '../http/error-pages.ts';
import type { Views } from '../http/views.ts';
import { negotiateLocale, translator } from '../i18n/messages.ts';
import type { AuthSessions } from '../sessions/auth-sessions.ts';
import { interactionPolicyWith, sessionPolicyCheck } from '../sessions/policy-check.ts';
import { REQUEST_ID_HEADER } from './host.ts';
import type { KeySet } from './keys.ts';
import { auditProtocolEvents } from './protocol-audit.ts';

/** The engine's endpoints (its default routes) that answer in JSON: token, introspection, revocation, PAR, JWKS. */
export const ENGINE_JSON_PATHS = [
  '/token',
  '/token/introspection',
  '/token/revocation',
  '/request',
  '/jwks',
  '/.well-known/openid-configuration',
] as const;
/** The engine's userinfo endpoint, a protected resource (RFC 6750 errors). */
export const ENGINE_USERINFO_PATH = '/me';
/** The engine's browser endpoints (authorization, logout), answering with a page. */
export const ENGINE_PAGE_PATHS = ['/auth', '/session/end'] as const;

/** Events carrying the errors of client-authenticating endpoints. */
const CLIENT_AUTH_ERROR_EVENTS = [
  'grant.error',
  'introspection.error',
  'revocation.error',
  'pushed_authorization_request.error',
] as const;

export interface ProviderDeps {
  config: Config;
  keySet: KeySet;
  cookieKeys: string[];
  adapter: new (model: string) => Adapter;
  accounts: AccountStore;
  /** National identity links: verified ones are released with the `rpps` scope. */
  identities: NationalIdentities;
  establishments: EstablishmentMembers;
  views: Views;
  logger: Logger;
  sessions: AuthSessions;
  audit: AuditTrail;
  /** Called for each failed client authentication, with the source address. */
  onClientAuthFailure(ip: string): Promise<void>;
}

/**
 * Client flags of our own: `first_party` (no consent screen), `pkce_required` (default true),
 * `resource_server` (an API allowed to introspect tokens issued to other clients), `portal` (listed on the
 * staff portal).
 */
const BOOLEAN_EXTRA_METADATA = ['first_party', 'pkce_required', 'resource_server', 'portal'];
/** `required_acr` (the level the client always needs), `allowed_methods` (method ids offered). */
const POLICY_EXTRA_METADATA = ['required_acr', 'allowed_methods', 'psc_establishment'];
/** Portal visibility: `portal_establishments` (FINESS), `portal_groups` (directory group DNs). */
const PORTAL_EXTRA_METADATA = ['portal_establishments', 'portal_groups'];

/** Normalised RDN set of a distinguished name, in either RFC 4514 (`CN=a,O=b`) or OpenSSL (`C=FR\nCN=a`) form. */
export function dnComponents(dn: string): Set<string> {
  const parts = dn.includes('\n') ? dn.split('\n') : dn.split(/(?<!\\),/);
  return new Set(
    parts
      .map((p) =>
        p
          .trim()
          .replace(/\s*=\s*/, '=')
          .toUpperCase(),
      )
      .filter(Boolean),
  );
}

/**
 * The client certificate (PEM) forwarded by the trusted reverse proxy that terminates TLS, with its
 * verification result SUCCESS (same rule as the smart card's proxy mode, src/http/client-certificate.ts).
 * The peer is trusted as a whole with http.trustProxy (Passerelle reachable only through the proxy).
 */
function clientCertificate(ctx: KoaContextWithOIDC, config: Config): string | undefined {
  return forwardedCertificatePem(ctx, {
    header: config.http.clientCertHeader,
    verifyHeader: config.http.clientCertVerifyHeader,
    trustedPeer: () => config.http.trustProxy,
  });
}

/** The engine runs in its own koa context: the host hands the request id over in a request header. */
function requestIdOf(ctx: KoaContextWithOIDC): string | undefined {
  return ctx.get(REQUEST_ID_HEADER) || undefined;
}

export function buildProvider(deps: ProviderDeps): Provider {
  const { config, views, accounts, identities } = deps;
  const secureCookies = config.issuer.startsWith('https://');
  const page = (ctx: KoaContextWithOIDC) => ({
    locale: negotiateLocale(
      ctx.oidc?.params?.ui_locales,
      ctx.get('accept-language'),
      config.ui.defaultLocale,
    ),
    demo: config.demo,
    requestId: requestIdOf(ctx),
  });

  const configuration: Configuration = {
    adapter: deps.adapter,
    jwks: deps.keySet.jwks as Configuration['jwks'],
    cookies: {
      keys: deps.cookieKeys,
      long: { signed: true, httpOnly: true, sameSite: 'lax', secure: secureCookies },
      short: { signed: true, httpOnly: true, sameSite: 'lax', secure: secureCookies },
    },
    async findAccount(ctx, id) {
      const account = await accounts.findById(id);
      if (!account || account.disabledAt) return undefined;
      const establishment = ctx.oidc?.client
        ? pscEstablishmentOf(config, ctx.oidc.client.metadata())
        : undefined;
      return {
        accountId: account.id,
        async claims(_use, scope) {
          const releaseIdNat =
            /\brpps\b/.test(scope) || (establishment !== undefined && config.psc.releaseIdNat);
          // Only a verified link is ever released (never a candidate, conflict or inactive one).
          const link = releaseIdNat ? await identities.findByAccount(account.id) : undefined;
          // An idNatPS only: a Pro Santé Identité identifier is not one (no claim of its own yet).
          const national =
            link?.status === 'verified' && link.origin === 'rpps'
              ? {
                  idnat_ps: link.idNat,
                  rpps: link.rpps ?? undefined,
                  profession: link.professionCode ?? undefined,
                }
              : {};
          return {
            ...national,
            ...(establishment ? pscAccountClaims(establishment, account.id) : {}),
            sub: account.id,
            preferred_username: account.username,
            name: account.displayName ?? undefined,
            given_name: account.givenName ?? undefined,
            family_name: account.familyName ?? undefined,
            email: account.email ?? undefined,
            updated_at: Math.floor(account.updatedAt.getTime() / 1000),
          };
        },
      };
    },
    claims: {
      acr: null,
      amr: null,
      auth_time: null,
      sid: null,
      iss: null,
      // Relying parties (and PSC) always receive how and when the user authenticated.
      // PSC (FI habilité profile) also receives its tenant id and the pairing pivot, and optionally idnat_ps.
      openid: ['sub', 'acr', 'amr', 'auth_time', 'tid', 'oid', 'idnat_ps'],
      profile: ['name', 'given_name', 'family_name', 'preferred_username', 'updated_at'],
      email: ['email'],
      // The verified national identity (idNatPS, RPPS and TRE_G15 profession code), for allowed clients.
      rpps: ['idnat_ps', 'rpps', 'profession'],
    },
    scopes: ['openid', 'profile', 'email', 'offline_access', 'rpps'],
    // `none`: the portal and the console only need the session (no token), OAuth 2.0 Multiple Response Types.
    responseTypes: ['code', 'none'],
    acrValues: config.policy.levels.map((l) => l.acr),
    clientAuthMethods: [...clientAuthMethods],
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'ES256',
    },
    enabledJWA: {
      idTokenSigningAlgValues: [...signingAlgs],
      userinfoSigningAlgValues: [...signingAlgs],
      introspectionSigningAlgValues: [...signingAlgs],
      authorizationSigningAlgValues: [...signingAlgs],
      clientAuthSigningAlgValues: ['ES256', 'PS256', 'RS256', 'EdDSA'],
      requestObjectSigningAlgValues: ['ES256', 'PS256', 'RS256', 'EdDSA'],
    },
    pkce: {
      required(_ctx, client) {
        return client.clientAuthMethod === 'none' || client.metadata().pkce_required !== false;
      },
    },
    allowOmittingSingleRegisteredRedirectUri: false,
    extraClientMetadata: {
      properties: [...BOOLEAN_EXTRA_METADATA, ...POLICY_EXTRA_METADATA, ...PORTAL_EXTRA_METADATA],
      validator(_ctx, key, value, metadata) {
        if (value === undefined) return;
        if (key === 'pkce_required' && value === false && metadata.token_endpoint_auth_method === 'none') {
          throw new errors.InvalidClientMetadata('pkce_required cannot be false for a public client');
        }
        if (BOOLEAN_EXTRA_METADATA.includes(key) && typeof value !== 'boolean') {
          throw new errors.InvalidClientMetadata(`${key} must be a boolean`);
        }
        if (key === 'required_acr' && !config.policy.levels.some((l) => l.acr === value)) {
          throw new errors.InvalidClientMetadata(`required_acr must be one of the configured levels`);
        }
        if (key === 'psc_establishment' && !config.establishments.some((e) => e.finess === value)) {
          throw new errors.InvalidClientMetadata(
            'psc_establishment must be the FINESS of a configured establishment',
          );
        }
        if (
          PORTAL_EXTRA_METADATA.includes(key) &&
          !(Array.isArray(value) && value.every((v) => typeof v === 'string' && v.length > 0))
        ) {
          throw new errors.InvalidClientMetadata(`${key} must be an array of strings`);
        }
        if (
          key === 'allowed_methods' &&
          !(Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'string'))
        ) {
          throw new errors.InvalidClientMetadata('allowed_methods must be a non-empty array of method ids');
        }
      },
    },
    async loadExistingGrant(ctx) {
      const grantId =
        ctx.oidc.result?.consent?.grantId || ctx.oidc.session?.grantIdFor(ctx.oidc.client?.clientId ?? '');
      const existing = grantId ? await ctx.oidc.provider.Grant.find(grantId) : undefined;
      if (existing) return existing;
      // First-party applications of the establishment need no consent screen (also when the session
      // still names a grant that was revoked, e.g. after a replayed authorization code).
      const client = ctx.oidc.client;
      const session = ctx.oidc.session;
      if (client?.metadata().first_party === true && session?.accountId) {
        const grant = new ctx.oidc.provider.Grant({
          clientId: client.clientId,
          accountId: session.accountId,
        });
        grant.addOIDCScope(String(ctx.oidc.params?.scope ?? 'openid'));
        await grant.save();
        return grant;
      }
      return undefined;
    },
    // PSC's access tokens carry the same tenant, pivot, amr and acr as its ID token (seen through
    // introspection; they stay opaque so that PSC's broker can still call userinfo with them).
    async extraTokenClaims(ctx, token) {
      const client = ctx?.oidc?.client;
      const establishment = client ? pscEstablishmentOf(config, client.metadata()) : undefined;
      if (token.kind !== 'AccessToken' || !establishment || !('accountId' in token) || !token.accountId) {
        return undefined;
      }
      const { AuthorizationCode, RefreshToken } = ctx.oidc.entities;
      const login = AuthorizationCode ?? RefreshToken;
      return shapeForPsc(
        { ...pscAccountClaims(establishment, String(token.accountId)), amr: login?.amr, acr: login?.acr },
        config.psc,
      );
    },
    clientBasedCORS(_ctx, origin, client) {
      return client.redirectUris?.some((uri) => new URL(uri).origin === origin) ?? false;
    },
    fetch(url, options) {
      if (config.http.outboundAllowPrivateAddresses) delete (options as { dispatcher?: unknown }).dispatcher;
      return globalThis.fetch(url, options);
    },
    interactions: {
      policy: interactionPolicyWith(sessionPolicyCheck(config, deps.sessions, deps.audit), [
        pscEligibilityPrompt(config, identities, deps.establishments),
      ]),
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    features: {
      devInteractions: { enabled: false },
      introspection: {
        enabled: true,
        // A confidential client may introspect its own tokens; a resource server, any token.
        async allowedPolicy(_ctx, client, token) {
          if (client.clientAuthMethod === 'none') return false;
          return token.clientId === client.clientId || client.metadata().resource_server === true;
        },
      },
      revocation: {
        enabled: true,
        // RFC 7009: only the client a token was issued to may revoke it.
        async allowedPolicy(_ctx, client, token) {
          if (token.clientId === client.clientId) return true;
          throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
        },
      },
      userinfo: { enabled: true },
      clientCredentials: { enabled: true },
      backchannelLogout: { enabled: true },
      pushedAuthorizationRequests: { enabled: true, requirePushedAuthorizationRequests: false },
      dPoP: { enabled: false },
      rpInitiatedLogout: {
        enabled: true,
        async logoutSource(ctx, form) {
          // A session that came through Pro Santé Connect signs out of PSC too (RP-initiated logout
          // there, chained after ours: src/federation/psc-login-routes.ts).
          const uid = ctx.oidc.session?.uid;
          const throughPsc = Boolean(config.pscLogin && uid && (await deps.sessions.upstreamSidOf(uid)));
          const cookie = {
            signed: true,
            httpOnly: true,
            sameSite: 'lax' as const,
            secure: secureCookies,
            maxAge: 10 * 60_000,
          };
          if (throughPsc) ctx.cookies.set(PSC_LOGOUT_COOKIE, '1', cookie);
          // PSC asked for this logout and waits for the browser to come back (its post-logout redirect URI):
          // it is not sent a back-channel logout token (src/federation/psc-logout.ts).
          const client = ctx.oidc.client;
          if (
            client &&
            ctx.oidc.params?.post_logout_redirect_uri &&
            pscEstablishmentOf(config, client.metadata())
          ) {
            ctx.cookies.set(PSC_INITIATED_LOGOUT_COOKIE, client.clientId, cookie);
          }
          ctx.type = 'html';
          ctx.body = views.render('logout', page(ctx), { form, throughPsc });
        },
        async postLogoutSuccessSource(ctx) {
          ctx.type = 'html';
          ctx.body = views.render('logout-done', page(ctx));
        },
      },
      mTLS: {
        enabled: true,
        tlsClientAuth: true,
        certificateBoundAccessTokens: false,
        getCertificate: (ctx) => clientCertificate(ctx, config),
        // The proxy verified the chain against the establishment's CA and says so in its own header.
        certificateAuthorized: (ctx) => clientCertificate(ctx, config) !== undefined,
        certificateSubjectMatches(ctx, property, expected) {
          if (property !== 'tls_client_auth_subject_dn') return false;
          const pem = clientCertificate(ctx, config);
          if (!pem) return false;
          let subject: string;
          try {
            subject = new X509Certificate(pem).subject;
          } catch {
            return false; // unreadable certificate: the client is not authenticated
          }
          const actual = dnComponents(subject);
          const wanted = dnComponents(expected);
          return actual.size === wanted.size && [...wanted].every((rdn) => actual.has(rdn));
        },
      },
    },
    ttl: {
      AccessToken: config.tokens.accessTokenTtl,
      AuthorizationCode: config.tokens.authorizationCodeTtl,
      ClientCredentials: config.tokens.accessTokenTtl,
      IdToken: config.tokens.idTokenTtl,
      RefreshToken: config.tokens.refreshTokenTtl,
      Session: config.sessions.absoluteSeconds,
      Interaction: config.tokens.interactionTtl,
      Grant: config.tokens.grantTtl,
      PushedAuthorizationRequest: config.tokens.parTtl,
    },
    async renderError(ctx, out, error) {
      const status = (error as { statusCode?: number }).statusCode ?? 500;
      const p = page(ctx);
      const t = translator(p.locale);
      ctx.type = 'html';
      if (status >= 500) {
        // An outage (or a bug) inside the engine, logged by the server_error listener below, e.g.
        // /authorize while the database is down: the same 503 "temporarily unavailable" page as the last-resort handler, not the engine's English
        // "oops! something went wrong" with a 500.
        ctx.status = 503;
        ctx.body = views.render('error', p, { message: t('error.service_unavailable') });
        return;
      }
      // The engine's words go to the log, found by the reference the page shows; the user reads ours.
      deps.logger.info(
        { requestId: p.requestId, path: ctx.path, error: out.error, description: out.error_description },
        'protocol error page',
      );
      const text = engineErrorPage(out.error, error instanceof errors.SessionNotFound);
      ctx.body = views.render('error', p, { message: t(text.message), advice: t(text.advice) });
    },
  };

  const provider = new Provider(config.issuer, configuration);
  // Every URL the engine publishes or redirects to (discovery, interactions, logout forms, the audiences
  // of client assertions) derives from the issuer, never from the request's Host or X-Forwarded-Host.
  const context = (
    provider as unknown as {
      OIDCContext: { prototype: { urlFor(name: string, opt?: Record<string, unknown>): string } };
    }
  ).OIDCContext.prototype;
  context.urlFor = (name, opt) => provider.urlFor(name, opt);
  // PSC accepts only the amr and acr values the ANS publishes: ID tokens issued to a PSC client are
  // shaped after the engine has computed them from the login.
  const idToken = provider.IdToken.prototype as unknown as {
    payload(this: { client?: { metadata(): Record<string, unknown> } }): Promise<Record<string, unknown>>;
  };
  const payload = idToken.payload;
  idToken.payload = async function () {
    const claims = await payload.call(this);
    const metadata = this.client?.metadata();
    return metadata && pscEstablishmentOf(config, metadata) ? shapeForPsc(claims, config.psc) : claims;
  };
  const client = provider.Client.prototype as unknown as {
    clientId: string;
    backchannelLogout(this: { clientId: string }, sub: string, sid: string): Promise<void>;
  };
  const backchannelLogout = client.backchannelLogout;
  client.backchannelLogout = function (sub, sid) {
    if (pscLogoutInitiator() === this.clientId) {
      deps.logger.info(
        { clientId: this.clientId },
        'no back-channel logout to PSC: PSC initiated the logout',
      );
      return Promise.resolve();
    }
    return backchannelLogout.call(this, sub, sid);
  };
  // Keycloak before 2026 (PSC's version is not published) matches the `sid` of a logout token against
  // the `session_state` of the token response: PSC's token responses carry the session's sid there.
  provider.on('grant.success', (ctx) => {
    const metadata = ctx.oidc.client?.metadata();
    if (!metadata || !pscEstablishmentOf(config, metadata)) return;
    const { AuthorizationCode, RefreshToken } = ctx.oidc.entities;
    const sid = AuthorizationCode?.sid ?? RefreshToken?.sid;
    const body = ctx.body as Record<string, unknown> | undefined;
    if (sid && body && typeof body === 'object') body.session_state = sid;
  });
  auditProtocolEvents(provider, { audit: deps.audit, config, identities });
  // Whatever no route answered: our 404 page (or JSON / plain text), not koa's bare "Not Found".
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.status === 404 && ctx.body == null) respondNotFound(ctx, views, page(ctx as KoaContextWithOIDC));
  });
  provider.proxy = config.http.trustProxy;
  provider.maxIpsCount = 1;
  provider.on('server_error', (ctx, err) => {
    deps.logger.error({ err, requestId: requestIdOf(ctx) }, 'oidc server error');
  });
  for (const event of CLIENT_AUTH_ERROR_EVENTS) {
    // The typings overload on() per event name; the four events share this listener signature.
    (provider as unknown as EventEmitter).on(event, (ctx: KoaContextWithOIDC, err: { error?: string }) => {
      if (err.error !== 'invalid_client') return;
      deps.logger.info(
        { requestId: requestIdOf(ctx), ip: ctx.ip, route: ctx.oidc?.route, reason: 'invalid_client' },
        'client authentication failed',
      );
      deps.onClientAuthFailure(ctx.ip).catch((e: unknown) => {
        deps.logger.warn({ err: e }, 'cannot count a failed client authentication (database unavailable?)');
      });
    });
  }
  provider.on('backchannel.error', (ctx, err, client) => {
    deps.logger.warn(
      { err, clientId: client.clientId, requestId: requestIdOf(ctx) },
      'back-channel logout delivery failed',
    );
  });
  return provider;
}
