import { createHash } from 'node:crypto';
import {
  CATEGORY_SYSTEM,
  FINESS_SYSTEM,
  FONCTION_SYSTEM,
  GENRE_ACTIVITE_SYSTEM,
  type Identifier,
  MODE_EXERCICE_SYSTEM,
  type Organization,
  PROFESSION_SYSTEM,
  type Practitioner,
  type PractitionerRole,
} from '../../../src/rpps/fhir.ts';
import {
  ID_NAT_PS_SYSTEM,
  IDENTIFIER_TYPE_SYSTEM,
  LEGACY_IDENTIFIER_TYPE_SYSTEM,
  LEGACY_RPPS_SYSTEM,
  RPPS_SYSTEM,
} from '../../../src/rpps/identifiers.ts';
import type { Code, Professional } from './fixtures.ts';

/**
 * The simulated directory's state: Practitioners (one per professional exercise; a few professionals
 * have two sharing one RPPS), PractitionerRoles (one per activity) and Organizations, rendered as the
 * Annuaire Santé serves them. Resources inactive for more than 30 days are no longer served at all.
 *
 * Shapes as in the published examples (annuaire-sante.md; ansforge/annuaire-sante-fhir-documentation,
 * getting-started/test-api.md, use-case/uc-call-type.md and resources/*.md at commit 9f3d7d0):
 * technical ids `003-5818457-5939334` (Practitioner), `005-5087586-6923328` (PractitionerRole),
 * `001-01-99999` (Organization); `language: "fr"`; an `extension` array on Practitioners; both
 * profiles in `meta.profile`; `meta.versionId` "1" on a first version and a number on later ones
 * (`"versionId": "1"` and `"versionId": 2` in uc-call-type.md).
 */

const HORIZON_MS = 30 * 86_400_000;
const SOURCE = 'https://annuaire.sante.fr';
const LANGUAGE = 'fr';
const AS_PROFILE = 'https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition';
const FR_CORE_PROFILE = 'https://hl7.fr/ig/fhir/core/StructureDefinition';
/** Inscription à l'ordre (ansforge/IG-fhir-annuaire, AsPractitionerProfile: `as-ext-registration`). */
const REGISTRATION_EXTENSION = `${AS_PROFILE}/as-ext-registration`;
const ID_PREFIX = { Practitioner: '003', PractitionerRole: '005', Organization: '001-01' } as const;

export type IdentifierStyle = 'current' | 'legacy' | 'rpps-only';

interface StoredPractitioner
  extends Pick<
    Professional,
    'idNatPs' | 'rpps' | 'familyName' | 'givenName' | 'profession' | 'category' | 'active' | 'lastUpdated'
  > {
  id: string;
  civility: string;
  version: number;
  style: IdentifierStyle;
}

interface StoredRole {
  id: string;
  activityId: string;
  practitionerId: string;
  organizationId: string;
  role: Code;
  genre: Code;
  mode: Code;
  active: boolean;
  lastUpdated: Date;
  version: number;
}

interface StoredOrganization {
  id: string;
  name: string;
  finessSite: string | null;
  lastUpdated: Date;
}

export type AnyResource = Practitioner | PractitionerRole | Organization;

export interface ProfessionalPatch {
  familyName?: string;
  givenName?: string;
  civility?: Professional['civility'];
  profession?: Code;
  category?: Code;
}

export interface DirectoryOptions {
  now: () => Date;
  /** Which identifier convention each professional's Practitioners use. */
  identifierStyle: (professional: Professional) => IdentifierStyle;
  /** Professionals served as two Practitioners sharing the RPPS (activities split between them). */
  splitExercise: (professional: Professional) => boolean;
}

/**
 * An opaque technical id shaped as the Annuaire Santé's (`003-5818457-5939334`), stable for a seed
 * string and unrelated to any national identifier.
 */
