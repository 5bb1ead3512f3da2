import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { Config } from '../config/schema.ts';

export interface CardListenerOptions {
  host: string;
  port: number;
  certFile: string;
  keyFile: string;
  /** PEM files of the IGC-Santé roots and intermediates: their names go in the TLS CertificateRequest. */
  caFiles: readonly string[];
  /** Headers only a reverse proxy may set: removed, since clients reach this listener directly. */
  proxyHeaders: readonly string[];
}

/** The listener of the configuration's smartcard section, if it has one. */
export function cardListenerOptions(config: Config): CardListenerOptions | undefined {
  const card = config.smartcard;
  if (!card?.listener) return undefined;
  return {
    ...card.listener,
    caFiles: [...card.trustAnchors, ...card.intermediates],
    proxyHeaders: [config.http.clientCertHeader ?? '', config.http.clientCertVerifyHeader].filter(Boolean),
  };
}

const FORWARDING_HEADERS = [
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-request-id',
];

/**
 * Mode (a): a dedicated HTTPS listener asking for a client certificate. Browsers offer the cards whose
 * issuer is among the `ca` names; the certificate is verified by Passerelle (not by TLS:
 * rejectUnauthorized false), so that a refused card gets a clear page instead of a TLS error.
 */
export async function startCardListener(
  options: CardListenerOptions,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<Server> {
  const stripped = [...FORWARDING_HEADERS, ...options.proxyHeaders.map((h) => h.toLowerCase())];
  const server = createServer(
    {
      cert: readFileSync(options.certFile),
      key: readFileSync(options.keyFile),
      ca: options.caFiles.map((file) => readFileSync(file)),
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
      requestTimeout: 30_000,
      headersTimeout: 15_000,
    },
    (req, res) => {
      for (const name of stripped) delete req.headers[name];
      handler(req, res);
    },
  );
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}
