import type { Identifier, PractitionerRole } from '../../../src/rpps/fhir.ts';
import { foldName } from '../../../src/rpps/names.ts';
import type { AnyResource } from './directory.ts';

/**
 * Search parameters of the simulated Annuaire Santé: their declaration (for the CapabilityStatement and
 * validation) and their evaluation. Unknown parameters and chained ones are refused, as the real server
 * refuses what it does not support (chains also break its paging).
 */

export type SearchableType = 'Practitioner' | 'PractitionerRole';
type ParamType = 'token' | 'string' | 'date' | 'reference';

export interface ParamSpec {
  name: string;
  type: ParamType;
  documentation: string;
}

const COMMON: ParamSpec[] = [
  { name: '_id', type: 'token', documentation: 'Technical id (comma = OR)' },
  { name: '_lastUpdated', type: 'date', documentation: 'meta.lastUpdated, prefixes eq ne gt lt ge le' },
  { name: 'active', type: 'token', documentation: 'true | false' },
  { name: 'identifier', type: 'token', documentation: '[system|]value, comma = OR' },
];

export const SEARCH_PARAMS: Record<SearchableType, ParamSpec[]> = {
  Practitioner: [
    ...COMMON,
    { name: 'family', type: 'string', documentation: 'Exercise family name' },
    { name: 'given', type: 'string', documentation: 'Exercise given name' },
    { name: 'name', type: 'string', documentation: 'Any part of the exercise name' },
    { name: 'identifier-type', type: 'token', documentation: 'Identifier type code (IDNPS, RPPS)' },
  ],
  PractitionerRole: [
    ...COMMON,
    { name: 'practitioner', type: 'reference', documentation: 'Practitioner/[id]' },
    { name: 'organization', type: 'reference', documentation: 'Organization/[id]' },
    { name: 'role', type: 'token', documentation: 'Code of the role (fonction, genre, mode)' },
  ],
};

export const INCLUDES: Record<SearchableType, { param: '_include' | '_revinclude'; values: string[] }> = {
  Practitioner: { param: '_revinclude', values: ['PractitionerRole:practitioner'] },
  PractitionerRole: {
    param: '_include',
    values: ['PractitionerRole:practitioner', 'PractitionerRole:organization'],
  },
};

const RESULT_PARAMS = ['_count', '_total', '_elements'];
/** 50 by default (api-basics.md); `_count=10000` is a published example (modifying-search-results.md). */
const DEFAULT_COUNT = 50;
export const MAX_COUNT = 10_000;

export class SearchError extends Error {}

export interface ParsedSearch {
  type: SearchableType;
  matches: (resource: AnyResource) => boolean;
  count: number;
  total: 'none' | 'estimate' | 'accurate' | null;
  elements: string[] | null;
  includes: string[];
  /** `_lastUpdated` searches are deltas: limited to the 30-day horizon. */
  isDelta: boolean;
  /** Values of `identifier` and `_id` (comma-separated values each count). */
  identifierCount: number;
  /** Criteria with the `:contains` modifier (text searches). */
  containsCount: number;
}

/** The [start, end) instant range a FHIR date or dateTime designates, by its precision. */
function dateRange(value: string): [number, number] {
  const m =
    /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3})\d*)?)?(Z|[+-]\d{2}:\d{2}))?)?)?$/.exec(
      value,
    );
  if (!m) throw new SearchError(`Invalid date/time: ${value}`);
  const [, year, month, day, hour, minute, second, fraction, zone] = m;
  if (hour === undefined) {
    const start = Date.UTC(Number(year), Number(month ?? 1) - 1, Number(day ?? 1));
    const end =
      day !== undefined
        ? Date.UTC(Number(year), Number(month) - 1, Number(day) + 1)
        : month !== undefined
          ? Date.UTC(Number(year), Number(month), 1)
          : Date.UTC(Number(year) + 1, 0, 1);
    return [start, end];
  }
  const start = Date.parse(
    `${year}-${month}-${day}T${hour}:${minute}:${second ?? '00'}.${(fraction ?? '0').padEnd(3, '0')}${zone}`,
  );
  if (Number.isNaN(start)) throw new SearchError(`Invalid date/time: ${value}`);
  const width = fraction !== undefined ? 1 : second !== undefined ? 1000 : 60_000;
  return [start, start + width];
}