function technicalId(kind: keyof typeof ID_PREFIX, key: string): string {
  const hash = createHash('sha256').update(`${kind}:${key}`).digest();
  const a = 1 + (hash.readUInt32BE(0) % 9_999_999);
  const b = 1 + (hash.readUInt32BE(4) % 9_999_999);
  return kind === 'Organization' ? `${ID_PREFIX[kind]}-${a}` : `${ID_PREFIX[kind]}-${a}-${b}`;
}

function byId<T extends { id: string }>(a: T, b: T): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

function typedIdentifier(typeSystem: string, code: string, system: string, value: string): Identifier {
  return { use: 'official', type: { coding: [{ system: typeSystem, code }] }, system, value };
}

export class SimulatedDirectory {
  readonly #options: DirectoryOptions;
  readonly #practitioners = new Map<string, StoredPractitioner>();
  readonly #roles = new Map<string, StoredRole>();
  readonly #organizations = new Map<string, StoredOrganization>();
  /** Sorted by technical id: the paging order. */
  #practitionerOrder: StoredPractitioner[] = [];
  #roleOrder: StoredRole[] = [];
  #rolesByPractitioner = new Map<string, StoredRole[]>();
  /** Rendered resources, valid while the record keeps its version. */
  readonly #rendered = new WeakMap<object, { version: number; resource: AnyResource }>();

  constructor(professionals: Iterable<Professional>, options: DirectoryOptions) {
    this.#options = options;
    for (const professional of professionals) this.#insert(professional, professional.lastUpdated);
    this.#reorder();
  }

