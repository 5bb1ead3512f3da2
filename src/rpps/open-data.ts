/**
 * Import of the Annuaire Santé open-data extract PS_LibreAcces_Personne_activite_<yyyyMMddHHmm>.txt into
 * the local index (rpps_index_entry): one entry per national identifier, whatever its number of activities.
 *
 * The file (~2.2 million rows, one per person × activity) is streamed: `|`-separated, a header row, a
 * trailing `|` on every line, UTF-8 (a BOM is ignored), LF or CRLF. Columns are found by their header name;
 * unknown columns are ignored. Malformed lines are skipped and reported with their line numbers.
 *
 * A new import fills a new generation (a table of its own, attached as a partition of rpps_index_entry) while
 * the current one keeps answering; the switch is one transaction; the old generation's table is dropped
 * afterwards. One import at a time (a lease in job_lock).
 */
import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename } from 'node:path';
import { CompiledQuery, type Kysely, sql } from 'kysely';
import { JobLock } from '../db/job-lock.ts';
import type { Database } from '../db/types.ts';
import { isRpps, normaliseIdNat } from './identifiers.ts';
import { foldName } from './names.ts';
import type { IndexEntry } from './open-data-index.ts';

/** The header names of the columns the index needs. */
export const REQUIRED_COLUMNS = {
  idType: "Type d'identifiant PP",
  id: 'Identifiant PP',
  idNat: 'Identification nationale PP',
  familyName: "Nom d'exercice",
  givenName: "Prénom d'exercice",
  professionCode: 'Code profession',
  professionLabel: 'Libellé profession',
  categoryCode: 'Code catégorie professionnelle',
} as const;
type Field = keyof typeof REQUIRED_COLUMNS;
const FIELDS = Object.keys(REQUIRED_COLUMNS) as Field[];

export const IMPORT_LOCK_NAME = 'rpps-open-data-import';
/** Malformed lines listed in the summary (all are counted). */
export const MALFORMED_LISTED = 100;
/**
 * Entries per INSERT statement. Measured with bench/rpps-import.ts (2.2 M rows, 2 vCPU): 1000, 2000 and 5000
 * take about the same time on PostgreSQL (19–20 s) and within 8 % on PGlite (36, 34, 33.5 s); the peak RSS
 * grows with the batch (PostgreSQL: 266–274, 282–289, 286–287 MiB).
 */
export const DEFAULT_BATCH_SIZE = 1000;

export interface ImportProgress {
  /** Lines read so far, the header included. */
  lines: number;
  bytes: number;
  /** Size of the file when known. */
  totalBytes?: number;
}

export interface MalformedLine {
  /** Line number in the file (the header is line 1). */
  line: number;
  reason: string;
}

export interface ImportSummary {
  file: string;
  /** Lines read, the header included. */
  lines: number;
  /** Data rows (empty lines are not counted). */
  rows: number;
  /** Entries in the index: distinct national identifiers among the well-formed rows. */
  persons: number;
  malformed: number;
  /** The first MALFORMED_LISTED malformed lines. */
  malformedLines: MalformedLine[];
  generation: number;
  durationMs: number;
}

export type ImportOutcome =
  | { kind: 'imported'; summary: ImportSummary }
  /** Nothing changed: the current index (if any) stays current. */
  | { kind: 'refused'; reason: string };

export interface ImportOptions {
  /** Awaited after every batch; an exception aborts the import (the current index stays). */
  onProgress?: (progress: ImportProgress) => void | Promise<void>;
  /** Entries per INSERT statement. */
  batchSize?: number;
  /** Lease of the import lock, renewed while the import progresses. */
  lockSeconds?: number;
}

export interface OpenDataSource {
  /** Shown in the summary and kept with the generation. */
  fileName: string;
  chunks: AsyncIterable<Uint8Array>;
  totalBytes?: number;
}

type HeaderCheck =
  | { kind: 'ok'; positions: Int8Array; fieldCount: number }
  | { kind: 'missing'; names: string[] };

