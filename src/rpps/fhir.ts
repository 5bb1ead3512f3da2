import {
  ID_NAT_PS_SYSTEM,
  IDENTIFIER_TYPE_SYSTEM,
  LEGACY_IDENTIFIER_TYPE_SYSTEM,
  LEGACY_RPPS_SYSTEM,
  RPPS_SYSTEM,
  rppsOf,
} from './identifiers.ts';

/**
 * The FHIR R4 subset the Annuaire Santé serves (Practitioner, PractitionerRole, Bundle,
 * OperationOutcome, CapabilityStatement) and its normalisation into one record per idNatPS.
 */

/** Code system of a MOS nomenclature (`TRE_G15-ProfessionSante` → `https://mos.esante.gouv.fr/NOS/…`). */
function mosSystem(table: string): string {
  return `https://mos.esante.gouv.fr/NOS/${table}/FHIR/${table.replace('_', '-')}`;
}

export const PROFESSION_SYSTEM = mosSystem('TRE_G15-ProfessionSante');
export const CATEGORY_SYSTEM = mosSystem('TRE_R09-CategorieProfessionnelle');
export const FONCTION_SYSTEM = mosSystem('TRE_R21-Fonction');
export const GENRE_ACTIVITE_SYSTEM = mosSystem('TRE_R22-GenreActivite');
export const MODE_EXERCICE_SYSTEM = mosSystem('TRE_R23-ModeExercice');
export const FINESS_SYSTEM = 'https://finess.esante.gouv.fr';

export interface Coding {
  system?: string;
  code?: string;
  display?: string;
}

export interface CodeableConcept {
  coding?: Coding[];
  text?: string;
}

export interface Identifier {
  use?: string;
  type?: CodeableConcept;
  system?: string;
  value?: string;
}

export interface HumanName {
  use?: string;
  prefix?: string[];
  family?: string;
  given?: string[];
  suffix?: string[];
}

/** A FHIR extension: its url and one `value[x]`, or nested extensions. */
export interface Extension {
  url: string;
  extension?: Extension[];
  [value: `value${string}`]: unknown;
}

export interface Meta {
  /** A string per FHIR, though the Annuaire Santé's examples also show numbers (`"versionId": 2`). */
  versionId?: string | number;
  lastUpdated?: string;
  source?: string;
  profile?: string[];
  tag?: Coding[];
}

export interface Reference {
  reference?: string;
  display?: string;
}

export interface Practitioner {
  resourceType: 'Practitioner';
  id: string;
  meta?: Meta;
  language?: string;
  extension?: Extension[];
  identifier?: Identifier[];
  active?: boolean;
  name?: HumanName[];
  qualification?: { code?: CodeableConcept }[];
}

export interface PractitionerRole {
  resourceType: 'PractitionerRole';
  id: string;
  meta?: Meta;
  language?: string;
  extension?: Extension[];
  identifier?: Identifier[];
  active?: boolean;
  practitioner?: Reference;
  organization?: Reference;
  code?: CodeableConcept[];
}

export interface Organization {
  resourceType: 'Organization';
  id: string;
  meta?: Meta;
  language?: string;
  extension?: Extension[];
  identifier?: Identifier[];
  active?: boolean;
  name?: string;
}

export type DirectoryResource = Practitioner | PractitionerRole | Organization;

export interface BundleEntry {
  fullUrl?: string;
  resource?: { resourceType: string; id?: string };
  search?: { mode?: 'match' | 'include' | 'outcome' };
}

export interface Bundle {
  resourceType: 'Bundle';
  id?: string;
  meta?: Meta;
  type: string;
  total?: number;
  link?: { relation: string; url: string }[];
  entry?: BundleEntry[];
}

export interface OperationOutcome {
  resourceType: 'OperationOutcome';
  issue: { severity: string; code: string; diagnostics?: string }[];
}

export interface CapabilityStatement {
  resourceType: 'CapabilityStatement';
  fhirVersion: string;
  software?: { name: string; version?: string };
}

/** One professional as the directory knows them, merged over all their Practitioner resources. */
export interface NationalProfessional {
  /** The key (never technical ids). */
  idNatPs: string;
  rpps: string | null;
  /** False when every Practitioner of this idNatPS is inactive (or a tombstone). */
  active: boolean;
  /** Exercise names: the first name entry of the chosen Practitioner. */
  familyName: string | null;
  /** Given names joined by a space. */
  givenName: string | null;
  professionCode: string | null;
  professionLabel: string | null;
  categoryCode: string | null;
  /** Codes of active PractitionerRoles as `<TRE>:<code>` (`TRE_R21:FON-AU`), sorted, deduplicated. */
  roleCodes: string[];
  activeRoleCount: number;
  /** The latest meta.lastUpdated seen over the Practitioners and PractitionerRoles. */
  lastUpdated: Date | null;
  /** Technical ids, informational only. */
  practitionerIds: string[];
}

const TYPE_SYSTEMS = new Set([IDENTIFIER_TYPE_SYSTEM, LEGACY_IDENTIFIER_TYPE_SYSTEM]);
const RPPS_SYSTEMS = new Set([RPPS_SYSTEM, LEGACY_RPPS_SYSTEM]);

function hasTypeCode(identifier: Identifier, code: string): boolean {
  return (identifier.type?.coding ?? []).some(
    (c) => c.code === code && (c.system === undefined || TYPE_SYSTEMS.has(c.system)),
  );
}

