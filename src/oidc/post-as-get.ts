import type { Middleware } from 'koa';
import getRawBody from 'raw-body';

/** The engine's authorization and end-session endpoints (its default routes). */
export const POST_AS_GET_PATHS = ['/auth', '/session/end'] as const;

/**
 * Longest request re-sent as a GET: the query must fit the request line that reverse proxies accept
 * (nginx's default large_client_header_buffers is 8 KiB). A longer POST goes to the engine as it is.
 */
export const MAX_QUERY_LENGTH = 6000;

/**
 * A form POST at the authorization or end-session endpoint (OpenID Connect Core 3.1.2.1 and RP-Initiated
 * Logout 2: both MUST be supported) is answered with a 303 to the same endpoint with the parameters in
 * the query. The single sign-on cookies are SameSite=Lax: a browser sends them on a cross-site top-level
 * GET but not on a cross-site POST. Handled as a POST, an authorization request from another site would
 * not see the user's session (no single sign-on, `prompt=none` answered `login_required`), and a logout
 * would start a new empty session whose cookie replaces the real one, leaving that session alive on the
 * server and in its applications. After the 303, the engine sees the request as the GET it stands for.
 */
export function postAsGet(): Middleware {
  return async (ctx, next) => {
    if (
      ctx.method !== 'POST' ||
      !(POST_AS_GET_PATHS as readonly string[]).includes(ctx.path) ||
      !ctx.is('application/x-www-form-urlencoded') ||
      (ctx.request.length ?? 0) > MAX_QUERY_LENGTH
    ) {
      return next();
    }
    let body: string;
    try {
      body = await getRawBody(ctx.req, {
        limit: MAX_QUERY_LENGTH,
        encoding: 'utf8',
        length: ctx.request.length,
      });
    } catch {
      // Too long once read (no Content-Length), or cut short: the engine cannot read it either.
      ctx.status = 400;
      ctx.type = 'text/plain';
      ctx.body = 'invalid_request: unreadable or oversized form body';
      return;
    }
    // Re-encoded: duplicates and order kept (the engine rejects duplicated parameters itself).
    const query = new URLSearchParams(body).toString();
    ctx.set('cache-control', 'no-store');
    ctx.status = 303;
    ctx.redirect(query ? `${ctx.path}?${query}` : ctx.path);
  };
}