/** Positions of the required columns in a header line (position → field index, -1 when unused). */
function checkHeader(line: string): HeaderCheck {
  const names = line.split('|').map((name) => name.trim());
  const positions = new Int8Array(names.length).fill(-1);
  const missing: string[] = [];
  for (const [f, field] of FIELDS.entries()) {
    const at = names.indexOf(REQUIRED_COLUMNS[field]);
    if (at === -1) missing.push(REQUIRED_COLUMNS[field]);
    else positions[at] = f;
  }
  if (missing.length > 0) return { kind: 'missing', names: missing };
  return { kind: 'ok', positions, fieldCount: names.length };
}

/** Folding is the costly part of an entry: names repeat a lot, so recent results are kept. */
class FoldCache {
  readonly #cache = new Map<string, string>();
  fold(name: string): string {
    let folded = this.#cache.get(name);
    if (folded === undefined) {
      folded = foldName(name);
      if (this.#cache.size >= 50_000) this.#cache.clear();
      this.#cache.set(name, folded);
    }
    return folded;
  }
}

const BAR = 0x7c;
const LF = 0x0a;
const CR = 0x0d;
/** Longer lines are malformed (real ones are under 1 KiB): memory stays bounded whatever the input. */
const MAX_LINE_BYTES = 64 * 1024;

/**
 * Splits the bytes after the header into lines and fields without decoding whole lines: only the required
 * fields of each line are decoded (most of the file is addresses the index does not keep).
 */
class RowReader {
  readonly #positions: Int8Array;
  readonly #fieldCount: number;
  readonly #starts = new Int32Array(FIELDS.length);
  readonly #ends = new Int32Array(FIELDS.length);
  readonly #values = new Array<string>(FIELDS.length).fill('');
  readonly #onRow: (values: readonly string[]) => void;
  readonly #onMalformed: (line: number, reason: string) => void;
  #carry: Buffer | undefined;
  /** Inside a line longer than MAX_LINE_BYTES, already reported: its bytes are dropped up to its end. */
  #overlong = false;
  /** Lines read, the header included. */
  lines = 1;
  rows = 0;

  constructor(
    header: { positions: Int8Array; fieldCount: number },
    onRow: (values: readonly string[]) => void,
    onMalformed: (line: number, reason: string) => void,
  ) {
    this.#positions = header.positions;
    this.#fieldCount = header.fieldCount;
    this.#onRow = onRow;
    this.#onMalformed = onMalformed;
  }

  /** Reads the complete lines of `chunk`; `undefined` ends the input (a last line without LF is read). */
  push(chunk: Buffer | undefined): void {
    let buf: Buffer | undefined;
    let lineStart = 0;
    if (this.#overlong) {
      const nl = chunk?.indexOf(LF) ?? -1;
      if (nl === -1) return;
      this.#overlong = false;
      buf = chunk;
      lineStart = nl + 1;
    } else {
      const carry = this.#carry;
      this.#carry = undefined;
      buf = chunk === undefined ? carry : carry ? Buffer.concat([carry, chunk]) : chunk;
    }
    if (!buf) return;
    const positions = this.#positions;
    const fieldCount = this.#fieldCount;
    const starts = this.#starts;
    const ends = this.#ends;
    const length = buf.length;
    let fieldStart = lineStart;
    let field = 0;
    for (let i = lineStart; i < length; i++) {
      const c = buf[i];
      if (c === BAR) {
        const slot = field < fieldCount ? (positions[field] as number) : -1;
        if (slot >= 0) {
          starts[slot] = fieldStart;
          ends[slot] = i;
        }
        field++;
        fieldStart = i + 1;
      } else if (c === LF) {
        this.#line(buf, lineStart, i, fieldStart, field);
        lineStart = i + 1;
        fieldStart = lineStart;
        field = 0;
      }
    }
    if (lineStart >= length) return;
    if (chunk === undefined) this.#line(buf, lineStart, length, fieldStart, field);
    else if (length - lineStart <= MAX_LINE_BYTES) this.#carry = buf.subarray(lineStart);
    else {
      this.lines++;
      this.rows++;
      this.#onMalformed(this.lines, `longer than ${MAX_LINE_BYTES} bytes`);
      this.#overlong = true;
    }
  }

