import { chmodSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { CompiledQuery, type Kysely } from 'kysely';
import { errorFields, FrameReader, frame, type RelayRequest, type RelayResponse } from './relay-frames.ts';

/**
 * A client that holds the database (in a transaction) and says nothing for this long is cut off: its
 * transaction rolls back and the server's own queries go on.
 */
const IDLE_HOLD_MS = 30_000;

export interface RelayOptions {
  /** How long a client holding the database may stay silent (default 30 s). */
  idleHoldMs?: number;
}

export interface Relay {
  close(): Promise<void>;
}

/** A connection taken from the server's driver for one relay client, until it releases it. */
interface Held {
  db: Kysely<unknown>;
  release(): Promise<void>;
}

/**
 * The embedded database's relay: the process that owns a PGlite data directory executes, on a Unix socket
 * inside it (mode 0600), the statements of `passerelle` commands run beside it. Each statement goes
 * through the owner's driver, so it is serialised with the owner's own queries; a client that acquires a
 * connection (for a transaction) holds the database alone until it releases it, or until its socket closes,
 * which rolls back what it left open.
 */
export async function startRelay(
  db: Kysely<unknown>,
  socketPath: string,
  options: RelayOptions = {},
): Promise<Relay> {
  const idleHoldMs = options.idleHoldMs ?? IDLE_HOLD_MS;
  // The lock is ours: a socket file left here is a dead owner's.
  rmSync(socketPath, { force: true });
  const clients = new Set<Promise<void>>();
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    const ended = serveClient(db, socket, idleHoldMs);
    clients.add(ended);
    void ended.finally(() => {
      clients.delete(ended);
      sockets.delete(socket);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  chmodSync(socketPath, 0o600);
  return {
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await Promise.all([...clients]);
      await closed;
      rmSync(socketPath, { force: true });
    },
  };
}

/** Holds one connection of the driver (its FIFO lock for PGlite) until `release`. */
function hold(db: Kysely<unknown>): Promise<Held> {
  return new Promise((resolve, reject) => {
    let free!: () => void;
    const freed = new Promise<void>((done) => {
      free = done;
    });
    const finished = db
      .connection()
      .execute(async (connection) => {
        resolve({
          db: connection,
          release: async () => {
            free();
            await finished;
          },
        });
        await freed;
      })
      .catch(reject);
  });
}

function serveClient(db: Kysely<unknown>, socket: Socket, idleHoldMs: number): Promise<void> {
  const reader = new FrameReader();
  let held: Held | undefined;
  let closed = false;
  let busy = false;
  let work = Promise.resolve();

  const reply = (response: RelayResponse) => {
    if (!closed) socket.write(frame(response));
  };
  const letGo = async (rollback: boolean) => {
    const current = held;
    held = undefined;
    if (!current) return;
    if (rollback) await current.db.executeQuery(CompiledQuery.raw('rollback')).catch(() => {});
    await current.release();
  };
  const handle = async (message: unknown) => {
    const request = message as RelayRequest;
    if (!request || typeof request !== 'object' || typeof request.id !== 'number') {
      socket.destroy();
      return;
    }
    const { id } = request;
    busy = true;
    try {
      if (request.op === 'acquire') {
        if (held) throw new Error('relay: a connection is already held');
        held = await hold(db);
        // Gone while it waited for its turn: give the turn back at once.
        if (closed) await letGo(false);
        else reply({ id, ok: true });
      } else if (request.op === 'release') {
        await letGo(false);
        reply({ id, ok: true });
      } else if (
        request.op === 'query' &&
        typeof request.sql === 'string' &&
        Array.isArray(request.parameters)
      ) {
        const result = await (held?.db ?? db).executeQuery(
          CompiledQuery.raw(request.sql, request.parameters),
        );
        reply({
          id,
          ok: true,
          result: { rows: result.rows, numAffectedRows: result.numAffectedRows, insertId: result.insertId },
        });
      } else {
        throw new Error('relay: unknown request');
      }
    } catch (err) {
      reply({ id, ok: false, error: errorFields(err) });
    } finally {
      busy = false;
    }
  };

  return new Promise<void>((resolve) => {
    socket.setTimeout(idleHoldMs, () => {
      if (held && !busy) socket.destroy();
    });
    socket.on('data', (chunk: Buffer) => {
      let messages: unknown[];
      try {
        messages = reader.push(chunk);
      } catch {
        socket.destroy();
        return;
      }
      for (const message of messages) work = work.then(() => handle(message));
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      closed = true;
      work = work.then(() => letGo(true)).then(resolve, resolve);
    });
  });
}
