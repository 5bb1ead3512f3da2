import { X509Certificate } from 'node:crypto';
import type { Card, IgcSantePki } from './igc-sante-pki.ts';
import { startTestServer, type TestServer } from './server.ts';

export const CERT_HEADER = 'x-ssl-client-cert';
export const VERIFY_HEADER = 'x-ssl-client-verify';

export const nodeCert = (card: Card) => new X509Certificate(card.der);

/**
 * A Passerelle with the CPS card method: its own TLS card listener (mode a) and a trusted local proxy
 * (mode b), trusting the generated IGC-Santé PKI. `config` adds to that configuration.
 */
export async function startWithCards(
  kind: Parameters<typeof startTestServer>[0],
  pki: IgcSantePki,
  config: Record<string, unknown> = {},
): Promise<TestServer> {
  return startTestServer(kind, {
    config: (_issuer, { card: port }) => ({
      http: { trustProxy: true, clientCertHeader: CERT_HEADER, clientCertVerifyHeader: VERIFY_HEADER },
      smartcard: {
        trustAnchors: [pki.files.rootFort, pki.files.rootStandard],
        intermediates: [pki.files.intermediates],
        crl: { files: [pki.files.crlFort, pki.files.crlStandard] },
        listener: { host: '127.0.0.1', port, certFile: pki.files.serverCert, keyFile: pki.files.serverKey },
        trustedProxies: ['127.0.0.1'],
        formOrigin: `https://127.0.0.1:${port}`,
      },
      ...config,
    }),
  });
}
