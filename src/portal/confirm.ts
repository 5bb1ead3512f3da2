import type { Context } from 'koa';
import type { Views } from '../http/views.ts';
import { renderPage } from './routes.ts';

/** The field the confirmation page adds to the form it posts again. */
const CONFIRM_FIELD = 'confirm';

/** Whether a destructive act's form comes from its confirmation page. */
export function confirmed(body: Record<string, string>): boolean {
  return body[CONFIRM_FIELD] === 'yes';
}

export interface Confirmation {
  /** The act, as a question naming what it acts on (the page's heading). */
  question: string;
  /** What follows from it, for the person to weigh. */
  consequence: string;
  /** The confirming button: the act's verb (« Révoquer la clé »). */
  confirmLabel: string;
  /** Where « Annuler » leads: the page the act was asked from. */
  cancelUrl: string;
  /** A CSRF token of the same binding as the act's form. */
  csrf: string;
}

/**
 * A destructive act asks first (portal and console, no JavaScript needed): the page states the act and
 * its consequence, and posts the same form again, to the same address, with its fields, a CSRF token and
 * `confirm=yes`. `frame` is the page's frame (portal, or console with its sections).
 */
export function renderConfirmation(
  views: Views,
  ctx: Context,
  frame: Record<string, unknown>,
  body: Record<string, string>,
  confirmation: Confirmation,
): void {
  const fields = Object.entries(body)
    .filter(([name]) => name !== 'csrf' && name !== CONFIRM_FIELD)
    .map(([name, value]) => ({ name, value }));
  renderPage(views, ctx, 200, 'confirm', { ...frame, ...confirmation, action: ctx.path, fields });
}
