import { Router } from '@koa/router';
import type { Context } from 'koa';
import type { AccountRoles, ConsoleRole } from '../accounts/roles.ts';
import { CONSOLE_ROLES } from '../accounts/roles.ts';
import type { AuditTrail } from '../audit/trail.ts';
import type { Config } from '../config/schema.ts';
import type { Views } from '../http/views.ts';
import { type MessageId, translator } from '../i18n/messages.ts';
import { pageFrame, renderMessage, renderPage } from '../portal/routes.ts';
import { CONSOLE_CALLBACK, consoleLevel, type SignedIn, type SignInFlow } from '../portal/sign-in.ts';
import { sectionsFor } from './sections.ts';

export interface ConsoleDeps {
  config: Config;
  views: Views;
  flow: SignInFlow;
  roles: AccountRoles;
  audit: AuditTrail;
  securityUrl?: string;
}

/** A console page's caller: signed in recently with a phishing-resistant second factor, with one of the roles. */
export interface ConsoleUser {
  who: SignedIn;
  roles: ConsoleRole[];
}

/**
 * The console's door, for every page: no session → an ordinary sign-in through the engine and back (who it
 * is decides what follows); no allowed role → 403 with what to do, and an audit record, before anything
 * stronger is asked; a role but no recent phishing-resistant two-factor authentication → step up through
 * the engine and come back. Returns the caller, or undefined when the response is already set.
 */
export function consoleGate(deps: ConsoleDeps) {
  const { config, flow } = deps;
  const refuse = (ctx: Context, status: number, id: MessageId) => renderMessage(deps, ctx, status, id);
  return async (ctx: Context, allowed: readonly ConsoleRole[]): Promise<ConsoleUser | undefined> => {
    if (!consoleLevel(config)) {
      refuse(ctx, 503, 'console.no_level');
      return undefined;
    }
    const back = ctx.method === 'GET' ? ctx.originalUrl : '/admin';
    const who = await flow.signedIn(ctx);
    if (!who) {
      flow.redirectToSignIn(ctx, 'portal', back);
      return undefined;
    }
    const roles = await deps.roles.of(who.account.id);
    if (!roles.some((role) => allowed.includes(role))) {
      await deps.audit.record({
        type: 'admin.access.denied',
        outcome: 'failure',
        reason: 'role_missing',
        accountId: who.account.id,
        sessionId: who.session.sessionUid,
        ip: ctx.ip,
        userAgent: ctx.get('user-agent') || undefined,
        requestId: ctx.state.requestId as string,
        detail: { path: ctx.path, method: ctx.method, roles },
      });
      refuse(ctx, 403, roles.length ? 'console.denied' : 'console.no_role');
      return undefined;
    }
    if (!flow.recentStrongAuthentication(who.auth)) {
      flow.redirectToSignIn(ctx, 'console', back);
      return undefined;
    }
    return { who, roles };
  };
}

export type ConsoleGate = ReturnType<typeof consoleGate>;

/** The console's home page and its sign-in callback; each section adds its own routes behind the gate. */
export function consoleRoutes(deps: ConsoleDeps, gate: ConsoleGate): Router {
  const { views, flow } = deps;
  const router = new Router();

  router.get('/admin', async (ctx) => {
    const user = await gate(ctx, CONSOLE_ROLES);
    if (!user) return;
    const frame = await pageFrame(deps, ctx, user.who);
    const t = translator(frame.locale);
    renderPage(views, ctx, 200, 'console-home', {
      ...frame,
      wide: true,
      sections: sectionsFor(user.roles),
      roles: user.roles.map((r) => t(`console.role.${r}`)).join(', '),
    });
  });

  router.get(CONSOLE_CALLBACK, async (ctx) => {
    ctx.set('cache-control', 'no-store');
    ctx.redirect(flow.returnPath(ctx) ?? '/portal');
  });

  return router;
}
