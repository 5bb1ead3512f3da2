import { Router } from '@koa/router';
import type { Context } from 'koa';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { NationalIdentities } from '../accounts/national-identity.ts';
import { recentForAccount } from '../audit/recent.ts';
import type { AuditTrail } from '../audit/trail.ts';
import type { Database } from '../db/types.ts';
import { requestPscLink } from '../federation/psc-login-routes.ts';
import { labeller } from '../i18n/labels.ts';
import { type MessageId, supportContact, translator } from '../i18n/messages.ts';
import { timeFormat } from '../i18n/time.ts';
import { type CsrfTokens, FormError, readForm } from '../interaction/form.ts';
import { revokeOwnKey } from '../methods/webauthn/routes.ts';
import type { CredentialStore } from '../methods/webauthn/store.ts';
import type { ProviderHost } from '../oidc/host.ts';
import type { AuthSessions } from '../sessions/auth-sessions.ts';
import { endSessions } from '../sessions/end-sessions.ts';
import { type Confirmation, confirmed, renderConfirmation } from './confirm.ts';
import { type PortalDeps, pageFrame, renderPage } from './routes.ts';
import type { SignedIn } from './sign-in.ts';

export const PORTAL_SECURITY_PATH = '/portal/security';
/** Sign-in records shown. */
const RECENT_SIGN_INS = 20;

export interface PortalSecurityDeps
  extends Pick<PortalDeps, 'config' | 'views' | 'flow' | 'clients' | 'roles'> {
  db: Kysely<Database>;
  host: ProviderHost;
  csrf: CsrfTokens;
  audit: AuditTrail;
  logger: Logger;
  sessions: AuthSessions;
  identities: NationalIdentities;
  /** The security keys, when FIDO2 keys are configured. */
  credentials?: CredentialStore;
}

/**
 * "Ma sécurité": the signed-in user's security keys (revoke; adding one goes to the key pages, which
 * enforce the enrollment policy), national identity link, recent sign-ins, live sessions and the
 * sign-out of all of them.
 */
