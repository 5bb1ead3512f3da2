import { connect, type Socket } from 'node:net';
import {
  type CompiledQuery,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  type Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type QueryResult,
} from 'kysely';
import { SingleConnectionDriver } from './pglite-dialect.ts';
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

/** One connection, like the embedded driver; its turn also holds the server's database (a transaction stays whole). */
class RelayDriver extends SingleConnectionDriver {
  readonly #channel: RelayChannel;

  constructor(channel: RelayChannel) {
    super(new RelayConnection(channel));
    this.#channel = channel;
  }

  async init(): Promise<void> {}

  protected override async onAcquire(): Promise<void> {
    await this.#channel.request({ op: 'acquire' });
  }

  protected override async onRelease(): Promise<void> {
    await this.#channel.request({ op: 'release' });
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
