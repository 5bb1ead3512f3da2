import { type Kysely, sql } from 'kysely';
import type { Database } from '../db/types.ts';
import { type AssuranceLevel, assess } from '../policy/assurance.ts';

/** Methods whose every login is origin-bound (their AuthMethod declares `phishingResistant: true`). */
const PHISHING_RESISTANT_METHODS: ReadonlySet<string> = new Set(['webauthn', 'smartcard']);

export interface ReportOptions {
  /** `YYYY-MM`. */
  month: string;
  /** config.policy.levels: how logins are classified. */
  levels: readonly AssuranceLevel[];
  /** config.pscLogin.phishingResistantAuthModes: PSC logins counted as phishing resistant. */
  pscPhishingResistantAuthModes: readonly string[];
  /** Months are calendar months in this time zone. */
  timeZone?: string;
}

type Counts = Record<string, number>;

export interface MonthlyReport {
  month: string;
  timeZone: string;
  /** First and last sequence numbers of the month, null when it holds no record. */
  firstSeq: string | null;
  lastSeq: string | null;
  records: number;
  logins: {
    /** A login: the successful methods of one interaction (or one attempt without interaction). */
    total: number;
    twoFactor: number;
    phishingResistant: number;
    /** Strongest configured level reached, `none` when none. */
    byLevel: Counts;
    /** Successful authentications per method. */
    byMethod: Counts;
  };
  failures: { total: number; byReason: Counts; byMethod: Counts };
  lockouts: number;
  pscFederations: { accepted: number; refused: number; refusedByReason: Counts };
  rppsLinkChanges: Counts;
  syncRuns: Counts;
}

export function isMonth(text: string): boolean {
  return /^\d{4}-(0[1-9]|1[0-2])$/.test(text);
}

/** The compliance figures of one month, from the audit trail. */
export async function monthlyReport(db: Kysely<Database>, options: ReportOptions): Promise<MonthlyReport> {
  if (!isMonth(options.month)) throw new Error(`not a month (YYYY-MM): ${options.month}`);
  const timeZone = options.timeZone ?? 'Europe/Paris';
  const start = `${options.month}-01`;
  const inMonth = sql<boolean>`at >= (${start}::timestamp at time zone ${timeZone})
    and at < ((${start}::date + interval '1 month')::timestamp at time zone ${timeZone})`;

  const summary = await db
    .selectFrom('audit_event')
    .select([
      sql<string | null>`min(seq)::text`.as('first'),
      sql<string | null>`max(seq)::text`.as('last'),
      sql<string>`count(*)::text`.as('records'),
    ])
    .where(inMonth)
    .executeTakeFirstOrThrow();

  const groups = await db
    .selectFrom('audit_event')
    .select([
      'type',
      'outcome',
      sql<string>`coalesce(method, '-')`.as('method'),
      sql<string>`coalesce(reason, '-')`.as('reason'),
      sql<string>`count(*)::text`.as('n'),
    ])
    .where(inMonth)
    .where((eb) =>
      eb.or([
        eb('type', 'in', ['auth.attempt', 'auth.locked']),
        eb('type', 'like', 'psc.federation%'),
        eb('type', 'like', 'rpps.link.%'),
        eb('type', 'like', 'rpps.sync.%'),
      ]),
    )
    .groupBy(['type', 'outcome', 'method', 'reason'])
    .execute();

  const report: MonthlyReport = {
    month: options.month,
    timeZone,
    firstSeq: summary.first,
    lastSeq: summary.last,
    records: Number(summary.records),
    logins: { total: 0, twoFactor: 0, phishingResistant: 0, byLevel: {}, byMethod: {} },
    failures: { total: 0, byReason: {}, byMethod: {} },
    lockouts: 0,
    pscFederations: { accepted: 0, refused: 0, refusedByReason: {} },
    rppsLinkChanges: {},
    syncRuns: {},
  };
  for (const g of groups) {
    const n = Number(g.n);
    if (g.type === 'auth.attempt' && g.outcome === 'success') add(report.logins.byMethod, g.method, n);
    else if (g.type === 'auth.attempt') {
      report.failures.total += n;
      add(report.failures.byReason, g.reason, n);
      add(report.failures.byMethod, g.method, n);
    } else if (g.type === 'auth.locked') report.lockouts += n;
    else if (g.type.startsWith('psc.federation')) {
      if (g.outcome === 'success') report.pscFederations.accepted += n;
      else {
        report.pscFederations.refused += n;
        add(report.pscFederations.refusedByReason, g.reason, n);
      }
    } else if (g.type.startsWith('rpps.link.')) add(report.rppsLinkChanges, g.type.slice(10), n);
    else add(report.syncRuns, g.type.slice(10), n);
  }

  // Logins: the methods that succeeded in one interaction, assessed as the policy does.
  const attempts = await db
    .selectFrom('audit_event')
    .select([
      sql<string>`coalesce(interaction_id, 'seq:' || seq::text)`.as('login'),
      sql<string>`coalesce(method, '-')`.as('method'),
      'amr',
      sql<boolean | null>`(detail->>'phishingResistant')::boolean`.as('phishing_resistant'),
      sql<string | null>`detail->>'authMode'`.as('auth_mode'),
    ])
    .where(inMonth)
    .where('type', '=', 'auth.attempt')
    .where('outcome', '=', 'success')
    .execute();
  const logins = new Map<string, { amr: string[]; phishingResistant: boolean }[]>();
  for (const a of attempts) {
    const phishingResistant =
      a.phishing_resistant ??
      (PHISHING_RESISTANT_METHODS.has(a.method) ||
        (a.method === 'psc' && options.pscPhishingResistantAuthModes.includes(a.auth_mode ?? '')));
    const methods = logins.get(a.login) ?? [];
    methods.push({ amr: a.amr ?? [], phishingResistant });
    logins.set(a.login, methods);
  }
  for (const methods of logins.values()) {
    const assurance = assess(options.levels, methods);
    report.logins.total++;
    if (assurance.factors >= 2) report.logins.twoFactor++;
    if (assurance.phishingResistant) report.logins.phishingResistant++;
    add(report.logins.byLevel, assurance.acr ?? 'none', 1);
  }
  return report;
}

