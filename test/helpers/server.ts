import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { createPasserelle, type Passerelle } from '../../src/app.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import type { ConnectOptions } from '../../src/db/connect.ts';
import { createLogger } from '../../src/http/logger.ts';
import { createTestDatabase, type DatabaseKind, type TestDatabase } from './databases.ts';

export interface TestServer {
  issuer: string;
  config: Config;
  passerelle: Passerelle;
  server: Server;
  database: TestDatabase;
  /** Every log line written so far (JSON text), to assert that secrets are never logged. */
  logs: string[];
  close(): Promise<void>;
}

export interface StartOptions {
  /** Raw configuration merged over the test defaults; a function receives the issuer (port known). */
  config?: Record<string, unknown> | ((issuer: string) => Record<string, unknown>);
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
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const issuer = `http://${options.issuerHost ?? '127.0.0.1'}:${port}`;
  const extra = typeof options.config === 'function' ? options.config(issuer) : options.config;
  const { config } = loadConfig({
    env: {},
    overrides: {
      issuer,
      http: { port },
      database: { url: database.url, dataDir: database.dataDir, poolSize: 5 },
      keys: { encryptionKey: randomBytes(32).toString('base64'), reloadIntervalSeconds: 1 },
      log: { level: 'debug' },
      ...extra,
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
  passerelle.start();
  return {
    issuer,
    config,
    passerelle,
    server,
    database,
    logs,
    async close() {
      if (process.env.TEST_SHOW_ERRORS) {
        for (const line of logs)
          if (/"level":(40|50|60)/.test(line) || process.env.TEST_SHOW_ERRORS === 'all')
            process.stderr.write(line);
      }
      await passerelle.stop(server);
      if (!options.database) await database.drop();
    },
  };
}
