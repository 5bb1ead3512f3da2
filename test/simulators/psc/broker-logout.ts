import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { FormError, readForm } from '../../../src/interaction/form.ts';
import {
  backchannelLogoutCall,
  DEFAULT_LOGOUT_TOKEN_MAX_AGE_SECONDS,
  type FederatedLogin,
  type FiBroker,
  type FiTokens,
} from './federation.ts';
import {
  type BrokeredSession,
  BrokeredSessions,
  checkLogoutToken,
  type LogoutTokenIssuer,
  type LogoutTokenRefusalReason,
  SeenLogoutTokens,
} from './logout.ts';
import { messagePage } from './pages.ts';
import { PROTOCOL, pscBrokerLogoutResponseUri } from './urls.ts';

/**
 * The simulator's logout with the establishments' FIs, wired into the engine: the brokered sessions it
 * remembers, a service's logout that goes through the FI's end_session endpoint, and the FI's logout
 * tokens that end PSC sessions (Keycloak's identity brokering).
 */

/** A delegated login PSC accepted, and the FI's tokens it keeps for logout. */
export interface Delegation {
  login: FederatedLogin;
  tokens: FiTokens;
}

/** A back-channel logout token PSC sent to a service, and whether the service answered 200. */
export interface ServiceNotice {
  clientId: string;
  delivered: boolean;
}

/**
 * The FI side of a service's logout: the browser sent to the FI's logout URL (`redirected`), back from it
 * (`returned`), back to a PSC session that the FI's logout token ended meanwhile or without `state`
 * (`session_not_found`: Keycloak's error page, keycloak#45536), the server-side GET of
 * `backchannelSupported` (`backchannel`, with its status or error, only logged), or no FI logout
 * (`no_logout_url`).
 */
export type FiLogoutStep = 'redirected' | 'returned' | 'session_not_found' | 'backchannel' | 'no_logout_url';

/** What the logout flows record among the simulator's events. */
export type LogoutEvent =
  | {
      kind: 'logout';
      cause: 'service' | 'fi';
      /** The PSC session (uid), its account and the FI it was brokered from. */
      session: string;
      accountId: string;
      alias: string | undefined;
      services: ServiceNotice[];
    }
  | {
      kind: 'logout-token';
      outcome: 'accepted';
      aliases: string[];
      sid: string | undefined;
      sub: string | undefined;
      /** The PSC sessions it ends. */
      sessions: string[];
    }
  | { kind: 'logout-token'; outcome: 'refused'; reason: LogoutTokenRefusalReason; detail: string }
  | {
      kind: 'fi-logout';
      alias: string;
      session: string;
      step: FiLogoutStep;
      /** The back-channel GET: the URL called, the FI's status, the error logged. */
      url?: string;
      status?: number;
      error?: string;
    };

export interface BrokeredLogoutDeps {
  provider: Provider;
  brokers: ReadonlyMap<string, FiBroker>;
  issuer: string;
  now: () => Date;
  /** Records an event; `clientId` is the service concerned, empty when none (an FI's logout token). */
  record: (event: { at: Date; clientId: string } & LogoutEvent) => void;
  /** Expires the browser's PSC session cookie. */
  clearSessionCookie: (ctx: Context) => void;
}

export interface BrokeredLogout {
  sessions: BrokeredSessions;
  /** A delegated login left its interaction: it becomes a brokered session once the account is logged in. */
  delegationDone(interactionUid: string, delegation: Delegation): void;
  /**
   * Where the engine would ask to confirm a service's logout: true when the browser was sent to the FI's
   * end_session endpoint instead (a brokered session; Keycloak asks nothing then), false when the page is
   * to be shown and the engine ends the session.
   */
  startServiceLogout(ctx: KoaContextWithOIDC): Promise<boolean>;
  /** GET `/broker/:alias/endpoint/logout_response`: back from the FI's end_session endpoint. */
  logoutResponse(ctx: Context & { params: { alias?: string } }): Promise<void>;
  /** POST of an FI's logout token at Keycloak's back-channel logout endpoint. */
  backchannelLogout(ctx: Context): Promise<void>;
}

type PscSession = InstanceType<Provider['Session']>;

