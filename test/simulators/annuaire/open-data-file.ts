/**
 * Generated open-data extracts (PS_LibreAcces_Personne_activite_<yyyyMMddHHmm>.txt) from the same
 * professionals as the Annuaire Santé simulator: one row per activity of each active professional (the
 * extract lists only professionals with a current activity), the real column names, `|`-separated with a
 * trailing `|`, UTF-8. Written as a stream: millions of rows in bounded memory.
 *
 *   node test/simulators/annuaire/open-data-file.ts <file> [--count 1000] [--rows N] [--seed 2026] [--crlf] [--bom]
 */
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { parseArgs } from 'node:util';
import { type Activity, generateProfessionals, type Professional } from './fixtures.ts';

/** The columns of the real extract, in their order. */
export const OPEN_DATA_COLUMNS: readonly string[] = [
  "Type d'identifiant PP",
  'Identifiant PP',
  'Identification nationale PP',
  "Code civilité d'exercice",
  "Libellé civilité d'exercice",
  'Code civilité',
  'Libellé civilité',
  "Nom d'exercice",
  "Prénom d'exercice",
  'Code profession',
  'Libellé profession',
  'Code catégorie professionnelle',
  'Libellé catégorie professionnelle',
  'Code type savoir-faire',
  'Libellé type savoir-faire',
  'Code savoir-faire',
  'Libellé savoir-faire',
  'Code mode exercice',
  'Libellé mode exercice',
  'Numéro SIRET site',
  'Numéro SIREN site',
  'Numéro FINESS site',
  'Numéro FINESS établissement juridique',
  'Identifiant technique de la structure',
  'Raison sociale site',
  'Enseigne commerciale site',
  'Complément destinataire (coord. structure)',
  'Complément point géographique (coord. structure)',
  'Numéro Voie (coord. structure)',
  'Indice répétition voie (coord. structure)',
  'Code type de voie (coord. structure)',
  'Libellé type de voie (coord. structure)',
  'Libellé Voie (coord. structure)',
  'Mention distribution (coord. structure)',
  'Bureau cedex (coord. structure)',
  'Code postal (coord. structure)',
  'Code commune (coord. structure)',
  'Libellé commune (coord. structure)',
  'Code pays (coord. structure)',
  'Libellé pays (coord. structure)',
  'Téléphone (coord. structure)',
  'Téléphone 2 (coord. structure)',
  'Télécopie (coord. structure)',
  'Adresse e-mail (coord. structure)',
  'Code Département (structure)',
  'Libellé Département (structure)',
  'Ancien identifiant de la structure',
  "Autorité d'enregistrement",
  "Code secteur d'activité",
  "Libellé secteur d'activité",
  'Code section tableau pharmaciens',
  'Libellé section tableau pharmaciens',
  'Code rôle',
  'Libellé rôle',
  'Code genre activité',
  'Libellé genre activité',
];

const DEPARTMENTS: Record<string, { label: string; city: string; commune: string }> = {
  '35': { label: 'Ille-et-Vilaine', city: 'RENNES', commune: '35238' },
  '22': { label: "Côtes-d'Armor", city: 'SAINT-BRIEUC', commune: '22278' },
  '29': { label: 'Finistère', city: 'QUIMPER', commune: '29232' },
  '56': { label: 'Morbihan', city: 'VANNES', commune: '56260' },
  '33': { label: 'Gironde', city: 'BORDEAUX', commune: '33063' },
  '75': { label: 'Paris', city: 'PARIS', commune: '75056' },
};

/** Ways a line is corrupted, in turn, for the line numbers listed in `malformed`. */
export const CORRUPTIONS = ['missing-field', 'bad-luhn', 'missing-identifier'] as const;
export type Corruption = (typeof CORRUPTIONS)[number];

export interface OpenDataFileOptions {
  /** Professionals generated (inactive ones have no row). */
  count: number;
  /** Stops after this many data rows (a file of an exact size). */
  maxRows?: number;
  seed?: number;
  /** File line numbers (the header is line 1) to corrupt, each in the next way of CORRUPTIONS. */
  malformed?: readonly number[];
  /** The header, in this order: any known column (a subset, reordered) and unknown ones (filled with `x`). */
  columns?: readonly string[];
  /** Unknown columns added after the known ones (a later version of the extract). */
  extraColumns?: readonly string[];
  lineEnding?: '\n' | '\r\n';
  /** Starts the file with a UTF-8 byte order mark. */
  bom?: boolean;
}

