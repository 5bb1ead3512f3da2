import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { messages } from '../src/i18n/messages.ts';
import { CredentialStore } from '../src/methods/webauthn/store.ts';
import { createUser, registerWebClient } from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { PortalAgent } from './helpers/portal-agent.ts';
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

/**
 * Destructive acts ask first, in the portal and in the console: a POST without confirmation shows a
 * confirmation page (server-side, no JavaScript, CSRF-protected, French) and changes nothing; the
 * confirmation page's own form does the act. The key page has the portal's navigation.
 */

const fr = messages.fr;

/** The confirmation page's form: its action and its hidden fields (as a browser would post them). */
function confirmationForm(html: string): { action: string; fields: Record<string, string> } {
  const form = /<form method="post" action="([^"]+)">([\s\S]*?)<\/form>/.exec(html);
  if (!form?.[1] || form[2] === undefined)
    throw new Error(`no confirmation form in page:\n${html.slice(0, 3000)}`);
  const decode = (v: string) =>
    v
      .replaceAll('&quot;', '"')
      .replaceAll('&#39;', "'")
      .replaceAll('&lt;', '<')
      .replaceAll('&gt;', '>')
      .replaceAll('&amp;', '&');
  const fields: Record<string, string> = {};
  for (const [, name, value] of form[2].matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) {
    if (name !== undefined && value !== undefined) fields[name] = decode(value);
  }
  return { action: decode(form[1]), fields };
}

/** A key stored for the account (its public key is never used here: no sign-in with it). */
async function storeKey(t: TestServer, accountId: string, id: string, name: string) {
  await new CredentialStore(t.passerelle.services.database.db).insert({
    id,
    accountId,
    name,
    publicKey: new Uint8Array([1, 2, 3]),
    counter: 0,
    transports: ['usb'],
    aaguid: '00000000-0000-0000-0000-000000000000',
    deviceType: 'singleDevice',
    backedUp: false,
  });
}

