import type { Kysely } from 'kysely';
import type { Database } from '../db/types.ts';

/** The records a user is shown of their own sign-ins. */
export const SIGN_IN_TYPES = ['auth.attempt', 'session.started'] as const;

export interface SignInRecord {
  at: Date;
  type: (typeof SIGN_IN_TYPES)[number];
  outcome: 'success' | 'failure';
  method: string | null;
  reason: string | null;
  ip: string | null;
  clientId: string | null;
}

/** The account's latest sign-in records (attempts and sessions started), newest first. */
export async function recentForAccount(
  db: Kysely<Database>,
  accountId: string,
  limit: number,
): Promise<SignInRecord[]> {
  const rows = await db
    .selectFrom('audit_event')
    .select(['at', 'type', 'outcome', 'method', 'reason', 'ip', 'client_id'])
    .where('account_id', '=', accountId)
    .where('type', 'in', SIGN_IN_TYPES)
    .orderBy('seq', 'desc')
    .limit(limit)
    .execute();
  return rows.map((r) => ({
    at: r.at,
    type: r.type as SignInRecord['type'],
    outcome: r.outcome,
    method: r.method,
    reason: r.reason,
    ip: r.ip,
    clientId: r.client_id,
  }));
}