function datePredicate(raw: string): (t: number) => boolean {
  const m = /^(eq|ne|gt|lt|ge|le)?(.+)$/.exec(raw);
  const prefix = m?.[1] ?? 'eq';
  const [start, end] = dateRange(m?.[2] ?? '');
  switch (prefix) {
    case 'ne':
      return (t) => t < start || t >= end;
    case 'gt':
      return (t) => t >= end;
    case 'lt':
      return (t) => t < start;
    case 'ge':
      return (t) => t >= start;
    case 'le':
      return (t) => t < end;
    default:
      return (t) => t >= start && t < end;
  }
}

function stringPredicate(modifier: string | null, raw: string): (field: string) => boolean {
  if (modifier === 'exact') return (field) => field === raw;
  const query = foldName(raw);
  if (modifier === 'contains') return (field) => foldName(field).includes(query);
  return (field) => foldName(field).startsWith(query);
}

/** A token parameter's comma-separated values (`code`, `system|code`, `system|`, `|code`) as one test. */
function tokenTest(
  values: readonly string[],
): (system: string | undefined, code: string | undefined) => boolean {
  const bare = new Set<string>();
  const qualified: { system: string; code: string }[] = [];
  for (const value of values) {
    const bar = value.indexOf('|');
    if (bar < 0) bare.add(value);
    else qualified.push({ system: value.slice(0, bar), code: value.slice(bar + 1) });
  }
  return (system, code) =>
    (code !== undefined && bare.has(code)) ||
    qualified.some((q) => (q.system === '' || system === q.system) && (q.code === '' || code === q.code));
}

function identifiersOf(resource: AnyResource): Identifier[] {
  return resource.identifier ?? [];
}

function nameParts(resource: AnyResource, part: 'family' | 'given' | 'name'): string[] {
  if (resource.resourceType !== 'Practitioner') return [];
  return (resource.name ?? []).flatMap((n) => {
    const family = n.family ? [n.family] : [];
    const given = n.given ?? [];
    if (part === 'family') return family;
    if (part === 'given') return given;
    return [...family, ...given, ...(n.prefix ?? [])];
  });
}

function referenceMatches(raw: string, type: string, reference: string | undefined): boolean {
  const wanted = raw.includes('/') ? raw : `${type}/${raw}`;
  return reference === wanted;
}

/** One parameter occurrence as a predicate over a served resource (comma-separated values are ORed). */
function criterion(
  type: SearchableType,
  spec: ParamSpec,
  modifier: string | null,
  value: string,
): (resource: AnyResource) => boolean {
  const values = value.split(',');
  if (values.some((v) => v === '')) throw new SearchError(`Empty value in ${spec.name}=${value}`);
  switch (spec.name) {
    case '_id':
      return (r) => values.includes(r.id);
    case '_lastUpdated': {
      const tests = values.map(datePredicate);
      return (r) => {
        const t = Date.parse(r.meta?.lastUpdated ?? '');
        return tests.some((test) => test(t));
      };
    }
    case 'active':
      if (values.some((v) => v !== 'true' && v !== 'false'))
        throw new SearchError(`active must be true or false: ${value}`);
      return (r) => values.includes(String(r.active !== false));
    case 'identifier': {
      const test = tokenTest(values);
      return (r) => identifiersOf(r).some((i) => test(i.system, i.value));
    }
    case 'identifier-type': {
      const test = tokenTest(values);
      return (r) => identifiersOf(r).some((i) => (i.type?.coding ?? []).some((c) => test(c.system, c.code)));
    }
    case 'family':
    case 'given':
    case 'name': {
      const part = spec.name;
      const tests = values.map((v) => stringPredicate(modifier, v));
      return (r) => nameParts(r, part).some((field) => tests.some((test) => test(field)));
    }
    case 'practitioner':
      return (r) =>
        values.some((v) =>
          referenceMatches(v, 'Practitioner', (r as PractitionerRole).practitioner?.reference),
        );
    case 'organization':
      return (r) =>
        values.some((v) =>
          referenceMatches(v, 'Organization', (r as PractitionerRole).organization?.reference),
        );
    case 'role': {
      const test = tokenTest(values);
      return (r) =>
        ((r as PractitionerRole).code ?? []).some((concept) =>
          (concept.coding ?? []).some((c) => test(c.system, c.code)),
        );
    }
    default:
      throw new Error(`unhandled search parameter ${spec.name} on ${type}`);
  }
}

