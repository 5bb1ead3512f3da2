import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LABELS } from '../src/i18n/labels.ts';
import { messages } from '../src/i18n/messages.ts';
import { CredentialStore, EnrollmentCodes } from '../src/methods/webauthn/store.ts';
import { createUser, registerWebClient } from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { screenshot, seriousAccessibilityViolations } from './helpers/page-checks.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import {
  chromiumAvailable,
  confirmAct,
  enrollVirtualKey,
  launchChromium,
  missingChromiumSuite,
  newFrenchContext,
  openConsoleWithKey,
  signInWithPassword,
} from './helpers/webauthn-browser.ts';

/**
 * The console's accounts and applications sections in Chromium: each act and its effect (a disabled
 * account cannot sign in, ended sessions sign in again, a rotated secret replaces the old one at /token),
 * the role each needs, CSRF, accessibility.
 */

const fr = messages.fr;
const RENNES = { finess: '350005179', name: 'CHU de Rennes', tid: 'tid-rennes-0001' };

/** The /token endpoint's answer to a client authenticating with this secret (an unknown code). */
async function tokenWith(issuer: string, clientId: string, secret: string) {
  const response = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: 'no-such-code',
      redirect_uri: 'https://app.hopital.test/callback',
    }),
  });
  return ((await response.json()) as { error: string }).error;
}

