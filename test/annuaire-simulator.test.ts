import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Bundle, OperationOutcome, Practitioner, PractitionerRole } from '../src/rpps/fhir.ts';
import { fixtureRpps, generateProfessionals, type Professional } from './simulators/annuaire/fixtures.ts';
import { type AnnuaireSimulator, startAnnuaireSimulator } from './simulators/annuaire/server.ts';

const API_KEY = 'simulator-test-key-5f1c';
const DAY = 86_400_000;
const START = new Date('2026-11-01T00:00:00Z');

interface Answer<T = unknown> {
  status: number;
  contentType: string | null;
  text: string;
  body: T;
}

async function call<T = Bundle>(
  url: string,
  init: RequestInit & { key?: string | null } = {},
): Promise<Answer<T>> {
  const headers = new Headers(init.headers);
  if (init.key !== null) headers.set('ESANTE-API-KEY', init.key ?? API_KEY);
  const response = await fetch(url, { ...init, headers });
  const text = await response.text();
  return {
    status: response.status,
    contentType: response.headers.get('content-type'),
    text,
    body: (text ? JSON.parse(text) : null) as T,
  };
}

function resources<T>(bundle: Bundle, type: string, mode: 'match' | 'include' = 'match'): T[] {
  return (bundle.entry ?? [])
    .filter((e) => e.search?.mode === mode && e.resource?.resourceType === type)
    .map((e) => e.resource as T);
}

function nextLink(bundle: Bundle): string | undefined {
  return bundle.link?.find((l) => l.relation === 'next')?.url;
}

function diagnostics(answer: Answer<unknown>): string {
  const outcome = answer.body as OperationOutcome;
  expect(outcome.resourceType).toBe('OperationOutcome');
  return outcome.issue.map((i) => i.diagnostics).join(' ');
}