  /** One line from `start` to `end` (its LF excluded); `field` fields before the one at `lastField`. */
  #line(buf: Buffer, start: number, end: number, lastField: number, field: number): void {
    this.lines++;
    const stop = end > start && buf[end - 1] === CR ? end - 1 : end;
    if (stop === start) return;
    this.rows++;
    if (stop - start > MAX_LINE_BYTES) {
      this.#onMalformed(this.lines, `longer than ${MAX_LINE_BYTES} bytes`);
      return;
    }
    if (field < this.#fieldCount) {
      const slot = this.#positions[field] as number;
      if (slot >= 0) {
        this.#starts[slot] = lastField;
        this.#ends[slot] = stop;
      }
    }
    if (field + 1 !== this.#fieldCount) {
      this.#onMalformed(this.lines, `${field + 1} fields instead of ${this.#fieldCount}`);
      return;
    }
    const values = this.#values;
    for (let f = 0; f < values.length; f++) {
      values[f] = buf.toString('utf8', this.#starts[f], this.#ends[f]);
    }
    const problem = rowProblem(values);
    if (problem === undefined) this.#onRow(values);
    else this.#onMalformed(this.lines, problem);
  }
}

/** Why the required fields of a row are unusable, or undefined. */
function rowProblem(values: readonly string[]): string | undefined {
  const [idType = '', id = '', idNat = '', familyName = '', givenName = ''] = values;
  if (idNat === '') return `empty ${REQUIRED_COLUMNS.idNat}`;
  if (idType === '8' && !isRpps(id)) return `invalid RPPS ${id || '(empty)'}`;
  if (idNat !== `${idType}${id}` || normaliseIdNat(idNat) !== idNat) {
    return `invalid ${REQUIRED_COLUMNS.idNat} ${idNat}`;
  }
  if (familyName.includes('\uFFFD') || givenName.includes('\uFFFD')) return 'name not in UTF-8';
  return undefined;
}

/** The header line and the bytes after it; `ended` when the input has no more chunks. */
async function readHeader(
  iterator: AsyncIterator<Uint8Array>,
  counted: (bytes: number) => void,
): Promise<{ header: string | undefined; rest: Buffer | undefined; ended: boolean }> {
  let buf = Buffer.alloc(0);
  for (;;) {
    const next = await iterator.next();
    if (next.done) return { header: decodeHeader(buf), rest: undefined, ended: true };
    counted(next.value.byteLength);
    buf = Buffer.concat([buf, next.value]);
    const nl = buf.indexOf(LF);
    if (nl !== -1) {
      return { header: decodeHeader(buf.subarray(0, nl)), rest: buf.subarray(nl + 1), ended: false };
    }
    if (buf.length > MAX_LINE_BYTES) return { header: undefined, rest: undefined, ended: false };
  }
}

function decodeHeader(bytes: Buffer): string {
  return bytes
    .toString('utf8')
    .replace(/^\uFEFF/, '')
    .replace(/\r$/, '');
}

/** Loads one generation of the index from `source`; see the module comment. */
export async function importOpenData(
  db: Kysely<Database>,
  source: OpenDataSource,
  options: ImportOptions = {},
): Promise<ImportOutcome> {
  const started = performance.now();
  const batchSize = Math.max(1, options.batchSize ?? DEFAULT_BATCH_SIZE);
  const lockSeconds = options.lockSeconds ?? 300;
  const iterator = source.chunks[Symbol.asyncIterator]();
  let bytes = 0;
  const counted = (n: number) => {
    bytes += n;
  };

  // The header, before anything is written.
  const { header: headerLine, rest, ended } = await readHeader(iterator, counted);
  const refuse = async (reason: string): Promise<ImportOutcome> => {
    await iterator.return?.();
    return { kind: 'refused', reason: `${source.fileName}: ${reason}` };
  };
  if (headerLine === undefined) return refuse(`no line break in the first ${MAX_LINE_BYTES} bytes`);
  if (headerLine.trim() === '') return refuse('empty file, no header line');
  const header = checkHeader(headerLine);
  if (header.kind === 'missing') {
    const names = header.names.map((n) => `"${n}"`).join(', ');
    return refuse(`missing column${header.names.length > 1 ? 's' : ''} ${names}`);
  }

  const lock = new JobLock(db, IMPORT_LOCK_NAME, `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`);
  const acquired = await lock.acquire(lockSeconds);
  if (acquired.kind === 'held') {
    return refuse(`another import is running (${acquired.holder}, since ${acquired.since.toISOString()})`);
  }
  let generation: number | undefined;
  let loading: GenerationLoader | undefined;
  /** From the switch on, a failure may have made the generation current: it is never dropped then. */
  let switching = false;
  try {
    await dropStaleGenerations(db);
    generation = await startGeneration(db, source.fileName);
    const loader = new GenerationLoader(db, generation, batchSize);
    loading = loader;
    const malformedLines: MalformedLine[] = [];
    let malformed = 0;
    let pending: IndexEntry | undefined;
    const reader = new RowReader(
      header,
      ([idType, id, idNat = '', familyName = '', givenName = '', code, label, category]) => {
        if (pending?.idNat === idNat) {
          pending.activityCount++;
          return;
        }
        if (pending) loader.add(pending);
        pending = {
          idNat,
          rpps: idType === '8' ? (id as string) : null,
          familyName: familyName.trim(),
          givenName: givenName.trim(),
          professionCode: code || null,
          professionLabel: label || null,
          categoryCode: category || null,
          activityCount: 1,
        };
      },
      (line, reason) => {
        malformed++;
        if (malformedLines.length < MALFORMED_LISTED) malformedLines.push({ line, reason });
      },
    );
    let lastRenewal = performance.now();
    const progress = async () => {
      await options.onProgress?.({ lines: reader.lines, bytes, totalBytes: source.totalBytes });
      if (performance.now() - lastRenewal > 30_000) {
        await lock.renew(lockSeconds);
        lastRenewal = performance.now();
      }
    };

    if (rest) reader.push(rest);
    if (!ended) {
      for (;;) {
        const next = await iterator.next();
        if (next.done) break;
        counted(next.value.byteLength);
        reader.push(Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value));
        if (await loader.sendFullBatches()) await progress();
      }
    }
    reader.push(undefined);
    if (pending) loader.add(pending);
    await loader.finish();
    await progress();

    const persons = await loader.count();
    if (persons === 0) {
      await dropGeneration(db, generation);
      return refuse('no well-formed row');
    }
    await loader.index();
    const summary: ImportSummary = {
      file: source.fileName,
      lines: reader.lines,
      rows: reader.rows,
      persons,
      malformed,
      malformedLines,
      generation,
      durationMs: Math.round(performance.now() - started),
    };
    switching = true;
    await db.transaction().execute(async (trx) => {
      // Still ours (not taken over after an expired lease): checked, and held, in the switch itself.
      await new JobLock(trx, IMPORT_LOCK_NAME, lock.holder).renew(lockSeconds);
      await loader.attach(trx);
      await trx
        .updateTable('rpps_index_import')
        .set({ is_current: false })
        .where('is_current', '=', true)
        .execute();
      await trx
        .updateTable('rpps_index_import')
        .set({ is_current: true, completed_at: new Date(), summary: JSON.stringify(summary) })
        .where('generation', '=', summary.generation)
        .execute();
    });
    await dropStaleGenerations(db);
    return { kind: 'imported', summary };
  } catch (err) {
    await iterator.return?.().catch(() => {});
    // Best effort: whatever is left is removed by the next import.
    await loading?.settled();
    if (generation !== undefined && !switching) await dropGeneration(db, generation).catch(() => {});
    throw err;
  } finally {
    await lock.release().catch(() => {});
  }
}

