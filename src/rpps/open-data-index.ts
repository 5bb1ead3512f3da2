import type { Kysely, Selectable } from 'kysely';
import type { Database, RppsIndexEntryTable } from '../db/types.ts';
import { foldName } from './names.ts';
import type { ImportSummary } from './open-data.ts';

/** What the open-data extract says of one national identifier (all its activities folded into one). */
export interface IndexEntry {
  idNat: string;
  /** The RPPS number for an RPPS-based identifier, else null (ADELI…). */
  rpps: string | null;
  familyName: string;
  givenName: string;
  professionCode: string | null;
  professionLabel: string | null;
  categoryCode: string | null;
  activityCount: number;
}

export interface IndexGeneration {
  generation: number;
  fileName: string;
  completedAt: Date;
  summary: ImportSummary;
}

/** Identifiers per query (well under the 65,535 parameters of one statement). */
const LOOKUP_CHUNK = 1000;

/**
 * Read side of the local index of the open-data extract: the current generation only. Each query joins the
 * current generation in the same statement, so a concurrent import switching generations never makes a
 * query see a mix, or nothing.
 */
export class OpenDataIndex {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async current(): Promise<IndexGeneration | undefined> {
    const row = await this.#db
      .selectFrom('rpps_index_import')
      .select(['generation', 'file_name', 'completed_at', 'summary'])
      .where('is_current', '=', true)
      .executeTakeFirst();
    if (!row?.completed_at) return undefined;
    return {
      generation: row.generation,
      fileName: row.file_name,
      completedAt: row.completed_at,
      summary: row.summary as unknown as ImportSummary,
    };
  }

  /** The entries of these identifiers (idNatPS), by identifier; unknown ones are absent from the map. */
  async findByIdNats(ids: readonly string[]): Promise<Map<string, IndexEntry>> {
    const found = new Map<string, IndexEntry>();
    const unique = [...new Set(ids)];
    for (let i = 0; i < unique.length; i += LOOKUP_CHUNK) {
      const rows = await this.#currentEntries()
        .where('e.id_nat', 'in', unique.slice(i, i + LOOKUP_CHUNK))
        .execute();
      for (const row of rows) found.set(row.id_nat, toEntry(row));
    }
    return found;
  }

  /**
   * Entries whose folded family name equals the folded `family`, and whose folded given name equals the
   * folded `given`, or the first word of either equals the other (the extract and local directories do not
   * always carry every given name: "Jean" matches "Jean-Éric" and "Jean Pierre" matches "Jean").
   */
  async findByNames(family: string, given: string): Promise<IndexEntry[]> {
    const familyFolded = foldName(family);
    const givenFolded = foldName(given);
    if (familyFolded === '' || givenFolded === '') return [];
    const givenFirst = givenFolded.split(' ')[0] as string;
    const rows = await this.#currentEntries()
      .where('e.family_folded', '=', familyFolded)
      .where((eb) =>
        eb.or([
          eb('e.given_folded', 'in', [givenFolded, givenFirst]),
          // Folded names hold only A-Z, 0-9 and single spaces: nothing to escape in the pattern.
          eb('e.given_folded', 'like', `${givenFolded} %`),
        ]),
      )
      .orderBy('e.id_nat')
      .execute();
    return rows.map(toEntry);
  }

  #currentEntries() {
    return this.#db
      .selectFrom('rpps_index_entry as e')
      .innerJoin('rpps_index_import as i', (join) =>
        join.onRef('i.generation', '=', 'e.generation').on('i.is_current', '=', true),
      )
      .selectAll('e');
  }
}

function toEntry(row: Selectable<RppsIndexEntryTable>): IndexEntry {
  return {
    idNat: row.id_nat,
    rpps: row.rpps,
    familyName: row.family_name,
    givenName: row.given_name,
    professionCode: row.profession_code,
    professionLabel: row.profession_label,
    categoryCode: row.category_code,
    activityCount: row.activity_count,
  };
}
