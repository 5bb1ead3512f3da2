import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import {
  AnnuaireServerError,
  AnnuaireUnavailableError,
  DeltaTooOldError,
  errorForStatus,
} from './annuaire-errors.ts';
import {
  type Bundle,
  type CapabilityStatement,
  type DirectoryResource,
  type NationalProfessional,
  nationalIdentifiers,
  type Practitioner,
  type PractitionerRole,
  referencedId,
  toNationalProfessionals,
} from './fhir.ts';
import { rppsOf } from './identifiers.ts';
import { foldName } from './names.ts';

export type { NationalProfessional } from './fhir.ts';

export type AnnuaireApiConfig = Config['rpps']['api'] & { apiKey: string };

export interface AnnuaireClientOptions {
  api: AnnuaireApiConfig;
  logger: Logger;
  /** Waits between retries (tests record or shorten them); the throttle keeps real time. */
  sleep?: (ms: number) => Promise<void>;
  /** Jitter source in [0, 1). */
  random?: () => number;
  /** Calendar clock for the 30-day delta horizon. */
  now?: () => Date;
  /** Monotonic clock (ms) of the circuit breaker (default performance.now; tests move it themselves). */
  breakerClock?: () => number;
  /** Identifier batches searched at once by findByIdentifiers (default 4); the throttle spaces them all. */
  concurrency?: number;
  /** Full restarts of one query whose page link failed (default 3). */
  maxRestarts?: number;
}

export interface AnnuaireStats {
  /** HTTP requests sent, retries included. */
  requests: number;
  retries: number;
  /** Queries restarted from their first page (a page link failed, or the answer was incomplete). */
  restarts: number;
  /** Time spent waiting for the client-side throttle (pauses after a 429 included). */
  throttledMs: number;
  /** 429 answers: the gateway's quota (17 requests/s per application) was exceeded. */
  rateLimited: number;
  /** 504 answers: the gateway gave up (30 s), on a query too heavy or a back end down. */
  gatewayTimeouts: number;
  /** Other transient failures: 502, 503, timeouts and network errors. */
  otherFailures: number;
  /**
   * Answers found incomplete: fewer matches than their `total`, or identifiers absent from a batch's
   * answer and found when looked up again.
   */
  incomplete: number;
}

/** The counters as zero (for differences between two moments). */
export const NO_ANNUAIRE_STATS: Readonly<AnnuaireStats> = Object.freeze({
  requests: 0,
  retries: 0,
  restarts: 0,
  throttledMs: 0,
  rateLimited: 0,
  gatewayTimeouts: 0,
  otherFailures: 0,
  incomplete: 0,
});

/** `_lastUpdated` deltas reach back this far on the Annuaire Santé. */
export const DELTA_HORIZON_MS = 30 * 86_400_000;
/** Kept off the horizon so that a clock ahead of ours cannot silently drop the oldest changes. */
const DELTA_SAFETY_MS = 3_600_000;
/** Above this URL length, searches go as POST `_search` with a form body. */
const MAX_GET_URL = 2000;
const MAX_RETRY_AFTER_MS = 60_000;
/**
 * After a 429 without Retry-After, the least wait: the quota counts requests per second (17 requests/s
 * per application), so a second clears it.
 */
const QUOTA_WINDOW_MS = 1000;
/** Spread over each second's requests so that jittered arrivals still fit the gateway's quota. */
const JITTER_ALLOWANCE_MS = 25;
const MAX_DIAGNOSTICS = 500;

type SearchType = 'Practitioner' | 'PractitionerRole';
interface Entry {
  resource: DirectoryResource;
  mode: 'match' | 'include';
}
interface Target {
  method: 'GET' | 'POST';
  url: string;
  body?: string;
}
/** One attempt's outcome: an HTTP answer, or no answer at all (network failure, timeout). */
type Attempt =
  | { status: number; text: string; retryAfter: string | null }
  | { status: null; failure: string };

/**
 * Spaces the requests of one client (monotonic clock) so that no one-second window holds more than
 * `perSecond` of them, even with a few milliseconds of network jitter on their arrival. Requests go one
 * after the other, each at least one interval after the previous one actually left: a late timer never
 * releases a burst. After a 429, `hold` stops every request until the pause is over: the quota is the
 * application's, so the other requests of this client would be refused as well.
 */
