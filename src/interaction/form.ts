import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Context } from 'koa';
import getRawBody from 'raw-body';

export class FormError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/** Reads an application/x-www-form-urlencoded body within the size limit. The only body parser of the UI. */
export async function readForm(ctx: Context, limitBytes: number): Promise<Record<string, string>> {
  if (!ctx.is('application/x-www-form-urlencoded')) throw new FormError(415, 'unsupported content type');
  let text: string;
  try {
    text = await getRawBody(ctx.req, { limit: limitBytes, encoding: 'utf8', length: ctx.request.length });
  } catch (err) {
    const status = (err as { status?: number }).status ?? 400;
    throw new FormError(status === 413 ? 413 : 400, 'unreadable form body');
  }
  const out: Record<string, string> = {};
  for (const [key, value] of new URLSearchParams(text)) {
    if (key in out) throw new FormError(400, `duplicate parameter ${key}`);
    out[key] = value;
  }
  return out;
}

/** Synchroniser token bound to the interaction, derived with the cookie key: no extra state. */
export class CsrfTokens {
  readonly #key: string;
  readonly #origin: string;

  constructor(key: string, issuer: string) {
    this.#key = key;
    this.#origin = new URL(issuer).origin;
  }

  issue(binding: string): string {
    return createHmac('sha256', this.#key).update(`csrf:${binding}`).digest('base64url');
  }

  /** Checks the token and, when the browser sends them, the Origin and Sec-Fetch-Site headers. */
  verify(ctx: Context, binding: string, token: string | undefined): boolean {
    const origin = ctx.get('origin');
    // The request's own origin. Not ctx.origin: since Koa 3 that is the Origin header itself.
    const own = `${ctx.protocol}://${ctx.host}`;
    if (origin && origin !== this.#origin && origin !== own) return false;
    if (ctx.get('sec-fetch-site') === 'cross-site') return false;
    if (!token) return false;
    const expected = Buffer.from(this.issue(binding));
    const given = Buffer.from(token);
    return expected.length === given.length && timingSafeEqual(expected, given);
  }
}
