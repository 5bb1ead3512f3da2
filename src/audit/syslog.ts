import { readFileSync } from 'node:fs';
import { isIP, type Socket, connect as tcpConnect } from 'node:net';
import { hostname } from 'node:os';
import { connect as tlsConnect } from 'node:tls';
import { type Kysely, sql } from 'kysely';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import { JobLock } from '../db/job-lock.ts';
import type { Database } from '../db/types.ts';
import { type AuditRow, auditRows } from './export.ts';

export type SyslogConfig = NonNullable<Config['audit']['syslog']>;

const FACILITY_CODE: Readonly<Record<SyslogConfig['facility'], number>> = {
  auth: 4,
  authpriv: 10,
  logaudit: 13,
  local0: 16,
  local1: 17,
  local2: 18,
  local3: 19,
  local4: 20,
  local5: 21,
  local6: 22,
  local7: 23,
};
const SEVERITY = { info: 6, warning: 4 } as const;

/** SD-ID under the IANA private enterprise number placeholder (32473 is reserved for documentation). */
export const SD_ID = 'passerelle@32473';

/** Structured-data parameters: the record's columns under short names, in this order. */
const SD_PARAMS: readonly (readonly [string, keyof AuditRow])[] = [
  ['seq', 'seq'],
  ['outcome', 'outcome'],
  ['account', 'account_id'],
  ['nationalId', 'national_id'],
  ['tid', 'tid'],
  ['establishment', 'establishment'],
  ['client', 'client_id'],
  ['session', 'session_id'],
  ['interaction', 'interaction_id'],
  ['ip', 'ip'],
  ['method', 'method'],
  ['amr', 'amr'],
  ['acr', 'acr'],
  ['reason', 'reason'],
  ['request', 'request_id'],
  ['instance', 'instance_id'],
  ['hash', 'hash'],
];

