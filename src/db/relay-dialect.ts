import { connect, type Socket } from 'node:net';
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
import {
  FrameReader,
  frame,
  type RelayRequest,
  type RelayResponse,
  type RelayResult,
} from './relay-frames.ts';

type Request = { op: 'acquire' | 'release' } | { op: 'query'; sql: string; parameters: readonly unknown[] };

/** One socket to the relay of the process that owns the embedded database; requests answered in order. */
class RelayChannel {
  readonly #socket: Socket;
  readonly #reader = new FrameReader();
  readonly #pending = new Map<
    number,
    { resolve: (r: RelayResult | undefined) => void; reject: (e: Error) => void }
  >();
  #next = 1;
  #lost: Error | undefined;

  constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      let messages: unknown[];
      try {
        messages = this.#reader.push(chunk);
      } catch (err) {
        socket.destroy(err as Error);
        return;
      }
      for (const message of messages) this.#answer(message as RelayResponse);
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.#lost ??= new Error(
        'the connection to the Passerelle server that owns the embedded database was lost (server stopped?)',
      );
      for (const { reject } of this.#pending.values()) reject(this.#lost);
      this.#pending.clear();
    });
  }

  static open(path: string): Promise<RelayChannel> {
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RelayChannel(socket));
      });
    });
  }

  request(request: Request): Promise<RelayResult | undefined> {
    if (this.#lost) return Promise.reject(this.#lost);
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#socket.write(frame({ ...request, id } as RelayRequest));
    });
  }

  #answer(response: RelayResponse): void {
    const pending = this.#pending.get(response.id);
    if (!pending) return;
    this.#pending.delete(response.id);
    if (response.ok) pending.resolve(response.result);
    else {
      const { message, ...fields } = response.error;
      pending.reject(Object.assign(new Error(message), fields));
    }
  }

  close(): Promise<void> {
    this.#lost ??= new Error('the relay connection is closed');
    if (this.#socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      this.#socket.once('close', () => resolve());
      this.#socket.end();
    });
  }
}

class RelayConnection implements DatabaseConnection {
  readonly #channel: RelayChannel;
  constructor(channel: RelayChannel) {
    this.#channel = channel;
  }

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    const result = await this.#channel.request({ op: 'query', sql: query.sql, parameters: query.parameters });
    return {
      rows: (result?.rows ?? []) as R[],
      numAffectedRows: result?.numAffectedRows,
      insertId: result?.insertId,
    };
  }

  // biome-ignore lint/correctness/useYield: streaming is not supported through the relay
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('streaming queries are not supported through the embedded database relay');
  }
}

/** One connection, like the embedded driver: a FIFO keeps this process's transactions from interleaving. */
class RelayDriver implements Driver {
  readonly #channel: RelayChannel;
  readonly #connection: RelayConnection;
  #queue: Promise<void> = Promise.resolve();
  #release: (() => void) | undefined;

  constructor(channel: RelayChannel) {
    this.#channel = channel;
    this.#connection = new RelayConnection(channel);
  }

  async init(): Promise<void> {}

  async acquireConnection(): Promise<DatabaseConnection> {
    const previous = this.#queue;
    let release!: () => void;
    this.#queue = new Promise<void>((resolve) => {
      release = resolve;
    });
    await previous;
    try {
      // The server's database is this process's until the release: a transaction stays whole.
      await this.#channel.request({ op: 'acquire' });
    } catch (err) {
      release();
      throw err;
    }
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
    try {
      await this.#channel.request({ op: 'release' });
    } finally {
      release?.();
    }
  }

  async destroy(): Promise<void> {
    await this.#channel.close();
  }
}

/**
 * Kysely on the embedded database of another process (the running server), through its relay socket
 * (see relay-server.ts): what `passerelle` commands use while the server owns the data directory.
 */
export class RelayDialect implements Dialect {
  readonly #channel: RelayChannel;
  private constructor(channel: RelayChannel) {
    this.#channel = channel;
  }

  /** Connects to the relay at `path`; rejects (ENOENT, ECONNREFUSED) when no relay listens there. */
  static async connect(path: string): Promise<RelayDialect> {
    return new RelayDialect(await RelayChannel.open(path));
  }

  /** Closes the socket (Kysely's destroy reaches the driver only once a statement has run). */
  close(): Promise<void> {
    return this.#channel.close();
  }

  createAdapter() {
    return new PostgresAdapter();
  }
  createDriver(): Driver {
    return new RelayDriver(this.#channel);
  }
  createIntrospector(db: Kysely<unknown>) {
    return new PostgresIntrospector(db);
  }
  createQueryCompiler() {
    return new PostgresQueryCompiler();
  }
}

/** Whether a relay answers at `path` (a server owns the directory). */
export async function relayAnswers(path: string): Promise<boolean> {
  const channel = await RelayChannel.open(path).catch(() => undefined);
  await channel?.close();
  return channel !== undefined;
}
