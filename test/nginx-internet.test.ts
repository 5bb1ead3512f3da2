import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { messages } from '../src/i18n/messages.ts';
import { REPO_ROOT } from './helpers/cli.ts';
import { missingComponentSuite } from './helpers/components.ts';
import { createIgcSantePki, type IgcSantePki } from './helpers/igc-sante-pki.ts';
import { type Daemon, startDaemon, withPorts } from './helpers/net.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

const NGINX = '/usr/sbin/nginx';
const SAMPLE = join(REPO_ROOT, 'deploy/nginx/passerelle-internet.conf');

/** A request through nginx over TLS, with the Host the issuer has (the test PKI's server certificate is for localhost). */
function viaNginx(
  port: number,
  path: string,
  ca: string,
  method = 'GET',
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { method, host: '127.0.0.1', port, path, ca, servername: 'localhost', headers: { host: 'localhost' } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => {
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

if (!existsSync(NGINX)) {
  missingComponentSuite(
    'deploy/nginx/passerelle-internet.conf',
    'nginx',
    `${NGINX} not found: apt-get install -y nginx`,
  );
} else {
  /**
   * The Internet-facing sample, run by a real nginx in front of a real Passerelle: PSC's endpoints and the
   * staff's login pages pass, everything else is not reachable from outside.
   */
  describe('deploy/nginx/passerelle-internet.conf with nginx', () => {
    let t: TestServer;
    let pki: IgcSantePki;
    let nginx: Daemon | undefined;
    let port: number;
    let dir: string;

    beforeAll(async () => {
      pki = await createIgcSantePki();
      dir = mkdtempSync(join(tmpdir(), 'passerelle-nginx-'));
      mkdirSync(join(dir, 'logs'));
      t = await startTestServer('pglite', {
        issuerHost: 'localhost',
        config: { http: { trustProxy: true } },
      });
      const upstreamPort = new URL(t.issuer).port;
      nginx = await withPorts(1, ([listen]) => {
        // The sample as shipped, with this machine's ports, files and host name.
        const site = readFileSync(SAMPLE, 'utf8')
          .replace('server 127.0.0.1:3000;', `server 127.0.0.1:${upstreamPort};`)
          .replace('listen 443 ssl http2;', `listen 127.0.0.1:${listen} ssl;`)
          .replace('listen [::]:443 ssl http2;', '')
          .replaceAll('passerelle.hopital.example;', 'localhost;')
          .replace(/ssl_certificate \S+;/, `ssl_certificate ${pki.files.serverCert};`)
          .replace(/ssl_certificate_key \S+;/, `ssl_certificate_key ${pki.files.serverKey};`)
          .replaceAll('/var/log/nginx/', `${dir}/logs/`);
        expect(site).not.toContain('hopital.example');
        writeFileSync(join(dir, 'site.conf'), site);
        writeFileSync(
          join(dir, 'nginx.conf'),
          `daemon off;\npid ${dir}/nginx.pid;\nerror_log stderr warn;\nevents {}\nhttp {\n  client_body_temp_path ${dir}/body;\n  proxy_temp_path ${dir}/proxy;\n  access_log off;\n  include ${dir}/site.conf;\n}\n`,
        );
        return startDaemon({
          name: 'nginx',
          command: NGINX,
          args: ['-p', dir, '-c', join(dir, 'nginx.conf')],
          ports: [listen as number],
        });
      });
      port = nginx.ports[0] as number;
    });
    afterAll(async () => {
      await nginx?.stop();
      await t?.close();
      pki?.remove();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('serves what PSC needs: discovery (with the issuer, not the proxy), JWKS, token, userinfo', async () => {
      const discovery = await viaNginx(port, '/.well-known/openid-configuration', pki.serverCa.pem);
      expect(discovery.status, nginx?.output()).toBe(200);
      const metadata = JSON.parse(discovery.body) as Record<string, string>;
      expect(metadata.issuer).toBe(t.issuer);
      const jwks = await viaNginx(port, '/jwks', pki.serverCa.pem);
      expect(jwks.status).toBe(200);
      expect((JSON.parse(jwks.body) as { keys: unknown[] }).keys.length).toBeGreaterThan(0);
      // Reached Passerelle (an OAuth error, not nginx's 404).
      const token = await viaNginx(port, '/token', pki.serverCa.pem, 'POST');
      expect(token.status).toBe(400);
      expect(JSON.parse(token.body)).toMatchObject({ error: expect.stringMatching(/^invalid_/) });
      const userinfo = await viaNginx(port, '/me', pki.serverCa.pem);
      expect(userinfo.body).toContain('invalid_token');
    });

    it('serves the staff login pages and the authorization endpoint', async () => {
      const auth = await viaNginx(port, '/auth?client_id=nobody', pki.serverCa.pem);
      expect(auth.status).toBe(400);
      expect(auth.body).toContain(messages.fr['error.engine.invalid_client']);
      const asset = await viaNginx(port, '/static/passerelle.css', pki.serverCa.pem);
      expect(asset.status).toBe(200);
    });

    it('keeps administration, health and other pages internal', async () => {
      for (const path of ['/', '/readyz', '/healthz', '/account/security-keys', '/demo/login', '/reg']) {
        expect((await viaNginx(port, path, pki.serverCa.pem)).status, path).toBe(404);
      }
      // Still served on the internal side.
      expect((await fetch(new URL('/readyz', t.issuer))).status).toBe(200);
    });
  });
}
