import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LABELS } from '../src/i18n/labels.ts';
import { messages } from '../src/i18n/messages.ts';
import { createUser, TEST_PASSWORD } from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import {
  chromiumAvailable,
  enrollVirtualKey,
  launchChromium,
  missingChromiumSuite,
  newFrenchContext,
  openConsoleWithKey,
  signInWithPassword,
} from './helpers/webauthn-browser.ts';
import { fixtureRpps } from './simulators/annuaire/fixtures.ts';

/**
 * Every French page a person reads (portal, consent, the console's sections, the monthly report) on demo
 * data, scanned for internal ids: the label catalogue's ids and snake_case tokens must never show.
 */

const fr = messages.fr;
const RENNES = { finess: '350005179', name: 'CHU de Rennes', tid: 'tid-rennes-0001' };

/** Words of a text: letters, digits and the `.` `_` `-` that ids are made of. */
const words = (text: string) => text.match(/[\p{L}\p{N}][\p{L}\p{N}._-]*[\p{L}\p{N}]|[\p{L}\p{N}]/gu) ?? [];

/** Words the French catalogue itself uses (an id that is also one of them cannot be told from text). */
const FRENCH_WORDS = new Set(
  Object.values(fr).flatMap((text) => words(String(text).replace(/\{\w+\}/g, ' '))),
);
/** Every id of the catalogue's enumerations. */
const CATALOGUE_IDS = new Set(Object.values(LABELS).flatMap((table) => Object.keys(table)));
/**
 * OAuth parameter names the console shows next to a field's French label, on purpose: the administrator
 * finds them under these names in the application's own configuration.
 */
const PROTOCOL_TERMS = new Set([
  'client_id',
  'redirect_uri',
  'initiate_login_uri',
  'client_uri',
  'kc_idp_hint',
]);
const SNAKE_CASE = /^[a-z][a-z0-9]*(?:_[a-z0-9]+)+$/;

/** The internal ids found in a page's visible text. */
function internalIds(text: string): string[] {
  const found = new Set<string>();
  for (const word of words(text)) {
    if (PROTOCOL_TERMS.has(word)) continue;
    for (const part of [word, ...word.split('.')]) {
      if (SNAKE_CASE.test(part) && !PROTOCOL_TERMS.has(part)) found.add(part);
      if (CATALOGUE_IDS.has(part) && !FRENCH_WORDS.has(part)) found.add(part);
    }
  }
  return [...found].sort();
}

