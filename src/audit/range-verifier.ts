import type { KeyObject } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Sealer } from '../crypto/sealer.ts';
import type { Database } from '../db/types.ts';
import { AuditSigningKey, listCheckpoints, publicKeyExport } from './checkpoints.ts';
import type { AuditRow, ChainVerifier } from './export.ts';
import { type AuditKeyring, installationKeyring, publishedKeys } from './keyring.ts';
import { problemLine, verifyChain } from './verify.ts';

/**
 * The chain verification of a range for the export and the purge: the range's rows against the
 * checkpoints that fall in it (and the one just before, which anchors its first record).
 */
export function rangeVerifier(db: Kysely<Database>, keys: KeyObject | AuditKeyring): ChainVerifier {
  return async (rows, range) => {
    async function* chained(source: AsyncIterable<AuditRow>) {
      for await (const row of source) {
        yield { ...row, at: new Date(row.at), prev_hash: row.prev_hash ?? '', hash: row.hash ?? '' };
      }
    }
    const before = (BigInt(range.fromSeq) - 1n).toString();
    const checkpoints = await listCheckpoints(db, { from: before, to: range.toSeq });
    const result = await verifyChain(chained(rows), checkpoints, keys, { allowUnanchored: true });
    return result.kind === 'ok'
      ? { ok: true }
      : { ok: false, seq: result.problem.seq, problem: problemLine(result.problem) };
  };
}

/**
 * What an export carries to be verified offline, and its verification before it is written: the
 * installation's own keys (the first and those it endorsed). Used by `passerelle audit export` and the console.
 */
export const installationExportMaterial = {
  verifyChain:
    (db: Kysely<Database>): ChainVerifier =>
    async (rows, range) =>
      rangeVerifier(db, await installationKeyring(db))(rows, range),
  publicKey: async (db: Kysely<Database>, sealer: Sealer) =>
    publicKeyExport((await AuditSigningKey.load(db, sealer)).publicKey).jwk,
  auditKeys: (db: Kysely<Database>): Promise<unknown[]> => publishedKeys(db),
};