/**
 * The national identifiers of a Practitioner, whichever convention it uses: the current one
 * (`https://rpps.esante.gouv.fr`, fr-core type codes) or the older one (`http://rpps.fr`, interopsante
 * type codes). An identifier counts when its type code or its system says what it is. Without an idNatPS
 * identifier, the idNatPS is derived from the RPPS (`8` + RPPS).
 */
export function nationalIdentifiers(practitioner: Practitioner): {
  idNatPs: string | null;
  rpps: string | null;
} {
  let idNatPs: string | null = null;
  let rpps: string | null = null;
  for (const identifier of practitioner.identifier ?? []) {
    const value = identifier.value?.trim();
    if (!value) continue;
    if (hasTypeCode(identifier, 'IDNPS') || identifier.system === ID_NAT_PS_SYSTEM) idNatPs ??= value;
    else if (hasTypeCode(identifier, 'RPPS') || (identifier.system && RPPS_SYSTEMS.has(identifier.system)))
      rpps ??= value;
  }
  if (idNatPs === null && rpps !== null) idNatPs = `8${rpps}`;
  return { idNatPs, rpps };
}

/** The id a relative or absolute reference points to (`Practitioner/123`, `https://…/Practitioner/123/_history/2`). */
export function referencedId(reference: Reference | undefined, resourceType: string): string | null {
  const parts = (reference?.reference ?? '').split('/');
  const at = parts.lastIndexOf(resourceType);
  return at >= 0 && parts[at + 1] ? (parts[at + 1] as string) : null;
}

/** The MOS table of a code system (`…/NOS/TRE_R21-Fonction/…` → `TRE_R21`), or null. */
function mosTable(system: string | undefined): string | null {
  return /\/NOS\/(TRE_[A-Z0-9]+)-/.exec(system ?? '')?.[1] ?? null;
}

function codingIn(concepts: readonly CodeableConcept[] | undefined, system: string): Coding | undefined {
  for (const concept of concepts ?? []) {
    const coding = concept.coding?.find((c) => c.system === system && c.code);
    if (coding) return coding;
  }
  return undefined;
}

function latest(a: Date | null, value: string | undefined): Date | null {
  if (!value) return a;
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return a;
  return a === null || date > a ? date : a;
}

/**
 * Merges Practitioners (with their PractitionerRoles) into one record per idNatPS. Names and profession
 * come from the first active Practitioner in technical id order (the first one when none is active);
 * role codes from the active roles of every Practitioner of the professional. Roles whose Practitioner
 * is not among `practitioners` are ignored.
 */
export function toNationalProfessionals(
  practitioners: Iterable<Practitioner>,
  roles: Iterable<PractitionerRole>,
): Map<string, NationalProfessional> {
  const byIdNat = new Map<string, Practitioner[]>();
  const idNatOfPractitioner = new Map<string, string>();
  for (const practitioner of practitioners) {
    const { idNatPs } = nationalIdentifiers(practitioner);
    if (idNatPs === null) continue;
    const group = byIdNat.get(idNatPs) ?? [];
    if (!group.some((p) => p.id === practitioner.id)) group.push(practitioner);
    byIdNat.set(idNatPs, group);
    idNatOfPractitioner.set(practitioner.id, idNatPs);
  }
  const rolesByIdNat = new Map<string, Map<string, PractitionerRole>>();
  for (const role of roles) {
    const practitionerId = referencedId(role.practitioner, 'Practitioner');
    const idNatPs = practitionerId === null ? undefined : idNatOfPractitioner.get(practitionerId);
    if (idNatPs === undefined) continue;
    const group = rolesByIdNat.get(idNatPs) ?? new Map<string, PractitionerRole>();
    group.set(role.id, role);
    rolesByIdNat.set(idNatPs, group);
  }

  const result = new Map<string, NationalProfessional>();
  for (const [idNatPs, group] of byIdNat) {
    group.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const active = group.filter((p) => p.active !== false);
    const chosen = (active[0] ?? group[0]) as Practitioner;
    const name = chosen.name?.[0];
    const qualifications = chosen.qualification?.map((q) => q.code ?? {});
    const profession = codingIn(qualifications, PROFESSION_SYSTEM);
    const category = codingIn(qualifications, CATEGORY_SYSTEM);
    let lastUpdated: Date | null = null;
    let rpps: string | null = null;
    for (const practitioner of group) {
      lastUpdated = latest(lastUpdated, practitioner.meta?.lastUpdated);
      rpps ??= nationalIdentifiers(practitioner).rpps;
    }
    const codes = new Set<string>();
    let activeRoleCount = 0;
    for (const role of rolesByIdNat.get(idNatPs)?.values() ?? []) {
      lastUpdated = latest(lastUpdated, role.meta?.lastUpdated);
      if (role.active === false) continue;
      activeRoleCount++;
      for (const concept of role.code ?? []) {
        for (const coding of concept.coding ?? []) {
          const table = mosTable(coding.system);
          if (table && coding.code) codes.add(`${table}:${coding.code}`);
        }
      }
    }
    result.set(idNatPs, {
      idNatPs,
      rpps: rpps ?? rppsOf(idNatPs),
      active: active.length > 0,
      familyName: name?.family ?? null,
      givenName: name?.given?.length ? name.given.join(' ') : null,
      professionCode: profession?.code ?? null,
      professionLabel: profession?.display ?? null,
      categoryCode: category?.code ?? null,
      roleCodes: [...codes].sort(),
      activeRoleCount,
      lastUpdated,
      practitionerIds: group.map((p) => p.id),
    });
  }
  return result;
}
