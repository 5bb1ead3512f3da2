import type { Command } from 'commander';
import { type ImportProgress, type ImportSummary, importOpenDataFile } from '../rpps/open-data.ts';
import { withServices } from './admin.ts';
import { CliError, out, ProgressLine } from './context.ts';
import { addRppsLinkCommands } from './rpps-links.ts';

export function registerRpps(program: Command): void {
  const rpps = program
    .command('rpps')
    .description('national identities of health professionals (RPPS reconciliation, docs/rpps.md)');
  addRppsLinkCommands(rpps, program);
  rpps
    .command('import')
    .description('load the open-data extract PS_LibreAcces_Personne_activite_*.txt into the local index')
    .argument('<file>', 'the extract (pipe-separated, UTF-8)')
    .option('--json', 'print the summary as JSON', false)
    .action(async (file: string, opts: { json: boolean }, command: Command) => {
      await withServices(command, async ({ database }) => {
        const progress = new ProgressLine(process.stderr);
        const outcome = await importOpenDataFile(database.db, file, {
          onProgress: (p) => progress.show(importProgressLine(p)),
        }).finally(() => progress.end());
        if (outcome.kind === 'refused')
          throw new CliError(`rpps import: ${outcome.reason}; the index is unchanged`);
        if (opts.json) out(JSON.stringify(outcome.summary, null, 2));
        else for (const line of summaryLines(outcome.summary)) out(line);
      });
    });
}

function summaryLines(s: ImportSummary): string[] {
  const lines = [
    `imported ${s.file} as generation ${s.generation} in ${(s.durationMs / 1000).toFixed(1)} s`,
    `lines ${s.lines}, rows ${s.rows}, persons ${s.persons}, malformed lines ${s.malformed} (skipped)`,
  ];
  for (const m of s.malformedLines) lines.push(`  line ${m.line}: ${m.reason}`);
  const unlisted = s.malformed - s.malformedLines.length;
  if (unlisted > 0) lines.push(`  … and ${unlisted} more malformed lines`);
  return lines;
}

export function importProgressLine(p: ImportProgress): string {
  const mb = (bytes: number) => (bytes / 1e6).toFixed(0);
  const share = p.totalBytes ? ` (${Math.floor((100 * p.bytes) / p.totalBytes)} %)` : '';
  return `rpps import: ${p.lines} lines, ${mb(p.bytes)}${p.totalBytes ? ` / ${mb(p.totalBytes)}` : ''} MB${share}`;
}
