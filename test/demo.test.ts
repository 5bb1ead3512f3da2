import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PORT_OFFSETS } from '../demo/config.ts';
import { demoProfessional } from '../src/demo/annuaire.ts';
import { DEMO_ACCOUNT } from '../src/demo/seed.ts';
import { messages } from '../src/i18n/messages.ts';
import { portOpen } from './helpers/net.ts';
import {
  chromiumAvailable,
  enrollKey,
  launchChromium,
  missingChromiumSuite,
  newFrenchContext,
  VirtualKey,
} from './helpers/webauthn-browser.ts';

/**
 * `npm run demo` end to end: the demo runs as a child process (`node demo/main.ts --base-port <free>`), as
 * a newcomer would start it, and is driven in Chromium with a virtual FIDO2 authenticator (user
 * verification). PGlite only: the demo's own embedded store, no PostgreSQL involved.
 */

const fr = messages.fr;
const NODE = process.execPath;
const DEMO_CWD = new URL('..', import.meta.url).pathname;

/** Whether `port` can be listened on at localhost now. */
function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, 'localhost', () => probe.close(() => resolve(true)));
  });
}

/** A base port whose five demo ports are free (random, away from the ephemeral range). */
async function freeBasePort(): Promise<number> {
  for (;;) {
    const base = 20_000 + Math.floor(Math.random() * 10_000);
    const ports = Object.values(PORT_OFFSETS).map((offset) => base + offset);
    if ((await Promise.all(ports.map(isFree))).every(Boolean)) return base;
  }
}

interface RunningDemo {
  child: ChildProcess;
  stdout: () => string;
  exit: Promise<number | null>;
  urls: { walkthrough: string; dpi: string; drimbox: string; passerelle: string; psc: string };
}

/** Starts the demo and waits for the URLs it prints. */
async function startDemoProcess(basePort: number): Promise<RunningDemo> {
  const child = spawn(NODE, ['demo/main.ts', '--base-port', String(basePort)], {
    cwd: DEMO_CWD,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    err += chunk.toString();
  });
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setInterval(() => {
      if (out.includes('Ctrl+C')) {
        clearInterval(timer);
        resolve();
      }
    }, 100);
    void exit.then((code) => {
      clearInterval(timer);
      reject(new Error(`demo exited with ${code} before it was ready:\n${out}\n${err}`));
    });
  });
  const url = (label: string) => {
    const found = new RegExp(`${label}[^\\n]*?(http://\\S+)`).exec(out)?.[1];
    if (!found) throw new Error(`no ${label} URL in:\n${out}`);
    return found.replace(/\/$/, '');
  };
  return {
    child,
    stdout: () => out,
    exit,
    urls: {
      walkthrough: url('walkthrough'),
      dpi: url('DPI'),
      drimbox: url('DRIMBOX'),
      passerelle: url('Passerelle \\('),
      psc: url('Pro Santé Connect'),
    },
  };
}

/** The JSON shown in a <pre> of a demo page (by id, or the first match of a selector). */
async function shownJson(page: Page, idOrSelector: string): Promise<Record<string, unknown>> {
  const selector = /^[\w-]+$/.test(idOrSelector) ? `#${idOrSelector}` : idOrSelector;
  return JSON.parse((await page.locator(selector).first().textContent()) ?? '{}');
}

