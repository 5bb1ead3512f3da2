import { createHash } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { decodeJwt } from 'jose';
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { NationalIdentities } from '../accounts/national-identity.ts';
import type { AuditEvent, AuditTrail } from '../audit/trail.ts';
import type { Config } from '../config/schema.ts';
import { pscLogoutInitiator } from '../federation/psc-logout.ts';
import { pscEstablishmentOf, shapeForPsc } from '../federation/psc-profile.ts';
import { REQUEST_ID_HEADER } from './host.ts';

export interface ProtocolAuditDeps {
  audit: AuditTrail;
  config: Config;
  identities: NationalIdentities;
}

/** What the engine's events tell about one request, written once the request is handled. */
interface RequestFacts {
  revokedGrants: string[];
  /** `sent: false`: the client initiated this logout and was not sent a token (src/federation/psc-logout.ts). */
  backchannel: { clientId: string; accountId: string; sid: string; error?: string; sent?: false }[];
}

/**
 * The identifier of a token in the trail. The engine's opaque tokens (access, refresh, authorization
 * code) ARE their `jti`: recording it would record a usable bearer token. The trail keeps its SHA-256
 * (base64url), which whoever holds the token can recompute to find its records.
 */
export function tokenDigest(jti: string): string {
  return createHash('sha256').update(jti).digest('base64url');
}

/** A token as the engine's entities hold it (only identifiers and claims, never the token value). */
interface TokenEntity {
  kind: string;
  jti: string;
  accountId?: string;
  clientId?: string;
  grantId?: string;
  sessionUid?: string;
  scope?: string;
  amr?: string[];
  acr?: string;
}

type Entities = Partial<Record<string, TokenEntity>>;

function requestContext(ctx: KoaContextWithOIDC) {
  return {
    ip: ctx.ip,
    userAgent: ctx.get('user-agent') || undefined,
    requestId: ctx.get(REQUEST_ID_HEADER) || undefined,
  };
}

function errorOf(ctx: KoaContextWithOIDC): string {
  const body = ctx.body as { error?: unknown } | undefined;
  return typeof body?.error === 'string' ? body.error : `status_${ctx.status}`;
}

/** The amr and acr of the ID token exactly as sent (a signed JWT; undefined when it cannot be read). */
function sentIdTokenClaims(idToken: unknown): Record<string, unknown> | undefined {
  if (typeof idToken !== 'string') return undefined;
  try {
    return decodeJwt(idToken);
  } catch {
    return undefined;
  }
}

/**
 * The protocol acts of the engine in the audit trail: tokens issued or refused, refresh-token and
 * authorization-code reuse, revocation, introspection, logout (front channel) and back-channel logout
 * deliveries, and federation to PSC. The engine's events are synchronous notifications: they collect
 * the facts of the request, and a middleware writes the records before the response leaves (a record
 * that cannot be written fails the request).
 */
