import { KeyObject, verify } from 'node:crypto';
import { type ChainRow, chainHash, GENESIS_HASH } from './canonical.ts';
import type { ChainLink } from './chain.ts';
import { auditKeyId, type Checkpoint, checkpointPayload } from './checkpoints.ts';
import type { AuditKeyring } from './keyring.ts';

/**
 * What is wrong at `seq`: `altered` (content does not match its hash, or a signed checkpoint), `deleted`
 * (a record missing: seq gap, broken link), `inserted` (a record that was not in the chain), `reordered`
 * (a record out of its place), `truncated` (records a checkpoint signed are gone from the end),
 * `bad-checkpoint` (a checkpoint whose signature does not verify, or signed by a key that is not trusted).
 */
export type ProblemKind = 'altered' | 'deleted' | 'inserted' | 'reordered' | 'truncated' | 'bad-checkpoint';

export interface ChainProblem {
  kind: ProblemKind;
  seq: string;
  message: string;
}

export interface VerifySummary {
  /** Records read (up to the first problem). */
  rows: number;
  /** Checkpoints whose signature was checked. */
  checkpoints: number;
  firstSeq: string | undefined;
  lastSeq: string | undefined;
  /** False when the first record's link could not be checked (a range starting after purged records). */
  anchored: boolean;
  durationMs: number;
}

export type VerifyResult = { summary: VerifySummary } & (
  | { kind: 'ok' }
  | { kind: 'problem'; problem: ChainProblem }
);

export interface VerifyOptions {
  /**
   * The link before the first record (the row before a range). Default: the genesis when the first
   * record is seq 1, else a checkpoint at the seq before it.
   */
  anchor?: ChainLink;
  /** Accept a first record whose predecessor is unknown (a range); otherwise it is a deletion. */
  allowUnanchored?: boolean;
}

const next = (seq: string) => (BigInt(seq) + 1n).toString();
const previous = (seq: string) => (BigInt(seq) - 1n).toString();
const rehash = (row: ChainRow, seq: string) => chainHash({ ...row, seq });

/**
 * Recomputes each record's hash and link in seq order and checks every checkpoint (sorted by seq): its
 * signature, and that it matches the record it signs. Stops at the first problem. Memory stays constant
 * in the number of rows (the checkpoints are held in memory).
 */
export async function verifyChain(
  rows: AsyncIterable<ChainRow> | Iterable<ChainRow>,
  checkpoints: readonly Checkpoint[],
  keys: KeyObject | AuditKeyring,
  options: VerifyOptions = {},
): Promise<VerifyResult> {
  const started = performance.now();
  const keyring: AuditKeyring = keys instanceof KeyObject ? new Map([[auditKeyId(keys), keys]]) : keys;
  const summary: VerifySummary = {
    rows: 0,
    checkpoints: 0,
    firstSeq: undefined,
    lastSeq: undefined,
    anchored: true,
    durationMs: 0,
  };
  const done = (problem?: ChainProblem): VerifyResult => {
    summary.durationMs = performance.now() - started;
    return problem ? { kind: 'problem', problem, summary } : { kind: 'ok', summary };
  };
  const signatureProblem = (c: Checkpoint): ChainProblem | undefined => {
    summary.checkpoints++;
    const publicKey = keyring.get(c.keyId);
    if (!publicKey)
      return {
        kind: 'bad-checkpoint',
        seq: c.seq,
        message: `checkpoint ${c.seq} is signed by key ${c.keyId}, which is not a trusted audit key`,
      };
    if (verify(null, checkpointPayload(c), publicKey, Buffer.from(c.signature, 'base64url')))
      return undefined;
    return { kind: 'bad-checkpoint', seq: c.seq, message: `checkpoint ${c.seq}: signature does not verify` };
  };

  const iterator =
    Symbol.asyncIterator in rows
      ? rows[Symbol.asyncIterator]()
      : (rows as Iterable<ChainRow>)[Symbol.iterator]();
  let cp = 0;
  let link: ChainLink | undefined = options.anchor;
  for (let result = await iterator.next(); !result.done; result = await iterator.next()) {
    const row = result.value;
    const seq = BigInt(row.seq);
    summary.rows++;
    summary.firstSeq ??= row.seq;
    if (summary.lastSeq !== undefined && seq <= BigInt(summary.lastSeq))
      return done({
        kind: 'reordered',
        seq: row.seq,
        message: `record ${row.seq} comes after ${summary.lastSeq}`,
      });
    summary.lastSeq = row.seq;

    // Checkpoints before this record: their signature, and the anchor of the first record.
    let signed: Checkpoint | undefined;
    for (; cp < checkpoints.length && BigInt(checkpoints[cp]?.seq ?? 0) <= seq; cp++) {
      const c = checkpoints[cp] as Checkpoint;
      const problem = signatureProblem(c);
      if (problem) return done(problem);
      if (c.seq === row.seq) signed = c;
      else if (link === undefined && c.seq === previous(row.seq)) link = c;
    }
    if (link === undefined) {
      if (row.seq === '1') link = { seq: '0', hash: GENESIS_HASH };
      else if (options.allowUnanchored) {
        summary.anchored = false;
        link = { seq: previous(row.seq), hash: row.prev_hash };
      } else
        return done({
          kind: 'deleted',
          seq: previous(row.seq),
          message: `record ${previous(row.seq)} is missing: the trail starts at ${row.seq} without a checkpoint before it`,
        });
    }

    if (seq > BigInt(link.seq) + 1n) {
      const expectedSeq = next(link.seq);
      const missing = row.seq === next(expectedSeq) ? expectedSeq : `${expectedSeq}–${previous(row.seq)}`;
      return done({ kind: 'deleted', seq: expectedSeq, message: `record(s) ${missing} missing` });
    }
    // The usual case first; linkProblem names what is wrong otherwise.
    const linked = row.prev_hash === link.hash && chainHash(row) === row.hash;
    const problem = linked ? undefined : await linkProblem(row, link, iterator);
    if (problem) return done(problem);
    if (signed && signed.hash !== row.hash)
      return done({
        kind: 'altered',
        seq: row.seq,
        message: `record ${row.seq} differs from the one checkpoint ${signed.seq} signed`,
      });
    link = { seq: row.seq, hash: row.hash };
  }

  // A checkpoint beyond the last record: the records it signed were cut off the end.
  const beyond = checkpoints[cp];
  if (beyond) {
    const problem = signatureProblem(beyond);
    if (problem) return done(problem);
    const from = link ? next(link.seq) : '1';
    return done({
      kind: 'truncated',
      seq: from,
      message: `records ${from}–${beyond.seq} are missing: checkpoint ${beyond.seq} signed them`,
    });
  }
  return done();
}

