import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import type { Kysely } from 'kysely';
import { type ChainLink, chainRows } from '../audit/chain.ts';
import {
  AuditCheckpoints,
  AuditSigningKey,
  listCheckpoints,
  parsePublicKey,
  publicKeyExport,
} from '../audit/checkpoints.ts';
import { problemLine, summaryLine, verifyChain } from '../audit/verify.ts';
import type { Database } from '../db/types.ts';
import { withServices } from './admin.ts';
import { CliError, out } from './context.ts';

export function registerAudit(program: Command): void {
  const audit = program.command('audit').description('traceability trail (docs/audit.md)');
  audit
    .command('verify')
    .description(
      'recompute the hash chain and check the signed checkpoints; exit code 1 at the first problem',
    )
    .option('--from <seq|date>', 'first record: a sequence number or an ISO-8601 date')
    .option('--to <seq|date>', 'last record: a sequence number or an ISO-8601 date')
    .option(
      '--public-key <file>',
      "the audit public key (PEM or JWK) taken from `audit public-key`; default: the server's",
    )
    .action(async (opts: { from?: string; to?: string; publicKey?: string }, command: Command) => {
      await withServices(command, async ({ database, sealer }) => {
        const db = database.db;
        const publicKey = opts.publicKey
          ? parsePublicKey(await readFile(opts.publicKey, 'utf8'))
          : (await AuditSigningKey.load(db, sealer)).publicKey;
        const from = opts.from === undefined ? undefined : await seqOf(db, opts.from, 'from');
        const to = opts.to === undefined ? undefined : await seqOf(db, opts.to, 'to');
        const anchor = from === undefined ? undefined : await linkBefore(db, from);
        const checkpointsFrom = from === undefined ? undefined : (BigInt(from) - 1n).toString();
        const result = await verifyChain(
          chainRows(db, { from, to }),
          await listCheckpoints(db, { from: checkpointsFrom, to }),
          publicKey,
          { anchor, allowUnanchored: from !== undefined },
        );
        if (result.kind === 'problem') out(problemLine(result.problem));
        out(summaryLine(result));
        if (result.kind === 'problem') process.exitCode = 1;
      });
    });
  audit
    .command('public-key')
    .description('print the public key of the audit checkpoints (PEM, then JWK) for an auditor')
    .action(async (_opts, command: Command) => {
      await withServices(command, async ({ database, sealer }) => {
        const { pem, jwk } = publicKeyExport((await AuditSigningKey.load(database.db, sealer)).publicKey);
        out(pem.trimEnd());
        out(JSON.stringify(jwk));
      });
    });
  audit
    .command('checkpoint')
    .description('sign a checkpoint of the chain now')
    .action(async (_opts, command: Command) => {
      await withServices(command, async ({ database, sealer }) => {
        const key = await AuditSigningKey.load(database.db, sealer);
        const written = await new AuditCheckpoints(database.db, key).write();
        out(written ? `checkpoint at seq ${written.seq} (key ${written.keyId})` : 'nothing new to sign');
      });
    });
}

/** A bound given as a sequence number, or a date: the first record at or after it (--from), the last before (--to). */
async function seqOf(db: Kysely<Database>, bound: string, which: 'from' | 'to'): Promise<string> {
  if (/^\d+$/.test(bound)) return bound;
  const date = new Date(bound);
  if (Number.isNaN(date.getTime()))
    throw new CliError(`--${which} ${bound}: a sequence number or an ISO-8601 date`);
  const query = db.selectFrom('audit_event').select('seq').limit(1);
  const row =
    which === 'from'
      ? await query.where('at', '>=', date).orderBy('at').orderBy('seq').executeTakeFirst()
      : await query.where('at', '<=', date).orderBy('at', 'desc').orderBy('seq', 'desc').executeTakeFirst();
  // No record in the range: an empty range past the end (from) or before the start (to).
  return row ? String(row.seq) : which === 'from' ? '9223372036854775807' : '0';
}

async function linkBefore(db: Kysely<Database>, from: string): Promise<ChainLink | undefined> {
  const row = await db
    .selectFrom('audit_event')
    .select(['seq', 'hash'])
    .where('seq', '=', (BigInt(from) - 1n).toString())
    .executeTakeFirst();
  return row?.hash ? { seq: String(row.seq), hash: row.hash } : undefined;
}
