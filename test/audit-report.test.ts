import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { monthlyReport, reportText } from '../src/audit/report.ts';
import { configSchema } from '../src/config/schema.ts';
import { auditDatabase } from './helpers/audit-seed.ts';
import { databasesUnderTest } from './helpers/databases.ts';

const levels = configSchema.parse({ demo: true }).policy.levels;

type Seed = {
  at: string;
  type: string;
  outcome: 'success' | 'failure';
  interaction?: string;
  method?: string;
  amr?: string[];
  reason?: string;
  detail?: Record<string, unknown>;
};

const MARCH = '2026-03-10T09:00:00Z';
const seeds: Seed[] = [
  // Password then security key in one interaction: two-factor, phishing resistant (high).
  {
    at: MARCH,
    type: 'auth.attempt',
    outcome: 'success',
    interaction: 'i1',
    method: 'password',
    amr: ['pwd'],
  },
  {
    at: MARCH,
    type: 'auth.attempt',
    outcome: 'success',
    interaction: 'i1',
    method: 'webauthn',
    amr: ['hwk', 'pin', 'mfa'],
  },
  // Password alone (low); counted in March in Paris although it is still February in UTC.
  {
    at: '2026-02-28T23:30:00Z',
    type: 'auth.attempt',
    outcome: 'success',
    interaction: 'i2',
    method: 'password',
    amr: ['pwd'],
  },
  // PSC by e-CPS on a phone: two factors, not phishing resistant (substantial).
  {
    at: MARCH,
    type: 'auth.attempt',
    outcome: 'success',
    interaction: 'i3',
    method: 'psc',
    amr: ['swk', 'pin', 'mfa'],
    detail: { authMode: 'MOBILE' },
  },
  // PSC with the card: phishing resistant (high).
  {
    at: MARCH,
    type: 'auth.attempt',
    outcome: 'success',
    interaction: 'i4',
    method: 'psc',
    amr: ['sc', 'pin', 'mfa', 'hwk'],
    detail: { authMode: 'CARD' },
  },
  { at: MARCH, type: 'auth.attempt', outcome: 'failure', method: 'password', reason: 'bad_password' },
  { at: MARCH, type: 'auth.attempt', outcome: 'failure', method: 'password', reason: 'bad_password' },
  { at: MARCH, type: 'auth.attempt', outcome: 'failure', method: 'ldap', reason: 'ad_52e' },
  { at: MARCH, type: 'auth.locked', outcome: 'failure', reason: 'too_many_failures' },
  { at: MARCH, type: 'psc.federation', outcome: 'success' },
  { at: MARCH, type: 'psc.federation', outcome: 'success' },
  { at: MARCH, type: 'psc.federation.refused', outcome: 'failure', reason: 'not_member' },
  { at: MARCH, type: 'rpps.link.created', outcome: 'success' },
  { at: MARCH, type: 'rpps.link.removed', outcome: 'success', reason: 'superseded' },
  { at: MARCH, type: 'rpps.link.created', outcome: 'success' },
  { at: MARCH, type: 'rpps.sync.completed', outcome: 'success' },
  { at: MARCH, type: 'rpps.sync.halted', outcome: 'failure', reason: 'circuit_breaker' },
  { at: MARCH, type: 'session.ended', outcome: 'success' },
  // April in Paris (still March in UTC): not counted.
  {
    at: '2026-03-31T22:30:00Z',
    type: 'auth.attempt',
    outcome: 'success',
    interaction: 'i9',
    method: 'password',
    amr: ['pwd'],
  },
];

for (const kind of databasesUnderTest()) {
  describe(`monthly audit report [${kind}]`, () => {
    let env: Awaited<ReturnType<typeof auditDatabase>>;

    beforeAll(async () => {
      env = await auditDatabase(kind);
      await env.db
        .insertInto('audit_event')
        .values(
          seeds.map((s) => ({
            at: s.at,
            type: s.type,
            outcome: s.outcome,
            interaction_id: s.interaction ?? null,
            method: s.method ?? null,
            amr: s.amr ? JSON.stringify(s.amr) : null,
            reason: s.reason ?? null,
            detail: s.detail ? JSON.stringify(s.detail) : null,
            instance_id: 'test',
          })),
        )
        .execute();
    });
    afterAll(async () => {
      await env?.close();
    });

    it('counts logins by level and method, two-factor and phishing-resistant shares, failures, PSC, RPPS', async () => {
      const report = await monthlyReport(env.db, {
        month: '2026-03',
        levels,
        pscPhishingResistantAuthModes: ['CARD'],
      });
      expect(report).toEqual({
        month: '2026-03',
        timeZone: 'Europe/Paris',
        firstSeq: '1',
        lastSeq: '18',
        records: 18,
        logins: {
          total: 4,
          twoFactor: 3,
          phishingResistant: 2,
          byLevel: {
            'urn:passerelle:loa:high': 2,
            'urn:passerelle:loa:substantial': 1,
            'urn:passerelle:loa:low': 1,
          },
          byMethod: { password: 2, webauthn: 1, psc: 2 },
        },
        failures: { total: 3, byReason: { bad_password: 2, ad_52e: 1 }, byMethod: { password: 2, ldap: 1 } },
        lockouts: 1,
        pscFederations: { accepted: 2, refused: 1, refusedByReason: { not_member: 1 } },
        rppsLinkChanges: { created: 2, removed: 1 },
        syncRuns: { completed: 1, halted: 1 },
      });
      const text = reportText(report);
      expect(text.split('\n').slice(0, 7)).toEqual([
        "Passerelle — rapport d'audit mensuel / monthly audit report: 2026-03 (Europe/Paris)",
        'Enregistrements / records: 18 (seq 1..18)',
        '',
        'Connexions / Logins',
        '-------------------',
        `  ${'total'.padEnd(50)} ${'4'.padStart(8)}`,
        `  ${'double facteur / two-factor'.padEnd(50)} ${'3 (75.0 %)'.padStart(8)}`,
      ]);
      expect(text).toContain('Fédérations Pro Santé Connect / Pro Santé Connect federations');
      expect(text).toContain(`  ${'not_member'.padEnd(50)} ${'1'.padStart(8)}`);
      // Stable: the same month gives the same text.
      expect(
        reportText(
          await monthlyReport(env.db, { month: '2026-03', levels, pscPhishingResistantAuthModes: ['CARD'] }),
        ),
      ).toBe(text);
    });

    it('an empty month, and a UTC month', async () => {
      const empty = await monthlyReport(env.db, {
        month: '2025-12',
        levels,
        pscPhishingResistantAuthModes: [],
      });
      expect(empty).toMatchObject({ records: 0, firstSeq: null, logins: { total: 0 } });
      expect(reportText(empty)).toContain('(aucun / none)');
      const utc = await monthlyReport(env.db, {
        month: '2026-03',
        levels,
        pscPhishingResistantAuthModes: [],
        timeZone: 'UTC',
      });
      // Without CARD as phishing resistant, only the security key login is; i2 moves out, i9 in.
      expect(utc.logins).toMatchObject({ total: 4, phishingResistant: 1 });
      expect(utc.records).toBe(18);
    });
  });
}
