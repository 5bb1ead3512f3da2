/** Faults injected into the simulated Annuaire Santé, as its gateway produces them. */

export type FaultStatus = 429 | 502 | 503 | 504;

export interface FaultControls {
  /**
   * The next `times` requests (default 1) whose path matches `path` (and whose query string or form
   * body matches `query`: one batch of identifiers, say) answer `status`: 429 with
   * Retry-After (default 1 s; `null`: without the header, the throttling answer being undocumented),
   * 502 and 504 with an empty body, 503 with an OperationOutcome.
   */
  queue(
    status: FaultStatus,
    options?: { times?: number; path?: RegExp; query?: RegExp; retryAfterSeconds?: number | null },
  ): void;
  /** The next `times` page links (`_page?id=`) answer 500 as if they had expired. */
  stalePages(times?: number): void;
  /**
   * The next `times` searches answer only part of their first page (`keep` matches, default half of
   * them) and no `next` link, their `total` unchanged: a partial answer, as a client sees when a page
   * is lost between the server and the gateway.
   */
  truncate(times?: number, options?: { keep?: number }): void;
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
  query?: RegExp | undefined;
}

function take<T extends Queued>(list: T[], path: string, query = ''): T | undefined {
  const found = list.find(
    (f) => f.remaining > 0 && (!f.path || f.path.test(path)) && (!f.query || f.query.test(query)),
  );
  if (found) found.remaining--;
  return found;
}

export class Faults implements FaultControls {
  #statuses: (Queued & { status: FaultStatus; retryAfterSeconds: number | null })[] = [];
  #delays: (Queued & { ms: number })[] = [];
  #stalePages = 0;
  #truncations: { remaining: number; keep: number | undefined }[] = [];
  #down: 'unavailable' | 'reset' | null = null;

  queue(
    status: FaultStatus,
    options: { times?: number; path?: RegExp; query?: RegExp; retryAfterSeconds?: number | null } = {},
  ): void {
    this.#statuses.push({
      status,
      remaining: options.times ?? 1,
      path: options.path,
      query: options.query,
      retryAfterSeconds: options.retryAfterSeconds === undefined ? 1 : options.retryAfterSeconds,
    });
  }

  stalePages(times = 1): void {
    this.#stalePages += times;
  }

  truncate(times = 1, options: { keep?: number } = {}): void {
    this.#truncations.push({ remaining: times, keep: options.keep });
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
    this.#truncations = [];
    this.#down = null;
  }

  get downMode(): 'unavailable' | 'reset' | null {
    return this.#down;
  }

  takeStatus(
    path: string,
    query: string,
  ): { status: FaultStatus; retryAfterSeconds: number | null } | undefined {
    return take(this.#statuses, path, query);
  }

  takeDelay(path: string): number {
    return take(this.#delays, path)?.ms ?? 0;
  }

  /** How many matches the next search keeps of its first page (undefined: not truncated). */
  takeTruncation(matches: number): number | undefined {
    const found = this.#truncations.find((t) => t.remaining > 0);
    if (!found) return undefined;
    found.remaining--;
    return Math.min(found.keep ?? Math.floor(matches / 2), matches);
  }

  takeStalePage(): boolean {
    if (this.#stalePages === 0) return false;
    this.#stalePages--;
    return true;
  }
}
