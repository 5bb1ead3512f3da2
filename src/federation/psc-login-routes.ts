import { Router } from '@koa/router';
import { createRemoteJWKSet, type JWTPayload, jwtVerify } from 'jose';
import type { Context, Middleware } from 'koa';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { AuditTrail } from '../audit/trail.ts';
import type { Config } from '../config/schema.ts';
import type { Database } from '../db/types.ts';
import { signValue, verifySignedValue } from '../http/signed-value.ts';
import type { Views } from '../http/views.ts';
import { negotiateLocale, translator } from '../i18n/messages.ts';
import { FormError, readForm } from '../interaction/form.ts';
import { PSC_BACKCHANNEL_LOGOUT_PATH, PSC_CALLBACK_PATH, type pscLoginMethod } from '../methods/psc/index.ts';
import type { ProviderHost } from '../oidc/host.ts';
import { endSessions } from '../sessions/end-sessions.ts';

const BACKCHANNEL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';
/** Set by the logout page of a session that came through PSC: sign out of PSC after Passerelle. */
export const PSC_LOGOUT_COOKIE = 'passerelle_psc_logout';
export const PSC_LOGGED_OUT_PATH = '/federation/psc/logged-out';
/**
 * Set by the portal's "Lier ma e-CPS" (src/portal/security.ts) for one signed-in session: its next login
 * (prompt=login) starts as the link-through-PSC step of a login (interaction state `linkPsc`, the
 * session's account already proven), so PSC's proof links the account (source `psc-login`).
 */
export const PSC_LINK_COOKIE = 'passerelle_psc_link';
const PSC_LINK_TTL_MS = 10 * 60_000;

/** Marks this browser's next login as the link through PSC of that session's account. */
export function requestPscLink(ctx: Context, sessionUid: string, secure: boolean): void {
  ctx.cookies.set(PSC_LINK_COOKIE, sessionUid, {
    signed: true,
    httpOnly: true,
    sameSite: 'lax',
    secure,
    maxAge: PSC_LINK_TTL_MS,
  });
}

/** Whether this browser asked to link PSC to the account of that session (the request is used once). */
export function pscLinkRequested(ctx: Context, sessionUid: string): boolean {
  const asked = ctx.cookies.get(PSC_LINK_COOKIE, { signed: true });
  if (!asked) return false;
  ctx.cookies.set(PSC_LINK_COOKIE, null, { signed: true, httpOnly: true });
  return asked === sessionUid;
}

/** A logout token older than this is refused (clock skew included). */
const LOGOUT_TOKEN_MAX_AGE_SECONDS = 300;

export interface PscLoginRouteDeps {
  config: Config;
  db: Kysely<Database>;
  host: ProviderHost;
  views: Views;
  audit: AuditTrail;
  logger: Logger;
  method: ReturnType<typeof pscLoginMethod>;
  /** Signs the return URL of the chained logout (a cookie key). */
  key: string;
}

/** Why a logout token is refused (OpenID Connect Back-Channel Logout 1.0 §2.6), or its `sid`. */
export function logoutTokenSid(payload: JWTPayload): { sid: string } | { invalid: string } {
  const events = payload.events as Record<string, unknown> | undefined;
  if (!events || typeof events !== 'object' || !(BACKCHANNEL_EVENT in events)) return { invalid: 'no_event' };
  if ('nonce' in payload) return { invalid: 'nonce_present' };
  if (typeof payload.iat !== 'number') return { invalid: 'no_iat' };
  // Registered with backchannel_logout_session_required: the PSC session is named.
  if (typeof payload.sid !== 'string' || !payload.sid) return { invalid: 'no_sid' };
  return { sid: payload.sid };
}

/**
 * RP-initiated logout at PSC, chained after Passerelle's: when the user confirms the logout of a session
 * that came through PSC (its logout page set PSC_LOGOUT_COOKIE), the engine's redirect (the application's
 * post_logout_redirect_uri, or our "signed out" page) is replaced by PSC's end_session endpoint, whose
 * `state` carries that redirect, signed; PSC sends the browser back to PSC_LOGGED_OUT_PATH, which resumes.
 * Mounted just before the engine, which answers on the raw response.
 */
