import { createServer, type Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Logger } from 'pino';
import { createPasserelle, type Passerelle } from '../app.ts';
import type { Config } from '../config/schema.ts';
import { linkDemoAccount, startDemoAnnuaire } from '../demo/annuaire.ts';
import { cardListenerOptions, startCardListener } from '../http/card-listener.ts';
import { type GlobalOptions, loadCliConfig } from './context.ts';

export interface Serving {
  /** The configuration served (in demo mode, with the simulated Annuaire Santé). */
  config: Config;
  passerelle: Passerelle;
  server: Server;
  cardServer: HttpsServer | undefined;
  /** Stops the servers, background work and the demo's simulator. */
  stop(): Promise<void>;
}

/** Starts Passerelle's listeners and background work for `config` (what `passerelle serve` runs). */
export async function startServing(loadedConfig: Config, logger: Logger): Promise<Serving> {
  const demoAnnuaire =
    loadedConfig.demo && !loadedConfig.rpps.api.apiKey
      ? await startDemoAnnuaire(loadedConfig, logger)
      : undefined;
  const config = demoAnnuaire?.config ?? loadedConfig;
  const passerelle = await createPasserelle(config, logger);
  if (demoAnnuaire) await linkDemoAccount(passerelle);
  const server = createServer({ requestTimeout: 30_000, headersTimeout: 15_000 }, passerelle.app.callback());
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.http.port, config.http.host, resolve);
  });
  const listener = cardListenerOptions(config);
  const cardServer = listener ? await startCardListener(listener, passerelle.app.callback()) : undefined;
  if (listener) {
    logger.info(
      { host: listener.host, port: listener.port, formOrigin: config.smartcard?.formOrigin },
      'smartcard: TLS listener asking for the CPS card is listening',
    );
  }
  passerelle.start();
  logger.info(
    {
      issuer: config.issuer,
      database: passerelle.services.database.location,
      host: config.http.host,
      port: config.http.port,
    },
    `Passerelle is serving ${config.issuer}/.well-known/openid-configuration`,
  );
  return {
    config,
    passerelle,
    server,
    cardServer,
    async stop() {
      await passerelle.stop(...[server, cardServer].filter((s) => s !== undefined));
      await demoAnnuaire?.close();
    },
  };
}

export async function serve(options: GlobalOptions): Promise<void> {
  const { loaded, logger } = loadCliConfig(options);
  const serving = await startServing(loaded.config, logger);
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    serving
      .stop()
      .then(() => process.exit(0))
      .catch((err: unknown) => {
        logger.error({ err }, 'unclean shutdown');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}
