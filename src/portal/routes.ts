import { Router } from '@koa/router';
import type { Context } from 'koa';
import type { EstablishmentMembers } from '../accounts/establishments.ts';
import type { AccountRoles } from '../accounts/roles.ts';
import type { Config } from '../config/schema.ts';
import type { Views } from '../http/views.ts';
import { type Locale, type MessageId, negotiateLocale, translator } from '../i18n/messages.ts';
import { timeFormat } from '../i18n/time.ts';
import type { ClientRegistry } from '../oidc/clients.ts';
import { sessionEnds } from '../sessions/auth-sessions.ts';
import { portalApps } from './apps.ts';
import { PORTAL_CALLBACK, PORTAL_CLIENT_ID, type SignedIn, type SignInFlow } from './sign-in.ts';

export interface PortalDeps {
  config: Config;
  views: Views;
  flow: SignInFlow;
  clients: ClientRegistry;
  establishments: EstablishmentMembers;
  roles: AccountRoles;
  /** The account's directory groups as of its last login (empty without a directory). */
  groupsOf: (accountId: string) => Promise<string[]>;
  /** The user's security page, when one is offered (FIDO2 keys configured). */
  securityUrl?: string;
}

/** When the single sign-on session ends, in words (idle and absolute ends, in the establishment's time zone). */
function sessionEndText(config: Config, locale: Locale, who: SignedIn): string {
  const ends = sessionEnds(config.sessions, who.auth);
  const time = timeFormat(locale, config.ui.timeZone);
  const t = translator(locale);
  if (ends.absolute <= ends.idle)
    return t('portal.session_end.absolute', { absolute: time.when(ends.absolute) });
  return t('portal.session_end', { idle: time.when(ends.idle), absolute: time.when(ends.absolute) });
}

/** What every portal and console page shows around its content. */
export async function pageFrame(
  deps: Pick<PortalDeps, 'config' | 'roles' | 'securityUrl'>,
  ctx: Context,
  who: SignedIn,
) {
  const locale = negotiateLocale(undefined, ctx.get('accept-language'), deps.config.ui.defaultLocale);
  const signOut = new URL('/session/end', deps.config.issuer);
  signOut.searchParams.set('client_id', PORTAL_CLIENT_ID);
  signOut.searchParams.set('post_logout_redirect_uri', `${deps.config.issuer}/portal`);
  return {
    locale,
    demo: deps.config.demo,
    requestId: ctx.state.requestId as string,
    displayName: who.account.displayName,
    securityUrl: deps.securityUrl,
    consoleAccess: (await deps.roles.of(who.account.id)).length > 0,
    signOutUrl: signOut.pathname + signOut.search,
    sessionEnd: sessionEndText(deps.config, locale, who),
  };
}

export function renderPage(
  views: Views,
  ctx: Context,
  status: number,
  view: string,
  data: Record<string, unknown>,
) {
  ctx.status = status;
  ctx.type = 'html';
  ctx.set('cache-control', 'no-store');
  const { locale, demo, requestId, ...rest } = data as {
    locale: 'fr' | 'en';
    demo: boolean;
    requestId: string;
  };
  ctx.body = views.render(view, { locale, demo, requestId }, rest);
}

/** The error page with one message, in the caller's language. */
export function renderMessage(
  deps: { config: Config; views: Views },
  ctx: Context,
  status: number,
  id: MessageId,
) {
  const locale = negotiateLocale(undefined, ctx.get('accept-language'), deps.config.ui.defaultLocale);
  renderPage(deps.views, ctx, status, 'error', {
    locale,
    demo: deps.config.demo,
    requestId: ctx.state.requestId as string,
    message: translator(locale)(id),
  });
}

/** The staff portal: the applications the user may open, after signing in at Passerelle directly. */
export function portalRoutes(deps: PortalDeps): Router {
  const { config, views, flow } = deps;
  const router = new Router();

  const message = (ctx: Context, status: number, id: MessageId) => renderMessage(deps, ctx, status, id);

  router.get('/portal', async (ctx) => {
    const who = await flow.signedIn(ctx);
    if (!who) return flow.redirectToSignIn(ctx, 'portal', '/portal');
    const apps = await portalApps(
      config.issuer,
      await deps.clients.listMetadata(),
      { id: who.account.id, groups: await deps.groupsOf(who.account.id) },
      deps.establishments,
    );
    renderPage(views, ctx, 200, 'portal-home', { ...(await pageFrame(deps, ctx, who)), apps });
  });

  router.get(PORTAL_CALLBACK, async (ctx) => {
    const back = flow.returnPath(ctx);
    if (!back) return message(ctx, 400, 'portal.signin_cancelled');
    ctx.set('cache-control', 'no-store');
    ctx.redirect(back);
  });

  return router;
}
