import { BlockList, isIPv6 } from 'node:net';
import { type Kysely, type Selectable, sql } from 'kysely';
import type { Config } from '../config/schema.ts';
import type { AuthSessionTable, CompletedMethod, Database } from '../db/types.ts';

export type SessionProfile = 'standard' | 'shared';

export interface AuthSession {
  sessionUid: string;
  accountId: string;
  methods: CompletedMethod[];
  profile: SessionProfile;
  startedAt: Date;
  lastActiveAt: Date;
  expiresAt: Date;
}

/** Lifetimes of one profile, in seconds. */
interface Lifetimes {
  idleSeconds: number;
  absoluteSeconds: number;
}

/** The activity time of a session whose expiry was recorded (no live session is ever idle since 1970). */
const EXPIRY_RECORDED = new Date(0);

/** Don't write the activity time more often than this: one write per minute per session at most. */
const TOUCH_GRANULARITY_MS = 60_000;

function networkList(networks: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of networks) {
    const [address = '', prefix] = entry.split('/');
    const type = isIPv6(address) ? 'ipv6' : 'ipv4';
    if (prefix === undefined) list.addAddress(address, type);
    else list.addSubnet(address, Number(prefix), type);
  }
  return list;
}

/** When a session ends: without activity (idle) and at the latest (absolute). */
export function sessionEnds(
  sessions: Config['sessions'],
  session: Pick<AuthSession, 'profile' | 'lastActiveAt' | 'expiresAt'>,
): { idle: Date; absolute: Date } {
  const { idleSeconds } = session.profile === 'shared' ? sessions.sharedWorkstations : sessions;
  return { idle: new Date(session.lastActiveAt.getTime() + idleSeconds * 1000), absolute: session.expiresAt };
}

/**
 * A login through PSC (method `psc`) recorded before methods were marked `federated`, in a session
 * still alive, is federated all the same.
 */
const markLegacyFederated = (m: CompletedMethod): CompletedMethod =>
  m.federated || m.method !== 'psc'
    ? m
    : { ...m, federated: true, amr: m.amr.includes('fed') ? m.amr : ['fed', ...m.amr] };

function toSession(row: Selectable<AuthSessionTable>): AuthSession {
  return {
    sessionUid: row.session_uid,
    accountId: row.account_id,
    methods: row.methods.map(markLegacyFederated),
    profile: row.profile,
    startedAt: row.started_at,
    lastActiveAt: row.last_active_at,
    expiresAt: row.expires_at,
  };
}

/**
 * What each single sign-on session has proven and when (methods and their times), and its idle and
 * absolute lifetimes. Keyed by the protocol engine's session uid; the engine's own session record only
 * says who is logged in.
 */
export class AuthSessions {
  readonly #db: Kysely<Database>;
  readonly #lifetimes: Record<SessionProfile, Lifetimes>;
  readonly #shared: BlockList;

