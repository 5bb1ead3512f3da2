import { readFile } from 'node:fs/promises';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditCheckpoints, AuditSigningKey } from '../src/audit/checkpoints.ts';
import type { AuditRow } from '../src/audit/export.ts';
import { installationKeyring } from '../src/audit/keyring.ts';
import { rangeVerifier } from '../src/audit/range-verifier.ts';
import { LABELS, label } from '../src/i18n/labels.ts';
import { messages } from '../src/i18n/messages.ts';
import { monthName } from '../src/i18n/time.ts';
import { listSigningKeys } from '../src/oidc/keys.ts';
import { createUser, registerWebClient, TEST_PASSWORD } from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { screenshot, seriousAccessibilityViolations } from './helpers/page-checks.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import {
  chromiumAvailable,
  enrollVirtualKey,
  launchChromium,
  missingChromiumSuite,
  newFrenchContext,
  openConsoleWithKey,
} from './helpers/webauthn-browser.ts';
import { fixtureRpps } from './simulators/annuaire/fixtures.ts';

/**
 * The console's RPPS, establishments, audit and health sections in Chromium: each page's main action and
 * its effect, the refusals for the wrong role, accessibility and screenshots.
 */

const fr = messages.fr;
const GROUP = 'cn=urgences,ou=groupes,dc=chu-rennes,dc=test';
const RENNES = {
  finess: '350005179',
  name: 'CHU de Rennes',
  tid: 'tid-rennes-0001',
  directoryGroups: [GROUP],
};
const VANNES = {
  finess: '560008799',
  name: 'CH de Vannes',
  tid: 'tid-vannes-0002',
  pscAlias: 'ch-vannes',
  members: 'all',
};

