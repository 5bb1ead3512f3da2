import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Frame, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_ACCOUNT, DEMO_CLIENT_ID } from '../src/demo/seed.ts';
import { chromiumAvailable, launchChromium, missingChromiumSuite } from './helpers/chromium.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

/**
 * Real-browser test of the demo: Debian's Chromium driven by playwright-core (which never downloads a
 * browser). It checks what the protocol tests cannot: the pages render with their stylesheet under the
 * Content-Security-Policy, the forms work with clicks and labels, cookies survive the redirects.
 */

const SCREENSHOTS = join(import.meta.dirname, '..', 'test-results', 'screenshots');

interface Watched {
  context: BrowserContext;
  page: Page;
  /** Console errors and warnings, and uncaught page errors, in order. */
  problems: string[];
  /** The Origin header of each form submission (POST), as Chromium sent it. */
  postOrigins: Promise<string | null>[];
}

/** Chromium logs every response with an error status; these ones are expected. */
const EXPECTED_STATUS_ERRORS = [
  // A rejected password is answered 401 with the form shown again.
  /status of 401 .*\/method\/password\)$/,
];

/** A fresh browser profile (no cookies) in French, recording what the console reports. */
async function openPage(browser: Browser): Promise<Watched> {
  const context = await browser.newContext({ locale: 'fr-FR', viewport: { width: 1024, height: 768 } });
  // What a page waits for (an element, a navigation), with a deadline a loaded machine meets.
  context.setDefaultTimeout(60_000);
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (message) => {
    if (message.type() !== 'error' && message.type() !== 'warning') return;
    const line = `${message.type()}: ${message.text()} (${message.location().url})`;
    if (!EXPECTED_STATUS_ERRORS.some((expected) => expected.test(line))) problems.push(line);
  });
  page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
  const postOrigins: Promise<string | null>[] = [];
  page.on('request', (request) => {
    if (request.method() === 'POST') postOrigins.push(request.headerValue('origin'));
  });
  return { context, page, problems, postOrigins };
}

/** The stylesheet was served and applied (a Content-Security-Policy mistake would leave the page bare). */
async function expectStyled(page: Page): Promise<void> {
  const header = await page
    .locator('header.top')
    .evaluate((element) => getComputedStyle(element).backgroundColor);
  expect(header).toBe('rgb(0, 0, 145)');
}

function expectNoCspViolation(problems: readonly string[]): void {
  expect(problems.filter((p) => /content security policy|content-security-policy/i.test(p))).toEqual([]);
}

/**
 * Passerelle's forms reject a foreign Origin, and "null" too. Browsers send "null" when the page's
 * referrer policy is no-referrer, so the pages and headers keep a policy (same-origin) under which a real
 * browser sends the true origin on the form submissions.
 */
async function expectFormsSentFrom(issuer: string, postOrigins: readonly Promise<string | null>[]) {
  const origins = await Promise.all(postOrigins);
  expect(origins.length).toBeGreaterThan(0);
  expect(new Set(origins)).toEqual(new Set([new URL(issuer).origin]));
}

async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** From the demo home page to Passerelle's password page for `username`. */
async function startLogin(page: Page, issuer: string, username: string, shots?: string): Promise<void> {
  await page.goto(`${issuer}/`);
  await page.getByRole('link', { name: 'Essayer une connexion' }).click();
  await page.waitForURL(/\/interaction\/[^/]+$/);
  expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Connexion');
  expect(await page.title()).toBe('Connexion · Passerelle');
  await expectStyled(page);
  if (shots) await screenshot(page, `${shots}-1-login`);
  await page.getByLabel('Identifiant').fill(username);
  await page.getByRole('button', { name: 'Continuer' }).click();
  await page.locator('#password, [role="alert"]').first().waitFor();
  const refused = page.getByRole('alert');
  if (await refused.count()) throw new Error(`identifier form refused: ${await refused.textContent()}`);
  expect(await page.locator('main').textContent()).toContain(
    `Saisissez le mot de passe du compte ${username}.`,
  );
}

