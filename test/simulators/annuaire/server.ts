import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Bundle, BundleEntry, PractitionerRole } from '../../../src/rpps/fhir.ts';
import { referencedId } from '../../../src/rpps/fhir.ts';
import {
  type AnyResource,
  type IdentifierStyle,
  type ProfessionalPatch,
  SimulatedDirectory,
} from './directory.ts';
import { type FaultControls, Faults } from './faults.ts';
import { generateProfessionals, type Professional } from './fixtures.ts';
import {
  INCLUDES,
  MAX_COUNT,
  type ParsedSearch,
  parseSearch,
  SEARCH_PARAMS,
  type SearchableType,
  SearchError,
  subset,
} from './search.ts';

/**
 * A local stand-in for the Annuaire Santé FHIR API (v2): a real HTTP server with its search
 * parameters, opaque `_page?id=` paging in technical id order, tombstones, the 30-day delta horizon,
 * `OperationOutcome` errors, the `ESANTE-API-KEY` check, the gateway's limits, and faults injected on
 * demand. Its defaults are the real service's, from ../shared/reference/annuaire-sante.md (the
 * "reference" below) and the ANS documentation it cites:
 * - the quota: 17 requests per second per application (API key), then 429 (reference, "Limits";
 *   get-api-key.md at 9f3d7d0). The throttling answer is undocumented: 429 without Retry-After by
 *   default, with it as a setting (`quotaRetryAfterSeconds`);
 * - searches too heavy for the back end run `gatewayTimeoutMs` (30 s: reference, "30 s timeout";
 *   api-basics.md) and answer 504 with an empty body: more than 50 identifiers combined with
 *   `_include`/`_revinclude` (issue #372) and multi-criteria text searches (issue #331);
 * - `total` present by default, absent with `_total=none` and on text (`:contains`) searches
 *   (uc-call-type.md "total": 9903, api-basics.md `total: 0`, modifying-search-results.md);
 * - `_count` 50 by default, up to 10000 (api-basics.md, modifying-search-results.md);
 * - resource shapes (ids `003-…`, `language`, `extension`, numeric `versionId`): see directory.ts.
 */

export interface AnnuaireSimulatorOptions {
  /** Default: generateProfessionals({ count: 3000, now: now() }). */
  professionals?: Iterable<Professional>;
  /** The API key, or one per application: each has its own quota. */
  apiKey: string | readonly string[];
  /** Default 0: a free port. */
  port?: number;
  host?: string;
  /** Simulated clock: meta.lastUpdated of mutations and the 30-day horizon. */
  now?: () => Date;
  /** Serve the older identifier convention (`http://rpps.fr`, interopsante type codes). */
  legacyIdentifiers?: boolean | ((professional: Professional) => boolean);
  /** Serve only the RPPS identifier (no idNatPS identifier). */
  rppsOnlyIdentifiers?: boolean | ((professional: Professional) => boolean);
  /** Professionals served as two Practitioners sharing the RPPS (default: a few with several activities). */
  splitExercise?: (professional: Professional) => boolean;
  /** Lifetime of a search's page links (default 10 minutes, real time). */
  pageTtlMs?: number;
  /**
   * The gateway's quota per API key: beyond this many requests in any one second, 429. Default 17
   * ("17 requests/s per application"); `null` turns it off, for tests about something else that send
   * requests without a client's throttle.
   */
  rateLimitPerSecond?: number | null;
  /**
   * Milliseconds of the gateway's clock: the requests' arrival times (`at`), which the quota counts.
   * Default: real time (ms since the epoch). A test clock that moves only when the clients wait makes
   * the quota's answers independent of the machine's speed.
   */
  gatewayClock?: () => number;
  /**
   * `Retry-After` (seconds) sent with the quota's 429; `null` (default): none. Undocumented ("throttling
   * status undocumented (expect 429, with or without Retry-After)"): tests run both ways.
   */
  quotaRetryAfterSeconds?: number | null;
  /** How long a search too heavy for the back end runs before the gateway answers 504 (default 30 000). */
  gatewayTimeoutMs?: number;
  /**
   * More `identifier`/`_id` values than this in one search with `_include`/`_revinclude` is too heavy:
   * 504 after `gatewayTimeoutMs` (default 50, "problems reported past about 50 identifiers", #372).
   */
  maxIdentifiersWithInclude?: number;
  /**
   * Other searches too heavy for the back end: 504 after `gatewayTimeoutMs`. Default: two or more
   * `:contains` criteria (issue #331: `name:contains=A&name:contains=B` runs about 30 s, then 504).
   */
  heavySearch?: (type: SearchableType, params: URLSearchParams) => boolean;
  /**
   * `documented` (default): `total` in every searchset except with `_total=none` and on text searches
   * (a `:contains` criterion) unless `_total` asks for it; `never`: no `total` at all ("`total` may
   * be absent").
   */
  total?: 'documented' | 'never';
  /** Base URL written in links and fullUrls, as a gateway leaking another host would (default: its own). */
  linkBase?: string;
}

