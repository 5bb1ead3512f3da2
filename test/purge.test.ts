import type { Kysely, LogEvent } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { connectDatabase, type DatabaseHandle } from '../src/db/connect.ts';
import { migrateToLatest } from '../src/db/migrate.ts';
import type { Database } from '../src/db/types.ts';
import { purgeExpired } from '../src/oidc/adapter.ts';
import { createTestDatabase, databasesUnderTest, type TestDatabase } from './helpers/databases.ts';

const HOUR = 3600_000;
const past = (ms: number) => new Date(Date.now() - ms);
const future = (ms: number) => new Date(Date.now() + ms);

async function seed(db: Kysely<Database>, expired: Record<string, number>, live: Record<string, number>) {
  const payloads = [
    ...Array.from({ length: expired.oidc_payload ?? 0 }, (_, i) => ({
      id: `old-${i}`,
      at: past((i + 1) * HOUR),
    })),
    ...Array.from({ length: live.oidc_payload ?? 0 }, (_, i) => ({
      id: `live-${i}`,
      at: future((i + 1) * HOUR),
    })),
  ];
  if (payloads.length) {
    await db
      .insertInto('oidc_payload')
      .values(
        payloads.map(({ id, at }) => ({
          model: 'AccessToken',
          id,
          payload: JSON.stringify({ jti: id }),
          grant_id: 'grant-1',
          expires_at: at,
        })),
      )
      .execute();
  }
  // Rows without an expiry (the engine stores some models without one) are never purged.
  await db
    .insertInto('oidc_payload')
    .values({ model: 'Grant', id: 'no-expiry', payload: '{}', expires_at: null })
    .execute();
  const states = [
    ...Array.from({ length: expired.interaction_state ?? 0 }, (_, i) => ({
      uid: `old-${i}`,
      at: past(1000 + i),
    })),
    ...Array.from({ length: live.interaction_state ?? 0 }, (_, i) => ({
      uid: `live-${i}`,
      at: future(HOUR),
    })),
  ];
  if (states.length) {
    await db
      .insertInto('interaction_state')
      .values(states.map(({ uid, at }) => ({ uid, state: '{}', expires_at: at })))
      .execute();
  }
  const limits = [
    ...Array.from({ length: expired.rate_limit ?? 0 }, (_, i) => ({ key: `old-${i}`, at: past(HOUR) })),
    ...Array.from({ length: live.rate_limit ?? 0 }, (_, i) => ({ key: `live-${i}`, at: future(60_000) })),
  ];
  if (limits.length) {
    await db
      .insertInto('rate_limit')
      .values(limits.map(({ key, at }) => ({ key, window_start: past(2 * HOUR), hits: 3, expires_at: at })))
      .execute();
  }
}

async function remaining(db: Kysely<Database>) {
  const sorted = (keys: string[]) => keys.sort();
  return {
    oidc_payload: sorted((await db.selectFrom('oidc_payload').select('id').execute()).map((r) => r.id)),
    interaction_state: sorted(
      (await db.selectFrom('interaction_state').select('uid').execute()).map((r) => r.uid),
    ),
    rate_limit: sorted((await db.selectFrom('rate_limit').select('key').execute()).map((r) => r.key)),
  };
}

const live = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`).sort();

/** The table of each DELETE statement sent to the database, in order. */
const deletes: string[] = [];
function recordDelete(event: LogEvent): void {
  const table = /\bdelete from "(\w+)"/i.exec(event.query.sql)?.[1];
  if (table) deletes.push(table);
}
const statementsPerTable = () =>
  Object.fromEntries(
    ['oidc_payload', 'interaction_state', 'rate_limit'].map((table) => [
      table,
      deletes.filter((d) => d === table).length,
    ]),
  );

for (const kind of databasesUnderTest()) {
  describe(`purge of expired rows [${kind}]`, () => {
    let database: TestDatabase;
    let handle: DatabaseHandle;
    beforeAll(async () => {
      database = await createTestDatabase(kind);
      handle = await connectDatabase(
        { database: { url: database.url, dataDir: database.dataDir, poolSize: 2 } },
        { onQuery: recordDelete },
      );
      await migrateToLatest(handle.db);
    });
    afterAll(async () => {
      await handle?.close();
      await database?.drop();
    });
    beforeEach(async () => {
      for (const table of ['oidc_payload', 'interaction_state', 'rate_limit'] as const) {
        await handle.db.deleteFrom(table).execute();
      }
      deletes.length = 0;
    });

    it('deletes every expired row in batches of 2 and keeps the others', async () => {
      // 5 expired: batches 2 + 2 + 1; 4 expired: 2 + 2 + an empty one (exact multiple of the batch size).
      await seed(
        handle.db,
        { oidc_payload: 5, interaction_state: 4, rate_limit: 1 },
        { oidc_payload: 3, interaction_state: 2, rate_limit: 2 },
      );
      const { deleted } = await purgeExpired(handle.db, 2);
      expect(deleted).toBe(10);
      // One statement per batch, until a batch comes back short.
      expect(statementsPerTable()).toEqual({ oidc_payload: 3, interaction_state: 3, rate_limit: 1 });
      expect(await remaining(handle.db)).toEqual({
        oidc_payload: [...live('live', 3), 'no-expiry'].sort(),
        interaction_state: live('live', 2),
        rate_limit: live('live', 2),
      });
      // Nothing left to do.
      expect((await purgeExpired(handle.db, 2)).deleted).toBe(0);
    });

    it('many more expired rows than the batch size are all purged', async () => {
      await seed(handle.db, { oidc_payload: 23, interaction_state: 7, rate_limit: 11 }, { oidc_payload: 1 });
      expect((await purgeExpired(handle.db, 2)).deleted).toBe(41);
      expect(statementsPerTable()).toEqual({ oidc_payload: 12, interaction_state: 4, rate_limit: 6 });
      expect(await remaining(handle.db)).toEqual({
        oidc_payload: ['live-0', 'no-expiry'],
        interaction_state: [],
        rate_limit: [],
      });
    });

    it('keeps everything when nothing has expired', async () => {
      await seed(handle.db, {}, { oidc_payload: 2, interaction_state: 2, rate_limit: 2 });
      const before = await remaining(handle.db);
      expect((await purgeExpired(handle.db, 2)).deleted).toBe(0);
      expect(await remaining(handle.db)).toEqual(before);
    });
  });
}
