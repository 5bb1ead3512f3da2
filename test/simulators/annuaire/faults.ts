/** Faults injected into the simulated Annuaire Santé, as its gateway produces them. */

export type FaultStatus = 429 | 502 | 503 | 504;

export interface FaultControls {
  /**
   * The next `times` requests (default 1) whose path matches `path` answer `status`: 429 with
   * Retry-After (default 1 s), 502 and 504 with an empty body, 503 with an OperationOutcome.
   */
  queue(status: FaultStatus, options?: { times?: number; path?: RegExp; retryAfterSeconds?: number }): void;
  /** The next `times` page links (`_page?id=`) answer 500 as if they had expired. */
  stalePages(times?: number): void;
  /** Delays the next `times` matching responses (default: all of them) by `ms`. */
  delay(ms: number, options?: { times?: number; path?: RegExp }): void;
  /** Every request fails: 503 (`unavailable`) or its connection is destroyed (`reset`). */
  down(mode?: 'unavailable' | 'reset'): void;
  up(): void;
  /** Removes every queued fault and delay and brings the server up. */
  clear(): void;
}

interface Queued {
  remaining: number;
  path: RegExp | undefined;
}

function take<T extends Queued>(list: T[], path: string): T | undefined {
  const found = list.find((f) => f.remaining > 0 && (!f.path || f.path.test(path)));
  if (found) found.remaining--;
  return found;
}

export class Faults implements FaultControls {
  #statuses: (Queued & { status: FaultStatus; retryAfterSeconds: number })[] = [];
  #delays: (Queued & { ms: number })[] = [];
  #stalePages = 0;
  #down: 'unavailable' | 'reset' | null = null;

  queue(
    status: FaultStatus,
    options: { times?: number; path?: RegExp; retryAfterSeconds?: number } = {},
  ): void {
    this.#statuses.push({
      status,
      remaining: options.times ?? 1,
      path: options.path,
      retryAfterSeconds: options.retryAfterSeconds ?? 1,
    });
  }

  stalePages(times = 1): void {
    this.#stalePages += times;
  }

  delay(ms: number, options: { times?: number; path?: RegExp } = {}): void {
    this.#delays.push({ ms, remaining: options.times ?? Number.POSITIVE_INFINITY, path: options.path });
  }

  down(mode: 'unavailable' | 'reset' = 'unavailable'): void {
    this.#down = mode;
  }

  up(): void {
    this.#down = null;
  }

  clear(): void {
    this.#statuses = [];
    this.#delays = [];
    this.#stalePages = 0;
    this.#down = null;
  }

  get downMode(): 'unavailable' | 'reset' | null {
    return this.#down;
  }

  takeStatus(path: string): { status: FaultStatus; retryAfterSeconds: number } | undefined {
    return take(this.#statuses, path);
  }

  takeDelay(path: string): number {
    return take(this.#delays, path)?.ms ?? 0;
  }

  takeStalePage(): boolean {
    if (this.#stalePages === 0) return false;
    this.#stalePages--;
    return true;
  }
}
