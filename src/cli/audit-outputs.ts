import { createWriteStream, type WriteStream } from 'node:fs';
import { finished } from 'node:stream/promises';
import type { Command } from 'commander';
import type { Services } from '../app.ts';
import {
  type ChainVerifier,
  type ExportFormat,
  exportAudit,
  parseRangeBound,
  type RangeBound,
  resolveRange,
} from '../audit/export.ts';
import { isMonth, monthlyReport, reportText } from '../audit/report.ts';
import { planPurge, purgeAudit } from '../audit/retention.ts';
import { operator, withServices } from './admin.ts';
import { CliError, cliTime, out } from './context.ts';

/** What the chain module provides to the output commands (src/audit/chain.ts). */
export interface AuditOutputsDeps {
  /** `verifyChain` bound to a database: exports are recorded verified, purges become possible. */
  verifyChain?: (services: Services) => ChainVerifier;
  /** The audit trail's public key (JWK or PEM as the chain module stores it), included in exports. */
  publicKey?: (services: Services) => Promise<unknown>;
  /** Every published audit key with its endorsement (after a rotation), included in JSON Lines exports. */
  auditKeys?: (services: Services) => Promise<unknown[]>;
}

/** `passerelle audit export|report|purge`, under the `audit` command (created here if absent). */
export function registerAuditOutputs(program: Command, deps: AuditOutputsDeps = {}): void {
  const audit =
    program.commands.find((c) => c.name() === 'audit') ??
    program.command('audit').description('the audit trail (docs/audit.md)');
  audit
    .command('export')
    .description('stream a range of the audit trail with its verification material (checkpoints, public key)')
    .option('--from <date|seq>', 'first record: a sequence number, or a date (ISO 8601)')
    .option('--to <date|seq>', 'last record: a sequence number (inclusive), or a date (exclusive)')
    .option('--format <format>', 'jsonl | csv', 'jsonl')
    .option('--out <file>', 'write to this file (CSV: checkpoints in <file>.checkpoints.csv); default stdout')
    .option('--by <operator>', 'who exports, recorded with the export')
    .action(
      async (opts: { from?: string; to?: string; format: string; out?: string; by?: string }, command) => {
        if (opts.format !== 'jsonl' && opts.format !== 'csv') throw new CliError('--format: jsonl or csv');
        const format: ExportFormat = opts.format;
        if (format === 'csv' && !opts.out) {
          throw new CliError('--format csv needs --out: the checkpoints go to <out>.checkpoints.csv');
        }
        const from = bound('--from', opts.from);
        const to = bound('--to', opts.to);
        await withServices(command, async (services) => {
          const { database, config } = services;
          const db = database.db;
          const range = await resolveRange(db, from, to);
          if (!range) throw new CliError('audit export: no record in this range');
          const files: WriteStream[] = [];
          const open = (path: string) => {
            const stream = createWriteStream(path, { flags: 'wx' });
            files.push(stream);
            return stream;
          };
          const summary = await exportAudit(db, {
            range,
            format,
            out: opts.out ? open(opts.out) : process.stdout,
            checkpointsOut: format === 'csv' ? open(`${opts.out}.checkpoints.csv`) : undefined,
            instance: config.issuer,
            actor: operator(opts.by),
            verifyChain: deps.verifyChain?.(services),
            publicKey: await deps.publicKey?.(services),
            auditKeys: await deps.auditKeys?.(services),
          });
          for (const file of files) file.end();
          await Promise.all(files.map((file) => finished(file)));
          const { verification: v } = summary;
          const state =
            v === 'verified' ? 'chain verified' : v === 'not_run' ? 'chain not verified' : 'CHAIN BROKEN';
          process.stderr.write(
            `audit export: records ${range.fromSeq}..${range.toSeq} (${summary.records}), ` +
              `${summary.checkpoints} checkpoints, ${state}, export ${summary.exportId}\n`,
          );
          if (typeof v === 'object') throw new CliError(`audit export: record ${v.seq}: ${v.problem}`, 2);
        });
      },
    );
  audit
    .command('report')
    .description('monthly compliance figures: logins by method and level, failures, lockouts, PSC, RPPS')
    .requiredOption('--month <YYYY-MM>', "calendar month in the establishment's time zone (ui.timeZone)")
    .option('--format <format>', 'text | json', 'text')
    .action(async (opts: { month: string; format: string }, command) => {
      if (!isMonth(opts.month)) throw new CliError('--month: YYYY-MM');
      if (opts.format !== 'text' && opts.format !== 'json') throw new CliError('--format: text or json');
      await withServices(command, async ({ database, config }) => {
        const report = await monthlyReport(database.db, {
          month: opts.month,
          levels: config.policy.levels,
          pscPhishingResistantAuthModes: config.pscLogin?.phishingResistantAuthModes ?? [],
          timeZone: config.ui.timeZone,
        });
        if (opts.format === 'json') out(JSON.stringify(report, null, 2));
        else process.stdout.write(reportText(report));
      });
    });
  audit
    .command('purge')
    .description(
      'delete records past audit.retention.days that were exported and verified (dry run by default)',
    )
    .option('--before <date>', 'purge only records older than this date (ISO 8601)')
    .option('--yes', 'delete (without it, only print what would be deleted)', false)
    .option('--by <operator>', 'who purges, recorded in the audit trail')
    .action(async (opts: { before?: string; yes: boolean; by?: string }, command) => {
      const before = opts.before === undefined ? undefined : new Date(opts.before);
      if (before && Number.isNaN(before.getTime())) throw new CliError('--before: an ISO 8601 date');
      await withServices(command, async (services) => {
        const { database, config, audit: trail } = services;
        const retentionDays = config.audit.retention.days;
        if (retentionDays === undefined) {
          throw new CliError('audit purge: audit.retention.days is not set, the trail is kept forever');
        }
        const plan = await planPurge(database.db, { retentionDays, before });
        const kept = plan.keptFrom
          ? `; kept from record ${plan.keptFrom.seq} (${plan.keptFrom.because})`
          : '';
        if (plan.throughSeq === null) {
          out(`nothing to purge before ${cliTime(config)(plan.cutoff)}${kept}`);
          return;
        }
        const what = `records ${plan.firstSeq}..${plan.throughSeq} (${plan.records}), older than ${cliTime(config)(plan.cutoff)}`;
        if (!opts.yes) {
          out(`would purge ${what}${kept}; run again with --yes to delete`);
          return;
        }
        const outcome = await purgeAudit(database.db, plan, {
          audit: trail,
          actor: operator(opts.by),
          verifyChain: deps.verifyChain?.(services),
        });
        if (outcome.kind === 'refused') {
          throw new CliError(`audit purge refused: record ${outcome.seq}: ${outcome.problem}`, 2);
        }
        out(`purged ${what}; checkpoints kept${kept}`);
      });
    });
}

function bound(option: string, text: string | undefined): RangeBound | undefined {
  if (text === undefined) return undefined;
  const parsed = parseRangeBound(text);
  if (!parsed) throw new CliError(`${option}: a sequence number or an ISO 8601 date`);
  return parsed;
}