/** importOpenData on a file; an unreadable file is refused. */
export async function importOpenDataFile(
  db: Kysely<Database>,
  path: string,
  options: ImportOptions = {},
): Promise<ImportOutcome> {
  let size: number;
  try {
    const info = await stat(path);
    if (!info.isFile()) return { kind: 'refused', reason: `${path}: not a file` };
    size = info.size;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return {
      kind: 'refused',
      reason: `${path}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`,
    };
  }
  return importOpenData(
    db,
    {
      fileName: basename(path),
      chunks: createReadStream(path, { highWaterMark: 1 << 16 }),
      totalBytes: size,
    },
    options,
  );
}

/** The table holding one generation: a partition of rpps_index_entry once complete. */
function partitionName(generation: number): string {
  return `rpps_index_entry_${generation}`;
}

async function startGeneration(db: Kysely<Database>, fileName: string): Promise<number> {
  const { generation } = await db
    .insertInto('rpps_index_import')
    .values({
      generation: sql<number>`(select coalesce(max(generation), 0) + 1 from rpps_index_import)`,
      file_name: fileName,
      started_at: new Date(),
    })
    .returning('generation')
    .executeTakeFirstOrThrow();
  // Loaded as a table of its own with only its primary key (for the upsert); the name index is built once
  // the rows are in, then the table is attached.
  const table = sql.table(partitionName(generation));
  await sql`create table ${table} (like rpps_index_entry including defaults)`.execute(db);
  await sql`alter table ${table} add primary key (generation, id_nat)`.execute(db);
  return generation;
}