class Throttle {
  readonly #intervalMs: number;
  #lastSent = Number.NEGATIVE_INFINITY;
  #queue: Promise<void> = Promise.resolve();
  #hold: Promise<void> = Promise.resolve();

  constructor(perSecond: number) {
    this.#intervalMs = (1000 + JITTER_ALLOWANCE_MS) / perSecond;
  }

  /** Waits for this request's turn; returns how long it waited. */
  async take(): Promise<number> {
    const requested = performance.now();
    const turn = this.#queue.then(async () => {
      for (;;) {
        const hold = this.#hold;
        await hold;
        const wait = this.#lastSent + this.#intervalMs - performance.now();
        if (wait > 0) await delay(wait);
        if (hold === this.#hold) break; // no pause began meanwhile
      }
      this.#lastSent = performance.now();
    });
    this.#queue = turn;
    await turn;
    return performance.now() - requested;
  }

  /** No request leaves before `pause` settles (requests already waiting for their turn included). */
  hold(pause: Promise<unknown>): void {
    const settled = pause.then(
      () => undefined,
      () => undefined,
    );
    this.#hold = Promise.all([this.#hold, settled]).then(() => undefined);
  }
}

/**
 * Opens after `threshold` consecutive failures (no answer, 502, 503, 504): calls then fail fast for
 * `resetMs`, after which one trial request goes through; its success closes the breaker, its failure
 * opens it again.
 */
class CircuitBreaker {
  readonly #threshold: number;
  readonly #resetMs: number;
  #failures = 0;
  #openedAt: number | null = null;
  #trialInFlight = false;

  readonly #clock: () => number;

  constructor(threshold: number, resetMs: number, clock: () => number) {
    this.#threshold = threshold;
    this.#resetMs = resetMs;
    this.#clock = clock;
  }

