import { Router } from '@koa/router';
import { type Kysely, sql } from 'kysely';
import type { AuditTrail } from '../audit/trail.ts';
import { migrationsApplied } from '../db/migrate.ts';
import type { Database } from '../db/types.ts';

export interface CheckResult {
  ok: boolean;
  detail?: string;
}

/**
 * A named readiness check; features (directory, Annuaire API, PSC…) register their own. An optional
 * check is reported but does not make the instance unready (logins do not depend on it).
 */
export type ReadinessCheck = { name: string; optional?: boolean; run(): Promise<CheckResult> };

export function databaseCheck(db: Kysely<Database>): ReadinessCheck {
  return {
    name: 'database',
    async run() {
      await sql`select 1`.execute(db);
      return { ok: true };
    },
  };
}

export function migrationsCheck(db: Kysely<Database>): ReadinessCheck {
  return {
    name: 'migrations',
    async run() {
      const applied = await migrationsApplied(db);
      return applied ? { ok: true } : { ok: false, detail: 'pending migrations' };
    },
  };
}

/**
 * Whether authentication records are being written (optional: an instance that fails closed refuses
 * sign-ins on its own, one that fails open keeps serving; either way the operator sees it here).
 */
export function auditWriteCheck(audit: Pick<AuditTrail, 'failingSince'>): ReadinessCheck {
  return {
    name: 'audit',
    optional: true,
    async run() {
      const since = audit.failingSince;
      return since ? { ok: false, detail: `records not written since ${since.toISOString()}` } : { ok: true };
    },
  };
}

async function runCheck(check: ReadinessCheck, timeoutMs: number): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<CheckResult>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, detail: 'timeout' }), timeoutMs);
  });
  try {
    return await Promise.race([check.run().catch(() => ({ ok: false, detail: 'unreachable' })), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs every readiness check (2 s each at most): /readyz and the console's health page. */
export function runReadinessChecks(checks: readonly ReadinessCheck[]) {
  return Promise.all(checks.map(async (check) => [check, await runCheck(check, 2000)] as const));
}

/** Liveness and readiness, probed by orchestrators and load balancers (by address, whatever the host). */
export const HEALTH_PATHS = ['/healthz', '/readyz'] as const;

export function healthRoutes(checks: readonly ReadinessCheck[], isShuttingDown: () => boolean): Router {
  const router = new Router();
  router.get(HEALTH_PATHS[0], (ctx) => {
    ctx.set('cache-control', 'no-store');
    ctx.body = { status: 'ok' };
  });
  router.get(HEALTH_PATHS[1], async (ctx) => {
    const outcomes = await runReadinessChecks(checks);
    const results = Object.fromEntries(
      outcomes.map(([check, result]) => [
        check.name,
        check.optional ? { ...result, optional: true } : result,
      ]),
    );
    const ready = !isShuttingDown() && outcomes.every(([check, result]) => result.ok || check.optional);
    ctx.set('cache-control', 'no-store');
    ctx.status = ready ? 200 : 503;
    ctx.body = { status: ready ? 'ready' : 'not ready', checks: results, shuttingDown: isShuttingDown() };
  });
  return router;
}
