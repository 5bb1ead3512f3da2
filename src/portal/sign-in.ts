import type { Context } from 'koa';
import type { Account, AccountStore } from '../accounts/store.ts';
import type { Config } from '../config/schema.ts';
import { signValue, verifySignedValue } from '../http/signed-value.ts';
import { readSsoSession, type SsoSession } from '../interaction/sso-session.ts';
import type { ClientMetadata } from '../oidc/clients.ts';
import type { ProviderHost } from '../oidc/host.ts';
import { assess, reaches, withinMaxAge } from '../policy/assurance.ts';
import type { AuthSession, AuthSessions } from '../sessions/auth-sessions.ts';

export const PORTAL_CLIENT_ID = 'passerelle-portal';
export const CONSOLE_CLIENT_ID = 'passerelle-console';
export const PORTAL_CALLBACK = '/portal/callback';
export const CONSOLE_CALLBACK = '/admin/callback';

/** The level the console needs: the first configured one that is two-factor and phishing resistant. */
export function consoleLevel(config: Config) {
  return config.policy.levels.find((l) => l.phishingResistant && l.minFactors >= 2);
}

/**
 * Passerelle's own applications, registered at each start: they sign in through the engine like any
 * application (login pages, policy, audit), with response type `none` since they only need the session.
 */
export function internalClients(config: Config): ClientMetadata[] {
  const base = {
    response_types: ['none'],
    grant_types: [],
    token_endpoint_auth_method: 'none',
    first_party: true,
    scope: 'openid',
  };
  const level = consoleLevel(config);
  return [
    {
      ...base,
      client_id: PORTAL_CLIENT_ID,
      client_name: 'Portail Passerelle',
      redirect_uris: [`${config.issuer}${PORTAL_CALLBACK}`],
      post_logout_redirect_uris: [`${config.issuer}/portal`],
    },
    {
      ...base,
      client_id: CONSOLE_CLIENT_ID,
      client_name: 'Console d’administration Passerelle',
      redirect_uris: [`${config.issuer}${CONSOLE_CALLBACK}`],
      post_logout_redirect_uris: [`${config.issuer}/portal`],
      ...(level ? { required_acr: level.acr } : {}),
    },
  ];
}

/** A browser signed in at Passerelle: its SSO session (alive), the session's methods and the account. */
export interface SignedIn {
  session: SsoSession;
  auth: AuthSession;
  account: Account;
}

export interface SignInDeps {
  config: Config;
  host: ProviderHost;
  sessions: AuthSessions;
  accounts: AccountStore;
  /** Key of the signed return paths (a server secret shared by every instance). */
  key: string;
}

/** Same-site path only: no scheme, no host, no `//` or `/\\` (open redirect). */
function localPath(value: string | undefined): string | undefined {
  return value && /^\/(?![/\\])/.test(value) ? value : undefined;
}

export function signInFlow(deps: SignInDeps) {
  const { config } = deps;

  const signedIn = async (ctx: Context): Promise<SignedIn | undefined> => {
    const session = await readSsoSession(deps.host.provider, ctx);
    if (!session) return undefined;
    const auth = await deps.sessions.active(session.sessionUid, session.accountId);
    const account = auth ? await deps.accounts.findById(session.accountId) : undefined;
    if (!auth || !account || account.disabledAt) return undefined;
    return { session, auth, account };
  };

  /** Whether the session's methods, within the console's age limit, reach the console's level. */
  const recentStrongAuthentication = (auth: AuthSession): boolean => {
    const level = consoleLevel(config);
    if (!level) return false;
    const now = Math.floor(Date.now() / 1000);
    return reaches(
      assess(config.policy.levels, withinMaxAge(auth.methods, config.console.maxAuthAgeSeconds, now)),
      level,
    );
  };

  /** Sends the browser to sign in (or to step up, or again with `prompt`) through the engine, then back to `returnTo`. */
  const redirectToSignIn = (
    ctx: Context,
    target: 'portal' | 'console',
    returnTo: string,
    options: { prompt?: 'login' } = {},
  ) => {
    const url = new URL('/auth', config.issuer);
    const console = target === 'console';
    url.searchParams.set('client_id', console ? CONSOLE_CLIENT_ID : PORTAL_CLIENT_ID);
    url.searchParams.set('redirect_uri', `${config.issuer}${console ? CONSOLE_CALLBACK : PORTAL_CALLBACK}`);
    url.searchParams.set('response_type', 'none');
    url.searchParams.set('scope', 'openid');
    url.searchParams.set('state', signValue(deps.key, localPath(returnTo) ?? '/portal', 30 * 60_000));
    if (options.prompt) url.searchParams.set('prompt', options.prompt);
    if (console) {
      const level = consoleLevel(config);
      if (level) url.searchParams.set('acr_values', level.acr);
      url.searchParams.set('max_age', String(config.console.maxAuthAgeSeconds));
    }
    ctx.set('cache-control', 'no-store');
    ctx.redirect(url.toString());
  };

  /** The callback: back to the signed return path; an error (user cancelled, access denied) goes to `/portal`. */
  const returnPath = (ctx: Context): string | undefined =>
    typeof ctx.query.error === 'string' ? undefined : localPath(verifySignedValue(deps.key, ctx.query.state));

  return { signedIn, recentStrongAuthentication, redirectToSignIn, returnPath };
}

export type SignInFlow = ReturnType<typeof signInFlow>;
