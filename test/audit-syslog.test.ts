import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import * as oidc from 'openid-client';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  escapeParamValue,
  octetCountingFrame,
  type SyslogConfig,
  SyslogForwarder,
  syslogMessage,
} from '../src/audit/syslog.ts';
import type { AuditEvent } from '../src/audit/trail.ts';
import { appendEvents, auditDatabase } from './helpers/audit-seed.ts';
import { BrowserAgent, browserLogin } from './helpers/browser-agent.ts';
import {
  authorizationRequest,
  codeClaims,
  createUser,
  discover,
  REDIRECT,
  registerWebClient,
  TEST_PASSWORD,
} from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { createIgcSantePki, type IgcSantePki } from './helpers/igc-sante-pki.ts';
import { listenOn, samePortAgain, withPorts } from './helpers/net.ts';
import { startTestServer } from './helpers/server.ts';

interface Parsed {
  pri: number;
  version: string;
  timestamp: string;
  hostname: string;
  appName: string;
  procId: string;
  msgId: string;
  sdId: string;
  params: Record<string, string>;
  msg: string;
}

/** RFC 6587 octet counting: `LEN SP MSG`… ; returns the complete frames and the rest. */
function splitFrames(buffer: Buffer): { frames: string[]; rest: Buffer } {
  const frames: string[] = [];
  let offset = 0;
  for (;;) {
    const space = buffer.indexOf(0x20, offset);
    if (space < 0) break;
    const length = Number(buffer.subarray(offset, space).toString('ascii'));
    if (!Number.isInteger(length) || length <= 0) throw new Error(`bad frame length at ${offset}`);
    if (buffer.length < space + 1 + length) break;
    frames.push(buffer.subarray(space + 1, space + 1 + length).toString('utf8'));
    offset = space + 1 + length;
  }
  return { frames, rest: buffer.subarray(offset) };
}

