import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawPost, registerClient } from './helpers/clients.ts';
import { type DatabaseKind, databasesUnderTest } from './helpers/databases.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

const CERT_HEADER = 'x-ssl-client-cert';
const SUBJECT_DN = 'CN=dpi-batch,O=Hopital Test,C=FR';

/** `openssl req` options that make a new unencrypted P-256 key and write it to `keyFile`. */
function newP256Key(keyFile: string): string[] {
  return ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile];
}

/** A throw-away CA and client certificates, made with the openssl command in a temporary directory. */
class TestPki {
  readonly dir = mkdtempSync(join(tmpdir(), 'passerelle-tls-'));

  #openssl(...args: string[]) {
    execFileSync('openssl', args, { cwd: this.dir, stdio: ['ignore', 'ignore', 'pipe'] });
  }

  constructor() {
    this.#openssl(
      'req',
      '-x509',
      ...newP256Key('ca.key'),
      '-out',
      'ca.crt',
      '-subj',
      '/CN=Passerelle Test CA',
      '-days',
      '1',
      '-addext',
      'basicConstraints=critical,CA:true',
      '-addext',
      'keyUsage=critical,keyCertSign',
    );
  }

  get ca(): X509Certificate {
    return new X509Certificate(readFileSync(join(this.dir, 'ca.crt')));
  }

  /** Issues a client certificate signed by the test CA; returns its PEM. */
  issue(name: string, subject: string): string {
    this.#openssl('req', '-new', ...newP256Key(`${name}.key`), '-out', `${name}.csr`, '-subj', subject);
    this.#openssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '1',
      '-out',
      `${name}.crt`,
    );
    return readFileSync(join(this.dir, `${name}.crt`), 'utf8');
  }

  remove() {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

let pki: TestPki;
const certs: Record<'good' | 'intruder' | 'partial' | 'extra', string> = {
  good: '',
  intruder: '',
  partial: '',
  extra: '',
};

beforeAll(() => {
  pki = new TestPki();
  certs.good = pki.issue('good', '/C=FR/O=Hopital Test/CN=dpi-batch');
  certs.intruder = pki.issue('intruder', '/C=FR/O=Hopital Test/CN=intruder');
  certs.partial = pki.issue('partial', '/CN=dpi-batch');
  certs.extra = pki.issue('extra', '/C=FR/O=Hopital Test/OU=Labo/CN=dpi-batch');
});
afterAll(() => {
  pki?.remove();
});

/** The headers a TLS-terminating reverse proxy sets after checking the client certificate. */
function proxyHeaders(pem: string | undefined, verify: string | undefined): Record<string, string> {
  const headers: Record<string, string> = {};
  if (pem !== undefined) headers[CERT_HEADER] = encodeURIComponent(pem);
  if (verify !== undefined) headers['x-ssl-client-verify'] = verify;
  return headers;
}

/** A test server with the header of the client certificate configured, and the batch client registered. */
async function startWithBatchClient(kind: DatabaseKind, trustProxy: boolean): Promise<TestServer> {
  const t = await startTestServer(kind, { config: { http: { trustProxy, clientCertHeader: CERT_HEADER } } });
  await registerClient(t, {
    client_id: 'batch',
    client_name: 'Traitements de nuit',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'tls_client_auth',
    tls_client_auth_subject_dn: SUBJECT_DN,
  });
  return t;
}

function clientCredentials(t: TestServer, headers: Record<string, string>) {
  return rawPost(t, '/token', { grant_type: 'client_credentials', client_id: 'batch' }, headers);
}

for (const kind of databasesUnderTest()) {
  describe(`tls_client_auth behind a TLS-terminating proxy [${kind}]`, () => {
    let t: TestServer;

    beforeAll(async () => {
      t = await startWithBatchClient(kind, true);
    });
    afterAll(async () => {
      await t?.close();
    });

    it('the generated client certificates are issued by the test CA', () => {
      for (const pem of Object.values(certs)) {
        const cert = new X509Certificate(pem);
        expect(cert.checkIssued(pki.ca)).toBe(true);
        expect(cert.verify(pki.ca.publicKey)).toBe(true);
      }
    });

    it('the right certificate, verified by the proxy, gets an access token', async () => {
      const response = await clientCredentials(t, proxyHeaders(certs.good, 'SUCCESS'));
      expect(response.status, response.text).toBe(200);
      expect(response.json?.token_type).toBe('Bearer');
      const accessToken = String(response.json?.access_token ?? '');
      expect(accessToken).not.toBe('');
      expect(response.json).not.toHaveProperty('refresh_token');
      expect(response.json).not.toHaveProperty('id_token');

      // The same client authentication works at introspection: the token is live and belongs to it.
      const introspection = await rawPost(
        t,
        '/token/introspection',
        { token: accessToken, client_id: 'batch' },
        proxyHeaders(certs.good, 'SUCCESS'),
      );
      expect(introspection.status).toBe(200);
      expect(introspection.json).toMatchObject({ active: true, client_id: 'batch' });
    });

    it('a certificate with another subject gets 401 invalid_client', async () => {
      for (const name of ['intruder', 'partial', 'extra'] as const) {
        const response = await clientCredentials(t, proxyHeaders(certs[name], 'SUCCESS'));
        expect(response.status, name).toBe(401);
        expect(response.json?.error, name).toBe('invalid_client');
        expect(response.json, name).not.toHaveProperty('access_token');
      }
    });

    it('the right certificate without a successful proxy verification gets 401 invalid_client', async () => {
      for (const verify of [
        'FAILED:unable to verify the first certificate',
        'NONE',
        'success',
        '',
        undefined,
      ]) {
        const response = await clientCredentials(t, proxyHeaders(certs.good, verify));
        expect(response.status, String(verify)).toBe(401);
        expect(response.json?.error, String(verify)).toBe('invalid_client');
      }
    });

    it('no certificate, or an unreadable one, gets 401 invalid_client', async () => {
      const cases: [string, Record<string, string>][] = [
        ['no certificate', proxyHeaders(undefined, 'SUCCESS')],
        ['not a certificate', proxyHeaders('not a certificate', 'SUCCESS')],
        ['truncated PEM', proxyHeaders(certs.good.slice(0, 200), 'SUCCESS')],
        ['malformed URL encoding', { [CERT_HEADER]: '%E0%A4%A', 'x-ssl-client-verify': 'SUCCESS' }],
      ];
      for (const [label, headers] of cases) {
        const response = await clientCredentials(t, headers);
        expect(response.status, label).toBe(401);
        expect(response.json?.error, label).toBe('invalid_client');
      }
      expect(t.logs.filter((line) => /"level":50/.test(line))).toEqual([]);
    });
  });

  describe(`tls_client_auth without a trusted proxy [${kind}]`, () => {
    let t: TestServer;

    beforeAll(async () => {
      // Same header name configured, but the proxy is not trusted: the headers are forgeable.
      t = await startWithBatchClient(kind, false);
    });
    afterAll(async () => {
      await t?.close();
    });

    it('certificate headers sent by the client itself are ignored: 401 invalid_client', async () => {
      const response = await clientCredentials(t, proxyHeaders(certs.good, 'SUCCESS'));
      expect(response.status).toBe(401);
      expect(response.json?.error).toBe('invalid_client');
    });
  });
}
