import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './helpers/cli.ts';

// The entry points on a Node older than 24 (the system's, where npm's pinned Node 24 is not first on the
// PATH) print one friendly line, not a stack trace about the ".ts" extension.

/** A Node older than 24 on this machine (the system one: /usr/bin/node on these machines), if any. */
function olderNode(): string | undefined {
  const found = spawnSync('which', ['-a', 'node'], {
    encoding: 'utf8',
    env: { PATH: '/usr/local/bin:/usr/bin:/bin' },
  });
  const candidates = new Set([...found.stdout.split('\n').filter(Boolean), '/usr/bin/node']);
  for (const candidate of candidates) {
    try {
      const version = execFileSync(candidate, ['--version'], { encoding: 'utf8' }).trim();
      if (Number(/^v(\d+)\./.exec(version)?.[1]) < 24) return realpathSync(candidate);
    } catch {}
  }
  return undefined;
}

const node = olderNode();
const scripts = (
  JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
).scripts;

/** Runs a shell command from the repository with that older Node first on the PATH (and no Node 24 on it). */
function withOlderNode(command: string) {
  return spawnSync('sh', ['-c', command], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    env: { PATH: `${dirname(node ?? '')}:/usr/bin:/bin`, HOME: process.env.HOME ?? '/root' },
    // Against a hang only (npm starting is slow on a loaded machine), as runCli.
    timeout: 240_000,
  });
}

const friendly = (what: string, how: string) =>
  new RegExp(
    `^${what} needs Node\\.js 24 or later \\(this is v\\d+\\.\\d+\\.\\d+\\); run it through npm \\(${how}\\) so that the pinned Node 24 is used\\.\\n$`,
  );

describe.skipIf(!node && process.env.CI !== 'true')('the entry points on a Node older than 24', () => {
  it('this machine has one (the system Node)', () => {
    expect(node, 'no Node older than 24 found (which -a node, /usr/bin/node)').toBeDefined();
  });

  it('npm run demo prints the friendly version message, without a stack', () => {
    const result = withOlderNode(scripts.demo ?? '');
    expect(result.status, result.stderr).toBe(1);
    expect(result.stderr).toMatch(friendly('the Passerelle demo', '"npm run demo"'));
    expect(result.stderr).not.toMatch(/\n\s+at |ERR_UNKNOWN_FILE_EXTENSION/);
    expect(result.stdout).toBe('');
  });

  it('the passerelle command prints the same message', () => {
    const result = withOlderNode('bin/passerelle.js --help');
    expect(result.status, result.stderr).toBe(1);
    expect(result.stderr).toMatch(friendly('passerelle', '"npx passerelle" or "npm run passerelle --"'));
    expect(result.stdout).toBe('');
  });
});