/** Drops the tables of every generation but the current one, and forgets imports that never completed. */
async function dropStaleGenerations(db: Kysely<Database>): Promise<void> {
  const current = await db
    .selectFrom('rpps_index_import')
    .select('generation')
    .where('is_current', '=', true)
    .executeTakeFirst();
  const tables = await sql<{ tablename: string }>`
    select tablename from pg_tables
    where schemaname = current_schema() and tablename ~ '^rpps_index_entry_[0-9]+$'`.execute(db);
  for (const { tablename } of tables.rows) {
    if (current && tablename === partitionName(current.generation)) continue;
    await sql`drop table if exists ${sql.table(tablename)}`.execute(db);
  }
  await db.deleteFrom('rpps_index_import').where('completed_at', 'is', null).execute();
}

async function dropGeneration(db: Kysely<Database>, generation: number): Promise<void> {
  await sql`drop table if exists ${sql.table(partitionName(generation))}`.execute(db);
  await db.deleteFrom('rpps_index_import').where('generation', '=', generation).execute();
}

/**
 * Entries waiting to be inserted, by identifier: rows of one person are usually consecutive, but when they
 * are not, their activities are added up (within a batch here, across batches by the upsert). One batch is
 * built while the previous one is being inserted.
 */
class GenerationLoader {
  readonly #db: Kysely<Database>;
  readonly #generation: number;
  readonly #table: string;
  readonly #batchSize: number;
  readonly #batch = new Map<string, IndexEntry>();
  readonly #folds = new FoldCache();
  #inFlight: Promise<void> = Promise.resolve();

  constructor(db: Kysely<Database>, generation: number, batchSize: number) {
    this.#db = db;
    this.#generation = generation;
    this.#table = partitionName(generation);
    this.#batchSize = batchSize;
  }

  add(entry: IndexEntry): void {
    const known = this.#batch.get(entry.idNat);
    if (known) known.activityCount += entry.activityCount;
    else this.#batch.set(entry.idNat, entry);
  }

