import { Writable } from 'node:stream';
import type { Logger } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.ts';
import { createLogger } from '../src/http/logger.ts';
import {
  type AnnuaireApiConfig,
  AnnuaireClient,
  type AnnuaireClientOptions,
  type NationalProfessional,
} from '../src/rpps/annuaire-client.ts';
import {
  AnnuaireServerError,
  AnnuaireUnauthorizedError,
  AnnuaireUnavailableError,
  DeltaTooOldError,
} from '../src/rpps/annuaire-errors.ts';
import { fixtureRpps, generateProfessionals, type Professional } from './simulators/annuaire/fixtures.ts';
import {
  type AnnuaireSimulator,
  type RecordedRequest,
  startAnnuaireSimulator,
} from './simulators/annuaire/server.ts';

const API_KEY = 'esante-key-7c2e91d04b';
const DAY = 86_400_000;
const START = new Date('2026-11-01T00:00:00Z');
/** The configuration's defaults for rpps.api: the tests run the client as shipped. */
const DEFAULTS = loadConfig({
  env: {},
  overrides: {
    issuer: 'https://sso.hopital.test',
    keys: { encryptionKey: Buffer.alloc(32, 7).toString('base64') },
  },
}).config.rpps.api;
/** The simulator's gateway gives up on heavy searches after 30 s; 30 ms here. */
const GATEWAY_TIMEOUT_MS = 30;

function capture(): { logger: Logger; text: () => string } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { logger: createLogger('debug', sink), text: () => lines.join('') };
}

function expectedRoleCodes(p: Professional): string[] {
  const codes = p.activities
    .filter((a) => a.active)
    .flatMap((a) => [`TRE_R21:${a.role.code}`, `TRE_R22:${a.genre.code}`, `TRE_R23:${a.mode.code}`]);
  return [...new Set(codes)].sort();
}

function isSearch(r: RecordedRequest): boolean {
  return /\/(Practitioner|PractitionerRole)(\/_search)?$/.test(r.path);
}

/** Values of the `identifier` parameter of a recorded search. */
function identifierValues(r: RecordedRequest): string[] {
  return new URLSearchParams(r.query).getAll('identifier').flatMap((v) => v.split(','));
}

/** A sleep that records what the client asked for and waits at most `cap` ms. */
function recordingSleep(cap = 20): { sleeps: number[]; sleep: (ms: number) => Promise<void> } {
  const sleeps: number[] = [];
  return {
    sleeps,
    sleep: (ms) => {
      sleeps.push(ms);
      return new Promise((resolve) => setTimeout(resolve, Math.min(ms, cap)));
    },
  };
}

