import { Router } from '@koa/router';
import type { Context } from 'koa';
import { errors, type InteractionResults } from 'oidc-provider';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { AccountStore } from '../accounts/store.ts';
import type { Config } from '../config/schema.ts';
import type { CompletedMethod } from '../db/types.ts';
import { PSC_ELIGIBILITY_PROMPT, type PscRefusal } from '../federation/psc-eligibility.ts';
import { pscLinkRequested } from '../federation/psc-login-routes.ts';
import { pscEstablishmentOf } from '../federation/psc-profile.ts';
import type { Views } from '../http/views.ts';
import { label } from '../i18n/labels.ts';
import {
  type Locale,
  type MessageId,
  negotiateLocale,
  supportContact,
  translator,
} from '../i18n/messages.ts';
import type { AuthFailureCode, AuthMethod, MethodContext, PresentedCertificate } from '../methods/types.ts';
import type { ProviderHost } from '../oidc/host.ts';
import { assess, provenLocally, reaches, withinMaxAge } from '../policy/assurance.ts';
import { PORTAL_CLIENT_ID } from '../portal/sign-in.ts';
import type { AuthSessions } from '../sessions/auth-sessions.ts';
import {
  type LoginRecord,
  levelForRequest,
  maxAgeOf,
  SELECT_ACCOUNT_PROMPT,
  type SelectAccountResult,
  type SessionCheckReason,
} from '../sessions/policy-check.ts';
import { type AttemptDeps, attemptMethod } from './attempts.ts';
import { type CsrfTokens, FormError, readForm } from './form.ts';
import type { InteractionStates, LoginState } from './state.ts';

export interface InteractionDeps {
  config: Config;
  host: ProviderHost;
  views: Views;
  csrf: CsrfTokens;
  states: InteractionStates;
  sessions: AuthSessions;
  accounts: AccountStore;
  /** Every configured method, in the order they are offered. */
  methods: readonly AuthMethod[];
  attempts: AttemptDeps;
  /** The client certificate of the request (own TLS listener or trusted proxy), if any. */
  clientCertificate(ctx: Context): PresentedCertificate | undefined;
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
  credential_blocked: 403,
  certificate_rejected: 403,
  certificate_missing: 401,
  card_not_linked: 403,
  account_mismatch: 403,
  upstream_failed: 401,
  psc_not_linked: 403,
  national_id_conflict: 403,
  psc_level_too_low: 403,
  psc_identity_not_accepted: 403,
};

type Details = Awaited<ReturnType<ProviderHost['provider']['interactionDetails']>>;
type ReadyState = LoginState & { clientId: string; requiredAcr: string; locale: Locale };

const nowSeconds = () => Math.floor(Date.now() / 1000);

/**
 * The login flow: identify → method(s) → (consent). Each method is a module behind AuthMethod; this
 * layer owns HTTP (forms, CSRF, rendering), asks for methods until the level the client needs is
 * reached (a step-up asks only for what the session lacks), and hands the result to the engine.
 * The state of each interaction is in the database, so a method's form may be posted to another
 * origin (the smart card listener) and to any instance.
 */
