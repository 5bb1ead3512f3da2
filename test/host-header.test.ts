import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databasesUnderTest } from './helpers/databases.ts';
import { createIgcSantePki, type IgcSantePki } from './helpers/igc-sante-pki.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

/**
 * The Host a request names (or X-Forwarded-Host from the trusted proxy) never shapes a published URL:
 * the discovery document and every URL the engine builds derive from the configured issuer, and a
 * request for a host Passerelle does not serve gets 421 Misdirected Request. Served: the issuer's host
 * and the smart card host (smartcard.formOrigin); health checks answer whatever the host.
 */

const CARD_HOST = 'carte.hopital.test';

interface Answer {
  status: number;
  type: string;
  body: string;
}

/** A GET to the server with the given headers, Host included (fetch would not send a chosen Host). */
function getWith(t: TestServer, path: string, headers: Record<string, string>): Promise<Answer> {
  const { port } = new URL(t.issuer);
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        body += chunk;
      });
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

/** Every URL the discovery document publishes. */
function publishedUrls(document: Record<string, unknown>): string[] {
  return Object.entries(document)
    .filter(([key]) => key !== 'issuer')
    .map(([, value]) => value)
    .filter((v): v is string => typeof v === 'string' && /^https?:/.test(v));
}

let pki: IgcSantePki;
beforeAll(async () => {
  pki = await createIgcSantePki();
});
afterAll(() => pki?.remove());

for (const kind of databasesUnderTest()) {
  describe(`the Host header names Passerelle or is refused [${kind}]`, () => {
    let t: TestServer;
    let issuerHost: string;

    beforeAll(async () => {
      t = await startTestServer(kind, {
        config: {
          // Behind the reverse proxy: X-Forwarded-Host is the host the browser asked for.
          http: { trustProxy: true, clientCertHeader: 'x-ssl-client-cert' },
          smartcard: {
            trustAnchors: [pki.files.rootFort],
            intermediates: [pki.files.intermediates],
            crl: { files: [pki.files.crlFort, pki.files.crlStandard] },
            trustedProxies: ['127.0.0.1'],
            formOrigin: `https://${CARD_HOST}`,
          },
        },
      });
      issuerHost = new URL(t.issuer).host;
    });
    afterAll(async () => {
      await t?.close();
    });

    it('a request for another host gets 421 with a short French and English message', async () => {
      const cases: Record<string, string>[] = [
        { host: 'evil.example' },
        { host: `evil.example:${new URL(t.issuer).port}` },
        { host: issuerHost, 'x-forwarded-host': 'evil.example' },
      ];
      for (const headers of cases) {
        for (const path of ['/.well-known/openid-configuration', '/auth?client_id=x', '/', '/jwks']) {
          const answer = await getWith(t, path, headers);
          const what = `${JSON.stringify(headers)} ${path}`;
          expect(answer.status, what).toBe(421);
          expect(answer.type, what).toMatch(/^text\/plain; charset=utf-8/);
          expect(answer.body, what).toContain(`Cette adresse n’est pas celle de Passerelle : ${t.issuer}`);
          expect(answer.body, what).toContain(`This address is not Passerelle’s: ${t.issuer}`);
          expect(answer.body, what).not.toContain('evil.example');
        }
      }
    });

    it('with the issuer’s host (with or without its port, as a proxy forwards it) every URL is the issuer’s', async () => {
      const hostname = new URL(t.issuer).hostname;
      const cases: Record<string, string>[] = [
        { host: issuerHost },
        { host: hostname },
        { host: issuerHost, 'x-forwarded-host': hostname, 'x-forwarded-proto': 'https' },
      ];
      for (const headers of cases) {
        const answer = await getWith(t, '/.well-known/openid-configuration', headers);
        expect(answer.status, JSON.stringify(headers)).toBe(200);
        const document = JSON.parse(answer.body) as Record<string, unknown>;
        expect(document.issuer).toBe(t.issuer);
        const urls = publishedUrls(document);
        expect(urls.length).toBeGreaterThan(5);
        for (const url of urls) expect(url, JSON.stringify(headers)).toMatch(new RegExp(`^${t.issuer}/`));
      }
    });

    it('the smart card host is served, and the URLs published there are still the issuer’s', async () => {
      const answer = await getWith(t, '/.well-known/openid-configuration', {
        host: issuerHost,
        'x-forwarded-host': CARD_HOST,
        'x-forwarded-proto': 'https',
      });
      expect(answer.status).toBe(200);
      for (const url of publishedUrls(JSON.parse(answer.body)))
        expect(url).toMatch(new RegExp(`^${t.issuer}/`));
    });

    it('health checks answer whatever the host (load balancers probe by address)', async () => {
      for (const path of ['/healthz', '/readyz']) {
        expect((await getWith(t, path, { host: '10.1.2.3:3000' })).status, path).toBe(200);
      }
    });
  });
}