  /** Sends the full batches; true when something was sent. */
  async sendFullBatches(): Promise<boolean> {
    if (this.#batch.size < this.#batchSize) return false;
    while (this.#batch.size >= this.#batchSize) await this.#send(this.#take());
    return true;
  }

  /** Sends what is left and waits for every insert. */
  async finish(): Promise<void> {
    while (this.#batch.size > 0) await this.#send(this.#take());
    await this.#inFlight;
  }

  /** Waits for the insert in flight, whatever its outcome (before dropping the table of an aborted import). */
  async settled(): Promise<void> {
    await this.#inFlight.catch(() => {});
  }

  async count(): Promise<number> {
    const { rows } = await sql<{
      count: string;
    }>`select count(*) as count from ${sql.table(this.#table)}`.execute(this.#db);
    return Number(rows[0]?.count);
  }

  /** Builds the name index and the statistics of the loaded table. */
  async index(): Promise<void> {
    const table = sql.table(this.#table);
    await sql`create index ${sql.id(`${this.#table}_name_idx`)} on ${table} (family_folded, given_folded)`.execute(
      this.#db,
    );
    // The constraint spares the attachment a scan of the table.
    await sql`alter table ${table} add check (generation = ${sql.lit(this.#generation)})`.execute(this.#db);
    await sql`analyze ${table}`.execute(this.#db);
  }

  async attach(trx: Kysely<Database>): Promise<void> {
    await sql`alter table rpps_index_entry attach partition ${sql.table(this.#table)}
      for values in (${sql.lit(this.#generation)})`.execute(trx);
  }

  #take(): IndexEntry[] {
    const taken: IndexEntry[] = [];
    for (const [idNat, entry] of this.#batch) {
      if (taken.length === this.#batchSize) break;
      taken.push(entry);
      this.#batch.delete(idNat);
    }
    return taken;
  }

  /** Starts inserting `entries` once the previous insert is done: the next batch is read meanwhile. */
  async #send(entries: IndexEntry[]): Promise<void> {
    await this.#inFlight;
    const current = this.#insert(entries);
    // Awaited by the next send or by finish(); never left unhandled in between.
    current.catch(() => {});
    this.#inFlight = current;
  }

  /** One statement for the whole batch: the columns as arrays (unnest), 10 parameters whatever its size. */
  async #insert(entries: IndexEntry[]): Promise<void> {
    const idNat: string[] = [];
    const rpps: (string | null)[] = [];
    const family: string[] = [];
    const given: string[] = [];
    const familyFolded: string[] = [];
    const givenFolded: string[] = [];
    const code: (string | null)[] = [];
    const label: (string | null)[] = [];
    const category: (string | null)[] = [];
    const activities: number[] = [];
    for (const e of entries) {
      idNat.push(e.idNat);
      rpps.push(e.rpps);
      family.push(e.familyName);
      given.push(e.givenName);
      familyFolded.push(this.#folds.fold(e.familyName));
      givenFolded.push(this.#folds.fold(e.givenName));
      code.push(e.professionCode);
      label.push(e.professionLabel);
      category.push(e.categoryCode);
      activities.push(e.activityCount);
    }
    const columns = [
      idNat,
      rpps,
      family,
      given,
      familyFolded,
      givenFolded,
      code,
      label,
      category,
      activities,
    ];
    await this.#db.executeQuery(CompiledQuery.raw(this.#statement, columns));
  }

  get #statement(): string {
    return (
      `insert into ${this.#table} (generation, id_nat, rpps, family_name, given_name, family_folded, ` +
      'given_folded, profession_code, profession_label, category_code, activity_count) ' +
      `select ${this.#generation}, * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], ` +
      '$6::text[], $7::text[], $8::text[], $9::text[], $10::int[]) ' +
      'on conflict (generation, id_nat) do update ' +
      `set activity_count = ${this.#table}.activity_count + excluded.activity_count`
    );
  }
}
