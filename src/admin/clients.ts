import { Router } from '@koa/router';
import type { Context } from 'koa';
import type { AuditTrail } from '../audit/trail.ts';
import { clientAuthMethods, clientSchema } from '../config/schema.ts';
import { type MessageId, translator } from '../i18n/messages.ts';
import {
  type ClientMetadata,
  type ClientRegistry,
  type MetadataValidator,
  toClientMetadata,
} from '../oidc/clients.ts';
import { confirmed, renderConfirmation } from '../portal/confirm.ts';
import { renderPage } from '../portal/routes.ts';
import { type ClientFormProblem, clientFormError } from './client-form-errors.ts';
import type { ConsoleGate, ConsoleUser } from './console.ts';
import { type ConsoleFormDeps, consoleForms, seeOther } from './people-form.ts';
import { sectionRoles } from './sections.ts';

export interface ClientPagesDeps extends ConsoleFormDeps {
  clients: ClientRegistry;
  validateClient: MetadataValidator;
  audit: AuditTrail;
}

const PREFIX = '/admin/clients';
const DONE = ['created', 'saved', 'removed'] as const;
/** Registrations the console does not change: the configuration file or Passerelle owns them. */
const READ_ONLY = new Set(['config', 'internal']);
/** The metadata the console's form sets; everything else in a registration is kept as it is. */
const FORM_KEYS = [
  'client_name',
  'redirect_uris',
  'application_type',
  'token_endpoint_auth_method',
  'pkce_required',
  'first_party',
  'portal',
  'initiate_login_uri',
  'client_uri',
  'required_acr',
  'psc_establishment',
] as const;

type FormValues = Record<string, string>;

const text = (v: string | undefined) => (v?.trim() ? v.trim() : undefined);

/** The form's fields, checked like the command line's, as registration metadata. */
function metadataOf(
  clientId: string,
  body: FormValues,
): { metadata: ClientMetadata } | { error: ClientFormProblem } {
  const redirectUris = (body.redirect_uris ?? '')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean);
  const parsed = clientSchema.safeParse({
    clientId,
    clientName: text(body.name),
    redirectUris,
    tokenEndpointAuthMethod: body.auth_method,
    pkceRequired: body.pkce_required === 'on',
    firstParty: body.first_party === 'on',
    requiredAcr: text(body.required_acr),
    pscEstablishment: text(body.psc_establishment),
    applicationType: body.native === 'on' ? 'native' : 'web',
  });
  if (!parsed.success) {
    return { error: { kind: 'form', issues: parsed.error.issues, redirectUris } };
  }
  const metadata: ClientMetadata = {
    ...toClientMetadata(parsed.data),
    portal: body.portal === 'on' || undefined,
    initiate_login_uri: text(body.initiate_login_uri),
    client_uri: text(body.client_uri),
  };
  for (const key of Object.keys(metadata)) if (metadata[key] === undefined) delete metadata[key];
  return { metadata };
}

const engineRefusal = (err: unknown): ClientFormProblem => ({
  kind: 'engine',
  message: (err as Error).message,
});

/** The form's values from a stored registration. */
function valuesOf(m: ClientMetadata): FormValues {
  const s = (v: unknown) => (typeof v === 'string' ? v : '');
  return {
    client_id: m.client_id,
    name: s(m.client_name),
    redirect_uris: ((m.redirect_uris as string[] | undefined) ?? []).join('\n'),
    native: m.application_type === 'native' ? 'on' : '',
    auth_method: s(m.token_endpoint_auth_method) || 'client_secret_basic',
    pkce_required: m.pkce_required === false ? '' : 'on',
    first_party: m.first_party === true ? 'on' : '',
    portal: m.portal === true ? 'on' : '',
    initiate_login_uri: s(m.initiate_login_uri),
    client_uri: s(m.client_uri),
    required_acr: s(m.required_acr),
    psc_establishment: s(m.psc_establishment),
  };
}

/**
 * The console's applications (administrators): list, register, edit, new secret (shown once), remove,
 * through the same registry and engine validation as the command line. Clients from the configuration
 * file and Passerelle's own are shown read-only.
 */
