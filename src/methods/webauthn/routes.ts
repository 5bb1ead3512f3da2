import { Router } from '@koa/router';
import type { Context } from 'koa';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { AccountRoles } from '../../accounts/roles.ts';
import type { AccountStore } from '../../accounts/store.ts';
import type { AuditTrail } from '../../audit/trail.ts';
import type { Config } from '../../config/schema.ts';
import type { Database } from '../../db/types.ts';
import type { Views } from '../../http/views.ts';
import { type MessageId, negotiateLocale, supportContact, translator } from '../../i18n/messages.ts';
import { timeFormat } from '../../i18n/time.ts';
import { type CsrfTokens, FormError, readForm } from '../../interaction/form.ts';
import { readSsoSession, type SsoSession } from '../../interaction/sso-session.ts';
import type { ProviderHost } from '../../oidc/host.ts';
import { confirmed, renderConfirmation } from '../../portal/confirm.ts';
import { pageFrame, renderPage } from '../../portal/routes.ts';
import type { SignedIn } from '../../portal/sign-in.ts';
import type { AuthSessions } from '../../sessions/auth-sessions.ts';
import { type Ceremonies, MAX_RESPONSE_LENGTH } from './ceremonies.ts';
import { scriptJson } from './index.ts';
import { type CredentialStore, type EnrollmentCodes, MAX_KEY_NAME_LENGTH } from './store.ts';

export interface SecurityKeyRoutesDeps {
  config: Config;
  db: Kysely<Database>;
  host: ProviderHost;
  views: Views;
  csrf: CsrfTokens;
  accounts: AccountStore;
  credentials: CredentialStore;
  codes: EnrollmentCodes;
  ceremonies: Ceremonies;
  audit: AuditTrail;
  /** Idle and absolute lifetimes of the SSO session (an engine session past them is not accepted). */
  sessions: AuthSessions;
  logger: Logger;
  /** The portal's navigation on these pages: console roles (its « Console » link) and « Ma sécurité ». */
  roles: AccountRoles;
  securityUrl: string;
}

const PREFIX = '/account/security-keys';
const DONE = ['enrolled', 'revoked', 'renamed'] as const;

const keyName = z.string().trim().min(1).max(MAX_KEY_NAME_LENGTH);
const addSchema = z.object({ code: z.string().max(64).optional(), name: keyName });
const registerSchema = z.object({
  code: z.string().max(64).optional(),
  name: keyName,
  response: z.string().min(2).max(MAX_RESPONSE_LENGTH),
});

/**
 * A user revokes one of their own keys (this page and the portal's security page): false when the key
 * is not theirs or not active (nothing changed); recorded as `webauthn.revoked` by the user.
 */
export async function revokeOwnKey(
  deps: { credentials: CredentialStore; audit: AuditTrail },
  request: { accountId: string; sessionId: string; ip: string; userAgent: string; requestId: string },
  id: string,
): Promise<boolean> {
  if (!(await deps.credentials.revoke(request.accountId, id))) return false;
  await deps.audit.record({
    ...request,
    method: 'webauthn',
    type: 'webauthn.revoked',
    outcome: 'success',
    detail: { credentialId: id, by: 'user' },
  });
  return true;
}

/**
 * The user's own security keys: list, add (SSO session plus a one-time enrollment code, or a first key
 * right after a password login when the policy allows it), rename, revoke.
 */
