import { type PGlite, protocol } from '@electric-sql/pglite';
import {
  CompiledQuery,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  type Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type QueryResult,
  type TransactionSettings,
} from 'kysely';

const { serialize } = protocol;
const DESCRIBE_STATEMENT = serialize.describe({ type: 'S' });
const DESCRIBE_PORTAL = serialize.describe({ type: 'P' });
const EXECUTE = serialize.execute({});
const SYNC = serialize.sync();
const NO_VALUES = serialize.bind({});

interface Field {
  name: string;
  type: number;
}

/** What the backend answered to one batch of protocol messages. */
interface Response {
  rows: Record<string, unknown>[];
  affectedRows: number;
  /** The row description last received (Describe, or the portal's before its rows). */
  fields: Field[] | undefined;
  parameterTypes: number[];
  errorAt: number | undefined;
}

/** Command tags whose row count is an affected-row count (as PGlite's own result parser counts them). */
const COUNTED = new Set(['INSERT', 'UPDATE', 'DELETE', 'COPY', 'MERGE']);

/**
 * Reads the backend messages of `data`: row descriptions, data rows (each value decoded in place and
 * parsed by PGlite's parser for its type), command tags, parameter types, and where an error is.
 */
function readResponse(data: Buffer, parsers: PGlite['parsers'], described: Field[] | undefined): Response {
  const response: Response = {
    rows: [],
    affectedRows: 0,
    fields: described,
    parameterTypes: [],
    errorAt: undefined,
  };
  for (let at = 0; at + 5 <= data.length; ) {
    const code = data[at];
    const end = at + 1 + data.readInt32BE(at + 1);
    let p = at + 5;
    if (code === 0x44 /* D: data row */) {
      const fields = response.fields ?? [];
      const row: Record<string, unknown> = {};
      const count = data.readInt16BE(p);
      p += 2;
      for (let i = 0; i < count; i++) {
        const length = data.readInt32BE(p);
        p += 4;
        const field = fields[i] as Field;
        if (length < 0) row[field.name] = null;
        else {
          const text = data.toString('utf8', p, p + length);
          p += length;
          const parse = parsers[field.type];
          row[field.name] = parse ? parse(text, field.type) : text;
        }
      }
      response.rows.push(row);
    } else if (code === 0x54 /* T: row description */) {
      const count = data.readInt16BE(p);
      p += 2;
      const fields: Field[] = [];
      for (let i = 0; i < count; i++) {
        const nameEnd = data.indexOf(0, p);
        fields.push({ name: data.toString('utf8', p, nameEnd), type: data.readInt32BE(nameEnd + 7) });
        p = nameEnd + 19;
      }
      response.fields = fields;
    } else if (code === 0x74 /* t: parameter description */) {
      const count = data.readInt16BE(p);
      for (let i = 0; i < count; i++) response.parameterTypes.push(data.readInt32BE(p + 2 + 4 * i));
    } else if (code === 0x43 /* C: command complete */) {
      const words = data.toString('utf8', p, end - 1).split(' ');
      if (COUNTED.has(words[0] ?? '')) response.affectedRows += Number(words[words.length - 1]);
    } else if (code === 0x45 /* E: error */) {
      response.errorAt ??= at;
    }
    at = end;
  }
  return response;
}

/**
 * One embedded connection shared by the process: a FIFO lock keeps transactions from interleaving.
 *
 * Queries go to PGlite as raw protocol messages, batched (one exchange without parameters, two with:
 * PGlite's query() makes six), and the rows are decoded here: PGlite's own reader copies every value
 * into a new buffer first, which made reading large results several times slower. Values are
 * serialised and parsed with PGlite's serializers and parsers, errors are PGlite's error objects.
 */