if (!chromiumAvailable()) {
  missingChromiumSuite('console RPPS, establishments, audit and health in a real browser');
} else {
  for (const kind of databasesUnderTest()) {
    describe(`console RPPS, establishments, audit and health in Chromium [${kind}]`, () => {
      let t: TestServer;
      let browser: Browser;
      let context: BrowserContext;
      let page: Page;
      let admin: { id: string; username: string };
      const db = () => t.passerelle.services.database.db;
      const events = (type: string) =>
        db().selectFrom('audit_event').selectAll().where('type', '=', type).orderBy('seq').execute();
      const setRoles = async (...wanted: ('administrator' | 'helpdesk' | 'auditor')[]) => {
        const { roles } = t.passerelle.services;
        for (const role of ['administrator', 'helpdesk', 'auditor'] as const) {
          if (wanted.includes(role)) await roles.grant(admin.id, role, 'test');
          else await roles.revoke(admin.id, role, 'test');
        }
      };

      beforeAll(async () => {
        t = await startTestServer(kind, {
          issuerHost: 'localhost',
          config: (issuer) => ({
            webauthn: { rpId: 'localhost', origins: [issuer] },
            establishments: [RENNES, VANNES],
          }),
        });
        const created = await createUser(t, 'console.admin');
        admin = { id: created.id, username: created.username };
        await t.passerelle.services.establishments.add(admin.id, RENNES.finess, 'test');
        await registerWebClient(t, 'dpi-vannes', {
          client_name: 'DPI Vannes',
          psc_establishment: VANNES.finess,
        });
        browser = await launchChromium();
        context = await newFrenchContext(browser, { bypassCSP: true });
        page = await context.newPage();
        // Password session, a FIDO2 key, then the console's phishing-resistant sign-in.
        await page.goto(`${t.issuer}/portal`);
        await page.getByLabel('Identifiant').fill(admin.username);
        await page.getByRole('button', { name: 'Continuer' }).click();
        await page.locator('input[type="password"]').fill(TEST_PASSWORD);
        await page.getByRole('button', { name: 'Se connecter' }).click();
        await page.getByRole('heading', { name: fr['portal.title'] }).waitFor();
        await enrollVirtualKey(page, t, admin.id, 'Clé admin');
        await setRoles('administrator');
        await openConsoleWithKey(page, t.issuer);
      });
      afterAll(async () => {
        await context?.close();
        await browser?.close();
        await t?.close();
      });

      it('RPPS: the evidence side by side, accepting a candidate verifies the link; a sync is started', async () => {
        const pro = await createUser(t, 'dr.martin');
        const idNat = `8${fixtureRpps(1)}`;
        const outcome = await t.passerelle.services.identities.propose({
          accountId: pro.id,
          idNat,
          source: 'name-match',
          verified: false,
          national: { familyName: 'MARTIN', givenName: 'Claire', professionCode: '10', categoryCode: 'C' },
          actor: 'sync:test',
        });
        expect(outcome).toEqual({ kind: 'linked', status: 'candidate' });

        await page.goto(`${t.issuer}/admin/rpps`);
        const review = page.locator('section.review');
        expect(await review.count()).toBe(1);
        const cells = await review.locator('tbody tr').first().locator('td').allTextContents();
        expect(cells).toEqual(['dr.martin', 'Claire']);
        expect(await review.locator('tbody').textContent()).toContain(idNat);
        expect(await seriousAccessibilityViolations(page)).toEqual([]);
        await screenshot(page, `console-rpps-${kind}`);

        await page
          .getByRole('button', {
            name: fr['console.rpps.accept_label']
              .replace('{username}', 'dr.martin')
              .replace('{idNat}', idNat),
          })
          .click();
        await page.getByRole('status').waitFor();
        expect(await page.getByRole('status').textContent()).toBe(fr['console.rpps.done.accepted']);
        expect(await page.locator('section.review').count()).toBe(0);
        expect(await t.passerelle.services.identities.findByAccount(pro.id)).toMatchObject({
          idNat,
          status: 'verified',
          verifiedAt: expect.any(Date),
        });
        const [accepted] = await events('rpps.review.accepted');
        expect(accepted).toMatchObject({
          account_id: pro.id,
          detail: { actor: `console:${admin.username}` },
        });

        await page.getByRole('button', { name: fr['console.rpps.sync'] }).click();
        await page.getByRole('status').waitFor();
        expect(await page.getByRole('status').textContent()).toBe(fr['console.rpps.done.sync']);
        const runs = await t.passerelle.rpps.sync.runs(5);
        expect(runs).toHaveLength(1);
        expect(runs[0]).toMatchObject({ trigger: 'command' });
        expect(await page.locator('dl.facts dd').first().textContent()).toBe(
          `${label('fr', 'syncStatus', runs[0]?.status)} (${LABELS.syncMode.full.fr}, ${LABELS.syncTrigger.command.fr})`,
        );
        const [sync] = await events('admin.rpps.sync');
        expect(sync).toMatchObject({
          account_id: admin.id,
          outcome: 'success',
          detail: { via: 'console', actor: admin.username, runId: runs[0]?.id },
        });
      });

      it('establishments: the configured ones with tid, PSC alias, members rule, groups, PSC clients, member count', async () => {
        await page.goto(`${t.issuer}/admin/establishments`);
        const rows = page.locator('main table tbody tr');
        expect(await rows.count()).toBe(2);
        const cells = async (i: number) =>
          (await rows.nth(i).locator('th, td').allTextContents()).map((s) => s.trim());
        const accounts = await db()
          .selectFrom('account')
          .select('id')
          .where('disabled_at', 'is', null)
          .execute();
        expect(await cells(0)).toEqual([
          RENNES.finess,
          RENNES.name,
          RENNES.tid,
          '—',
          fr['console.est.rule.listed'],
          GROUP,
          '—',
          '1',
        ]);
        expect(await cells(1)).toEqual([
          VANNES.finess,
          VANNES.name,
          VANNES.tid,
          'ch-vannes',
          fr['console.est.rule.all'],
          '—',
          'DPI Vannes (dpi-vannes)',
          String(accounts.length),
        ]);
        expect(await seriousAccessibilityViolations(page)).toEqual([]);
        await screenshot(page, `console-establishments-${kind}`);
      });

      it('audit: search by type and account, verify the chain, export a JSONL that verifies', async () => {
        const { sealer } = t.passerelle.services;
        const checkpoint = await new AuditCheckpoints(db(), () => AuditSigningKey.load(db(), sealer)).write();
        expect(checkpoint).toBeDefined();
        await page.goto(`${t.issuer}/admin/audit`);
        await page.getByLabel(fr['console.audit.type']).fill('rpps.review.');
        await page.getByRole('button', { name: fr['console.audit.submit'] }).click();
        await page.waitForURL((url) => url.searchParams.get('type') === 'rpps.review.');
        const types = await page.locator('table.records tbody tr td:nth-child(3)').allTextContents();
        expect(types).toEqual([LABELS.auditType['rpps.review.accepted'].fr]);

        await page.goto(`${t.issuer}/admin/audit?account=${admin.username}&type=admin.`);
        const seqs = await page
          .locator('table.records tbody tr')
          .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-seq')));
        const expected = await db()
          .selectFrom('audit_event')
          .select('seq')
          .where('account_id', '=', admin.id)
          .where('type', 'like', 'admin.%')
          .orderBy('seq', 'desc')
          .execute();
        expect(seqs).toEqual(expected.map((r) => String(r.seq)));
        expect(seqs.length).toBeGreaterThan(0);

        await page.goto(`${t.issuer}/admin/audit?client=passerelle-console`);
        const clients = await page.locator('table.records tbody tr td:nth-child(6)').allTextContents();
        expect(clients.length).toBeGreaterThan(0);
        expect(new Set(clients)).toEqual(new Set(['passerelle-console']));
        const day = (offset: number) =>
          new Intl.DateTimeFormat('sv-SE', { timeZone: 'Europe/Paris' }).format(
            new Date(Date.now() + offset * 86_400_000),
          );
        await page.goto(`${t.issuer}/admin/audit?from=${day(1)}`);
        expect(await page.locator('table.records').count()).toBe(0);
        expect(await page.locator('main').textContent()).toContain(fr['console.audit.none']);
        await page.goto(`${t.issuer}/admin/audit?from=${day(-1)}&to=${day(0)}`);
        const all = await db().selectFrom('audit_event').select('seq').execute();
        expect(await page.locator('table.records tbody tr').count()).toBe(Math.min(50, all.length));

        await page.getByRole('button', { name: fr['console.audit.verify'] }).click();
        await page.locator('#verification').waitFor();
        expect((await page.locator('#verification').textContent())?.trim()).toMatch(
          /^Chaîne intacte : \d+ enregistrements \(n° 1 à \d+\) et 1 points de contrôle vérifiés\.$/,
        );
        const [verified] = await events('admin.audit.verified');
        expect(verified).toMatchObject({
          outcome: 'success',
          detail: { via: 'console', actor: admin.username },
        });
        expect(await seriousAccessibilityViolations(page)).toEqual([]);
        await screenshot(page, `console-audit-${kind}`);

        const last = await db()
          .selectFrom('audit_event')
          .select('seq')
          .orderBy('seq', 'desc')
          .limit(1)
          .executeTakeFirstOrThrow();
        const [download] = await Promise.all([
          page.waitForEvent('download'),
          page.getByRole('link', { name: fr['console.audit.export'] }).click(),
        ]);
        expect(download.suggestedFilename()).toBe(`passerelle-audit-1-${last.seq}.jsonl`);
        const lines = (await readFile(await download.path(), 'utf8'))
          .trimEnd()
          .split('\n')
          .map((l) => JSON.parse(l) as Record<string, unknown>);
        expect(lines[0]).toMatchObject({
          passerelle_audit_export: 1,
          from_seq: '1',
          to_seq: String(last.seq),
          instance: t.issuer,
        });
        const records = lines.filter((l) => 'seq' in l) as unknown as AuditRow[];
        expect(records).toHaveLength(Number(last.seq));
        expect(lines.some((l) => 'audit_keys' in l)).toBe(true);
        const verify = rangeVerifier(db(), await installationKeyring(db()));
        async function* rows() {
          yield* records;
        }
        expect(await verify(rows(), { fromSeq: '1', toSeq: String(last.seq) })).toEqual({ ok: true });
        const exports = await db().selectFrom('audit_export').selectAll().execute();
        expect(exports).toMatchObject([
          { actor: `console:${admin.username}`, verified: true, format: 'jsonl' },
        ]);
        await expect
          .poll(async () => (await events('admin.audit.exported')).map((e) => e.detail))
          .toEqual([
            expect.objectContaining({
              via: 'console',
              actor: admin.username,
              records: Number(last.seq),
              verification: 'verified',
            }),
          ]);
      });

      it("audit report: the month's counts as tables and server-side SVG charts", async () => {
        const month = new Intl.DateTimeFormat('sv-SE', {
          timeZone: 'Europe/Paris',
          year: 'numeric',
          month: '2-digit',
        }).format(new Date());
        await page.goto(`${t.issuer}/admin/audit/report?month=${month}`);
        await page
          .getByRole('heading', {
            name: fr['console.report.title'].replace('{month}', monthName('fr', month)),
          })
          .waitFor();
        const byMethod = await db()
          .selectFrom('audit_event')
          .select(['method'])
          .select((eb) => eb.fn.countAll<string>().as('n'))
          .where('type', '=', 'auth.attempt')
          .where('outcome', '=', 'success')
          .groupBy('method')
          .execute();
        const table = page.locator('table[data-table="logins_by_method"] tbody tr');
        const shown = Object.fromEntries(
          await table.evaluateAll((rows) =>
            rows.map((r) => [r.querySelector('th')?.textContent, Number(r.querySelector('td')?.textContent)]),
          ),
        );
        expect(shown).toEqual(
          Object.fromEntries(byMethod.map((r) => [label('fr', 'method', r.method), Number(r.n)])),
        );
        expect(Object.keys(shown).sort()).toEqual(
          [LABELS.method.webauthn.fr, LABELS.method.password.fr].sort(),
        );
        const chart = page.locator('#h-logins_by_method ~ svg.chart');
        expect(await chart.locator('title').textContent()).toBe(fr['console.report.table.logins_by_method']);
        expect(await chart.locator('rect').count()).toBe(2);
        expect(await seriousAccessibilityViolations(page)).toEqual([]);
        await screenshot(page, `console-report-${kind}`);
      });

      it('health: the /readyz checks, key ages and the audit chain state', async () => {
        await page.goto(`${t.issuer}/admin/health`);
        const checks = await page
          .locator('table[data-table="checks"] tbody tr')
          .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-check')));
        expect(checks).toEqual(t.passerelle.readiness.map((c) => c.name));
        expect(await page.locator('tr[data-check="database"] td').first().textContent()).toBe(
          fr['console.health.ok'],
        );
        expect(await page.locator('#readiness').textContent()).toBe(fr['console.health.ready']);
        expect(await page.locator('table[data-table="signing-keys"] tbody tr').count()).toBe(
          (await listSigningKeys(db())).length,
        );
        const count = await db()
          .selectFrom('audit_event')
          .select((eb) => eb.fn.countAll<string>().as('n'))
          .executeTakeFirstOrThrow();
        const checkpoint = await db()
          .selectFrom('audit_checkpoint')
          .select('seq')
          .orderBy('seq', 'desc')
          .limit(1)
          .executeTakeFirst();
        expect(checkpoint).toBeDefined();
        expect(await page.locator('#last-checkpoint').textContent()).toMatch(
          new RegExp(`^enregistrement n° ${checkpoint?.seq}, le `),
        );
        expect(await page.locator('#records-after').textContent()).toBe(
          String(Number(count.n) - Number(checkpoint?.seq)),
        );
        expect(Number(count.n)).toBeGreaterThan(Number(checkpoint?.seq));
        expect(await seriousAccessibilityViolations(page)).toEqual([]);
        await screenshot(page, `console-health-${kind}`);
      });

      it('denials: helpdesk is refused the audit and RPPS pages, an auditor the RPPS actions; each refusal audited', async () => {
        await setRoles('helpdesk');
        for (const path of ['/admin/audit', '/admin/rpps', '/admin/establishments']) {
          const response = await page.goto(`${t.issuer}${path}`);
          expect(response?.status()).toBe(403);
        }
        expect((await page.goto(`${t.issuer}/admin/health`))?.status()).toBe(200);

        await setRoles('auditor');
        expect((await page.goto(`${t.issuer}/admin/audit`))?.status()).toBe(200);
        for (const path of [
          '/admin/rpps/sync',
          '/admin/rpps/review/00000000-0000-0000-0000-000000000000/accept',
        ]) {
          const response = await page.request.post(`${t.issuer}${path}`, { form: { csrf: 'x' } });
          expect(response.status()).toBe(403);
        }
        const denied = await events('admin.access.denied');
        expect(
          denied.map((e) => [(e.detail as { path: string }).path, (e.detail as { method: string }).method]),
        ).toEqual([
          ['/admin/audit', 'GET'],
          ['/admin/rpps', 'GET'],
          ['/admin/establishments', 'GET'],
          ['/admin/rpps/sync', 'POST'],
          ['/admin/rpps/review/00000000-0000-0000-0000-000000000000/accept', 'POST'],
        ]);
        expect(await t.passerelle.rpps.sync.runs(5)).toHaveLength(1);
        await setRoles('administrator');
      });
    });
  }
}
