import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import { Client, ResultCodeError } from 'ldapts';

/** No directory server answered (refused, timed out, TLS failure): an outage, not a login failure. */
export class DirectoryUnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'DirectoryUnavailableError';
  }
}

/** An LDAP result code from the server (e.g. 49 invalidCredentials): the directory is up. */
export function isLdapResult(err: unknown): err is ResultCodeError {
  return err instanceof ResultCodeError;
}

export interface ConnectorOptions {
  /** Tried in this order. */
  urls: readonly string[];
  startTls: boolean;
  /** PEM CA certificates for ldaps:// and StartTLS; absent = the system's trust store. */
  ca?: Buffer;
  connectTimeoutMs: number;
  operationTimeoutMs: number;
}

/** How long a server that failed is tried only after the others. */
const DOWN_FOR_MS = 30_000;

function withTimeout<T>(promise: Promise<T>, ms: number, what: string, onTimeout: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(new Error(`${what}: timed out after ${ms} ms`));
    }, ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Opens connections (TCP, TLS or StartTLS done, not bound) to the first server that answers, in the
 * configured order. A server that just failed is moved behind the others for 30 s, so a dead first
 * server costs one connect timeout, not one per login; when every server is marked down, all are tried.
 */
export class LdapConnector {
  readonly #options: ConnectorOptions;
  readonly #downUntil = new Map<string, number>();

  constructor(options: ConnectorOptions) {
    this.#options = options;
  }

  get urls(): readonly string[] {
    return this.#options.urls;
  }

  #tlsOptions(url: URL): ConnectionOptions {
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    return {
      ca: this.#options.ca,
      minVersion: 'TLSv1.2',
      rejectUnauthorized: true,
      host,
      // SNI only carries host names.
      ...(isIP(host) ? {} : { servername: host }),
    };
  }

  /** The order in which servers are tried now. */
  #order(): string[] {
    const now = Date.now();
    const up = this.#options.urls.filter((u) => (this.#downUntil.get(u) ?? 0) <= now);
    const down = this.#options.urls.filter((u) => (this.#downUntil.get(u) ?? 0) > now);
    return [...up, ...down];
  }

  async #openOne(url: string): Promise<Client> {
    const parsed = new URL(url);
    const tlsOptions = this.#tlsOptions(parsed);
    const client = new Client({
      url,
      timeout: this.#options.operationTimeoutMs,
      connectTimeout: this.#options.connectTimeoutMs,
      // ldapts uses TLS from the first byte whenever tlsOptions are given: only for ldaps://.
      tlsOptions: parsed.protocol === 'ldaps:' ? tlsOptions : undefined,
      strictDN: true,
    });
    // ldapts bounds the TCP connect and the ldaps:// handshake (connectTimeout); this bounds StartTLS.
    if (!this.#options.startTls || parsed.protocol !== 'ldap:') return client;
    try {
      await withTimeout(
        client.startTLS(tlsOptions),
        this.#options.connectTimeoutMs,
        `StartTLS ${url}`,
        () => {
          void client.unbind().catch(() => {});
        },
      );
      return client;
    } catch (err) {
      await client.unbind().catch(() => {});
      throw err;
    }
  }

  /**
   * A connected client and the URL it reached. `use` runs on it (e.g. a bind); a transport failure there
   * moves on to the next server too, an LDAP result (wrong password…) is returned to the caller.
   */
  async open<T>(use: (client: Client) => Promise<T>): Promise<{ client: Client; url: string; value: T }> {
    const failures: string[] = [];
    let last: unknown;
    for (const url of this.#order()) {
      let client: Client | undefined;
      try {
        client = await this.#openOne(url);
        const value = await use(client);
        this.#downUntil.delete(url);
        return { client, url, value };
      } catch (err) {
        if (isLdapResult(err)) {
          this.#downUntil.delete(url);
          await client?.unbind().catch(() => {});
          throw err;
        }
        await client?.unbind().catch(() => {});
        this.#downUntil.set(url, Date.now() + DOWN_FOR_MS);
        failures.push(`${url}: ${(err as Error).message}`);
        last = err;
      }
    }
    throw new DirectoryUnavailableError(`no directory server reachable (${failures.join('; ')})`, {
      cause: last,
    });
  }
}

interface Slot {
  client: Client;
  url: string;
}

/**
 * Connections bound as the service account, opened lazily, shared round-robin (LDAP multiplexes
 * operations on one connection). User binds never happen here: they use their own short-lived connection,
 * so these stay bound as the service account.
 */
export class ServicePool {
  readonly #connector: LdapConnector;
  readonly #bindDn: string;
  readonly #bindPassword: string;
  readonly #slots: (Promise<Slot> | undefined)[];
  #next = 0;
  #closed = false;

  constructor(connector: LdapConnector, bindDn: string, bindPassword: string, size: number) {
    this.#connector = connector;
    this.#bindDn = bindDn;
    this.#bindPassword = bindPassword;
    this.#slots = new Array(size).fill(undefined);
  }

  async #slot(index: number): Promise<Slot> {
    const existing = this.#slots[index];
    if (existing) {
      const slot = await existing.catch(() => undefined);
      if (slot?.client.isBound) return slot;
      if (this.#slots[index] === existing) this.#slots[index] = undefined;
    }
    let pending = this.#slots[index];
    if (!pending) {
      pending = this.#connector
        .open((client) => client.bind(this.#bindDn, this.#bindPassword))
        .then(({ client, url }) => ({ client, url }));
      this.#slots[index] = pending;
      pending.catch(() => {
        if (this.#slots[index] === pending) this.#slots[index] = undefined;
      });
    }
    return pending;
  }

  #drop(index: number, slot: Slot): void {
    void this.#slots[index]?.then((current) => {
      if (current === slot) this.#slots[index] = undefined;
    });
    void slot.client.unbind().catch(() => {});
  }

  /**
   * Runs `fn` on a service-bound connection. A transport failure (server gone, idle connection closed,
   * timeout) drops that connection and retries once on a fresh one, possibly on the next server.
   */
  async run<T>(fn: (client: Client) => Promise<T>): Promise<T> {
    if (this.#closed) throw new DirectoryUnavailableError('directory pool closed');
    const index = this.#next;
    this.#next = (this.#next + 1) % this.#slots.length;
    for (let attempt = 0; ; attempt++) {
      const slot = await this.#slot(index);
      try {
        return await fn(slot.client);
      } catch (err) {
        if (isLdapResult(err)) throw err;
        this.#drop(index, slot);
        if (attempt >= 1)
          throw new DirectoryUnavailableError(`directory operation failed: ${(err as Error).message}`, {
            cause: err,
          });
      }
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    const slots = this.#slots.splice(0);
    await Promise.all(
      slots.map(async (pending) => {
        const slot = await pending?.catch(() => undefined);
        await slot?.client.unbind().catch(() => {});
      }),
    );
  }
}