if (!chromiumAvailable()) {
  missingChromiumSuite('demo sign-in in a real browser');
} else {
  for (const kind of databasesUnderTest()) {
    describe(`demo sign-in in Chromium [${kind}]`, () => {
      let t: TestServer;
      let browser: Browser;

      beforeAll(async () => {
        mkdirSync(SCREENSHOTS, { recursive: true });
        t = await startTestServer(kind, { config: { demo: true } });
        browser = await launchChromium();
      });
      afterAll(async () => {
        await browser?.close();
        await t?.close();
      });

      it('home → identifier → password → consent → ID token and userinfo → single sign-on → logout', async () => {
        const { context, page, problems, postOrigins } = await openPage(browser);
        try {
          await page.goto(`${t.issuer}/`);
          expect(await page.getByRole('note').textContent()).toContain('Mode démonstration');
          expect(await page.locator('main').textContent()).toContain(
            `identifiant « ${DEMO_ACCOUNT.username} », mot de passe « ${DEMO_ACCOUNT.password} »`,
          );
          await expectStyled(page);

          await startLogin(page, t.issuer, DEMO_ACCOUNT.username, kind);
          await expectStyled(page);
          await screenshot(page, `${kind}-2-password`);
          await page.getByLabel('Mot de passe').fill(DEMO_ACCOUNT.password);
          await page.getByRole('button', { name: 'Se connecter' }).click();

          // The demo client is not first-party: Passerelle asks for consent once.
          await page.getByRole('heading', { name: 'Autorisation' }).waitFor();
          expect(await page.locator('main').textContent()).toContain('Application de démonstration');
          await screenshot(page, `${kind}-3-consent`);
          await page.getByRole('button', { name: 'Autoriser' }).click();

          await page.waitForURL(`${t.issuer}/demo/callback?**`);
          await page.getByRole('heading', { name: 'Connexion réussie' }).waitFor();
          await expectStyled(page);
          await screenshot(page, `${kind}-4-result`);
          const claims = JSON.parse((await page.locator('#id-token-claims').textContent()) ?? '');
          expect(claims).toMatchObject({
            iss: t.issuer,
            aud: DEMO_CLIENT_ID,
            amr: ['pwd'],
            acr: 'urn:passerelle:loa:low',
          });
          expect(claims.sub).toEqual(expect.any(String));
          expect(Math.abs(claims.auth_time - Date.now() / 1000)).toBeLessThan(120);
          const userinfo = JSON.parse((await page.locator('#userinfo').textContent()) ?? '');
          expect(userinfo).toMatchObject({
            sub: claims.sub,
            preferred_username: DEMO_ACCOUNT.username,
            name: DEMO_ACCOUNT.displayName,
            email: DEMO_ACCOUNT.email,
          });

          // Single sign-on: the session cookie brings the browser straight back, without any form.
          // The page already is a callback page, and waitForURL returns at once when the current URL
          // matches: wait for a new callback (a new code) instead of relying on click() waiting for the
          // navigation it started (a deprecated default), and check a new ID token was read.
          const firstCallback = page.url();
          const visited: string[] = [];
          const onNavigation = (frame: Frame) => {
            if (frame === page.mainFrame()) visited.push(new URL(frame.url()).pathname);
          };
          page.on('framenavigated', onNavigation);
          await page.getByRole('link', { name: 'Recommencer' }).click();
          await page.waitForURL(
            (url) =>
              url.pathname === '/demo/callback' && url.href !== firstCallback && url.searchParams.has('code'),
          );
          page.off('framenavigated', onNavigation);
          expect(visited.filter((path) => path.startsWith('/interaction/'))).toEqual([]);
          const again = JSON.parse((await page.locator('#id-token-claims').textContent()) ?? '');
          // A new ID token (its own nonce) for the same session: same subject, same authentication time.
          expect(again.nonce).toEqual(expect.any(String));
          expect(again.nonce).not.toBe(claims.nonce);
          expect(again.sub).toBe(claims.sub);
          expect(again.auth_time).toBe(claims.auth_time);

          // RP-initiated logout, confirmed on Passerelle's page, back to the post-logout URI.
          await page.getByRole('link', { name: 'Se déconnecter' }).click();
          await page.getByRole('heading', { name: 'Déconnexion' }).waitFor();
          await expectStyled(page);
          await screenshot(page, `${kind}-5-logout`);
          await page.getByRole('button', { name: 'Se déconnecter' }).click();
          await page.waitForURL(`${t.issuer}/`);
          expect(await page.getByRole('note').textContent()).toContain('Mode démonstration');
          await page.getByRole('link', { name: 'Essayer une connexion' }).waitFor();

          // The session is gone: a new sign-in asks for the identifier again.
          await page.getByRole('link', { name: 'Essayer une connexion' }).click();
          await page.getByLabel('Identifiant').waitFor();

          expectNoCspViolation(problems);
          expect(problems).toEqual([]);
          await expectFormsSentFrom(t.issuer, postOrigins);
        } finally {
          await context.close();
        }
      });

      it('a wrong password shows the French error message and keeps the user on the password page', async () => {
        const { context, page, problems, postOrigins } = await openPage(browser);
        try {
          await startLogin(page, t.issuer, DEMO_ACCOUNT.username);
          await page.getByLabel('Mot de passe').fill('pas-le-bon-mot-de-passe');
          const [response] = await Promise.all([
            page.waitForResponse(
              (r) => r.request().method() === 'POST' && r.url().includes('/method/password'),
            ),
            page.getByRole('button', { name: 'Se connecter' }).click(),
          ]);
          expect(response.status()).toBe(401);
          await page.getByRole('alert').waitFor();
          expect(await page.getByRole('alert').textContent()).toBe('Identifiant ou mot de passe incorrect.');
          const password = page.getByLabel('Mot de passe');
          expect(await password.inputValue()).toBe('');
          expect(await password.getAttribute('aria-describedby')).toBe('form-error');
          await expectStyled(page);
          await screenshot(page, `${kind}-6-wrong-password`);

          expectNoCspViolation(problems);
          expect(problems).toEqual([]);
          await expectFormsSentFrom(t.issuer, postOrigins);
        } finally {
          await context.close();
        }
      });
    });
  }
}
