import { isAbsolute, join, relative } from 'node:path';
import { deserialize, serialize } from 'node:v8';

/**
 * The embedded-database relay's wire format: length-prefixed frames of V8-serialised messages, which keep
 * what the driver exchanges (Date, Buffer/Uint8Array, bigint, JSON values) as they are.
 */
export type RelayRequest =
  | { id: number; op: 'acquire' | 'release' }
  | { id: number; op: 'query'; sql: string; parameters: readonly unknown[] };

export type RelayResponse =
  | { id: number; ok: true; result?: RelayResult }
  | { id: number; ok: false; error: RelayError };

export interface RelayResult {
  rows: unknown[];
  numAffectedRows?: bigint;
  insertId?: bigint;
}

/** A database error's message and fields (SQLSTATE code, constraint, detail…), without its stack. */
export type RelayError = { message: string } & Record<string, string | number | boolean | undefined>;

/** The relay's socket, inside the data directory. */
export const RELAY_SOCKET = 'passerelle.sock';

/** A Unix socket path is limited to 107 bytes: the shorter of the absolute and the relative path. */
const MAX_SOCKET_PATH = 107;

export function relaySocketPath(dataDir: string): string | undefined {
  const absolute = join(isAbsolute(dataDir) ? dataDir : join(process.cwd(), dataDir), RELAY_SOCKET);
  const fromHere = relative(process.cwd(), absolute);
  const shortest = fromHere.length < absolute.length ? fromHere : absolute;
  return Buffer.byteLength(shortest) <= MAX_SOCKET_PATH ? shortest : undefined;
}

/** One frame too large to be a statement or its rows: a peer that is not the relay. */
const MAX_FRAME = 256 * 1024 * 1024;

export function frame(message: RelayRequest | RelayResponse): Buffer {
  const body = serialize(message);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
}

/** Reassembles frames from a byte stream. */
export class FrameReader {
  #pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): unknown[] {
    this.#pending = this.#pending.length ? Buffer.concat([this.#pending, chunk]) : chunk;
    const messages: unknown[] = [];
    while (this.#pending.length >= 4) {
      const length = this.#pending.readUInt32BE(0);
      if (length > MAX_FRAME) throw new Error(`relay frame of ${length} bytes refused`);
      if (this.#pending.length < 4 + length) break;
      messages.push(deserialize(this.#pending.subarray(4, 4 + length)));
      this.#pending = this.#pending.subarray(4 + length);
    }
    return messages;
  }
}

/** The fields of a database error that callers test (code 23505…), as plain values. */
export function errorFields(err: unknown): RelayError {
  const fields: RelayError = { message: err instanceof Error ? err.message : String(err) };
  if (err && typeof err === 'object') {
    for (const [key, value] of Object.entries(err)) {
      if (key === 'stack' || key === 'message') continue;
      if (['string', 'number', 'boolean'].includes(typeof value))
        fields[key] = value as string | number | boolean;
    }
  }
  return fields;
}
