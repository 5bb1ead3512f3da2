import { createServer } from 'node:http';
import { createPasserelle } from '../app.ts';
import { linkDemoAccount, startDemoAnnuaire } from '../demo/annuaire.ts';
import { cardListenerOptions, startCardListener } from '../http/card-listener.ts';
import { type GlobalOptions, loadCliConfig } from './context.ts';

export async function serve(options: GlobalOptions): Promise<void> {
  const { loaded, logger } = loadCliConfig(options);
  const demoAnnuaire =
    loaded.config.demo && !loaded.config.rpps.api.apiKey
      ? await startDemoAnnuaire(loaded.config, logger)
      : undefined;
  const config = demoAnnuaire?.config ?? loaded.config;
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
    { issuer: config.issuer, database: passerelle.services.database.location, port: config.http.port },
    `Passerelle is serving ${config.issuer}/.well-known/openid-configuration`,
  );
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    passerelle
      .stop(...[server, cardServer].filter((s) => s !== undefined))
      .then(() => demoAnnuaire?.close())
      .then(() => process.exit(0))
      .catch((err: unknown) => {
        logger.error({ err }, 'unclean shutdown');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}
