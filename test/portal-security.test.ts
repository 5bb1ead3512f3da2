import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeJwt } from 'jose';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recentForAccount } from '../src/audit/recent.ts';
import { LABELS } from '../src/i18n/labels.ts';
import { messages } from '../src/i18n/messages.ts';
import { timeFormat } from '../src/i18n/time.ts';
import { PSC_CALLBACK_PATH } from '../src/methods/psc/index.ts';
import { CredentialStore } from '../src/methods/webauthn/store.ts';
import { BrowserAgent, formAction, formField } from './helpers/browser-agent.ts';
import { authUrl, createUser, registerWebClient, S256_CHALLENGE, TEST_PASSWORD } from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { openHttpServer } from './helpers/net.ts';
import { screenshot, seriousAccessibilityViolations } from './helpers/page-checks.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import {
  chromiumAvailable,
  confirmAct,
  enrollVirtualKey,
  launchChromium,
  missingChromiumSuite,
  newFrenchContext,
  signInWithPassword,
} from './helpers/webauthn-browser.ts';
import { type PscSimulator, REALM_PATH, startPscSimulator } from './simulators/psc/server.ts';

const PSC_CLIENT = { clientId: 'passerelle', clientSecret: 'passerelle-at-psc-secret' };

/**
 * The portal's "Ma sécurité" page in Chromium: keys (revoke, not another user's), national identity,
 * recent sign-ins, live sessions, the session's end, "Se déconnecter partout" and the nav's sign-out,
 * with the back-channel logout tokens an application receives.
 */

const fr = messages.fr;

/** An application: its redirect URI answers 200; its back-channel logout URI collects the tokens. */
async function startApplication() {
  const tokens: string[] = [];
  const server: Server = createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/logout') {
      let body = '';
      req.on('data', (chunk: Buffer) => {
        body += chunk.toString();
      });
      req.on('end', () => {
        tokens.push(new URLSearchParams(body).get('logout_token') ?? '');
        res.end();
      });
      return;
    }
    res.setHeader('content-type', 'text/html; charset=utf-8');
    res.end('<!doctype html><html lang="fr"><title>Dossier</title><h1>Dossier patient</h1></html>');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { base, tokens, close: () => new Promise((done) => server.close(done)) };
}

/**
 * "Lier ma e-CPS" against the PSC simulator (HTTP, as test/psc-login.test.ts): a signed-in user with no
 * verified link signs in again through PSC, whose proof links their account (source psc-login).
 */
