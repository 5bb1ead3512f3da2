import type { Logger } from 'pino';

/**
 * Runs `task` every `periodMs` in the background, never two at once (a slow run skips the ticks it
 * overlaps); a failure is logged and the next tick tries again. The timer does not keep the process
 * alive. Returns the stop function.
 */
export function runPeriodically(
  task: () => Promise<void>,
  periodMs: number,
  logger: Logger,
  failure: string,
): () => void {
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    task()
      .catch((err) => logger.error({ err }, failure))
      .finally(() => {
        busy = false;
      });
  }, periodMs);
  timer.unref();
  return () => clearInterval(timer);
}
