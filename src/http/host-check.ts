import type { Middleware } from 'koa';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';

/**
 * The host names Passerelle serves: the issuer's, the smart card host (smartcard.formOrigin: the card
 * listener or the proxy's card host) and the WebAuthn origins. Host names, not ports: a reverse proxy
 * forwards the host without the port it listens on (nginx's $host), and published URLs never follow
 * the request anyway.
 */
export function servedHostnames(config: Config): Set<string> {
  const origins = [config.issuer, config.smartcard?.formOrigin, ...(config.webauthn?.origins ?? [])];
  return new Set(origins.filter((o) => o !== undefined).map((o) => new URL(o).hostname.toLowerCase()));
}

/**
 * Refuses a request for a host Passerelle does not serve (Host, or X-Forwarded-Host from the trusted
 * proxy) with 421 Misdirected Request (RFC 9110 §15.5.20), so that no page, cookie or redirect is ever
 * made for another name. `exempt` paths (health checks, probed by address) answer whatever the host.
 */
export function hostCheck(config: Config, logger: Logger, exempt: readonly string[]): Middleware {
  const served = servedHostnames(config);
  const message =
    `Cette adresse n’est pas celle de Passerelle : ${config.issuer}\n` +
    `This address is not Passerelle’s: ${config.issuer}\n`;
  return async (ctx, next) => {
    if (served.has(ctx.hostname.toLowerCase()) || exempt.includes(ctx.path)) return next();
    logger.info(
      { requestId: ctx.state.requestId, host: ctx.host.slice(0, 255), path: ctx.path },
      'request for another host refused',
    );
    ctx.status = 421;
    ctx.type = 'text/plain; charset=utf-8';
    ctx.set('cache-control', 'no-store');
    ctx.body = message;
  };
}
