import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './helpers/server.ts';

/** A request id Passerelle generated itself. */
const GENERATED_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The address Passerelle attributes to a request, read from its access log line. */
async function loggedIp(t: TestServer, headers: Record<string, string>): Promise<string | undefined> {
  const response = await fetch(new URL('/healthz', t.issuer), { headers });
  const requestId = response.headers.get('x-request-id');
  await response.arrayBuffer();
  expect(requestId).toBeTruthy();
  // The access log line is written once the response is finished: wait for that very line.
  const accessLine = () =>
    t.logs.find((line) => line.includes(`"requestId":"${requestId}"`) && line.includes('"msg":"request"'));
  await expect.poll(accessLine).toBeDefined();
  return (JSON.parse(accessLine() ?? '{}') as { ip?: string }).ip;
}

describe('client address and request id behind a reverse proxy', () => {
  let direct: TestServer;
  let proxied: TestServer;

  beforeAll(async () => {
    direct = await startTestServer('pglite');
    proxied = await startTestServer('pglite', { config: { http: { trustProxy: true } } });
  });
  afterAll(async () => {
    await direct?.close();
    await proxied?.close();
  });

  it('without trustProxy, X-Forwarded-For and X-Request-Id from the client are ignored', async () => {
    const response = await fetch(new URL('/healthz', direct.issuer), {
      headers: { 'x-request-id': 'client-chosen-id-123' },
    });
    // Replaced by an id of Passerelle's own (a missing header would not do).
    expect(response.headers.get('x-request-id')).toMatch(GENERATED_ID);
    expect(await loggedIp(direct, { 'x-forwarded-for': '203.0.113.7' })).toBe('127.0.0.1');
  });

  it('with trustProxy, the address appended by the proxy counts, not the one the client forged', async () => {
    expect(await loggedIp(proxied, { 'x-forwarded-for': '198.51.100.66, 203.0.113.7' })).toBe('203.0.113.7');
    const response = await fetch(new URL('/healthz', proxied.issuer), {
      headers: { 'x-request-id': 'proxy-request-id-123' },
    });
    expect(response.headers.get('x-request-id')).toBe('proxy-request-id-123');
  });
});