if (!chromiumAvailable()) {
  missingChromiumSuite('confirmation of destructive acts');
} else {
  for (const kind of databasesUnderTest()) {
    describe(`destructive acts ask for confirmation [${kind}]`, () => {
      let t: TestServer;
      let browser: Browser;
      let context: BrowserContext;
      let page: Page;

      const db = () => t.passerelle.services.database.db;
      const keyRevoked = async (id: string) =>
        (await new CredentialStore(db()).find(id))?.revokedAt instanceof Date;
      const events = (type: string, accountId: string) =>
        db()
          .selectFrom('audit_event')
          .select('type')
          .where('type', '=', type)
          .where('account_id', '=', accountId)
          .execute();

      beforeAll(async () => {
        t = await startTestServer(kind, {
          issuerHost: 'localhost',
          config: (issuer) => ({ webauthn: { rpId: 'localhost', origins: [issuer] } }),
        });
        const operator = await createUser(t, 'confirme.admin');
        await t.passerelle.services.roles.grant(operator.id, 'administrator', 'test');
        browser = await launchChromium();
        context = await newFrenchContext(browser);
        page = await context.newPage();
        await page.goto(`${t.issuer}/portal`);
        await signInWithPassword(page, operator.username);
        await page.getByRole('heading', { name: fr['portal.title'] }).waitFor();
        await enrollVirtualKey(page, t, operator.id, 'Clé de l’administrateur');
        await openConsoleWithKey(page, t.issuer);
      });
      afterAll(async () => {
        await context?.close();
        await browser?.close();
        await t?.close();
      });

      it('portal: revoking a key shows a confirmation page first (nothing changed), CSRF-protected; confirmed, it is revoked', async () => {
        const user = await createUser(t, 'confirme.lea');
        await storeKey(t, user.id, 'bGVhLWtleQ', 'Clé de Léa');
        const lea = new PortalAgent(t.issuer);
        await lea.open('/portal/security', user.username);

        const asked = await lea.post('/portal/security/keys/bGVhLWtleQ/revoke');
        expect(asked.status).toBe(200);
        expect(lea.html).toContain('<h1>Révoquer la clé « Clé de Léa » ?</h1>');
        expect(lea.html).toContain(fr['confirm.revoke_key.consequence']);
        expect(lea.html).toContain('<nav class="portal-nav"');
        expect(lea.html).toContain(`<a href="/portal/security">${fr['confirm.cancel']}</a>`);
        expect(await keyRevoked('bGVhLWtleQ')).toBe(false);
        expect(await events('webauthn.revoked', user.id)).toEqual([]);

        const { action, fields } = confirmationForm(lea.html);
        expect(action).toBe('/portal/security/keys/bGVhLWtleQ/revoke');
        expect(fields.confirm).toBe('yes');
        // The confirmation without its CSRF token: refused, nothing changed.
        const forged = await lea.agent.postForm(new URL(action, t.issuer), { ...fields, csrf: 'forged' });
        expect(forged.status).toBe(403);
        expect(await keyRevoked('bGVhLWtleQ')).toBe(false);

        const done = await lea.agent.postForm(new URL(action, t.issuer), fields);
        expect(done.status).toBe(303);
        expect(done.headers.get('location')).toBe('/portal/security?done=revoked');
        expect(await keyRevoked('bGVhLWtleQ')).toBe(true);
        expect(await events('webauthn.revoked', user.id)).toHaveLength(1);
      });

      it('portal: « Se déconnecter partout » shows a confirmation page first (sessions untouched); confirmed, they end', async () => {
        const user = await createUser(t, 'confirme.marc');
        const marc = new PortalAgent(t.issuer);
        await marc.open('/portal/security', user.username);
        const asked = await marc.post('/portal/security/sessions/end-all');
        expect(asked.status).toBe(200);
        expect(marc.html).toContain(`<h1>${fr['confirm.end_all']}</h1>`);
        expect(await t.passerelle.services.sessions.listForAccount(user.id)).toHaveLength(1);
        expect(await events('session.ended', user.id)).toEqual([]);
        // Cancelled: back to the page, still signed in.
        expect((await marc.open('/portal/security')).pathname).toBe('/portal/security');

        await marc.post('/portal/security/sessions/end-all');
        const { action, fields } = confirmationForm(marc.html);
        const done = await marc.agent.postForm(new URL(action, t.issuer), fields);
        expect(done.status).toBe(200);
        expect(await t.passerelle.services.sessions.listForAccount(user.id)).toEqual([]);
        expect(await events('session.ended', user.id)).toHaveLength(1);
      });

      it('the key page has the portal’s navigation; revoking a key there asks first too', async () => {
        const user = await createUser(t, 'confirme.nina');
        await storeKey(t, user.id, 'bmluYS1rZXk', 'Clé de Nina');
        const nina = new PortalAgent(t.issuer);
        await nina.open('/portal/security', user.username);
        await nina.open('/account/security-keys');
        expect(nina.html).toContain('<nav class="portal-nav"');
        expect(nina.html).toContain(
          `<a href="/portal/security" aria-current="page">${fr['portal.nav.security']}</a>`,
        );
        expect(nina.html).toContain(`<a href="/portal">${fr['portal.nav.apps']}</a>`);

        const asked = await nina.post('/account/security-keys/bmluYS1rZXk/revoke');
        expect(asked.status).toBe(200);
        expect(nina.html).toContain('<h1>Révoquer la clé « Clé de Nina » ?</h1>');
        expect(nina.html).toContain(`<a href="/account/security-keys">${fr['confirm.cancel']}</a>`);
        expect(await keyRevoked('bmluYS1rZXk')).toBe(false);
        const { action, fields } = confirmationForm(nina.html);
        const done = await nina.agent.postForm(new URL(action, t.issuer), fields);
        expect(done.status).toBe(303);
        expect(done.headers.get('location')).toBe('/account/security-keys?done=revoked');
        expect(await keyRevoked('bmluYS1rZXk')).toBe(true);
      });

      it('console: revoke a key, end the sessions, remove a role, disable the account, rotate a secret, remove an application — each asks first', async () => {
        const user = await createUser(t, 'confirme.paul');
        await storeKey(t, user.id, 'cGF1bC1rZXk', 'Clé de Paul');
        await t.passerelle.services.roles.grant(user.id, 'auditor', 'test');
        await new PortalAgent(t.issuer).open('/portal/security', user.username);
        await registerWebClient(t, 'labo', { client_name: 'Laboratoire' });
        const { services } = t.passerelle;
        const secretOf = async () => (await services.clients.findMetadata('labo'))?.client_secret;
        const secret = await secretOf();
        const accountPath = `/admin/accounts/${user.id}`;

        const acts: {
          path: string;
          fields: Record<string, string>;
          question: string;
          done: () => Promise<boolean>;
        }[] = [
          {
            path: `${accountPath}/revoke-key`,
            fields: { key: 'cGF1bC1rZXk' },
            question: `Révoquer la clé « Clé de Paul » du compte ${user.username} ?`,
            done: () => keyRevoked('cGF1bC1rZXk'),
          },
          {
            path: `${accountPath}/end-sessions`,
            fields: {},
            question: `Fermer toutes les sessions du compte ${user.username} ?`,
            done: async () => (await services.sessions.listForAccount(user.id)).length === 0,
          },
          {
            path: `${accountPath}/revoke-role`,
            fields: { role: 'auditor' },
            question: `Retirer le rôle auditeur au compte ${user.username} ?`,
            done: async () => (await services.roles.of(user.id)).length === 0,
          },
          {
            path: `${accountPath}/disable`,
            fields: {},
            question: `Désactiver le compte ${user.username} ?`,
            done: async () => (await services.accounts.findById(user.id))?.disabledAt instanceof Date,
          },
          {
            path: '/admin/clients/labo/rotate-secret',
            fields: {},
            question: 'Remplacer le secret de l’application labo ?',
            done: async () => (await secretOf()) !== secret,
          },
          {
            path: '/admin/clients/labo/remove',
            fields: {},
            question: 'Supprimer l’application labo ?',
            done: async () => (await services.clients.findMetadata('labo')) === undefined,
          },
        ];
        for (const act of acts) {
          await page.goto(
            `${t.issuer}${act.path.startsWith(accountPath) ? accountPath : '/admin/clients/labo'}`,
          );
          const csrf = (await page.locator('input[name="csrf"]').first().getAttribute('value')) ?? '';
          const asked = await page.request.post(`${t.issuer}${act.path}`, {
            form: { csrf, ...act.fields },
            maxRedirects: 0,
          });
          expect(asked.status(), act.path).toBe(200);
          const html = await asked.text();
          expect(html, act.path).toContain(`<h1>${act.question}</h1>`);
          expect(html).toContain('<nav class="console-nav"');
          expect(await act.done(), `${act.path} before confirmation`).toBe(false);

          const { action, fields } = confirmationForm(html);
          expect(action).toBe(act.path);
          expect(fields).toMatchObject({ ...act.fields, confirm: 'yes' });
          const forged = await page.request.post(`${t.issuer}${action}`, {
            form: { ...fields, csrf: 'forged' },
            maxRedirects: 0,
          });
          expect(forged.status()).toBe(403);
          expect(await act.done(), `${act.path} after a forged confirmation`).toBe(false);
          const done = await page.request.post(`${t.issuer}${action}`, { form: fields, maxRedirects: 0 });
          expect([200, 303], act.path).toContain(done.status());
          expect(await act.done(), `${act.path} confirmed`).toBe(true);
        }
      });

      it('console in the browser: the button leads to the confirmation page, « Annuler » back to the account', async () => {
        const user = await createUser(t, 'confirme.ines');
        await page.goto(`${t.issuer}/admin/accounts/${user.id}`);
        await page.getByRole('button', { name: fr['console.account.disable'] }).click();
        await page.getByRole('heading', { name: `Désactiver le compte ${user.username} ?` }).waitFor();
        await page.getByRole('link', { name: fr['confirm.cancel'] }).click();
        await page.getByRole('heading', { name: `Compte ${user.username}` }).waitFor();
        expect((await t.passerelle.services.accounts.findById(user.id))?.disabledAt).toBeNull();
        await page.getByRole('button', { name: fr['console.account.disable'] }).click();
        await page.getByRole('heading', { name: `Désactiver le compte ${user.username} ?` }).waitFor();
        await page.getByRole('button', { name: fr['console.account.disable'] }).click();
        await page.getByRole('status').filter({ hasText: fr['console.account.done.disabled'] }).waitFor();
        expect((await t.passerelle.services.accounts.findById(user.id))?.disabledAt).toBeInstanceOf(Date);
      });
    });
  }
}
