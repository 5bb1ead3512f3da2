import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import { Router } from '@koa/router';
import Koa, { type Context } from 'koa';
import * as oidc from 'openid-client';
import { escapeHtml, jsonBlock, page } from './html.ts';
import { closeServer, listen } from './listen.ts';

/**
 * A small web application signing its users in with OpenID Connect (openid-client: code flow, PKCE,
 * state, nonce), as the DPI and DRIMBOX stand-ins of the demo do: one against Passerelle, one against
 * the PSC simulator. Sessions live in memory; the ID token is kept server-side for the logout only.
 */

export interface SignInOption {
  /** `/login/<name>` */
  name: string;
  label: string;
  /** Extra authorization request parameters (acr_values, kc_idp_hint…). */
  params: Record<string, string>;
}

export interface ClientAppOptions {
  /** Prefix of the session cookie: the apps share the host `localhost`, and cookies ignore ports. */
  id: string;
  title: string;
  english: string;
  accent: string;
  /** What the application is, shown on its home page (HTML). */
  intro: string;
  port: number;
  /** `http://localhost:<port>` */
  origin: string;
  issuer: string;
  clientId: string;
  clientSecret: string;
  scope: string;
  signIns: SignInOption[];
  /** The signed-in user, from the ID token claims and userinfo (HTML). */
  summary(login: ReceivedLogin): string;
  /** Links offered once signed in (HTML). */
  signedInLinks?: string;
  walkthroughUrl: string;
}

/** What the application received at a sign-in (decoded claims only, never the token values). */
export interface ReceivedLogin {
  at: Date;
  idToken: Record<string, unknown>;
  userinfo: Record<string, unknown>;
}

export interface ClientApp {
  /** The latest sign-ins, newest first. */
  received: ReceivedLogin[];
  close(): Promise<void>;
}

interface Session {
  pending?: { state: string; nonce: string; verifier: string };
  login?: ReceivedLogin;
  idTokenHint?: string;
}

const RECEIVED_KEPT = 10;

