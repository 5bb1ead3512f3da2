import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
} from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import type { Sealer } from '../crypto/sealer.ts';
import { JobLock } from '../db/job-lock.ts';
import { runPeriodically } from '../db/periodic.ts';
import type { Database } from '../db/types.ts';
import { canonicalJson } from './canonical.ts';
import { type ChainLink, lastLink } from './chain.ts';

export const KEY_SECRET = 'audit_signing_key';
export const KEY_CONTEXT = `app_secret:${KEY_SECRET}`;

/** A signed statement that the chain's record `seq` has hash `hash`. */
export interface Checkpoint {
  seq: string;
  hash: string;
  at: Date;
  keyId: string;
  /** Ed25519 signature (base64url) of checkpointPayload. */
  signature: string;
}

/** The signed bytes: canonical JSON of { at (ISO-8601 UTC, ms), hash, key_id, seq (decimal string) }. */
export function checkpointPayload(c: Omit<Checkpoint, 'signature'>): Buffer {
  return Buffer.from(canonicalJson({ seq: c.seq, hash: c.hash, at: c.at.toISOString(), key_id: c.keyId }));
}

/** Key id: the RFC 7638 JWK thumbprint (SHA-256, base64url) of the public key. */
export function auditKeyId(publicKey: KeyObject): string {
  return createHash('sha256')
    .update(canonicalJson(publicJwk(publicKey)))
    .digest('base64url');
}

/** The members of an Ed25519 public key as a JWK (those its thumbprint covers). */
export function publicJwk(publicKey: KeyObject): Record<string, string> {
  const jwk = publicKey.export({ format: 'jwk' });
  return { crv: String(jwk.crv), kty: String(jwk.kty), x: String(jwk.x) };
}

/** The public half as an auditor takes it away: PEM (SPKI) and JWK. */
export function publicKeyExport(publicKey: KeyObject): { pem: string; jwk: Record<string, unknown> } {
  const kid = auditKeyId(publicKey);
  return {
    pem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg: 'EdDSA', use: 'sig' },
  };
}

/** Reads a public key given as PEM (SPKI) or as a JWK (JSON). */
export function parsePublicKey(text: string): KeyObject {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) return createPublicKey({ key: JSON.parse(trimmed), format: 'jwk' });
  return createPublicKey(trimmed);
}

/** The audit trail's own Ed25519 key (no other use), sealed in app_secret, created at first use. */
export class AuditSigningKey {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly keyId: string;

  constructor(privateKey: KeyObject) {
    this.privateKey = privateKey;
    this.publicKey = createPublicKey(privateKey);
    this.keyId = auditKeyId(this.publicKey);
  }

  static async load(db: Kysely<Database>, sealer: Sealer): Promise<AuditSigningKey> {
    const existing = await db
      .selectFrom('app_secret')
      .select('value_sealed')
      .where('name', '=', KEY_SECRET)
      .executeTakeFirst();
    if (!existing) {
      const pem = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' });
      // Two instances starting together: the first insert wins, both read it back.
      await db
        .insertInto('app_secret')
        .values({ name: KEY_SECRET, value_sealed: sealer.seal(pem.toString(), KEY_CONTEXT) })
        .onConflict((oc) => oc.column('name').doNothing())
        .execute();
    }
    const row = await db
      .selectFrom('app_secret')
      .select('value_sealed')
      .where('name', '=', KEY_SECRET)
      .executeTakeFirstOrThrow();
    const key = new AuditSigningKey(createPrivateKey(sealer.open(row.value_sealed, KEY_CONTEXT)));
    // The first key is published as it is created (a rotated key is published by the rotation).
    await db
      .insertInto('audit_key')
      .values({ key_id: key.keyId, public_jwk: JSON.stringify(publicJwk(key.publicKey)) })
      .onConflict((oc) => oc.column('key_id').doNothing())
      .execute();
    return key;
  }

