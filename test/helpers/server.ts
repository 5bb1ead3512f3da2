import { randomBytes } from 'node:crypto';
import { createServer, type RequestListener, type Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { createPasserelle, type Passerelle } from '../../src/app.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import type { ConnectOptions } from '../../src/db/connect.ts';
import { cardListenerOptions, startCardListener } from '../../src/http/card-listener.ts';
import { createLogger } from '../../src/http/logger.ts';
import { createTestDatabase, type DatabaseKind, type TestDatabase } from './databases.ts';
import { listenLocal } from './net.ts';

/** The card listener's port while it is not listening yet (the configuration needs a valid port). */
const PENDING_CARD_PORT = 1;

export interface TestServer {
  issuer: string;
  config: Config;
  passerelle: Passerelle;
  server: Server;
  /** The smart card TLS listener, when `smartcard.listener` is configured (mode a). */
  cardServer: HttpsServer | undefined;
  /** https://127.0.0.1:<port> of that listener. */
  cardOrigin: string | undefined;
  database: TestDatabase;
  /** Every log line written so far (JSON text), to assert that secrets are never logged. */
  logs: string[];
  close(): Promise<void>;
}

export interface StartOptions {
  /**
   * Raw configuration merged over the test defaults. A function receives the issuer (port known) and the
   * port of the smart card listener: a `smartcard.listener` must use `ports.card` (it listens on port 0
   * first, so the configuration is built twice, the first time with a placeholder).
   */
  config?: Record<string, unknown> | ((issuer: string, ports: { card: number }) => Record<string, unknown>);
  /**
   * Host name of the issuer URL (the server always listens on 127.0.0.1): `localhost` for WebAuthn,
   * whose RP ID cannot be an IP address. Default 127.0.0.1.
   */
  issuerHost?: string;
  /** Reuse an existing database (to run a second instance on it). */
  database?: TestDatabase;
  /** Log level of the captured logger (default debug; the benchmark uses warn). */
  logLevel?: string;
  /** Statement hook passed to the database layer (the benchmark counts queries with it). */
  onQuery?: ConnectOptions['onQuery'];
}

/** Starts a real Passerelle listening on 127.0.0.1 with a random port and a fresh database. */
export async function startTestServer(kind: DatabaseKind, options: StartOptions = {}): Promise<TestServer> {
  const database = options.database ?? (await createTestDatabase(kind));
  const server = createServer();
  const port = await listenLocal(server);
  const issuer = `http://${options.issuerHost ?? '127.0.0.1'}:${port}`;
  const configWith = (cardPort: number) => {
    const extra =
      typeof options.config === 'function' ? options.config(issuer, { card: cardPort }) : options.config;
    return loadConfig({
      env: {},
      overrides: {
        issuer,
        http: { port },
        database: { url: database.url, dataDir: database.dataDir, poolSize: 5 },
        keys: { encryptionKey, reloadIntervalSeconds: 1 },
        log: { level: 'debug' },
        ...extra,
      },
    }).config;
  };
  const encryptionKey = randomBytes(32).toString('base64');
  let config = configWith(PENDING_CARD_PORT);
  // The card listener's origin is in the configuration (the card form posts there): it listens first, on
  // a port the kernel picks, and the configuration is built again with that port.
  let app: RequestListener = (_req, res) => res.writeHead(503).end();
  const listener = cardListenerOptions(config);
  const cardServer = listener
    ? await startCardListener({ ...listener, port: 0 }, (req, res) => app(req, res))
    : undefined;
  if (cardServer && listener) {
    const cardPort = (cardServer.address() as AddressInfo).port;
    config = configWith(cardPort);
    const final = cardListenerOptions(config);
    if (
      JSON.stringify({ ...final, port: 0 }) !== JSON.stringify({ ...listener, port: 0 }) ||
      final?.port !== cardPort
    ) {
      cardServer.close();
      throw new Error('smartcard.listener: give it the port the config function receives (ports.card)');
    }
  }
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      logs.push(String(chunk));
      done();
    },
  });
  const logger = createLogger(options.logLevel ?? 'debug', sink as never);
  const passerelle = await createPasserelle(config, logger, { onQuery: options.onQuery });
  app = passerelle.app.callback();
  server.on('request', app);
  const cardPort = (cardServer?.address() as AddressInfo | null)?.port;
  passerelle.start();
  return {
    issuer,
    config,
    passerelle,
    server,
    cardServer,
    cardOrigin: cardPort ? `https://127.0.0.1:${cardPort}` : undefined,
    database,
    logs,
    async close() {
      if (process.env.TEST_SHOW_ERRORS) {
        for (const line of logs)
          if (/"level":(40|50|60)/.test(line) || process.env.TEST_SHOW_ERRORS === 'all')
            process.stderr.write(line);
      }
      await passerelle.stop(...[server, cardServer].filter((s) => s !== undefined));
      if (!options.database) await database.drop();
    },
  };
}
