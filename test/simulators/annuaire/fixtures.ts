import { luhnKey } from '../../../src/rpps/identifiers.ts';

/**
 * Generated health professionals, deterministic for a seed: the same population feeds the Annuaire
 * Santé simulator and the generated open-data extracts. Names carry accents, hyphens and apostrophes;
 * some professionals share names (homonyms); some are no longer active.
 */

export interface Code {
  code: string;
  label: string;
}

export interface Activity {
  /** Activity (situation d'exercice) identifier. */
  id: string;
  organizationName: string;
  finessSite: string | null;
  finessLegal: string | null;
  siret: string | null;
  department: string;
  /** TRE_R21 Fonction. */
  role: Code;
  /** TRE_R22 GenreActivite. */
  genre: Code;
  /** TRE_R23 ModeExercice. */
  mode: Code;
  active: boolean;
}

export interface Professional {
  rpps: string;
  /** `8` + RPPS. */
  idNatPs: string;
  /** TRE_R11 civilité d'exercice (DR, MME, M). */
  civility: 'DR' | 'M' | 'MME';
  familyName: string;
  givenName: string;
  /** TRE_G15 ProfessionSante. */
  profession: Code;
  /** TRE_R09 CategorieProfessionnelle. */
  category: Code;
  active: boolean;
  lastUpdated: Date;
  activities: Activity[];
}

export const PROFESSIONS: readonly Code[] = [
  { code: '10', label: 'Médecin' },
  { code: '21', label: 'Pharmacien' },
  { code: '40', label: 'Chirurgien-Dentiste' },
  { code: '50', label: 'Sage-Femme' },
  { code: '60', label: 'Infirmier' },
  { code: '70', label: 'Masseur-Kinésithérapeute' },
  { code: '80', label: 'Pédicure-Podologue' },
  { code: '91', label: 'Orthophoniste' },
  { code: '96', label: 'Psychomotricien' },
  { code: '98', label: 'Manipulateur ERM' },
];
/** Weights of PROFESSIONS, roughly their share among registered professionals. */
const PROFESSION_WEIGHTS = [30, 8, 5, 3, 30, 10, 2, 5, 2, 5];

const CATEGORIES: readonly Code[] = [
  { code: 'C', label: 'Civil' },
  { code: 'M', label: 'Militaire' },
  { code: 'E', label: 'Etudiant' },
];
const ROLES: readonly Code[] = [
  { code: 'FON-AU', label: 'Autre fonction' },
  { code: 'FON-CS', label: 'Chef de service' },
  { code: 'FON-PH', label: 'Praticien hospitalier' },
  { code: 'FON-AS', label: 'Assistant' },
];
const GENRES: readonly Code[] = [
  { code: 'GENR01', label: 'Activité standard de soin ou de pharmacien' },
  { code: 'GENR02', label: 'Activité de remplacement' },
];
const MODES: readonly Code[] = [
  { code: 'S', label: 'Salarié' },
  { code: 'L', label: 'Libéral, indépendant, artisan, commerçant' },
  { code: 'B', label: 'Bénévole' },
];

const FAMILY_NAMES = [
  'Martin',
  'Bernard',
  'Dubois',
  'Thomas',
  'Robert',
  'Richard',
  'Petit',
  'Durand',
  'Leroy',
  'Moreau',
  'Simon',
  'Laurent',
  'Lefèvre',
  'Michel',
  'Garcia',
  'David',
  'Bertrand',
  'Roux',
  'Vincent',
  'Fournier',
  'Morel',
  'Girard',
  'André',
  'Lefebvre',
  'Mercier',
  'Dupont',
  'Lambert',
  'Bonnet',
  'François',
  'Martinez',
  'Legrand',
  'Garnier',
  'Faure',
  'Rousseau',
  'Blanc',
  'Guérin',
  'Müller',
  'Henry',
  'Roussel',
  'Nicolas',
  'Perrin',
  'Morin',
  'Mathieu',
  'Clément',
  'Gauthier',
  'Dumont',
  'Lopez',
  'Fontaine',
  'Chevalier',
  'Robin',
  "D'Almeida",
  "N'Diaye",
  'Le Gall',
  'Le Goff',
  'Saint-Martin',
  'Lévêque',
  'Béranger',
  'Nguyen',
  'Benali',
  'Haddad',
  'Rodrigues',
  'Œillet',
  'Coëffic',
  'Kervella',
  'Le Bihan',
  'Ould-Ahmed',
  'Étienne',
  'Hébert',
];
const GIVEN_NAMES = [
  'Marie',
  'Jean',
  'Pierre',
  'Michel',
  'André',
  'Philippe',
  'Nathalie',
  'Isabelle',
  'Sylvie',
  'Catherine',
  'Camille',
  'Léa',
  'Chloé',
  'Emma',
  'Inès',
  'Hélène',
  'Gaëlle',
  'Zoé',
  'Noémie',
  'Anaïs',
  'Jérôme',
  'François',
  'Stéphane',
  'Sébastien',
  'Frédéric',
  'Benoît',
  'Loïc',
  'Hervé',
  'Joël',
  'Cédric',
  'Amélie',
  'Jean-Éric',
  'Marie-Hélène',
  'Anne-Sophie',
  'Jean-Baptiste',
  'Pierre-Yves',
  'Marie-Françoise',
  'Yasmine',
  'Mohamed',
  'Karim',
  'Fatou',
  'Thi Lan',
  'Bérénice',
  'Maël',
  'Aurélien',
  'Céline',
  'Clémence',
  'Agnès',
];
const ORGANIZATIONS = [
  'CHU de Rennes',
  'Centre Hospitalier de Saint-Brieuc',
  'Hôpital Saint-Joseph',
  "Clinique de l'Union",
  'CH de Vannes',
  'Centre de santé Les Lilas',
  'EHPAD Les Glycines',
  'Pharmacie du Marché',
  'Cabinet médical',
  "Hôpital d'instruction des armées",
  'CHU de Bordeaux',
  'Centre Hospitalier de Quimper',
];