describe('Annuaire Santé simulator', () => {
  let clock: Date;
  let professionals: Professional[];
  let simulator: AnnuaireSimulator;
  let base: string;
  const idNatsOf = (bundle: Bundle) =>
    resources<Practitioner>(bundle, 'Practitioner').map(
      (p) => p.identifier?.find((i) => i.system === 'urn:oid:1.2.250.1.71.4.2.1')?.value,
    );

  beforeAll(async () => {
    clock = START;
    professionals = [...generateProfessionals({ count: 400, now: START })];
    simulator = await startAnnuaireSimulator({
      professionals,
      apiKey: API_KEY,
      now: () => clock,
      legacyIdentifiers: (p) => p.rpps === fixtureRpps(7),
      // These tests are about search semantics and send their requests back to back, without the
      // client's throttle: the quota (on by default) has its own tests at the end of this file.
      rateLimitPerSecond: null,
      gatewayTimeoutMs: 50,
    });
    base = simulator.baseUrl;
  });
  afterAll(async () => {
    await simulator.close();
  });
  beforeEach(() => {
    simulator.faults.clear();
  });

  it('serves a CapabilityStatement for FHIR R4 with the search parameters', async () => {
    const answer = await call<{
      resourceType: string;
      fhirVersion: string;
      rest: { resource: { type: string; searchParam: { name: string }[]; searchRevInclude?: string[] }[] }[];
    }>(`${base}/metadata`);
    expect(answer.status).toBe(200);
    expect(answer.contentType).toMatch(/^application\/fhir\+json/);
    expect(answer.body.resourceType).toBe('CapabilityStatement');
    expect(answer.body.fhirVersion).toBe('4.0.1');
    const practitioner = answer.body.rest[0]?.resource.find((r) => r.type === 'Practitioner');
    expect(practitioner?.searchParam.map((p) => p.name).sort()).toEqual(
      ['_id', '_lastUpdated', 'active', 'family', 'given', 'identifier', 'identifier-type', 'name'].sort(),
    );
    expect(practitioner?.searchRevInclude).toEqual(['PractitionerRole:practitioner']);
  });

  it('answers 401 with an OperationOutcome without a key or with a wrong one, without echoing it', async () => {
    const missing = await call(`${base}/metadata`, { key: null });
    expect(missing.status).toBe(401);
    expect(diagnostics(missing)).toMatch(/ESANTE-API-KEY/);
    const wrong = await call(`${base}/Practitioner?identifier=1`, { key: 'not-the-key-9x7' });
    expect(wrong.status).toBe(401);
    expect(wrong.text).not.toContain('not-the-key-9x7');
  });

  it('finds Practitioners by idNatPS or RPPS value, with or without system, comma meaning OR', async () => {
    const [a, b, c] = professionals.filter((p) => p.active) as [Professional, Professional, Professional];
    for (const query of [
      a.idNatPs,
      a.rpps,
      `urn:oid:1.2.250.1.71.4.2.1|${a.idNatPs}`,
      `https://rpps.esante.gouv.fr|${a.rpps}`,
    ]) {
      const answer = await call(`${base}/Practitioner?identifier=${encodeURIComponent(query)}`);
      expect(answer.status).toBe(200);
      expect(new Set(idNatsOf(answer.body))).toEqual(new Set([a.idNatPs]));
    }
    const many = await call(
      `${base}/Practitioner?identifier=${a.idNatPs},${b.rpps},${c.idNatPs},00000000000`,
    );
    expect(new Set(idNatsOf(many.body))).toEqual(new Set([a.idNatPs, b.idNatPs, c.idNatPs]));
    expect(
      (await call(`${base}/Practitioner?identifier=${encodeURIComponent(`http://rpps.fr|${a.rpps}`)}`)).body
        .entry ?? [],
    ).toEqual([]);
  });

  it('serves the real shapes: identifiers, names, qualification codes, roles with their codes', async () => {
    const p = professionals.find((x) => x.active && x.activities.length === 1) as Professional;
    const answer = await call(
      `${base}/Practitioner?identifier=${p.idNatPs}&_revinclude=PractitionerRole:practitioner`,
    );
    const [practitioner] = resources<Practitioner>(answer.body, 'Practitioner');
    // Technical ids as published (`003-5818457-5939334`), unrelated to the RPPS.
    expect(practitioner?.id).toMatch(/^003-\d+-\d+$/);
    expect(practitioner?.id).not.toContain(p.rpps);
    // As the published examples: `language`, `extension`, both profiles, `versionId` "1" first.
    expect(practitioner).toMatchObject({
      language: 'fr',
      extension: [
        {
          url: 'https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/as-ext-registration',
        },
      ],
      meta: {
        versionId: '1',
        source: 'https://annuaire.sante.fr',
        profile: [
          'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-practitioner',
          'https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/as-dp-practitioner',
        ],
      },
    });
    expect(practitioner?.identifier).toEqual([
      {
        use: 'official',
        type: {
          coding: [{ system: 'https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203', code: 'IDNPS' }],
        },
        system: 'urn:oid:1.2.250.1.71.4.2.1',
        value: p.idNatPs,
      },
      {
        use: 'official',
        type: {
          coding: [{ system: 'https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203', code: 'RPPS' }],
        },
        system: 'https://rpps.esante.gouv.fr',
        value: p.rpps,
      },
    ]);
    expect(practitioner?.name).toEqual([
      { use: 'usual', prefix: [p.civility], family: p.familyName, given: [p.givenName] },
    ]);
    expect(practitioner?.qualification?.[0]?.code?.coding).toEqual([
      {
        system: 'https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante',
        code: p.profession.code,
        display: p.profession.label,
      },
      {
        system:
          'https://mos.esante.gouv.fr/NOS/TRE_R09-CategorieProfessionnelle/FHIR/TRE-R09-CategorieProfessionnelle',
        code: p.category.code,
        display: p.category.label,
      },
    ]);
    const roles = resources<PractitionerRole>(answer.body, 'PractitionerRole', 'include');
    expect(roles).toHaveLength(1);
    const activity = p.activities[0];
    expect(roles[0]?.identifier).toEqual([{ system: 'https://rpps.esante.gouv.fr', value: activity?.id }]);
    expect(roles[0]?.practitioner).toEqual({ reference: `Practitioner/${practitioner?.id}` });
    expect(roles[0]?.id).toMatch(/^005-\d+-\d+$/);
    expect(roles[0]?.language).toBe('fr');
    expect(roles[0]?.organization?.reference).toMatch(/^Organization\/001-01-\d+$/);
    expect(roles[0]?.code?.map((c) => [c.coding?.[0]?.system, c.coding?.[0]?.code])).toEqual([
      [
        'https://mos.esante.gouv.fr/NOS/TRE_R22-GenreActivite/FHIR/TRE-R22-GenreActivite',
        activity?.genre.code,
      ],
      ['https://mos.esante.gouv.fr/NOS/TRE_R23-ModeExercice/FHIR/TRE-R23-ModeExercice', activity?.mode.code],
      ['https://mos.esante.gouv.fr/NOS/TRE_R21-Fonction/FHIR/TRE-R21-Fonction', activity?.role.code],
    ]);
  });

  it('serves the older identifier convention for the professionals chosen', async () => {
    const legacy = professionals[7] as Professional;
    const answer = await call(
      `${base}/Practitioner?identifier=${encodeURIComponent(`http://rpps.fr|${legacy.rpps}`)}`,
    );
    const [practitioner] = resources<Practitioner>(answer.body, 'Practitioner');
    expect(
      practitioner?.identifier?.map((i) => [
        i.type?.coding?.[0]?.system,
        i.type?.coding?.[0]?.code,
        i.system,
      ]),
    ).toEqual([
      ['http://interopsante.org/CodeSystem/v2-0203', 'IDNPS', 'urn:oid:1.2.250.1.71.4.2.1'],
      ['http://interopsante.org/CodeSystem/v2-0203', 'RPPS', 'http://rpps.fr'],
    ]);
  });

  it('serves a professional with two exercises as two Practitioners sharing the RPPS', async () => {
    const split = professionals.find(
      (p) => simulator.practitionerIdsOf(p.idNatPs).length === 2,
    ) as Professional;
    expect(split).toBeDefined();
    const answer = await call(
      `${base}/Practitioner?identifier=${split.rpps}&_revinclude=PractitionerRole:practitioner`,
    );
    const practitioners = resources<Practitioner>(answer.body, 'Practitioner');
    expect(practitioners.map((p) => p.id)).toEqual(simulator.practitionerIdsOf(split.idNatPs));
    const roles = resources<PractitionerRole>(answer.body, 'PractitionerRole', 'include');
    expect(roles).toHaveLength(split.activities.length);
    expect(new Set(roles.map((r) => r.practitioner?.reference))).toEqual(
      new Set(practitioners.map((p) => `Practitioner/${p.id}`)),
    );
  });

  it('searches names by prefix with accents and case folded, and with :exact and :contains', async () => {
    const practitionersNamed = (family: string) =>
      professionals
        .filter((p) => p.active && p.familyName === family)
        .reduce((n, p) => n + simulator.practitionerIdsOf(p.idNatPs).length, 0);
    const count = async (query: string) =>
      resources<Practitioner>((await call(`${base}/Practitioner?${query}&_count=200`)).body, 'Practitioner')
        .length;
    const lefevre = practitionersNamed('Lefèvre');
    expect(lefevre).toBeGreaterThan(0);
    expect(await count('family=lefevre')).toBe(lefevre);
    expect(await count(`family:exact=${encodeURIComponent('Lefèvre')}`)).toBe(lefevre);
    expect(await count('family:exact=Lefevre')).toBe(0);
    expect(await count('family:contains=EFEV')).toBe(lefevre);
    expect(await count('family=LEFE')).toBe(lefevre + practitionersNamed('Lefebvre'));
    const dAlmeida = await call(`${base}/Practitioner?name=${encodeURIComponent('d almeida')}&_count=200`);
    for (const p of resources<Practitioner>(dAlmeida.body, 'Practitioner'))
      expect(p.name?.[0]?.family).toBe("D'Almeida");
  });

  it('pages in technical id order through opaque next links until the end, with a total unless told not to', async () => {
    const served = professionals
      .filter((p) => p.active || p.lastUpdated.getTime() >= START.getTime() - 30 * DAY)
      .reduce((n, p) => n + simulator.practitionerIdsOf(p.idNatPs).length, 0);
    let answer = await call(`${base}/Practitioner?_count=37`);
    // The published examples carry `total` by default ("total": 9903, "total": 0).
    expect(answer.body.total).toBe(served);
    const ids: string[] = [];
    let pages = 0;
    for (;;) {
      expect(answer.status).toBe(200);
      pages++;
      expect(answer.body.link?.map((l) => l.relation)).not.toContain('prev');
      ids.push(...resources<Practitioner>(answer.body, 'Practitioner').map((p) => p.id));
      const next = nextLink(answer.body);
      if (!next) break;
      expect(next).toMatch(new RegExp(`^${base}/_page\\?id=[A-Za-z0-9_-]+$`));
      answer = await call(next);
    }
    expect(ids).toHaveLength(served);
    expect(pages).toBe(Math.ceil(served / 37));
    expect(ids).toEqual([...ids].sort());
    expect(new Set(ids).size).toBe(ids.length);
    const withTotal = await call(`${base}/Practitioner?_count=5&_total=accurate`);
    expect(withTotal.body.total).toBe(served);
    expect((await call(`${base}/Practitioner?_count=5&_total=none`)).body.total).toBeUndefined();
    const nothing = await call(`${base}/Practitioner?identifier=00000000000`);
    expect(nothing.body.total).toBe(0);
    // Text searches may come without it (modifying-search-results.md: "recherches textuelles").
    expect((await call(`${base}/Practitioner?family:contains=ar`)).body.total).toBeUndefined();
  });

  it('defaults _count to 50 and takes up to 10000, as documented', async () => {
    const served = professionals
      .filter((p) => p.active || p.lastUpdated.getTime() >= START.getTime() - 30 * DAY)
      .reduce((n, p) => n + simulator.practitionerIdsOf(p.idNatPs).length, 0);
    expect(served).toBeGreaterThan(200);
    const all = await call(`${base}/Practitioner?_count=10000`);
    expect(resources(all.body, 'Practitioner')).toHaveLength(served);
    expect(nextLink(all.body)).toBeUndefined();
    expect(resources((await call(`${base}/Practitioner`)).body, 'Practitioner')).toHaveLength(50);
  });

  it('answers POST _search with a form body like the GET search', async () => {
    const query = `identifier=${professionals
      .slice(0, 30)
      .map((p) => p.idNatPs)
      .join(',')}&_revinclude=PractitionerRole:practitioner`;
    const get = await call(`${base}/Practitioner?${query}`);
    const post = await call(`${base}/Practitioner/_search`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(query).toString(),
    });
    expect(post.status).toBe(200);
    expect(post.body.entry?.map((e) => e.fullUrl)).toEqual(get.body.entry?.map((e) => e.fullUrl));
    expect(simulator.requests.at(-1)?.query).toContain(professionals[0]?.idNatPs);
  });

  it('includes roles on the page of their Practitioner, and practitioners/organizations of roles', async () => {
    const page = await call(`${base}/Practitioner?_count=20&_revinclude=PractitionerRole:practitioner`);
    const onPage = new Set(
      resources<Practitioner>(page.body, 'Practitioner').map((p) => `Practitioner/${p.id}`),
    );
    const roles = resources<PractitionerRole>(page.body, 'PractitionerRole', 'include');
    const sameRoles = await call(`${base}/PractitionerRole?practitioner=${[...onPage].join(',')}&_count=200`);
    expect(roles.map((r) => r.id).sort()).toEqual(
      resources<PractitionerRole>(sameRoles.body, 'PractitionerRole')
        .map((r) => r.id)
        .sort(),
    );
    expect(roles.length).toBeGreaterThanOrEqual(onPage.size);
    for (const role of roles) expect(onPage.has(role.practitioner?.reference ?? '')).toBe(true);

    const rolePage = await call(
      `${base}/PractitionerRole?role=FON-PH&_count=10&_include=PractitionerRole:practitioner&_include=PractitionerRole:organization`,
    );
    const matches = resources<PractitionerRole>(rolePage.body, 'PractitionerRole');
    expect(matches.length).toBeGreaterThan(0);
    for (const role of matches) expect(role.code?.some((c) => c.coding?.[0]?.code === 'FON-PH')).toBe(true);
    const included = new Set(
      (rolePage.body.entry ?? [])
        .filter((e) => e.search?.mode === 'include')
        .map((e) => `${e.resource?.resourceType}/${e.resource?.id}`),
    );
    for (const role of matches) {
      expect(included.has(role.practitioner?.reference ?? '')).toBe(true);
      expect(included.has(role.organization?.reference ?? '')).toBe(true);
    }
    const byPractitioner = await call(
      `${base}/PractitionerRole?practitioner=${matches[0]?.practitioner?.reference}`,
    );
    expect(resources<PractitionerRole>(byPractitioner.body, 'PractitionerRole').map((r) => r.id)).toContain(
      matches[0]?.id,
    );
  });

  it('refuses chained and unknown parameters with 400 OperationOutcome', async () => {
    const chained = await call(`${base}/PractitionerRole?organization.identifier=123`);
    expect(chained.status).toBe(400);
    expect(diagnostics(chained)).toMatch(/Chained/);
    const unknown = await call(`${base}/Practitioner?birthdate=1970`);
    expect(unknown.status).toBe(400);
    expect(diagnostics(unknown)).toMatch(/Unknown search parameter "birthdate"/);
    expect((await call(`${base}/Practitioner?_include=PractitionerRole:practitioner`)).status).toBe(400);
    expect((await call(`${base}/Practitioner?_lastUpdated=sa2026-01-01`)).status).toBe(400);
    expect((await call(`${base}/Practitioner?active=maybe`)).status).toBe(400);
  });

  it('answers 404 OperationOutcome for unknown paths and ids, and reads a Practitioner by id', async () => {
    const unknownPath = await call(`${base}/Patient?name=x`);
    expect(unknownPath.status).toBe(404);
    expect(diagnostics(unknownPath)).toMatch(/Unknown path/);
    expect((await call(`${base}/Practitioner/does-not-exist`)).status).toBe(404);
    const [id] = simulator.practitionerIdsOf(professionals[0]?.idNatPs as string);
    const read = await call<Practitioner>(`${base}/Practitioner/${id}`);
    expect(read.status).toBe(200);
    expect(read.body.id).toBe(id);
  });

  it('answers 500 "too old or corrupted" for stale, corrupt and expired page links', async () => {
    const first = await call(`${base}/Practitioner?_count=10`);
    const next = nextLink(first.body) as string;
    simulator.faults.stalePages(1);
    const stale = await call(next);
    expect(stale.status).toBe(500);
    expect(diagnostics(stale)).toMatch(/Maybe it is too old or corrupted/);
    expect((await call(next)).status).toBe(200);
    const corrupt = await call(`${base}/_page?id=AAAAnotatoken`);
    expect(corrupt.status).toBe(500);
    expect(diagnostics(corrupt)).toMatch(/too old or corrupted/);

    const shortLived = await startAnnuaireSimulator({
      professionals: professionals.slice(0, 50),
      apiKey: API_KEY,
      pageTtlMs: 50,
    });
    try {
      const page = await call(`${shortLived.baseUrl}/Practitioner?_count=10`);
      await new Promise((resolve) => setTimeout(resolve, 80));
      expect((await call(nextLink(page.body) as string)).status).toBe(500);
    } finally {
      await shortLived.close();
    }
  });

  it('keeps the tombstone of a deactivated professional for 30 days, then forgets it', async () => {
    const leaving = professionals.find((p) => p.active && p.activities.length === 1) as Professional;
    const [id] = simulator.practitionerIdsOf(leaving.idNatPs);
    const before = clock;
    clock = new Date(START.getTime() + DAY);
    simulator.deactivate(leaving.idNatPs);
    try {
      const read = await call<Practitioner>(`${base}/Practitioner/${id}`);
      expect(Object.keys(read.body).sort()).toEqual(['active', 'id', 'identifier', 'meta', 'resourceType']);
      expect(read.body.active).toBe(false);
      expect(read.body.meta?.lastUpdated).toBe(clock.toISOString());
      const delta = await call(
        `${base}/Practitioner?_lastUpdated=ge${clock.toISOString()}&_revinclude=PractitionerRole:practitioner`,
      );
      expect(idNatsOf(delta.body)).toEqual([leaving.idNatPs]);
      const roles = resources<PractitionerRole>(delta.body, 'PractitionerRole', 'include');
      expect(roles.map((r) => r.active)).toEqual([false]);
      expect(
        (await call(`${base}/Practitioner?identifier=${leaving.idNatPs}&active=false`)).body.entry,
      ).toHaveLength(1);
      expect(
        (await call(`${base}/Practitioner?identifier=${leaving.idNatPs}&active=true`)).body.entry ?? [],
      ).toEqual([]);

      clock = new Date(clock.getTime() + 30 * DAY + 1);
      expect((await call(`${base}/Practitioner/${id}`)).status).toBe(404);
      expect((await call(`${base}/Practitioner?identifier=${leaving.idNatPs}`)).body.entry ?? []).toEqual([]);
    } finally {
      clock = before;
    }
  });

  it('limits _lastUpdated deltas to the last 30 days, with their total as published', async () => {
    const horizon = START.getTime() - 30 * DAY;
    const ids: string[] = [];
    let answer = await call(
      `${base}/Practitioner?_lastUpdated=ge${new Date(START.getTime() - 90 * DAY).toISOString()}&_count=200`,
    );
    const total = answer.body.total;
    for (;;) {
      for (const p of resources<Practitioner>(answer.body, 'Practitioner')) {
        expect(Date.parse(p.meta?.lastUpdated ?? '')).toBeGreaterThanOrEqual(horizon);
        ids.push(p.id);
      }
      const next = nextLink(answer.body);
      if (!next) break;
      answer = await call(next);
    }
    const recent = professionals
      .filter((p) => p.lastUpdated.getTime() >= horizon)
      .flatMap((p) => simulator.practitionerIdsOf(p.idNatPs));
    expect(total).toBe(ids.length);
    // Second exercises are dated one day before their first: a few fall outside the window.
    expect(ids.length).toBeLessThanOrEqual(recent.length);
    expect(ids.length).toBeGreaterThanOrEqual(recent.length - 5);

    const day = START.toISOString().slice(0, 10);
    const between = await call(
      `${base}/Practitioner?_lastUpdated=gt${new Date(START.getTime() - 10 * DAY).toISOString().slice(0, 10)}&_lastUpdated=lt${day}&_count=200`,
    );
    for (const p of resources<Practitioner>(between.body, 'Practitioner')) {
      const t = Date.parse(p.meta?.lastUpdated ?? '');
      expect(t).toBeGreaterThanOrEqual(START.getTime() - 9 * DAY);
      expect(t).toBeLessThan(START.getTime());
    }
  });

  it('bumps lastUpdated on updates and ended activities, and serves new professionals', async () => {
    const [changed, ending] = professionals.filter((p) => p.active && p.activities.length >= 2) as [
      Professional,
      Professional,
    ];
    const before = clock;
    clock = new Date(START.getTime() + 2 * DAY);
    try {
      simulator.update(changed.idNatPs, { familyName: 'Nouveau-Nom' });
      simulator.endActivity(ending.idNatPs, ending.activities[1]?.id as string);
      const [newcomer] = [...generateProfessionals({ count: 401, now: START })].slice(400) as [Professional];
      simulator.add({ ...newcomer, active: true });
      const since = `_lastUpdated=ge${clock.toISOString()}`;
      const practitioners = await call(`${base}/Practitioner?${since}`);
      expect(new Set(idNatsOf(practitioners.body))).toEqual(new Set([changed.idNatPs, newcomer.idNatPs]));
      // meta.versionId is "1" on a first version and a number on later ones, as in the published examples.
      const versionOf = (idNat: string) =>
        resources<Practitioner>(practitioners.body, 'Practitioner').find((p) =>
          p.identifier?.some((i) => i.value === idNat),
        )?.meta?.versionId;
      expect(versionOf(changed.idNatPs)).toBe(2);
      expect(versionOf(newcomer.idNatPs)).toBe('1');
      expect(
        resources<Practitioner>(practitioners.body, 'Practitioner').find(
          (p) => p.name?.[0]?.family === 'Nouveau-Nom',
        ),
      ).toBeDefined();
      const roles = await call(`${base}/PractitionerRole?${since}&_include=PractitionerRole:practitioner`);
      const ended = resources<PractitionerRole>(roles.body, 'PractitionerRole').filter(
        (r) => r.active === false,
      );
      expect(ended.map((r) => r.identifier?.[0]?.value)).toEqual([ending.activities[1]?.id]);
      const included = resources<Practitioner>(roles.body, 'Practitioner', 'include');
      expect(included.map((p) => p.identifier?.[0]?.value)).toContain(ending.idNatPs);
    } finally {
      clock = before;
    }
  });

  it('injects 429 with Retry-After, 502 and 504 with empty bodies, 503, delays, and outages', async () => {
    simulator.faults.queue(429, { retryAfterSeconds: 2 });
    const throttled = await fetch(`${base}/metadata`, { headers: { 'ESANTE-API-KEY': API_KEY } });
    expect(throttled.status).toBe(429);
    expect(throttled.headers.get('retry-after')).toBe('2');
    await throttled.text();
    simulator.faults.queue(429, { retryAfterSeconds: null });
    const bare = await fetch(`${base}/metadata`, { headers: { 'ESANTE-API-KEY': API_KEY } });
    expect(bare.status).toBe(429);
    expect(bare.headers.has('retry-after')).toBe(false);
    await bare.text();
    for (const status of [502, 504] as const) {
      simulator.faults.queue(status);
      const answer = await call(`${base}/metadata`);
      expect(answer.status).toBe(status);
      expect(answer.text).toBe('');
    }
    simulator.faults.queue(503, { times: 2, path: /\/_page$/ });
    expect((await call(`${base}/metadata`)).status).toBe(200);
    const first = await call(`${base}/Practitioner?_count=5`);
    expect((await call(nextLink(first.body) as string)).status).toBe(503);
    expect((await call(nextLink(first.body) as string)).status).toBe(503);
    expect((await call(nextLink(first.body) as string)).status).toBe(200);

    simulator.faults.delay(150, { times: 1 });
    const slow = await fetch(`${base}/metadata`, {
      headers: { 'ESANTE-API-KEY': API_KEY },
      signal: AbortSignal.timeout(50),
    }).catch((err: Error) => err);
    expect((slow as Error).name).toBe('TimeoutError');
    // Answered once its delay is over, to a client gone meanwhile.
    await expect.poll(() => simulator.requests.at(-1)?.status, { timeout: 30_000 }).toBe(499);

    simulator.faults.down();
    expect((await call(`${base}/metadata`)).status).toBe(503);
    simulator.faults.down('reset');
    await expect(call(`${base}/metadata`)).rejects.toThrow(/fetch failed/);
    simulator.faults.up();
    expect((await call(`${base}/metadata`)).status).toBe(200);
  });

  it('truncates the next answers on demand: fewer matches than its total, no next link', async () => {
    const wanted = professionals.filter((p) => p.active).slice(0, 30);
    const query = `${base}/Practitioner?identifier=${wanted.map((p) => p.idNatPs).join(',')}&_count=10`;
    const full = await call(query);
    simulator.faults.truncate(1);
    const cut = await call(query);
    expect(cut.body.total).toBe(full.body.total);
    expect(resources(cut.body, 'Practitioner').length).toBeLessThan(10);
    expect(nextLink(cut.body)).toBeUndefined();
    expect(resources((await call(query)).body, 'Practitioner')).toHaveLength(10);
  });

  it('answers 504 with an empty body after the gateway timeout for more than 50 identifiers with _include/_revinclude', async () => {
    const ids = professionals.slice(0, 51).map((p) => p.idNatPs);
    const revinclude = '&_revinclude=PractitionerRole:practitioner';
    const mark = simulator.requests.length;
    const started = performance.now();
    const heavy = await call(`${base}/Practitioner?identifier=${ids.join(',')}${revinclude}`);
    expect(heavy).toMatchObject({ status: 504, text: '' });
    expect(performance.now() - started).toBeGreaterThanOrEqual(45);
    // The same in a POST _search; identifiers and technical ids both count.
    const posted = await call(`${base}/Practitioner/_search`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `identifier=${ids.slice(0, 40).join(',')}&_id=${simulator.practitionerIdsOf(ids[0] as string).join(',')},${Array.from({ length: 10 }, (_, i) => `003-1-${i}`).join(',')}${revinclude}`,
    });
    expect(posted.status).toBe(504);
    // 50 pass; so do more without _include/_revinclude.
    expect(
      (await call(`${base}/Practitioner?identifier=${ids.slice(0, 50).join(',')}${revinclude}`)).status,
    ).toBe(200);
    expect((await call(`${base}/Practitioner?identifier=${ids.join(',')}`)).status).toBe(200);
    const roles = await call(
      `${base}/PractitionerRole?practitioner=${Array.from({ length: 51 }, (_, i) => `003-1-${i}`).join(',')}&_include=PractitionerRole:practitioner`,
    );
    expect(roles.status).toBe(200);
    expect(simulator.requests.slice(mark).map((r) => r.status)).toEqual([504, 504, 200, 200, 200]);
  });

  it('answers 504 after the gateway timeout for heavy multi-criteria text searches (two :contains)', async () => {
    const heavy = await call(`${base}/Practitioner?name:contains=ar&name:contains=in`);
    expect(heavy).toMatchObject({ status: 504, text: '' });
    expect((await call(`${base}/Practitioner?name:contains=ar`)).status).toBe(200);
    expect((await call(`${base}/Practitioner?family=Martin&given=Marie`)).status).toBe(200);
  });

  it('takes which searches are heavy and how many identifiers are too many as settings', async () => {
    const strict = await startAnnuaireSimulator({
      professionals: professionals.slice(0, 30),
      apiKey: API_KEY,
      gatewayTimeoutMs: 20,
      maxIdentifiersWithInclude: 10,
      heavySearch: (type, params) => type === 'Practitioner' && params.has('family') && params.has('given'),
    });
    try {
      const ids = professionals.slice(0, 11).map((p) => p.idNatPs);
      const b = strict.baseUrl;
      expect(
        (
          await call(
            `${b}/Practitioner?identifier=${ids.join(',')}&_revinclude=PractitionerRole:practitioner`,
          )
        ).status,
      ).toBe(504);
      expect(
        (
          await call(
            `${b}/Practitioner?identifier=${ids.slice(1).join(',')}&_revinclude=PractitionerRole:practitioner`,
          )
        ).status,
      ).toBe(200);
      expect((await call(`${b}/Practitioner?family=Martin&given=Marie`)).status).toBe(504);
      expect((await call(`${b}/Practitioner?family=Martin`)).status).toBe(200);
    } finally {
      await strict.close();
    }
  });

  it('omits total everywhere when told to (the reference: `total` may be absent)', async () => {
    const bare = await startAnnuaireSimulator({
      professionals: professionals.slice(0, 30),
      apiKey: API_KEY,
      total: 'never',
    });
    try {
      for (const query of ['', '?_total=accurate', `?identifier=${professionals[0]?.idNatPs}`])
        expect((await call(`${bare.baseUrl}/Practitioner${query}`)).body.total).toBeUndefined();
    } finally {
      await bare.close();
    }
  });
});