export function pscLogoutChain(
  deps: Pick<PscLoginRouteDeps, 'config' | 'method' | 'logger'> & { key: string },
): Middleware {
  const { config } = deps;
  return async (ctx, next) => {
    if (
      ctx.method !== 'POST' ||
      ctx.path !== '/session/end/confirm' ||
      !ctx.cookies.get(PSC_LOGOUT_COOKIE, { signed: true })
    ) {
      return next();
    }
    let endSession: string | undefined;
    try {
      endSession = (await deps.method.configuration()).serverMetadata().end_session_endpoint;
    } catch (err) {
      // PSC unreachable: Passerelle's own logout goes on; PSC's session ends on its own.
      deps.logger.warn({ error: (err as Error).message }, 'psc logout: discovery failed, PSC not signed out');
    }
    if (endSession) {
      const pscLogout = endSession;
      ctx.cookies.set(PSC_LOGOUT_COOKIE, null, { signed: true, httpOnly: true });
      const res = ctx.res;
      const setHeader = res.setHeader.bind(res);
      res.setHeader = (name: string, value: number | string | readonly string[]) => {
        if (name.toLowerCase() !== 'location' || typeof value !== 'string') return setHeader(name, value);
        const url = new URL(pscLogout);
        url.searchParams.set('client_id', config.pscLogin?.clientId ?? '');
        url.searchParams.set('post_logout_redirect_uri', `${config.issuer}${PSC_LOGGED_OUT_PATH}`);
        url.searchParams.set('state', signValue(deps.key, value, 10 * 60_000));
        return setHeader(name, url.href);
      };
    }
    await next();
  };
}

/**
 * Passerelle's side of the login through Pro Santé Connect: the redirect URI registered at PSC (it finds
 * the interaction from the `state` and hands the answer to the login flow), and PSC's back-channel
 * logout, which ends the single sign-on sessions that came from the PSC session it names.
 */
export function pscLoginRoutes(deps: PscLoginRouteDeps): Router {
  const { config, db, views } = deps;
  const router = new Router();
  let jwks: { uri: string; set: ReturnType<typeof createRemoteJWKSet> } | undefined;

  router.get(PSC_CALLBACK_PATH, async (ctx) => {
    const state = typeof ctx.query.state === 'string' ? ctx.query.state : '';
    const pending = state
      ? await db
          .selectFrom('psc_login_pending')
          .select('interaction_uid')
          .where('state', '=', state)
          .where('expires_at', '>', new Date())
          .executeTakeFirst()
      : undefined;
    if (!pending) {
      // Unknown or expired state: a forged or replayed answer, or a login left open too long.
      await deps.audit.record({
        type: 'auth.attempt',
        outcome: 'failure',
        method: 'psc',
        reason: 'unknown_state',
        ip: ctx.ip,
        userAgent: ctx.get('user-agent'),
        requestId: ctx.state.requestId,
      });
      const locale = negotiateLocale(undefined, ctx.get('accept-language'), config.ui.defaultLocale);
      ctx.status = 400;
      ctx.type = 'html';
      ctx.body = views.render(
        'error',
        { locale, demo: config.demo, requestId: ctx.state.requestId },
        { message: translator(locale)('error.upstream_failed') },
      );
      return;
    }
    ctx.status = 303;
    ctx.redirect(
      `/interaction/${encodeURIComponent(pending.interaction_uid)}/method/psc/return?${ctx.querystring}`,
    );
  });

  router.get(PSC_LOGGED_OUT_PATH, (ctx) => {
    ctx.status = 303;
    // The engine's answer (validated by it), signed by us; otherwise only the "signed out" page.
    ctx.redirect(verifySignedValue(deps.key, ctx.query.state) ?? '/session/end/success');
  });

  router.post(PSC_BACKCHANNEL_LOGOUT_PATH, async (ctx) => {
    ctx.set('cache-control', 'no-store');
    const refuse = (description: string) => {
      ctx.status = 400;
      ctx.body = { error: 'invalid_request', error_description: description };
    };
    let token: string | undefined;
    try {
      token = (await readForm(ctx, config.http.bodyLimitBytes)).logout_token;
    } catch (err) {
      if (!(err instanceof FormError)) throw err;
    }
    if (!token) return refuse('logout_token is required');

    const server = (await deps.method.configuration()).serverMetadata();
    if (!server.jwks_uri) throw new Error('PSC discovery has no jwks_uri');
    if (jwks?.uri !== server.jwks_uri)
      jwks = { uri: server.jwks_uri, set: createRemoteJWKSet(new URL(server.jwks_uri)) };
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, jwks.set, {
        issuer: server.issuer,
        audience: config.pscLogin?.clientId,
        maxTokenAge: LOGOUT_TOKEN_MAX_AGE_SECONDS,
      }));
    } catch (err) {
      deps.logger.info(
        { error: (err as Error).message, requestId: ctx.state.requestId },
        'psc logout token refused',
      );
      return refuse('invalid logout_token');
    }
    const checked = logoutTokenSid(payload);
    if ('invalid' in checked) return refuse(`invalid logout_token (${checked.invalid})`);

    const ended = await db
      .deleteFrom('auth_session')
      .where('upstream_sid', '=', checked.sid)
      .returning(['session_uid', 'account_id'])
      .execute();
    await endSessions(
      deps,
      ended.map((r) => ({ sessionUid: r.session_uid, accountId: r.account_id })),
      'psc_backchannel_logout',
      { ip: ctx.ip, requestId: ctx.state.requestId as string },
    );
    ctx.status = 200;
    ctx.body = '';
  });

  return router;
}
