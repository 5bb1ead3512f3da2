import { AsyncLocalStorage } from 'node:async_hooks';
import type { Middleware } from 'koa';

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