export interface RecordedRequest {
  method: string;
  path: string;
  /** The query string; for POST `_search`, the form body (after the URL's own query, if any). */
  query: string;
  /** Status sent; 0 when the connection was destroyed, 499 when the client had gone before the answer. */
  status: number;
  /** Arrival time, ms since the epoch with sub-millisecond precision (or on `gatewayClock`). */
  at: number;
}

export interface AnnuaireSimulator {
  /** `http://host:port/fhir/v2` */
  baseUrl: string;
  requests: RecordedRequest[];
  faults: FaultControls;
  /** The professional's registration ends: Practitioners become tombstones, their roles inactive. */
  deactivate(idNatPs: string): void;
  update(idNatPs: string, patch: ProfessionalPatch): void;
  /** One activity ends: its PractitionerRole becomes inactive. */
  endActivity(idNatPs: string, activityId: string): void;
  /** A professional registered now. */
  add(professional: Professional): void;
  /** Technical ids of the professional's Practitioners, in paging order. */
  practitionerIdsOf(idNatPs: string): string[];
  close(): Promise<void>;
}

const PREFIX = '/fhir/v2';
const FHIR_JSON = 'application/fhir+json;charset=utf-8';
const STALE_PAGE = 'Maybe it is too old or corrupted';

interface StoredSearch {
  parsed: ParsedSearch;
  ids: string[];
  createdAt: number;
}

class HttpAnswer {
  readonly status: number;
  readonly body: unknown;
  readonly headers: Record<string, string>;

  constructor(status: number, body: unknown, headers: Record<string, string> = {}) {
    this.status = status;
    this.body = body;
    this.headers = headers;
  }
}

function outcome(status: number, code: string, diagnostics: string): HttpAnswer {
  return new HttpAnswer(status, {
    resourceType: 'OperationOutcome',
    issue: [{ severity: 'error', code, diagnostics }],
  });
}

function styleChooser(
  legacy: AnnuaireSimulatorOptions['legacyIdentifiers'],
  rppsOnly: AnnuaireSimulatorOptions['rppsOnlyIdentifiers'],
): (p: Professional) => IdentifierStyle {
  const applies = (option: boolean | ((p: Professional) => boolean) | undefined, p: Professional) =>
    typeof option === 'function' ? option(p) : option === true;
  return (p) => (applies(rppsOnly, p) ? 'rpps-only' : applies(legacy, p) ? 'legacy' : 'current');
}

/** About one professional in 30 among those with several activities. */
function defaultSplit(professional: Professional): boolean {
  return professional.activities.length > 1 && Number(professional.rpps.slice(-4, -1)) % 10 === 0;
}

/** Issue #331: two or more `:contains` criteria in one search. */
function defaultHeavySearch(_type: SearchableType, params: URLSearchParams): boolean {
  return [...params.keys()].filter((key) => key.endsWith(':contains')).length >= 2;
}

