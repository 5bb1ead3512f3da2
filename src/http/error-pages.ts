import type { Context } from 'koa';
import { type Locale, type MessageId, translator } from '../i18n/messages.ts';
import type { PageContext, Views } from './views.ts';

/** What the user reads on an error page: what happened, and what to do. */
export interface ErrorPageText {
  message: MessageId;
  advice: MessageId;
}

/** The application's request itself is not acceptable: its configuration, not the user, is at fault. */
const UNSUPPORTED_REQUESTS: ReadonlySet<string> = new Set([
  'unauthorized_client',
  'unsupported_response_type',
  'unsupported_response_mode',
  'invalid_scope',
  'invalid_target',
  'invalid_request_object',
  'invalid_request_uri',
  'request_not_supported',
  'request_uri_not_supported',
  'registration_not_supported',
]);

/**
 * The sentences shown for an OAuth / OpenID Connect error code of the protocol engine (the engine's own
 * `error_description` is logged, never shown). `expired`: the engine lost the interaction or session
 * the browser came back with.
 */
export function engineErrorPage(code: string, expired: boolean): ErrorPageText {
  const contact = 'error.engine.advice.contact' as const;
  if (expired) return { message: 'error.interaction_expired', advice: 'error.engine.advice.restart' };
  if (code === 'invalid_client') return { message: 'error.engine.invalid_client', advice: contact };
  if (code === 'invalid_redirect_uri')
    return { message: 'error.engine.invalid_redirect_uri', advice: contact };
  if (code === 'access_denied') {
    return { message: 'error.engine.access_denied', advice: 'error.engine.advice.restart' };
  }
  if (code === 'invalid_request') return { message: 'error.engine.invalid_request', advice: contact };
  if (UNSUPPORTED_REQUESTS.has(code)) return { message: 'error.engine.unsupported_request', advice: contact };
  return { message: 'error.engine.other', advice: contact };
}

/**
 * An address that nothing answers: the page in the layout for browsers, JSON or plain text for API
 * clients (by Accept; `*\/*` is answered in JSON, as the engine does), each with the request reference.
 */
export function respondNotFound(ctx: Context, views: Views, page: PageContext & { locale: Locale }): void {
  const t = translator(page.locale);
  ctx.status = 404;
  ctx.set('cache-control', 'no-store');
  switch (ctx.accepts('json', 'html', 'text')) {
    case 'html':
      ctx.type = 'html';
      ctx.body = views.render('error', page, {
        heading: t('error.not_found.title'),
        message: t('error.not_found'),
        advice: t('error.not_found.advice'),
      });
      return;
    case 'text': {
      const colon = page.locale === 'fr' ? ' : ' : ': ';
      ctx.type = 'text/plain; charset=utf-8';
      ctx.body = `${t('error.not_found')}\n${t('error.reference')}${colon}${page.requestId ?? ''}\n`;
      return;
    }
    default:
      ctx.body = { error: 'not_found', request_id: page.requestId };
  }
}