export interface GeneratedPerson {
  idNat: string;
  rpps: string;
  familyName: string;
  givenName: string;
  professionCode: string;
  professionLabel: string;
  categoryCode: string;
  /** Rows of this person, malformed ones included. */
  rows: number;
}

export interface OpenDataFileResult {
  /** Lines written, the header included. */
  lines: number;
  /** Data rows (lines - 1). */
  rows: number;
  /** Persons with at least one well-formed row. */
  persons: number;
  malformed: { line: number; kind: Corruption }[];
  /** The first persons written (at most 50), to look up after an import. */
  sample: GeneratedPerson[];
}

function personRow(p: Professional, a: Activity, activityIndex: number): Record<string, string> {
  const doctor = p.profession.code === '10';
  const pharmacist = p.profession.code === '21';
  const department = DEPARTMENTS[a.department] ?? { label: '', city: '', commune: '' };
  const hospital = a.finessSite !== null;
  const phone = `02${p.rpps.slice(3, 11)}`;
  return {
    "Type d'identifiant PP": '8',
    'Identifiant PP': p.rpps,
    'Identification nationale PP': p.idNatPs,
    "Code civilité d'exercice": doctor ? 'DR' : '',
    "Libellé civilité d'exercice": doctor ? 'Docteur' : '',
    'Code civilité': p.civility === 'DR' ? '' : p.civility,
    'Libellé civilité': p.civility === 'M' ? 'Monsieur' : p.civility === 'MME' ? 'Madame' : '',
    "Nom d'exercice": p.familyName.toUpperCase(),
    "Prénom d'exercice": p.givenName,
    'Code profession': p.profession.code,
    'Libellé profession': p.profession.label,
    'Code catégorie professionnelle': p.category.code,
    'Libellé catégorie professionnelle': p.category.label,
    'Code type savoir-faire': doctor ? 'S' : '',
    'Libellé type savoir-faire': doctor ? 'Spécialité ordinale' : '',
    'Code savoir-faire': doctor ? 'SM54' : '',
    'Libellé savoir-faire': doctor ? 'Médecine générale' : '',
    'Code mode exercice': a.mode.code,
    'Libellé mode exercice': a.mode.label,
    'Numéro SIRET site': a.siret ?? '',
    'Numéro SIREN site': a.siret?.slice(0, 9) ?? '',
    'Numéro FINESS site': a.finessSite ?? '',
    'Numéro FINESS établissement juridique': a.finessLegal ?? '',
    'Identifiant technique de la structure': hospital ? `F${a.finessSite}` : `C${p.rpps}${activityIndex}`,
    'Raison sociale site': a.organizationName,
    'Enseigne commerciale site': '',
    'Complément destinataire (coord. structure)': '',
    'Complément point géographique (coord. structure)': hospital ? 'Bâtiment A' : '',
    'Numéro Voie (coord. structure)': String(1 + (Number(p.rpps.slice(-3)) % 120)),
    'Indice répétition voie (coord. structure)': '',
    'Code type de voie (coord. structure)': 'R',
    'Libellé type de voie (coord. structure)': 'Rue',
    'Libellé Voie (coord. structure)': hospital ? "DE L'HÔPITAL" : 'DU GÉNÉRAL LECLERC',
    'Mention distribution (coord. structure)': '',
    'Bureau cedex (coord. structure)': `${a.department}000 ${department.city}`,
    'Code postal (coord. structure)': `${a.department}000`,
    'Code commune (coord. structure)': department.commune,
    'Libellé commune (coord. structure)': department.city,
    'Code pays (coord. structure)': '',
    'Libellé pays (coord. structure)': '',
    'Téléphone (coord. structure)': phone,
    'Téléphone 2 (coord. structure)': '',
    'Télécopie (coord. structure)': '',
    'Adresse e-mail (coord. structure)': '',
    'Code Département (structure)': a.department,
    'Libellé Département (structure)': department.label,
    'Ancien identifiant de la structure': hospital ? `1${a.finessSite}` : '',
    "Autorité d'enregistrement": doctor ? 'CNOM/CNOM/CNOM' : pharmacist ? 'CNOP/CNOP/CNOP' : 'ARS/ARS/ARS',
    "Code secteur d'activité": hospital ? 'SA01' : 'SA07',
    "Libellé secteur d'activité": hospital ? 'Etablissement public de santé' : 'Cabinet individuel',
    'Code section tableau pharmaciens': pharmacist ? 'H' : '',
    'Libellé section tableau pharmaciens': pharmacist ? 'Pharmacien des établissements de santé' : '',
    'Code rôle': a.role.code,
    'Libellé rôle': a.role.label,
    'Code genre activité': a.genre.code,
    'Libellé genre activité': a.genre.label,
  };
}