  /** Whether a request may go now (a trial one when the breaker was open long enough). */
  admit(): boolean {
    if (this.#openedAt === null) return true;
    if (this.#trialInFlight || this.#clock() - this.#openedAt < this.#resetMs) return false;
    this.#trialInFlight = true;
    return true;
  }

  /** The API answered. */
  success(): void {
    this.#failures = 0;
    this.#openedAt = null;
    this.#trialInFlight = false;
  }

  /** No usable answer; returns true when this failure opened the breaker. */
  failure(): boolean {
    const wasOpen = this.#openedAt !== null;
    this.#failures++;
    if (this.#trialInFlight || this.#failures >= this.#threshold) {
      this.#trialInFlight = false;
      this.#openedAt = this.#clock();
      return !wasOpen;
    }
    return false;
  }
}

/** A Retry-After header (seconds or HTTP date) in ms, at most one minute; null when absent or unreadable. */
function retryAfterMs(value: string | null): number | null {
  if (!value) return null;
  const ms = /^\d+$/.test(value.trim()) ? Number(value) * 1000 : Date.parse(value) - Date.now();
  return Number.isFinite(ms) ? Math.min(Math.max(ms, 0), MAX_RETRY_AFTER_MS) : null;
}

/** Runs `work` over `items`, at most `concurrency` at a time; after a failure no new item starts. */
async function forEachConcurrently<T>(
  items: readonly T[],
  concurrency: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < items.length) {
      try {
        await work(items[next++] as T);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  const outcomes = await Promise.allSettled(
    Array.from({ length: Math.min(concurrency, items.length) }, worker),
  );
  const rejected = outcomes.find((o) => o.status === 'rejected');
  if (rejected) throw rejected.reason;
}

/**
 * Client of the Annuaire Santé FHIR API (v2): searches by idNatPS/RPPS batches, by name and by
 * `_lastUpdated`, following the opaque `next` links. Every request goes through a client-side throttle,
 * retries with exponential backoff and full jitter (429, 502, 503, 504, timeouts, network) and a circuit
 * breaker. The API key is sent as `ESANTE-API-KEY` and never logged nor put in an error.
 *
 * The limits it keeps to come from ../shared/reference/annuaire-sante.md: 17 requests/s per
 * application (the throttle, `requestsPerSecond` per instance; a 429, with or without Retry-After,
 * pauses the whole client for the Retry-After or one second); trouble past about 50 identifiers
 * combined with `_revinclude` (batches of `batchSize` identifier values, 50 by default); 504 after
 * about 30 s on heavy searches (retried with backoff, then reported as unavailable); `total` present by
 * default (an answer with fewer matches than its total is restarted, then reported as incomplete); and a
 * professional absent from a batch's answer is looked up again before counting as absent.
 */
export class AnnuaireClient {
  readonly #api: AnnuaireApiConfig;
  readonly #logger: Logger;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #random: () => number;
  readonly #now: () => Date;
  readonly #concurrency: number;
  readonly #maxRestarts: number;
  /** Base URL without its trailing slash. */
  readonly #base: string;
  readonly #origin: string;
  readonly #throttle: Throttle;
  readonly #breaker: CircuitBreaker;
  readonly #stats: AnnuaireStats = { ...NO_ANNUAIRE_STATS };

  constructor(options: AnnuaireClientOptions) {
    this.#api = options.api;
    this.#logger = options.logger.child({ component: 'annuaire-sante' });
    this.#sleep = options.sleep ?? ((ms) => delay(ms));
    this.#random = options.random ?? Math.random;
    this.#now = options.now ?? (() => new Date());
    this.#concurrency = options.concurrency ?? 4;
    this.#maxRestarts = options.maxRestarts ?? 3;
    this.#base = options.api.baseUrl.replace(/\/+$/, '');
    this.#origin = new URL(this.#base).origin;
    this.#throttle = new Throttle(options.api.requestsPerSecond);
    this.#breaker = new CircuitBreaker(
      options.api.breakerFailureThreshold,
      options.api.breakerResetSeconds * 1000,
      options.breakerClock ?? (() => performance.now()),
    );
  }

  get stats(): AnnuaireStats {
    return { ...this.#stats, throttledMs: Math.round(this.#stats.throttledMs) };
  }

  /** The CapabilityStatement (readiness check). */
  async capabilities(): Promise<{ fhirVersion: string; software?: string }> {
    const statement = (await this.#send({
      method: 'GET',
      url: `${this.#base}/metadata`,
    })) as CapabilityStatement;
    if (statement?.resourceType !== 'CapabilityStatement' || typeof statement.fhirVersion !== 'string')
      throw new AnnuaireServerError('GET metadata: not a CapabilityStatement', { status: 200 });
    const software = statement.software
      ? [statement.software.name, statement.software.version].filter(Boolean).join(' ')
      : undefined;
    return software
      ? { fhirVersion: statement.fhirVersion, software }
      : { fhirVersion: statement.fhirVersion };
  }

  /**
   * The professionals with these idNatPS, in comma-OR batches of at most `batchSize` identifier values
   * with their PractitionerRoles (`_revinclude`): each idNatPS is also searched by its RPPS, for records
   * that carry only that identifier, so such an idNatPS costs two values. Identifiers the directory does
   * not know are absent from the result, but only once a second lookup confirmed it: a partial answer
   * (a lost page, a truncated result without `total`) never makes a professional look gone. Throws when
   * any batch fails (after its retries): the caller never sees a partial result.
   */
  async findByIdentifiers(idNats: readonly string[]): Promise<Map<string, NationalProfessional>> {
    const wanted = [...new Set(idNats.map((id) => id.trim()))];
    const invalid = wanted.find((id) => !/^[0-9A-Za-z]+$/.test(id));
    if (invalid !== undefined) throw new RangeError(`not an idNatPS: ${JSON.stringify(invalid)}`);
    const result = await this.#lookUp(wanted);
    const missing = wanted.filter((id) => !result.has(id));
    if (missing.length === 0) return result;
    const again = await this.#lookUp(missing);
    if (again.size > 0) {
      this.#stats.incomplete++;
      this.#logger.warn(
        { missing: missing.length, foundAgain: again.size },
        'identifiers absent from their first answer were found when looked up again (partial answer)',
      );
      for (const [idNat, professional] of again) result.set(idNat, professional);
    }
    return result;
  }

