import { Router } from '@koa/router';
import type { Context } from 'koa';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import { AccountAdminActs, AdminActError } from '../accounts/admin-acts.ts';
import { CardCertificates } from '../accounts/card-certificates.ts';
import { DirectoryAccounts } from '../accounts/directory-accounts.ts';
import type { EstablishmentMembers } from '../accounts/establishments.ts';
import type { NationalIdentities } from '../accounts/national-identity.ts';
import { CONSOLE_ROLES, isConsoleRole } from '../accounts/roles.ts';
import type { Account, AccountStore } from '../accounts/store.ts';
import type { AuditTrail } from '../audit/trail.ts';
import type { Database } from '../db/types.ts';
import { label } from '../i18n/labels.ts';
import { type MessageId, translator } from '../i18n/messages.ts';
import { webauthnSettings } from '../methods/webauthn/settings.ts';
import { CredentialStore } from '../methods/webauthn/store.ts';
import type { ProviderHost } from '../oidc/host.ts';
import { confirmed, renderConfirmation } from '../portal/confirm.ts';
import { renderPage } from '../portal/routes.ts';
import type { CredentialThrottle } from '../ratelimit/throttle.ts';
import type { AuthSessions } from '../sessions/auth-sessions.ts';
import { endSessions } from '../sessions/end-sessions.ts';
import type { ConsoleGate, ConsoleUser } from './console.ts';
import { type ConsoleFormDeps, consoleForms, seeOther } from './people-form.ts';
import { sectionRoles } from './sections.ts';

export interface AccountPagesDeps extends ConsoleFormDeps {
  db: Kysely<Database>;
  accounts: AccountStore;
  identities: NationalIdentities;
  establishments: EstablishmentMembers;
  sessions: AuthSessions;
  throttle: CredentialThrottle;
  audit: AuditTrail;
  /** The engine (its sessions are destroyed when an operator ends an account's sessions). */
  host: ProviderHost;
  logger: Logger;
}

const PAGE_SIZE = 50;
const PREFIX = '/admin/accounts';
const DONE = [
  'disabled',
  'enabled',
  'unlocked',
  'key_revoked',
  'sessions_ended',
  'role_granted',
  'role_revoked',
] as const;

/**
 * The console's accounts: search, an account's methods, links, roles, lock and sessions, and the
 * helpdesk's acts on it (the same acts as the command line's). Roles are changed by administrators only.
 */