export function setUpBrokeredLogout(deps: BrokeredLogoutDeps): BrokeredLogout {
  const { provider, brokers, issuer, now, record } = deps;
  const brokered = new BrokeredSessions();
  const seenLogoutTokens = new SeenLogoutTokens();
  /** Delegated logins finished, until the engine has put them in a session (by interaction). */
  const sessionPendingByInteraction = new Map<string, Delegation>();
  /** The xsrf secrets of the logout pages shown to services' users (confirmed, the engine ends the session). */
  const serviceLogouts = new Set<string>();
  /** The logout tokens the engine sent to services, per request. */
  const noticesByRequest = new WeakMap<object, ServiceNotice[]>();

  // A delegated login becomes a brokered session once the engine has logged the account in.
  provider.on('authorization.success', (ctx) => {
    const uid = ctx.oidc.entities.Interaction?.uid;
    const delegation = uid === undefined ? undefined : sessionPendingByInteraction.get(uid);
    const { session } = ctx.oidc;
    if (!uid || !delegation || !session?.accountId) return;
    sessionPendingByInteraction.delete(uid);
    const { login, tokens } = delegation;
    const fi = brokers.get(login.alias)?.fi;
    brokered.record({
      session: session.uid,
      accountId: session.accountId,
      alias: login.alias,
      fiSub: login.sub,
      fiSessionId: fi?.logoutSessionId === 'session_state' ? tokens.sessionState : login.sid,
      fiIdToken: tokens.idToken,
    });
  });
  const notice = (ctx: KoaContextWithOIDC, clientId: string, delivered: boolean) => {
    const notices = noticesByRequest.get(ctx) ?? [];
    notices.push({ clientId, delivered });
    noticesByRequest.set(ctx, notices);
  };
  provider.on('backchannel.success', (ctx, client) => notice(ctx, client.clientId, true));
  provider.on('backchannel.error', (ctx, _err, client) => notice(ctx, client.clientId, false));

  /** The FI's logout for this brokered session (Keycloak's `keycloakInitiatedBrowserLogout`), if any. */
  async function fiLogout(brokeredSession: BrokeredSession) {
    const { alias, fiIdToken, session } = brokeredSession;
    const broker = brokers.get(alias);
    return broker?.logoutRequest(session, fiIdToken, pscBrokerLogoutResponseUri(issuer, alias));
  }

  async function startServiceLogout(ctx: KoaContextWithOIDC): Promise<boolean> {
    const { session } = ctx.oidc;
    if (!session) return false;
    const brokeredSession = brokered.get(session.uid);
    const fi = brokeredSession && (await fiLogout(brokeredSession));
    if (!brokeredSession || fi?.mode !== 'front') {
      const secret = session.state?.secret;
      if (typeof secret === 'string') serviceLogouts.add(secret);
      return false;
    }
    const clientId = String(session.state?.clientId ?? '');
    brokeredSession.loggingOut = { clientId };
    record({
      at: now(),
      clientId,
      kind: 'fi-logout',
      alias: brokeredSession.alias,
      session: session.uid,
      step: 'redirected',
    });
    // Keycloak answers 302 (a browser GET to the FI's logout URL).
    ctx.redirect(fi.url.href);
    ctx.status = 302;
    return true;
  }

  // A service's logout that the engine ended, the user having confirmed it: recorded.
  provider.use(async (ctx, next) => {
    await next();
    const { oidc } = ctx as KoaContextWithOIDC;
    if (oidc?.route !== 'end_session_confirm' || ctx.status !== 303) return;
    const { session, params } = oidc;
    const startedByService = serviceLogouts.delete(String(params?.xsrf));
    if (!startedByService || !session?.accountId || !params?.logout) return;
    const clientId = String(session.state?.clientId ?? '');
    const brokeredSession = brokered.get(session.uid);
    const alias = brokeredSession?.alias;
    const services = noticesByRequest.get(ctx) ?? [];
    const base = { at: now(), clientId, session: session.uid } as const;
    record({ ...base, kind: 'logout', cause: 'service', accountId: session.accountId, alias, services });
    if (!brokeredSession || alias === undefined) return;
    brokered.delete(session.uid);
    const fi = await fiLogout(brokeredSession);
    if (!fi) {
      record({ ...base, kind: 'fi-logout', alias, step: 'no_logout_url' });
      return;
    }
    // backchannelSupported: a server-side GET, its failures only logged.
    const call = await backchannelLogoutCall(fi.url);
    record({ ...base, kind: 'fi-logout', alias, step: 'backchannel', url: fi.url.href, ...call });
  });

  /** Ends a PSC session as Keycloak removes a user session: logout tokens to its services, grants revoked. */
  async function endSession(session: PscSession, accountId: string): Promise<ServiceNotice[]> {
    const services = await Promise.all(
      Object.entries(session.authorizations ?? {}).map(async ([clientId, { grantId }]) => {
        const client = await provider.Client.find(clientId);
        let delivered: boolean | undefined;
        if (client?.backchannelLogoutUri) {
          const sender = client as unknown as { backchannelLogout(sub: string, sid?: string): Promise<void> };
          delivered = await sender.backchannelLogout(accountId, session.sidFor(clientId)).then(
            () => true,
            () => false,
          );
        }
        if (grantId) {
          await Promise.all([
            provider.AccessToken.revokeByGrantId(grantId),
            provider.RefreshToken.revokeByGrantId(grantId),
            provider.AuthorizationCode.revokeByGrantId(grantId),
            provider.Grant.adapter.destroy(grantId),
          ]);
        }
        return delivered === undefined ? [] : [{ clientId, delivered }];
      }),
    );
    await session.destroy();
    return services.flat();
  }

  /** Back from the FI: the service's logout finishes (Keycloak's finishBrowserLogout). */
  async function logoutResponse(ctx: Context & { params: { alias?: string } }) {
    const alias = ctx.params.alias ?? '';
    const uid = typeof ctx.query.state === 'string' ? ctx.query.state : '';
    const brokeredSession = brokered.get(uid);
    const loggingOut = brokeredSession?.alias === alias ? brokeredSession.loggingOut : undefined;
    const session = loggingOut ? await provider.Session.findByUid(uid) : undefined;
    const base = { at: now(), alias, session: uid } as const;
    if (!loggingOut || !session?.accountId) {
      // Keycloak's answer when the session is gone, e.g. ended meanwhile by the FI's logout token.
      record({ ...base, clientId: '', kind: 'fi-logout', step: 'session_not_found' });
      ctx.status = 400;
      ctx.type = 'html';
      ctx.body = messagePage(
        'Erreur',
        "Erreur inattendue lors de l'authentification auprès du fournisseur d'identité.",
      );
      return;
    }
    const { clientId } = loggingOut;
    const { accountId } = session;
    record({ ...base, clientId, kind: 'fi-logout', step: 'returned' });
    brokered.delete(uid);
    const services = await endSession(session, accountId);
    record({ ...base, clientId, kind: 'logout', cause: 'service', accountId, services });
    deps.clearSessionCookie(ctx);
    const { postLogoutRedirectUri, state } = session.state ?? {};
    const target = new URL(
      typeof postLogoutRedirectUri === 'string'
        ? postLogoutRedirectUri
        : `${issuer}${PROTOCOL}/logout/success`,
    );
    if (typeof postLogoutRedirectUri === 'string' && typeof state === 'string') {
      target.searchParams.set('state', state);
    }
    ctx.status = 303;
    ctx.redirect(target.href);
  }

  /** The FI entries whose logout tokens PSC checks. */
  function logoutTokenIssuers(): LogoutTokenIssuer[] {
    return [...brokers.values()].map((broker) => ({
      alias: broker.fi.alias,
      maxAgeSeconds: broker.fi.logoutTokenMaxAgeSeconds ?? DEFAULT_LOGOUT_TOKEN_MAX_AGE_SECONDS,
      issues: (iss) => broker.issues(iss),
      validateToken: (token) => broker.validateToken(token),
    }));
  }

  /** An FI's logout token (OpenID Connect Back-Channel Logout 1.0). */
  async function backchannelLogout(ctx: Context) {
    ctx.set('Cache-Control', 'no-store');
    let token: string | undefined;
    try {
      token = (await readForm(ctx, 16 * 1024)).logout_token;
    } catch (error) {
      if (!(error instanceof FormError)) throw error;
    }
    const outcome = await checkLogoutToken(token, logoutTokenIssuers(), seenLogoutTokens, now());
    const base = { at: now(), clientId: '', kind: 'logout-token' } as const;
    if (outcome.kind === 'refused') {
      const { reason, detail } = outcome;
      record({ ...base, outcome: 'refused', reason, detail });
      ctx.status = 400;
      ctx.body = { error: 'invalid_request', error_description: detail };
      return;
    }
    const { aliases, sid, sub } = outcome;
    const ended = brokered.matching(aliases, sid, sub);
    record({ ...base, outcome: 'accepted', aliases, sid, sub, sessions: ended.map((b) => b.session) });
    let delivered = true;
    for (const { session: uid, accountId, alias } of ended) {
      // Also a session whose browser is at the FI's end_session endpoint (Keycloak's LOGGING_OUT).
      brokered.delete(uid);
      const session = await provider.Session.findByUid(uid);
      const services = session ? await endSession(session, accountId) : [];
      delivered &&= services.every((s) => s.delivered);
      record({
        at: now(),
        clientId: '',
        kind: 'logout',
        cause: 'fi',
        session: uid,
        accountId,
        alias,
        services,
      });
    }
    // As Keycloak: 504 when a service did not acknowledge its logout token.
    ctx.body = null;
    ctx.status = delivered ? 200 : 504;
  }

  return {
    sessions: brokered,
    delegationDone: (interactionUid, delegation) =>
      sessionPendingByInteraction.set(interactionUid, delegation),
    startServiceLogout,
    logoutResponse,
    backchannelLogout,
  };
}