/** RFC 5424 PARAM-VALUE escaping: `"`, `\` and `]` are preceded by a backslash. */
export function escapeParamValue(value: string): string {
  return value.replace(/["\\\]]/g, (c) => `\\${c}`);
}

/** Printable US-ASCII without spaces, at most `max` characters (HOSTNAME, APP-NAME, MSGID); `-` if empty. */
function header(value: string, max: number): string {
  const cleaned = value.replace(/[^\x21-\x7e]/g, '_').slice(0, max);
  return cleaned || '-';
}

export interface SyslogIdentity {
  facility: SyslogConfig['facility'];
  hostname: string;
  procId: string;
}

/**
 * One RFC 5424 message: `<PRI>1 TIMESTAMP HOSTNAME passerelle PROCID MSGID [passerelle@32473 …] MSG`,
 * PRI = facility × 8 + info (success) or warning (failure), MSGID = the event type.
 */
export function syslogMessage(row: AuditRow, identity: SyslogIdentity): string {
  const pri = FACILITY_CODE[identity.facility] * 8 + SEVERITY[row.outcome === 'success' ? 'info' : 'warning'];
  const params = SD_PARAMS.flatMap(([name, column]) => {
    const value = row[column];
    if (value === null || value === undefined) return [];
    const text = Array.isArray(value) ? value.join(' ') : String(value);
    return [`${name}="${escapeParamValue(text)}"`];
  });
  const text = [
    row.type,
    row.outcome,
    row.reason ?? undefined,
    row.method ? `method=${row.method}` : undefined,
  ]
    .filter((part) => part !== undefined)
    .join(' ');
  return [
    `<${pri}>1`,
    row.at,
    header(identity.hostname, 255),
    'passerelle',
    header(identity.procId, 128),
    header(row.type, 32),
    `[${SD_ID} ${params.join(' ')}]`,
    text,
  ].join(' ');
}

/** RFC 6587 octet-counting frame: the message's length in bytes, a space, the message. */
export function octetCountingFrame(message: string): string {
  return `${Buffer.byteLength(message, 'utf8')} ${message}`;
}

export interface ForwarderOptions {
  /** Sleep between polls when everything is delivered. */
  pollIntervalMs?: number;
  /** Lease of the forwarding lock (one instance forwards at a time), renewed at each batch. */
  lockSeconds?: number;
  hostname?: string;
}

export type ForwardResult =
  | { kind: 'sent'; count: number; lastSeq: string }
  | { kind: 'idle' | 'not_holder' };

export const CURSOR_NAME = 'syslog';
const LOCK_NAME = 'audit-syslog';

/**
 * Forwards the audit trail to a syslog collector, in sequence order, from its cursor in
 * audit_forward_cursor: the cursor advances only once a batch has been written to the socket (drained), so
 * a collector that is down loses nothing: the database is the buffer. A batch in flight when the connection
 * breaks is sent again (at least once; `seq` lets the SIEM drop a repeat).
 */
export class SyslogForwarder {
  readonly #db: Kysely<Database>;
  readonly #config: SyslogConfig;
  readonly #logger: Logger;
  readonly #lock: JobLock;
  readonly #identity: SyslogIdentity;
  readonly #pollIntervalMs: number;
  readonly #lockSeconds: number;
  #ca: Buffer | undefined;
  #socket: Socket | undefined;
  #holding = false;
  #loop: Promise<void> | undefined;
  #stopping = false;
  #wake: (() => void) | undefined;

  constructor(db: Kysely<Database>, config: SyslogConfig, logger: Logger, options: ForwarderOptions = {}) {
    this.#db = db;
    this.#config = config;
    this.#logger = logger;
    const host = options.hostname ?? hostname();
    this.#identity = { facility: config.facility, hostname: host, procId: String(process.pid) };
    this.#lock = new JobLock(db, LOCK_NAME, `${host}:${process.pid}`);
    this.#pollIntervalMs = options.pollIntervalMs ?? 1000;
    this.#lockSeconds = options.lockSeconds ?? 60;
  }

  /** Forwards in the background until stop(). */
  start(): void {
    if (this.#loop) return;
    this.#stopping = false;
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    this.#wake?.();
    await this.#loop;
    this.#loop = undefined;
    this.#disconnect();
    if (this.#holding) await this.#lock.release().catch(() => undefined);
    this.#holding = false;
  }

  /** Sends the next batch after the cursor; throws when the collector cannot be reached. */
  async forwardOnce(): Promise<ForwardResult> {
    if (!(await this.#holdLock())) return { kind: 'not_holder' };
    const cursor = await this.#cursor();
    const rows: AuditRow[] = [];
    const range = { fromSeq: (BigInt(cursor) + 1n).toString(), toSeq: '9223372036854775807' };
    for await (const row of auditRows(this.#db, range, this.#config.batchSize)) {
      rows.push(row);
      if (rows.length === this.#config.batchSize) break;
    }
    const last = rows.at(-1);
    if (!last) return { kind: 'idle' };
    const payload = rows.map((row) => octetCountingFrame(syslogMessage(row, this.#identity))).join('');
    await this.#send(payload);
    await this.#db
      .updateTable('audit_forward_cursor')
      .set({ last_seq: last.seq, updated_at: sql`now()` })
      .where('name', '=', CURSOR_NAME)
      .execute();
    return { kind: 'sent', count: rows.length, lastSeq: last.seq };
  }

  async #run(): Promise<void> {
    let failures = 0;
    while (!this.#stopping) {
      let delayMs = this.#pollIntervalMs;
      try {
        const result = await this.forwardOnce();
        if (failures) this.#logger.info({ failures }, 'audit syslog: collector reachable again');
        failures = 0;
        if (result.kind === 'sent' && result.count === this.#config.batchSize) delayMs = 0;
      } catch (err) {
        failures++;
        this.#disconnect();
        const base = this.#config.retrySeconds * 1000;
        delayMs = Math.min(base * 2 ** (failures - 1), base * 20);
        this.#logger.warn(
          { err: (err as Error).message, failures, retryInMs: delayMs },
          'audit syslog: collector unreachable, records stay queued in the database',
        );
      }
      if (delayMs) await this.#sleep(delayMs);
    }
  }

  async #holdLock(): Promise<boolean> {
    if (this.#holding) {
      try {
        await this.#lock.renew(this.#lockSeconds);
        return true;
      } catch {
        this.#holding = false;
      }
    }
    this.#holding = (await this.#lock.acquire(this.#lockSeconds)).kind === 'acquired';
    return this.#holding;
  }

  async #cursor(): Promise<string> {
    await this.#db
      .insertInto('audit_forward_cursor')
      .values({ name: CURSOR_NAME, last_seq: '0' })
      .onConflict((oc) => oc.column('name').doNothing())
      .execute();
    const row = await this.#db
      .selectFrom('audit_forward_cursor')
      .select(sql<string>`last_seq::text`.as('last_seq'))
      .where('name', '=', CURSOR_NAME)
      .executeTakeFirstOrThrow();
    return row.last_seq;
  }

  async #send(payload: string): Promise<void> {
    // A connection the collector closed is still writable until its end is read: the bytes would be
    // taken and lost. One turn of the event loop reads what arrived (the 'end' forgets the socket).
    if (this.#socket) await new Promise((resolve) => setImmediate(resolve));
    const socket = this.#socket ?? (await this.#connect());
    await new Promise<void>((resolve, reject) => {
      const onClose = () => reject(new Error('connection closed by the collector'));
      socket.once('close', onClose);
      socket.write(payload, (err) => {
        socket.off('close', onClose);
        if (err) reject(err);
        else resolve();
      });
    });
  }

  #connect(): Promise<Socket> {
    const { host, port, tls } = this.#config;
    return new Promise((resolve, reject) => {
      let socket: Socket;
      if (tls) {
        if (this.#config.caFile && !this.#ca) this.#ca = readFileSync(this.#config.caFile);
        const servername = this.#config.serverName ?? (isIP(host) ? undefined : host);
        socket = tlsConnect({ host, port, ca: this.#ca, servername }, () => ready());
      } else socket = tcpConnect({ host, port }, () => ready());
      const fail = (err: Error) => {
        socket.destroy();
        reject(err);
      };
      const ready = () => {
        socket.off('error', fail);
        // A collector that goes away is noticed here; the next batch reconnects.
        const forget = () => {
          if (this.#socket === socket) this.#socket = undefined;
          socket.destroy();
        };
        socket.on('error', forget);
        socket.on('end', forget);
        socket.on('close', forget);
        // Nothing is expected from the collector; reading keeps 'end' observable.
        socket.resume();
        this.#socket = socket;
        resolve(socket);
      };
      socket.once('error', fail);
    });
  }

  #disconnect(): void {
    this.#socket?.destroy();
    this.#socket = undefined;
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
  }
}
