import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { cliOverrides } from '../src/cli/context.ts';
import { startServing } from '../src/cli/serve.ts';
import { loadConfig } from '../src/config/load.ts';
import { createLogger } from '../src/http/logger.ts';

/**
 * Demo mode has a public key-encryption key, public client secrets and a known password: `passerelle
 * serve --demo` (npm start) listens on this machine only unless the operator names another address
 * (http.host, PASSERELLE_HTTP__HOST or --host). `passerelle serve` started in process, as the command does.
 */

const quiet = () => createLogger('warn', new Writable({ write: (_c, _e, done) => done() }) as never);

/** Starts `passerelle serve` with these command-line options and environment; returns the bound address. */
async function boundAddress(
  options: Parameters<typeof cliOverrides>[0],
  env: Record<string, string> = {},
): Promise<string> {
  const { config } = loadConfig({
    env: { ...env, PASSERELLE_DATABASE__DATA_DIR: 'memory://' },
    overrides: cliOverrides(options),
  });
  // Port 0: any free port (the configuration itself accepts 1 to 65535).
  const serving = await startServing({ ...config, http: { ...config.http, port: 0 } }, quiet());
  try {
    return (serving.server.address() as AddressInfo).address;
  } finally {
    await serving.stop();
  }
}

describe('the demo listens on 127.0.0.1 unless told otherwise', () => {
  it('serve --demo binds the loopback address', async () => {
    expect(await boundAddress({ demo: true })).toBe('127.0.0.1');
  });

  it('an explicit address is honoured: --host, or http.host from the environment', async () => {
    expect(await boundAddress({ demo: true, host: '0.0.0.0' })).toBe('0.0.0.0');
    expect(await boundAddress({ demo: true }, { PASSERELLE_HTTP__HOST: '127.0.0.2' })).toBe('127.0.0.2');
  });

  it('a demo reachable from other machines is said so at start', () => {
    const exposed = loadConfig({
      env: { PASSERELLE_DEMO: 'true' },
      overrides: cliOverrides({ host: '0.0.0.0' }),
    });
    expect(exposed.warnings.join('\n')).toMatch(
      /DEMO MODE listening on 0\.0\.0\.0: other machines can reach/,
    );
    const local = loadConfig({ env: { PASSERELLE_DEMO: 'true' } });
    expect(local.warnings.join('\n')).not.toMatch(/other machines/);
  });

  it('outside demo mode the default stays every interface (production sits behind its proxy or firewall)', () => {
    const { config } = loadConfig({
      env: {
        PASSERELLE_ISSUER: 'https://passerelle.hopital.example',
        PASSERELLE_KEYS__ENCRYPTION_KEY: Buffer.alloc(32, 7).toString('base64'),
      },
    });
    expect(config.http.host).toBe('0.0.0.0');
  });
});