/** The gateway's answer beyond the quota (a Gravitee-style body; the status and headers are undocumented). */
function throttled(limit: number, retryAfterSeconds: number | null): HttpAnswer {
  return new HttpAnswer(
    429,
    {
      message: `Rate limit exceeded ! You reach the limit of ${limit} requests per 1 seconds`,
      http_status_code: 429,
    },
    retryAfterSeconds === null ? {} : { 'retry-after': String(retryAfterSeconds) },
  );
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function capabilityStatement(baseUrl: string, now: Date) {
  const resource = (type: SearchableType) => ({
    type,
    interaction: [{ code: 'read' }, { code: 'search-type' }],
    searchParam: SEARCH_PARAMS[type].map((p) => ({
      name: p.name,
      type: p.type,
      documentation: p.documentation,
    })),
    ...(INCLUDES[type].param === '_include'
      ? { searchInclude: INCLUDES[type].values }
      : { searchRevInclude: INCLUDES[type].values }),
  });
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: now.toISOString(),
    publisher: 'Passerelle test suite',
    kind: 'instance',
    software: { name: 'Annuaire Santé simulator', version: '2.0' },
    implementation: { description: 'Simulated Annuaire Santé FHIR API', url: baseUrl },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json'],
    rest: [
      {
        mode: 'server',
        resource: [resource('Practitioner'), resource('PractitionerRole')],
        searchParam: [
          {
            name: '_count',
            type: 'number',
            documentation: `Default 50, at most ${MAX_COUNT} (200 recommended)`,
          },
          { name: '_total', type: 'token', documentation: 'none | estimate | accurate' },
          { name: '_elements', type: 'string', documentation: 'Top-level elements to return' },
        ],
      },
    ],
  };
}

