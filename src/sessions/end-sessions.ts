import type { Logger } from 'pino';
import type { AuditTrail } from '../audit/trail.ts';
import type { ProviderHost } from '../oidc/host.ts';

/** A single sign-on session whose auth_session row was just deleted. */
export interface EndedSession {
  sessionUid: string;
  accountId: string;
}

/** Where the ending came from (for the records). */
export interface EndingRequest {
  ip?: string;
  userAgent?: string;
  requestId?: string;
}

/**
 * Ends the engine's sessions of single sign-on sessions whose auth_session rows were deleted: the
 * applications with a back-channel logout URI that the session signed in to are sent a logout token
 * (`logout.backchannel`, success or failure), the engine's session is destroyed, and `session.ended`
 * is recorded with `reason`.
 */
export async function endSessions(
  deps: { host: ProviderHost; audit: AuditTrail; logger: Logger },
  ended: readonly EndedSession[],
  reason: string,
  request: EndingRequest,
): Promise<void> {
  const { provider } = deps.host;
  for (const { sessionUid: uid, accountId } of ended) {
    const session = await provider.Session.findByUid(uid);
    if (session) {
      for (const clientId of Object.keys(session.authorizations ?? {})) {
        // The engine's Client has backchannelLogout(sub, sid); its typings do not declare it.
        const client = (await provider.Client.find(clientId)) as
          | { backchannelLogoutUri?: string; backchannelLogout(sub: string, sid: string): Promise<void> }
          | undefined;
        if (!client?.backchannelLogoutUri) continue;
        const sid = session.sidFor(clientId) ?? '';
        const error = await client.backchannelLogout(accountId, sid).then(
          () => undefined,
          (err: Error) => {
            deps.logger.warn({ err, clientId }, 'back-channel logout delivery failed');
            return err.name;
          },
        );
        await deps.audit.record({
          type: 'logout.backchannel',
          outcome: error ? 'failure' : 'success',
          accountId,
          clientId,
          sessionId: uid,
          reason: error ? 'delivery_failed' : undefined,
          ip: request.ip,
          requestId: request.requestId,
          detail: { sid, ...(error ? { error } : {}) },
        });
      }
      await session.destroy();
    }
    await deps.audit.record({
      type: 'session.ended',
      outcome: 'success',
      accountId,
      sessionId: uid,
      reason,
      ip: request.ip,
      userAgent: request.userAgent,
      requestId: request.requestId,
    });
  }
}