export function securityKeyRoutes(deps: SecurityKeyRoutesDeps): Router {
  const { config, views, csrf, accounts, credentials, codes, ceremonies, audit } = deps;
  const settings = ceremonies.settings;
  const router = new Router({ prefix: PREFIX });

  const locale = (ctx: Context) =>
    negotiateLocale(undefined, ctx.get('accept-language'), config.ui.defaultLocale);
  const page = (ctx: Context) => ({
    locale: locale(ctx),
    demo: config.demo,
    requestId: ctx.state.requestId as string,
  });
  const binding = (session: SsoSession) => `account:${session.sessionUid}`;
  const auditBase = (ctx: Context, session: SsoSession) => ({
    accountId: session.accountId,
    sessionId: session.sessionUid,
    ip: ctx.ip,
    userAgent: ctx.get('user-agent'),
    requestId: ctx.state.requestId as string,
    method: 'webauthn',
  });

  const renderError = (ctx: Context, status: number, message: MessageId) => {
    ctx.status = status;
    ctx.type = 'html';
    ctx.set('cache-control', 'no-store');
    const p = page(ctx);
    ctx.body = views.render('error', p, { message: translator(p.locale)(message) });
  };

  /** The SSO session and its account, or an error page (no session, disabled account). */
  const signedIn = async (ctx: Context): Promise<SignedIn | undefined> => {
    const session = await readSsoSession(deps.host.provider, ctx);
    const auth = session ? await deps.sessions.active(session.sessionUid, session.accountId) : undefined;
    const account = auth && session ? await accounts.findById(session.accountId) : undefined;
    if (!session || !auth || !account || account.disabledAt) {
      renderError(ctx, 401, 'webauthn.keys.login_required');
      return undefined;
    }
    return { session, auth, account };
  };

  /** The portal's frame around these pages (its navigation, when the session ends). */
  const frame = (ctx: Context, who: SignedIn) => pageFrame(deps, ctx, who);

  const form = async (ctx: Context, session: SsoSession): Promise<Record<string, string> | undefined> => {
    let body: Record<string, string>;
    try {
      body = await readForm(ctx, config.http.bodyLimitBytes);
    } catch (err) {
      if (err instanceof FormError) {
        renderError(ctx, err.status, 'error.invalid_form');
        return undefined;
      }
      throw err;
    }
    if (!csrf.verify(ctx, binding(session), body.csrf)) {
      renderError(ctx, 403, 'error.csrf');
      return undefined;
    }
    return body;
  };

  /** A first key without a code: right after a password-only login, for an account without keys. */
  const selfEnrollment = async (session: SsoSession, accountId: string, db?: Kysely<Database>) =>
    settings.selfEnrollmentAfterPassword &&
    session.amr.length === 1 &&
    session.amr[0] === 'pwd' &&
    (await credentials.countActive(accountId, db)) === 0;

  const renderList = async (
    ctx: Context,
    who: SignedIn,
    extra: { error?: MessageId; status?: number; name?: string } = {},
  ) => {
    const { session, account } = who;
    const p = await frame(ctx, who);
    const t = translator(p.locale);
    const keys = await credentials.listForAccount(account.id);
    const done = DONE.find((d) => d === ctx.query.done);
    const format = { format: timeFormat(p.locale, config.ui.timeZone).full };
    renderPage(views, ctx, extra.status ?? 200, 'webauthn-keys', {
      ...p,
      csrf: csrf.issue(binding(session)),
      username: account.username,
      keys: keys.map((k) => ({
        id: k.id,
        name: k.name,
        created: format.format(k.createdAt),
        lastUsed: k.lastUsedAt ? format.format(k.lastUsedAt) : t('webauthn.keys.never'),
        blocked: k.flaggedAt !== null,
      })),
      support: supportContact(config.ui.supportContact, p.locale),
      selfEnrollment: await selfEnrollment(session, account.id),
      defaultName: extra.name ?? t('webauthn.keys.add.default_name'),
      notice: done ? t(`webauthn.keys.done.${done}`) : undefined,
      error: extra.error ? t(extra.error) : undefined,
    });
  };

  const codeAccepted = async (accountId: string, code: string | undefined) =>
    code !== undefined && code.trim() !== '' && (await codes.isValid(accountId, code));

  router.get('/', async (ctx) => {
    const who = await signedIn(ctx);
    if (who) await renderList(ctx, who);
  });

  router.post('/add', async (ctx) => {
    const who = await signedIn(ctx);
    if (!who) return;
    const body = await form(ctx, who.session);
    if (!body) return;
    const parsed = addSchema.safeParse(body);
    if (!parsed.success) {
      return renderList(ctx, who, { error: 'webauthn.keys.error.name', status: 400 });
    }
    const { code, name } = parsed.data;
    const self = await selfEnrollment(who.session, who.account.id);
    if (!self && !(await codeAccepted(who.account.id, code))) {
      await audit.record({
        ...auditBase(ctx, who.session),
        type: 'webauthn.enrollment_code',
        outcome: 'failure',
        reason: 'code_invalid',
      });
      return renderList(ctx, who, { error: 'webauthn.keys.error.code', status: 403, name });
    }
    const options = await ceremonies.registrationOptions(who.account);
    const p = page(ctx);
    ctx.type = 'html';
    ctx.set('cache-control', 'no-store');
    ctx.body = views.render('webauthn-register', p, {
      csrf: csrf.issue(binding(who.session)),
      name,
      code: self ? '' : (code ?? ''),
      webauthnOptions: scriptJson(options),
    });
  });

  router.post('/register', async (ctx) => {
    const who = await signedIn(ctx);
    if (!who) return;
    const body = await form(ctx, who.session);
    if (!body) return;
    const parsed = registerSchema.safeParse(body);
    if (!parsed.success) return renderError(ctx, 400, 'error.invalid_form');
    const { code, name, response } = parsed.data;
    const { session, account } = who;
    const base = auditBase(ctx, session);

    const result = await ceremonies.verifyRegistration(account.id, response);
    if (!result.ok) {
      const refused = result.code === 'authenticator_not_allowed';
      await audit.record({
        ...base,
        type: refused ? 'webauthn.refused' : 'webauthn.enrollment',
        outcome: 'failure',
        reason: result.reason,
        detail: result.detail ? { message: result.detail } : undefined,
      });
      return renderList(ctx, who, {
        error: refused ? 'webauthn.keys.error.not_allowed' : 'webauthn.keys.error.failed',
        status: refused ? 403 : 400,
        name,
      });
    }

    // The authorisation is re-checked and consumed with the insertion, in one transaction.
    const credential = { ...result.credential, name };
    const via = await deps.db.transaction().execute(async (trx) => {
      if (code && (await codes.consume(account.id, code, trx))) {
        await credentials.insert(credential, trx);
        return 'code';
      }
      if (!code && (await selfEnrollment(session, account.id, trx))) {
        await credentials.insert(credential, trx);
        return 'self';
      }
      return undefined;
    });
    if (!via) {
      await audit.record({
        ...base,
        type: 'webauthn.enrollment_code',
        outcome: 'failure',
        reason: 'code_invalid',
      });
      return renderList(ctx, who, { error: 'webauthn.keys.error.code', status: 403, name });
    }
    await audit.record({
      ...base,
      type: 'webauthn.enrolled',
      outcome: 'success',
      detail: { credentialId: credential.id, aaguid: credential.aaguid, fmt: result.fmt, name, via },
    });
    ctx.status = 303;
    ctx.redirect(`${PREFIX}?done=enrolled`);
  });

  router.post('/:id/rename', async (ctx) => {
    const who = await signedIn(ctx);
    if (!who) return;
    const body = await form(ctx, who.session);
    if (!body) return;
    const parsed = keyName.safeParse(body.name);
    if (!parsed.success) {
      return renderList(ctx, who, { error: 'webauthn.keys.error.name', status: 400 });
    }
    if (!(await credentials.rename(who.account.id, ctx.params.id ?? '', parsed.data))) {
      return renderError(ctx, 404, 'error.invalid_form');
    }
    ctx.status = 303;
    ctx.redirect(`${PREFIX}?done=renamed`);
  });

  router.post('/:id/revoke', async (ctx) => {
    const who = await signedIn(ctx);
    if (!who) return;
    const body = await form(ctx, who.session);
    if (!body) return;
    const id = ctx.params.id ?? '';
    const key = (await credentials.listForAccount(who.account.id)).find((k) => k.id === id);
    if (!key) return renderError(ctx, 404, 'error.invalid_form');
    if (!confirmed(body)) {
      const p = await frame(ctx, who);
      const t = translator(p.locale);
      return renderConfirmation(views, ctx, p, body, {
        question: t('confirm.revoke_key', { name: key.name }),
        consequence: t('confirm.revoke_key.consequence'),
        confirmLabel: t('confirm.revoke_key.submit'),
        cancelUrl: PREFIX,
        csrf: csrf.issue(binding(who.session)),
      });
    }
    if (!(await revokeOwnKey({ credentials, audit }, auditBase(ctx, who.session), id))) {
      return renderError(ctx, 404, 'error.invalid_form');
    }
    ctx.status = 303;
    ctx.redirect(`${PREFIX}?done=revoked`);
  });

  return router;
}
