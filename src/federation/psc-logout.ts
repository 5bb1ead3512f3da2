import { AsyncLocalStorage } from 'node:async_hooks';
import { decodeJwt } from 'jose';
import type { Middleware } from 'koa';
import type { Logger } from 'pino';
import type { AuditTrail } from '../audit/trail.ts';
import type { Config } from '../config/schema.ts';
import type { ProviderHost } from '../oidc/host.ts';
import type { AuthSessions } from '../sessions/auth-sessions.ts';
import { endSessions } from '../sessions/end-sessions.ts';
import { pscEstablishmentOf } from './psc-profile.ts';

/**
 * When Pro Santé Connect itself sends the user to Passerelle's end_session (its RP-initiated logout,
 * after a service logged out at PSC), PSC must not also receive Passerelle's back-channel logout token
 * for that session: it would end PSC's session while the browser is still at Passerelle, and PSC's
 * Keycloak then shows an error page instead of returning to the service (keycloak/keycloak#45536).
 * PSC initiated the logout: it ends its own session when the browser comes back.
 *
 * PSC's request is recognised by its client (a PSC client of an establishment) asking for the browser
 * back (post_logout_redirect_uri); a user who signs out at Passerelle itself still notifies PSC.
 * The logout page marks the initiating PSC client in a signed cookie; on confirmation this middleware
 * runs the engine with that client id in an async context, which the engine's back-channel delivery
 * consults (src/oidc/provider.ts).
 */
export const PSC_INITIATED_LOGOUT_COOKIE = 'passerelle_psc_initiated_logout';

const initiator = new AsyncLocalStorage<string>();

/** The PSC client that initiated the logout being confirmed, if any. */
export function pscLogoutInitiator(): string | undefined {
  return initiator.getStore();
}

export function pscInitiatedLogout(): Middleware {
  return async (ctx, next) => {
    const clientId =
      ctx.method === 'POST' && ctx.path === '/session/end/confirm'
        ? ctx.cookies.get(PSC_INITIATED_LOGOUT_COOKIE, { signed: true })
        : undefined;
    if (!clientId) return next();
    ctx.cookies.set(PSC_INITIATED_LOGOUT_COOKIE, null, { signed: true, httpOnly: true });
    await initiator.run(clientId, next);
  };
}

/** The engine's session cookie (its default name). */
const ENGINE_SESSION_COOKIE = '_session';

export interface ServerSideLogoutDeps {
  config: Config;
  host: ProviderHost;
  sessions: AuthSessions;
  audit: AuditTrail;
  logger: Logger;
}

/**
 * Keycloak's broker with "back-channel logout" on (`backchannelSupported`) ends the FI's session by a
 * server-side GET on the end_session endpoint, with `id_token_hint` (the ID token kept since the login,
 * possibly expired), `state` and `client_id`, and no cookies; any 2xx or 3xx is success to it
 * (keycloak-broker.md §5). Without a session cookie the engine would show a logout page and end nothing.
 * For a PSC client, such a request whose hint verifies ends the session the hint's `sid` names, as
 * Keycloak's own end_session endpoint does: its other applications are told, PSC is not (it asked).
 * Anything else goes on to the engine unchanged.
 */
export function pscServerSideLogout(deps: ServerSideLogoutDeps): Middleware {
  return async (ctx, next) => {
    const hint = ctx.query.id_token_hint;
    if (ctx.method !== 'GET' || ctx.path !== '/session/end' || typeof hint !== 'string') return next();
    if (ctx.cookies.get(ENGINE_SESSION_COOKIE)) return next();
    let clientId: string;
    try {
      const { aud } = decodeJwt(hint);
      clientId = Array.isArray(aud) ? (aud[0] ?? '') : (aud ?? '');
    } catch {
      return next();
    }
    const { provider } = deps.host;
    const client = clientId ? await provider.Client.find(clientId) : undefined;
    const wanted = ctx.query.client_id;
    if (!client || !pscEstablishmentOf(deps.config, client.metadata()) || (wanted && wanted !== clientId)) {
      return next();
    }
    let sid: unknown;
    try {
      ({
        payload: { sid },
      } = (await provider.IdToken.validate(hint, client)) as { payload: { sid?: unknown } });
    } catch {
      return next(); // the engine answers an invalid hint with its own error
    }
    if (typeof sid !== 'string') return next();
    const found = await deps.sessions.endByClientSid(clientId, sid);
    await initiator.run(clientId, () =>
      endSessions(deps, found, 'psc_server_side_logout', {
        ip: ctx.ip,
        userAgent: ctx.get('user-agent'),
        requestId: ctx.state.requestId as string | undefined,
      }),
    );
    deps.logger.info({ clientId, ended: found.length }, 'server-side logout by PSC');
    ctx.set('cache-control', 'no-store');
    ctx.status = 200;
    ctx.type = 'text/plain';
    ctx.body = found.length ? 'session ended' : 'no session';
  };
}
