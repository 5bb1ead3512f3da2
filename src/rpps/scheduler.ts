import type { Logger } from 'pino';
import { runPeriodically } from '../db/periodic.ts';
import type { RppsSync } from './sync.ts';

/** How often each instance looks whether a run is due (at most). */
const TICK_MS = 5 * 60_000;

/**
 * Runs the RPPS sync in-process every `intervalSeconds`. Every instance ticks; the run history in the
 * database says whether one is due, and the sync's lease lets one instance at a time run it.
 */
export function scheduleRppsSync(sync: RppsSync, intervalSeconds: number, logger: Logger): () => void {
  const tick = async () => {
    const [last] = await sync.runs(1);
    const dueAt = last ? last.started_at.getTime() + intervalSeconds * 1000 : 0;
    if (last?.status === 'running' || Date.now() < dueAt) return;
    const result = await sync.run({ trigger: 'schedule' });
    if (result.kind === 'done') {
      const { status, mode, checked, changed, failed, apiRequests, api, durationMs } = result.summary;
      logger.info(
        { status, mode, checked, changed, failed, apiRequests, api, durationMs },
        'rpps sync finished',
      );
    }
  };
  return runPeriodically(
    tick,
    Math.min(TICK_MS, intervalSeconds * 1000),
    logger,
    'rpps sync: scheduled run failed',
  );
}