function corrupt(values: Record<string, string>, kind: Corruption): void {
  if (kind === 'bad-luhn') {
    const rpps = values['Identifiant PP'] ?? '';
    const wrong = `${rpps.slice(0, -1)}${(Number(rpps.slice(-1)) + 1) % 10}`;
    values['Identifiant PP'] = wrong;
    values['Identification nationale PP'] = `8${wrong}`;
  } else if (kind === 'missing-identifier') values['Identification nationale PP'] = '';
}

/** Writes the extract; resolves once the file is flushed. */
export async function writeOpenDataFile(
  path: string,
  options: OpenDataFileOptions,
): Promise<OpenDataFileResult> {
  const columns = [...(options.columns ?? OPEN_DATA_COLUMNS), ...(options.extraColumns ?? [])];
  const eol = options.lineEnding ?? '\n';
  const toCorrupt = new Map<number, Corruption>();
  for (const [i, line] of (options.malformed ?? []).entries()) {
    toCorrupt.set(line, CORRUPTIONS[i % CORRUPTIONS.length] as Corruption);
  }
  const out = createWriteStream(path);
  const failed = new Promise<never>((_, reject) => out.once('error', reject));
  failed.catch(() => {});
  let pending = `${options.bom ? '\uFEFF' : ''}${columns.join('|')}|${eol}`;
  const flush = async () => {
    if (!out.write(pending)) await Promise.race([once(out, 'drain'), failed]);
    pending = '';
  };
  const result: OpenDataFileResult = { lines: 1, rows: 0, persons: 0, malformed: [], sample: [] };
  const maxRows = options.maxRows ?? Number.POSITIVE_INFINITY;
  for (const p of generateProfessionals({ count: options.count, seed: options.seed })) {
    if (result.rows >= maxRows) break;
    if (!p.active) continue;
    let wellFormed = 0;
    let personRows = 0;
    for (const [index, activity] of p.activities.entries()) {
      if (result.rows >= maxRows) break;
      personRows++;
      const values = personRow(p, activity, index);
      result.lines++;
      result.rows++;
      const corruption = toCorrupt.get(result.lines);
      if (corruption) {
        corrupt(values, corruption);
        result.malformed.push({ line: result.lines, kind: corruption });
      } else wellFormed++;
      const fields = columns.map((name) => values[name] ?? 'x');
      if (corruption === 'missing-field') fields.pop();
      pending += `${fields.join('|')}|${eol}`;
      if (pending.length >= 1 << 20) await flush();
    }
    if (wellFormed > 0) result.persons++;
    if (result.sample.length < 50) {
      result.sample.push({
        idNat: p.idNatPs,
        rpps: p.rpps,
        familyName: p.familyName.toUpperCase(),
        givenName: p.givenName,
        professionCode: p.profession.code,
        professionLabel: p.profession.label,
        categoryCode: p.category.code,
        rows: personRows,
      });
    }
  }
  await flush();
  out.end();
  await Promise.race([once(out, 'finish'), failed]);
  return result;
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      count: { type: 'string', default: '1000' },
      rows: { type: 'string' },
      seed: { type: 'string', default: '2026' },
      crlf: { type: 'boolean', default: false },
      bom: { type: 'boolean', default: false },
    },
  });
  const [path] = positionals;
  if (!path)
    throw new Error('usage: open-data-file.ts <file> [--count N] [--rows N] [--seed S] [--crlf] [--bom]');
  const written = await writeOpenDataFile(path, {
    count: Number(values.count),
    maxRows: values.rows === undefined ? undefined : Number(values.rows),
    seed: Number(values.seed),
    lineEnding: values.crlf ? '\r\n' : '\n',
    bom: values.bom,
  });
  process.stdout.write(`${path}: ${written.rows} rows, ${written.persons} persons\n`);
}
