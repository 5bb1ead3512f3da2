import type { Context } from 'koa';
import type { Services } from '../app.ts';
import type { AuditEvent } from '../audit/trail.ts';
import type { ReadinessCheck } from '../http/health.ts';
import { type MessageId, negotiateLocale, translator } from '../i18n/messages.ts';
import { timeFormat } from '../i18n/time.ts';
import { type CsrfTokens, FormError, readForm } from '../interaction/form.ts';
import type { SmartcardRuntime } from '../methods/smartcard/setup.ts';
import { pageFrame, renderPage } from '../portal/routes.ts';
import type { RppsRuntime } from '../rpps/runtime.ts';
import type { ConsoleDeps, ConsoleGate, ConsoleUser } from './console.ts';
import type { ConsoleSectionId } from './sections.ts';
import { sectionsFor } from './sections.ts';

/** What the RPPS, establishments, audit and health sections of the console use. */
export interface RecordsDeps extends ConsoleDeps {
  gate: ConsoleGate;
  csrf: CsrfTokens;
  services: Services;
  rpps: RppsRuntime;
  /** The readiness checks of /readyz, as createPasserelle assembled them. */
  readiness: readonly ReadinessCheck[];
  smartcard: SmartcardRuntime | undefined;
}

export const csrfBinding = (user: ConsoleUser) => `console:${user.who.session.sessionUid}`;

/** Renders a section page with the frame, the console navigation and the CSRF token. */
export async function renderSection(
  deps: RecordsDeps,
  ctx: Context,
  user: ConsoleUser,
  section: ConsoleSectionId,
  view: string,
  data: Record<string, unknown>,
  status = 200,
) {
  const frame = await pageFrame(deps, ctx, user.who);
  renderPage(deps.views, ctx, status, view, {
    ...frame,
    wide: true,
    section,
    sections: sectionsFor(user.roles),
    csrf: deps.csrf.issue(csrfBinding(user)),
    fmt: timeFormat(frame.locale, deps.config.ui.timeZone).precise,
    ...data,
  });
}

export const localeOf = (deps: Pick<RecordsDeps, 'config'>, ctx: Context) =>
  negotiateLocale(undefined, ctx.get('accept-language'), deps.config.ui.defaultLocale);

export function renderError(deps: RecordsDeps, ctx: Context, status: number, id: MessageId) {
  const locale = localeOf(deps, ctx);
  renderPage(deps.views, ctx, status, 'error', {
    locale,
    demo: deps.config.demo,
    requestId: ctx.state.requestId as string,
    message: translator(locale)(id),
  });
}

/** A console form's fields, once its CSRF token checks out (else the error page is set). */
export async function consoleForm(
  deps: RecordsDeps,
  ctx: Context,
  user: ConsoleUser,
): Promise<Record<string, string> | undefined> {
  let body: Record<string, string>;
  try {
    body = await readForm(ctx, deps.config.http.bodyLimitBytes);
  } catch (err) {
    if (err instanceof FormError) {
      renderError(deps, ctx, err.status, 'error.invalid_form');
      return undefined;
    }
    throw err;
  }
  if (!deps.csrf.verify(ctx, csrfBinding(user), body.csrf)) {
    renderError(deps, ctx, 403, 'error.csrf');
    return undefined;
  }
  return body;
}

/** A console act's audit record: who did it, from where, through the console. */
export function consoleAct(
  ctx: Context,
  user: ConsoleUser,
  event: Omit<AuditEvent, 'outcome'> & { outcome?: AuditEvent['outcome'] },
): AuditEvent {
  return {
    outcome: 'success',
    accountId: user.who.account.id,
    sessionId: user.who.session.sessionUid,
    ip: ctx.ip,
    userAgent: ctx.get('user-agent') || undefined,
    requestId: ctx.state.requestId as string,
    ...event,
    detail: { via: 'console', actor: user.who.account.username, ...event.detail },
  };
}
