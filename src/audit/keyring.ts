import { createPublicKey, generateKeyPairSync, type KeyObject, sign, verify } from 'node:crypto';
import { type Kysely, sql } from 'kysely';
import type { Sealer } from '../crypto/sealer.ts';
import type { Database } from '../db/types.ts';
import { canonicalJson } from './canonical.ts';
import { AuditSigningKey, auditKeyId, KEY_CONTEXT, KEY_SECRET, publicJwk } from './checkpoints.ts';
import type { AuditTrail } from './trail.ts';

/** The checkpoint keys an auditor trusts, by key id. */
export type AuditKeyring = ReadonlyMap<string, KeyObject>;

/** A published audit key, as stored in audit_key and exported for an auditor. */
export interface PublishedAuditKey {
  keyId: string;
  publicJwk: Record<string, string>;
  createdAt: Date;
  endorsedBy: string | null;
  /** Ed25519 signature (base64url), by `endorsedBy`, of endorsementPayload. */
  endorsement: string | null;
  retiredAt: Date | null;
}

/** The signed bytes of an endorsement: canonical JSON of { created_at, endorsed_by, key_id, public_jwk }. */
export function endorsementPayload(
  key: Pick<PublishedAuditKey, 'keyId' | 'publicJwk' | 'createdAt' | 'endorsedBy'>,
) {
  return Buffer.from(
    canonicalJson({
      key_id: key.keyId,
      public_jwk: key.publicJwk,
      created_at: key.createdAt.toISOString(),
      endorsed_by: key.endorsedBy,
    }),
  );
}

export async function publishedKeys(db: Kysely<Database>): Promise<PublishedAuditKey[]> {
  const rows = await db.selectFrom('audit_key').selectAll().orderBy('created_at').orderBy('key_id').execute();
  return rows.map((r) => ({
    keyId: r.key_id,
    publicJwk: typeof r.public_jwk === 'string' ? JSON.parse(r.public_jwk) : r.public_jwk,
    createdAt: r.created_at,
    endorsedBy: r.endorsed_by,
    endorsement: r.endorsement,
    retiredAt: r.retired_at,
  }));
}

/**
 * The keys to verify checkpoints with: the trusted ones, then every published key endorsed by a trusted
 * key (transitively). An endorsement that does not verify, or a key whose id is not its thumbprint, adds
 * nothing: checkpoints signed by that key then fail verification.
 */
export function trustedKeyring(
  trusted: readonly KeyObject[],
  published: readonly PublishedAuditKey[],
): AuditKeyring {
  const ring = new Map(trusted.map((key) => [auditKeyId(key), key]));
  for (let added = true; added; ) {
    added = false;
    for (const key of published) {
      if (ring.has(key.keyId) || !key.endorsedBy || !key.endorsement) continue;
      const endorser = ring.get(key.endorsedBy);
      if (!endorser) continue;
      const publicKey = createPublicKey({ key: key.publicJwk, format: 'jwk' });
      const genuine =
        auditKeyId(publicKey) === key.keyId &&
        verify(null, endorsementPayload(key), endorser, Buffer.from(key.endorsement, 'base64url'));
      if (!genuine) continue;
      ring.set(key.keyId, publicKey);
      added = true;
    }
  }
  return ring;
}

/** The installation's own view: its first key (no endorsement) is the root of trust. */
export async function installationKeyring(db: Kysely<Database>): Promise<AuditKeyring> {
  const published = await publishedKeys(db);
  const roots = published
    .filter((k) => k.endorsedBy === null)
    .map((k) => createPublicKey({ key: k.publicJwk, format: 'jwk' }));
  return trustedKeyring(roots, published);
}

/**
 * Replaces the checkpoint signing key: the new key is published with an endorsement signed by the old one,
 * the old private key is destroyed (no checkpoint can be signed with it afterwards), and the rotation is
 * recorded in the trail, all in one transaction. Checkpoint the chain with the old key before, and with
 * the new one after (the rotation record is then signed by the new key).
 */
export async function rotateAuditKey(
  db: Kysely<Database>,
  sealer: Sealer,
  audit: AuditTrail,
  actor: string,
): Promise<{ previousKeyId: string; keyId: string }> {
  return db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(hashtext('passerelle:audit_key'))`.execute(trx);
    const previous = await AuditSigningKey.load(trx, sealer);
    const next = new AuditSigningKey(generateKeyPairSync('ed25519').privateKey);
    const published = {
      keyId: next.keyId,
      publicJwk: publicJwk(next.publicKey),
      createdAt: new Date(),
      endorsedBy: previous.keyId,
    };
    const endorsement = sign(null, endorsementPayload(published), previous.privateKey).toString('base64url');
    await trx
      .insertInto('audit_key')
      .values({
        key_id: published.keyId,
        public_jwk: JSON.stringify(published.publicJwk),
        created_at: published.createdAt,
        endorsed_by: published.endorsedBy,
        endorsement,
      })
      .execute();
    await trx
      .updateTable('audit_key')
      .set({ retired_at: published.createdAt })
      .where('key_id', '=', previous.keyId)
      .execute();
    const pem = next.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    await trx
      .updateTable('app_secret')
      .set({ value_sealed: sealer.seal(pem, KEY_CONTEXT) })
      .where('name', '=', KEY_SECRET)
      .execute();
    await audit.record(
      {
        type: 'admin.audit_key.rotated',
        outcome: 'success',
        detail: { previousKeyId: previous.keyId, keyId: next.keyId, via: 'cli', actor },
      },
      trx,
    );
    return { previousKeyId: previous.keyId, keyId: next.keyId };
  });
}