/** Why `row` does not follow `link`, named as precisely as its content allows. */
async function linkProblem(
  row: ChainRow,
  link: ChainLink,
  rest: AsyncIterator<ChainRow> | Iterator<ChainRow>,
): Promise<ChainProblem | undefined> {
  const selfConsistent = chainHash(row) === row.hash;
  if (selfConsistent && row.prev_hash === link.hash) return undefined;
  const seq = row.seq;
  if (selfConsistent && link.seq === '0')
    return { kind: 'altered', seq, message: `record ${seq} does not start from the genesis hash` };
  if (selfConsistent)
    // A record whose hash was recomputed after a change: the link held by its successor no longer matches.
    return {
      kind: 'altered',
      seq: link.seq,
      message: `record ${seq} does not link to record ${link.seq}: record ${link.seq} was rewritten`,
    };
  if (rehash(row, previous(seq)) === row.hash)
    return {
      kind: 'inserted',
      seq: previous(seq),
      message: `record ${previous(seq)} was inserted: the records after it were renumbered`,
    };
  if (row.prev_hash !== link.hash) {
    // Content from elsewhere in the chain: the record its link names comes later.
    for (let result = await rest.next(); !result.done; result = await rest.next()) {
      if (result.value.hash === row.prev_hash)
        return {
          kind: 'reordered',
          seq,
          message: `record ${seq} holds content that follows record ${result.value.seq}`,
        };
    }
    if (rehash(row, next(seq)) === row.hash)
      return {
        kind: 'deleted',
        seq,
        message: `record ${seq} was deleted: the records after it were renumbered`,
      };
  }
  return { kind: 'altered', seq, message: `record ${seq}: content does not match its hash` };
}

export function problemLine(problem: ChainProblem): string {
  return `${problem.kind} at seq ${problem.seq}: ${problem.message}`;
}

export function summaryLine(result: VerifyResult): string {
  const s = result.summary;
  const range = s.firstSeq === undefined ? 'no records' : `seq ${s.firstSeq}–${s.lastSeq}`;
  const anchored = s.anchored ? '' : ', first link not checked (range start)';
  const verdict = result.kind === 'ok' ? 'ok' : 'FAILED';
  return `audit verify ${verdict}: ${s.rows} records, ${s.checkpoints} checkpoints, ${range}${anchored}, ${(s.durationMs / 1000).toFixed(1)} s`;
}
