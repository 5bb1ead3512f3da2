import type { Command } from 'commander';
import type { NationalIdentity, ReviewItem } from '../accounts/national-identity.ts';
import { ReviewDecisionError } from '../accounts/national-identity.ts';
import type { Services } from '../app.ts';
import type { NationalProfessional } from '../rpps/fhir.ts';
import { normaliseIdNat } from '../rpps/identifiers.ts';
import { namesConsistent } from '../rpps/names.ts';
import { createRpps } from '../rpps/runtime.ts';
import type { SyncSummary } from '../rpps/sync.ts';
import { accountNamed, operator, withServices } from './admin.ts';
import { CliError, cliTime, out, ProgressLine } from './context.ts';

/** Exit codes of `rpps sync`: halted by the circuit breaker, and another instance running it. */
const EXIT_HALTED = 3;
const EXIT_BUSY = 75;

/** Where an identity comes from, for people: the RPPS or Pro Santé Identité. */
const REGISTRY = { rpps: 'RPPS', psi: 'Pro Santé Identité' } as const;

function describeLink(link: NationalIdentity, time: ReturnType<typeof cliTime>): string {
  const names = [link.nationalGivenName, link.nationalFamilyName].filter(Boolean).join(' ');
  return [
    link.origin === 'psi' ? `${link.idNat} (${REGISTRY.psi})` : `${link.idNat} (RPPS ${link.rpps ?? '-'})`,
    `status ${link.status}${link.statusReason ? ` (${link.statusReason})` : ''}`,
    `source ${link.source}`,
    `verified ${time(link.verifiedAt, 'never')}`,
    names && `national name ${names}`,
    link.professionCode && `profession ${link.professionCode}`,
  ]
    .filter(Boolean)
    .join(', ');
}

function printSummary(s: SyncSummary): void {
  const c = s.changed;
  out(
    `sync ${s.status} (${s.mode}${s.offline ? ', offline: open-data index' : ''}) in ${(s.durationMs / 1000).toFixed(1)} s, ${s.apiRequests} API requests`,
  );
  out(`  links: ${s.links}; checked: ${s.checked}; unchanged: ${s.unchanged}; failed: ${s.failed}`);
  out(
    `  changed: verified ${c.verified}, refreshed ${c.refreshed}, inactive ${c.inactive}, reactivated ${c.reactivated}, conflict ${c.conflict}, linked from directory ${c.linked}, name-match candidates ${c.candidates}`,
  );
  out(
    `  unsettled: ${s.unsettled}; names differing on proven links: ${s.namesDiffer}; ambiguous names: ${s.ambiguousNames}`,
  );
  // Runs recorded before this report existed have no `api`.
  const api = s.api;
  if (api && (api.retries > 0 || api.restarts > 0 || api.incomplete > 0))
    out(
      `  API: ${api.retries} retries (quota 429: ${api.rateLimited}, gateway 504: ${api.gatewayTimeouts}, other: ${api.otherFailures}), ${api.restarts} queries restarted, ${api.incomplete} incomplete answers, ${(api.throttledMs / 1000).toFixed(1)} s waited for the quota`,
    );
  if (s.halted) {
    out(
      `  HALTED: ${s.halted.statusChanges} status changes exceed the limit of ${s.halted.limit}; nothing applied.`,
    );
    for (const item of s.halted.sample) out(`    ${item.change} ${item.idNat} (account ${item.accountId})`);
    out('  Check these, then apply with: passerelle rpps sync --force');
  }
  if (s.error) out(`  error: ${s.error}`);
}

async function describeReview(services: Services, item: ReviewItem): Promise<string[]> {
  const account = await services.accounts.findById(item.accountId);
  const other = item.otherAccountId ? await services.accounts.findById(item.otherAccountId) : undefined;
  const national = item.evidence.national as Record<string, unknown> | null | undefined;
  const lines = [
    `${item.id}  ${item.kind}  ${cliTime(services.config)(item.createdAt)}`,
    `  account      ${account?.username ?? item.accountId}: ${account?.givenName ?? ''} ${account?.familyName ?? ''}`.trimEnd(),
    `  proposed     ${item.idNat} (${REGISTRY[item.origin]}) from ${item.source}`,
  ];
  if (national) {
    lines.push(
      `  RPPS says    ${national.givenName ?? ''} ${national.familyName ?? ''}, profession ${national.professionCode ?? '-'}`,
    );
  }
  const before = item.evidence.ownLinkBefore as Record<string, unknown> | null | undefined;
  if (before) {
    const registry = REGISTRY[before.origin === 'psi' ? 'psi' : 'rpps'];
    lines.push(`  own link     ${before.idNat} (${registry}, ${before.status}, ${before.source})`);
  }
  if (other)
    lines.push(
      `  held by      ${other.username}: ${other.givenName ?? ''} ${other.familyName ?? ''}`.trimEnd(),
    );
  if (item.evidence.reason) lines.push(`  reason       ${item.evidence.reason}`);
  const proposal = item.evidence.proposal as Record<string, unknown> | undefined;
  if (proposal && Object.keys(proposal).length) lines.push(`  evidence     ${JSON.stringify(proposal)}`);
  return lines;
}

