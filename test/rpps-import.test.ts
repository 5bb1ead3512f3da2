import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProgressLine } from '../src/cli/context.ts';
import { importProgressLine } from '../src/cli/rpps.ts';
import { connectDatabase, type DatabaseHandle } from '../src/db/connect.ts';
import { migrateToLatest } from '../src/db/migrate.ts';
import {
  IMPORT_LOCK_NAME,
  type ImportOutcome,
  type ImportSummary,
  importOpenData,
  importOpenDataFile,
  MALFORMED_LISTED,
} from '../src/rpps/open-data.ts';
import { OpenDataIndex } from '../src/rpps/open-data-index.ts';
import { cleanEnv, embeddedCli, forCommands, runCli } from './helpers/cli.ts';
import { createTestDatabase, databasesUnderTest, type TestDatabase } from './helpers/databases.ts';
import { fixtureRpps, generateProfessionals } from './simulators/annuaire/fixtures.ts';
import { OPEN_DATA_COLUMNS, writeOpenDataFile } from './simulators/annuaire/open-data-file.ts';

const EXTRACT = 'PS_LibreAcces_Personne_activite_202611010000.txt';

/** One line of an extract with these values (other columns empty), trailing `|` included. */
function extractLine(values: Record<string, string>, columns: readonly string[] = OPEN_DATA_COLUMNS): string {
  return `${columns.map((c) => values[c] ?? '').join('|')}|`;
}

function personValues(idNat: string, family: string, given: string): Record<string, string> {
  return {
    "Type d'identifiant PP": idNat.slice(0, 1),
    'Identifiant PP': idNat.slice(1),
    'Identification nationale PP': idNat,
    "Nom d'exercice": family,
    "Prénom d'exercice": given,
    'Code profession': '10',
    'Libellé profession': 'Médecin',
    'Code catégorie professionnelle': 'C',
    'Raison sociale site': 'CHU de Rennes',
  };
}

function imported(outcome: ImportOutcome): ImportSummary {
  if (outcome.kind !== 'imported') throw new Error(`refused: ${outcome.reason}`);
  return outcome.summary;
}