export function interactionRoutes(deps: InteractionDeps): Router {
  const { config, views, csrf, states } = deps;
  const levels = config.policy.levels;
  const router = new Router({ prefix: '/interaction' });
  const issuerOrigin = new URL(config.issuer).origin;

  const page = (ctx: Context, locale: Locale) => ({
    locale,
    demo: config.demo,
    requestId: ctx.state.requestId as string,
  });
  const detailsLocale = (ctx: Context, details?: Details) =>
    negotiateLocale(details?.params.ui_locales, ctx.get('accept-language'), config.ui.defaultLocale);

  const renderError = (ctx: Context, status: number, message: MessageId, locale: Locale) => {
    ctx.status = status;
    ctx.type = 'html';
    const p = page(ctx, locale);
    ctx.body = views.render('error', p, { message: translator(p.locale)(message) });
  };

  /** What the user is told of a failed attempt (when to retry, whom to call). */
  const failureMessage = (locale: Locale, code: AuthFailureCode, retryAfterSeconds?: number) =>
    translator(locale)(`error.${code}`, {
      minutes: Math.ceil((retryAfterSeconds ?? 60) / 60),
      support: supportContact(config.ui.supportContact, locale),
    });

  /** Loads the interaction bound to the browser's cookie and checks it is the one in the URL. */
  const load = async (ctx: Context): Promise<Details | undefined> => {
    try {
      const details = await deps.host.provider.interactionDetails(ctx.req, ctx.res);
      if (details.uid === ctx.params.uid) return details;
    } catch (err) {
      if (!(err instanceof errors.SessionNotFound)) throw err;
    }
    renderError(ctx, 400, 'error.interaction_expired', detailsLocale(ctx));
    return undefined;
  };

  const clientName = async (clientId: string) => {
    const client = await deps.host.provider.Client.find(clientId);
    return client?.clientName ?? clientId;
  };

  /** A page of a prompt other than login (consent, account choice), with its form's CSRF token. */
  const promptPage = async (
    ctx: Context,
    details: Details,
    locale: Locale,
    view: string,
    data: Record<string, unknown>,
  ) => {
    ctx.type = 'html';
    ctx.set('cache-control', 'no-store');
    ctx.body = views.render(view, page(ctx, locale), {
      uid: details.uid,
      csrf: csrf.issue(details.uid),
      clientName: await clientName(String(details.params.client_id)),
      ...data,
    });
  };

  /** Parses the form and checks its CSRF token; renders the error and returns undefined when invalid. */
  const form = async (
    ctx: Context,
    uid: string,
    locale: Locale,
  ): Promise<Record<string, string> | undefined> => {
    let body: Record<string, string>;
    try {
      body = await readForm(ctx, config.http.bodyLimitBytes);
    } catch (err) {
      if (err instanceof FormError) {
        renderError(ctx, err.status, 'error.invalid_form', locale);
        return undefined;
      }
      throw err;
    }
    if (!csrf.verify(ctx, uid, body.csrf)) {
      renderError(ctx, 403, 'error.csrf', locale);
      return undefined;
    }
    return body;
  };

  const redirect = (ctx: Context, url: string) => {
    ctx.status = 303;
    ctx.redirect(url);
  };

  const finish = async (ctx: Context, result: InteractionResults) => {
    redirect(
      ctx,
      await deps.host.provider.interactionResult(ctx.req, ctx.res, result, {
        mergeWithLastSubmission: false,
      }),
    );
  };

  /** The state of a login interaction, started on its first display. */
  const startState = async (details: Details, locale: Locale): Promise<ReadyState> => {
    const clientId = String(details.params.client_id);
    const metadata: Record<string, unknown> =
      (await deps.host.provider.Client.find(clientId))?.metadata() ?? {};
    const level = levelForRequest(config, metadata, details.params.acr_values);
    const maxAge = maxAgeOf(config, metadata, details.params.max_age);
    const allowed = Array.isArray(metadata.allowed_methods)
      ? (metadata.allowed_methods as string[])
      : undefined;
    const state: ReadyState = {
      clientId,
      locale,
      requiredAcr: level.acr,
      pscFederation: pscEstablishmentOf(config, metadata) !== undefined,
      ...(maxAge === undefined ? {} : { maxAge }),
      allowedMethods: deps.methods.map((m) => m.id).filter((id) => !allowed || allowed.includes(id)),
    };
    // A session that is alive but too weak for this client: ask only for what it lacks.
    const session = details.session;
    const reason = (details.prompt.details as { session_reason?: SessionCheckReason }).session_reason;
    if (
      session?.accountId &&
      session.uid &&
      reason === 'step_up' &&
      !details.prompt.reasons.includes('login_prompt')
    ) {
      const active = await deps.sessions.active(session.uid, session.accountId);
      const account = await deps.accounts.findById(session.accountId);
      if (active && account) {
        state.stepUp = true;
        state.accountId = account.id;
        state.username = account.username;
        state.completed = withinMaxAge(active.methods, maxAge, nowSeconds());
      }
    }
    return state;
  };

  const levelOf = (state: ReadyState) => levels.find((l) => l.acr === state.requiredAcr) ?? levels[0];

  /**
   * A login for Pro Santé Connect counts and offers only what Passerelle proves itself: never the login
   * through PSC (the delegation loop would hand PSC its own authentication). A state from before the
   * field was set is treated as one.
   */
  const forPsc = (state: ReadyState) => state.pscFederation !== false;
  const counted = (state: ReadyState, methods: readonly CompletedMethod[]) =>
    forPsc(state) ? provenLocally(methods) : [...methods];

  /** The PSC login still to do to link the account proven meanwhile (after `psc_not_linked`). */
  const pscLinkPending = (state: ReadyState): AuthMethod | undefined =>
    state.linkPsc && state.accountId && !(state.completed ?? []).some((m) => m.method === 'psc')
      ? deps.methods.find((m) => m.id === 'psc')
      : undefined;

  /** Methods worth offering now: those that complete the level first, then those that add a factor. */
  const candidates = (state: ReadyState): AuthMethod[] => {
    const linking = pscLinkPending(state);
    if (linking) return [linking];
    const level = levelOf(state);
    const done = counted(state, state.completed ?? []);
    const doneIds = new Set(done.map((m) => m.method));
    const before = assess(levels, done);
    const open = deps.methods.filter(
      (m) => state.allowedMethods?.includes(m.id) && !doneIds.has(m.id) && !(m.federated && forPsc(state)),
    );
    const after = (m: AuthMethod) =>
      assess(levels, [...done, { amr: [...m.amr], phishingResistant: m.phishingResistant }]);
    const all = assess(levels, [
      ...done,
      ...open.map((m) => ({ amr: [...m.amr], phishingResistant: m.phishingResistant })),
    ]);
    if (!level || !reaches(all, level)) return [];
    const completing = open.filter((m) => reaches(after(m), level));
    const progressing = open.filter(
      (m) =>
        !completing.includes(m) &&
        (after(m).factors > before.factors || (m.phishingResistant && !before.phishingResistant)),
    );
    return [...completing, ...progressing];
  };

  const methodContext = (ctx: Context, uid: string, state: ReadyState): MethodContext => ({
    ip: ctx.ip,
    userAgent: ctx.get('user-agent'),
    interactionUid: uid,
    requestId: ctx.state.requestId as string,
    locale: state.locale,
    username: state.username,
    accountId: state.accountId,
    clientCertificate: deps.clientCertificate(ctx),
  });

  const methodHref = (uid: string, method: AuthMethod) =>
    `/interaction/${uid}?method=${encodeURIComponent(method.id)}`;

  const renderStep = async (
    ctx: Context,
    uid: string,
    state: ReadyState,
    requested: string | undefined,
    extra: { error?: string; status?: number; prefill?: string; linking?: boolean } = {},
  ) => {
    const t = translator(state.locale);
    const offered = candidates(state);
    if (!offered.length) {
      // No method can reach the level: "Retour à l'application" answers the client access_denied.
      ctx.status = 403;
      ctx.type = 'html';
      ctx.set('cache-control', 'no-store');
      ctx.body = views.render('error', page(ctx, state.locale), {
        message: t('error.no_method'),
        abortAction: `/interaction/${uid}/abort`,
        csrf: csrf.issue(uid),
      });
      return;
    }
    const known = state.username !== undefined || state.accountId !== undefined;
    const usable = offered.filter((m) => known || !m.needsUsername);
    const method = usable.find((m) => m.id === requested) ?? (known ? usable[0] : undefined);
    const common = {
      uid,
      csrf: csrf.issue(uid),
      clientName: await clientName(state.clientId),
      username: state.username ?? extra.prefill,
      error: extra.error,
      stepUp: state.stepUp === true,
      linking: extra.linking === true,
    };
    ctx.status = extra.status ?? 200;
    ctx.type = 'html';
    ctx.set('cache-control', 'no-store');
    if (!method) {
      ctx.body = views.render('login-identify', page(ctx, state.locale), {
        ...common,
        alternatives: offered
          .filter((m) => !m.needsUsername)
          .map((m) => ({ label: t(m.label as MessageId), href: methodHref(uid, m) })),
      });
      return;
    }
    const prepared = method.prepare ? await method.prepare(methodContext(ctx, uid, state)) : {};
    ctx.body = views.render(method.view, page(ctx, state.locale), {
      ...common,
      ...prepared,
      formAction: `${method.formOrigin ?? ''}/interaction/${uid}/method/${method.id}`,
      methodLabel: method.label,
      alternatives: offered
        .filter((m) => m !== method && (known || !m.needsUsername))
        .map((m) => ({ label: t(m.label as MessageId), href: methodHref(uid, m) })),
    });
  };

  /** Shows the next step, or hands the login to the engine once the level is reached. */
  const proceed = async (ctx: Context, details: Details, state: ReadyState) => {
    const level = levelOf(state);
    const completed = withinMaxAge(state.completed ?? [], state.maxAge, nowSeconds());
    const proofs = counted(state, completed);
    const assurance = assess(levels, proofs);
    const linking = pscLinkPending(state);
    if (linking) return renderStep(ctx, details.uid, state, linking.id, { linking: true });
    if (state.accountId && level && reaches(assurance, level)) {
      const profile = deps.sessions.profileFor(ctx.ip);
      await states.delete(details.uid);
      // The session keeps every method (a login through PSC is still ended by PSC's logout).
      const record: LoginRecord = { methods: completed, profile };
      return finish(ctx, {
        login: {
          accountId: state.accountId,
          amr: assurance.amr,
          acr: assurance.acr,
          // The latest authentication counted (a step-up that adds nothing new keeps its time).
          ts: proofs.length ? Math.max(...proofs.map((m) => m.at)) : nowSeconds(),
          // Shared workstations get a browser-session cookie only.
          remember: profile === 'standard',
        },
        passerelle: record,
      });
    }
    const failure = state.failure;
    if (failure) {
      delete state.failure;
      await states.set(details.uid, state);
    }
    const hint = details.params.login_hint;
    return renderStep(ctx, details.uid, state, failure?.method ?? String(ctx.query.method ?? ''), {
      error: failure ? failureMessage(state.locale, failure.code, failure.retryAfterSeconds) : undefined,
      status: failure ? FAILURE_STATUS[failure.code] : 200,
      prefill: typeof hint === 'string' ? hint.slice(0, 128) : undefined,
    });
  };

  const readyState = async (ctx: Context, details: Details): Promise<ReadyState> => {
    const stored = await states.get(details.uid);
    if (stored.clientId && stored.requiredAcr && stored.locale) return stored as ReadyState;
    const state = await startState(details, detailsLocale(ctx, details));
    // "Lier ma e-CPS" from the portal: the session's account is proven (its methods kept); PSC links it.
    const session = details.session;
    if (
      config.pscLogin &&
      state.clientId === PORTAL_CLIENT_ID &&
      session?.accountId &&
      session.uid &&
      pscLinkRequested(ctx, session.uid)
    ) {
      const active = await deps.sessions.active(session.uid, session.accountId);
      const account = active && (await deps.accounts.findById(session.accountId));
      if (active && account) {
        state.linkPsc = true;
        state.accountId = account.id;
        state.username = account.username;
        state.completed = withinMaxAge(active.methods, state.maxAge, nowSeconds());
      }
    }
    await states.set(details.uid, state);
    return state;
  };

  router.get('/:uid', async (ctx) => {
    const details = await load(ctx);
    if (!details) return;
    if (details.prompt.name === 'login') return proceed(ctx, details, await readyState(ctx, details));
    const locale = detailsLocale(ctx, details);
    if (details.prompt.name === 'consent') {
      // What is not yet granted; asked again (prompt=consent, e.g. forwarded by PSC's broker): all of it.
      const missing = (details.prompt.details.missingOIDCScope as string[] | undefined) ?? [];
      const shown = missing.length
        ? missing
        : String(details.params.scope ?? '')
            .split(' ')
            .filter(Boolean);
      return promptPage(ctx, details, locale, 'consent', {
        scopes: shown.map((name) => ({ name, label: label(locale, 'scope', name) })),
      });
    }
    if (details.prompt.name === SELECT_ACCOUNT_PROMPT && details.session?.accountId) {
      const account = await deps.accounts.findById(details.session.accountId);
      return promptPage(ctx, details, locale, 'select-account', {
        name: account?.displayName ?? account?.username ?? '',
      });
    }
    if (details.prompt.name === PSC_ELIGIBILITY_PROMPT) {
      const refusal = (details.prompt.details as { psc_refusal?: PscRefusal }).psc_refusal ?? 'link_conflict';
      await deps.attempts.audit.record({
        type: 'psc.federation.refused',
        outcome: 'failure',
        accountId: details.session?.accountId,
        clientId: String(details.params.client_id),
        interactionId: details.uid,
        ip: ctx.ip,
        userAgent: ctx.get('user-agent'),
        reason: refusal,
        requestId: ctx.state.requestId,
      });
      ctx.status = 403;
      ctx.type = 'html';
      ctx.set('cache-control', 'no-store');
      const p = page(ctx, locale);
      ctx.body = views.render('error', p, {
        message: translator(p.locale)(`psc.refused.${refusal}`),
        abortAction: `/interaction/${details.uid}/abort`,
        csrf: csrf.issue(details.uid),
      });
      return;
    }
    renderError(ctx, 400, 'error.interaction_expired', locale);
  });

  router.post('/:uid/identify', async (ctx) => {
    const details = await load(ctx);
    if (!details) return;
    const state = await readyState(ctx, details);
    const body = await form(ctx, details.uid, state.locale);
    if (!body) return;
    const parsed = identifySchema.safeParse(body);
    if (!parsed.success || state.stepUp) {
      const t = translator(state.locale);
      return renderStep(ctx, details.uid, state, undefined, { error: t('error.invalid_form'), status: 400 });
    }
    await states.set(details.uid, {
      ...state,
      username: parsed.data.username,
      accountId: undefined,
      completed: [],
    });
    redirect(ctx, `/interaction/${details.uid}`);
  });

  router.post('/:uid/restart', async (ctx) => {
    const details = await load(ctx);
    if (!details) return;
    const state = await readyState(ctx, details);
    if (!(await form(ctx, details.uid, state.locale))) return;
    // A step-up keeps its account; a plain login starts over with a new identifier.
    if (!state.stepUp) await states.delete(details.uid);
    redirect(ctx, `/interaction/${details.uid}`);
  });

  /** One attempt of a method, then the next step (or the failure shown where the user is). */
  const runMethod = async (
    ctx: Context,
    uid: string,
    state: ReadyState,
    method: AuthMethod,
    input: unknown,
    sameOrigin: boolean,
  ) => {
    const context = methodContext(ctx, uid, state);
    // A login for PSC or through PSC is federation; a state from before the field was set fails closed.
    const scope = state.pscFederation === false && method.id !== 'psc' ? 'local' : 'federation';
    const { outcome, account } = await attemptMethod(
      deps.attempts,
      method,
      input,
      context,
      state.clientId,
      scope,
    );
    if (outcome.kind === 'failure') {
      if (outcome.retryAfterSeconds) ctx.set('retry-after', String(outcome.retryAfterSeconds));
      // PSC proved an identity linked to no account: the user proves their account, then PSC links it.
      if (outcome.code === 'psc_not_linked' && !state.accountId) state.linkPsc = true;
      if (!sameOrigin) {
        state.failure = {
          code: outcome.code,
          method: method.id,
          ...(outcome.retryAfterSeconds ? { retryAfterSeconds: outcome.retryAfterSeconds } : {}),
        };
        await states.set(uid, state);
        return redirect(ctx, `${issuerOrigin}/interaction/${uid}`);
      }
      if (state.linkPsc) await states.set(uid, state);
      return renderStep(ctx, uid, state, state.linkPsc && !state.accountId ? undefined : method.id, {
        error: failureMessage(state.locale, outcome.code, outcome.retryAfterSeconds),
        status: FAILURE_STATUS[outcome.code],
      });
    }
    const completed: CompletedMethod = {
      method: method.id,
      amr: [...outcome.amr],
      phishingResistant: outcome.phishingResistant ?? method.phishingResistant,
      at: nowSeconds(),
      ...(outcome.upstreamSid ? { upstreamSid: outcome.upstreamSid } : {}),
      ...(method.federated ? { federated: true as const } : {}),
    };
    state.username ??= account?.username;
    state.accountId = outcome.accountId;
    state.completed = [...(state.completed ?? []), completed];
    await states.set(uid, state);
    redirect(ctx, `${issuerOrigin}/interaction/${uid}`);
  };

  // A method's form. No interaction cookie needed here: the form may come to another origin (the smart
  // card listener); the CSRF token binds it to the interaction, and only the browser holding the
  // interaction cookie can complete the login on the issuer's origin.
  router.post('/:uid/method/:method', async (ctx) => {
    const uid = ctx.params.uid ?? '';
    const stored = await states.get(uid);
    const locale = stored.locale ?? detailsLocale(ctx);
    if (!stored.clientId || !stored.requiredAcr || !stored.locale) {
      return renderError(ctx, 400, 'error.interaction_expired', locale);
    }
    const state = stored as ReadyState;
    const body = await form(ctx, uid, locale);
    if (!body) return;
    const method = candidates(state).find((m) => m.id === ctx.params.method);
    const known = state.username !== undefined || state.accountId !== undefined;
    if (!method || (method.needsUsername && !known))
      return renderError(ctx, 400, 'error.invalid_form', locale);
    const t = translator(locale);
    const sameOrigin = `${ctx.protocol}://${ctx.host}` === issuerOrigin;
    const input = method.input.safeParse(body);
    if (!input.success) {
      if (!sameOrigin) return renderError(ctx, 400, 'error.invalid_form', locale);
      return renderStep(ctx, uid, state, method.id, { error: t('error.invalid_form'), status: 400 });
    }

    return runMethod(ctx, uid, state, method, input.data, sameOrigin);
  });

  // A federated method's answer (login through PSC): the browser comes back from the provider. The
  // interaction cookie binds it to this browser; the method checks its own state (OAuth `state`).
  router.get('/:uid/method/:method/return', async (ctx) => {
    const details = await load(ctx);
    if (!details) return;
    const state = await readyState(ctx, details);
    const method = candidates(state).find((m) => m.id === ctx.params.method && m.returnsByRedirect);
    const input = method?.input.safeParse(ctx.query);
    if (!method || !input?.success) return renderError(ctx, 400, 'error.invalid_form', state.locale);
    return runMethod(ctx, details.uid, state, method, input.data, true);
  });

  router.post('/:uid/select-account', async (ctx) => {
    const details = await load(ctx);
    if (!details) return;
    const locale = detailsLocale(ctx, details);
    const body = await form(ctx, details.uid, locale);
    if (!body) return;
    if (details.prompt.name !== SELECT_ACCOUNT_PROMPT || !['continue', 'other'].includes(body.choice ?? '')) {
      return renderError(ctx, 400, 'error.invalid_form', locale);
    }
    const chosen: SelectAccountResult = body.choice === 'other' ? { other: true } : {};
    await finish(ctx, { [SELECT_ACCOUNT_PROMPT]: chosen });
  });

  router.post('/:uid/consent', async (ctx) => {
    const details = await load(ctx);
    if (!details) return;
    const locale = detailsLocale(ctx, details);
    if (!(await form(ctx, details.uid, locale))) return;
    if (details.prompt.name !== 'consent' || !details.session?.accountId) {
      return renderError(ctx, 400, 'error.invalid_form', locale);
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
    if (!(await form(ctx, details.uid, detailsLocale(ctx, details)))) return;
    await states.delete(details.uid);
    await finish(ctx, { error: 'access_denied', error_description: 'End-User aborted interaction' });
  });

  return router;
}
