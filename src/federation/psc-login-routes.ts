import { Router } from '@koa/router';
import { createRemoteJWKSet, type JWTPayload, jwtVerify } from 'jose';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { AuditTrail } from '../audit/trail.ts';
import type { Config } from '../config/schema.ts';
import type { Database } from '../db/types.ts';
import type { Views } from '../http/views.ts';
import { negotiateLocale, translator } from '../i18n/messages.ts';
import { FormError, readForm } from '../interaction/form.ts';
import { PSC_BACKCHANNEL_LOGOUT_PATH, PSC_CALLBACK_PATH, type pscLoginMethod } from '../methods/psc/index.ts';
import type { ProviderHost } from '../oidc/host.ts';

const BACKCHANNEL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';
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
    const { provider } = deps.host;
    for (const { session_uid: uid, account_id: accountId } of ended) {
      // The engine's session too: its applications with a back-channel logout URI are told.
      const session = await provider.Session.findByUid(uid);
      if (session) {
        for (const clientId of Object.keys(session.authorizations ?? {})) {
          // The engine's Client has backchannelLogout(sub, sid); its typings do not declare it.
          const client = (await provider.Client.find(clientId)) as
            | { backchannelLogoutUri?: string; backchannelLogout(sub: string, sid: string): Promise<void> }
            | undefined;
          if (!client?.backchannelLogoutUri) continue;
          await client.backchannelLogout(accountId, session.sidFor(clientId) ?? '').catch((err: unknown) => {
            deps.logger.warn({ err, clientId }, 'back-channel logout delivery failed');
          });
        }
        await session.destroy();
      }
      await deps.audit.record({
        type: 'session.ended',
        outcome: 'success',
        accountId,
        sessionId: uid,
        reason: 'psc_backchannel_logout',
        ip: ctx.ip,
        requestId: ctx.state.requestId,
      });
    }
    ctx.status = 200;
    ctx.body = '';
  });

  return router;
}