for (const kind of databasesUnderTest()) {
  describe(`portal security: sign-in records, linking the e-CPS through PSC [${kind}]`, () => {
    let t: TestServer;
    let psc: PscSimulator;
    beforeAll(async () => {
      const pscServer = await openHttpServer();
      t = await startTestServer(kind, {
        config: {
          pscLogin: {
            issuer: `${pscServer.origin}${REALM_PATH}`,
            ...PSC_CLIENT,
            allowInsecureHttp: true,
          },
          http: { outboundAllowPrivateAddresses: true },
        },
      });
      psc = await startPscSimulator({
        server: pscServer.server,
        clients: [{ ...PSC_CLIENT, redirectUris: [`${t.issuer}${PSC_CALLBACK_PATH}`] }],
      });
    });
    afterAll(async () => {
      await psc?.close();
      await t?.close();
    });

    it('recentForAccount: the account’s last sign-in records only, newest first, at most the limit', async () => {
      const { audit, database } = t.passerelle.services;
      const mine = await createUser(t, 'recent.one');
      const theirs = await createUser(t, 'recent.two');
      for (let i = 0; i < 12; i++) {
        await audit.record({ type: 'auth.attempt', outcome: 'failure', accountId: mine.id, reason: `r${i}` });
        await audit.record({
          type: 'session.started',
          outcome: 'success',
          accountId: mine.id,
          reason: `s${i}`,
        });
        await audit.record({ type: 'webauthn.revoked', outcome: 'success', accountId: mine.id });
        await audit.record({ type: 'auth.attempt', outcome: 'success', accountId: theirs.id });
      }
      const recent = await recentForAccount(database.db, mine.id, 20);
      expect(recent.map((r) => r.reason)).toEqual(
        Array.from({ length: 10 }, (_, k) => [`s${11 - k}`, `r${11 - k}`]).flat(),
      );
    });

    it('links the account to the national identity PSC proves, then offers no more link', async () => {
      const user = await createUser(t, 'lien.ecps');
      const idNat = psc.professionals[2]?.idNatPs ?? '';
      const agent = new BrowserAgent();
      const pscOrigin = new URL(psc.issuer).origin;
      const post = async (url: string, fields: Record<string, string>) =>
        (await agent.postForm(new URL(url, t.issuer), fields)).headers.get('location') ?? '';

      // Signed in to the portal with a password.
      const login = await agent.follow(`${t.issuer}/portal/security`, t.issuer);
      const uid = /\/interaction\/([^/?"]+)/.exec(login.url.pathname)?.[1] ?? '';
      const identified = await post(`/interaction/${uid}/identify`, {
        csrf: formField(agent.lastHtml, 'csrf') ?? '',
        username: user.username,
      });
      await agent.follow(new URL(identified, t.issuer), t.issuer);
      const signedIn = await post(formAction(agent.lastHtml, '/method/password'), {
        csrf: formField(agent.lastHtml, 'csrf') ?? '',
        password: TEST_PASSWORD,
      });
      const page = await agent.follow(new URL(signedIn, t.issuer), t.issuer);
      expect(page.url.pathname).toBe('/portal/security');
      expect(agent.lastHtml).toContain(fr['portal.security.identity.none']);
      expect(agent.lastHtml).toContain(fr['portal.security.identity.link']);

      // A forged request (no CSRF token) starts nothing.
      const forged = await agent.postForm(new URL('/portal/security/link-psc', t.issuer), { csrf: 'x' });
      expect(forged.status).toBe(403);

      // "Lier ma e-CPS": a login of this session that offers PSC only, for the account already proven.
      const start = await post('/portal/security/link-psc', {
        csrf: formField(agent.lastHtml, 'csrf') ?? '',
      });
      expect(new URL(start, t.issuer).searchParams.get('prompt')).toBe('login');
      await agent.follow(new URL(start, t.issuer), t.issuer);
      expect(agent.lastHtml).not.toContain('/identify"');
      const href =
        /<a class="button" href="([^"]+)"/.exec(agent.lastHtml)?.[1]?.replaceAll('&amp;', '&') ?? '';
      expect(href.startsWith(`${psc.issuer}/protocol/openid-connect/auth`)).toBe(true);
      await agent.follow(new URL(href), pscOrigin);
      const proved = await agent.postForm(new URL(formAction(agent.lastHtml, '/cps'), pscOrigin), {
        idNatPs: idNat,
        authMode: 'MOBILE',
      });
      const back = await agent.follow(new URL(proved.headers.get('location') ?? '', pscOrigin), pscOrigin);
      const done = await agent.follow(back.url, t.issuer);
      expect(done.url.pathname + done.url.search).toBe('/portal/security?done=linked');
      expect(agent.lastHtml).toContain(fr['portal.security.done.linked']);
      expect(agent.lastHtml).not.toContain(fr['portal.security.identity.link']);
      expect(await t.passerelle.services.identities.findByAccount(user.id)).toMatchObject({
        idNat,
        source: 'psc-login',
        status: 'verified',
      });
      // The session keeps what it had proven, with PSC's proof added.
      const [session] = await t.passerelle.services.sessions.listForAccount(user.id);
      expect(session?.methods.map((m) => m.method)).toEqual(['password', 'psc']);
      // The link request is used once: a plain new login of the session is a login again.
      const again = await agent.follow(`${t.issuer}/auth?${new URL(start, t.issuer).searchParams}`, t.issuer);
      expect(again.url.pathname.startsWith('/interaction/')).toBe(true);
      expect(agent.lastHtml).toContain('/identify"');
    });
  });
}