/** `passerelle rpps sync|status|review|link|lookup|runs` and `passerelle alerts`. */
export function addRppsLinkCommands(rpps: Command, program: Command): void {
  rpps
    .command('sync')
    .description('verify the links against the Annuaire Santé now (delta, or full pass past 30 days)')
    .option('--full', 'look up every link, not only what changed', false)
    .option('--force', 'apply even beyond the circuit breaker (after checking a halted run)', false)
    .action(async (opts, command: Command) => {
      await withServices(command, async (services) => {
        const { sync } = createRpps(services);
        const progress = new ProgressLine(process.stderr);
        const result = await sync
          .run({
            trigger: 'command',
            full: opts.full,
            force: opts.force,
            onProgress: ({ phase, done, total }) => progress.show(`rpps sync: ${phase} ${done}/${total}`),
          })
          .finally(() => progress.end());
        if (result.kind === 'busy')
          throw new CliError('another instance is running the RPPS sync', EXIT_BUSY);
        printSummary(result.summary);
        if (result.summary.status === 'halted') process.exitCode = EXIT_HALTED;
        if (result.summary.status === 'failed') process.exitCode = 1;
      });
    });

  rpps
    .command('status')
    .description("a user's national identity link, or an overview of links, reviews, runs and the index")
    .argument('[username]')
    .action(async (username: string | undefined, _opts, command: Command) => {
      await withServices(command, async (services) => {
        if (username) {
          const account = await accountNamed(services, username);
          const link = await services.identities.findByAccount(account.id);
          out(link ? describeLink(link, cliTime(services.config)) : `${username}: no national identity link`);
          return;
        }
        const { sync, index, alerts } = createRpps(services);
        const links = await services.identities.list();
        const counts = new Map<string, number>();
        for (const l of links)
          counts.set(`${l.status}/${l.source}`, (counts.get(`${l.status}/${l.source}`) ?? 0) + 1);
        out(`links: ${links.length}`);
        for (const [key, n] of [...counts].sort()) out(`  ${key}: ${n}`);
        const psi = links.filter((l) => l.origin === 'psi').length;
        if (psi) out(`  from Pro Santé Identité (not checked against the RPPS): ${psi}`);
        out(`open reviews: ${(await services.identities.openReviews()).length}`);
        out(`open alerts: ${(await alerts.open()).length}`);
        const [last] = await sync.runs(1);
        out(
          last
            ? `last sync: ${last.status} (${last.mode}, ${last.trigger}) started ${cliTime(services.config)(last.started_at)}`
            : 'last sync: never',
        );
        const current = await index.current();
        out(
          current
            ? `open-data index: ${current.fileName}, imported ${cliTime(services.config)(current.completedAt)}`
            : 'open-data index: none (passerelle rpps import <file>)',
        );
      });
    });

  rpps
    .command('runs')
    .description('the last sync runs and their summaries')
    .option('-n, --limit <n>', 'how many', '10')
    .action(async (opts, command: Command) => {
      await withServices(command, async (services) => {
        for (const run of await createRpps(services).sync.runs(Number(opts.limit) || 10)) {
          out(
            `${cliTime(services.config)(run.started_at)}  ${run.status}  ${run.mode}  ${run.trigger}  ${run.instance_id}`,
          );
          if (run.summary) printSummary(run.summary as unknown as SyncSummary);
        }
      });
    });

  const review = rpps
    .command('review')
    .description('candidates and conflicts awaiting an administrator (list, accept, reject)')
    .action(async (_opts, command: Command) => {
      await withServices(command, async (services) => {
        const items = await services.identities.openReviews();
        if (!items.length) out('nothing to review');
        for (const item of items) for (const line of await describeReview(services, item)) out(line);
      });
    });
  for (const decision of ['accept', 'reject'] as const) {
    review
      .command(decision)
      .description(
        decision === 'accept'
          ? 'make the proposal the verified link (the other account loses its link to that identifier)'
          : "discard the proposal, restore the account's previous link; it is not proposed again",
      )
      .argument('<id>', 'review item id (from passerelle rpps review)')
      .option('--by <name>', 'operator name for the audit trail')
      .action(async (id: string, opts, command: Command) => {
        await withServices(command, async (services) => {
          const item = await services.identities.findReview(id);
          if (!item) throw new CliError(`no review item ${id}`);
          try {
            const decided = await services.identities.decide(id, decision, operator(opts.by));
            out(`${decided.kind} ${decided.idNat} for account ${item.accountId}: ${decided.state}`);
          } catch (err) {
            if (err instanceof ReviewDecisionError) throw new CliError(`review ${id}: ${err.message}`);
            throw err;
          }
        });
      });
  }

  rpps
    .command('link')
    .description(
      "set a user's national identity by hand, verified against the Annuaire Santé (source manual)",
    )
    .argument('<username>')
    .argument('<rpps>', 'RPPS number (11 digits) or idNatPS')
    .option('--accept-different-names', 'link although the exercise names differ from the account', false)
    .option('--by <name>', 'operator name for the audit trail')
    .action(async (username: string, value: string, opts, command: Command) => {
      await withServices(command, async (services) => {
        const idNat = normaliseIdNat(value);
        if (!idNat) throw new CliError(`${value}: not an RPPS number (11 digits, Luhn key) nor an idNatPS`);
        const account = await accountNamed(services, username);
        const { client } = createRpps(services);
        if (!client)
          throw new CliError('rpps.api.apiKey is not configured: a manual link is verified against the API');
        const national = (await client.findByIdentifiers([idNat])).get(idNat);
        if (!national) throw new CliError(`${idNat} is not in the Annuaire Santé`);
        if (!national.active) throw new CliError(`${idNat} is no longer active in the RPPS`);
        const consistent = namesConsistent(account, national);
        if (!consistent && !opts.acceptDifferentNames) {
          throw new CliError(
            `names differ: account ${account.givenName ?? ''} ${account.familyName ?? ''}, RPPS ${national.givenName ?? ''} ${national.familyName ?? ''} (--accept-different-names to link anyway)`,
          );
        }
        const outcome = await services.identities.propose({
          accountId: account.id,
          idNat,
          source: 'manual',
          verified: true,
          national: {
            familyName: national.familyName,
            givenName: national.givenName,
            professionCode: national.professionCode,
            categoryCode: national.categoryCode,
            roleCodes: national.roleCodes,
          },
          evidence: { namesConsistent: consistent },
          actor: operator(opts.by),
        });
        if (outcome.kind === 'conflict') {
          throw new CliError(`conflict with an existing link, queued for review as ${outcome.reviewId}`);
        }
        if (outcome.kind === 'rejected')
          throw new CliError('this link was rejected by an administrator before');
        if (outcome.kind === 'inactive') throw new CliError(`the link of ${username} is inactive`);
        out(
          `${username} linked to ${idNat} (${national.givenName ?? ''} ${national.familyName ?? ''}, verified)`,
        );
      });
    });

  rpps
    .command('lookup')
    .description('look a professional up in the Annuaire Santé (helpdesk)')
    .argument('[rpps]', 'RPPS number or idNatPS')
    .option('--family <name>', 'exercise family name')
    .option('--given <name>', 'exercise given name')
    .action(async (value: string | undefined, opts, command: Command) => {
      await withServices(command, async (services) => {
        const { client } = createRpps(services);
        if (!client) throw new CliError('rpps.api.apiKey is not configured');
        let found: NationalProfessional[];
        if (value) {
          const idNat = normaliseIdNat(value);
          if (!idNat) throw new CliError(`${value}: not an RPPS number nor an idNatPS`);
          found = [...(await client.findByIdentifiers([idNat])).values()];
        } else if (opts.family) {
          found = await client.searchByName(opts.family, opts.given);
        } else {
          throw new CliError('give an RPPS number or --family');
        }
        if (!found.length) out('not found');
        for (const p of found) {
          out(
            `${p.idNatPs}  ${p.active ? 'active' : 'INACTIVE'}  ${p.givenName ?? ''} ${p.familyName ?? ''}  profession ${p.professionCode ?? '-'} ${p.professionLabel ?? ''}  roles ${p.roleCodes.join(' ') || '-'}`,
          );
        }
      });
    });

  const alerts = program
    .command('alerts')
    .description('alerts for administrators (professionals no longer active…)');
  alerts
    .command('list', { isDefault: true })
    .description('open alerts, oldest first')
    .action(async (_opts, command: Command) => {
      await withServices(command, async (services) => {
        const open = await createRpps(services).alerts.open();
        if (!open.length) out('no open alert');
        for (const a of open)
          out(`${a.id}  ${cliTime(services.config)(a.createdAt)}  ${a.kind}  ${a.message}`);
      });
    });
  alerts
    .command('ack')
    .description('acknowledge an alert')
    .argument('<id>')
    .option('--by <name>', 'operator name')
    .action(async (id: string, opts, command: Command) => {
      await withServices(command, async (services) => {
        if (!(await createRpps(services).alerts.acknowledge(id, operator(opts.by)))) {
          throw new CliError(`no open alert ${id}`);
        }
        out(`alert ${id} acknowledged`);
      });
    });
}