if (!chromiumAvailable()) {
  missingChromiumSuite('French pages without internal ids');
} else {
  for (const kind of databasesUnderTest()) {
    describe(`French pages show labels, never internal ids [${kind}]`, () => {
      let t: TestServer;
      let browser: Browser;
      let context: BrowserContext;
      let page: Page;
      let admin: { id: string; username: string };

      /** The page's title and visible text (closed <details> and hidden elements excluded). */
      const shown = async (path: string) => {
        if (path) await page.goto(`${t.issuer}${path}`);
        // biome-ignore lint/performance/useDomNodeTextContent: what is rendered, without closed <details>.
        return { title: await page.title(), text: await page.locator('body').innerText() };
      };

      beforeAll(async () => {
        t = await startTestServer(kind, {
          issuerHost: 'localhost',
          config: (issuer) => ({
            demo: true,
            webauthn: { rpId: 'localhost', origins: [issuer] },
            establishments: [RENNES],
          }),
        });
        const { services, rpps } = t.passerelle;
        const created = await createUser(t, 'marie.dupont');
        admin = { id: created.id, username: created.username };
        await services.establishments.add(admin.id, RENNES.finess, 'test');
        // A link entered by an administrator, and a name-match candidate waiting for review.
        await services.identities.propose({
          accountId: admin.id,
          idNat: `8${fixtureRpps(1)}`,
          source: 'manual',
          verified: true,
          national: { familyName: 'DUPONT', givenName: 'Marie', professionCode: '10', categoryCode: 'C' },
          actor: 'test',
        });
        const other = await createUser(t, 'jean.martin');
        await services.identities.propose({
          accountId: other.id,
          idNat: `8${fixtureRpps(2)}`,
          source: 'name-match',
          verified: false,
          national: { familyName: 'MARTIN', givenName: 'Jean', professionCode: '10', categoryCode: 'C' },
          actor: 'sync:test',
        });
        // A sync run without the Annuaire Santé API nor an open-data index: recorded, with its state.
        await rpps.sync.run({ trigger: 'command' }).catch(() => undefined);

        browser = await launchChromium();
        context = await newFrenchContext(browser);
        page = await context.newPage();
        // A wrong password first (an audit failure with its reason), then the right one.
        await page.goto(`${t.issuer}/portal`);
        await signInWithPassword(page, admin.username, 'pas le bon mot de passe');
        await page.getByRole('alert').waitFor();
        await page.locator('input[type="password"]').fill(TEST_PASSWORD);
        await page.getByRole('button', { name: 'Se connecter' }).click();
        await page.getByRole('heading', { name: fr['portal.title'] }).waitFor();
        await enrollVirtualKey(page, t, admin.id, 'Clé de Marie');
        await services.roles.grant(admin.id, 'administrator', 'test');
        await openConsoleWithKey(page, t.issuer);
      });
      afterAll(async () => {
        await context?.close();
        await browser?.close();
        await t?.close();
      });

      it('portal, consent, every console section and the report: no id in the visible text', async () => {
        const paths = [
          '/',
          '/portal',
          '/portal/security',
          '/admin',
          '/admin/accounts?q=',
          `/admin/accounts/${admin.id}`,
          '/admin/clients',
          '/admin/clients/new',
          '/admin/clients/passerelle-demo',
          '/admin/rpps',
          '/admin/establishments',
          '/admin/audit',
          '/admin/audit/report',
          '/admin/health',
        ];
        const findings: Record<string, string[]> = {};
        for (const path of paths) {
          const { title, text } = await shown(path);
          const ids = internalIds(`${title}\n${text}`);
          if (ids.length) findings[path] = ids;
        }
        // The demo application is not first-party: its consent page.
        await page.goto(`${t.issuer}/demo/login`);
        await page.getByRole('heading', { name: fr['consent.title'] }).waitFor();
        const consent = await shown('');
        const ids = internalIds(`${consent.title}\n${consent.text}`);
        if (ids.length) findings.consent = ids;
        expect(findings).toEqual({});
      });

      it('the consent page describes each scope, without its name', async () => {
        await page.goto(`${t.issuer}/demo/login`);
        await page.getByRole('heading', { name: fr['consent.title'] }).waitFor();
        const items = await page.locator('ul.scopes li').allInnerTexts();
        expect(items.map((i) => i.trim())).toEqual(
          // What the demo application asks for.
          ['openid', 'profile', 'email', 'rpps'].map((s) => LABELS.scope[s as keyof typeof LABELS.scope].fr),
        );
      });

      it('the title names the page once; the session end reads « le … à … »', async () => {
        expect.soft((await shown('/')).title).not.toMatch(/Passerelle · Passerelle/);
        const { text } = await shown('/portal');
        const end = text.split('\n').find((line) => line.startsWith('Votre session se termine')) ?? '';
        expect.soft(end).not.toMatch(/\sà\s\d{1,2}\s\p{L}+\.?\s\d{4}/u);
        expect(end).toMatch(
          /^Votre session se termine (à\s\d{2}:\d{2}|le\s\d{1,2}\s[\p{L}.]+\s\d{4}\sà\s\d{2}:\d{2})\s/u,
        );
      });

      it('a refused application form names the field in a French sentence', async () => {
        await page.goto(`${t.issuer}/admin/clients/new`);
        await page.getByLabel(fr['console.clients.id']).fill('laboratoire');
        await page.getByLabel(fr['console.client.field.redirect_uris']).fill('pas-une-adresse');
        await page.getByRole('button', { name: fr['console.client.create'] }).click();
        const error = ((await page.getByRole('alert').textContent()) ?? '').trim();
        expect(error).toContain(LABELS.clientField.redirectUris.fr);
        expect(error).toContain('pas-une-adresse');
        expect(error).not.toMatch(/redirectUris|Invalid URL/);
        expect(internalIds(error)).toEqual([]);
      });
    });
  }
}