  /** The identifier values searched for one idNatPS: itself, and its RPPS when it has one. */
  #values(idNat: string): string[] {
    const rpps = rppsOf(idNat);
    return rpps === null ? [idNat] : [idNat, rpps];
  }

  /** idNatPS grouped so that each group's values fit in `batchSize` (at least one idNatPS a group). */
  #batches(idNats: readonly string[]): string[][] {
    const batches: string[][] = [];
    let current: string[] = [];
    let size = 0;
    for (const idNat of idNats) {
      const cost = this.#values(idNat).length;
      if (current.length > 0 && size + cost > this.#api.batchSize) {
        batches.push(current);
        current = [];
        size = 0;
      }
      current.push(idNat);
      size += cost;
    }
    if (current.length > 0) batches.push(current);
    return batches;
  }

  async #lookUp(idNats: readonly string[]): Promise<Map<string, NationalProfessional>> {
    const result = new Map<string, NationalProfessional>();
    await forEachConcurrently(this.#batches(idNats), this.#concurrency, async (batch) => {
      const found = await this.#professionals([
        ['identifier', batch.flatMap((id) => this.#values(id)).join(',')],
        ['_revinclude', 'PractitionerRole:practitioner'],
      ]);
      const inBatch = new Set(batch);
      for (const [idNat, professional] of found) if (inBatch.has(idNat)) result.set(idNat, professional);
    });
    return result;
  }

  /**
   * Professionals whose exercise family name (and given names, when given) fold to the same value as
   * the query (accents, case, hyphens and apostrophes ignored), sorted by idNatPS. The server searches by
   * prefix; longer names it returns are left out.
   */
  async searchByName(family: string, given?: string): Promise<NationalProfessional[]> {
    const wantedFamily = foldName(family);
    const wantedGiven = given === undefined ? null : foldName(given);
    if (wantedFamily === '') return [];
    const params: [string, string][] = [['family', family.trim()]];
    if (given !== undefined && wantedGiven !== '') params.push(['given', given.trim()]);
    params.push(['_revinclude', 'PractitionerRole:practitioner']);
    const found = await this.#professionals(params);
    return [...found.values()]
      .filter(
        (p) =>
          foldName(p.familyName) === wantedFamily &&
          (wantedGiven === null || wantedGiven === '' || foldName(p.givenName) === wantedGiven),
      )
      .sort((a, b) => (a.idNatPs < b.idNatPs ? -1 : 1));
  }

  /**
   * idNatPS of the professionals whose Practitioner or one of whose PractitionerRoles changed since
   * `since` (each once). Throws DeltaTooOldError when `since` is beyond the 30-day reach of deltas: the
   * caller then runs a full pass.
   */
  async *changedSince(since: Date): AsyncGenerator<string> {
    const horizon = new Date(this.#now().getTime() - DELTA_HORIZON_MS + DELTA_SAFETY_MS);
    if (since.getTime() < horizon.getTime()) throw new DeltaTooOldError(since, horizon);
    const lastUpdated: [string, string] = ['_lastUpdated', `ge${since.toISOString()}`];
    const yielded = new Set<string>();

    for await (const page of this.#pages('Practitioner', [lastUpdated])) {
      for (const { resource, mode } of page) {
        if (mode !== 'match' || resource.resourceType !== 'Practitioner') continue;
        const { idNatPs } = nationalIdentifiers(resource);
        if (idNatPs === null || yielded.has(idNatPs)) continue;
        yielded.add(idNatPs);
        yield idNatPs;
      }
    }

    const idNatOfPractitioner = new Map<string, string>();
    let orphans = 0;
    for await (const page of this.#pages('PractitionerRole', [
      lastUpdated,
      ['_include', 'PractitionerRole:practitioner'],
    ])) {
      for (const { resource } of page) {
        if (resource.resourceType !== 'Practitioner') continue;
        const { idNatPs } = nationalIdentifiers(resource);
        if (idNatPs !== null) idNatOfPractitioner.set(resource.id, idNatPs);
      }
      for (const { resource, mode } of page) {
        if (mode !== 'match' || resource.resourceType !== 'PractitionerRole') continue;
        const practitionerId = referencedId(resource.practitioner, 'Practitioner');
        const idNatPs = practitionerId === null ? undefined : idNatOfPractitioner.get(practitionerId);
        if (idNatPs === undefined) orphans++;
        if (idNatPs === undefined || yielded.has(idNatPs)) continue;
        yielded.add(idNatPs);
        yield idNatPs;
      }
    }
    if (orphans > 0) this.#logger.warn({ orphans }, 'changed roles whose practitioner was not included');
  }

  async #professionals(params: [string, string][]): Promise<Map<string, NationalProfessional>> {
    const practitioners: Practitioner[] = [];
    const roles: PractitionerRole[] = [];
    for await (const page of this.#pages('Practitioner', params)) {
      for (const { resource } of page) {
        if (resource.resourceType === 'Practitioner') practitioners.push(resource);
        else if (resource.resourceType === 'PractitionerRole') roles.push(resource);
      }
    }
    return toNationalProfessionals(practitioners, roles);
  }

  /**
   * The pages of one search, following the opaque `next` links. When a page link answers 500 (expired
   * or corrupt), or when the last page leaves the search with fewer matches than its `total` (a partial
   * answer), the query restarts from its first page, at most `maxRestarts` times; entries already
   * yielded (same resource, same mode) are not yielded again. A persistently partial answer throws
   * AnnuaireUnavailableError (`incomplete`).
   */
  async *#pages(type: SearchType, params: [string, string][]): AsyncGenerator<Entry[]> {
    const query = new URLSearchParams([...params, ['_count', String(Math.min(this.#api.pageSize, 200))]]);
    const getUrl = `${this.#base}/${type}?${query}`;
    const first: Target =
      getUrl.length <= MAX_GET_URL
        ? { method: 'GET', url: getUrl }
        : { method: 'POST', url: `${this.#base}/${type}/_search`, body: query.toString() };
    const yielded = new Set<string>();
    let restarts = 0;
    const restart = (reason: string, detail: Record<string, unknown>) => {
      restarts++;
      this.#stats.restarts++;
      this.#logger.warn({ type, restarts, ...detail }, `${reason}, restarting the query`);
    };
    attempt: for (;;) {
      let bundle = this.#bundle(await this.#send(first), first);
      const total = typeof bundle.total === 'number' ? bundle.total : null;
      /** Matches of this attempt (yielded now or by an earlier attempt). */
      const matched = new Set<string>();
      for (;;) {
        const page: Entry[] = [];
        for (const entry of bundle.entry ?? []) {
          const resource = entry.resource as DirectoryResource | undefined;
          if (!resource?.id) continue;
          const mode = entry.search?.mode === 'include' ? 'include' : 'match';
          const key = `${mode}:${resource.resourceType}/${resource.id}`;
          if (mode === 'match' && resource.resourceType === type) matched.add(key);
          if (yielded.has(key)) continue;
          yielded.add(key);
          page.push({ resource, mode });
        }
        yield page;
        const next = bundle.link?.find((l) => l.relation === 'next')?.url;
        if (!next) break;
        const target: Target = { method: 'GET', url: this.#followable(next) };
        try {
          bundle = this.#bundle(await this.#send(target), target);
        } catch (err) {
          if (!(err instanceof AnnuaireServerError && err.status === 500) || restarts >= this.#maxRestarts)
            throw err;
          restart('page link failed', { diagnostics: err.diagnostics });
          continue attempt;
        }
      }
      // Bundle.total counts the matches across all pages (FHIR R4), never the included resources.
      if (total === null || matched.size >= total) return;
      this.#stats.incomplete++;
      if (restarts >= this.#maxRestarts)
        throw new AnnuaireUnavailableError(
          `${this.#what(first)}: incomplete answer (${matched.size} matches of ${total}) after ${restarts} restarts`,
          { status: 200, reason: 'incomplete' },
        );
      restart('incomplete answer', { matches: matched.size, total });
    }
  }

  /** A `next` link, used as given, provided it stays on the API's origin (the key goes with it). */
  #followable(link: string): string {
    let url: URL;
    try {
      url = new URL(link, this.#base);
    } catch {
      throw new AnnuaireServerError('next link is not a URL', { status: 200 });
    }
    if (url.origin !== this.#origin)
      throw new AnnuaireServerError(`next link leaves the API origin (${url.origin})`, { status: 200 });
    return url.toString();
  }

  #bundle(body: unknown, target: Target): Bundle {
    if ((body as Bundle | null)?.resourceType !== 'Bundle')
      throw new AnnuaireServerError(`${this.#what(target)}: the answer is not a Bundle`, { status: 200 });
    return body as Bundle;
  }

  #what(target: Target): string {
    return `${target.method} ${new URL(target.url).pathname}`;
  }

  /** One logical request: throttle, breaker, retries. Returns the parsed JSON body of a 2xx answer. */
  async #send(target: Target): Promise<unknown> {
    const what = this.#what(target);
    for (let attempt = 0; ; attempt++) {
      if (!this.#breaker.admit())
        throw new AnnuaireUnavailableError(`${what}: Annuaire Santé API unavailable (circuit breaker open)`, {
          status: null,
          reason: 'breaker-open',
        });
      this.#stats.throttledMs += await this.#throttle.take();
      this.#stats.requests++;
      const started = performance.now();
      const answer = await this.#attempt(target);
      const ms = Math.round(performance.now() - started);
      const transient = answer.status === null || [502, 503, 504].includes(answer.status);
      if (transient) {
        if (this.#breaker.failure())
          this.#logger.error(
            { threshold: this.#api.breakerFailureThreshold, resetSeconds: this.#api.breakerResetSeconds },
            'Annuaire Santé API circuit breaker opened',
          );
      } else this.#breaker.success();
      this.#logger.debug(
        { method: target.method, path: new URL(target.url).pathname, status: answer.status, ms },
        'annuaire request',
      );

      if (answer.status !== null && answer.status >= 200 && answer.status < 300) {
        try {
          return JSON.parse(answer.text);
        } catch {
          throw new AnnuaireServerError(`${what}: the answer is not JSON`, { status: answer.status });
        }
      }
      const diagnostics = answer.status === null ? null : this.#diagnostics(answer.text);
      const throttled = answer.status === 429;
      if (!transient && !throttled) throw errorForStatus(answer.status as number, diagnostics, what);
      if (throttled) this.#stats.rateLimited++;
      else if (answer.status === 504) this.#stats.gatewayTimeouts++;
      else this.#stats.otherFailures++;

      const problem = answer.status === null ? answer.failure : `HTTP ${answer.status}`;
      if (attempt >= this.#api.maxRetries)
        throw new AnnuaireUnavailableError(
          `${what}: Annuaire Santé API unavailable after ${attempt + 1} attempts (${problem})`,
          { status: answer.status, diagnostics, reason: 'retries-exhausted' },
        );
      const backoff = this.#random() * this.#api.retryBaseDelayMs * 2 ** attempt;
      // A 429 waits for its Retry-After, or one quota window when it has none (undocumented either way).
      const retryAfter = throttled ? answer.retryAfter : null;
      const floor = throttled ? (retryAfterMs(retryAfter) ?? QUOTA_WINDOW_MS) : 0;
      const wait = Math.round(Math.max(floor, backoff));
      this.#stats.retries++;
      this.#logger.warn(
        {
          path: new URL(target.url).pathname,
          problem,
          ...(throttled ? { retryAfter } : {}),
          attempt: attempt + 1,
          waitMs: wait,
        },
        'annuaire request failed, retrying',
      );
      const pause = this.#sleep(wait);
      if (throttled) this.#throttle.hold(pause);
      await pause;
    }
  }

  async #attempt(target: Target): Promise<Attempt> {
    const headers: Record<string, string> = {
      accept: 'application/fhir+json',
      'esante-api-key': this.#api.apiKey,
    };
    if (target.body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
    try {
      const response = await fetch(target.url, {
        method: target.method,
        headers,
        body: target.body,
        redirect: 'manual',
        signal: AbortSignal.timeout(this.#api.timeoutMs),
      });
      const text = await response.text();
      return { status: response.status, text, retryAfter: response.headers.get('retry-after') };
    } catch (err) {
      const error = err as Error & { cause?: { code?: string; message?: string } };
      if (error.name === 'TimeoutError')
        return { status: null, failure: `timed out after ${this.#api.timeoutMs} ms` };
      return {
        status: null,
        failure: `network error: ${error.cause?.code ?? error.cause?.message ?? error.message}`,
      };
    }
  }

  /** `issue[].diagnostics` of an OperationOutcome (or a gateway's `message`), without the key, bounded. */
  #diagnostics(text: string): string | null {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return null;
    }
    const outcome = body as { resourceType?: string; issue?: { diagnostics?: unknown }[]; message?: unknown };
    const parts =
      outcome.resourceType === 'OperationOutcome'
        ? (outcome.issue ?? []).map((i) => i.diagnostics).filter((d): d is string => typeof d === 'string')
        : typeof outcome.message === 'string'
          ? [outcome.message]
          : [];
    if (parts.length === 0) return null;
    return parts.join('; ').replaceAll(this.#api.apiKey, '[redacted]').slice(0, MAX_DIAGNOSTICS);
  }
}