describe('Annuaire Santé simulator: the gateway quota', () => {
  const professionals = [...generateProfessionals({ count: 10, now: START })];
  const burst = (url: string, n: number, key = API_KEY) =>
    Promise.all(
      Array.from({ length: n }, () =>
        fetch(url, { headers: { 'ESANTE-API-KEY': key } }).then(async (r) => {
          await r.text();
          return { status: r.status, retryAfter: r.headers.get('retry-after') };
        }),
      ),
    );

  it('is on by default: 17 requests per second per API key, then 429 (without Retry-After unless set)', async () => {
    // The gateway's clock moves only when the test says: the burst is within one second however slow the
    // machine is.
    let gatewayMs = 0;
    const sim = await startAnnuaireSimulator({
      professionals,
      apiKey: API_KEY,
      gatewayClock: () => gatewayMs,
    });
    try {
      const answers = await burst(`${sim.baseUrl}/metadata`, 20);
      expect(answers.filter((a) => a.status === 200)).toHaveLength(17);
      expect(answers.filter((a) => a.status === 429)).toEqual(
        Array(3).fill({ status: 429, retryAfter: null }),
      );
      // A refused key is not counted against the application's quota, and gets 401.
      const wrong = await burst(`${sim.baseUrl}/metadata`, 2, 'some-other-key');
      expect(wrong.map((a) => a.status)).toEqual([401, 401]);
      // Just under a second later, still full; one second later, the window is clear.
      gatewayMs += 999;
      expect((await burst(`${sim.baseUrl}/metadata`, 1))[0]?.status).toBe(429);
      gatewayMs += 1000;
      expect((await burst(`${sim.baseUrl}/metadata`, 1))[0]?.status).toBe(200);
    } finally {
      await sim.close();
    }
  });

  it('counts per API key, sends Retry-After when set, and can be turned off', async () => {
    const keys = ['key-of-application-a', 'key-of-application-b'];
    const sim = await startAnnuaireSimulator({
      professionals,
      apiKey: keys,
      rateLimitPerSecond: 5,
      quotaRetryAfterSeconds: 1,
      // Every request in the same second of the gateway, however slow the machine is.
      gatewayClock: () => 0,
    });
    const open = await startAnnuaireSimulator({ professionals, apiKey: API_KEY, rateLimitPerSecond: null });
    try {
      const both = await Promise.all(keys.map((key) => burst(`${sim.baseUrl}/metadata`, 7, key)));
      expect(both).toHaveLength(2);
      for (const answers of both) {
        expect(answers.filter((x) => x.status === 200)).toHaveLength(5);
        expect(answers.filter((x) => x.status === 429)).toEqual(
          Array(2).fill({ status: 429, retryAfter: '1' }),
        );
      }
      expect((await burst(`${open.baseUrl}/metadata`, 30)).every((x) => x.status === 200)).toBe(true);
    } finally {
      await sim.close();
      await open.close();
    }
  });
});