export async function startAnnuaireSimulator(options: AnnuaireSimulatorOptions): Promise<AnnuaireSimulator> {
  const now = options.now ?? (() => new Date());
  const directory = new SimulatedDirectory(
    options.professionals ?? generateProfessionals({ count: 3000, now: now() }),
    {
      now,
      identifierStyle: styleChooser(options.legacyIdentifiers, options.rppsOnlyIdentifiers),
      splitExercise: options.splitExercise ?? defaultSplit,
    },
  );
  const faults = new Faults();
  const requests: RecordedRequest[] = [];
  const pageTtlMs = options.pageTtlMs ?? 600_000;
  const pages = new Map<string, { search: StoredSearch; offset: number }>();
  const apiKeys = new Set(typeof options.apiKey === 'string' ? [options.apiKey] : options.apiKey);
  const rateLimit = options.rateLimitPerSecond === undefined ? 17 : options.rateLimitPerSecond;
  const quotaRetryAfter = options.quotaRetryAfterSeconds ?? null;
  const gatewayClock = options.gatewayClock ?? (() => performance.timeOrigin + performance.now());
  const gatewayTimeoutMs = options.gatewayTimeoutMs ?? 30_000;
  const maxIdentifiersWithInclude = options.maxIdentifiersWithInclude ?? 50;
  const heavySearch = options.heavySearch ?? defaultHeavySearch;
  const totalMode = options.total ?? 'documented';
  /** Arrival times of the last second's requests, per API key. */
  const arrivals = new Map<string, number[]>();
  let baseUrl = '';
  let linkBase = '';

  const pageToken = (search: StoredSearch, offset: number): string => {
    const token = randomBytes(18).toString('base64url');
    pages.set(token, { search, offset });
    return token;
  };

  const includesOf = (search: ParsedSearch, matches: AnyResource[]): AnyResource[] => {
    if (search.type === 'Practitioner')
      return search.includes.length > 0 ? directory.rolesOf(new Set(matches.map((m) => m.id))) : [];
    const included: AnyResource[] = [];
    const seen = new Set<string>();
    for (const include of search.includes) {
      const target = include === 'PractitionerRole:practitioner' ? 'Practitioner' : 'Organization';
      for (const match of matches) {
        const role = match as PractitionerRole;
        const id = referencedId(target === 'Practitioner' ? role.practitioner : role.organization, target);
        const resource = id === null || seen.has(`${target}/${id}`) ? null : directory.read(target, id);
        if (!resource) continue;
        seen.add(`${target}/${id}`);
        included.push(resource);
      }
    }
    return included;
  };

  /** One page; `keep` (a truncation fault) cuts its matches and drops its next link. */
  const bundlePage = (search: StoredSearch, offset: number, selfUrl: string, keep?: number): Bundle => {
    const { parsed } = search;
    const matches = search.ids
      .slice(offset, offset + (keep ?? parsed.count))
      .map((id) => directory.read(parsed.type, id))
      .filter((r): r is AnyResource => r !== null);
    const entry = (resource: AnyResource, mode: 'match' | 'include'): BundleEntry => ({
      fullUrl: `${linkBase}/${resource.resourceType}/${resource.id}`,
      resource: mode === 'match' && parsed.elements ? subset(resource, parsed.elements) : resource,
      search: { mode },
    });
    const link = [{ relation: 'self', url: selfUrl }];
    if (keep === undefined && offset + parsed.count < search.ids.length)
      link.push({
        relation: 'next',
        url: `${linkBase}/_page?id=${pageToken(search, offset + parsed.count)}`,
      });
    const withTotal =
      totalMode === 'documented' &&
      (parsed.total === 'accurate' ||
        parsed.total === 'estimate' ||
        (parsed.total === null && parsed.containsCount === 0));
    return {
      resourceType: 'Bundle',
      id: randomUUID(),
      meta: { lastUpdated: now().toISOString() },
      type: 'searchset',
      ...(withTotal ? { total: search.ids.length } : {}),
      link,
      entry: [
        ...matches.map((m) => entry(m, 'match')),
        ...includesOf(parsed, matches).map((r) => entry(r, 'include')),
      ],
    };
  };

  const search = async (type: SearchableType, params: URLSearchParams): Promise<HttpAnswer> => {
    let parsed: ParsedSearch;
    try {
      parsed = parseSearch(type, params.entries());
    } catch (err) {
      if (err instanceof SearchError) return outcome(400, 'invalid', err.message);
      throw err;
    }
    const tooManyIdentifiers =
      parsed.includes.length > 0 && parsed.identifierCount > maxIdentifiersWithInclude;
    if (tooManyIdentifiers || heavySearch(type, params)) {
      // The back end works until the gateway gives up: 504 with an empty body.
      await sleep(gatewayTimeoutMs);
      return new HttpAnswer(504, null);
    }
    const horizon = directory.horizon().getTime();
    const candidates = type === 'Practitioner' ? directory.practitioners() : directory.roles();
    const ids = candidates
      .filter((r) => parsed.matches(r))
      .filter((r) => !parsed.isDelta || Date.parse(r.meta?.lastUpdated ?? '') >= horizon)
      .map((r) => r.id);
    const selfUrl = `${linkBase}/${type}${params.size > 0 ? `?${params}` : ''}`;
    const stored: StoredSearch = { parsed, ids, createdAt: performance.now() };
    const keep = faults.takeTruncation(Math.min(parsed.count, ids.length));
    return new HttpAnswer(200, bundlePage(stored, 0, selfUrl, keep));
  };

  const page = (token: string | null): HttpAnswer => {
    for (const [key, value] of pages)
      if (performance.now() - value.search.createdAt > pageTtlMs) pages.delete(key);
    const found = token === null ? undefined : pages.get(token);
    if (!found || faults.takeStalePage())
      return outcome(500, 'exception', `Unable to read the page ${token ?? ''}. ${STALE_PAGE}`);
    return new HttpAnswer(200, bundlePage(found.search, found.offset, `${linkBase}/_page?id=${token}`));
  };

  const route = async (req: IncomingMessage, url: URL, body: string): Promise<HttpAnswer> => {
    const path = url.pathname.slice(PREFIX.length);
    const method = req.method ?? 'GET';
    if (!url.pathname.startsWith(`${PREFIX}/`))
      return outcome(404, 'not-found', `Unknown path ${url.pathname}`);
    if (path === '/metadata')
      return method === 'GET'
        ? new HttpAnswer(200, capabilityStatement(baseUrl, now()))
        : outcome(405, 'not-supported', `${method} not allowed on metadata`);
    if (path === '/_page')
      return method === 'GET' ? page(url.searchParams.get('id')) : outcome(405, 'not-supported', 'GET only');
    const m = /^\/(Practitioner|PractitionerRole|Organization)(?:\/([^/]+))?$/.exec(path);
    if (!m) return outcome(404, 'not-found', `Unknown path ${url.pathname}`);
    const type = m[1] as 'Practitioner' | 'PractitionerRole' | 'Organization';
    const id = m[2];
    if (id === '_search' && type !== 'Organization') {
      if (method !== 'POST') return outcome(405, 'not-supported', '_search takes POST');
      if (!(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded'))
        return outcome(415, 'not-supported', 'POST _search takes application/x-www-form-urlencoded');
      const params = new URLSearchParams(url.searchParams);
      for (const [key, value] of new URLSearchParams(body)) params.append(key, value);
      return search(type, params);
    }
    if (method !== 'GET') return outcome(405, 'not-supported', `${method} not allowed on ${type}`);
    if (id === undefined) {
      if (type === 'Organization') return outcome(404, 'not-found', 'Organization search is not simulated');
      return search(type, url.searchParams);
    }
    const resource = directory.read(type, id);
    return resource
      ? new HttpAnswer(200, resource)
      : outcome(404, 'not-found', `Resource ${type}/${id} is not known`);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const at = gatewayClock();
    const url = new URL(req.url ?? '/', 'http://simulator');
    const body = req.method === 'POST' ? await readBody(req) : '';
    const record: RecordedRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: [url.search.slice(1), body].filter(Boolean).join('&'),
      status: 0,
      at,
    };
    requests.push(record);

    if (faults.downMode === 'reset') {
      req.socket.destroy();
      return;
    }
    const send = (answer: HttpAnswer) => {
      if (res.destroyed || req.socket.destroyed) {
        record.status = 499;
        return;
      }
      record.status = answer.status;
      const text = answer.body === null ? '' : JSON.stringify(answer.body);
      const type = (answer.body as { resourceType?: string } | null)?.resourceType
        ? FHIR_JSON
        : 'application/json';
      res.writeHead(answer.status, { ...(text ? { 'content-type': type } : {}), ...answer.headers });
      res.end(text);
    };

    // The gateway: the key first, then the application's quota, then the back end (and its faults).
    const key = req.headers['esante-api-key'];
    if (typeof key !== 'string' || !apiKeys.has(key)) {
      send(outcome(401, 'login', 'Missing or invalid ESANTE-API-KEY'));
      return;
    }
    if (rateLimit !== null) {
      const recent = arrivals.get(key) ?? [];
      recent.push(at);
      while ((recent[0] ?? at) <= at - 1000) recent.shift();
      arrivals.set(key, recent);
      if (recent.length > rateLimit) {
        send(throttled(rateLimit, quotaRetryAfter));
        return;
      }
    }
    if (faults.downMode === 'unavailable') {
      send(outcome(503, 'transient', 'Service unavailable'));
      return;
    }
    const fault = faults.takeStatus(url.pathname, record.query);
    if (fault) {
      if (fault.status === 429) send(throttled(rateLimit ?? 17, fault.retryAfterSeconds));
      else if (fault.status === 503) send(outcome(503, 'transient', 'Service unavailable'));
      else send(new HttpAnswer(fault.status, null));
      return;
    }
    const delay = faults.takeDelay(url.pathname);
    if (delay > 0) await sleep(delay);
    try {
      send(await route(req, url, body));
    } catch (err) {
      send(outcome(500, 'exception', `Simulator failure: ${(err as Error).message}`));
    }
  };

  const server = createServer((req, res) => {
    void handle(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  baseUrl = `http://${host}:${address.port}${PREFIX}`;
  linkBase = options.linkBase ?? baseUrl;

  return {
    baseUrl,
    requests,
    faults,
    deactivate: (idNatPs) => directory.deactivate(idNatPs),
    update: (idNatPs, patch) => directory.update(idNatPs, patch),
    endActivity: (idNatPs, activityId) => directory.endActivity(idNatPs, activityId),
    add: (professional) => directory.add(professional),
    practitionerIdsOf: (idNatPs) => directory.practitionerIdsOf(idNatPs),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
