import { PassThrough } from 'node:stream';
import { Router } from '@koa/router';
import type { Context } from 'koa';
import { type Kysely, sql } from 'kysely';
import { CHAINED_COLUMNS } from '../audit/canonical.ts';
import { chainRows } from '../audit/chain.ts';
import { AuditSigningKey, listCheckpoints } from '../audit/checkpoints.ts';
import { exportAudit, type RangeBound, resolveRange } from '../audit/export.ts';
import { installationKeyring } from '../audit/keyring.ts';
import { installationExportMaterial } from '../audit/range-verifier.ts';
import { isMonth, type MonthlyReport, monthlyReport } from '../audit/report.ts';
import { type VerifyResult, verifyChain } from '../audit/verify.ts';
import type { Database } from '../db/types.ts';
import { type LabelKind, label, levelLabel } from '../i18n/labels.ts';
import { type Locale, translator } from '../i18n/messages.ts';
import { monthIn, monthName } from '../i18n/time.ts';
import type { ConsoleUser } from './console.ts';
import { consoleAct, consoleForm, localeOf, type RecordsDeps, renderSection } from './records-common.ts';
import { sectionRoles } from './sections.ts';
import { barChart } from './svg-chart.ts';

const PAGE_SIZE = 50;
const DAY = /^\d{4}-\d{2}-\d{2}$/;

/** The search form's fields, as given (invalid dates and page cursors dropped). */
function searchOf(query: Context['query']) {
  const text = (key: string) => {
    const v = query[key];
    return typeof v === 'string' ? v.trim().slice(0, 200) : '';
  };
  const day = (key: string) => (DAY.test(text(key)) ? text(key) : '');
  return {
    account: text('account'),
    client: text('client'),
    type: text('type'),
    from: day('from'),
    to: day('to'),
    before: /^\d{1,19}$/.test(text('before')) ? text('before') : '',
  };
}
type Search = ReturnType<typeof searchOf>;

/** Midnight of a day in the establishment's time zone, plus some days: the time bounds of the form. */
async function localMidnight(
  db: Kysely<Database>,
  timeZone: string,
  day: string,
  plusDays: number,
): Promise<Date> {
  const { at } = await sql<{
    at: Date;
  }>`select ((${day}::date + ${plusDays}::int)::timestamp at time zone ${timeZone}) as at`
    .execute(db)
    .then((r) => r.rows[0] as { at: Date });
  return new Date(at);
}

