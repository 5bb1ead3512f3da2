import { createServer, type Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { createPasserelle, type Passerelle } from '../app.ts';
import type { Config } from '../config/schema.ts';
import { linkDemoAccount, startDemoAnnuaire } from '../demo/annuaire.ts';
import { cardListenerOptions, startCardListener } from '../http/card-listener.ts';
import { cliTime, discoveryUrl, type GlobalOptions, loadCliConfig, out } from './context.ts';

export interface Serving {
  /** The configuration served (in demo mode, with the simulated Annuaire Santé). */
  config: Config;
  passerelle: Passerelle;
  server: Server;
  cardServer: HttpsServer | undefined;
  /** What `passerelle serve` prints at start: the issuer's addresses, the start time, where it listens. */
  banner: string[];
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
    banner: startBanner(config, server.address() as AddressInfo),
    async stop() {
      await passerelle.stop(...[server, cardServer].filter((s) => s !== undefined));
      await demoAnnuaire?.close();
    },
  };
}

/**
 * The start banner: the addresses people and applications use — the configured issuer's, whatever this
 * process listens on behind the reverse proxy — and the start time in the establishment's time zone.
 */
export function startBanner(config: Config, address: AddressInfo, now = new Date()): string[] {
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const listening = `http://${host}:${address.port}`;
  return [
    `Passerelle is serving ${config.issuer} (started ${cliTime(config)(now)})`,
    `  discovery  ${discoveryUrl(config)}`,
    `  portal     ${config.issuer}/portal`,
    `  console    ${config.issuer}/admin`,
    ...(config.demo ? [`  demo       ${config.issuer}/ (demo mode: public secrets and password)`] : []),
    `  listening  ${listening}${
      new URL(config.issuer).origin === listening
        ? ''
        : ` (reached as ${config.issuer} through the reverse proxy)`
    }`,
  ];
}

export async function serve(options: GlobalOptions): Promise<void> {
  const { loaded, logger } = loadCliConfig(options);
  const serving = await startServing(loaded.config, logger);
  for (const line of serving.banner) out(line);
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
