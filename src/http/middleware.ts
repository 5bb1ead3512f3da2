import { randomUUID } from 'node:crypto';
import type { Context, Next } from 'koa';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';

const REQUEST_ID = /^[A-Za-z0-9._-]{8,128}$/;

/** Request id (accepted from a trusted proxy when well-formed) and one structured access log line. */
export function requestContext(logger: Logger, trustProxy: boolean) {
  return async (ctx: Context, next: Next) => {
    const incoming = ctx.get('x-request-id');
    const requestId = trustProxy && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    ctx.state.requestId = requestId;
    ctx.set('x-request-id', requestId);
    const started = performance.now();
    ctx.res.once('finish', () => {
      logger.info(
        {
          requestId,
          method: ctx.method,
          path: ctx.path,
          status: ctx.res.statusCode,
          ms: Math.round((performance.now() - started) * 10) / 10,
          ip: ctx.ip,
        },
        'request',
      );
    });
    await next();
  };
}

/** Strict headers on every response, including the protocol engine's. */
export function securityHeaders(config: Config) {
  const hsts = config.issuer.startsWith('https://');
  return async (ctx: Context, next: Next) => {
    ctx.set(
      'content-security-policy',
      "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
        "font-src 'self'; base-uri 'none'; frame-ancestors 'none'",
    );
    ctx.set('x-frame-options', 'DENY');
    ctx.set('x-content-type-options', 'nosniff');
    ctx.set('referrer-policy', 'same-origin');
    ctx.set('cross-origin-opener-policy', 'same-origin');
    ctx.set('permissions-policy', 'camera=(), microphone=(), geolocation=(), payment=()');
    if (hsts) ctx.set('strict-transport-security', 'max-age=31536000; includeSubDomains');
    await next();
  };
}

/** Refuses declared bodies over the limit before anything reads them. */
export function bodyLimit(limitBytes: number) {
  return async (ctx: Context, next: Next) => {
    const length = ctx.request.length;
    if (length !== undefined && length > limitBytes) {
      ctx.status = 413;
      ctx.body = { error: 'invalid_request', error_description: 'request body too large' };
      ctx.set('connection', 'close');
      return;
    }
    await next();
  };
}

/** Last-resort handler: logs the bug or outage, shows a generic page or JSON with the request id. */
export function errorBoundary(logger: Logger, render: (ctx: Context) => string) {
  return async (ctx: Context, next: Next) => {
    try {
      await next();
    } catch (err) {
      logger.error({ err, requestId: ctx.state.requestId, path: ctx.path }, 'unhandled error');
      if (ctx.headerSent || ctx.respond === false) return;
      ctx.status = 503;
      if (ctx.accepts('html', 'json') === 'html') {
        ctx.type = 'html';
        ctx.body = render(ctx);
      } else {
        ctx.body = { error: 'temporarily_unavailable', request_id: ctx.state.requestId };
      }
    }
  };
}
