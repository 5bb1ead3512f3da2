import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AddressInUseError,
  listenLocal,
  listenOn,
  openHttpServer,
  portOpen,
  REFUSED_PORT,
  samePortAgain,
  startDaemon,
  withPorts,
} from './helpers/net.ts';
import { SLAPD, slapdAvailable, startSlapd } from './helpers/slapd.ts';

/**
 * The ports of test servers (test/helpers/net.ts): a port is never picked, closed and handed to a server
 * later (test/helpers/net.ts used to do that: `listen EADDRINUSE` on a loaded machine). A port that a
 * server must be told in advance may be taken by the time it binds: it starts again on another one.
 */

const held: Server[] = [];
/** Something else listening on 127.0.0.1: what a server finds when its port was taken meanwhile. */
async function holdPort(): Promise<number> {
  const server = createServer();
  held.push(server);
  return listenLocal(server);
}
afterEach(async () => {
  await Promise.all(held.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

describe('ports of test servers', () => {
  it('withPorts: a start whose port is taken runs again on another one, and reports the port it got', async () => {
    const taken = await holdPort();
    const tried: number[] = [];
    const server = createServer();
    held.push(server);
    const port = await withPorts(
      1,
      async ([candidate]) => {
        tried.push(candidate as number);
        return listenOn(server, candidate as number);
      },
      {
        first: [[taken]],
      },
    );
    expect(tried[0]).toBe(taken);
    expect(tried).toHaveLength(2);
    expect(port).toBe(tried[1]);
    expect(port).not.toBe(taken);
    expect(await portOpen(port)).toBe(true);
    // Other errors are not retried.
    await expect(withPorts(1, async () => Promise.reject(new Error('broken')))).rejects.toThrow('broken');
  });

  it('withPorts gives up after its attempts, naming the ports it found taken', async () => {
    const taken = await holdPort();
    const attempt = () => Promise.reject(new AddressInUseError('taken'));
    await expect(withPorts(1, attempt, { attempts: 2, first: [[taken], [taken]] })).rejects.toThrow(
      `ports in use at each of 2 attempts: [[${taken}]]`,
    );
  });

  it('an in-process server listens first on a port the kernel picks, then gets its handler', async () => {
    const { server, port, origin } = await openHttpServer();
    try {
      expect(origin).toBe(`http://127.0.0.1:${port}`);
      server.on('request', (_req, res) => res.end('served'));
      expect(await (await fetch(origin)).text()).toBe('served');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('samePortAgain: a server restarted on its port waits while something else still holds it', async () => {
    const port = await holdPort();
    const server = createServer();
    held.push(server);
    let attempts = 0;
    // The other listener goes away after a while; until then the restart finds the port taken.
    setTimeout(() => held[0]?.close(), 300);
    await samePortAgain(() => {
      attempts++;
      return listenOn(server, port);
    });
    expect(attempts).toBeGreaterThan(1);
    expect(server.address()).toMatchObject({ port });
  });

  it('a daemon is ready when it listens itself, not when something else answers on its port', async () => {
    const port = await holdPort();
    // `sleep` listens on nothing: the port answers, but not for it.
    await expect(
      startDaemon({ name: 'sleep', command: 'sleep', args: ['30'], ports: [port], timeoutMs: 1500 }),
    ).rejects.toThrow(`sleep not ready within 1500 ms (ports ${port})`);
  });

  it('a URL on REFUSED_PORT is refused at once', async () => {
    const err = await fetch(`http://127.0.0.1:${REFUSED_PORT}/`).catch((e: Error) => e);
    expect((err as Error & { cause?: { code?: string } }).cause?.code).toBe('ECONNREFUSED');
  });

  it.skipIf(!slapdAvailable())(`${SLAPD} told a taken port says so, and starts again on others`, async () => {
    const [ldap, ldaps] = [await holdPort(), await holdPort()];
    const slapd = await startSlapd({ generatedUsers: 0, tryPortsFirst: [[ldap, ldaps]] });
    try {
      const ports = [new URL(slapd.url).port, new URL(slapd.ldapsUrl).port].map(Number);
      expect(ports).not.toContain(ldap);
      expect(ports).not.toContain(ldaps);
      expect(await Promise.all(ports.map(portOpen))).toEqual([true, true]);
    } finally {
      await slapd.close();
    }
  });
});