export function portalSecurityRoutes(deps: PortalSecurityDeps): Router {
  const { config, views, flow, csrf } = deps;
  const router = new Router({ prefix: PORTAL_SECURITY_PATH });
  const frameDeps = { ...deps, securityUrl: PORTAL_SECURITY_PATH };
  const binding = (who: SignedIn) => `portal:${who.session.sessionUid}`;
  const request = (ctx: Context, who: SignedIn) => ({
    accountId: who.account.id,
    sessionId: who.session.sessionUid,
    ip: ctx.ip,
    userAgent: ctx.get('user-agent'),
    requestId: ctx.state.requestId as string,
  });

  const renderError = async (ctx: Context, who: SignedIn, status: number, id: MessageId) => {
    const frame = await pageFrame(frameDeps, ctx, who);
    renderPage(views, ctx, status, 'error', { ...frame, message: translator(frame.locale)(id) });
  };

  /** The signed-in user and their CSRF-checked form, or the answer already given. */
  const signedForm = async (ctx: Context) => {
    const who = await flow.signedIn(ctx);
    if (!who) {
      flow.redirectToSignIn(ctx, 'portal', PORTAL_SECURITY_PATH);
      return undefined;
    }
    let body: Record<string, string>;
    try {
      body = await readForm(ctx, config.http.bodyLimitBytes);
    } catch (err) {
      if (!(err instanceof FormError)) throw err;
      await renderError(ctx, who, err.status, 'error.invalid_form');
      return undefined;
    }
    if (!csrf.verify(ctx, binding(who), body.csrf)) {
      await renderError(ctx, who, 403, 'error.csrf');
      return undefined;
    }
    return { who, body };
  };

  /** The confirmation page of a destructive act, in the portal's frame. */
  const confirmFirst = async (
    ctx: Context,
    who: SignedIn,
    body: Record<string, string>,
    text: (t: ReturnType<typeof translator>) => Omit<Confirmation, 'cancelUrl' | 'csrf'>,
  ) => {
    const frame = await pageFrame(frameDeps, ctx, who);
    renderConfirmation(views, ctx, frame, body, {
      ...text(translator(frame.locale)),
      cancelUrl: PORTAL_SECURITY_PATH,
      csrf: csrf.issue(binding(who)),
    });
  };

  router.get('/', async (ctx) => {
    const who = await flow.signedIn(ctx);
    if (!who) return flow.redirectToSignIn(ctx, 'portal', PORTAL_SECURITY_PATH);
    const frame = await pageFrame(frameDeps, ctx, who);
    const t = translator(frame.locale);
    const time = timeFormat(frame.locale, config.ui.timeZone);
    const label = labeller(frame.locale);
    const accountId = who.account.id;
    const [keys, link, signIns, sessions, clients] = await Promise.all([
      deps.credentials?.listForAccount(accountId),
      deps.identities.findByAccount(accountId),
      recentForAccount(deps.db, accountId, RECENT_SIGN_INS),
      deps.sessions.listForAccount(accountId),
      deps.clients.listMetadata(),
    ]);
    const clientName = new Map(clients.map((c) => [c.client_id, String(c.client_name ?? c.client_id)]));
    const method = (id: string | null) => (id === null ? '' : label('method', id));
    renderPage(views, ctx, 200, 'portal-security', {
      ...frame,
      csrf: csrf.issue(binding(who)),
      username: who.account.username,
      notice:
        ctx.query.done === 'revoked'
          ? t('portal.security.done.revoked')
          : ctx.query.done === 'linked' && link?.status === 'verified'
            ? t('portal.security.done.linked')
            : undefined,
      linkPsc: config.pscLogin !== undefined && link?.status !== 'verified',
      keys: keys?.map((k) => ({
        id: k.id,
        name: k.name,
        created: time.full(k.createdAt),
        lastUsed: k.lastUsedAt ? time.full(k.lastUsedAt) : t('portal.security.keys.never'),
        blocked: k.flaggedAt !== null,
      })),
      support: supportContact(config.ui.supportContact, frame.locale),
      identity: link && {
        idNat: link.idNat,
        registry: t(`identity.registry.${link.origin}`),
        status: label('linkStatus', link.status),
        source: label('linkSource', link.source),
        verifiedAt: link.verifiedAt ? time.full(link.verifiedAt) : undefined,
        checkedAt: link.checkedAt ? time.full(link.checkedAt) : undefined,
        updatedAt: time.full(link.updatedAt),
      },
      signIns: signIns.map((r) => ({
        at: time.full(r.at),
        event: t(`portal.security.signins.type.${r.type}`),
        method: method(r.method),
        outcome: t(`portal.security.signins.${r.outcome}`),
        ip: r.ip ?? '',
        client: r.clientId ? (clientName.get(r.clientId) ?? r.clientId) : '',
      })),
      sessions: sessions.map((s) => ({
        current: s.sessionUid === who.session.sessionUid,
        started: time.full(s.startedAt),
        lastActive: time.full(s.lastActiveAt),
        profile: t(`portal.security.sessions.profile.${s.profile}`),
        methods: s.methods.map((m) => method(m.method)).join(', '),
      })),
    });
  });

  router.post('/keys/:id/revoke', async (ctx) => {
    const form = await signedForm(ctx);
    if (!form) return;
    const { who, body } = form;
    const { credentials, audit } = deps;
    const id = ctx.params.id ?? '';
    const key = (await credentials?.listForAccount(who.account.id))?.find((k) => k.id === id);
    if (!credentials || !key) return renderError(ctx, who, 404, 'error.invalid_form');
    if (!confirmed(body)) {
      return confirmFirst(ctx, who, body, (t) => ({
        question: t('confirm.revoke_key', { name: key.name }),
        consequence: t('confirm.revoke_key.consequence'),
        confirmLabel: t('confirm.revoke_key.submit'),
      }));
    }
    if (!(await revokeOwnKey({ credentials, audit }, request(ctx, who), id))) {
      return renderError(ctx, who, 404, 'error.invalid_form');
    }
    ctx.status = 303;
    ctx.redirect(`${PORTAL_SECURITY_PATH}?done=revoked`);
  });

  /** "Lier ma e-CPS": a new login of this session, through PSC, which links the account it proves. */
  router.post('/link-psc', async (ctx) => {
    const who = (await signedForm(ctx))?.who;
    if (!who) return;
    if (!config.pscLogin) return renderError(ctx, who, 404, 'error.invalid_form');
    requestPscLink(ctx, who.session.sessionUid, config.issuer.startsWith('https://'));
    flow.redirectToSignIn(ctx, 'portal', `${PORTAL_SECURITY_PATH}?done=linked`, { prompt: 'login' });
  });

  router.post('/sessions/end-all', async (ctx) => {
    const form = await signedForm(ctx);
    if (!form) return;
    const { who, body } = form;
    if (!confirmed(body)) {
      return confirmFirst(ctx, who, body, (t) => ({
        question: t('confirm.end_all'),
        consequence: t('confirm.end_all.consequence'),
        confirmLabel: t('portal.security.sessions.end_all'),
      }));
    }
    const frame = await pageFrame(frameDeps, ctx, who);
    const ended = await deps.sessions.deleteForAccount(who.account.id);
    const { ip, userAgent, requestId } = request(ctx, who);
    await endSessions(deps, ended, 'user_everywhere', { ip, userAgent, requestId });
    renderPage(views, ctx, 200, 'portal-security-ended', { ...frame, count: ended.length });
  });

  return router;
}
