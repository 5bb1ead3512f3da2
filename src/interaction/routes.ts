import { Router } from '@koa/router';
import type { Context } from 'koa';
import { errors, type InteractionResults } from 'oidc-provider';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { Config } from '../config/schema.ts';
import type { Views } from '../http/views.ts';
import { type MessageId, negotiateLocale, scopeMessage, translator } from '../i18n/messages.ts';
import type { AuthFailureCode, AuthMethod, MethodContext } from '../methods/types.ts';
import type { ProviderHost } from '../oidc/host.ts';
import { achievedAcr } from '../policy/assurance.ts';
import { type CsrfTokens, FormError, readForm } from './form.ts';
import type { InteractionStates } from './state.ts';

export interface InteractionDeps {
  config: Config;
  host: ProviderHost;
  views: Views;
  csrf: CsrfTokens;
  states: InteractionStates;
  methods: readonly AuthMethod[];
  logger: Logger;
}

const identifySchema = z.object({ username: z.string().trim().min(1).max(128) });

const FAILURE_STATUS: Record<AuthFailureCode, number> = {
  invalid_credentials: 401,
  rate_limited: 429,
  account_disabled: 403,
  service_unavailable: 503,
  password_expired: 403,
  password_must_change: 403,
  authenticator_not_allowed: 403,
  ceremony_failed: 401,
  certificate_rejected: 403,
  certificate_missing: 401,
  card_not_linked: 403,
  account_mismatch: 403,
};

type Details = Awaited<ReturnType<ProviderHost['provider']['interactionDetails']>>;

/**
 * The login flow: identify → method → (consent). Each method is a module behind AuthMethod;
 * this layer owns HTTP (forms, CSRF, rendering) and hands results to the protocol engine.
 */
