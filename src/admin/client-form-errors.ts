import type { z } from 'zod';
import { label } from '../i18n/labels.ts';
import { type Locale, type MessageId, translator } from '../i18n/messages.ts';
import type { RedirectUriProblem } from '../oidc/redirect-uris.ts';

/** Why a registration was refused: the form's checks (zod issues), or the engine's own validation. */
export type ClientFormProblem =
  | { kind: 'form'; issues: readonly z.core.$ZodIssue[]; redirectUris: readonly string[] }
  | { kind: 'engine'; message: string };

/** The sentence of a field's problem, by field and issue code. */
function issueMessage(field: string, issue: z.core.$ZodIssue): MessageId {
  if (field === 'redirectUris') {
    if (issue.path.length < 2) return 'console.client.error.redirect_uris_missing';
    return issue.code === 'invalid_format'
      ? 'console.client.error.redirect_uri_invalid'
      : 'console.client.error.redirect_uri_refused';
  }
  if (field === 'clientId') return 'console.client.error.client_id';
  if (field === 'clientName') return 'console.client.error.client_name';
  if (field === 'tokenEndpointAuthMethod') return 'console.client.error.auth_method';
  if (field === 'pkceRequired') return 'console.client.error.pkce_public';
  if (field === 'pscEstablishment') return 'console.client.error.finess';
  return 'console.client.error.refused';
}

/** Metadata names in the engine's messages (`redirect_uris must…`) → the form's fields. */
const ENGINE_FIELDS: Record<string, string> = {
  redirect_uris: 'redirectUris',
  post_logout_redirect_uris: 'postLogoutRedirectUris',
  token_endpoint_auth_method: 'tokenEndpointAuthMethod',
  pkce_required: 'pkceRequired',
  required_acr: 'requiredAcr',
  psc_establishment: 'pscEstablishment',
  initiate_login_uri: 'initiateLoginUri',
  client_uri: 'clientUri',
  jwks_uri: 'jwksUri',
  jwks: 'jwks',
  backchannel_logout_uri: 'backchannelLogoutUri',
};

/**
 * A refused registration in French sentences (English by negotiation) that name the field, and the
 * address at fault, never a schema path or the engine's English.
 */
export function clientFormError(locale: Locale, problem: ClientFormProblem): string {
  const t = translator(locale);
  if (problem.kind === 'engine') {
    const named = Object.keys(ENGINE_FIELDS).find((key) => new RegExp(`\\b${key}\\b`).test(problem.message));
    return named
      ? t('console.client.error.engine_field', { field: label(locale, 'clientField', ENGINE_FIELDS[named]) })
      : t('console.client.error.engine');
  }
  const sentences = problem.issues.map((issue) => {
    const field = String(issue.path[0] ?? '');
    const index = typeof issue.path[1] === 'number' ? issue.path[1] : undefined;
    // A redirect URI refused by src/oidc/redirect-uris.ts: the rule it breaks, naming the URI.
    const refused = (issue as { params?: { redirectUri?: string; problem?: RedirectUriProblem } }).params;
    if (refused?.redirectUri && refused.problem) {
      return t(`redirect_uri.problem.${refused.problem}`, {
        field: label(locale, 'clientField', field),
        line: (index ?? 0) + 1,
        uri: refused.redirectUri,
      });
    }
    return t(issueMessage(field, issue), {
      field: label(locale, 'clientField', field),
      line: index === undefined ? '' : index + 1,
      uri: index === undefined ? '' : (problem.redirectUris[index] ?? ''),
    });
  });
  return [...new Set(sentences)].join(' ');
}
