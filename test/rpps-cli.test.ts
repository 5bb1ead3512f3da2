import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { embeddedCli, forCommands, type runCli } from './helpers/cli.ts';
import { generateProfessionals, type Professional } from './simulators/annuaire/fixtures.ts';
import { type AnnuaireSimulator, startAnnuaireSimulator } from './simulators/annuaire/server.ts';

const API_KEY = 'cli-annuaire-key-0123456789';
const PASSWORD = 'a long enough password for the cli';

/** `passerelle rpps …` and `passerelle alerts` end to end: a real process, the simulated Annuaire Santé. */
describe('passerelle rpps (PGlite)', forCommands(7), () => {
  const professionals = [...generateProfessionals({ count: 60, now: new Date() })];
  const [marie, other] = professionals.filter((p) => p.active) as [Professional, Professional];
  let sim: AnnuaireSimulator;
  let cli: (args: string[], input?: string) => ReturnType<typeof runCli>;
  let remove: () => void;

  beforeAll(async () => {
    sim = await startAnnuaireSimulator({ professionals, apiKey: API_KEY });
    const embedded = embeddedCli('passerelle-cli-rpps-');
    Object.assign(embedded.env, {
      PASSERELLE_RPPS__API__BASE_URL: sim.baseUrl,
      PASSERELLE_RPPS__API__API_KEY: API_KEY,
    });
    ({ cli, remove } = embedded);
    for (const [username, p] of [
      ['marie', marie],
      ['homonym', marie],
    ] as const) {
      const created = await cli(
        [
          'users',
          'add',
          username,
          '--given-name',
          p.givenName,
          '--family-name',
          p.familyName,
          '--password-stdin',
        ],
        PASSWORD,
      );
      expect(created.code, created.stderr).toBe(0);
    }
  });
  afterAll(async () => {
    remove?.();
    await sim?.close();
  });

  it('links by hand only what the Annuaire confirms, with matching names', async () => {
    const invalid = await cli(['rpps', 'link', 'marie', '12345678901']);
    expect(invalid).toMatchObject({ code: 1, stderr: expect.stringContaining('not an RPPS number') });
    const names = await cli(['rpps', 'link', 'marie', other.rpps]);
    expect(names.code).toBe(1);
    expect(names.stderr).toContain('names differ');
    const linked = await cli(['rpps', 'link', 'marie', marie.rpps]);
    expect(linked.code, linked.stderr).toBe(0);
    expect(linked.stdout).toContain(`marie linked to ${marie.idNatPs}`);
    const status = await cli(['rpps', 'status', 'marie']);
    expect(status.stdout).toContain(`${marie.idNatPs} (RPPS ${marie.rpps}), status verified, source manual`);
    // The API key never reaches the terminal.
    expect(status.stderr + status.stdout + linked.stderr).not.toContain(API_KEY);
  });

  it('a second account claiming the same RPPS goes to the review queue; rejecting it restores nothing else', async () => {
    const claim = await cli(['rpps', 'link', 'homonym', marie.rpps]);
    expect(claim.code).toBe(1);
    const id = /queued for review as ([0-9a-f-]{36})/.exec(claim.stderr)?.[1];
    expect(id).toBeTruthy();
    const queue = await cli(['rpps', 'review']);
    expect(queue.stdout).toContain(`${id}  conflict`);
    expect(queue.stdout).toContain('held by      marie');
    const rejected = await cli(['rpps', 'review', 'reject', id ?? '', '--by', 'dr.admin']);
    expect(rejected.code, rejected.stderr).toBe(0);
    expect((await cli(['rpps', 'review'])).stdout).toContain('nothing to review');
    expect((await cli(['rpps', 'status', 'homonym'])).stdout).toContain('no national identity link');
    expect((await cli(['rpps', 'status', 'marie'])).stdout).toContain('status verified');
    const again = await cli(['rpps', 'review', 'accept', id ?? '']);
    expect(again).toMatchObject({ code: 1, stderr: expect.stringContaining('already rejected by dr.admin') });
  });

  it('sync: a summary, an inactive professional raises an alert that can be acknowledged', async () => {
    const first = await cli(['rpps', 'sync']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/sync completed \(full\)/);
    expect(first.stdout).not.toContain('API:');
    sim.deactivate(marie.idNatPs);
    // The gateway's quota answers once (without Retry-After): retried, and reported.
    sim.faults.queue(429, { retryAfterSeconds: null });
    const second = await cli(['rpps', 'sync']);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toMatch(/sync completed \(delta\)/);
    expect(second.stdout).toContain('inactive 1');
    expect(second.stdout).toMatch(/API: 1 retries \(quota 429: 1, gateway 504: 0, other: 0\)/);
    const alerts = await cli(['alerts']);
    const alertId = new RegExp(`([0-9a-f-]{36}) .* rpps\\.link\\.inactive .*${marie.idNatPs}`).exec(
      alerts.stdout,
    )?.[1];
    expect(alertId, alerts.stdout).toBeTruthy();
    expect((await cli(['alerts', 'ack', alertId ?? ''])).code).toBe(0);
    expect((await cli(['alerts'])).stdout).toContain('no open alert');
    const runs = await cli(['rpps', 'runs']);
    expect(runs.stdout.match(/completed {2}(full|delta) {2}command/g)).toHaveLength(2);
    const lookup = await cli(['rpps', 'lookup', other.rpps]);
    expect(lookup.stdout).toContain(`${other.idNatPs}  active`);
  });
});