export function clientRoutes(deps: ClientPagesDeps, gate: ConsoleGate): Router {
  const { config, views, clients, validateClient } = deps;
  const forms = consoleForms(deps);
  const router = new Router({ prefix: PREFIX });
  const allowed = sectionRoles('clients');

  const { frame } = forms;

  const record = (ctx: Context, user: ConsoleUser, type: string, clientId: string, detail = {}) => {
    const { via, actor, context } = forms.actor(ctx, user);
    return deps.audit.record({
      ...context,
      type,
      outcome: 'success',
      clientId,
      detail: { via, actor, ...detail },
    });
  };

  const sourceOf = async (clientId: string) =>
    (await clients.list()).find((c) => c.clientId === clientId)?.source;

  router.get('/', async (ctx) => {
    const user = await gate(ctx, allowed);
    if (!user) return;
    const f = await frame(ctx, user);
    const t = translator(f.locale);
    const metadata = new Map((await clients.listMetadata()).map((m) => [m.client_id, m]));
    const done = DONE.find((d) => d === ctx.query.done);
    renderPage(views, ctx, 200, 'console-clients', {
      ...f,
      notice: done ? t(`console.client.done.${done}`) : undefined,
      clients: (await clients.list()).map((c) => {
        const m: ClientMetadata = metadata.get(c.clientId) ?? { client_id: c.clientId };
        return {
          id: c.clientId,
          name: c.clientName ?? '',
          source: t(`console.clients.source.${c.source}`),
          authMethod: c.authMethod,
          portal: t(m.portal === true ? 'console.clients.yes' : 'console.clients.no'),
          psc: typeof m.psc_establishment === 'string' ? m.psc_establishment : '',
        };
      }),
    });
  });

  const renderForm = async (
    ctx: Context,
    user: ConsoleUser,
    view: {
      clientId?: string;
      values: FormValues;
      readOnly?: 'config' | 'internal';
      status?: number;
      error?: ClientFormProblem;
      errorId?: MessageId;
      secret?: string;
    },
  ) => {
    const f = await frame(ctx, user);
    const t = translator(f.locale);
    const done = DONE.find((d) => d === ctx.query.done);
    renderPage(views, ctx, view.status ?? 200, 'console-client', {
      ...f,
      csrf: forms.token(user),
      clientId: view.clientId,
      action: view.clientId ? `${PREFIX}/${encodeURIComponent(view.clientId)}` : `${PREFIX}/new`,
      values: view.values,
      readOnly: view.readOnly ? t(`console.client.readonly.${view.readOnly}`) : undefined,
      usesSecret: ['client_secret_basic', 'client_secret_post'].includes(view.values.auth_method ?? ''),
      secret: view.secret,
      notice: done ? t(`console.client.done.${done}`) : undefined,
      error: view.errorId
        ? t(view.errorId)
        : view.error
          ? t('console.client.invalid', { reason: clientFormError(f.locale, view.error) })
          : undefined,
      authMethods: clientAuthMethods,
      levels: config.policy.levels.map((l) => l.acr),
      establishments: config.establishments.map((e) => ({ finess: e.finess, name: e.name })),
    });
  };

  router.get('/new', async (ctx) => {
    const user = await gate(ctx, allowed);
    if (!user) return;
    await renderForm(ctx, user, { values: { auth_method: 'client_secret_basic', pkce_required: 'on' } });
  });

  router.post('/new', async (ctx) => {
    const user = await gate(ctx, allowed);
    if (!user) return;
    const body = await forms.form(ctx, user);
    if (!body) return;
    const clientId = (body.client_id ?? '').trim();
    const values = { ...body, client_id: clientId };
    const checked = metadataOf(clientId, body);
    if (!('metadata' in checked)) return renderForm(ctx, user, { values, status: 400, ...checked });
    if (await clients.findMetadata(clientId)) {
      return renderForm(ctx, user, { values, status: 409, errorId: 'console.client.exists' });
    }
    let generatedSecret: string | undefined;
    try {
      ({ generatedSecret } = await clients.save(checked.metadata, 'cli', validateClient));
    } catch (err) {
      return renderForm(ctx, user, { values, status: 400, error: engineRefusal(err) });
    }
    await record(ctx, user, 'admin.client.added', clientId, {
      authMethod: checked.metadata.token_endpoint_auth_method,
      redirectUris: checked.metadata.redirect_uris,
      pkceRequired: checked.metadata.pkce_required !== false,
    });
    if (!generatedSecret) return seeOther(ctx, `${PREFIX}/${encodeURIComponent(clientId)}`, 'created');
    // The secret is in this response only: never stored in clear, never logged.
    await renderForm(ctx, user, { clientId, values: valuesOf(checked.metadata), secret: generatedSecret });
  });

  /** The registration named in the path, or a 404 page. */
  const existing = async (ctx: Context) => {
    const clientId = ctx.params.id ?? '';
    const [metadata, source] = await Promise.all([clients.show(clientId), sourceOf(clientId)]);
    if (!metadata || !source) {
      forms.fail(ctx, 404, 'console.client.not_found');
      return undefined;
    }
    const { client_secret: _hidden, ...shown } = metadata;
    const readOnly = READ_ONLY.has(source) ? (source as 'config' | 'internal') : undefined;
    return { clientId, metadata: shown as ClientMetadata, readOnly };
  };

  router.get('/:id', async (ctx) => {
    const user = await gate(ctx, allowed);
    if (!user) return;
    const found = await existing(ctx);
    if (!found) return;
    await renderForm(ctx, user, {
      clientId: found.clientId,
      values: valuesOf(found.metadata),
      readOnly: found.readOnly,
    });
  });

  /** A posted change to a registration the console may change. */
  const change = (
    path: string,
    run: (
      ctx: Context,
      user: ConsoleUser,
      found: { clientId: string; metadata: ClientMetadata },
      body: FormValues,
    ) => Promise<void>,
  ) =>
    router.post(path, async (ctx) => {
      const user = await gate(ctx, allowed);
      if (!user) return;
      const body = await forms.form(ctx, user);
      if (!body) return;
      const found = await existing(ctx);
      if (!found) return;
      if (found.readOnly) {
        return renderForm(ctx, user, {
          clientId: found.clientId,
          values: valuesOf(found.metadata),
          readOnly: found.readOnly,
          status: 409,
        });
      }
      await run(ctx, user, found, body);
    });

  change('/:id', async (ctx, user, { clientId, metadata }, body) => {
    const values = { ...body, client_id: clientId };
    const checked = metadataOf(clientId, body);
    if (!('metadata' in checked)) return renderForm(ctx, user, { clientId, values, status: 400, ...checked });
    const updated: ClientMetadata = { ...metadata };
    for (const key of FORM_KEYS) {
      if (checked.metadata[key] === undefined) delete updated[key];
      else updated[key] = checked.metadata[key];
    }
    let generatedSecret: string | undefined;
    try {
      ({ generatedSecret } = await clients.save(updated, 'cli', validateClient));
    } catch (err) {
      return renderForm(ctx, user, { clientId, values, status: 400, error: engineRefusal(err) });
    }
    await record(ctx, user, 'admin.client.updated', clientId, {
      authMethod: updated.token_endpoint_auth_method,
      redirectUris: updated.redirect_uris,
      pkceRequired: updated.pkce_required !== false,
    });
    if (!generatedSecret) return seeOther(ctx, `${PREFIX}/${encodeURIComponent(clientId)}`, 'saved');
    await renderForm(ctx, user, { clientId, values: valuesOf(updated), secret: generatedSecret });
  });

  /** A destructive change asks first (its confirmation page posts the same form with `confirm=yes`). */
  const confirmedOr = async (
    ctx: Context,
    user: ConsoleUser,
    clientId: string,
    body: FormValues,
    act: 'remove_client' | 'rotate_secret',
    confirmLabel: 'console.client.remove' | 'console.client.rotate',
  ): Promise<boolean> => {
    if (confirmed(body)) return true;
    const f = await forms.frame(ctx, user);
    const t = translator(f.locale);
    renderConfirmation(views, ctx, { ...f, section: 'clients' }, body, {
      question: t(`console.confirm.${act}`, { client: clientId }),
      consequence: t(`console.confirm.${act}.consequence`),
      confirmLabel: t(confirmLabel),
      cancelUrl: `${PREFIX}/${encodeURIComponent(clientId)}`,
      csrf: forms.token(user),
    });
    return false;
  };

  change('/:id/rotate-secret', async (ctx, user, { clientId, metadata }, body) => {
    const values = valuesOf(metadata);
    if (!['client_secret_basic', 'client_secret_post'].includes(values.auth_method ?? '')) {
      return renderForm(ctx, user, { clientId, values, status: 409, errorId: 'console.client.no_secret' });
    }
    if (!(await confirmedOr(ctx, user, clientId, body, 'rotate_secret', 'console.client.rotate'))) return;
    const secret = await clients.rotateSecret(clientId);
    await record(ctx, user, 'admin.client.secret_rotated', clientId);
    await renderForm(ctx, user, { clientId, values, secret });
  });

  change('/:id/remove', async (ctx, user, { clientId }, body) => {
    if (!(await confirmedOr(ctx, user, clientId, body, 'remove_client', 'console.client.remove'))) return;
    await clients.remove(clientId);
    await record(ctx, user, 'admin.client.removed', clientId);
    seeOther(ctx, PREFIX, 'removed');
  });

  return router;
}
