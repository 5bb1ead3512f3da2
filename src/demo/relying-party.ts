import { Router } from '@koa/router';
import type { Context } from 'koa';
import * as oidc from 'openid-client';
import type { Config } from '../config/schema.ts';
import { engineErrorPage } from '../http/error-pages.ts';
import type { Views } from '../http/views.ts';
import { negotiateLocale, translator } from '../i18n/messages.ts';
import { webauthnSettings } from '../methods/webauthn/settings.ts';
import type { ClientRegistry } from '../oidc/clients.ts';
import { DEMO_ACCOUNT, DEMO_CLIENT_ID, demoRedirectUri } from './seed.ts';

const COOKIE = 'passerelle_demo_rp';

interface PendingLogin {
  state: string;
  nonce: string;
  verifier: string;
}

/**
 * A built-in relying party for demo mode: a real OpenID Connect client (openid-client) talking to
 * this Passerelle over HTTP, exactly as an application of the establishment would.
 */
export function demoRoutes(config: Config, views: Views, clients: ClientRegistry): Router {
  const router = new Router();
  const securityKeys = webauthnSettings(config) !== undefined;
  let discovered: Promise<oidc.Configuration> | undefined;

  const configuration = () => {
    discovered ??= (async () => {
      const metadata = await clients.findMetadata(DEMO_CLIENT_ID);
      const secret = String(metadata?.client_secret ?? '');
      const options = config.issuer.startsWith('http:')
        ? { execute: [oidc.allowInsecureRequests] }
        : undefined;
      return oidc.discovery(
        new URL(config.issuer),
        DEMO_CLIENT_ID,
        secret,
        oidc.ClientSecretBasic(secret),
        options,
      );
    })().catch((err: unknown) => {
      discovered = undefined;
      throw err;
    });
    return discovered;
  };

  const page = (ctx: Context) => ({
    locale: negotiateLocale(undefined, ctx.get('accept-language'), config.ui.defaultLocale),
    demo: true,
    requestId: ctx.state.requestId as string,
  });

  router.get('/', (ctx) => {
    ctx.type = 'html';
    ctx.body = views.render('home', page(ctx), {
      demoUsername: DEMO_ACCOUNT.username,
      demoPassword: DEMO_ACCOUNT.password,
      securityKeys,
    });
  });

  router.get('/demo/login', async (ctx) => {
    const cfg = await configuration();
    const pending: PendingLogin = {
      state: oidc.randomState(),
      nonce: oidc.randomNonce(),
      verifier: oidc.randomPKCECodeVerifier(),
    };
    ctx.cookies.set(COOKIE, Buffer.from(JSON.stringify(pending)).toString('base64url'), {
      signed: true,
      httpOnly: true,
      sameSite: 'lax',
      maxAge: 10 * 60 * 1000,
      secure: config.issuer.startsWith('https:'),
    });
    const url = oidc.buildAuthorizationUrl(cfg, {
      redirect_uri: demoRedirectUri(config.issuer),
      scope: 'openid profile email rpps',
      code_challenge: await oidc.calculatePKCECodeChallenge(pending.verifier),
      code_challenge_method: 'S256',
      state: pending.state,
      nonce: pending.nonce,
    });
    ctx.status = 303;
    ctx.redirect(url.href);
  });

  router.get('/demo/callback', async (ctx) => {
    const raw = ctx.cookies.get(COOKIE, { signed: true });
    ctx.cookies.set(COOKIE, null);
    if (!raw || ctx.query.error) {
      ctx.status = 400;
      ctx.type = 'html';
      // The error the application received, in the user's words (its code and description are the engine's).
      const p = page(ctx);
      const t = translator(p.locale);
      const text = engineErrorPage(String(ctx.query.error ?? ''), !raw && !ctx.query.error);
      ctx.body = views.render('error', p, { message: t(text.message), advice: t(text.advice) });
      return;
    }
    const pending = JSON.parse(Buffer.from(raw, 'base64url').toString()) as PendingLogin;
    const cfg = await configuration();
    const tokens = await oidc.authorizationCodeGrant(cfg, new URL(ctx.originalUrl, config.issuer), {
      pkceCodeVerifier: pending.verifier,
      expectedState: pending.state,
      expectedNonce: pending.nonce,
      idTokenExpected: true,
    });
    const claims = tokens.claims();
    const userinfo = claims ? await oidc.fetchUserInfo(cfg, tokens.access_token, claims.sub) : {};
    const logoutUrl = oidc.buildEndSessionUrl(cfg, {
      id_token_hint: tokens.id_token ?? '',
      post_logout_redirect_uri: `${config.issuer}/`,
    });
    ctx.type = 'html';
    ctx.set('cache-control', 'no-store');
    ctx.body = views.render('demo-result', page(ctx), {
      claims: JSON.stringify(claims, null, 2),
      userinfo: JSON.stringify(userinfo, null, 2),
      logoutUrl: logoutUrl.href,
      securityKeys,
    });
  });

  return router;
}