  constructor(db: Kysely<Database>, sessions: Config['sessions']) {
    this.#db = db;
    this.#lifetimes = {
      standard: sessions,
      shared: sessions.sharedWorkstations,
    };
    this.#shared = networkList(sessions.sharedWorkstations.networks);
  }

  /** Shared ward workstations are recognised by their source network. */
  profileFor(ip: string): SessionProfile {
    const address = ip.startsWith('::ffff:') ? ip.slice(7) : ip;
    const type = isIPv6(address) ? 'ipv6' : 'ipv4';
    return this.#shared.check(address, type) ? 'shared' : 'standard';
  }

  async save(
    sessionUid: string,
    accountId: string,
    methods: CompletedMethod[],
    profile: SessionProfile,
    within: Kysely<Database> = this.#db,
  ): Promise<void> {
    const now = new Date();
    const row = {
      session_uid: sessionUid,
      account_id: accountId,
      methods: JSON.stringify(methods),
      profile,
      last_active_at: now,
      expires_at: new Date(now.getTime() + this.#lifetimes[profile].absoluteSeconds * 1000),
      // A login through PSC: PSC's back-channel logout names this session by PSC's sid.
      upstream_sid: methods.findLast((m) => m.upstreamSid)?.upstreamSid ?? null,
    };
    // A step-up keeps the session's start and absolute end; a new account starts a new session.
    const sameAccount = sql<boolean>`auth_session.account_id = ${accountId}`;
    await within
      .insertInto('auth_session')
      .values(row)
      .onConflict((oc) =>
        oc.column('session_uid').doUpdateSet((eb) => ({
          methods: row.methods,
          last_active_at: now,
          profile: eb.ref('excluded.profile'),
          upstream_sid: eb.ref('excluded.upstream_sid'),
          account_id: eb.ref('excluded.account_id'),
          started_at: sql<Date>`case when ${sameAccount} then auth_session.started_at else ${now} end`,
          expires_at: sql<Date>`case when ${sameAccount} then auth_session.expires_at else ${row.expires_at} end`,
        })),
      )
      .execute();
  }

  /** Why the session row has expired by its own lifetimes (idle or absolute); undefined while it is alive. */
  #expiry(row: Pick<Selectable<AuthSessionTable>, 'profile' | 'last_active_at' | 'expires_at'>, now: number) {
    const idleMs = this.#lifetimes[row.profile].idleSeconds * 1000;
    if (row.expires_at.getTime() <= now) return 'absolute' as const;
    if (row.last_active_at.getTime() + idleMs <= now) return 'idle' as const;
    return undefined;
  }

  /** The session row of that account, and why it has expired (undefined while it is alive). */
  async #lookup(sessionUid: string, accountId: string) {
    const row = await this.#db
      .selectFrom('auth_session')
      .selectAll()
      .where('session_uid', '=', sessionUid)
      .executeTakeFirst();
    if (!row || row.account_id !== accountId) return undefined;
    return { row, expired: this.#expiry(row, Date.now()) };
  }

  /** The session when it is still alive (neither idle nor past its absolute end) for that account. */
  async active(sessionUid: string, accountId: string): Promise<AuthSession | undefined> {
    const found = await this.#lookup(sessionUid, accountId);
    if (!found || found.expired) return undefined;
    return toSession(found.row);
  }

  /**
   * The account's live sessions, most recently active first: the one rule of every session list (portal
   * and console). Live = not ended (the engine's session is still there, for this account: a logout,
   * RP-initiated or back-channel, destroys it) and not expired (neither idle nor past its absolute end).
   */
  async listForAccount(accountId: string): Promise<AuthSession[]> {
    const rows = await this.#db
      .selectFrom('auth_session')
      .selectAll()
      .where('account_id', '=', accountId)
      .where('expires_at', '>', new Date())
      .where(({ exists, selectFrom }) =>
        exists(
          selectFrom('oidc_payload')
            .select(sql<number>`1`.as('one'))
            .where('oidc_payload.model', '=', 'Session')
            .whereRef('oidc_payload.uid', '=', 'auth_session.session_uid')
            .where(sql<boolean>`oidc_payload.payload->>'accountId' = auth_session.account_id::text`)
            .where((eb) =>
              eb.or([
                eb('oidc_payload.expires_at', 'is', null),
                eb('oidc_payload.expires_at', '>', sql<Date>`now()`),
              ]),
            ),
        ),
      )
      .orderBy('last_active_at', 'desc')
      .orderBy('session_uid')
      .execute();
    const now = Date.now();
    return rows.filter((row) => this.#expiry(row, now) === undefined).map(toSession);
  }

  /**
   * Deletes every session row of the account (live or expired) and names them with the engine's
   * other sessions of that account (a row may be missing: purged, or a login cut short); the engine's
   * sessions are ended apart (src/sessions/end-sessions.ts).
   */
  async deleteForAccount(
    accountId: string,
    within: Kysely<Database> = this.#db,
  ): Promise<{ sessionUid: string; accountId: string }[]> {
    const rows = await within
      .deleteFrom('auth_session')
      .where('account_id', '=', accountId)
      .returning('session_uid')
      .execute();
    const engine = await within
      .selectFrom('oidc_payload')
      .select('uid')
      .where('model', '=', 'Session')
      .where(sql<string>`payload->>'accountId'`, '=', accountId)
      .execute();
    const uids = new Set(rows.map((r) => r.session_uid));
    for (const { uid } of engine) if (uid) uids.add(uid);
    return [...uids].map((sessionUid) => ({ sessionUid, accountId }));
  }

  /**
   * The session in which `clientId` was given the session id `sid` (the engine's per-client `sid`):
   * its auth_session row deleted, named for the engine's session to be ended apart (end-sessions.ts).
   */
  async endByClientSid(clientId: string, sid: string): Promise<{ sessionUid: string; accountId: string }[]> {
    const engine = await this.#db
      .selectFrom('oidc_payload')
      .select(['uid', sql<string>`payload->>'accountId'`.as('account_id')])
      .where('model', '=', 'Session')
      .where(sql<string>`payload->'authorizations'->${clientId}->>'sid'`, '=', sid)
      .execute();
    const ended: { sessionUid: string; accountId: string }[] = [];
    for (const { uid, account_id } of engine) {
      if (!uid || !account_id) continue;
      await this.#db.deleteFrom('auth_session').where('session_uid', '=', uid).execute();
      ended.push({ sessionUid: uid, accountId: account_id });
    }
    return ended;
  }

  /**
   * Why the session of that account has expired (idle or absolute lifetime), for the first caller only:
   * the session is marked so that its expiry is recorded once, even when several requests find it
   * expired. Undefined for a live session, another account's, or an expiry already claimed.
   */
  async claimExpiry(sessionUid: string, accountId: string): Promise<'idle' | 'absolute' | undefined> {
    const reason = (await this.#lookup(sessionUid, accountId))?.expired;
    if (!reason) return undefined;
    // A new login on this session (save) sets the activity time again.
    const claimed = await this.#db
      .updateTable('auth_session')
      .set({ last_active_at: EXPIRY_RECORDED })
      .where('session_uid', '=', sessionUid)
      .where('last_active_at', '>', EXPIRY_RECORDED)
      .returning('session_uid')
      .executeTakeFirst();
    return claimed ? reason : undefined;
  }

  /** PSC's session id when this single sign-on session came through Pro Santé Connect. */
  async upstreamSidOf(sessionUid: string): Promise<string | undefined> {
    const row = await this.#db
      .selectFrom('auth_session')
      .select('upstream_sid')
      .where('session_uid', '=', sessionUid)
      .executeTakeFirst();
    return row?.upstream_sid ?? undefined;
  }

  /** Records activity (an authorization request that used the session). */
  async touch(session: AuthSession): Promise<void> {
    if (Date.now() - session.lastActiveAt.getTime() < TOUCH_GRANULARITY_MS) return;
    await this.#db
      .updateTable('auth_session')
      .set({ last_active_at: new Date() })
      .where('session_uid', '=', session.sessionUid)
      .execute();
  }
}