export function auditProtocolEvents(provider: Provider, deps: ProtocolAuditDeps): void {
  const { audit, config } = deps;
  const facts = new WeakMap<KoaContextWithOIDC, RequestFacts>();
  const factsOf = (ctx: KoaContextWithOIDC) => {
    let found = facts.get(ctx);
    if (!found) {
      found = { revokedGrants: [], backchannel: [] };
      facts.set(ctx, found);
    }
    return found;
  };
  const events = provider as unknown as EventEmitter;
  events.on('grant.revoked', (ctx: KoaContextWithOIDC, grantId: string) => {
    factsOf(ctx).revokedGrants.push(grantId);
  });
  events.on(
    'backchannel.success',
    (ctx: KoaContextWithOIDC, client: { clientId: string }, accountId: string, sid: string) => {
      const initiator = pscLogoutInitiator() === client.clientId;
      factsOf(ctx).backchannel.push({
        clientId: client.clientId,
        accountId,
        sid,
        ...(initiator ? { sent: false as const } : {}),
      });
    },
  );
  events.on(
    'backchannel.error',
    (ctx: KoaContextWithOIDC, err: Error, client: { clientId: string }, accountId: string, sid: string) => {
      factsOf(ctx).backchannel.push({ clientId: client.clientId, accountId, sid, error: err.name });
    },
  );

  const tokenEvents = async (ctx: KoaContextWithOIDC, found: RequestFacts): Promise<AuditEvent[]> => {
    const { params, client } = ctx.oidc;
    const entities = ctx.oidc.entities as unknown as Entities;
    const grantType = typeof params?.grant_type === 'string' ? params.grant_type : undefined;
    const clientId =
      client?.clientId ?? (typeof params?.client_id === 'string' ? params.client_id : undefined);
    const base = { ...requestContext(ctx), clientId };
    if (ctx.status !== 200) {
      const refresh = grantType === 'refresh_token';
      // A consumed refresh token or authorization code presented again: the engine revoked the grant
      // (or the adapter did, for a concurrent redemption: "grant already used").
      const description = (ctx.body as { error_description?: unknown } | undefined)?.error_description;
      const reused =
        found.revokedGrants.length > 0 ||
        (typeof description === 'string' && /already (used|consumed)$/.test(description));
      // Opaque: the value presented is the token's jti.
      const value = refresh ? params?.refresh_token : params?.code;
      if (reused && typeof value === 'string') {
        const presented = refresh ? entities.RefreshToken : entities.AuthorizationCode;
        return [
          {
            ...base,
            type: refresh ? 'token.refresh_reuse' : 'token.code_reuse',
            outcome: 'failure',
            accountId: presented?.accountId,
            sessionId: presented?.sessionUid,
            reason: 'reuse_detected',
            detail: { grantType, jtiSha256: tokenDigest(value), revokedGrants: found.revokedGrants },
          },
        ];
      }
      return [
        { ...base, type: 'token.issued', outcome: 'failure', reason: errorOf(ctx), detail: { grantType } },
      ];
    }
    const access = entities.AccessToken ?? entities.ClientCredentials;
    const login = entities.AuthorizationCode ?? entities.RefreshToken;
    const body = ctx.body as Record<string, unknown>;
    const issued: AuditEvent = {
      ...base,
      type: 'token.issued',
      outcome: 'success',
      accountId: access?.accountId,
      sessionId: access?.sessionUid,
      amr: login?.amr,
      acr: login?.acr,
      detail: {
        grantType,
        scopes: access?.scope?.split(' ') ?? [],
        jtiSha256: access && tokenDigest(access.jti),
        ...(body.refresh_token && entities.RefreshToken
          ? { refreshTokenSha256: tokenDigest(entities.RefreshToken.jti) }
          : {}),
        idToken: typeof body.id_token === 'string',
        grantId: access?.grantId,
      },
    };
    const establishment = client && pscEstablishmentOf(config, client.metadata());
    if (!establishment || typeof body.id_token !== 'string' || !access?.accountId) return [issued];
    const sent =
      sentIdTokenClaims(body.id_token) ?? shapeForPsc({ amr: login?.amr, acr: login?.acr }, config.psc);
    const link = await deps.identities.findByAccount(access.accountId);
    return [
      issued,
      {
        ...base,
        type: 'psc.federation.accepted',
        outcome: 'success',
        accountId: access.accountId,
        sessionId: access.sessionUid,
        tid: establishment.tid,
        establishment: establishment.finess,
        amr: Array.isArray(sent.amr) ? sent.amr.map(String) : [],
        acr: typeof sent.acr === 'string' ? sent.acr : undefined,
        nationalId: link?.status === 'verified' ? link.idNat : undefined,
        detail: {
          oid: access.accountId,
          grantType,
          ...(link?.status === 'verified' ? { nationalIdOrigin: link.origin } : {}),
        },
      },
    ];
  };

  /** The token a revocation or introspection request named, when the engine found it. */
  const presentedToken = (ctx: KoaContextWithOIDC) => {
    const entities = ctx.oidc.entities as unknown as Entities;
    return entities.AccessToken ?? entities.RefreshToken ?? entities.ClientCredentials;
  };

  const revocationEvents = (ctx: KoaContextWithOIDC, found: RequestFacts): AuditEvent[] => {
    const token = presentedToken(ctx);
    const ok = ctx.status === 200 && token !== undefined;
    return [
      {
        ...requestContext(ctx),
        type: 'token.revoked',
        outcome: ok ? 'success' : 'failure',
        clientId: ctx.oidc.client?.clientId,
        accountId: token?.accountId,
        sessionId: token?.sessionUid,
        reason: ok ? undefined : ctx.status === 200 ? 'token_unknown' : errorOf(ctx),
        detail: token
          ? { kind: token.kind, jtiSha256: tokenDigest(token.jti), revokedGrants: found.revokedGrants }
          : undefined,
      },
    ];
  };

  const introspectionEvents = (ctx: KoaContextWithOIDC): AuditEvent[] => {
    const token = presentedToken(ctx);
    const body = ctx.body as { active?: unknown } | string | undefined;
    const active = typeof body === 'object' ? body?.active === true : token !== undefined;
    return [
      {
        ...requestContext(ctx),
        type: 'token.introspected',
        outcome: ctx.status === 200 ? 'success' : 'failure',
        clientId: ctx.oidc.client?.clientId,
        accountId: active ? token?.accountId : undefined,
        reason: ctx.status === 200 ? undefined : errorOf(ctx),
        detail:
          ctx.status === 200
            ? {
                active,
                ...(active && token
                  ? { kind: token.kind, jtiSha256: tokenDigest(token.jti), tokenClientId: token.clientId }
                  : {}),
              }
            : undefined,
      },
    ];
  };

  const logoutEvents = (ctx: KoaContextWithOIDC, found: RequestFacts): AuditEvent[] => {
    const session = ctx.oidc.session;
    if (ctx.status >= 400 || !session?.accountId) return [];
    const everywhere = ctx.oidc.params?.logout === 'yes';
    const clientId = ctx.oidc.client?.clientId;
    const base = { ...requestContext(ctx), accountId: session.accountId, sessionId: session.uid };
    return [
      {
        ...base,
        clientId,
        type: everywhere ? 'session.ended' : 'session.client_logout',
        outcome: 'success',
        reason: 'rp_initiated_logout',
      },
      ...found.backchannel.map(
        (delivery): AuditEvent => ({
          ...base,
          type: 'logout.backchannel',
          outcome: delivery.error ? 'failure' : 'success',
          clientId: delivery.clientId,
          reason: delivery.error
            ? 'delivery_failed'
            : delivery.sent === false
              ? 'client_initiated'
              : undefined,
          detail: {
            sid: delivery.sid,
            ...(delivery.error ? { error: delivery.error } : {}),
            ...(delivery.sent === false ? { sent: false } : {}),
          },
        }),
      ),
    ];
  };

  provider.use(async (ctx, next) => {
    await next();
    const oidc = (ctx as KoaContextWithOIDC).oidc;
    if (!oidc) return;
    const found = factsOf(ctx as KoaContextWithOIDC);
    let records: AuditEvent[];
    switch (oidc.route) {
      case 'token':
        records = await tokenEvents(ctx as KoaContextWithOIDC, found);
        break;
      case 'revocation':
        records = revocationEvents(ctx as KoaContextWithOIDC, found);
        break;
      case 'introspection':
        records = introspectionEvents(ctx as KoaContextWithOIDC);
        break;
      case 'end_session_confirm':
        records = logoutEvents(ctx as KoaContextWithOIDC, found);
        break;
      default:
        return;
    }
    if (oidc.route === 'token') {
      // Tokens are the end of a sign-in: fail-open applies to local clients, never to PSC.
      const psc = oidc.client && pscEstablishmentOf(config, oidc.client.metadata());
      for (const record of records) await audit.recordAuthentication(record, psc ? 'federation' : 'local');
    } else {
      for (const record of records) await audit.record(record);
    }
  });
}
