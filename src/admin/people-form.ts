import type { Context } from 'koa';
import type { AdminActor } from '../accounts/admin-acts.ts';
import type { AccountRoles } from '../accounts/roles.ts';
import type { Config } from '../config/schema.ts';
import type { Views } from '../http/views.ts';
import type { MessageId } from '../i18n/messages.ts';
import { timeFormat } from '../i18n/time.ts';
import { type CsrfTokens, FormError, readForm } from '../interaction/form.ts';
import { pageFrame, renderMessage } from '../portal/routes.ts';
import type { ConsoleUser } from './console.ts';
import { sectionsFor } from './sections.ts';

/** What the accounts and applications sections share: the page frame's inputs, forms with CSRF. */
export interface ConsoleFormDeps {
  config: Config;
  views: Views;
  roles: AccountRoles;
  csrf: CsrfTokens;
  securityUrl?: string;
}

/** Console forms: CSRF bound to the operator's session, the error page, the audit trail's actor. */
export function consoleForms(deps: ConsoleFormDeps) {
  const { config, csrf } = deps;
  const binding = (user: ConsoleUser) => `console:${user.who.session.sessionUid}`;

  const fail = (ctx: Context, status: number, id: MessageId) => renderMessage(deps, ctx, status, id);

  /** The page frame of a console section's page. */
  const frame = async (ctx: Context, user: ConsoleUser) => ({
    ...(await pageFrame(deps, ctx, user.who)),
    wide: true,
    sections: sectionsFor(user.roles),
  });

  /** The posted form when its CSRF token is the operator's; otherwise the error page (403). */
  const form = async (ctx: Context, user: ConsoleUser): Promise<Record<string, string> | undefined> => {
    let body: Record<string, string>;
    try {
      body = await readForm(ctx, config.http.bodyLimitBytes);
    } catch (err) {
      if (err instanceof FormError) {
        fail(ctx, err.status, 'error.invalid_form');
        return undefined;
      }
      throw err;
    }
    if (!csrf.verify(ctx, binding(user), body.csrf)) {
      fail(ctx, 403, 'error.csrf');
      return undefined;
    }
    return body;
  };

  const actor = (ctx: Context, user: ConsoleUser): AdminActor => ({
    via: 'console',
    actor: user.who.account.username,
    context: {
      sessionId: user.who.session.sessionUid,
      ip: ctx.ip,
      userAgent: ctx.get('user-agent') || undefined,
      requestId: ctx.state.requestId as string,
    },
  });

  /** Dates in the establishment's time zone. */
  const dates = (locale: 'fr' | 'en') => ({ format: timeFormat(locale, config.ui.timeZone).full });

  return { token: (user: ConsoleUser) => csrf.issue(binding(user)), form, fail, frame, actor, dates };
}

export type ConsoleForms = ReturnType<typeof consoleForms>;

/** After an act, back to the page with a notice (Post/Redirect/Get). */
export function seeOther(ctx: Context, path: string, done: string) {
  ctx.status = 303;
  ctx.redirect(`${path}?done=${encodeURIComponent(done)}`);
}