export async function startClientApp(options: ClientAppOptions): Promise<ClientApp> {
  const sessions = new Map<string, Session>();
  const received: ReceivedLogin[] = [];
  const cookie = `${options.id}_session`;
  const redirectUri = `${options.origin}/callback`;
  let discovered: Promise<oidc.Configuration> | undefined;

  const configuration = () => {
    discovered ??= oidc
      .discovery(
        new URL(options.issuer),
        options.clientId,
        { redirect_uris: [redirectUri] },
        oidc.ClientSecretBasic(options.clientSecret),
        { execute: [oidc.allowInsecureRequests] },
      )
      .catch((err: unknown) => {
        discovered = undefined;
        throw err;
      });
    return discovered;
  };

  const existing = (ctx: Context): Session | undefined => {
    const id = ctx.cookies.get(cookie, { signed: true });
    return id === undefined ? undefined : sessions.get(id);
  };
  /** The browser's session, created when a sign-in starts. */
  const session = (ctx: Context): Session => {
    const found = existing(ctx);
    if (found) return found;
    const id = randomBytes(16).toString('base64url');
    const created: Session = {};
    sessions.set(id, created);
    ctx.cookies.set(cookie, id, { signed: true, httpOnly: true, sameSite: 'lax' });
    return created;
  };

  const render = (ctx: Context, body: string, status = 200) => {
    ctx.status = status;
    ctx.type = 'html';
    ctx.set('cache-control', 'no-store');
    ctx.body = page({ title: options.title, english: options.english, accent: options.accent, body });
  };
  const back = `<p><a href="/">Retour à l'accueil</a> · <a href="${escapeHtml(options.walkthroughUrl)}">Parcours guidé / walkthrough</a></p>`;

  const router = new Router();

  router.get('/', (ctx) => {
    const login = existing(ctx)?.login;
    if (!login) {
      const buttons = options.signIns
        .map((s) => `<a class="button" href="/login/${escapeHtml(s.name)}">${escapeHtml(s.label)}</a>`)
        .join('\n');
      render(
        ctx,
        `${options.intro}
<section><h2>Vous n'êtes pas connecté</h2><p class="en">You are not signed in.</p>
<p>${buttons}</p></section>
<p><a href="${escapeHtml(options.walkthroughUrl)}">Parcours guidé / walkthrough</a></p>`,
      );
      return;
    }
    const buttons = options.signIns
      .map(
        (s) => `<a class="button secondary" href="/login/${escapeHtml(s.name)}">${escapeHtml(s.label)}</a>`,
      )
      .join('\n');
    render(
      ctx,
      `<section id="signed-in"><h2>Connecté</h2><p class="en">Signed in.</p>
${options.summary(login)}
${options.signedInLinks ?? ''}
<form method="post" action="/logout"><button type="submit">Se déconnecter</button> ${buttons}</form>
</section>
<section><h2>Claims du jeton d'identité</h2><p class="en">ID token claims (decoded), received at ${escapeHtml(login.at.toISOString())}</p>
${jsonBlock('id-token-claims', login.idToken)}
<h2>Réponse userinfo</h2><p class="en">Userinfo response</p>
${jsonBlock('userinfo', login.userinfo)}
</section>
<p><a href="${escapeHtml(options.walkthroughUrl)}">Parcours guidé / walkthrough</a></p>`,
    );
  });

  router.get('/login/:name', async (ctx) => {
    const option = options.signIns.find((s) => s.name === ctx.params.name);
    if (!option) return;
    const cfg = await configuration();
    const pending = {
      state: oidc.randomState(),
      nonce: oidc.randomNonce(),
      verifier: oidc.randomPKCECodeVerifier(),
    };
    session(ctx).pending = pending;
    const url = oidc.buildAuthorizationUrl(cfg, {
      redirect_uri: redirectUri,
      scope: options.scope,
      code_challenge: await oidc.calculatePKCECodeChallenge(pending.verifier),
      code_challenge_method: 'S256',
      state: pending.state,
      nonce: pending.nonce,
      ...option.params,
    });
    ctx.status = 303;
    ctx.redirect(url.href);
  });

  router.get('/callback', async (ctx) => {
    const current = existing(ctx);
    const pending = current?.pending;
    if (!current || !pending) {
      render(
        ctx,
        `<section class="error"><p>Aucune connexion en cours (no sign-in in progress).</p></section>${back}`,
        400,
      );
      return;
    }
    // One use: a replayed or second callback finds no pending sign-in.
    current.pending = undefined;
    const cfg = await configuration();
    try {
      const tokens = await oidc.authorizationCodeGrant(cfg, new URL(ctx.originalUrl, options.origin), {
        pkceCodeVerifier: pending.verifier,
        expectedState: pending.state,
        expectedNonce: pending.nonce,
        idTokenExpected: true,
      });
      const idToken = { ...tokens.claims() };
      const userinfo = await oidc.fetchUserInfo(cfg, tokens.access_token, String(idToken.sub));
      const login = { at: new Date(), idToken, userinfo: { ...userinfo } };
      current.login = login;
      current.idTokenHint = tokens.id_token;
      received.unshift(login);
      received.length = Math.min(received.length, RECEIVED_KEPT);
    } catch (err) {
      const refused = err instanceof oidc.AuthorizationResponseError;
      const what = refused
        ? `${err.error}${err.error_description ? ` — ${err.error_description}` : ''}`
        : err instanceof Error
          ? err.message
          : String(err);
      render(
        ctx,
        `<section class="error"><h2>Connexion refusée</h2><p class="en">Sign-in failed.</p>
<p><code id="callback-error">${escapeHtml(what)}</code></p></section>${back}`,
        refused ? 403 : 502,
      );
      return;
    }
    ctx.status = 303;
    ctx.redirect('/');
  });

  router.post('/logout', async (ctx) => {
    const current = existing(ctx);
    const hint = current?.idTokenHint;
    if (current) {
      current.login = undefined;
      current.idTokenHint = undefined;
    }
    ctx.status = 303;
    if (!hint) {
      ctx.redirect('/');
      return;
    }
    const url = oidc.buildEndSessionUrl(await configuration(), {
      id_token_hint: hint,
      post_logout_redirect_uri: `${options.origin}/`,
    });
    ctx.redirect(url.href);
  });

  const app = new Koa({ keys: [randomBytes(32).toString('base64url')] });
  app.silent = true;
  // The provider unreachable (discovery, token endpoint): a page saying so, not a bare 500.
  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      render(
        ctx,
        `<section class="error"><h2>Erreur</h2><p><code>${escapeHtml(message)}</code></p></section>${back}`,
        502,
      );
    }
  });
  app.use(router.routes());
  const server: Server = await listen(app.callback(), options.port, options.title);
  return {
    received,
    close: () => closeServer(server),
  };
}