async function* chunksOf(bytes: Buffer, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

for (const kind of databasesUnderTest()) {
  describe(`open-data import (${kind})`, () => {
    let database: TestDatabase;
    let handle: DatabaseHandle;
    let index: OpenDataIndex;
    let dir: string;

    beforeAll(async () => {
      database = await createTestDatabase(kind);
      handle = await connectDatabase({
        database: { url: database.url, dataDir: database.dataDir, poolSize: 4 },
      });
      await migrateToLatest(handle.db);
      index = new OpenDataIndex(handle.db);
      dir = mkdtempSync(join(tmpdir(), 'passerelle-rpps-import-'));
    });
    afterAll(async () => {
      await handle?.close();
      await database?.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    const file = (name: string) => join(dir, name);
    const generationTables = async () =>
      (
        await sql<{ tablename: string }>`
          select tablename from pg_tables
          where schemaname = current_schema() and tablename ~ '^rpps_index_entry_[0-9]+$'
          order by tablename`.execute(handle.db)
      ).rows.map((r) => r.tablename);
    const importRows = () =>
      handle.db
        .selectFrom('rpps_index_import')
        .select(['generation', 'is_current'])
        .orderBy('generation')
        .execute()
        .then((rows) => rows.map((r) => [r.generation, r.is_current]));

    it('imports a generated extract: one entry per identifier, with its activities counted', async () => {
      const path = file(EXTRACT);
      const written = await writeOpenDataFile(path, { count: 300, seed: 7 });
      const summary = imported(await importOpenDataFile(handle.db, path));
      expect(summary).toMatchObject({
        file: EXTRACT,
        lines: written.lines,
        rows: written.rows,
        persons: written.persons,
        malformed: 0,
        malformedLines: [],
      });
      expect(written.rows).toBeGreaterThan(written.persons);
      const current = await index.current();
      expect(current).toMatchObject({ generation: summary.generation, fileName: EXTRACT, summary });
      expect(current?.completedAt).toBeInstanceOf(Date);

      const found = await index.findByIdNats([...written.sample.map((p) => p.idNat), '810000000000']);
      expect(found.size).toBe(written.sample.length);
      for (const p of written.sample) {
        expect(found.get(p.idNat)).toEqual({
          idNat: p.idNat,
          rpps: p.rpps,
          familyName: p.familyName,
          givenName: p.givenName,
          professionCode: p.professionCode,
          professionLabel: p.professionLabel,
          categoryCode: p.categoryCode,
          activityCount: p.rows,
        });
      }
      expect(written.sample.some((p) => p.rows > 1)).toBe(true);
      expect(await generationTables()).toEqual([`rpps_index_entry_${summary.generation}`]);
    });

    it('finds entries by folded names: accents, case, hyphens, first given name', async () => {
      const path = file('names.txt');
      const rows = [
        personValues(`8${fixtureRpps(1)}`, 'LÉVÊQUE', 'Jean-Éric'),
        personValues(`8${fixtureRpps(2)}`, 'LEVEQUE', 'Jean'),
        personValues(`8${fixtureRpps(3)}`, 'LÉVÊQUE', 'Jeanne'),
        personValues(`8${fixtureRpps(4)}`, "N'DIAYE", 'Fatou'),
        personValues(`8${fixtureRpps(5)}`, 'LÉVÊQUE-MARTIN', 'Jean'),
      ];
      writeFileSync(path, `${OPEN_DATA_COLUMNS.join('|')}|\n${rows.map((r) => extractLine(r)).join('\n')}\n`);
      imported(await importOpenDataFile(handle.db, path));
      const idNats = (entries: { idNat: string }[]) => entries.map((e) => e.idNat);

      // "Jean" matches "JEAN" and "Jean-Éric" (first given name), not "Jeanne" nor another family name.
      expect(idNats(await index.findByNames('Lévêque', 'jean'))).toEqual([
        `8${fixtureRpps(1)}`,
        `8${fixtureRpps(2)}`,
      ]);
      // All given names locally, the first one only in the extract.
      expect(idNats(await index.findByNames('LEVEQUE', 'Jean Pierre'))).toEqual([`8${fixtureRpps(2)}`]);
      expect(idNats(await index.findByNames('leveque', 'JEAN ERIC'))).toEqual([
        `8${fixtureRpps(1)}`,
        `8${fixtureRpps(2)}`,
      ]);
      expect(idNats(await index.findByNames('Lévêque Martin', 'Jean'))).toEqual([`8${fixtureRpps(5)}`]);
      expect(idNats(await index.findByNames('N DIAYE', 'fatou'))).toEqual([`8${fixtureRpps(4)}`]);
      expect(await index.findByNames('Lévêque', 'Éric')).toEqual([]);
      expect(await index.findByNames('', 'Jean')).toEqual([]);
      const [entry] = await index.findByNames("n'diaye", 'Fatou');
      expect(entry).toMatchObject({ familyName: "N'DIAYE", givenName: 'Fatou', activityCount: 1 });
    });

    it('adds up the activities of a person whose rows are not consecutive, across batches too', async () => {
      const a = `8${fixtureRpps(10)}`;
      const b = `8${fixtureRpps(11)}`;
      const adeli = '0359876543';
      // Values with the characters an array literal must escape.
      const odd = personValues(`8${fixtureRpps(12)}`, 'O"BRIEN, {X}\\Y', 'Anne');
      const lines = [a, b, a, adeli, b, a].map((id) =>
        extractLine(personValues(id, id === adeli ? 'KERVELLA' : 'MARTIN', 'Léa')),
      );
      const bytes = Buffer.from(
        `${OPEN_DATA_COLUMNS.join('|')}|\n${[...lines, extractLine(odd)].join('\n')}\n`,
      );
      // One statement per entry, and chunks shorter than a line: the repeated rows land in later batches.
      for (const [batchSize, chunkSize] of [
        [1, 100],
        [1000, 1 << 16],
      ] as const) {
        const summary = imported(
          await importOpenData(
            handle.db,
            { fileName: 'interleaved.txt', chunks: chunksOf(bytes, chunkSize) },
            { batchSize },
          ),
        );
        expect(summary).toMatchObject({ rows: 7, persons: 4, malformed: 0 });
        const found = await index.findByIdNats([a, b, adeli, odd['Identification nationale PP'] as string]);
        expect(found.get(a)?.activityCount).toBe(3);
        expect(found.get(b)?.activityCount).toBe(2);
        expect(found.get(adeli)).toMatchObject({ rpps: null, familyName: 'KERVELLA', activityCount: 1 });
        expect(found.get(odd['Identification nationale PP'] as string)?.familyName).toBe('O"BRIEN, {X}\\Y');
      }
    });

    it('locates columns by name: reordered and unknown columns are tolerated', async () => {
      const path = file('reordered.txt');
      const written = await writeOpenDataFile(path, {
        count: 40,
        seed: 11,
        columns: [...OPEN_DATA_COLUMNS].reverse(),
        extraColumns: ['Code nouvelle rubrique', 'Libellé nouvelle rubrique'],
      });
      expect(readFileSync(path, 'utf8')).toMatch(/^Libellé genre activité\|Code genre activité\|/);
      const summary = imported(await importOpenDataFile(handle.db, path));
      expect(summary).toMatchObject({ persons: written.persons, malformed: 0 });
      const found = await index.findByIdNats(written.sample.map((p) => p.idNat));
      for (const p of written.sample) {
        expect(found.get(p.idNat)).toMatchObject({ familyName: p.familyName, activityCount: p.rows });
      }
    });

    it('reads CRLF line endings and a byte order mark, in chunks cut anywhere', async () => {
      const path = file('crlf.txt');
      const written = await writeOpenDataFile(path, { count: 60, seed: 3, lineEnding: '\r\n', bom: true });
      const bytes = readFileSync(path);
      expect([...bytes.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
      // 7-byte chunks split the BOM, accented letters and CR LF pairs.
      const summary = imported(
        await importOpenData(handle.db, { fileName: 'crlf.txt', chunks: chunksOf(bytes, 7) }),
      );
      expect(summary).toMatchObject({ lines: written.lines, persons: written.persons, malformed: 0 });
      const found = await index.findByIdNats(written.sample.map((p) => p.idNat));
      for (const p of written.sample) {
        expect(found.get(p.idNat)).toMatchObject({
          familyName: p.familyName,
          givenName: p.givenName,
          categoryCode: p.categoryCode,
        });
      }
    });

    it('skips malformed lines and reports them with their line numbers', async () => {
      const path = file('malformed.txt');
      const written = await writeOpenDataFile(path, { count: 100, seed: 5, malformed: [3, 10, 25] });
      const summary = imported(await importOpenDataFile(handle.db, path));
      expect(summary.malformed).toBe(3);
      expect(summary.malformedLines).toEqual([
        { line: 3, reason: `${OPEN_DATA_COLUMNS.length} fields instead of ${OPEN_DATA_COLUMNS.length + 1}` },
        { line: 10, reason: expect.stringMatching(/^invalid RPPS \d{11}$/) },
        { line: 25, reason: 'empty Identification nationale PP' },
      ]);
      expect(summary.persons).toBe(written.persons);
      expect(written.malformed.map((m) => m.kind)).toEqual([
        'missing-field',
        'bad-luhn',
        'missing-identifier',
      ]);

      // A row whose identifier disagrees with its type and number, a line far too long (whatever the chunks,
      // memory stays bounded), and a last line cut short (a truncated file).
      const more = file('malformed-more.txt');
      const good = extractLine(personValues(`8${fixtureRpps(20)}`, 'ROBIN', 'Zoé'));
      const mismatch = extractLine({
        ...personValues(`8${fixtureRpps(21)}`, 'ROBIN', 'Zoé'),
        'Identification nationale PP': `8${fixtureRpps(22)}`,
      });
      const after = extractLine(personValues(`8${fixtureRpps(23)}`, 'ROBIN', 'Léon'));
      const lines = [good, '', mismatch, 'x'.repeat(70_000), after, good.slice(0, 60)];
      writeFileSync(more, `${OPEN_DATA_COLUMNS.join('|')}|\n${lines.join('\n')}`);
      const bytes = readFileSync(more);
      for (const chunkSize of [4096, 1 << 16]) {
        const source = { fileName: 'malformed-more.txt', chunks: chunksOf(bytes, chunkSize) };
        const second = imported(await importOpenData(handle.db, source));
        expect(second).toMatchObject({ lines: 7, rows: 5, persons: 2, malformed: 3 });
        expect(second.malformedLines).toEqual([
          { line: 4, reason: `invalid Identification nationale PP 8${fixtureRpps(22)}` },
          { line: 5, reason: 'longer than 65536 bytes' },
          { line: 7, reason: expect.stringMatching(/^\d+ fields instead of 57$/) },
        ]);
        expect([
          ...(await index.findByIdNats([`8${fixtureRpps(20)}`, `8${fixtureRpps(23)}`])).keys(),
        ]).toEqual([`8${fixtureRpps(20)}`, `8${fixtureRpps(23)}`]);
      }
    });

    it('counts every malformed line but lists the first hundred', async () => {
      const path = file('many-malformed.txt');
      const lines = Array.from({ length: 150 }, (_, i) => i + 2);
      const written = await writeOpenDataFile(path, { count: 200, seed: 9, malformed: lines });
      const summary = imported(await importOpenDataFile(handle.db, path));
      expect(summary.malformed).toBe(150);
      expect(summary.malformedLines).toHaveLength(MALFORMED_LISTED);
      expect(summary.malformedLines.map((m) => m.line)).toEqual(lines.slice(0, MALFORMED_LISTED));
      expect(summary.persons).toBe(written.persons);
    });

    it('refuses a file without a required column, naming it, and changes nothing', async () => {
      const before = await index.current();
      const rowsBefore = await importRows();
      const path = file('missing-column.txt');
      await writeOpenDataFile(path, {
        count: 10,
        columns: OPEN_DATA_COLUMNS.filter(
          (c) => c !== 'Code catégorie professionnelle' && c !== "Nom d'exercice",
        ),
      });
      expect(await importOpenDataFile(handle.db, path)).toEqual({
        kind: 'refused',
        reason: `missing-column.txt: missing columns "Nom d'exercice", "Code catégorie professionnelle"`,
      });
      const empty = file('empty.txt');
      writeFileSync(empty, '');
      expect(await importOpenDataFile(handle.db, empty)).toEqual({
        kind: 'refused',
        reason: 'empty.txt: empty file, no header line',
      });
      const binary = file('binary.txt');
      writeFileSync(binary, Buffer.alloc(70_000, 0x41));
      expect(await importOpenDataFile(handle.db, binary)).toEqual({
        kind: 'refused',
        reason: 'binary.txt: no line break in the first 65536 bytes',
      });
      const headerOnly = file('header-only.txt');
      writeFileSync(headerOnly, `${OPEN_DATA_COLUMNS.join('|')}|\n`);
      expect(await importOpenDataFile(handle.db, headerOnly)).toEqual({
        kind: 'refused',
        reason: 'header-only.txt: no well-formed row',
      });
      expect(await importOpenDataFile(handle.db, file('absent.txt'))).toEqual({
        kind: 'refused',
        reason: `${file('absent.txt')}: no such file`,
      });
      expect(await index.current()).toEqual(before);
      expect(await importRows()).toEqual(rowsBefore);
      expect(await generationTables()).toEqual([`rpps_index_entry_${before?.generation}`]);
      expect(await handle.db.selectFrom('job_lock').selectAll().execute()).toEqual([]);
    });

    it('replaces the index atomically: the old generation answers until the new one is complete', async () => {
      const first = file('first.txt');
      const second = file('second.txt');
      const old = await writeOpenDataFile(first, { count: 200, seed: 1 });
      const next = await writeOpenDataFile(second, { count: 400, seed: 2 });
      const oldGeneration = imported(await importOpenDataFile(handle.db, first)).generation;
      // Someone in both files, under another given name in the second; the professionals only in the second.
      const renamed = old.sample.find((p) =>
        next.sample.some((n) => n.idNat === p.idNat && n.givenName !== p.givenName),
      ) as (typeof old.sample)[number];
      expect(renamed).toBeDefined();
      const newGivenName = next.sample.find((n) => n.idNat === renamed.idNat)?.givenName;
      const newcomers = [...generateProfessionals({ count: 400, seed: 2 })]
        .slice(200)
        .filter((p) => p.active)
        .map((p) => p.idNatPs);

      let checks = 0;
      const summary = imported(
        await importOpenDataFile(handle.db, second, {
          batchSize: 50,
          onProgress: async () => {
            expect((await index.current())?.generation).toBe(oldGeneration);
            const found = await index.findByIdNats([renamed.idNat, ...newcomers]);
            expect([...found.keys()]).toEqual([renamed.idNat]);
            expect(found.get(renamed.idNat)?.givenName).toBe(renamed.givenName);
            checks++;
          },
        }),
      );
      expect(checks).toBeGreaterThan(2);
      expect(summary.generation).toBeGreaterThan(oldGeneration);
      expect((await index.current())?.generation).toBe(summary.generation);
      const found = await index.findByIdNats([renamed.idNat, ...newcomers]);
      expect(found.get(renamed.idNat)?.givenName).toBe(newGivenName);
      expect(found.size).toBe(1 + newcomers.length);
      // The old generation is gone; its import stays as history.
      expect(await generationTables()).toEqual([`rpps_index_entry_${summary.generation}`]);
      expect((await importRows()).filter(([, current]) => current)).toEqual([[summary.generation, true]]);
      expect(
        await handle.db.selectFrom('rpps_index_entry').select('generation').distinct().execute(),
      ).toEqual([{ generation: summary.generation }]);
    });

    it('an interrupted import leaves the current index as it was', async () => {
      const path = file('interrupted.txt');
      await writeOpenDataFile(path, { count: 400, seed: 4 });
      const before = await index.current();
      const sample = await index.findByIdNats([`8${fixtureRpps(0)}`, `8${fixtureRpps(1)}`]);

      // Aborted from the progress callback (Ctrl-C in a terminal would end the same way).
      await expect(
        importOpenDataFile(handle.db, path, {
          batchSize: 50,
          onProgress: ({ lines }) => {
            if (lines > 100) throw new Error('stop here');
          },
        }),
      ).rejects.toThrow('stop here');
      // A read error in the middle of the file.
      const bytes = readFileSync(path);
      async function* failing(): AsyncGenerator<Uint8Array> {
        yield* chunksOf(bytes.subarray(0, bytes.length >> 1), 4096);
        throw new Error('read failed');
      }
      await expect(
        importOpenData(handle.db, { fileName: 'interrupted.txt', chunks: failing() }, { batchSize: 50 }),
      ).rejects.toThrow('read failed');

      expect(await index.current()).toEqual(before);
      expect(await index.findByIdNats([`8${fixtureRpps(0)}`, `8${fixtureRpps(1)}`])).toEqual(sample);
      expect(await generationTables()).toEqual([`rpps_index_entry_${before?.generation}`]);
      expect(
        (await importRows()).every(([generation]) => (generation as number) <= (before?.generation ?? 0)),
      ).toBe(true);
      expect(await handle.db.selectFrom('job_lock').selectAll().execute()).toEqual([]);
    });

    it('the next import removes what a crashed import left, once its lease has expired', async () => {
      const before = await index.current();
      const crashed = (before?.generation ?? 0) + 1;
      await handle.db
        .insertInto('rpps_index_import')
        .values({ generation: crashed, file_name: 'crashed.txt', started_at: new Date() })
        .execute();
      await sql`create table ${sql.table(`rpps_index_entry_${crashed}`)} (like rpps_index_entry)`.execute(
        handle.db,
      );
      await handle.db
        .insertInto('job_lock')
        .values({
          name: IMPORT_LOCK_NAME,
          holder: 'crashed-host:1234:abcd',
          acquired_at: new Date(Date.now() - 600_000),
          expires_at: new Date(Date.now() - 300_000),
        })
        .execute();
      const path = file('after-crash.txt');
      await writeOpenDataFile(path, { count: 20, seed: 8 });
      const summary = imported(await importOpenDataFile(handle.db, path));
      expect(summary.generation).toBe(crashed);
      expect(await generationTables()).toEqual([`rpps_index_entry_${crashed}`]);
      expect((await index.current())?.fileName).toBe('after-crash.txt');
      expect(await handle.db.selectFrom('job_lock').selectAll().execute()).toEqual([]);
    });

    it('one import at a time: a second import is refused while the first runs', async () => {
      const path = file('concurrent.txt');
      await writeOpenDataFile(path, { count: 300, seed: 6 });
      const before = await index.current();
      let release!: () => void;
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      let started!: () => void;
      const running = new Promise<void>((resolve) => {
        started = resolve;
      });
      const first = importOpenDataFile(handle.db, path, {
        batchSize: 50,
        onProgress: async () => {
          started();
          await gate;
        },
      });
      await running;
      const second = await importOpenDataFile(handle.db, path);
      expect(second.kind).toBe('refused');
      expect(second.kind === 'refused' && second.reason).toMatch(
        /^concurrent\.txt: another import is running \(.+:\d+:[0-9a-f]{8}, since \d{4}-\d\d-\d\dT/,
      );
      expect((await index.current())?.generation).toBe(before?.generation);
      release();
      const summary = imported(await first);
      expect((await index.current())?.generation).toBe(summary.generation);
    });
  });
}

describe('passerelle rpps import', forCommands(4), () => {
  const dir = mkdtempSync(join(tmpdir(), 'passerelle-rpps-cli-'));
  const embedded = embeddedCli('passerelle-cli-rpps-');
  let postgres: TestDatabase | undefined;
  afterAll(async () => {
    embedded.remove();
    rmSync(dir, { recursive: true, force: true });
    await postgres?.drop();
  });

  it('has its help', async () => {
    const result = await runCli(['rpps', 'import', '--help'], { env: cleanEnv() });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('Usage: passerelle rpps import [options] <file>');
  });

  for (const kind of databasesUnderTest()) {
    it(`imports an extract and prints the summary (${kind})`, async () => {
      let env = embedded.env;
      if (kind === 'postgres') {
        postgres = await createTestDatabase('postgres');
        env = { ...embedded.env, DATABASE_URL: postgres.url ?? '' };
      }
      const path = join(dir, EXTRACT);
      const written = await writeOpenDataFile(path, { count: 120, seed: 12, malformed: [5, 9] });
      const result = await runCli(['rpps', 'import', path], { env });
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toMatch(
        new RegExp(
          `^imported ${EXTRACT} as generation 1 in \\d+\\.\\d s\\n` +
            `lines ${written.lines}, rows ${written.rows}, persons ${written.persons}, malformed lines 2 \\(skipped\\)\\n` +
            '  line 5: \\d+ fields instead of \\d+\\n' +
            '  line 9: invalid RPPS \\d{11}\\n$',
        ),
      );
      // Not a terminal: no progress line for an import shorter than the interval.
      expect(result.stderr).toBe('');

      const json = await runCli(['rpps', 'import', '--json', path], { env });
      expect(json.code, json.stderr).toBe(0);
      expect(JSON.parse(json.stdout)).toMatchObject({
        file: EXTRACT,
        generation: 2,
        persons: written.persons,
        malformed: 2,
        malformedLines: [{ line: 5 }, { line: 9 }],
      });

      const unusable = join(dir, 'unusable.txt');
      await writeOpenDataFile(unusable, { count: 5, columns: OPEN_DATA_COLUMNS.slice(1) });
      const refused = await runCli(['rpps', 'import', unusable], { env });
      expect(refused.code).toBe(1);
      expect(refused.stdout).toBe('');
      expect(refused.stderr).toBe(
        `rpps import: unusable.txt: missing column "Type d'identifiant PP"; the index is unchanged\n`,
      );
      const absent = await runCli(['rpps', 'import', join(dir, 'absent.txt')], { env });
      expect(absent.code).toBe(1);
      expect(absent.stderr).toBe(
        `rpps import: ${join(dir, 'absent.txt')}: no such file; the index is unchanged\n`,
      );

      const check = await connectDatabase({
        database: { url: postgres?.url, dataDir: embedded.dataDir, poolSize: 1 },
      });
      try {
        expect(await new OpenDataIndex(check.db).current()).toMatchObject({
          generation: 2,
          fileName: EXTRACT,
        });
      } finally {
        await check.close();
      }
    });
  }
});

describe('import progress on the terminal', () => {
  const stream = (isTTY: boolean) => {
    const writes: string[] = [];
    return {
      writes,
      stream: { isTTY, write: (s: string) => writes.push(s) } as unknown as NodeJS.WriteStream,
    };
  };

  it('rewrites one line on a terminal, and ends it', () => {
    const tty = stream(true);
    const progress = new ProgressLine(tty.stream);
    progress.show(importProgressLine({ lines: 1200, bytes: 3_000_000, totalBytes: 12_000_000 }));
    progress.show(importProgressLine({ lines: 2400, bytes: 6_000_000, totalBytes: 12_000_000 }));
    progress.end();
    expect(tty.writes).toEqual(['\rrpps import: 1200 lines, 3 / 12 MB (25 %)\u001b[K', '\n']);
  });

  it('writes nothing at once elsewhere (a line every few seconds)', () => {
    const log = stream(false);
    const progress = new ProgressLine(log.stream);
    progress.show(importProgressLine({ lines: 1200, bytes: 3_000_000 }));
    progress.end();
    expect(log.writes).toEqual([]);
  });
});
