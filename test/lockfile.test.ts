import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

// `npm ci` installs exactly what package-lock.json lists and refuses a lockfile that misses a package
// some entry depends on, optional ones included (biome's per-platform binaries broke CI that way).

interface LockEntry {
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

const lockfile = JSON.parse(readFileSync(join(import.meta.dirname, '../package-lock.json'), 'utf8')) as {
  lockfileVersion: number;
  packages: Record<string, LockEntry>;
};

/** Where Node (and npm) would find `name` from the package at `path`: its own node_modules, then each parent's. */
function resolves(path: string, name: string): boolean {
  let from = path;
  for (;;) {
    const candidate = from ? `${from}/node_modules/${name}` : `node_modules/${name}`;
    if (candidate in lockfile.packages) return true;
    if (!from) return false;
    const parent = from.lastIndexOf('/node_modules/');
    from = parent < 0 ? '' : from.slice(0, parent);
  }
}

describe('package-lock.json', () => {
  it('lists every package that an entry depends on, optional ones (platform binaries) included', () => {
    expect(lockfile.lockfileVersion).toBeGreaterThanOrEqual(2);
    const missing: string[] = [];
    for (const [path, entry] of Object.entries(lockfile.packages)) {
      const wanted = {
        ...entry.dependencies,
        ...entry.optionalDependencies,
        ...(path === '' ? entry.devDependencies : {}),
      };
      for (const name of Object.keys(wanted)) {
        if (!resolves(path, name)) missing.push(`${name} (wanted by ${path || 'the project'})`);
      }
    }
    expect(missing).toEqual([]);
  });
});