/** RFC 5424 with one SD-ELEMENT, escaped PARAM-VALUEs. */
function parseMessage(message: string): Parsed {
  const head = /^<(\d{1,3})>(\d) (\S+) (\S+) (\S+) (\S+) (\S+) \[(\S+)/.exec(message);
  if (!head) throw new Error(`not RFC 5424: ${message}`);
  let i = head[0].length;
  const params: Record<string, string> = {};
  while (message[i] === ' ') {
    const name = /^ ([^= \]"]{1,32})="/.exec(message.slice(i));
    if (!name) throw new Error(`bad SD-PARAM at ${i}: ${message}`);
    i += name[0].length;
    let value = '';
    while (message[i] !== '"') {
      if (message[i] === '\\' && ['"', '\\', ']'].includes(message[i + 1] as string)) i++;
      value += message[i];
      i++;
    }
    params[name[1] as string] = value;
    i++;
  }
  if (!message.startsWith('] ', i)) throw new Error(`SD-ELEMENT not closed: ${message}`);
  const [, pri, version, timestamp, hostname, appName, procId, msgId, sdId] = head as unknown as string[];
  return {
    pri: Number(pri),
    version: version as string,
    timestamp: timestamp as string,
    hostname: hostname as string,
    appName: appName as string,
    procId: procId as string,
    msgId: msgId as string,
    sdId: sdId as string,
    params,
    msg: message.slice(i + 2),
  };
}

/** A collector: every frame received, across connections, in arrival order. */
class Collector {
  readonly messages: Parsed[] = [];
  readonly #sockets = new Set<Socket>();
  readonly #server: Server;
  port = 0;

  constructor(tls?: { cert: Buffer; key: Buffer }) {
    const onConnection = (socket: Socket) => {
      this.#sockets.add(socket);
      let pending: Buffer = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        const { frames, rest } = splitFrames(Buffer.concat([pending, chunk]));
        pending = rest;
        for (const frame of frames) this.messages.push(parseMessage(frame));
      });
      socket.on('close', () => this.#sockets.delete(socket));
      socket.on('error', () => {});
    };
    this.#server = tls ? createTlsServer(tls, onConnection) : createServer(onConnection);
  }

  async listen(port = 0): Promise<void> {
    this.port = await listenOn(this.#server, port);
  }

  /** The collector goes down: no new connection, the open ones are cut. */
  close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  seqs(): string[] {
    return this.messages.map((m) => m.params.seq as string);
  }
}

/** Waits for `condition`, polling; the bound is generous: a loaded CI machine may stall for seconds. */
async function until(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 45_000;
  while (Date.now() < deadline) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const events = (count: number, from: number): AuditEvent[] =>
  Array.from({ length: count }, (_, i) => ({
    type: (from + i) % 2 ? 'auth.attempt' : 'psc.federation',
    outcome: (from + i) % 3 ? 'success' : 'failure',
    accountId: '0b5c9a1e-6a55-4a8e-9d6f-1f2a3b4c5d6e',
    method: 'password',
    amr: ['pwd'],
    reason: (from + i) % 3 ? undefined : 'bad "password" [x] \\ y',
    ip: '10.0.0.1',
    requestId: `req-${from + i}`,
  }));

function warnings() {
  const lines: string[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => lines.push(line) });
  return { logger, count: () => lines.length };
}

describe('RFC 5424 message', () => {
  it('PRI from outcome and facility, headers, escaped structured data, short text', () => {
    const row = {
      seq: '42',
      at: '2026-03-01T10:00:00.123456Z',
      type: 'auth.attempt',
      outcome: 'failure' as const,
      account_id: 'acc',
      client_id: null,
      session_id: null,
      interaction_id: 'int',
      ip: '10.0.0.1',
      user_agent: 'never sent',
      method: 'password',
      amr: ['pwd', 'otp'],
      acr: null,
      reason: 'a"b]c\\d',
      request_id: 'req',
      instance_id: 'host:1:abc',
      detail: { secretLooking: 'never sent' },
      national_id: null,
      tid: null,
      establishment: null,
      prev_hash: 'p',
      hash: 'h',
    };
    const message = syslogMessage(row, { facility: 'local4', hostname: 'idp 1', procId: '77' });
    expect(message).toBe(
      '<164>1 2026-03-01T10:00:00.123456Z idp_1 passerelle 77 auth.attempt [passerelle@32473 seq="42" ' +
        'outcome="failure" account="acc" interaction="int" ip="10.0.0.1" method="password" amr="pwd otp" ' +
        'reason="a\\"b\\]c\\\\d" request="req" instance="host:1:abc" hash="h"] auth.attempt failure a"b]c\\d method=password',
    );
    const success = syslogMessage(
      { ...row, outcome: 'success' },
      { facility: 'auth', hostname: 'h', procId: '1' },
    );
    expect(success.startsWith('<38>1 ')).toBe(true);
    expect(escapeParamValue('x"]\\')).toBe('x\\"\\]\\\\');
    expect(octetCountingFrame('é')).toBe('2 é');
  });
});

for (const kind of databasesUnderTest()) {
  describe(`syslog forwarding [${kind}]`, () => {
    let env: Awaited<ReturnType<typeof auditDatabase>>;
    let pki: IgcSantePki;

    beforeAll(async () => {
      env = await auditDatabase(kind);
      pki = await createIgcSantePki();
    });
    afterAll(async () => {
      await env?.close();
      pki?.remove();
    });

    /** The trail is append-only: the forwarder starts after the records of earlier tests. */
    async function cursorAtEnd() {
      const last = await env.db
        .selectFrom('audit_event')
        .select((eb) => eb.fn.max('seq').as('seq'))
        .executeTakeFirst();
      await env.db.deleteFrom('audit_forward_cursor').execute();
      await env.db
        .insertInto('audit_forward_cursor')
        .values({ name: 'syslog', last_seq: String(last?.seq ?? 0) })
        .execute();
    }

    async function forwardThroughOutage(collector: Collector, config: Omit<SyslogConfig, 'port'>) {
      await cursorAtEnd();
      // Outside the ephemeral range (withPorts): while the collector is down, no outgoing connection can
      // take its port as source port, and it comes back on it.
      await withPorts(1, ([port]) => collector.listen(port));
      const log = warnings();
      const forwarder = new SyslogForwarder(env.db, { ...config, port: collector.port }, log.logger, {
        pollIntervalMs: 20,
        hostname: 'idp1.hopital.test',
      });
      const before = await appendEvents(env.db, env.trail, events(10, 0));
      forwarder.start();
      try {
        await until(() => collector.messages.length === 10, 'the first 10 records');
        await collector.close();
        const during = await appendEvents(env.db, env.trail, events(7, 10));
        await until(() => log.count() >= 2, 'two failed attempts while the collector is down');
        await samePortAgain(() => collector.listen(collector.port));
        await until(() => collector.messages.length >= 17, 'the records written during the outage');
        const after = await appendEvents(env.db, env.trail, events(3, 17));
        await until(() => collector.messages.length >= 20, 'the records written after the outage');
        await new Promise((resolve) => setTimeout(resolve, 100));
        expect(collector.seqs()).toEqual([...before, ...during, ...after]);
        const cursor = await env.db.selectFrom('audit_forward_cursor').selectAll().executeTakeFirstOrThrow();
        expect({ name: cursor.name, last_seq: String(cursor.last_seq) }).toEqual({
          name: 'syslog',
          last_seq: after.at(-1),
        });
      } finally {
        await forwarder.stop();
        await collector.close();
      }
      const first = collector.messages[0] as Parsed;
      expect(first).toMatchObject({
        pri: 4 * 8 + 4,
        version: '1',
        hostname: 'idp1.hopital.test',
        appName: 'passerelle',
        procId: String(process.pid),
        msgId: 'psc.federation',
        sdId: 'passerelle@32473',
        params: {
          seq: before[0],
          outcome: 'failure',
          account: '0b5c9a1e-6a55-4a8e-9d6f-1f2a3b4c5d6e',
          method: 'password',
          amr: 'pwd',
          reason: 'bad "password" [x] \\ y',
          ip: '10.0.0.1',
          request: 'req-0',
          instance: env.trail.instanceId,
        },
        msg: 'psc.federation failure bad "password" [x] \\ y method=password',
      });
      expect(first.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
      expect((collector.messages[1] as Parsed).pri).toBe(4 * 8 + 6);
    }

    it('TCP: every record arrives once, in order, across a collector outage', async () => {
      await forwardThroughOutage(new Collector(), {
        host: '127.0.0.1',
        tls: false,
        facility: 'auth',
        batchSize: 4,
        retrySeconds: 0.05,
      });
    });

    it('TLS with the collector checked against its CA: the same across an outage', async () => {
      const collector = new Collector({
        cert: readFileSync(pki.files.serverCert),
        key: readFileSync(pki.files.serverKey),
      });
      await forwardThroughOutage(collector, {
        host: '127.0.0.1',
        tls: true,
        caFile: pki.files.serverCa,
        facility: 'auth',
        batchSize: 3,
        retrySeconds: 0.05,
      });
    });

    it('TLS refuses a collector whose certificate is not from the CA: nothing sent, cursor unchanged', async () => {
      await env.db.deleteFrom('audit_forward_cursor').execute();
      const collector = new Collector({
        cert: readFileSync(pki.files.serverCert),
        key: readFileSync(pki.files.serverKey),
      });
      await collector.listen();
      const forwarder = new SyslogForwarder(
        env.db,
        {
          host: '127.0.0.1',
          port: collector.port,
          tls: true,
          caFile: pki.files.rootFort,
          facility: 'auth',
          batchSize: 3,
          retrySeconds: 1,
        },
        pino({ level: 'silent' }),
      );
      try {
        await expect(forwarder.forwardOnce()).rejects.toThrow(/certificate/);
        expect(collector.messages).toEqual([]);
        const cursor = await env.db.selectFrom('audit_forward_cursor').selectAll().executeTakeFirstOrThrow();
        expect(String(cursor.last_seq)).toBe('0');
      } finally {
        await forwarder.stop();
        await collector.close();
      }
    });

    it('a batch after the collector closed the connection stays queued, not counted as sent', async () => {
      await cursorAtEnd();
      const collector = new Collector();
      await withPorts(1, ([port]) => collector.listen(port));
      const forwarder = new SyslogForwarder(
        env.db,
        {
          host: '127.0.0.1',
          port: collector.port,
          tls: false,
          facility: 'auth',
          batchSize: 100,
          retrySeconds: 1,
        },
        pino({ level: 'silent' }),
      );
      try {
        const before = await appendEvents(env.db, env.trail, events(2, 0));
        expect((await forwarder.forwardOnce()).kind).toBe('sent');
        await until(() => collector.messages.length === 2, 'the first records');
        // The collector goes down; the forwarder's next batch comes before any other turn of the event loop
        // (PGlite answers without I/O): it must notice the closed connection, not write into it.
        await collector.close();
        const during = await appendEvents(env.db, env.trail, events(3, 2));
        await expect(forwarder.forwardOnce()).rejects.toThrow(/ECONNREFUSED/);
        const cursor = await env.db.selectFrom('audit_forward_cursor').selectAll().executeTakeFirstOrThrow();
        expect(String(cursor.last_seq)).toBe(before.at(-1));
        await samePortAgain(() => collector.listen(collector.port));
        expect(await forwarder.forwardOnce()).toMatchObject({ kind: 'sent', count: 3 });
        await until(() => collector.messages.length === 5, 'the queued records');
        expect(collector.seqs()).toEqual([...before, ...during]);
      } finally {
        await forwarder.stop();
        await collector.close();
      }
    });

    it('one instance forwards at a time', async () => {
      await env.db.deleteFrom('audit_forward_cursor').execute();
      const collector = new Collector();
      await collector.listen();
      const config: SyslogConfig = {
        host: '127.0.0.1',
        port: collector.port,
        tls: false,
        facility: 'auth',
        batchSize: 100,
        retrySeconds: 1,
      };
      const a = new SyslogForwarder(env.db, config, pino({ level: 'silent' }), { hostname: 'a' });
      const b = new SyslogForwarder(env.db, config, pino({ level: 'silent' }), { hostname: 'b' });
      try {
        expect((await a.forwardOnce()).kind).toBe('sent');
        expect(await b.forwardOnce()).toEqual({ kind: 'not_holder' });
        await a.stop();
        expect(await b.forwardOnce()).toEqual({ kind: 'idle' });
      } finally {
        await a.stop();
        await b.stop();
        await collector.close();
      }
    });
  });
}

describe('a running Passerelle forwards its audit trail', () => {
  it('the records of a login reach the collector, the first start’s records first', async () => {
    const collector = new Collector();
    await collector.listen();
    const t = await startTestServer('pglite', {
      config: { audit: { syslog: { host: '127.0.0.1', port: collector.port, retrySeconds: 1 } } },
    });
    try {
      const user = await createUser(t, 'syslog.user');
      const client = await discover(t, 'dpi', oidc.ClientSecretBasic(await registerWebClient(t, 'dpi')));
      const pending = await authorizationRequest(client, REDIRECT);
      const { callback } = await browserLogin(new BrowserAgent(), pending.url, t.issuer, {
        username: user.username,
        password: TEST_PASSWORD,
      });
      await codeClaims(client, pending, callback);
      await until(
        () => collector.messages.some((m) => m.msgId === 'token.issued'),
        'the token record at the collector',
      );
      const types = collector.messages.map((m) => m.msgId);
      // The keys created at the first start, then the configuration loaded.
      expect(types.slice(0, 3)).toEqual(['admin.keys.created', 'admin.keys.created', 'config.loaded']);
      expect(types).toContain('auth.attempt');
      const attempt = collector.messages.find((m) => m.msgId === 'auth.attempt');
      expect(attempt?.params).toMatchObject({ outcome: 'success', account: user.id, method: 'password' });
      // In order, no repeat.
      const seqs = collector.seqs().map(Number);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
      expect(new Set(seqs).size).toBe(seqs.length);
    } finally {
      await t.close();
      await collector.close();
    }
  });
});