export function accountRoutes(deps: AccountPagesDeps, gate: ConsoleGate): Router {
  const { views, accounts, roles } = deps;
  const forms = consoleForms(deps);
  const acts = new AccountAdminActs(deps);
  const credentials = new CredentialStore(deps.db);
  const cards = new CardCertificates(deps.db);
  const directory = new DirectoryAccounts(deps.db, accounts);
  const router = new Router({ prefix: PREFIX });
  const allowed = sectionRoles('accounts');

  const { frame } = forms;

  router.get('/', async (ctx) => {
    const user = await gate(ctx, allowed);
    if (!user) return;
    const q = typeof ctx.query.q === 'string' ? ctx.query.q.slice(0, 200) : '';
    const page = Math.max(1, Math.min(10_000, Number.parseInt(String(ctx.query.page ?? '1'), 10) || 1));
    const found = await accounts.search(q, (page - 1) * PAGE_SIZE, PAGE_SIZE);
    const link = (p: number) => `${PREFIX}?${new URLSearchParams({ q, page: String(p) })}`;
    renderPage(views, ctx, 200, 'console-accounts', {
      ...(await frame(ctx, user)),
      q,
      page,
      results: found.slice(0, PAGE_SIZE).map((a) => ({
        id: a.id,
        username: a.username,
        displayName: a.displayName ?? '',
        disabled: a.disabledAt !== null,
      })),
      previous: page > 1 ? link(page - 1) : undefined,
      next: found.length > PAGE_SIZE ? link(page + 1) : undefined,
    });
  });

  const renderAccount = async (
    ctx: Context,
    user: ConsoleUser,
    account: Account,
    extra: { status?: number; error?: MessageId; code?: { code: string; expiresAt: Date } } = {},
  ) => {
    const f = await frame(ctx, user);
    const t = translator(f.locale);
    const date = forms.dates(f.locale);
    const [hasPassword, link, keys, cardList, identity, memberships, accountRoles, lock, live] =
      await Promise.all([
        accounts.hasPassword(account.id),
        directory.linkOf(account.id),
        credentials.listForAccount(account.id),
        cards.list(account.id),
        deps.identities.findByAccount(account.id),
        deps.establishments.of(account.id),
        roles.of(account.id),
        deps.throttle.accountState(account.username),
        deps.sessions.listForAccount(account.id),
      ]);
    const done = DONE.find((d) => d === ctx.query.done);
    const administrator = user.roles.includes('administrator');
    renderPage(views, ctx, extra.status ?? 200, 'console-account', {
      ...f,
      csrf: forms.token(user),
      path: `${PREFIX}/${account.id}`,
      account: {
        username: account.username,
        displayName: account.displayName ?? '',
        disabledSince: account.disabledAt ? date.format(account.disabledAt) : undefined,
      },
      lock: t(`console.account.lock.${lock.state}`, {
        failures: String(lock.failures),
        seconds: String(lock.retryAfterSeconds),
      }),
      locked: lock.failures > 0,
      password: t(hasPassword ? 'console.account.password.set' : 'console.account.password.unset'),
      directory: link
        ? t('console.account.directory.synced', { dn: link.dn, date: date.format(link.syncedAt) })
        : t('console.account.directory.none'),
      keys: keys.map((k) => ({
        id: k.id,
        name: k.name,
        created: date.format(k.createdAt),
        lastUsed: k.lastUsedAt ? date.format(k.lastUsedAt) : t('console.account.key.never'),
        blocked: k.flaggedAt !== null,
      })),
      cards: cardList.map((c) => ({ subject: c.subject, notAfter: date.format(c.notAfter) })),
      enrollment: webauthnSettings(deps.config) !== undefined,
      code: extra.code ? { code: extra.code.code, expires: date.format(extra.code.expiresAt) } : undefined,
      identity: identity
        ? t('console.account.identity.link', {
            registry: t(`identity.registry.${identity.origin}`),
            idNat: identity.idNat,
            status: label(f.locale, 'linkStatus', identity.status),
            source: label(f.locale, 'linkSource', identity.source),
          })
        : undefined,
      establishments: memberships.map((m) => ({
        name: m.establishment.name,
        finess: m.establishment.finess,
        basis: t(`console.account.establishment.basis.${m.basis}`),
      })),
      roles: accountRoles.map((r) => ({ id: r, label: t(`console.role.${r}`) })),
      grantable: administrator
        ? CONSOLE_ROLES.filter((r) => !accountRoles.includes(r)).map((r) => ({
            id: r,
            label: t(`console.role.${r}`),
          }))
        : undefined,
      sessions: live.map((s) => ({
        started: date.format(s.startedAt),
        lastActive: date.format(s.lastActiveAt),
        expires: date.format(s.expiresAt),
      })),
      notice: done ? t(`console.account.done.${done}`) : undefined,
      error: extra.error ? t(extra.error) : undefined,
    });
  };

  const accountOf = async (ctx: Context): Promise<Account | undefined> => {
    const account = await accounts.findById(ctx.params.id ?? '').catch(() => undefined);
    if (!account) forms.fail(ctx, 404, 'console.account.not_found');
    return account;
  };

  router.get('/:id', async (ctx) => {
    const user = await gate(ctx, allowed);
    if (!user) return;
    const account = await accountOf(ctx);
    if (account) await renderAccount(ctx, user, account);
  });

  /** A posted act on the account: gate, CSRF, the account, then the act. */
  const act = (
    path: string,
    roleSet: typeof allowed,
    run: (ctx: Context, user: ConsoleUser, account: Account, body: Record<string, string>) => Promise<void>,
  ) =>
    router.post(`/:id/${path}`, async (ctx) => {
      const user = await gate(ctx, roleSet);
      if (!user) return;
      const body = await forms.form(ctx, user);
      if (!body) return;
      const account = await accountOf(ctx);
      if (account) await run(ctx, user, account, body);
    });
  const back = (ctx: Context, account: Account, done: (typeof DONE)[number]) =>
    seeOther(ctx, `${PREFIX}/${account.id}`, done);

  /**
   * A destructive act asks first: its confirmation page, in the console's frame, posts the same form
   * again with `confirm=yes`. True when the act may go on.
   */
  const confirmedOr = async (
    ctx: Context,
    user: ConsoleUser,
    account: Account,
    body: Record<string, string>,
    text: (t: ReturnType<typeof translator>) => {
      question: string;
      consequence: string;
      confirmLabel: string;
    },
  ): Promise<boolean> => {
    if (confirmed(body)) return true;
    const f = await frame(ctx, user);
    renderConfirmation(views, ctx, { ...f, section: 'accounts' }, body, {
      ...text(translator(f.locale)),
      cancelUrl: `${PREFIX}/${account.id}`,
      csrf: forms.token(user),
    });
    return false;
  };

  act('disable', allowed, async (ctx, user, account, body) => {
    const go = await confirmedOr(ctx, user, account, body, (t) => ({
      question: t('console.confirm.disable', { username: account.username }),
      consequence: t('console.confirm.disable.consequence'),
      confirmLabel: t('console.account.disable'),
    }));
    if (!go) return;
    await acts.setDisabled(account, true, forms.actor(ctx, user));
    back(ctx, account, 'disabled');
  });

  act('enable', allowed, async (ctx, user, account) => {
    await acts.setDisabled(account, false, forms.actor(ctx, user));
    back(ctx, account, 'enabled');
  });

  act('unlock', allowed, async (ctx, user, account) => {
    await acts.unlock(account, account.username, forms.actor(ctx, user));
    back(ctx, account, 'unlocked');
  });

  // The code is shown in this very response, once: it is stored only hashed.
  act('enrollment-code', allowed, async (ctx, user, account) => {
    try {
      const code = await acts.issueEnrollmentCode(account, forms.actor(ctx, user));
      await renderAccount(ctx, user, account, { code });
    } catch (err) {
      if (!(err instanceof AdminActError)) throw err;
      const error = err.code === 'account_disabled' ? 'console.account.error.disabled' : undefined;
      await renderAccount(ctx, user, account, {
        status: 409,
        error: error ?? 'console.account.enroll.unavailable',
      });
    }
  });

  act('revoke-key', allowed, async (ctx, user, account, body) => {
    try {
      // By credential id only: two keys may share a name.
      const active = await credentials.listForAccount(account.id);
      const key = active.find((k) => k.id === body.key);
      if (!key) throw new AdminActError('no_key', 'no such key');
      const go = await confirmedOr(ctx, user, account, body, (t) => ({
        question: t('console.confirm.revoke_key', { name: key.name, username: account.username }),
        consequence: t('console.confirm.revoke_key.consequence'),
        confirmLabel: t('console.confirm.revoke_key.submit'),
      }));
      if (!go) return;
      await acts.revokeKey(account, body.key ?? '', forms.actor(ctx, user));
      back(ctx, account, 'key_revoked');
    } catch (err) {
      if (!(err instanceof AdminActError)) throw err;
      await renderAccount(ctx, user, account, { status: 404, error: 'console.account.error.no_key' });
    }
  });

  act('end-sessions', allowed, async (ctx, user, account, body) => {
    const go = await confirmedOr(ctx, user, account, body, (t) => ({
      question: t('console.confirm.end_sessions', { username: account.username }),
      consequence: t('console.confirm.end_sessions.consequence'),
      confirmLabel: t('console.account.sessions.end'),
    }));
    if (!go) return;
    const ended = await acts.endSessions(account, forms.actor(ctx, user));
    await endSessions(deps, ended, 'admin_console', {
      ip: ctx.ip,
      userAgent: ctx.get('user-agent') || undefined,
      requestId: ctx.state.requestId as string,
    });
    back(ctx, account, 'sessions_ended');
  });

  act('grant-role', ['administrator'], async (ctx, user, account, body) => {
    const role = body.role ?? '';
    if (!isConsoleRole(role)) return forms.fail(ctx, 400, 'error.invalid_form');
    await roles.grant(account.id, role, user.who.account.username, 'console');
    back(ctx, account, 'role_granted');
  });

  act('revoke-role', ['administrator'], async (ctx, user, account, body) => {
    const role = body.role ?? '';
    if (!isConsoleRole(role)) return forms.fail(ctx, 400, 'error.invalid_form');
    if (role === 'administrator' && account.id === user.who.account.id) {
      return renderAccount(ctx, user, account, { status: 409, error: 'console.account.role.own_admin' });
    }
    const go = await confirmedOr(ctx, user, account, body, (t) => ({
      question: t('console.confirm.revoke_role', {
        role: t(`console.role.${role}`),
        username: account.username,
      }),
      consequence: t('console.confirm.revoke_role.consequence'),
      confirmLabel: t('console.confirm.revoke_role.submit'),
    }));
    if (!go) return;
    await roles.revoke(account.id, role, user.who.account.username, 'console');
    back(ctx, account, 'role_revoked');
  });

  return router;
}
