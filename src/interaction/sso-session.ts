import type { Context } from 'koa';
import type Provider from 'oidc-provider';

/** The Passerelle single sign-on session of a browser, as the protocol engine keeps it. */
export interface SsoSession {
  accountId: string;
  /** The engine's session uid (stable for the session; the cookie value, its jti, is not exposed). */
  sessionUid: string;
  /** Epoch seconds of the last login. */
  loginTs: number | undefined;
  amr: readonly string[];
  acr: string | undefined;
}

/**
 * Reads the SSO session of a request handled outside the engine (our own koa routes). The engine's
 * `Session.get` accepts a plain koa context: it builds its own context from req/res to read the signed
 * `_session` cookie with the engine's cookie keys, then loads the session from the adapter (expired or
 * forged sessions are not found). Nothing is written: no cookie is set, no session created.
 */
export async function readSsoSession(provider: Provider, ctx: Context): Promise<SsoSession | undefined> {
  const session = await provider.Session.get(ctx as never);
  if (!session.accountId) return undefined;
  return {
    accountId: session.accountId,
    sessionUid: session.uid,
    loginTs: session.loginTs,
    amr: (session.amr as string[] | undefined) ?? [],
    acr: session.acr,
  };
}
