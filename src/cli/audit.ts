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
import { installationKeyring, publishedKeys, rotateAuditKey, trustedKeyring } from '../audit/keyring.ts';
import { problemLine, summaryLine, verifyChain } from '../audit/verify.ts';
import type { Database } from '../db/types.ts';
import { operator, withServices } from './admin.ts';
import { CliError, cliTime, out } from './context.ts';

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
      'an audit public key (PEM or JWK) taken from `audit public-key` and trusted, with the keys it endorsed ' +
        "by rotation; default: the installation's first key",
    )
    .action(async (opts: { from?: string; to?: string; publicKey?: string }, command: Command) => {
      await withServices(command, async ({ database, sealer }) => {
        const db = database.db;
        // The auditor's key (or the installation's first one), and the keys endorsed from it by rotations.
        await AuditSigningKey.load(db, sealer);
        const keys = opts.publicKey
          ? trustedKeyring([parsePublicKey(await readFile(opts.publicKey, 'utf8'))], await publishedKeys(db))
          : await installationKeyring(db);
        const from = opts.from === undefined ? undefined : await seqOf(db, opts.from, 'from');
        const to = opts.to === undefined ? undefined : await seqOf(db, opts.to, 'to');
        const anchor = from === undefined ? undefined : await linkBefore(db, from);
        const checkpointsFrom = from === undefined ? undefined : (BigInt(from) - 1n).toString();
        const result = await verifyChain(
          chainRows(db, { from, to }),
          await listCheckpoints(db, { from: checkpointsFrom, to }),
          keys,
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
    .command('keys')
    .description('list the audit keys: the first one, and each rotation with the key that endorsed it')
    .action(async (_opts, command: Command) => {
      await withServices(command, async ({ database, sealer, config }) => {
        const time = cliTime(config);
        const current = await AuditSigningKey.load(database.db, sealer);
        for (const key of await publishedKeys(database.db)) {
          const origin = key.endorsedBy ? `endorsed by ${key.endorsedBy}` : 'first key';
          const state = key.keyId === current.keyId ? 'current' : `retired ${time(key.retiredAt)}`;
          out(`${key.keyId}  created ${time(key.createdAt)}  ${origin}  ${state}`);
        }
      });
    });
  audit
    .command('rotate-key')
    .description(
      'replace the checkpoint signing key: checkpoint with the old key, publish the new one endorsed by it, ' +
        'destroy the old private key, checkpoint with the new key',
    )
    .option('--by <operator>', 'who rotates, recorded in the trail')
    .action(async (opts: { by?: string }, command: Command) => {
      await withServices(command, async ({ database, sealer, audit }) => {
        const checkpoints = new AuditCheckpoints(database.db, () =>
          AuditSigningKey.load(database.db, sealer),
        );
        await checkpoints.write();
        const rotated = await rotateAuditKey(database.db, sealer, audit, operator(opts.by));
        await checkpoints.write();
        out(`audit key rotated: ${rotated.previousKeyId} → ${rotated.keyId}`);
        out(
          'Give the auditor the new public key (`passerelle audit public-key`); the old one still verifies.',
        );
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
