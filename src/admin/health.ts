import { Router } from '@koa/router';
import { sql } from 'kysely';
import { lastLink } from '../audit/chain.ts';
import { AuditSigningKey, listCheckpoints } from '../audit/checkpoints.ts';
import { publishedKeys } from '../audit/keyring.ts';
import { runReadinessChecks } from '../http/health.ts';
import { listSigningKeys } from '../oidc/keys.ts';
import { type RecordsDeps, renderSection } from './records-common.ts';
import { sectionRoles } from './sections.ts';

const DAY_MS = 86_400_000;

/** `/admin/health`: the checks of /readyz, key ages, CRL freshness and the audit chain's state. */
export function consoleHealthRoutes(deps: RecordsDeps): Router {
  const { gate, services, readiness, smartcard } = deps;
  const db = services.database.db;
  const router = new Router();

  router.get('/admin/health', async (ctx) => {
    const user = await gate(ctx, sectionRoles('health'));
    if (!user) return;
    const now = Date.now();
    const ageDays = (date: Date) => Math.floor((now - date.getTime()) / DAY_MS);
    const checks = (await runReadinessChecks(readiness)).map(([check, result]) => ({
      name: check.name,
      optional: check.optional === true,
      ok: result.ok,
      detail: result.detail,
    }));
    const signingKeys = (await listSigningKeys(db)).map((k) => ({ ...k, ageDays: ageDays(k.createdAt) }));
    const auditKey = await AuditSigningKey.load(db, services.sealer);
    const published = (await publishedKeys(db)).find((k) => k.keyId === auditKey.keyId);
    const [checkpoint] = await listCheckpoints(db, {}, 'desc', 1);
    const after = await db
      .selectFrom('audit_event')
      .select(sql<string>`count(*)::text`.as('n'))
      .$if(checkpoint !== undefined, (q) => q.where('seq', '>', checkpoint?.seq ?? '0'))
      .executeTakeFirstOrThrow();
    const end = await lastLink(db);
    await renderSection(deps, ctx, user, 'health', 'console-health', {
      ready: checks.every((c) => c.ok || c.optional),
      checks,
      signingKeys,
      auditKey: {
        keyId: auditKey.keyId,
        createdAt: published?.createdAt,
        ageDays: published ? ageDays(published.createdAt) : undefined,
      },
      crls: smartcard?.crls.status(),
      chain: {
        checkpoint,
        recordsAfter: Number(after.n),
        lastSeq: end?.seq,
      },
    });
  });

  return router;
}