export function interactionRoutes(deps: InteractionDeps): Router {
  const { config, views, csrf, states } = deps;
  const router = new Router({ prefix: '/interaction' });

  const locale = (ctx: Context, details?: Details) =>
    negotiateLocale(details?.params.ui_locales, ctx.get('accept-language'), config.ui.defaultLocale);
  const page = (ctx: Context, details?: Details) => ({
    locale: locale(ctx, details),
    demo: config.demo,
    requestId: ctx.state.requestId as string,
  });

  const renderError = (ctx: Context, status: number, message: MessageId, details?: Details) => {
    ctx.status = status;
    ctx.type = 'html';
    const p = page(ctx, details);
    ctx.body = views.render('error', p, { message: translator(p.locale)(message) });
  };

  /** Loads the interaction bound to the browser's cookie and checks it is the one in the URL. */
  const load = async (ctx: Context): Promise<Details | undefined> => {
    try {
      const details = await deps.host.provider.interactionDetails(ctx.req, ctx.res);
      if (details.uid === ctx.params.uid) return details;
    } catch (err) {
      if (!(err instanceof errors.SessionNotFound)) throw err;
    }
    renderError(ctx, 400, 'error.interaction_expired');
    return undefined;
  };

  const clientName = async (details: Details) => {
    const client = await deps.host.provider.Client.find(String(details.params.client_id));
    return client?.clientName ?? String(details.params.client_id);
  };

  /** Parses the form and checks its CSRF token; renders the error and returns undefined when invalid. */
  const form = async (ctx: Context, details: Details): Promise<Record<string, string> | undefined> => {
    let body: Record<string, string>;
    try {
      body = await readForm(ctx, config.http.bodyLimitBytes);
    } catch (err) {
      if (err instanceof FormError) {
        renderError(ctx, err.status, 'error.invalid_form', details);
        return undefined;
      }
      throw err;
    }
    if (!csrf.verify(ctx, details.uid, body.csrf)) {
      renderError(ctx, 403, 'error.csrf', details);
      return undefined;
    }
    return body;
  };

  const finish = async (ctx: Context, result: InteractionResults) => {
    const url = await deps.host.provider.interactionResult(ctx.req, ctx.res, result, {
      mergeWithLastSubmission: false,
    });
    ctx.status = 303;
    ctx.redirect(url);
  };

  const passwordMethod = () => deps.methods.find((m) => m.id === 'password');

  const renderLogin = async (
    ctx: Context,
    details: Details,
    extra: { error?: string; username?: string; status?: number } = {},
  ) => {
    const state = await states.get(details.uid);
    const username = extra.username ?? state.username;
    const method = username ? passwordMethod() : undefined;
    // OpenID Connect login_hint pre-fills the identifier; the user still confirms it.
    const hint = details.params.login_hint;
    const prefill = username ?? (typeof hint === 'string' ? hint.slice(0, 128) : undefined);
    ctx.status = extra.status ?? 200;
    ctx.type = 'html';
    ctx.set('cache-control', 'no-store');
    ctx.body = views.render(method ? method.view : 'login-identify', page(ctx, details), {
      uid: details.uid,
      csrf: csrf.issue(details.uid),
      clientName: await clientName(details),
      username: prefill,
      error: extra.error,
      formAction: method ? `/interaction/${details.uid}/method/${method.id}` : undefined,
      methodLabel: method?.label,
    });
  };

  router.get('/:uid', async (ctx) => {
    const details = await load(ctx);
    if (!details) return;
    if (details.prompt.name === 'login') return renderLogin(ctx, details);
    if (details.prompt.name === 'consent') {
      const t = translator(locale(ctx, details));
      const missing = (details.prompt.details.missingOIDCScope as string[] | undefined) ?? [];
      ctx.type = 'html';
      ctx.set('cache-control', 'no-store');
      ctx.body = views.render('consent', page(ctx, details), {
        uid: details.uid,
        csrf: csrf.issue(details.uid),
        clientName: await clientName(details),
        scopes: missing.map((name) => {
          const message = scopeMessage(name);
          return { name, label: message ? t(message) : name };
        }),
      });
      return;
    }
    renderError(ctx, 400, 'error.interaction_expired', details);
  });

  router.post('/:uid/identify', async (ctx) => {
    const details = await load(ctx);
    if (!details) return;
    const body = await form(ctx, details);
    if (!body) return;
    const parsed = identifySchema.safeParse(body);
    if (!parsed.success) {
      const t = translator(locale(ctx, details));
      return renderLogin(ctx, details, { error: t('error.invalid_form'), status: 400 });
    }
    await states.set(details.uid, { username: parsed.data.username });
    ctx.status = 303;
    ctx.redirect(`/interaction/${details.uid}`);
  });

  router.post('/:uid/restart', async (ctx) => {
    const details = await load(ctx);
    if (!details) return;
    if (!(await form(ctx, details))) return;
    await states.delete(details.uid);
    ctx.status = 303;
    ctx.redirect(`/interaction/${details.uid}`);
  });

  router.post('/:uid/method/:method', async (ctx) => {
    const details = await load(ctx);
    if (!details) return;
    const body = await form(ctx, details);
    if (!body) return;
    const t = translator(locale(ctx, details));
    const method = deps.methods.find((m) => m.id === ctx.params.method);
    const state = await states.get(details.uid);
    if (!method || details.prompt.name !== 'login' || (method.needsUsername && !state.username)) {
      return renderError(ctx, 400, 'error.invalid_form', details);
    }
    const input = method.input.safeParse(body);
    if (!input.success) return renderLogin(ctx, details, { error: t('error.invalid_form'), status: 400 });

    const methodContext: MethodContext = {
      ip: ctx.ip,
      userAgent: ctx.get('user-agent'),
      interactionUid: details.uid,
      requestId: ctx.state.requestId as string,
      locale: locale(ctx, details),
      username: state.username,
      accountId: undefined,
      clientCertificate: undefined,
    };
    let outcome: Awaited<ReturnType<AuthMethod['authenticate']>>;
    try {
      outcome = await method.authenticate(input.data, methodContext);
    } catch (err) {
      deps.logger.error(
        { err, requestId: ctx.state.requestId, method: method.id },
        'authentication method failed',
      );
      outcome = { kind: 'failure', code: 'service_unavailable', reason: 'method_error' };
    }
    if (outcome.kind === 'failure') {
      deps.logger.info(
        { requestId: ctx.state.requestId, method: method.id, reason: outcome.code, interaction: details.uid },
        'authentication failed',
      );
      const minutes = Math.ceil((outcome.retryAfterSeconds ?? 60) / 60);
      if (outcome.retryAfterSeconds) ctx.set('retry-after', String(outcome.retryAfterSeconds));
      return renderLogin(ctx, details, {
        error: t(`error.${outcome.code}`, { minutes }),
        status: FAILURE_STATUS[outcome.code],
      });
    }
    const amr = [...outcome.amr];
    const acr = achievedAcr(config.policy.levels, amr);
    deps.logger.info(
      { requestId: ctx.state.requestId, method: method.id, accountId: outcome.accountId, amr, acr },
      'authentication succeeded',
    );
    await states.delete(details.uid);
    await finish(ctx, {
      login: { accountId: outcome.accountId, amr, acr, ts: Math.floor(Date.now() / 1000), remember: true },
    });
  });

  router.post('/:uid/consent', async (ctx) => {
    const details = await load(ctx);
    if (!details) return;
    if (!(await form(ctx, details))) return;
    if (details.prompt.name !== 'consent' || !details.session?.accountId) {
      return renderError(ctx, 400, 'error.invalid_form', details);
    }
    const { Grant } = deps.host.provider;
    const grant =
      (details.grantId ? await Grant.find(details.grantId) : undefined) ??
      new Grant({ accountId: details.session.accountId, clientId: String(details.params.client_id) });
    const promptDetails = details.prompt.details as {
      missingOIDCScope?: string[];
      missingOIDCClaims?: string[];
      missingResourceScopes?: Record<string, string[]>;
    };
    if (promptDetails.missingOIDCScope) grant.addOIDCScope(promptDetails.missingOIDCScope.join(' '));
    if (promptDetails.missingOIDCClaims) grant.addOIDCClaims(promptDetails.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(promptDetails.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    await finish(ctx, { consent: { grantId } });
  });

  router.post('/:uid/abort', async (ctx) => {
    const details = await load(ctx);
    if (!details) return;
    if (!(await form(ctx, details))) return;
    await states.delete(details.uid);
    await finish(ctx, { error: 'access_denied', error_description: 'End-User aborted interaction' });
  });

  return router;
}
