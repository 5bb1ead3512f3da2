/**
 * Load generation over keep-alive HTTP/1.1 to the loopback server: a closed loop (N workers, each
 * waiting for its response before sending the next request) to find the peak rate, and an open loop
 * (requests sent on a fixed schedule) to measure latency at a given rate without coordinated omission.
 */
import { Agent, request } from 'node:http';

export interface HttpResponse {
  status: number;
  body: string;
}

/** A keep-alive connection pool to one loopback origin. */
export class HttpTarget {
  readonly #agent: Agent;
  readonly #host: string;
  readonly #port: number;

  constructor(origin: string, maxSockets: number) {
    const url = new URL(origin);
    if (url.protocol !== 'http:' || url.hostname !== '127.0.0.1') {
      throw new Error(`the load generator only targets http://127.0.0.1 (got ${origin})`);
    }
    this.#host = url.hostname;
    this.#port = Number(url.port);
    this.#agent = new Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets, scheduling: 'lifo' });
  }

  post(path: string, body: string, headers: Record<string, string> = {}): Promise<HttpResponse> {
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: this.#host,
          port: this.#port,
          agent: this.#agent,
          method: 'POST',
          path,
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            'content-length': Buffer.byteLength(body),
            ...headers,
          },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            text += chunk;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  close(): void {
    this.#agent.destroy();
  }
}

export interface LoopResult {
  completed: number;
  errors: number;
  /** Requests the open loop could not send because too many were outstanding. */
  dropped: number;
  wallSeconds: number;
  /** Latencies of the completed requests, milliseconds, sorted ascending. */
  latencies: Float64Array;
  /** The worst moments: 100 ms windows (by send time) whose slowest request took over 50 ms. */
  stalls: { atSeconds: number; slowestMs: number; requests: number }[];
  firstError?: string;
}

class Recorder {
  readonly #latencies: Float64Array;
  /** Send time of each completed request, ms since the start of the loop. */
  readonly #sentAt: Float64Array;
  completed = 0;
  errors = 0;
  dropped = 0;
  firstError: string | undefined;

  constructor(maxRequests: number) {
    this.#latencies = new Float64Array(maxRequests);
    this.#sentAt = new Float64Array(maxRequests);
  }

  ok(ms: number, sentAt: number): void {
    if (this.completed < this.#latencies.length) {
      this.#latencies[this.completed] = ms;
      this.#sentAt[this.completed] = sentAt;
    }
    this.completed++;
  }

  #stalls(n: number): LoopResult['stalls'] {
    const windows = new Map<number, { slowestMs: number; requests: number }>();
    for (let i = 0; i < n; i++) {
      const ms = this.#latencies[i] ?? 0;
      if (ms <= 50) continue;
      const at = Math.floor((this.#sentAt[i] ?? 0) / 100);
      const w = windows.get(at) ?? { slowestMs: 0, requests: 0 };
      w.slowestMs = Math.max(w.slowestMs, ms);
      w.requests++;
      windows.set(at, w);
    }
    return [...windows]
      .sort((a, b) => b[1].slowestMs - a[1].slowestMs)
      .slice(0, 5)
      .map(([at, w]) => ({ atSeconds: at / 10, slowestMs: Math.round(w.slowestMs), requests: w.requests }));
  }

  fail(err: unknown): void {
    this.errors++;
    this.firstError ??= err instanceof Error ? err.message : String(err);
  }

  result(wallSeconds: number): LoopResult {
    const n = Math.min(this.completed, this.#latencies.length);
    const stalls = this.#stalls(n);
    const latencies = this.#latencies.slice(0, n).sort();
    return {
      completed: this.completed,
      errors: this.errors,
      dropped: this.dropped,
      wallSeconds,
      latencies,
      stalls,
      ...(this.firstError ? { firstError: this.firstError } : {}),
    };
  }
}

export interface ClosedLoopOptions {
  concurrency: number;
  durationMs: number;
  /** Upper bound on requests started, whatever the duration. */
  maxRequests: number;
}

/** `concurrency` workers call `op(worker)` back to back until the duration or the request budget runs out. */
export async function closedLoop(
  op: (worker: number) => Promise<void>,
  options: ClosedLoopOptions,
): Promise<LoopResult> {
  const recorder = new Recorder(options.maxRequests);
  const start = performance.now();
  const deadline = start + options.durationMs;
  let started = 0;
  const worker = async (id: number) => {
    let consecutiveErrors = 0;
    while (performance.now() < deadline && started < options.maxRequests && consecutiveErrors < 20) {
      started++;
      const t0 = performance.now();
      try {
        await op(id);
        recorder.ok(performance.now() - t0, t0 - start);
        consecutiveErrors = 0;
      } catch (err) {
        recorder.fail(err);
        consecutiveErrors++;
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, (_, id) => worker(id)));
  return recorder.result((performance.now() - start) / 1000);
}

export interface OpenLoopOptions {
  /** Requests per second, sent on a fixed schedule whatever the response times. */
  rate: number;
  durationMs: number;
  /** Beyond this many outstanding requests, scheduled requests are dropped (and counted). */
  maxInFlight: number;
}

/**
 * Sends `op()` at a fixed rate. Each latency is measured from the request's scheduled time, so a
 * stalled server shows up as latency instead of silently lowering the offered rate.
 */
export async function openLoop(op: () => Promise<void>, options: OpenLoopOptions): Promise<LoopResult> {
  const total = Math.max(1, Math.round((options.rate * options.durationMs) / 1000));
  const recorder = new Recorder(total);
  const interval = 1000 / options.rate;
  const pending = new Set<Promise<void>>();
  const start = performance.now();
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor((performance.now() - start) / interval) + 1);
    for (; sent < due; sent++) {
      if (pending.size >= options.maxInFlight) {
        recorder.dropped++;
        continue;
      }
      const scheduled = start + sent * interval;
      const p: Promise<void> = op().then(
        () => recorder.ok(performance.now() - scheduled, scheduled - start),
        (err: unknown) => recorder.fail(err),
      );
      pending.add(p);
      p.finally(() => pending.delete(p));
    }
    if (sent < total) {
      const wait = start + sent * interval - performance.now();
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, Math.min(wait, 5))));
    }
  }
  await Promise.all(pending);
  return recorder.result((performance.now() - start) / 1000);
}

/** The q-quantile (0..1) of sorted latencies, nearest-rank. */
export function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] ?? Number.NaN;
}