  sign(link: ChainLink, at: Date): Checkpoint {
    const unsigned = { seq: link.seq, hash: link.hash, at, keyId: this.keyId };
    const signature = sign(null, checkpointPayload(unsigned), this.privateKey).toString('base64url');
    return { ...unsigned, signature };
  }
}

/** Signed checkpoints of the chain, stored in audit_checkpoint. */
export class AuditCheckpoints {
  readonly #db: Kysely<Database>;
  readonly #key: () => Promise<AuditSigningKey>;

  /** `key`: the signing key, or how to load the current one at each checkpoint (it may be rotated meanwhile). */
  constructor(db: Kysely<Database>, key: AuditSigningKey | (() => Promise<AuditSigningKey>)) {
    this.#db = db;
    this.#key = typeof key === 'function' ? key : async () => key;
  }

  /** Signs the chain's last record; undefined when the trail is empty or that record is already signed. */
  async write(): Promise<Checkpoint | undefined> {
    const link = await lastLink(this.#db);
    if (!link) return undefined;
    return this.writeAt(link);
  }

  /** Signs a given link (e.g. the last record of a range about to be purged). */
  async writeAt(link: ChainLink): Promise<Checkpoint | undefined> {
    const checkpoint = (await this.#key()).sign(link, new Date());
    const inserted = await this.#db
      .insertInto('audit_checkpoint')
      .values({
        seq: checkpoint.seq,
        hash: checkpoint.hash,
        at: checkpoint.at,
        key_id: checkpoint.keyId,
        signature: checkpoint.signature,
      })
      .onConflict((oc) => oc.column('seq').doNothing())
      .returning('seq')
      .executeTakeFirst();
    return inserted ? checkpoint : undefined;
  }

  async latest(): Promise<Checkpoint | undefined> {
    const [last] = await listCheckpoints(this.#db, {}, 'desc', 1);
    return last;
  }
}

/** Checkpoints with from ≤ seq ≤ to (either bound optional), in seq order. */
export async function listCheckpoints(
  db: Kysely<Database>,
  range: { from?: string; to?: string } = {},
  order: 'asc' | 'desc' = 'asc',
  limit?: number,
): Promise<Checkpoint[]> {
  let query = db.selectFrom('audit_checkpoint').selectAll().orderBy('seq', order);
  if (range.from !== undefined) query = query.where('seq', '>=', range.from);
  if (range.to !== undefined) query = query.where('seq', '<=', range.to);
  if (limit !== undefined) query = query.limit(limit);
  const rows = await query.execute();
  return rows.map((r) => ({
    seq: String(r.seq),
    hash: r.hash,
    at: r.at,
    keyId: r.key_id,
    signature: r.signature,
  }));
}

/**
 * Writes a checkpoint every `checkpointIntervalSeconds`: every instance ticks, the lease in job_lock lets
 * one of them write, and the last checkpoint's time says whether one is due. Returns the stop function.
 */
export function scheduleCheckpoints(
  db: Kysely<Database>,
  checkpoints: AuditCheckpoints,
  config: Pick<Config['audit'], 'checkpointIntervalSeconds'>,
  holder: string,
  logger: Logger,
): () => void {
  const intervalMs = config.checkpointIntervalSeconds * 1000;
  const lock = new JobLock(db, 'audit-checkpoint', holder);
  const tick = async () => {
    const attempt = await lock.acquire(60);
    if (attempt.kind === 'held') return;
    try {
      const last = await checkpoints.latest();
      if (last && Date.now() < last.at.getTime() + intervalMs) return;
      const written = await checkpoints.write();
      if (written) logger.info({ seq: written.seq, keyId: written.keyId }, 'audit checkpoint signed');
    } finally {
      await lock.release();
    }
  };
  // Ticks five times per interval, so that a checkpoint is at most a fifth of an interval late.
  return runPeriodically(tick, Math.max(1000, intervalMs / 5), logger, 'audit checkpoint failed');
}