/** Validates and compiles the parameters of one search; throws SearchError for what the server refuses. */
export function parseSearch(type: SearchableType, params: Iterable<[string, string]>): ParsedSearch {
  const predicates: ((resource: AnyResource) => boolean)[] = [];
  const includes: string[] = [];
  let count = DEFAULT_COUNT;
  let total: ParsedSearch['total'] = null;
  let elements: string[] | null = null;
  let isDelta = false;
  let identifierCount = 0;
  let containsCount = 0;
  const specs = SEARCH_PARAMS[type];
  const include = INCLUDES[type];
  for (const [key, value] of params) {
    if (key.includes('.'))
      throw new SearchError(`Chained parameters are not supported: ${key} (they break paging)`);
    const [name = '', modifier = null, ...rest] = key.split(':');
    if (rest.length > 0) throw new SearchError(`Invalid parameter name: ${key}`);
    if (name === include.param && modifier === null) {
      if (!include.values.includes(value))
        throw new SearchError(`Unsupported ${name} value ${value}; supported: ${include.values.join(', ')}`);
      includes.push(value);
      continue;
    }
    if (RESULT_PARAMS.includes(name) && modifier === null) {
      if (name === '_count') {
        if (!/^\d+$/.test(value) || Number(value) < 1) throw new SearchError(`Invalid _count: ${value}`);
        count = Math.min(Number(value), MAX_COUNT);
      } else if (name === '_total') {
        if (value !== 'none' && value !== 'estimate' && value !== 'accurate')
          throw new SearchError(`Invalid _total: ${value}`);
        total = value;
      } else {
        elements = value.split(',').filter(Boolean);
      }
      continue;
    }
    const spec = specs.find((s) => s.name === name);
    if (!spec) {
      const valid = [...specs.map((s) => s.name), include.param, ...RESULT_PARAMS].sort();
      throw new SearchError(
        `Unknown search parameter "${name}" for resource type "${type}". Valid search parameters for this search are: [${valid.join(', ')}]`,
      );
    }
    if (modifier !== null && !(spec.type === 'string' && (modifier === 'exact' || modifier === 'contains')))
      throw new SearchError(`Unsupported modifier :${modifier} on ${name}`);
    if (name === '_lastUpdated') isDelta = true;
    if (name === 'identifier' || name === '_id') identifierCount += value.split(',').length;
    if (modifier === 'contains') containsCount++;
    predicates.push(criterion(type, spec, modifier, value));
  }
  return {
    type,
    matches: (resource) => predicates.every((p) => p(resource)),
    count,
    total,
    elements,
    includes,
    isDelta,
    identifierCount,
    containsCount,
  };
}

/** `_elements`: the listed top-level elements only (plus the mandatory ones), tagged SUBSETTED. */
export function subset(resource: AnyResource, elements: readonly string[]): AnyResource {
  const kept: Record<string, unknown> = {
    resourceType: resource.resourceType,
    id: resource.id,
    meta: {
      ...resource.meta,
      tag: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue', code: 'SUBSETTED' }],
    },
  };
  for (const element of elements) {
    const value = (resource as unknown as Record<string, unknown>)[element];
    if (value !== undefined && !(element in kept)) kept[element] = value;
  }
  return kept as unknown as AnyResource;
}