if (!chromiumAvailable()) {
  missingChromiumSuite('the portal security page in a real browser');
} else {
  for (const kind of databasesUnderTest()) {
    describe(`portal security page in Chromium [${kind}]`, () => {
      let t: TestServer;
      let app: Awaited<ReturnType<typeof startApplication>>;
      let browser: Browser;
      let context: BrowserContext;
      let page: Page;
      let user: { id: string; username: string };
      let other: { id: string; username: string };

      const db = () => t.passerelle.services.database.db;
      const events = (type: string, accountId: string) =>
        db()
          .selectFrom('audit_event')
          .selectAll()
          .where('type', '=', type)
          .where('account_id', '=', accountId)
          .orderBy('seq')
          .execute();
      const liveSessions = async (accountId: string) =>
        (await t.passerelle.services.sessions.listForAccount(accountId)).length;
      /** Opens the application in this browser: an authorization of its client in the SSO session. */
      const openApplication = async (p: Page) => {
        await p.goto(
          authUrl(t, {
            client_id: 'dossier',
            redirect_uri: `${app.base}/callback`,
            response_type: 'code',
            scope: 'openid',
            state: 'st',
            nonce: 'n',
            code_challenge: S256_CHALLENGE,
            code_challenge_method: 'S256',
          }).href,
        );
        await p.waitForURL((u) => u.href.startsWith(`${app.base}/callback`));
        expect(new URL(p.url()).searchParams.get('code')).toBeTruthy();
      };

      beforeAll(async () => {
        app = await startApplication();
        t = await startTestServer(kind, {
          issuerHost: 'localhost',
          config: (issuer) => ({ webauthn: { rpId: 'localhost', origins: [issuer] } }),
        });
        const created = await createUser(t, 'secu.lea');
        user = { id: created.id, username: created.username };
        const bob = await createUser(t, 'secu.bob');
        other = { id: bob.id, username: bob.username };
        await new CredentialStore(db()).insert({
          id: 'Ym9iLWtleQ',
          accountId: other.id,
          name: 'Clé de Bob',
          publicKey: new Uint8Array(32),
          counter: 0,
          transports: ['usb'],
          aaguid: '00000000-0000-0000-0000-000000000000',
          deviceType: 'singleDevice',
          backedUp: false,
        });
        await t.passerelle.services.identities.set(user.id, '810001234567', 'manual', 'verified');
        await registerWebClient(t, 'dossier', {
          client_name: 'Dossier patient',
          first_party: true,
          redirect_uris: [`${app.base}/callback`],
          backchannel_logout_uri: `${app.base}/logout`,
          backchannel_logout_session_required: true,
        });
        browser = await launchChromium();
        context = await newFrenchContext(browser, { bypassCSP: true });
        page = await context.newPage();
      });
      afterAll(async () => {
        await context?.close();
        await browser?.close();
        await t?.close();
        await app?.close();
      });

      it('shows the keys, the national identity, the recent sign-ins, the sessions and when the session ends', async () => {
        await page.goto(`${t.issuer}/portal`);
        await signInWithPassword(page, user.username);
        await page.getByRole('heading', { name: fr['portal.title'] }).waitFor();
        await page.getByRole('link', { name: fr['portal.nav.security'] }).click();
        await page.getByRole('heading', { name: fr['portal.security.title'], level: 1 }).waitFor();
        expect(new URL(page.url()).pathname).toBe('/portal/security');

        // Idle end = last activity + 30 min (default), absolute end = the session's, in Paris time.
        const [live] = await t.passerelle.services.sessions.listForAccount(user.id);
        const time = timeFormat('fr', 'Europe/Paris');
        expect(await page.locator('.session-end').textContent()).toBe(
          `Votre session se termine ${time.when(new Date((live?.lastActiveAt.getTime() ?? 0) + 1800_000))} sans activité, et au plus tard ${time.when(live?.expiresAt ?? new Date(0))}.`,
        );
        expect(await page.getByText(fr['portal.security.keys.none']).count()).toBe(1);
        const identity = await page.locator('dl.identity dd').allTextContents();
        expect(identity.slice(0, 4)).toEqual([
          '810001234567',
          LABELS.linkStatus.verified.fr,
          LABELS.linkSource.manual.fr,
          fr['identity.registry.rpps'],
        ]);
        const signIns = await page
          .locator('table.signins tbody tr')
          .evaluateAll((rows) => rows.map((r) => [...r.children].slice(1).map((c) => c.textContent)));
        expect(signIns).toEqual([
          ['session ouverte', fr['method.password'], 'réussie', '127.0.0.1', 'Portail Passerelle'],
          ['tentative', fr['method.password'], 'réussie', '127.0.0.1', 'Portail Passerelle'],
        ]);
        const sessions = page.locator('table.sessions tbody tr');
        expect(await sessions.count()).toBe(1);
        expect(await sessions.first().textContent()).toContain(fr['portal.security.sessions.this_device']);
        expect(await sessions.first().textContent()).toContain(fr['method.password']);
        expect(await seriousAccessibilityViolations(page)).toEqual([]);
        await screenshot(page, `portal-security-${kind}`);
      });

      it('revokes the user’s own key, and not another user’s (forged id: 404, nothing changed)', async () => {
        await enrollVirtualKey(page, t, user.id, 'Clé de Léa');
        await page.goto(`${t.issuer}/portal/security`);
        const row = page.locator('table.keys tbody tr');
        expect(await row.locator('th').allTextContents()).toEqual(['Clé de Léa']);
        const ownId = (await row.getAttribute('data-key-id')) ?? '';

        // The same form, its action pointed at Bob's key: refused, Bob's key untouched.
        await page
          .locator('table.keys form')
          .evaluate((form: HTMLFormElement) =>
            form.setAttribute('action', '/portal/security/keys/Ym9iLWtleQ/revoke'),
          );
        const forged = page.waitForResponse((r) => r.url().endsWith('/keys/Ym9iLWtleQ/revoke'));
        await page.getByRole('button', { name: 'Révoquer la clé « Clé de Léa »' }).click();
        expect((await forged).status()).toBe(404);
        expect((await new CredentialStore(db()).find('Ym9iLWtleQ'))?.revokedAt).toBeNull();
        expect(await events('webauthn.revoked', other.id)).toEqual([]);
        expect(await events('webauthn.revoked', user.id)).toEqual([]);

        await page.goto(`${t.issuer}/portal/security`);
        await page.getByRole('button', { name: 'Révoquer la clé « Clé de Léa »' }).click();
        await confirmAct(page);
        await page.getByRole('status').filter({ hasText: fr['portal.security.done.revoked'] }).waitFor();
        expect(await page.locator('table.keys').count()).toBe(0);
        expect((await new CredentialStore(db()).find(ownId))?.revokedAt).toBeInstanceOf(Date);
        expect(await events('webauthn.revoked', user.id)).toMatchObject([
          { outcome: 'success', method: 'webauthn', detail: { credentialId: ownId, by: 'user' } },
        ]);
        expect(await seriousAccessibilityViolations(page)).toEqual([]);
        await screenshot(page, `portal-security-revoked-${kind}`);
      });

      it('"Se déconnecter partout" ends every session of the account and tells the applications', async () => {
        await openApplication(page);
        // A second device of the same user.
        const second = await newFrenchContext(browser, { bypassCSP: true });
        const other = await second.newPage();
        await other.goto(`${t.issuer}/portal`);
        await signInWithPassword(other, user.username);
        await other.getByRole('heading', { name: fr['portal.title'] }).waitFor();
        await page.goto(`${t.issuer}/portal/security`);
        expect(await page.locator('table.sessions tbody tr').count()).toBe(2);
        expect(await page.locator('table.sessions tbody tr.current').count()).toBe(1);
        const before = app.tokens.length;

        await page.getByRole('button', { name: fr['portal.security.sessions.end_all'] }).click();
        await confirmAct(page);
        await page.getByRole('heading', { name: fr['portal.security.ended.title'] }).waitFor();
        expect(await page.getByRole('status').textContent()).toBe('Toutes vos sessions ont été fermées (2).');
        expect(await liveSessions(user.id)).toBe(0);
        const ended = await events('session.ended', user.id);
        expect(ended.filter((e) => e.reason === 'user_everywhere')).toHaveLength(2);
        const logouts = (await events('logout.backchannel', user.id)).map((e) => [e.client_id, e.outcome]);
        expect(logouts).toEqual([['dossier', 'success']]);
        expect(app.tokens.length).toBe(before + 1);
        const claims = decodeJwt(app.tokens.at(-1) ?? '');
        expect(claims.aud).toBe('dossier');
        expect(claims.events).toHaveProperty(['http://schemas.openid.net/event/backchannel-logout']);
        expect(await seriousAccessibilityViolations(page)).toEqual([]);
        await screenshot(page, `portal-security-ended-${kind}`);

        // Both browsers are signed out: the portal asks to sign in again.
        for (const p of [page, other]) {
          await p.goto(`${t.issuer}/portal/security`);
          await p.getByLabel('Identifiant').waitFor();
        }
        await second.close();
      });

      it('the nav\'s "Se déconnecter" ends the session and the application receives a logout token', async () => {
        await signInWithPassword(page, user.username);
        await page.getByRole('heading', { name: fr['portal.security.title'], level: 1 }).waitFor();
        await openApplication(page);
        const before = app.tokens.length;
        await page.goto(`${t.issuer}/portal`);
        await page.getByRole('link', { name: fr['portal.signout'] }).click();
        await page.getByRole('heading', { name: fr['logout.title'] }).waitFor();
        await page.getByRole('button', { name: fr['logout.confirm'] }).click();
        await page.waitForURL((u) => u.pathname === '/portal' || u.pathname.startsWith('/interaction/'));
        await expect.poll(() => app.tokens.length).toBe(before + 1);
        expect(decodeJwt(app.tokens.at(-1) ?? '').aud).toBe('dossier');
        const ended = await events('session.ended', user.id);
        expect(ended.at(-1)?.reason).toBe('rp_initiated_logout');
        await page.goto(`${t.issuer}/portal/security`);
        await page.getByLabel('Identifiant').waitFor();
      });
    });
  }
}