/** mulberry32: a small, fast, seeded PRNG (deterministic fixtures). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)] as T;
}

function weighted<T>(random: () => number, items: readonly T[], weights: readonly number[]): T {
  const total = weights.reduce((a, b) => a + b, 0);
  let r = random() * total;
  for (const [i, w] of weights.entries()) {
    r -= w;
    if (r < 0) return items[i] as T;
  }
  return items[items.length - 1] as T;
}

/** The RPPS of the n-th generated professional: `10` + 8 digits + Luhn key (unique per index). */
export function fixtureRpps(index: number): string {
  const body = `10${String(100_000 + index * 7).padStart(8, '0')}`;
  return `${body}${luhnKey(body)}`;
}

function digits(random: () => number, count: number): string {
  let out = '';
  for (let i = 0; i < count; i++) out += String(Math.floor(random() * 10));
  return out;
}

export interface FixtureOptions {
  count: number;
  seed?: number;
  /** Reference time: lastUpdated values fall within the 120 days before it. */
  now?: Date;
  /** Share of professionals no longer active (default 0.06). */
  inactiveShare?: number;
}

/** Generates `count` professionals; the i-th one is the same for the same seed whatever the count. */
export function* generateProfessionals(options: FixtureOptions): Generator<Professional> {
  const now = (options.now ?? new Date('2026-11-01T00:00:00Z')).getTime();
  const inactiveShare = options.inactiveShare ?? 0.06;
  for (let index = 0; index < options.count; index++) {
    const random = seededRandom(((options.seed ?? 2026) * 1_000_003 + index) >>> 0);
    const rpps = fixtureRpps(index);
    const profession = weighted(random, PROFESSIONS, PROFESSION_WEIGHTS);
    const active = random() >= inactiveShare;
    const activityCount = active ? 1 + Math.floor(random() * random() * 3) : 1;
    const activities: Activity[] = [];
    for (let a = 0; a < activityCount; a++) {
      const hospital = random() < 0.6;
      const finessSite = hospital ? `35${digits(random, 7)}` : null;
      activities.push({
        id: `${rpps}-${a + 1}`,
        organizationName: pick(random, ORGANIZATIONS),
        finessSite,
        finessLegal: finessSite ? `35${digits(random, 7)}` : null,
        siret: hospital ? `2635${digits(random, 10)}` : null,
        department: pick(random, ['35', '22', '29', '56', '33', '75']),
        role: hospital ? pick(random, ROLES) : (ROLES[0] as Code),
        genre: random() < 0.9 ? (GENRES[0] as Code) : (GENRES[1] as Code),
        mode: hospital ? (MODES[0] as Code) : pick(random, MODES),
        active,
      });
    }
    yield {
      rpps,
      idNatPs: `8${rpps}`,
      civility: profession.code === '10' ? 'DR' : random() < 0.5 ? 'M' : 'MME',
      familyName: pick(random, FAMILY_NAMES),
      givenName: pick(random, GIVEN_NAMES),
      profession,
      category: random() < 0.97 ? (CATEGORIES[0] as Code) : pick(random, CATEGORIES),
      active,
      lastUpdated: new Date(now - Math.floor(random() * 120 * 86_400_000)),
      activities,
    };
  }
}