describe('Annuaire Santé client against the simulator', () => {
  let professionals: Professional[];
  let simulator: AnnuaireSimulator;
  const legacyIndexes = new Set([3, 4, 5]);
  const rppsOnlyIndexes = new Set([6, 8]);

  // The shipped defaults (rate, batch, page size), with short timeouts and backoff for the tests.
  const api = (overrides: Partial<AnnuaireApiConfig> = {}): AnnuaireApiConfig => ({
    ...DEFAULTS,
    baseUrl: simulator.baseUrl,
    apiKey: API_KEY,
    timeoutMs: 2000,
    maxRetries: 3,
    retryBaseDelayMs: 10,
    ...overrides,
  });
  const client = (overrides: Partial<AnnuaireApiConfig> = {}, options: Partial<AnnuaireClientOptions> = {}) =>
    new AnnuaireClient({ api: api(overrides), logger: createLogger('silent'), now: () => START, ...options });
  /** Requests the simulator received from now on. */
  const since = () => {
    const mark = simulator.requests.length;
    return () => simulator.requests.slice(mark);
  };

  beforeAll(async () => {
    professionals = [...generateProfessionals({ count: 1500, now: START })];
    // The real service's defaults: quota 17 requests/s, 504 past 50 identifiers with _revinclude, total.
    simulator = await startAnnuaireSimulator({
      professionals,
      apiKey: API_KEY,
      now: () => START,
      legacyIdentifiers: (p) => [...legacyIndexes].some((i) => fixtureRpps(i) === p.rpps),
      rppsOnlyIdentifiers: (p) => [...rppsOnlyIndexes].some((i) => fixtureRpps(i) === p.rpps),
      gatewayTimeoutMs: GATEWAY_TIMEOUT_MS,
    });
  });
  afterAll(async () => {
    await simulator.close();
  });
  beforeEach(() => {
    simulator.faults.clear();
  });

  it('reads the CapabilityStatement', async () => {
    expect(await client().capabilities()).toEqual({
      fhirVersion: '4.0.1',
      software: 'Annuaire Santé simulator 2.0',
    });
  });

  it('finds professionals by idNatPS in batches of at most 50 identifiers with _revinclude, unknown ids absent', async () => {
    const active = professionals.filter((p) => p.active).slice(0, 240);
    const unknown = ['819999999999', '810000000000'];
    const requests = since();
    const c = client();
    const found = await c.findByIdentifiers([
      ...active.map((p) => p.idNatPs),
      ...unknown,
      active[0]?.idNatPs as string,
    ]);
    const searches = requests().filter(isSearch);
    // Each idNatPS goes as idNatPS and RPPS: 25 professionals (50 values) a search, 242 in 10 searches;
    // the 2 absent ones are looked up once more before they count as absent.
    expect(searches.map((r) => identifierValues(r).length)).toEqual([...Array(9).fill(50), 34, 4]);
    for (const r of searches) {
      expect(r).toMatchObject({ method: 'GET', status: 200 });
      expect(new URLSearchParams(r.query).get('_revinclude')).toBe('PractitionerRole:practitioner');
    }
    expect(requests().filter((r) => r.path.endsWith('/_page'))).toEqual([]);
    expect(c.stats).toMatchObject({
      requests: 11,
      retries: 0,
      restarts: 0,
      rateLimited: 0,
      gatewayTimeouts: 0,
    });
    expect(found.size).toBe(active.length);
    for (const id of unknown) expect(found.has(id)).toBe(false);
    for (const p of active) {
      const n = found.get(p.idNatPs) as NationalProfessional;
      expect(n).toMatchObject({
        idNatPs: p.idNatPs,
        rpps: p.rpps,
        active: true,
        familyName: p.familyName,
        givenName: p.givenName,
        professionCode: p.profession.code,
        professionLabel: p.profession.label,
        categoryCode: p.category.code,
        roleCodes: expectedRoleCodes(p),
        activeRoleCount: p.activities.length,
        lastUpdated: p.lastUpdated,
      });
      for (const id of n.practitionerIds) expect(id).toMatch(/^003-\d+-\d+$/);
    }
    for (const r of simulator.requests)
      for (const key of new URLSearchParams(r.query).keys()) expect(key).not.toContain('.');
  });

  it('keeps the default batch under the API limit; a larger batch gets 504 after the gateway timeout, retried, then reported', async () => {
    const wanted = professionals.filter((p) => p.active).slice(0, 60);
    // The default batch (50 values) passes where the real API has trouble past about 50 (#372).
    const fine = client();
    expect((await fine.findByIdentifiers(wanted.map((p) => p.idNatPs))).size).toBe(wanted.length);
    expect(fine.stats.gatewayTimeouts).toBe(0);

    const requests = since();
    const { sleeps, sleep } = recordingSleep();
    const heavy = client({ batchSize: 100, maxRetries: 2 }, { sleep, random: () => 1 });
    const err = await heavy.findByIdentifiers(wanted.map((p) => p.idNatPs)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AnnuaireUnavailableError);
    expect(err).toMatchObject({ kind: 'unavailable', reason: 'retries-exhausted', status: 504 });
    expect((err as Error).message).toMatch(/HTTP 504/);
    expect(
      requests()
        .filter((r) => identifierValues(r).length === 100)
        .map((r) => r.status),
    ).toEqual([504, 504, 504]);
    expect(sleeps.slice(0, 2)).toEqual([10, 20]);
    expect(heavy.stats).toMatchObject({ gatewayTimeouts: 3, retries: 2 });
  });

  it('sends long queries as POST _search (a batch an operator raised, where the API allows it)', async () => {
    // About POST for URLs over 2000 characters: this simulator accepts 200 identifiers with _revinclude.
    const lenient = await startAnnuaireSimulator({
      professionals,
      apiKey: API_KEY,
      now: () => START,
      maxIdentifiersWithInclude: 200,
    });
    try {
      const active = professionals.filter((p) => p.active).slice(0, 120);
      const c = new AnnuaireClient({
        api: api({ baseUrl: lenient.baseUrl, batchSize: 200 }),
        logger: createLogger('silent'),
        now: () => START,
      });
      expect((await c.findByIdentifiers(active.map((p) => p.idNatPs))).size).toBe(active.length);
      // 100 idNatPS and their RPPS exceed 2000 characters in a URL: POST; the last 20 fit in a GET.
      expect(
        lenient.requests.map((r) => `${r.method} ${r.path} ${identifierValues(r).length}`).sort(),
      ).toEqual(['GET /fhir/v2/Practitioner 40', 'POST /fhir/v2/Practitioner/_search 200']);
    } finally {
      await lenient.close();
    }
  });

  it('merges the Practitioners of one RPPS into one professional with the roles of both', async () => {
    const split = professionals.filter((p) => simulator.practitionerIdsOf(p.idNatPs).length === 2);
    expect(split.length).toBeGreaterThan(0);
    const found = await client().findByIdentifiers(split.map((p) => p.idNatPs));
    expect(found.size).toBe(split.length);
    for (const p of split) {
      const n = found.get(p.idNatPs) as NationalProfessional;
      expect(n.practitionerIds).toEqual(simulator.practitionerIdsOf(p.idNatPs));
      expect(n.roleCodes).toEqual(expectedRoleCodes(p));
      expect(n.activeRoleCount).toBe(p.activities.length);
      expect(n.lastUpdated).toEqual(p.lastUpdated);
    }
  });

  it('accepts the older identifier convention and derives the idNatPS when only the RPPS is served', async () => {
    const chosen = [...legacyIndexes, ...rppsOnlyIndexes].map((i) => professionals[i] as Professional);
    const found = await client().findByIdentifiers(chosen.map((p) => p.idNatPs));
    expect([...found.keys()].sort()).toEqual(chosen.map((p) => p.idNatPs).sort());
    for (const p of chosen)
      expect(found.get(p.idNatPs)).toMatchObject({ rpps: p.rpps, familyName: p.familyName });
  });

  it('reports inactive professionals (tombstones) as inactive without names or roles', async () => {
    const horizon = START.getTime() - 30 * DAY;
    const gone = professionals.filter((p) => !p.active && p.lastUpdated.getTime() >= horizon).slice(0, 5);
    const forgotten = professionals.filter((p) => !p.active && p.lastUpdated.getTime() < horizon).slice(0, 5);
    expect(gone.length).toBe(5);
    const found = await client().findByIdentifiers([...gone, ...forgotten].map((p) => p.idNatPs));
    expect([...found.keys()].sort()).toEqual(gone.map((p) => p.idNatPs).sort());
    for (const p of gone)
      expect(found.get(p.idNatPs)).toMatchObject({
        active: false,
        familyName: null,
        professionCode: null,
        roleCodes: [],
        activeRoleCount: 0,
        rpps: p.rpps,
      });
  });

  it('follows next links over many small pages', async () => {
    const wanted = professionals.filter((p) => p.active).slice(300, 325);
    const practitioners = wanted.reduce((n, p) => n + simulator.practitionerIdsOf(p.idNatPs).length, 0);
    const requests = since();
    const c = client({ pageSize: 7 });
    const found = await c.findByIdentifiers(wanted.map((p) => p.idNatPs));
    expect(found.size).toBe(wanted.length);
    const sent = requests();
    expect(sent).toHaveLength(Math.ceil(practitioners / 7));
    expect(sent.slice(1).every((r) => r.path === '/fhir/v2/_page' && /^id=[\w-]+$/.test(r.query))).toBe(true);
    expect(new URLSearchParams(sent[0]?.query).get('_count')).toBe('7');
    expect(new URLSearchParams(sent[0]?.query).has('_total')).toBe(false);
    for (const p of wanted) expect(found.get(p.idNatPs)?.roleCodes).toEqual(expectedRoleCodes(p));
  });

  it('restarts a query whose page link answers 500, without duplicates, a bounded number of times', async () => {
    const wanted = professionals
      .filter((p) => p.active)
      .slice(400, 425)
      .map((p) => p.idNatPs);
    const clean = await client({ pageSize: 15 }).findByIdentifiers(wanted);
    simulator.faults.stalePages(1);
    const restarted = client({ pageSize: 15 });
    expect(await restarted.findByIdentifiers(wanted)).toEqual(clean);
    expect(restarted.stats.restarts).toBe(1);

    simulator.faults.stalePages(3);
    const exhausted = client({ pageSize: 15 }, { maxRestarts: 2 });
    const err = await exhausted.findByIdentifiers(wanted).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AnnuaireServerError);
    expect(err).toMatchObject({ status: 500, kind: 'server' });
    expect((err as AnnuaireServerError).diagnostics).toMatch(/too old or corrupted/);
    expect(exhausted.stats.restarts).toBe(2);
  });

  it('restarts a query whose answer has fewer matches than its total; gives up on a persistently partial one', async () => {
    const wanted = professionals
      .filter((p) => p.active)
      .slice(450, 475)
      .map((p) => p.idNatPs);
    const clean = await client().findByIdentifiers(wanted);
    expect(clean.size).toBe(wanted.length);
    simulator.faults.truncate(1);
    const restarted = client();
    expect(await restarted.findByIdentifiers(wanted)).toEqual(clean);
    expect(restarted.stats).toMatchObject({ restarts: 1, incomplete: 1 });

    simulator.faults.truncate(10);
    const partial = client({}, { maxRestarts: 2 });
    const err = await partial.findByIdentifiers(wanted).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AnnuaireUnavailableError);
    expect(err).toMatchObject({ kind: 'unavailable', reason: 'incomplete', status: 200 });
    expect((err as Error).message).toMatch(/matches of \d+/);
    expect(partial.stats).toMatchObject({ restarts: 2, incomplete: 3 });
  });

  it('without a total, looks the missing identifiers up again before they count as absent', async () => {
    const bare = await startAnnuaireSimulator({
      professionals,
      apiKey: API_KEY,
      now: () => START,
      total: 'never',
    });
    try {
      const wanted = professionals
        .filter((p) => p.active)
        .slice(500, 525)
        .map((p) => p.idNatPs);
      const c = new AnnuaireClient({ api: api({ baseUrl: bare.baseUrl }), logger: createLogger('silent') });
      expect((await c.findByIdentifiers(wanted)).size).toBe(wanted.length);
      expect(bare.requests).toHaveLength(1);

      bare.faults.truncate(1, { keep: 10 });
      const found = await c.findByIdentifiers(wanted);
      expect([...found.keys()].sort()).toEqual([...wanted].sort());
      // The second lookup asked for the 15 (or so: split exercises) missing from the truncated answer.
      const [cut, again] = bare.requests.slice(1).map((r) => identifierValues(r).length);
      expect(cut).toBe(50);
      expect(again).toBeGreaterThan(0);
      expect(again).toBeLessThan(50);
      expect(c.stats.incomplete).toBe(1);
    } finally {
      await bare.close();
    }
  });

  it('refuses to follow a next link to another origin, so the key never leaves for it', async () => {
    const elsewhere = await startAnnuaireSimulator({
      professionals: professionals.slice(0, 20),
      apiKey: API_KEY,
    });
    const leaking = await startAnnuaireSimulator({
      professionals: professionals.slice(0, 20),
      apiKey: API_KEY,
      linkBase: elsewhere.baseUrl.replace('127.0.0.1', 'localhost'),
    });
    try {
      const c = new AnnuaireClient({
        api: api({ baseUrl: leaking.baseUrl, pageSize: 2 }),
        logger: createLogger('silent'),
      });
      const err = await c
        .findByIdentifiers(professionals.slice(0, 20).map((p) => p.idNatPs))
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AnnuaireServerError);
      expect((err as Error).message).toMatch(/next link leaves the API origin \(http:\/\/localhost:\d+\)/);
      expect(leaking.requests).toHaveLength(1);
      expect(elsewhere.requests).toEqual([]);
    } finally {
      await leaking.close();
      await elsewhere.close();
    }
  });

  it('retries 429 (honouring Retry-After), 502, 504 with an empty body and timeouts, then succeeds', async () => {
    const p = professionals[20] as Professional;
    const { sleeps, sleep } = recordingSleep();
    const c = client({ maxRetries: 4 }, { random: () => 1, sleep });
    simulator.faults.queue(429, { retryAfterSeconds: 3 });
    simulator.faults.queue(502);
    simulator.faults.queue(504);
    // Far past the client's timeout (2 s), which the other answers meet even on a loaded machine.
    simulator.faults.delay(30_000, { times: 1 });
    const requests = since();
    const found = await c.findByIdentifiers([p.idNatPs]);
    expect(found.get(p.idNatPs)?.familyName).toBe(p.familyName);
    expect(
      requests()
        .map((r) => r.status)
        .slice(0, 3),
    ).toEqual([429, 502, 504]);
    expect(sleeps).toEqual([3000, 20, 40, 80]);
    expect(c.stats).toMatchObject({
      requests: 5,
      retries: 4,
      rateLimited: 1,
      gatewayTimeouts: 1,
      otherFailures: 2,
    });
  });

  it('after a 429 without Retry-After, waits one quota window at least, and holds the other requests meanwhile', async () => {
    const wanted = professionals.filter((p) => p.active).slice(600, 608);
    const { sleeps, sleep } = recordingSleep(300);
    const c = client({ batchSize: 2 }, { random: () => 0, sleep });
    simulator.faults.queue(429, { retryAfterSeconds: null });
    const requests = since();
    const found = await c.findByIdentifiers(wanted.map((p) => p.idNatPs));
    expect(found.size).toBe(wanted.length);
    // One second (the quota's window), not the jittered backoff (0 here).
    expect(sleeps).toEqual([1000]);
    const sent = requests();
    expect(sent.map((r) => r.status)).toEqual([429, ...Array(8).fill(200)]);
    // The four workers share the quota: nothing left during the pause after the 429.
    const pausedAt = (sent[0] as RecordedRequest).at;
    expect((sent[1] as RecordedRequest).at - pausedAt).toBeGreaterThanOrEqual(290);
    expect(c.stats).toMatchObject({ rateLimited: 1, retries: 1 });
  });

  it('gives up after maxRetries with a typed unavailable error carrying status and diagnostics', async () => {
    simulator.faults.queue(503, { times: 10 });
    const requests = since();
    const c = client({ maxRetries: 2 });
    const err = await c.capabilities().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AnnuaireUnavailableError);
    expect(err).toMatchObject({
      kind: 'unavailable',
      reason: 'retries-exhausted',
      status: 503,
      diagnostics: 'Service unavailable',
    });
    expect(requests()).toHaveLength(3);
    expect(c.stats.retries).toBe(2);
  });

  it('opens the circuit breaker after consecutive failures, fails fast, then closes after a good trial', async () => {
    // The breaker's clock moves only here: how long the machine takes between calls does not matter.
    let clockMs = 0;
    const c = client(
      { maxRetries: 0, breakerFailureThreshold: 3, breakerResetSeconds: 0.2 },
      { breakerClock: () => clockMs },
    );
    simulator.faults.down('reset');
    for (let i = 0; i < 3; i++)
      await expect(c.capabilities()).rejects.toMatchObject({ reason: 'retries-exhausted', status: null });
    const requests = since();
    await expect(c.capabilities()).rejects.toMatchObject({ kind: 'unavailable', reason: 'breaker-open' });
    clockMs += 199;
    await expect(c.capabilities()).rejects.toMatchObject({ kind: 'unavailable', reason: 'breaker-open' });
    expect(requests()).toEqual([]);

    clockMs += 1;
    await expect(c.capabilities()).rejects.toMatchObject({ reason: 'retries-exhausted' });
    expect(requests()).toHaveLength(1);
    await expect(c.capabilities()).rejects.toMatchObject({ reason: 'breaker-open' });
    expect(requests()).toHaveLength(1);

    simulator.faults.up();
    clockMs += 200;
    expect((await c.capabilities()).fhirVersion).toBe('4.0.1');
    expect((await c.capabilities()).fhirVersion).toBe('4.0.1');
    expect(requests()).toHaveLength(3);
  });

  it('maps 401 to a typed error without retrying', async () => {
    const requests = since();
    const c = client({ apiKey: 'wrong-key-31f' });
    const err = await c.findByIdentifiers([professionals[0]?.idNatPs as string]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AnnuaireUnauthorizedError);
    expect(err).toMatchObject({ kind: 'unauthorized', status: 401 });
    expect((err as Error).message).not.toContain('wrong-key-31f');
    expect(requests()).toHaveLength(1);
    expect(c.stats.retries).toBe(0);
  });

  it('never writes the API key in logs or errors', async () => {
    const log = capture();
    const errors: unknown[] = [];
    const options = {
      logger: log.logger,
      sleep: () => new Promise<void>((resolve) => setTimeout(resolve, 5)),
    };
    const c = new AnnuaireClient({ api: api({ maxRetries: 1, breakerFailureThreshold: 2 }), ...options });
    await c.capabilities();
    simulator.faults.queue(429);
    simulator.faults.queue(502);
    await c.findByIdentifiers([professionals[1]?.idNatPs as string]).catch((e: unknown) => errors.push(e));
    simulator.faults.down();
    await c.capabilities().catch((e: unknown) => errors.push(e));
    simulator.faults.up();
    const wrong = new AnnuaireClient({ api: api({ apiKey: `${API_KEY}-old` }), ...options });
    await wrong.capabilities().catch((e: unknown) => errors.push(e));
    expect(errors.map((e) => [(e as Error).name, (e as AnnuaireUnavailableError).reason])).toEqual([
      ['AnnuaireUnavailableError', 'retries-exhausted'],
      ['AnnuaireUnavailableError', 'breaker-open'],
      ['AnnuaireUnauthorizedError', undefined],
    ]);
    const text = log.text();
    expect(text).toContain('annuaire request');
    expect(text).toContain('retrying');
    expect(text).toContain('circuit breaker opened');
    expect(text).not.toContain(API_KEY);
    for (const e of errors) {
      expect((e as Error).message).not.toContain(API_KEY);
      expect(JSON.stringify(e)).not.toContain(API_KEY);
    }
  });

  it('spaces requests so that no one-second window holds more than requestsPerSecond, under the quota', async () => {
    const rate = DEFAULTS.requestsPerSecond;
    expect(rate).toBeLessThan(17);
    const wanted = professionals.filter((p) => p.active).slice(700, 720);
    const requests = since();
    const c = client({ batchSize: 1 });
    await c.findByIdentifiers(wanted.map((p) => p.idNatPs));
    expect(requests().map((r) => r.status)).toEqual(Array(wanted.length).fill(200));
    const times = requests().map((r) => r.at);
    expect(times).toHaveLength(wanted.length);
    // The client spaces sends by (1000 + 25) / rate ms; arrivals carry a few ms of jitter around that.
    const interval = 1025 / rate;
    expect((times.at(-1) as number) - (times[0] as number)).toBeGreaterThanOrEqual(
      (times.length - 1) * interval - 20,
    );
    for (const [i, t] of times.entries()) {
      const inWindow = times.filter((u) => u >= t && u < t + 1000).length;
      expect(inWindow, `window starting at request ${i}`).toBeLessThanOrEqual(rate);
    }
    expect(c.stats.throttledMs).toBeGreaterThan(0);
  });

  it('two instances sharing one key over its quota recover from the 429s, with or without Retry-After', async () => {
    // The gateway's clock moves only when a client waits (by what it waits): every request arrives in the
    // same second until one waits, however slow the machine is. The clients' own throttle keeps real time.
    let gatewayMs = 0;
    // The throttling answer is undocumented: one simulator sends Retry-After, the other does not.
    const variants = await Promise.all(
      [null, 1].map((retryAfter) =>
        startAnnuaireSimulator({
          professionals,
          apiKey: API_KEY,
          now: () => START,
          quotaRetryAfterSeconds: retryAfter,
          gatewayClock: () => gatewayMs,
        }),
      ),
    );
    try {
      const wanted = professionals.filter((p) => p.active).slice(800, 820);
      const halves = [wanted.slice(0, 10), wanted.slice(10)];
      for (const shared of variants) {
        // Two clients at the default rate: 30 requests/s together against a quota of 17.
        const instances = halves.map(() => {
          const recorded = recordingSleep(5000);
          const sleep = (ms: number) => {
            gatewayMs += ms;
            return recorded.sleep(ms);
          };
          const c = new AnnuaireClient({
            api: api({ baseUrl: shared.baseUrl, batchSize: 1, maxRetries: 6 }),
            logger: createLogger('silent'),
            now: () => START,
            random: () => 0,
            sleep,
          });
          return { c, sleeps: recorded.sleeps };
        });
        const found = await Promise.all(
          instances.map(({ c }, i) =>
            c.findByIdentifiers((halves[i] as Professional[]).map((p) => p.idNatPs)),
          ),
        );
        for (const [i, f] of found.entries()) expect(f.size).toBe(halves[i]?.length);
        // No wait before the 18th request of the gateway's second: at least that one gets 429; each 429 is
        // sent again after a wait, and every request ends answered.
        const statuses = shared.requests.map((r) => r.status);
        const throttled = statuses.filter((s) => s === 429).length;
        expect(throttled).toBeGreaterThan(0);
        expect(statuses.filter((s) => s === 200)).toHaveLength(20);
        expect(statuses).toHaveLength(20 + throttled);
        expect(instances.reduce((n, { c }) => n + c.stats.rateLimited, 0)).toBe(throttled);
        for (const { sleeps } of instances) for (const ms of sleeps) expect(ms).toBeGreaterThanOrEqual(1000);
      }
    } finally {
      await Promise.all(variants.map((v) => v.close()));
    }
  });

  it('a name search the API finds too heavy answers 504 after its timeout: retried, then a typed error', async () => {
    const strict = await startAnnuaireSimulator({
      professionals,
      apiKey: API_KEY,
      gatewayTimeoutMs: GATEWAY_TIMEOUT_MS,
      heavySearch: (type, params) => type === 'Practitioner' && params.has('family') && params.has('given'),
    });
    try {
      const c = new AnnuaireClient({
        api: api({ baseUrl: strict.baseUrl, maxRetries: 1 }),
        logger: createLogger('silent'),
      });
      await expect(c.searchByName('Martin', 'Marie')).rejects.toMatchObject({
        kind: 'unavailable',
        status: 504,
      });
      expect(strict.requests.map((r) => r.status)).toEqual([504, 504]);
      expect(c.stats.gatewayTimeouts).toBe(2);
      expect((await c.searchByName('Martin')).length).toBeGreaterThan(0);
    } finally {
      await strict.close();
    }
  });

  it('searches by name, keeping only folded-equal names', async () => {
    const target = professionals.find((p) => p.active && p.familyName === 'Lefèvre') as Professional;
    const sameFamily = professionals.filter((p) => p.active && p.familyName === 'Lefèvre');
    const byFamily = await client().searchByName('LEFEVRE');
    expect(byFamily.map((p) => p.idNatPs)).toEqual(sameFamily.map((p) => p.idNatPs).sort());
    const homonyms = sameFamily.filter((p) => p.givenName === target.givenName);
    const byBoth = await client().searchByName('lefèvre', target.givenName.toUpperCase());
    expect(byBoth.map((p) => p.idNatPs)).toEqual(homonyms.map((p) => p.idNatPs).sort());
    expect(await client().searchByName('Lefe')).toEqual([]);
  });
});

