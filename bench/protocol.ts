/** Messages between the benchmark driver (parent) and the server process (child), over the IPC channel. */
import type { ClientMetadata } from '../src/oidc/clients.ts';
import type { QuerySnapshot } from './queries.ts';

export interface BenchUser {
  username: string;
  password: string;
}

export type Command =
  | { type: 'setup'; clients: ClientMetadata[]; users: BenchUser[] }
  /** Registers a smart card certificate (DER, base64) for the account (CardCertificates.register). */
  | { type: 'register-card'; username: string; certificate: string }
  /** Stores a WebAuthn credential (id base64url, COSE public key base64) for the account. */
  | { type: 'add-webauthn-key'; username: string; credentialId: string; publicKey: string }
  | { type: 'stats' }
  | { type: 'trace-start' }
  | { type: 'trace-stop' }
  | { type: 'logs' }
  | { type: 'stop' };

export interface ServerStats {
  queries: QuerySnapshot;
  /** HTTP requests received by the server since it started. */
  httpRequests: number;
  /** Garbage-collection pauses since the start (maxMs: the longest since the previous stats call). */
  gc: { count: number; totalMs: number; maxMs: number };
  /** process.memoryUsage() of the server, MiB. */
  memory: Record<string, number>;
}

export interface Replies {
  setup: null;
  'register-card': null;
  'add-webauthn-key': null;
  stats: ServerStats;
  'trace-start': null;
  'trace-stop': string[];
  logs: string[];
  stop: null;
}

export type Request = Command & { id: number };
export type Reply = { id: number; result?: unknown; error?: string };
export type Ready = { type: 'ready'; issuer: string; pid: number };
