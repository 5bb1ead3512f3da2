import { createHash, randomBytes } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import { type Kysely, sql } from 'kysely';
import type { AuditTrail } from '../audit/trail.ts';
import type { Config } from '../config/schema.ts';
import type { Sealer } from '../crypto/sealer.ts';
import type { Database, SigningKeyTable } from '../db/types.ts';

export type KeyFamily = SigningKeyTable['family'];

/** ES256 signs by default; the RSA key serves clients that ask for PS256 or RS256 (3072 bits, RGS B1). */
const FAMILIES: Record<KeyFamily, () => ReturnType<typeof generateKeyPair>> = {
  'EC-P256': () => generateKeyPair('ES256', { extractable: true }),
  'RSA-3072': () => generateKeyPair('PS256', { modulusLength: 3072, extractable: true }),
};

export interface SigningKeyInfo {
  kid: string;
  family: KeyFamily;
  createdAt: Date;
  retiredAt: Date | null;
  removableAt: Date | null;
}

async function generate(family: KeyFamily): Promise<{ kid: string; publicJwk: JWK; privateJwk: JWK }> {
  const pair = await FAMILIES[family]();
  const privateJwk = await exportJWK(pair.privateKey);
  const publicJwk = await exportJWK(pair.publicKey);
  const kid = await calculateJwkThumbprint(publicJwk, 'sha256');
  return {
    kid,
    publicJwk: { ...publicJwk, kid, use: 'sig' },
    privateJwk: { ...privateJwk, kid, use: 'sig' },
  };
}

async function insertKey(db: Kysely<Database>, sealer: Sealer, family: KeyFamily): Promise<string> {
  const key = await generate(family);
  await db
    .insertInto('signing_key')
    .values({
      kid: key.kid,
      family,
      public_jwk: JSON.stringify(key.publicJwk),
      private_jwk_sealed: sealer.seal(JSON.stringify(key.privateJwk), `signing_key:${key.kid}`),
    })
    .execute();
  return key.kid;
}

/** Creates the first key of each family when none is active. Safe when instances start together. */
export async function ensureSigningKeys(
  db: Kysely<Database>,
  sealer: Sealer,
  audit: AuditTrail,
): Promise<string[]> {
  const created: string[] = [];
  for (const family of Object.keys(FAMILIES) as KeyFamily[]) {
    await db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(hashtext('passerelle:signing_key'))`.execute(trx);
      const active = await trx
        .selectFrom('signing_key')
        .select('kid')
        .where('family', '=', family)
        .where('retired_at', 'is', null)
        .executeTakeFirst();
      if (active) return;
      const kid = await insertKey(trx, sealer, family);
      // Recorded with the key: a first start, or a family added by an upgrade.
      await audit.record(
        { type: 'admin.keys.created', outcome: 'success', detail: { kid, family, via: 'start' } },
        trx,
      );
      created.push(kid);
    });
  }
  return created;
}

/**
 * How long a retired key stays published: until the tokens it signed have expired, and the sessions
 * they were issued in have ended, since an ID token serves as id_token_hint at logout for as long as
 * its session lasts, expired or not (Keycloak's broker, PSC, sends the one it stored at login).
 */
export function retiredKeyLifetime(config: Pick<Config, 'tokens' | 'sessions'>): number {
  const { tokens, sessions } = config;
  return (
    Math.max(
      tokens.accessTokenTtl,
      tokens.idTokenTtl,
      tokens.authorizationCodeTtl,
      sessions.absoluteSeconds,
    ) + 60
  );
}

/**
 * Adds a new key per family and retires the previous ones. Retired keys stay published (for
 * verification only) for `publishRetiredForSeconds`, long enough for every token they signed to expire.
 */
export async function rotateSigningKeys(
  db: Kysely<Database>,
  sealer: Sealer,
  publishRetiredForSeconds: number,
): Promise<string[]> {
  return db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(hashtext('passerelle:signing_key'))`.execute(trx);
    const now = new Date();
    await trx
      .updateTable('signing_key')
      .set({ retired_at: now, removable_at: new Date(now.getTime() + publishRetiredForSeconds * 1000) })
      .where('retired_at', 'is', null)
      .execute();
    const created: string[] = [];
    for (const family of Object.keys(FAMILIES) as KeyFamily[])
      created.push(await insertKey(trx, sealer, family));
    return created;
  });
}

export async function listSigningKeys(db: Kysely<Database>): Promise<SigningKeyInfo[]> {
  const rows = await db
    .selectFrom('signing_key')
    .select(['kid', 'family', 'created_at', 'retired_at', 'removable_at'])
    .orderBy('created_at', 'desc')
    .execute();
  return rows.map((r) => ({
    kid: r.kid,
    family: r.family,
    createdAt: r.created_at,
    retiredAt: r.retired_at,
    removableAt: r.removable_at,
  }));
}

export interface KeySet {
  /** Private JWKs for the protocol engine: active keys first, then retired keys still published. */
  jwks: { keys: JWK[] };
  fingerprint: string;
}

/** Keys still published: active ones and retired ones whose tokens may not have expired yet. */
function publishedKeys(db: Kysely<Database>) {
  return db
    .selectFrom('signing_key')
    .where((eb) => eb.or([eb('removable_at', 'is', null), eb('removable_at', '>', sql<Date>`now()`)]));
}

/** Digest of which keys are published and which of them sign; order-independent. */
function fingerprintOf(rows: readonly { kid: string; retired_at: Date | null }[]): string {
  const text = rows
    .map((r) => `${r.kid}:${r.retired_at ? 'r' : 'a'}`)
    .sort()
    .join(',');
  return createHash('sha256').update(text).digest('base64url');
}

/** Loads the published key set: active keys (newest first) and retired keys not yet removable. */
export async function loadKeySet(db: Kysely<Database>, sealer: Sealer): Promise<KeySet> {
  const rows = await publishedKeys(db)
    .select(['kid', 'private_jwk_sealed', 'retired_at'])
    .orderBy(sql`retired_at is not null`)
    .orderBy('created_at', 'desc')
    .execute();
  // The engine signs with the first matching key (its selection sort is stable): active keys come first.
  const keys = rows.map(
    (row) => JSON.parse(sealer.open(row.private_jwk_sealed, `signing_key:${row.kid}`)) as JWK,
  );
  return { jwks: { keys }, fingerprint: fingerprintOf(rows) };
}

/** The fingerprint alone (no key material read), polled by every instance. */
export async function keySetFingerprint(db: Kysely<Database>): Promise<string> {
  return fingerprintOf(await publishedKeys(db).select(['kid', 'retired_at']).execute());
}

/** Cookie-signing keys shared by all instances, created once. */
export async function ensureCookieKeys(db: Kysely<Database>, sealer: Sealer): Promise<string[]> {
  const fresh = sealer.seal(
    JSON.stringify([randomBytes(32).toString('base64url')]),
    'app_secret:cookie_keys',
  );
  await db
    .insertInto('app_secret')
    .values({ name: 'cookie_keys', value_sealed: fresh })
    .onConflict((oc) => oc.column('name').doNothing())
    .execute();
  const row = await db
    .selectFrom('app_secret')
    .select('value_sealed')
    .where('name', '=', 'cookie_keys')
    .executeTakeFirstOrThrow();
  return JSON.parse(sealer.open(row.value_sealed, 'app_secret:cookie_keys')) as string[];
}
