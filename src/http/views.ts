import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join, resolve } from 'node:path';
import { Eta } from 'eta';
import type { Context } from 'koa';
import { labeller } from '../i18n/labels.ts';
import { type Locale, translator } from '../i18n/messages.ts';

export const VIEWS_DIR = resolve(import.meta.dirname, '../../views');

export interface PageContext {
  locale: Locale;
  demo: boolean;
  requestId?: string;
}

/**
 * Server-rendered pages: Eta templates with HTML escaping on by default; `it.t` translates a message,
 * `it.label` names an internal id (src/i18n/labels.ts).
 */
export class Views {
  readonly #eta = new Eta({ views: VIEWS_DIR, autoEscape: true, cache: true });

  render(name: string, page: PageContext, data: Record<string, unknown> = {}): string {
    return this.#eta.render(`./${name}`, {
      ...data,
      ...page,
      t: translator(page.locale),
      label: labeller(page.locale),
    });
  }
}

const CONTENT_TYPES: Record<string, string> = {
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
};

/** Browser libraries served from node_modules (no copy committed, no CDN): URL path → package file. */
const VENDOR_FILES: Record<string, { pkg: string; file: string }> = {
  '/static/vendor/simplewebauthn-browser.umd.min.js': {
    pkg: '@simplewebauthn/browser',
    file: 'dist/bundle/index.umd.min.js',
  },
};

/** The root directory of an installed package (its entry point is two levels down: script/index.js). */
function packageRoot(pkg: string): string {
  let dir = dirname(createRequire(import.meta.url).resolve(pkg));
  while (!dir.endsWith(join('node_modules', pkg)) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}

/**
 * Serves the files of views/static, and the vendored browser libraries, from memory (read once at
 * start): no CDN, no directory walking.
 */
export function staticAssets(): (ctx: Context, next: () => Promise<void>) => Promise<void> {
  const dir = join(VIEWS_DIR, 'static');
  const files = new Map<string, { body: Buffer; type: string }>();
  const walk = (sub: string) => {
    for (const entry of readdirSync(join(dir, sub), { withFileTypes: true })) {
      const rel = sub ? `${sub}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(rel);
      else {
        const type = CONTENT_TYPES[extname(entry.name)];
        if (type) files.set(`/static/${rel}`, { body: readFileSync(join(dir, rel)), type });
      }
    }
  };
  walk('');
  for (const [path, { pkg, file }] of Object.entries(VENDOR_FILES)) {
    const type = CONTENT_TYPES[extname(file)] ?? 'application/octet-stream';
    files.set(path, { body: readFileSync(join(packageRoot(pkg), file)), type });
  }
  return async (ctx, next) => {
    const file = ctx.method === 'GET' || ctx.method === 'HEAD' ? files.get(ctx.path) : undefined;
    if (!file) return next();
    ctx.type = file.type;
    ctx.set('cache-control', 'public, max-age=3600');
    ctx.body = file.body;
  };
}