if (!chromiumAvailable()) {
  missingChromiumSuite('console accounts and applications in a real browser');
} else {
  for (const kind of databasesUnderTest()) {
    describe(`console accounts and applications in Chromium [${kind}]`, () => {
      let t: TestServer;
      let browser: Browser;
      let context: BrowserContext;
      let page: Page;
      let operator: { id: string; username: string };
      let target: { id: string; username: string };

      const db = () => t.passerelle.services.database.db;
      const roles = () => t.passerelle.services.roles;
      const asOnly = async (role: 'administrator' | 'helpdesk' | 'auditor') => {
        for (const r of ['administrator', 'helpdesk', 'auditor'] as const) {
          if (r === role) await roles().grant(operator.id, r, 'test');
          else await roles().revoke(operator.id, r, 'test');
        }
      };
      const auditOf = (type: string) =>
        db().selectFrom('audit_event').selectAll().where('type', '=', type).orderBy('seq').execute();
      const csrfOn = async () =>
        (await page.locator('input[name="csrf"]').first().getAttribute('value')) ?? '';
      const accountPage = () => `${t.issuer}/admin/accounts/${target.id}`;
      const checked = async (name: string) => {
        expect(await seriousAccessibilityViolations(page)).toEqual([]);
        await screenshot(page, `${name}-${kind}`);
      };

      beforeAll(async () => {
        t = await startTestServer(kind, {
          issuerHost: 'localhost',
          config: (issuer) => ({
            webauthn: { rpId: 'localhost', origins: [issuer] },
            establishments: [{ ...RENNES, members: 'listed' }],
          }),
        });
        const op = await createUser(t, 'console.alice');
        operator = { id: op.id, username: op.username };
        const tg = await createUser(t, 'paul.martin');
        target = { id: tg.id, username: tg.username };
        await t.passerelle.services.establishments.add(target.id, RENNES.finess, 'test');
        await t.passerelle.services.identities.set(
          target.id,
          '810001234567',
          'directory-attribute',
          'verified',
        );
        await registerWebClient(t, 'dpi', { client_name: 'Dossier patient', portal: true });
        browser = await launchChromium();
        context = await newFrenchContext(browser, { bypassCSP: true });
        page = await context.newPage();
        // The operator: password, then a security key, then the console's phishing-resistant sign-in.
        await page.goto(`${t.issuer}/portal`);
        await signInWithPassword(page, operator.username);
        await page.getByRole('heading', { name: fr['portal.title'] }).waitFor();
        await enrollVirtualKey(page, t, operator.id, 'Clé d’Alice');
        await roles().grant(operator.id, 'auditor', 'test');
        await openConsoleWithKey(page, t.issuer);
      });
      afterAll(async () => {
        await context?.close();
        await browser?.close();
        await t?.close();
      });

      it('an auditor may not open the accounts; a helpdesk operator may not open the applications', async () => {
        await asOnly('auditor');
        expect((await page.goto(`${t.issuer}/admin/accounts`))?.status()).toBe(403);
        expect(await page.getByRole('alert').textContent()).toBe(fr['console.denied']);
        await asOnly('helpdesk');
        expect((await page.goto(`${t.issuer}/admin/clients`))?.status()).toBe(403);
        expect((await page.goto(`${t.issuer}/admin/clients/new`))?.status()).toBe(403);
        const denied = await auditOf('admin.access.denied');
        expect(denied.map((e) => (e.detail as { path: string }).path)).toEqual([
          '/admin/accounts',
          '/admin/clients',
          '/admin/clients/new',
        ]);
      });

      it('helpdesk: search by name, the account page, an enrollment code shown once and audited', async () => {
        await asOnly('helpdesk');
        await page.goto(`${t.issuer}/admin/accounts`);
        await page.getByLabel(fr['console.accounts.search']).fill('MARTIN');
        await page.getByRole('button', { name: fr['console.accounts.search.submit'] }).click();
        await page.waitForURL((url) => url.searchParams.get('q') === 'MARTIN');
        expect(await page.locator('tbody th a').allTextContents()).toEqual([target.username]);
        await checked('console-accounts');

        // By national identifier (idNatPS), exactly.
        await page.getByLabel(fr['console.accounts.search']).fill('810001234567');
        await page.getByRole('button', { name: fr['console.accounts.search.submit'] }).click();
        await page.waitForURL((url) => url.searchParams.get('q') === '810001234567');
        expect(await page.locator('tbody th a').allTextContents()).toEqual([target.username]);
        await page.getByRole('link', { name: target.username }).click();
        await page.getByRole('heading', { name: `Compte ${target.username}` }).waitFor();
        const main = (await page.locator('main').textContent()) ?? '';
        expect(main).toContain(fr['console.account.password.set']);
        expect(main).toContain('CHU de Rennes (FINESS 350005179, inscrit)');
        expect(main).toContain(fr['console.account.roles.readonly']);
        expect(main).toContain(
          `Référentiel RPPS, identifiant 810001234567 — identité ${LABELS.linkStatus.verified.fr}, origine : ${LABELS.linkSource['directory-attribute'].fr}`,
        );
        await page.getByRole('button', { name: fr['console.account.enroll.issue'] }).click();
        const shown = (await page.locator('#enrollment-code').textContent()) ?? '';
        const code = /([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})/.exec(shown)?.[1] ?? '';
        expect(code).not.toBe('');
        expect(await new EnrollmentCodes(db()).isValid(target.id, code)).toBe(true);
        await checked('console-account');
        // Shown once: the page again does not show it.
        await page.goto(accountPage());
        expect(await page.locator('#enrollment-code').count()).toBe(0);
        const [issued] = await auditOf('webauthn.enrollment_code');
        expect(issued).toMatchObject({
          account_id: target.id,
          detail: { via: 'console', actor: operator.username, issuedBy: operator.username },
        });
        expect(t.logs.some((line) => line.includes(code))).toBe(false);
      });

      it('helpdesk: the search shows 50 accounts a page', async () => {
        await asOnly('helpdesk');
        for (let i = 0; i < 51; i++) {
          await t.passerelle.services.accounts.create({ username: `zz.${String(i).padStart(2, '0')}` });
        }
        await page.goto(`${t.issuer}/admin/accounts?q=zz.`);
        const rows = page.locator('tbody th a');
        expect(await rows.count()).toBe(50);
        expect(await rows.first().textContent()).toBe('zz.00');
        expect(await page.getByRole('link', { name: fr['console.accounts.previous'] }).count()).toBe(0);
        await page.getByRole('link', { name: fr['console.accounts.next'] }).click();
        await page.waitForURL((url) => url.searchParams.get('page') === '2');
        expect(await rows.allTextContents()).toEqual(['zz.50']);
        expect(await page.getByRole('link', { name: fr['console.accounts.next'] }).count()).toBe(0);
        expect(await page.getByRole('link', { name: fr['console.accounts.previous'] }).count()).toBe(1);
        expect(await seriousAccessibilityViolations(page)).toEqual([]);
      });

      it('helpdesk: a disabled account cannot sign in, an enabled one can; without CSRF nothing happens', async () => {
        await asOnly('helpdesk');
        await page.goto(accountPage());
        const refused = await page.request.post(`${accountPage()}/disable`, { form: {} });
        expect(refused.status()).toBe(403);
        expect((await t.passerelle.services.accounts.findById(target.id))?.disabledAt).toBeNull();

        await page.getByRole('button', { name: fr['console.account.disable'] }).click();
        await confirmAct(page);
        await page.getByRole('status').filter({ hasText: fr['console.account.done.disabled'] }).waitFor();
        const other = await newFrenchContext(browser, { bypassCSP: true });
        try {
          const user = await other.newPage();
          await user.goto(`${t.issuer}/portal`);
          await signInWithPassword(user, target.username);
          await user.getByRole('alert').waitFor();
          expect(await user.getByRole('alert').textContent()).toContain(fr['error.account_disabled']);

          await page.getByRole('button', { name: fr['console.account.enable'] }).click();
          await page.getByRole('status').filter({ hasText: fr['console.account.done.enabled'] }).waitFor();
          await user.goto(`${t.issuer}/portal`);
          await signInWithPassword(user, target.username);
          await user.getByRole('heading', { name: fr['portal.title'] }).waitFor();

          // Its live session is listed; ending it sends the user back to the sign-in page.
          await page.goto(accountPage());
          expect(
            await page
              .locator('table')
              .filter({ hasText: fr['console.account.session.started'] })
              .locator('tbody tr')
              .count(),
          ).toBe(1);
          await page.getByRole('button', { name: fr['console.account.sessions.end'] }).click();
          await confirmAct(page);
          await page
            .getByRole('status')
            .filter({ hasText: fr['console.account.done.sessions_ended'] })
            .waitFor();
          expect(await t.passerelle.services.sessions.listForAccount(target.id)).toEqual([]);
          // The engine's session is destroyed too, and recorded as ended by the console.
          const ended = await db()
            .selectFrom('audit_event')
            .select(['account_id', 'reason'])
            .where('type', '=', 'session.ended')
            .where('reason', '=', 'admin_console')
            .execute();
          expect(ended).toEqual([{ account_id: target.id, reason: 'admin_console' }]);
          await user.goto(`${t.issuer}/portal`);
          await user.getByLabel('Identifiant').waitFor();
        } finally {
          await other.close();
        }
        const acts = await db()
          .selectFrom('audit_event')
          .select(['type', 'detail'])
          .where('type', 'in', [
            'admin.account.disabled',
            'admin.account.enabled',
            'admin.account.sessions_ended',
          ])
          .orderBy('seq')
          .execute();
        expect(acts).toEqual([
          {
            type: 'admin.account.disabled',
            detail: { via: 'console', actor: operator.username, username: target.username },
          },
          {
            type: 'admin.account.enabled',
            detail: { via: 'console', actor: operator.username, username: target.username },
          },
          {
            type: 'admin.account.sessions_ended',
            detail: { via: 'console', actor: operator.username, username: target.username, sessions: 1 },
          },
        ]);
      });

      it('helpdesk: unlock a locked account, revoke one of its keys', async () => {
        await asOnly('helpdesk');
        const { throttle, config } = t.passerelle.services;
        for (let i = 0; i < config.throttle.lockAfter; i++) {
          await throttle.fail({ account: target.username, ip: '192.0.2.1' });
        }
        expect((await throttle.accountState(target.username)).state).toBe('locked');
        await new CredentialStore(db()).insert({
          id: 'a2V5LW9mLXBhdWw',
          accountId: target.id,
          name: 'Clé de Paul',
          publicKey: new Uint8Array([1, 2, 3]),
          counter: 0,
          transports: ['usb'],
          aaguid: '00000000-0000-0000-0000-000000000000',
          deviceType: 'singleDevice',
          backedUp: false,
        });
        await page.goto(accountPage());
        await page.getByRole('button', { name: fr['console.account.unlock'] }).click();
        await page.getByRole('status').filter({ hasText: fr['console.account.done.unlocked'] }).waitFor();
        expect(await throttle.accountState(target.username)).toMatchObject({ state: 'open', failures: 0 });

        await page.getByRole('button', { name: 'Révoquer la clé « Clé de Paul »' }).click();
        await confirmAct(page);
        await page.getByRole('status').filter({ hasText: fr['console.account.done.key_revoked'] }).waitFor();
        expect(await new CredentialStore(db()).countActive(target.id)).toBe(0);
        expect(await page.locator('main').textContent()).toContain(fr['console.account.keys.none']);
        const [unlocked] = await auditOf('admin.account.unlocked');
        expect(unlocked?.detail).toEqual({
          via: 'console',
          actor: operator.username,
          username: target.username,
        });
        const [revoked] = await auditOf('webauthn.revoked');
        expect(revoked?.detail).toMatchObject({
          via: 'console',
          credentialId: 'a2V5LW9mLXBhdWw',
          operator: operator.username,
        });
      });

      it('roles: helpdesk gets 403 on a role change; an administrator grants and revokes, but not their own administrator role', async () => {
        await asOnly('helpdesk');
        await page.goto(accountPage());
        const csrf = await csrfOn();
        const refused = await page.request.post(`${accountPage()}/grant-role`, {
          form: { csrf, role: 'auditor' },
        });
        expect(refused.status()).toBe(403);
        expect(await roles().of(target.id)).toEqual([]);

        await asOnly('administrator');
        await page.goto(accountPage());
        await page.getByLabel(fr['console.account.role.choose']).selectOption('auditor');
        await page.getByRole('button', { name: fr['console.account.role.grant'] }).click();
        await page.getByRole('status').filter({ hasText: fr['console.account.done.role_granted'] }).waitFor();
        expect(await roles().of(target.id)).toEqual(['auditor']);
        await page.getByRole('button', { name: 'Retirer le rôle auditeur' }).click();
        await confirmAct(page);
        await page.getByRole('status').filter({ hasText: fr['console.account.done.role_revoked'] }).waitFor();
        expect(await roles().of(target.id)).toEqual([]);
        const changes = await db()
          .selectFrom('audit_event')
          .select(['type', 'detail'])
          .where('account_id', '=', target.id)
          .where('type', 'in', ['admin.role.granted', 'admin.role.revoked'])
          .orderBy('seq')
          .execute();
        expect(changes).toEqual([
          {
            type: 'admin.role.granted',
            detail: { role: 'auditor', actor: operator.username, via: 'console' },
          },
          {
            type: 'admin.role.revoked',
            detail: { role: 'auditor', actor: operator.username, via: 'console' },
          },
        ]);

        await page.goto(`${t.issuer}/admin/accounts/${operator.id}`);
        await page.getByRole('button', { name: 'Retirer le rôle administrateur' }).click();
        await page.getByRole('alert').waitFor();
        expect(await page.getByRole('alert').textContent()).toBe(fr['console.account.role.own_admin']);
        expect(await roles().of(operator.id)).toEqual(['administrator']);
        expect(await seriousAccessibilityViolations(page)).toEqual([]);
      });

      it('applications: the engine refuses a bad registration next to the form; a new one gets a secret once, which works at /token', async () => {
        await asOnly('administrator');
        await page.goto(`${t.issuer}/admin/clients`);
        expect(await page.locator('tbody th a').allTextContents()).toEqual(
          expect.arrayContaining(['dpi', 'passerelle-console', 'passerelle-portal']),
        );
        await checked('console-clients');

        await page.getByRole('link', { name: fr['console.clients.new'] }).click();
        await page.getByLabel(fr['console.clients.id']).fill('labo');
        await page.getByLabel(/^Nom/).fill('Laboratoire');
        await page
          .getByLabel(fr['console.client.field.redirect_uris'])
          .fill('https://labo.hopital.test/callback');
        await page.getByLabel(fr['console.clients.auth_method']).selectOption('private_key_jwt');
        await page.getByRole('button', { name: fr['console.client.create'] }).click();
        await page.getByRole('alert').waitFor();
        expect(await page.getByRole('alert').textContent()).toBe(
          `Déclaration refusée : ${fr['console.client.error.engine_field'].replace('{field}', LABELS.clientField.jwksUri.fr)}`,
        );
        expect(await t.passerelle.services.clients.findMetadata('labo')).toBeUndefined();
        expect(await seriousAccessibilityViolations(page)).toEqual([]);

        await page.getByLabel(fr['console.clients.auth_method']).selectOption('client_secret_basic');
        await page.getByLabel(fr['console.client.field.portal']).check();
        await page.getByLabel(/^Adresse de l’application/).fill('https://labo.hopital.test/');
        await page.getByLabel(fr['console.client.field.psc_establishment']).selectOption(RENNES.finess);
        await page.getByRole('button', { name: fr['console.client.create'] }).click();
        const shown = (await page.locator('#client-secret').textContent()) ?? '';
        const secret = shown.split(' : ').at(-1) ?? '';
        expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
        await checked('console-client');
        expect(await t.passerelle.services.clients.show('labo')).toMatchObject({
          client_name: 'Laboratoire',
          portal: true,
          client_uri: 'https://labo.hopital.test/',
          psc_establishment: RENNES.finess,
          redirect_uris: ['https://labo.hopital.test/callback'],
        });
        expect(await tokenWith(t.issuer, 'labo', secret)).toBe('invalid_grant');
        expect(await tokenWith(t.issuer, 'labo', 'not-the-secret')).toBe('invalid_client');

        // Rotated: the new secret works at /token, the old one no longer does.
        await page.goto(`${t.issuer}/admin/clients/labo`);
        expect(await page.locator('#client-secret').count()).toBe(0);
        await page.getByRole('button', { name: fr['console.client.rotate'] }).click();
        await confirmAct(page);
        const rotated =
          ((await page.locator('#client-secret').textContent()) ?? '').split(' : ').at(-1) ?? '';
        expect(rotated).toMatch(/^[A-Za-z0-9_-]{43}$/);
        expect(rotated).not.toBe(secret);
        expect(await tokenWith(t.issuer, 'labo', rotated)).toBe('invalid_grant');
        expect(await tokenWith(t.issuer, 'labo', secret)).toBe('invalid_client');
        expect(t.logs.some((line) => line.includes(secret) || line.includes(rotated))).toBe(false);

        const acts = await db()
          .selectFrom('audit_event')
          .select(['type', 'client_id', 'detail'])
          .where('type', 'like', 'admin.client.%')
          .orderBy('seq')
          .execute();
        expect(acts).toMatchObject([
          {
            type: 'admin.client.added',
            client_id: 'labo',
            detail: { via: 'console', actor: operator.username },
          },
          {
            type: 'admin.client.secret_rotated',
            client_id: 'labo',
            detail: { via: 'console', actor: operator.username },
          },
        ]);

        // PKCE waived for this confidential application (as Keycloak's broker, PSC, needs): stored and
        // shown; an application without authentication (public) cannot waive it.
        await page.goto(`${t.issuer}/admin/clients/labo`);
        expect(await page.getByLabel(fr['console.client.field.pkce_required']).isChecked()).toBe(true);
        await page.getByLabel(fr['console.client.field.pkce_required']).uncheck();
        await page.getByRole('button', { name: fr['console.client.save'] }).click();
        await page.getByRole('status').waitFor();
        expect((await t.passerelle.services.clients.show('labo'))?.pkce_required).toBe(false);
        expect(await page.getByLabel(fr['console.client.field.pkce_required']).isChecked()).toBe(false);
        await page.getByLabel(fr['console.clients.auth_method']).selectOption('none');
        await page.getByRole('button', { name: fr['console.client.save'] }).click();
        await page.getByRole('alert').waitFor();
        expect(await page.getByRole('alert').textContent()).toBe(
          `Déclaration refusée : ${fr['console.client.error.pkce_public'].replace('{field}', LABELS.clientField.pkceRequired.fr)}`,
        );
        expect((await t.passerelle.services.clients.show('labo'))?.token_endpoint_auth_method).toBe(
          'client_secret_basic',
        );
        expect(await seriousAccessibilityViolations(page)).toEqual([]);
      });

      it('applications: edit, remove; Passerelle’s own are read-only; without CSRF nothing happens', async () => {
        await asOnly('administrator');
        await page.goto(`${t.issuer}/admin/clients/dpi`);
        await page.getByLabel(/^Nom/).fill('Dossier patient informatisé');
        await page.getByRole('button', { name: fr['console.client.save'] }).click();
        await page.getByRole('status').filter({ hasText: fr['console.client.done.saved'] }).waitFor();
        const dpi = await t.passerelle.services.clients.findMetadata('dpi');
        expect(dpi).toMatchObject({ client_name: 'Dossier patient informatisé', portal: true });
        expect(typeof dpi?.client_secret).toBe('string');

        const refused = await page.request.post(`${t.issuer}/admin/clients/dpi/remove`, { form: {} });
        expect(refused.status()).toBe(403);
        expect(await t.passerelle.services.clients.findMetadata('dpi')).toBeDefined();
        await page.getByRole('button', { name: fr['console.client.remove'] }).click();
        await confirmAct(page);
        await page.getByRole('status').filter({ hasText: fr['console.client.done.removed'] }).waitFor();
        expect(await t.passerelle.services.clients.findMetadata('dpi')).toBeUndefined();

        await page.goto(`${t.issuer}/admin/clients/passerelle-portal`);
        expect(
          await page.getByRole('note').filter({ hasText: fr['console.client.readonly.internal'] }).count(),
        ).toBe(1);
        expect(await page.getByRole('button', { name: fr['console.client.save'] }).count()).toBe(0);
        const csrf = await csrfOn();
        const blocked = await page.request.post(`${t.issuer}/admin/clients/passerelle-portal/remove`, {
          form: { csrf },
        });
        expect(blocked.status()).toBe(409);
        expect(await t.passerelle.services.clients.findMetadata('passerelle-portal')).toBeDefined();
        expect(await seriousAccessibilityViolations(page)).toEqual([]);
      });

      it('applications: a redirect URI outside RFC 8252 and RFC 9700 is refused and named in French; a native application registers its private-use scheme', async () => {
        await asOnly('administrator');
        await page.goto(`${t.issuer}/admin/clients/new`);
        await page.getByLabel(fr['console.clients.id']).fill('poste');
        const refused = async (uri: string, problem: keyof typeof fr) => {
          await page.getByLabel(fr['console.client.field.redirect_uris']).fill(uri);
          await page.getByRole('button', { name: fr['console.client.create'] }).click();
          await page.getByRole('alert').waitFor();
          expect(await page.getByRole('alert').textContent()).toBe(
            fr['console.client.invalid'].replace(
              '{reason}',
              fr[problem]
                .replace('{field}', LABELS.clientField.redirectUris.fr)
                .replace('{line}', '1')
                .replace('{uri}', uri),
            ),
          );
          expect(await t.passerelle.services.clients.findMetadata('poste')).toBeUndefined();
        };
        await refused('http://poste.hopital.test/retour', 'redirect_uri.problem.http_not_loopback');
        await refused('https://*.hopital.test/retour', 'redirect_uri.problem.wildcard');
        await refused('fr.hopital.poste:/retour', 'redirect_uri.problem.private_scheme_not_native');
        await checked('console-client-redirect-uri-refused');

        await page.getByLabel(fr['console.client.field.native']).check();
        await page.getByLabel(fr['console.clients.auth_method']).selectOption('none');
        await page.getByRole('button', { name: fr['console.client.create'] }).click();
        await page.getByRole('status').filter({ hasText: fr['console.client.done.created'] }).waitFor();
        expect(await t.passerelle.services.clients.show('poste')).toMatchObject({
          application_type: 'native',
          redirect_uris: ['fr.hopital.poste:/retour'],
        });
        expect(await page.getByLabel(fr['console.client.field.native']).isChecked()).toBe(true);
      });
    });
  }
}