if (!chromiumAvailable()) {
  missingChromiumSuite('npm run demo in a real browser');
} else {
  describe('npm run demo: DPI with a FIDO2 key, DRIMBOX through PSC delegating to Passerelle, the walkthrough', () => {
    let basePort: number;
    let demo: RunningDemo;
    let browser: Browser;
    let context: BrowserContext;
    let page: Page;
    let key: VirtualKey;
    /** Every URL the tab requested as a page, redirects included. */
    const visited: string[] = [];
    let idNatPs: string;
    let accountId: string;

    beforeAll(async () => {
      idNatPs = (await demoProfessional(new Date())).idNatPs;
      basePort = await freeBasePort();
      demo = await startDemoProcess(basePort);
      browser = await launchChromium();
      context = await newFrenchContext(browser);
      page = await context.newPage();
      // Navigation requests, redirects included (each hop is a request of its own).
      page.on('request', (request) => {
        if (request.isNavigationRequest() && request.frame() === page.mainFrame())
          visited.push(request.url());
      });
      key = await VirtualKey.attach(page);
    });
    afterAll(async () => {
      await context?.close();
      await browser?.close();
      if (demo && demo.child.exitCode === null) demo.child.kill('SIGKILL');
    });

    /** The Passerelle pages (login prompts) the tab went through since `from`. */
    const passerellePromptsSince = (from: number) =>
      visited.slice(from).filter((url) => url.startsWith(`${demo.urls.passerelle}/interaction/`));

    it('prints every URL on the ports derived from --base-port', () => {
      expect(demo.urls).toEqual({
        walkthrough: `http://localhost:${basePort + 100}`,
        dpi: `http://localhost:${basePort + 101}`,
        drimbox: `http://localhost:${basePort + 102}`,
        passerelle: `http://localhost:${basePort}`,
        psc: `http://localhost:${basePort + 200}/auth/realms/esante-wallet`,
      });
    });

    it('a second demo on the same ports stops at once, naming the port in use', async () => {
      const second = spawn(NODE, ['demo/main.ts', '--base-port', String(basePort)], {
        cwd: DEMO_CWD,
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      second.stderr?.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      const code = await new Promise<number | null>((resolve) => second.once('exit', resolve));
      expect(code).toBe(1);
      expect(stderr).toContain(`port ${basePort} (passerelle) is in use`);
    });

    it('DPI: the demo password, a key enrolled (self-enrolment), then a sign-in with the key', async () => {
      await page.goto(demo.urls.dpi);
      await page.getByRole('link', { name: 'Se connecter', exact: true }).click();
      await page.getByLabel(fr['login.username']).fill(DEMO_ACCOUNT.username);
      await page.getByRole('button', { name: fr['login.continue'] }).click();
      await page.locator('input[type="password"]').fill(DEMO_ACCOUNT.password);
      await page.getByRole('button', { name: fr['login.signin'] }).click();
      await page.locator('#signed-in').waitFor();
      const byPassword = await shownJson(page, 'id-token-claims');
      expect(byPassword).toMatchObject({ acr: 'urn:passerelle:loa:low', amr: ['pwd'] });
      accountId = String(byPassword.sub);
      expect(await shownJson(page, 'userinfo')).toMatchObject({
        preferred_username: DEMO_ACCOUNT.username,
        idnat_ps: idNatPs,
      });

      await page.getByRole('link', { name: 'Enregistrer une clé FIDO2' }).click();
      expect(page.url()).toBe(`${demo.urls.passerelle}/account/security-keys`);
      await enrollKey(page, demo.urls.passerelle, 'Clé de démonstration');
      expect(new URL(page.url()).search).toBe('?done=enrolled');
      expect(await key.credentials()).toHaveLength(1);

      await page.goto(demo.urls.dpi);
      await page.getByRole('link', { name: 'Se connecter avec une clé FIDO2' }).click();
      // The password session is stepped up: only the key is asked for.
      await page.getByRole('button', { name: fr['webauthn.start'] }).click();
      await page.locator('#signed-in').waitFor();
      expect(await shownJson(page, 'id-token-claims')).toMatchObject({
        sub: accountId,
        acr: 'urn:passerelle:loa:high',
        // The key, on top of the password of the same session.
        amr: ['hwk', 'mfa', 'pin', 'pwd'],
      });
    });

    it('DRIMBOX: PSC delegates to Passerelle, whose session answers without a prompt; pairing; the national identity', async () => {
      await page.goto(demo.urls.drimbox);
      const from = visited.length;
      await page.getByRole('link', { name: 'Se connecter avec Pro Santé Connect' }).click();
      await page.getByRole('heading', { name: 'Appairage de votre compte' }).waitFor();
      expect(passerellePromptsSince(from)).toEqual([]);
      const authorize = visited.slice(from).find((url) => url.startsWith(`${demo.urls.passerelle}/auth?`));
      expect(new URL(authorize ?? 'http://none').searchParams.get('client_id')).toBe('pro-sante-connect');
      const atPsc = new URL(visited.slice(from).find((url) => url.startsWith(`${demo.urls.psc}/`)) ?? '');
      expect(atPsc.searchParams.get('kc_idp_hint')).toBe('chu-demo');
      expect(atPsc.searchParams.get('acr_values')).toBe('eidas1');
      expect(await page.locator('main').textContent()).toContain(accountId);

      await page.locator('#idNatPs').selectOption(idNatPs);
      await page.getByRole('button', { name: 'Valider' }).click();
      await page.locator('#signed-in').waitFor();
      const shown = await page.locator('#signed-in dl').textContent();
      expect(shown).toContain(idNatPs);
      expect(shown).toContain(DEMO_ACCOUNT.givenName);
      expect(shown).toContain(DEMO_ACCOUNT.familyName);
      expect(shown).toContain('60 — Infirmier');
      expect(await shownJson(page, 'id-token-claims')).toMatchObject({
        SubjectNameID: idNatPs,
        acr: 'eidas1',
        authMode: 'DELEGATED',
      });
    });

    it('DRIMBOX sign-out ends the PSC session and, through PSC, Passerelle\'s; the next sign-in: the key, then only "Confirmer"', async () => {
      const from = visited.length;
      await page.getByRole('button', { name: 'Se déconnecter' }).click();
      // PSC sends the browser to Passerelle's logout page (the FI's end_session), then back to DRIMBOX.
      await page.getByRole('button', { name: fr['logout.confirm'] }).click();
      await page.getByRole('heading', { name: "Vous n'êtes pas connecté" }).waitFor();
      expect(page.url()).toBe(`${demo.urls.drimbox}/`);
      expect(visited.slice(from).some((url) => url.startsWith(`${demo.urls.passerelle}/session/end?`))).toBe(
        true,
      );

      await page.getByRole('link', { name: 'Se connecter avec Pro Santé Connect' }).click();
      // Passerelle's session ended too: the key again (no identifier needed).
      await page.getByRole('link', { name: fr['method.webauthn'] }).click();
      await page.getByRole('button', { name: fr['webauthn.start'] }).click();
      await page.getByRole('heading', { name: 'Confirmer la connexion' }).waitFor();
      expect(await page.locator('#idNatPs').count()).toBe(0);
      await page.getByRole('button', { name: 'Confirmer' }).click();
      await page.locator('#signed-in').waitFor();
      expect(await shownJson(page, 'id-token-claims')).toMatchObject({ SubjectNameID: idNatPs });
    });

    it('the walkthrough shows the pairing, the claims each party received and the audit trail, no token value', async () => {
      await page.goto(demo.urls.walkthrough);
      const pairing = await page.locator('#pairings tr').nth(1).locator('td').allTextContents();
      expect(pairing.slice(0, 3)).toEqual(['chu-demo', 'tid-chu-demo', accountId]);
      expect(pairing[3]).toBe(`${idNatPs} (${DEMO_ACCOUNT.givenName} ${DEMO_ACCOUNT.familyName})`);
      expect(pairing[5]).toBe('1');

      expect(await shownJson(page, 'dpi-id-token')).toMatchObject({
        sub: accountId,
        acr: 'urn:passerelle:loa:high',
      });
      expect(await shownJson(page, 'drimbox-id-token')).toMatchObject({ SubjectNameID: idNatPs });
      // PSC's events: the ID token it accepted.
      const accepted = await shownJson(page, '#psc-events [data-kind="accepted"] pre');
      expect(accepted).toMatchObject({
        clientId: 'drimbox',
        login: { alias: 'chu-demo', tid: 'tid-chu-demo', oid: accountId, sub: accountId, acr: 'eidas1' },
      });
      // Passerelle sends PSC only the amr values of its allow-list (psc.amrAllowList): not pwd.
      expect((accepted.login as { amr: string[] }).amr).toEqual(['hwk', 'mfa', 'pin']);
      const kinds = await page.locator('#psc-events strong').allTextContents();
      // Newest first: the second login, the logout (through Passerelle's end_session and back), the first.
      expect(kinds).toEqual([
        'confirmed',
        'accepted',
        'logout',
        'fi-logout',
        'fi-logout',
        'paired',
        'accepted',
      ]);

      const audit = await page.locator('#audit tr').allTextContents();
      expect(audit.some((row) => row.includes('webauthn.enrolled') && row.includes('demo'))).toBe(true);
      // The password, the key, the key again after the logout.
      expect(audit.filter((row) => row.includes('auth.attempt') && row.includes('success'))).toHaveLength(3);
      const html = await page.content();
      // No JWT (header "{"alg…" in base64url) and no client secret on the page.
      expect(html).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./);
      expect(html).not.toContain('not-a-secret');
    });

    it('DPI sign-out: RP-initiated logout at Passerelle, back at the DPI signed out', async () => {
      await page.goto(demo.urls.dpi);
      await page.getByRole('button', { name: 'Se déconnecter' }).click();
      await page.getByRole('button', { name: fr['logout.confirm'] }).click();
      await page.getByRole('heading', { name: "Vous n'êtes pas connecté" }).waitFor();
      expect(page.url()).toBe(`${demo.urls.dpi}/`);
      // Passerelle's session is over: a new sign-in starts with the identifier.
      await page.getByRole('link', { name: 'Se connecter', exact: true }).click();
      await page.getByLabel(fr['login.username']).waitFor();
      expect(page.url().startsWith(`${demo.urls.passerelle}/interaction/`)).toBe(true);
    });

    it('SIGTERM closes every server and the process exits 0', async () => {
      demo.child.kill('SIGTERM');
      expect(await demo.exit).toBe(0);
      const ports = Object.values(PORT_OFFSETS).map((offset) => basePort + offset);
      expect(await Promise.all(ports.map(portOpen))).toEqual(ports.map(() => false));
    });
  });
}