describe('Annuaire Santé client: changes since a date', () => {
  let clock: Date;
  let professionals: Professional[];
  let simulator: AnnuaireSimulator;

  beforeAll(async () => {
    clock = START;
    professionals = [...generateProfessionals({ count: 1000, now: START })];
    simulator = await startAnnuaireSimulator({
      professionals,
      apiKey: API_KEY,
      now: () => clock,
      gatewayTimeoutMs: GATEWAY_TIMEOUT_MS,
    });
  });
  afterAll(async () => {
    await simulator.close();
  });
  beforeEach(() => {
    simulator.faults.clear();
  });

  const client = (options: Partial<AnnuaireClientOptions> = {}, pageSize = DEFAULTS.pageSize) =>
    new AnnuaireClient({
      api: {
        ...DEFAULTS,
        baseUrl: simulator.baseUrl,
        apiKey: API_KEY,
        timeoutMs: 2000,
        pageSize,
        maxRetries: 2,
        retryBaseDelayMs: 10,
      },
      logger: createLogger('silent'),
      now: () => clock,
      ...options,
    });
  const collect = async (iterator: AsyncIterable<string>) => {
    const out: string[] = [];
    for await (const id of iterator) out.push(id);
    return out;
  };

  it('yields professionals whose Practitioner or PractitionerRole changed, each once', async () => {
    const window = new Date(START.getTime() - 4 * DAY);
    const recent = professionals
      .filter((p) => p.lastUpdated.getTime() >= window.getTime())
      .map((p) => p.idNatPs);
    expect(recent.length).toBeGreaterThan(20);
    const before = await collect(client().changedSince(window));
    expect(before.length).toBe(new Set(before).size);
    expect([...before].sort()).toEqual([...recent].sort());

    const [leaving, renamed, ended] = professionals.filter(
      (p) => p.active && p.activities.length >= 2 && p.lastUpdated.getTime() < window.getTime(),
    ) as [Professional, Professional, Professional];
    const [newcomer] = [...generateProfessionals({ count: 1001, now: START })].slice(1000) as [Professional];
    clock = new Date(START.getTime() + 5 * DAY);
    const mutationTime = clock;
    simulator.deactivate(leaving.idNatPs);
    simulator.update(renamed.idNatPs, { familyName: 'Autre-Nom' });
    simulator.endActivity(ended.idNatPs, ended.activities[1]?.id as string);
    simulator.add({ ...newcomer, active: true });
    clock = new Date(START.getTime() + 6 * DAY);

    const changes = await collect(client().changedSince(mutationTime));
    expect([...changes].sort()).toEqual([leaving, renamed, ended, newcomer].map((p) => p.idNatPs).sort());
    const roleQuery = simulator.requests.filter((r) => r.path === '/fhir/v2/PractitionerRole').at(-1);
    expect(new URLSearchParams(roleQuery?.query).getAll('_include')).toEqual([
      'PractitionerRole:practitioner',
    ]);

    const after = await collect(client().changedSince(window));
    expect([...after].sort()).toEqual([...new Set([...recent, ...changes])].sort());
  });

  it('restarts on a stale page without yielding anything twice', async () => {
    const window = new Date(clock.getTime() - 25 * DAY);
    const clean = await collect(client().changedSince(window));
    expect(clean.length).toBeGreaterThan(100);
    simulator.faults.stalePages(2);
    const c = client({}, 100);
    const restarted = await collect(c.changedSince(window));
    expect(c.stats.restarts).toBe(2);
    expect(restarted.length).toBe(new Set(restarted).size);
    expect([...restarted].sort()).toEqual([...clean].sort());
  });

  it('refuses a start beyond the 30-day reach of deltas before sending anything', async () => {
    const mark = simulator.requests.length;
    const c = client();
    await expect(collect(c.changedSince(new Date(clock.getTime() - 31 * DAY)))).rejects.toBeInstanceOf(
      DeltaTooOldError,
    );
    expect(simulator.requests.length).toBe(mark);
    expect(c.stats.requests).toBe(0);
    await expect(collect(c.changedSince(new Date(clock.getTime() - 29 * DAY)))).resolves.toBeInstanceOf(
      Array,
    );
  });
});