class PGliteConnection implements DatabaseConnection {
  readonly #db: PGlite;
  constructor(db: PGlite) {
    this.#db = db;
  }

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    await this.#db._checkReady();
    const response = await this.#db.runExclusive(async () => {
      const result =
        query.parameters.length === 0
          ? await this.#run(
              query,
              [serialize.parse({ text: query.sql }), NO_VALUES, DESCRIBE_PORTAL, EXECUTE, SYNC],
              undefined,
            )
          : await this.#runWithParameters(query);
      await this.#db.syncToFs();
      return result;
    });
    return { rows: response.rows as R[], numAffectedRows: BigInt(response.affectedRows) };
  }

  /** Parse and Describe first: the parameters' types choose their serializers, as in PGlite's query(). */
  async #runWithParameters(query: CompiledQuery): Promise<Response> {
    const described = await this.#run(query, [serialize.parse({ text: query.sql }), DESCRIBE_STATEMENT]);
    const values = query.parameters.map((value, i) => {
      if (value === null || value === undefined) return null;
      const serializer = this.#db.serializers[described.parameterTypes[i] ?? 0];
      return serializer ? serializer(value) : (value as { toString(): string }).toString();
    });
    return this.#run(query, [serialize.bind({ values }), EXECUTE, SYNC], described.fields);
  }

  /** Sends `messages` in one exchange; on an error, ends the exchange (Sync) and throws PGlite's error. */
  async #run(query: CompiledQuery, messages: Uint8Array[], described?: Field[]): Promise<Response> {
    const chunks: Buffer[] = [];
    await this.#db.execProtocolRawStream(Buffer.concat(messages), {
      syncToFs: false,
      onRawData: (bytes) => chunks.push(Buffer.from(bytes)),
    });
    const data = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
    const response = readResponse(data, this.#db.parsers, described);
    if (response.errorAt === undefined) return response;
    if (messages.at(-1) !== SYNC) await this.#db.execProtocolRawStream(SYNC, { onRawData: () => {} });
    throw this.#error(data.subarray(response.errorAt), query);
  }

  /** The error PGlite's query() would throw: its protocol parser's DatabaseError, with the query. */
  #error(data: Buffer, query: CompiledQuery): Error {
    let error: Error | undefined;
    new protocol.Parser().parse(data, (message) => {
      if (message instanceof Error) error ??= message;
    });
    if (!error) return new Error('PGlite: unreadable error response');
    return Object.assign(error, { query: query.sql, params: [...query.parameters], queryOptions: undefined });
  }

  // biome-ignore lint/correctness/useYield: streaming is not supported by the embedded driver
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('streaming queries are not supported on PGlite');
  }
}

class PGliteDriver implements Driver {
  readonly #db: PGlite;
  readonly #connection: PGliteConnection;
  #queue: Promise<void> = Promise.resolve();
  #release: (() => void) | undefined;

  constructor(db: PGlite) {
    this.#db = db;
    this.#connection = new PGliteConnection(db);
  }

  async init(): Promise<void> {
    await this.#db.waitReady;
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    const previous = this.#queue;
    let release!: () => void;
    this.#queue = new Promise<void>((resolve) => {
      release = resolve;
    });
    await previous;
    this.#release = release;
    return this.#connection;
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    const isolation = settings.isolationLevel ? ` isolation level ${settings.isolationLevel}` : '';
    await connection.executeQuery(CompiledQuery.raw(`begin${isolation}`));
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('commit'));
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('rollback'));
  }

  async releaseConnection(): Promise<void> {
    const release = this.#release;
    this.#release = undefined;
    release?.();
  }

  async destroy(): Promise<void> {
    await this.#db.close();
  }
}

export class PGliteDialect implements Dialect {
  readonly #db: PGlite;
  constructor(db: PGlite) {
    this.#db = db;
  }
  createAdapter() {
    return new PostgresAdapter();
  }
  createDriver(): Driver {
    return new PGliteDriver(this.#db);
  }
  createIntrospector(db: Kysely<unknown>) {
    return new PostgresIntrospector(db);
  }
  createQueryCompiler() {
    return new PostgresQueryCompiler();
  }
}