function add(counts: Counts, key: string, n: number): void {
  counts[key] = (counts[key] ?? 0) + n;
}

const share = (part: number, total: number) => (total ? `${((100 * part) / total).toFixed(1)} %` : '-');

/** Plain text, French first: stable (sorted keys, fixed headings) for a compliance file. */
export function reportText(report: MonthlyReport): string {
  const lines: string[] = [];
  const heading = (fr: string, en: string) =>
    lines.push('', `${fr} / ${en}`, '-'.repeat(fr.length + en.length + 3));
  const counts = (c: Counts) => {
    const keys = Object.keys(c).sort();
    if (!keys.length) lines.push('  (aucun / none)');
    for (const key of keys) lines.push(`  ${key.padEnd(50)} ${String(c[key]).padStart(8)}`);
  };
  const row = (label: string, value: string | number) =>
    lines.push(`  ${label.padEnd(50)} ${String(value).padStart(8)}`);
  lines.push(
    `Passerelle — rapport d'audit mensuel / monthly audit report: ${report.month} (${report.timeZone})`,
  );
  lines.push(
    `Enregistrements / records: ${report.records}` +
      (report.firstSeq ? ` (seq ${report.firstSeq}..${report.lastSeq})` : ''),
  );
  const l = report.logins;
  heading('Connexions', 'Logins');
  row('total', l.total);
  row('double facteur / two-factor', `${l.twoFactor} (${share(l.twoFactor, l.total)})`);
  row(
    'résistantes à l’hameçonnage / phishing-resistant',
    `${l.phishingResistant} (${share(l.phishingResistant, l.total)})`,
  );
  heading('Connexions par niveau', 'Logins by level');
  counts(l.byLevel);
  heading('Authentifications réussies par méthode', 'Successful authentications by method');
  counts(l.byMethod);
  heading('Échecs par motif', 'Failures by reason');
  row('total', report.failures.total);
  counts(report.failures.byReason);
  heading('Échecs par méthode', 'Failures by method');
  counts(report.failures.byMethod);
  heading('Verrouillages', 'Lockouts');
  row('total', report.lockouts);
  const p = report.pscFederations;
  heading('Fédérations Pro Santé Connect', 'Pro Santé Connect federations');
  row('acceptées / accepted', p.accepted);
  row('refusées / refused', p.refused);
  counts(p.refusedByReason);
  heading('Changements de liens RPPS', 'RPPS link changes');
  counts(report.rppsLinkChanges);
  heading('Synchronisations RPPS', 'RPPS sync runs');
  counts(report.syncRuns);
  return `${lines.join('\n')}\n`;
}
