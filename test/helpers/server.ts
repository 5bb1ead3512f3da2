import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
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
  /** Raw configuration merged over the test defaults. */
  config?: Record<string, unknown>;
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
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const issuer = `http://127.0.0.1:${port}`;
  const { config } = loadConfig({
    env: {},
    overrides: {
      issuer,
      http: { port },
      database: { url: database.url, dataDir: database.dataDir, poolSize: 5 },
      keys: { encryptionKey: randomBytes(32).toString('base64'), reloadIntervalSeconds: 1 },
      log: { level: 'debug' },
      ...options.config,
    },
  });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      logs.push(String(chunk));
      done();
    },
  });
  const logger = createLogger(options.logLevel ?? 'debug', sink as never);
  const passerelle = await createPasserelle(config, logger, { onQuery: options.onQuery });
  server.on('request', passerelle.app.callback());
  const listener = cardListenerOptions(config);
  const cardServer = listener ? await startCardListener(listener, passerelle.app.callback()) : undefined;
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
