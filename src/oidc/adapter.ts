import { type Kysely, sql } from 'kysely';
import Provider, { type Adapter, type AdapterPayload, errors } from 'oidc-provider';
import type { Database } from '../db/types.ts';
import type { RateLimitRule } from '../ratelimit/limiter.ts';
import type { ClientRegistry } from './clients.ts';

/** Routes where the client authenticates; failed attempts there are counted per source address. */
const CLIENT_AUTH_ROUTES = new Set(['token', 'introspection', 'revocation', 'pushed_authorization_request']);

export function clientAuthLimitKey(ip: string): string {
  return `clientauth:ip:${ip}`;
}

/** Deletes every artefact of a grant, and the grant itself, in one statement. */
async function destroyGrant(db: Kysely<Database>, grantId: string): Promise<void> {
  await db
    .deleteFrom('oidc_payload')
    .where((eb) =>
      eb.or([eb('grant_id', '=', grantId), eb.and([eb('model', '=', 'Grant'), eb('id', '=', grantId)])]),
    )
    .execute();
}

/**
 * Builds the oidc-provider adapter class over the oidc_payload table (and the client registry for
 * the Client model). Consumption is a single conditional UPDATE: of two concurrent redemptions of one
 * code or refresh token exactly one wins; the loser revokes the whole grant.
 */
export function createAdapterClass(
  db: Kysely<Database>,
  clients: ClientRegistry,
  clientAuthPerIp: RateLimitRule,
) {
  /** On client-authenticating routes, an address over its failure limit finds no client (invalid_client). */
  const guard = () => {
    const ctx = (Provider as unknown as { ctx?: { ip: string; oidc?: { route?: string } } }).ctx;
    if (!ctx?.oidc?.route || !CLIENT_AUTH_ROUTES.has(ctx.oidc.route)) return undefined;
    return { key: clientAuthLimitKey(ctx.ip), max: clientAuthPerIp.max };
  };

  return class KyselyAdapter implements Adapter {
    readonly model: string;

    constructor(model: string) {
      this.model = model;
    }

    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      if (this.model === 'Client') throw new Error('clients are managed by the registry, not the adapter');
      const row = {
        model: this.model,
        id,
        payload: JSON.stringify(payload),
        grant_id: payload.grantId ?? null,
        user_code: payload.userCode ?? null,
        uid: payload.uid ?? null,
        expires_at: expiresIn ? new Date(Date.now() + expiresIn * 1000) : null,
      };
      await db
        .insertInto('oidc_payload')
        .values(row)
        .onConflict((oc) =>
          oc.columns(['model', 'id']).doUpdateSet({
            payload: row.payload,
            grant_id: row.grant_id,
            user_code: row.user_code,
            uid: row.uid,
            expires_at: row.expires_at,
          }),
        )
        .execute();
    }

    async #findBy(column: 'id' | 'uid' | 'user_code', value: string): Promise<AdapterPayload | undefined> {
      const row = await db
        .selectFrom('oidc_payload')
        .select(['payload', 'consumed_at'])
        .where('model', '=', this.model)
        .where(column, '=', value)
        .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', sql<Date>`now()`)]))
        .executeTakeFirst();
      if (!row) return undefined;
      const payload = row.payload as AdapterPayload;
      return row.consumed_at
        ? { ...payload, consumed: Math.floor(row.consumed_at.getTime() / 1000) }
        : payload;
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      if (this.model === 'Client') return clients.findMetadata(id, guard());
      return this.#findBy('id', id);
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      return this.#findBy('uid', uid);
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      return this.#findBy('user_code', userCode);
    }

    async consume(id: string): Promise<void> {
      const result = await db
        .updateTable('oidc_payload')
        .set({ consumed_at: sql<Date>`now()` })
        .where('model', '=', this.model)
        .where('id', '=', id)
        .where('consumed_at', 'is', null)
        .returning('id')
        .executeTakeFirst();
      if (result) return;
      // Lost a race with a concurrent redemption: treat as reuse and revoke the grant.
      const row = await db
        .selectFrom('oidc_payload')
        .select('grant_id')
        .where('model', '=', this.model)
        .where('id', '=', id)
        .executeTakeFirst();
      if (row?.grant_id) await destroyGrant(db, row.grant_id);
      throw new errors.InvalidGrant(
        `${this.model === 'RefreshToken' ? 'refresh token' : 'grant'} already used`,
      );
    }

    async destroy(id: string): Promise<void> {
      await db.deleteFrom('oidc_payload').where('model', '=', this.model).where('id', '=', id).execute();
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      await db
        .deleteFrom('oidc_payload')
        .where('model', '=', this.model)
        .where('grant_id', '=', grantId)
        .execute();
    }
  };
}

export interface PurgeResult {
  deleted: number;
}

/** Deletes expired rows in small batches so that no long lock is held. */
export async function purgeExpired(db: Kysely<Database>, batchSize: number): Promise<PurgeResult> {
  let deleted = 0;
  for (const table of ['oidc_payload', 'interaction_state', 'rate_limit', 'auth_session'] as const) {
    for (;;) {
      const result = await sql<{ n: number }>`
        with doomed as (
          select ctid from ${sql.table(table)} where expires_at < now() limit ${batchSize}
        )
        delete from ${sql.table(table)} where ctid in (select ctid from doomed)`.execute(db);
      const n = Number(result.numAffectedRows ?? 0n);
      deleted += n;
      if (n < batchSize) break;
    }
  }
  return { deleted };
}