const likePrefix = (text: string) => `${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

function queryString(search: Search, extra: Record<string, string> = {}) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries({ ...search, before: '', ...extra }))
    if (value) params.set(key, value);
  return params.toString();
}

/** `/admin/audit`: search, export, verification of the chain; `/admin/audit/report`: the monthly report. */
export function auditRoutes(deps: RecordsDeps): Router {
  const { gate, services, config } = deps;
  const db = services.database.db;
  const router = new Router();
  const roles = sectionRoles('audit');
  const timeZone = config.ui.timeZone;
  const midnight = (day: string, plusDays: number) => localMidnight(db, timeZone, day, plusDays);

  const renderSearch = async (
    ctx: Context,
    user: ConsoleUser,
    search: Search,
    verification?: { ok: boolean; lines: string[] },
  ) => {
    let accountId: string | undefined;
    let unknownAccount = false;
    if (search.account) {
      accountId = (await services.accounts.findByUsername(search.account))?.id;
      unknownAccount = accountId === undefined;
    }
    let query = db
      .selectFrom('audit_event')
      .selectAll()
      .orderBy('seq', 'desc')
      .limit(PAGE_SIZE + 1);
    if (accountId) query = query.where('account_id', '=', accountId);
    if (search.client) query = query.where('client_id', '=', search.client);
    if (search.type) query = query.where(sql<boolean>`type like ${likePrefix(search.type)} escape '\\'`);
    if (search.from) query = query.where('at', '>=', await midnight(search.from, 0));
    if (search.to) query = query.where('at', '<', await midnight(search.to, 1));
    if (search.before) query = query.where('seq', '<', search.before);
    const rows = unknownAccount ? [] : await query.execute();
    const page = rows.slice(0, PAGE_SIZE);
    const usernames = new Map<string, string>();
    for (const id of new Set(page.flatMap((r) => (r.account_id ? [r.account_id] : [])))) {
      const account = await services.accounts.findById(id);
      if (account) usernames.set(id, account.username);
    }
    const last = page.at(-1);
    await renderSection(deps, ctx, user, 'audit', 'console-audit', {
      search,
      unknownAccount,
      verification,
      records: page.map((r) => ({
        seq: String(r.seq),
        at: r.at,
        type: r.type,
        outcome: r.outcome,
        account: r.account_id ? (usernames.get(r.account_id) ?? r.account_id) : null,
        client: r.client_id,
        reason: r.reason,
        hash: r.hash,
        fields: [...CHAINED_COLUMNS, 'hash' as const].map((c) => {
          const v = r[c];
          return [
            c,
            v === null || v === undefined
              ? ''
              : typeof v === 'object' && !(v instanceof Date)
                ? JSON.stringify(v)
                : v instanceof Date
                  ? v.toISOString()
                  : String(v),
          ];
        }),
      })),
      next:
        rows.length > PAGE_SIZE && last
          ? `/admin/audit?${queryString(search, { before: String(last.seq) })}`
          : undefined,
      first: search.before ? `/admin/audit?${queryString(search)}` : undefined,
      exportUrl: `/admin/audit/export?${queryString({ ...search, account: '', client: '', type: '' })}`,
      month: monthIn(timeZone),
    });
  };

  router.get('/admin/audit', async (ctx) => {
    const user = await gate(ctx, roles);
    if (!user) return;
    await renderSearch(ctx, user, searchOf(ctx.query));
  });

  router.get('/admin/audit/export', async (ctx) => {
    const user = await gate(ctx, roles);
    if (!user) return;
    const search = searchOf(ctx.query);
    const from: RangeBound | undefined = search.from ? { at: await midnight(search.from, 0) } : undefined;
    const to: RangeBound | undefined = search.to ? { at: await midnight(search.to, 1) } : undefined;
    const range = await resolveRange(db, from, to);
    if (!range) {
      const t = translator(localeOf(deps, ctx));
      return renderSearch(ctx, user, search, { ok: false, lines: [t('console.audit.export_empty')] });
    }
    const out = new PassThrough();
    ctx.status = 200;
    ctx.type = 'application/x-ndjson; charset=utf-8';
    ctx.set('cache-control', 'no-store');
    ctx.attachment(`passerelle-audit-${range.fromSeq}-${range.toSeq}.jsonl`);
    ctx.body = out;
    const actor = `console:${user.who.account.username}`;
    // As `passerelle audit export`: the range verified first, the export recorded in audit_export with its actor.
    exportAudit(db, {
      range,
      format: 'jsonl',
      out,
      instance: config.issuer,
      actor,
      verifyChain: installationExportMaterial.verifyChain(db),
      publicKey: await installationExportMaterial.publicKey(db, services.sealer),
      auditKeys: await installationExportMaterial.auditKeys(db),
    })
      .then(async (summary) => {
        const v = summary.verification;
        await services.audit.record(
          consoleAct(ctx, user, {
            type: 'admin.audit.exported',
            outcome: typeof v === 'object' ? 'failure' : 'success',
            detail: {
              exportId: summary.exportId,
              fromSeq: range.fromSeq,
              toSeq: range.toSeq,
              records: summary.records,
              verification: v,
            },
          }),
        );
        out.end();
      })
      .catch((err: unknown) => {
        services.logger.error({ err }, 'console: audit export failed');
        out.destroy(err as Error);
      });
  });

  router.post('/admin/audit/verify', async (ctx) => {
    const user = await gate(ctx, roles);
    if (!user) return;
    if (!(await consoleForm(deps, ctx, user))) return;
    // As `passerelle audit verify`: the whole trail, the installation's keys (the first and those it endorsed).
    await AuditSigningKey.load(db, services.sealer);
    const result = await verifyChain(chainRows(db), await listCheckpoints(db), await installationKeyring(db));
    const lines = verificationLines(localeOf(deps, ctx), result);
    await services.audit.record(
      consoleAct(ctx, user, {
        type: 'admin.audit.verified',
        outcome: result.kind === 'ok' ? 'success' : 'failure',
        reason: result.kind === 'problem' ? result.problem.kind : undefined,
        detail: {
          rows: result.summary.rows,
          checkpoints: result.summary.checkpoints,
          lastSeq: result.summary.lastSeq,
        },
      }),
    );
    await renderSearch(ctx, user, searchOf({}), { ok: result.kind === 'ok', lines });
  });

  router.get('/admin/audit/report', async (ctx) => {
    const user = await gate(ctx, roles);
    if (!user) return;
    const asked = typeof ctx.query.month === 'string' ? ctx.query.month : '';
    const month = isMonth(asked) ? asked : monthIn(timeZone);
    const report = await monthlyReport(db, {
      month,
      levels: config.policy.levels,
      pscPhishingResistantAuthModes: config.pscLogin?.phishingResistantAuthModes ?? [],
      timeZone,
    });
    const locale = localeOf(deps, ctx);
    const t = translator(locale);
    const named = (kind: ReportTable['kind'], id: string) =>
      kind === 'level'
        ? levelLabel(
            locale,
            config.policy.levels.find((l) => l.acr === id),
          )
        : label(locale, kind, id);
    await renderSection(deps, ctx, user, 'audit', 'console-audit-report', {
      month,
      monthName: monthName(locale, month),
      invalidMonth: asked !== '' && !isMonth(asked),
      report,
      tables: reportTables(report).map((table) => {
        const rows = table.rows.map(([id, n]) => [named(table.kind, id), n] as [string, number]);
        return {
          key: table.key,
          rows,
          title: t(`console.report.table.${table.key}`),
          chart: barChart({
            id: `chart-${table.key}`,
            title: t(`console.report.table.${table.key}`),
            bars: rows,
          }),
        };
      }),
    });
  });

  return router;
}

const REPORT_TABLES = [
  'logins_by_method',
  'logins_by_level',
  'failures_by_reason',
  'failures_by_method',
  'psc_refused',
  'rpps_links',
  'sync_runs',
] as const;

/** The verification's outcome in the page's language (the command line prints summaryLine). */
function verificationLines(locale: Locale, result: VerifyResult): string[] {
  const t = translator(locale);
  const s = result.summary;
  const summary = t(result.kind === 'ok' ? 'console.audit.verify_ok' : 'console.audit.verify_stopped', {
    rows: s.rows,
    checkpoints: s.checkpoints,
    first: s.firstSeq ?? '—',
    last: s.lastSeq ?? '—',
  });
  if (result.kind === 'ok') return [summary];
  const { problem } = result;
  return [
    t('console.audit.verify_problem', {
      seq: problem.seq,
      kind: label(locale, 'chainProblem', problem.kind),
    }),
    summary,
  ];
}

interface ReportTable {
  key: (typeof REPORT_TABLES)[number];
  /** How the table's ids are named: a catalogue enumeration, or the configured levels. */
  kind: LabelKind | 'level';
  rows: [string, number][];
}

/** The report's breakdowns, each shown as a chart and a table. */
function reportTables(report: MonthlyReport): ReportTable[] {
  const rows = (counts: Record<string, number>) =>
    Object.entries(counts).sort(([a, x], [b, y]) => y - x || (a < b ? -1 : 1)) as [string, number][];
  return [
    { key: 'logins_by_method', kind: 'method', rows: rows(report.logins.byMethod) },
    { key: 'logins_by_level', kind: 'level', rows: rows(report.logins.byLevel) },
    { key: 'failures_by_reason', kind: 'auditReason', rows: rows(report.failures.byReason) },
    { key: 'failures_by_method', kind: 'method', rows: rows(report.failures.byMethod) },
    { key: 'psc_refused', kind: 'auditReason', rows: rows(report.pscFederations.refusedByReason) },
    { key: 'rpps_links', kind: 'rppsChange', rows: rows(report.rppsLinkChanges) },
    { key: 'sync_runs', kind: 'syncStatus', rows: rows(report.syncRuns) },
  ];
}