  #insert(professional: Professional, lastUpdated: Date): void {
    const split = this.#options.splitExercise(professional) && professional.activities.length > 1;
    const style = this.#options.identifierStyle(professional);
    const exercises = split ? [0, 1] : [0];
    for (const exercise of exercises) {
      const practitioner: StoredPractitioner = {
        id: technicalId('Practitioner', `${professional.rpps}/${exercise}`),
        idNatPs: professional.idNatPs,
        rpps: professional.rpps,
        civility: professional.civility,
        familyName: professional.familyName,
        givenName: professional.givenName,
        profession: professional.profession,
        category: professional.category,
        active: professional.active,
        lastUpdated: new Date(lastUpdated.getTime() - exercise * 86_400_000),
        version: 1,
        style,
      };
      this.#practitioners.set(practitioner.id, practitioner);
      const activities = split
        ? professional.activities.filter((_, i) => (i === 0 ? 0 : 1) === exercise)
        : professional.activities;
      for (const activity of activities) {
        const organizationKey = `${activity.organizationName}/${activity.finessSite ?? activity.department}`;
        const organizationId = technicalId('Organization', organizationKey);
        if (!this.#organizations.has(organizationId))
          this.#organizations.set(organizationId, {
            id: organizationId,
            name: activity.organizationName,
            finessSite: activity.finessSite,
            lastUpdated,
          });
        const role: StoredRole = {
          id: technicalId('PractitionerRole', activity.id),
          activityId: activity.id,
          practitionerId: practitioner.id,
          organizationId,
          role: activity.role,
          genre: activity.genre,
          mode: activity.mode,
          active: activity.active,
          lastUpdated: practitioner.lastUpdated,
          version: 1,
        };
        this.#roles.set(role.id, role);
      }
    }
  }

  #reorder(): void {
    this.#practitionerOrder = [...this.#practitioners.values()].sort(byId);
    this.#roleOrder = [...this.#roles.values()].sort(byId);
    this.#rolesByPractitioner = new Map();
    for (const role of this.#roleOrder) {
      const list = this.#rolesByPractitioner.get(role.practitionerId) ?? [];
      list.push(role);
      this.#rolesByPractitioner.set(role.practitionerId, list);
    }
  }

  /** Served at all: active, or inactive for less than 30 days (a tombstone in the deltas). */
  #visible(record: { active: boolean; lastUpdated: Date }): boolean {
    return record.active || record.lastUpdated.getTime() >= this.horizon().getTime();
  }

  /** The oldest change `_lastUpdated` searches still return. */
  horizon(): Date {
    return new Date(this.#options.now().getTime() - HORIZON_MS);
  }

  practitioners(): Practitioner[] {
    return this.#practitionerOrder.filter((p) => this.#visible(p)).map((p) => this.#renderPractitioner(p));
  }

  roles(): PractitionerRole[] {
    return this.#roleOrder.filter((r) => this.#visible(r)).map((r) => this.#renderRole(r));
  }

  read(type: string, id: string): AnyResource | null {
    if (type === 'Practitioner') {
      const p = this.#practitioners.get(id);
      return p && this.#visible(p) ? this.#renderPractitioner(p) : null;
    }
    if (type === 'PractitionerRole') {
      const r = this.#roles.get(id);
      return r && this.#visible(r) ? this.#renderRole(r) : null;
    }
    if (type === 'Organization') {
      const o = this.#organizations.get(id);
      return o ? this.#renderOrganization(o) : null;
    }
    return null;
  }

  /** Served roles of these Practitioners (the `_revinclude=PractitionerRole:practitioner` set). */
  rolesOf(practitionerIds: ReadonlySet<string>): PractitionerRole[] {
    return [...practitionerIds]
      .flatMap((id) => this.#rolesByPractitioner.get(id) ?? [])
      .filter((r) => this.#visible(r))
      .sort(byId)
      .map((r) => this.#renderRole(r));
  }

  /** Technical ids of the Practitioners of one professional, in paging order. */
  practitionerIdsOf(idNatPs: string): string[] {
    return this.#practitionerOrder.filter((p) => p.idNatPs === idNatPs).map((p) => p.id);
  }

  #ofProfessional(idNatPs: string): StoredPractitioner[] {
    const found = this.#practitionerOrder.filter((p) => p.idNatPs === idNatPs);
    if (found.length === 0) throw new Error(`no professional ${idNatPs} in the simulated directory`);
    return found;
  }

  #touch(record: { lastUpdated: Date; version: number }): void {
    record.lastUpdated = this.#options.now();
    record.version++;
  }

  /** The professional's registration ends: Practitioners become tombstones, their roles inactive. */
  deactivate(idNatPs: string): void {
    for (const practitioner of this.#ofProfessional(idNatPs)) {
      practitioner.active = false;
      this.#touch(practitioner);
      for (const role of this.#rolesByPractitioner.get(practitioner.id) ?? []) {
        if (!role.active) continue;
        role.active = false;
        this.#touch(role);
      }
    }
  }

  update(idNatPs: string, patch: ProfessionalPatch): void {
    for (const practitioner of this.#ofProfessional(idNatPs)) {
      Object.assign(practitioner, patch);
      this.#touch(practitioner);
    }
  }

  /** One activity ends (the employer removed it): its PractitionerRole becomes inactive. */
  endActivity(idNatPs: string, activityId: string): void {
    const ids = new Set(this.#ofProfessional(idNatPs).map((p) => p.id));
    const role = this.#roleOrder.find((r) => r.activityId === activityId && ids.has(r.practitionerId));
    if (!role) throw new Error(`no activity ${activityId} for ${idNatPs}`);
    role.active = false;
    this.#touch(role);
  }

  /** A professional registered now (lastUpdated = now). */
  add(professional: Professional): void {
    if (this.#practitionerOrder.some((p) => p.idNatPs === professional.idNatPs))
      throw new Error(`${professional.idNatPs} is already in the simulated directory`);
    this.#insert(professional, this.#options.now());
    this.#reorder();
  }

  #meta(record: { lastUpdated: Date; version: number }, frCore: string, profile: string) {
    return {
      // "1" on first versions, a number on later ones: both appear in the published examples.
      versionId: record.version === 1 ? '1' : record.version,
      lastUpdated: record.lastUpdated.toISOString(),
      source: SOURCE,
      profile: [`${FR_CORE_PROFILE}/${frCore}`, `${AS_PROFILE}/${profile}`],
    };
  }

  #identifiers(p: StoredPractitioner): Identifier[] {
    if (p.style === 'legacy')
      return [
        typedIdentifier(LEGACY_IDENTIFIER_TYPE_SYSTEM, 'IDNPS', ID_NAT_PS_SYSTEM, p.idNatPs),
        typedIdentifier(LEGACY_IDENTIFIER_TYPE_SYSTEM, 'RPPS', LEGACY_RPPS_SYSTEM, p.rpps),
      ];
    const rpps = typedIdentifier(IDENTIFIER_TYPE_SYSTEM, 'RPPS', RPPS_SYSTEM, p.rpps);
    if (p.style === 'rpps-only') return [rpps];
    return [typedIdentifier(IDENTIFIER_TYPE_SYSTEM, 'IDNPS', ID_NAT_PS_SYSTEM, p.idNatPs), rpps];
  }

  #cached<T extends AnyResource>(record: { version: number }, render: () => T): T {
    const hit = this.#rendered.get(record);
    if (hit?.version === record.version) return hit.resource as T;
    const resource = render();
    this.#rendered.set(record, { version: record.version, resource });
    return resource;
  }

  #renderPractitioner(p: StoredPractitioner): Practitioner {
    return this.#cached(p, () => this.#practitionerResource(p));
  }

  #renderRole(r: StoredRole): PractitionerRole {
    return this.#cached(r, () => this.#roleResource(r));
  }

  #practitionerResource(p: StoredPractitioner): Practitioner {
    // A closed record comes back with its id and identifiers only (annuaire-sante.md: tombstones).
    const tombstone: Practitioner = {
      resourceType: 'Practitioner',
      id: p.id,
      meta: this.#meta(p, 'fr-core-practitioner', 'as-dp-practitioner'),
      identifier: this.#identifiers(p),
      active: p.active,
    };
    if (!p.active) return tombstone;
    const registeredYear = 1985 + (Number(p.rpps.slice(-5, -1)) % 40);
    return {
      resourceType: 'Practitioner',
      id: p.id,
      meta: tombstone.meta,
      language: LANGUAGE,
      extension: [
        {
          url: REGISTRATION_EXTENSION,
          extension: [{ url: 'period', valuePeriod: { start: `${registeredYear}-09-01` } }],
        },
      ],
      identifier: tombstone.identifier,
      active: p.active,
      name: [{ use: 'usual', prefix: [p.civility], family: p.familyName, given: [p.givenName] }],
      qualification: [
        {
          code: {
            coding: [
              { system: PROFESSION_SYSTEM, code: p.profession.code, display: p.profession.label },
              { system: CATEGORY_SYSTEM, code: p.category.code, display: p.category.label },
            ],
          },
        },
      ],
    };
  }

  #roleResource(r: StoredRole): PractitionerRole {
    const coded = (system: string, code: Code) => ({
      coding: [{ system, code: code.code, display: code.label }],
    });
    return {
      resourceType: 'PractitionerRole',
      id: r.id,
      meta: this.#meta(r, 'fr-core-practitioner-role', 'as-dp-practitionerrole'),
      language: LANGUAGE,
      identifier: [{ system: RPPS_SYSTEM, value: r.activityId }],
      active: r.active,
      practitioner: { reference: `Practitioner/${r.practitionerId}` },
      organization: { reference: `Organization/${r.organizationId}` },
      code: [
        coded(GENRE_ACTIVITE_SYSTEM, r.genre),
        coded(MODE_EXERCICE_SYSTEM, r.mode),
        coded(FONCTION_SYSTEM, r.role),
      ],
    };
  }

  #renderOrganization(o: StoredOrganization): Organization {
    return {
      resourceType: 'Organization',
      id: o.id,
      meta: this.#meta({ ...o, version: 1 }, 'fr-core-organization', 'as-dp-organization'),
      language: LANGUAGE,
      identifier: o.finessSite ? [{ system: FINESS_SYSTEM, value: o.finessSite }] : [],
      active: true,
      name: o.name,
    };
  }
}
