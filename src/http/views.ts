import { readdirSync, readFileSync } from 'node:fs';
import { extname, join, resolve } from 'node:path';
import { Eta } from 'eta';
import type { Context } from 'koa';
import { type Locale, translator } from '../i18n/messages.ts';

export const VIEWS_DIR = resolve(import.meta.dirname, '../../views');

export interface PageContext {
  locale: Locale;
  demo: boolean;
  requestId?: string;
}

/** Server-rendered pages: Eta templates with HTML escaping on by default. */
export class Views {
  readonly #eta = new Eta({ views: VIEWS_DIR, autoEscape: true, cache: true });

  render(name: string, page: PageContext, data: Record<string, unknown> = {}): string {
    return this.#eta.render(`./${name}`, { ...data, ...page, t: translator(page.locale) });
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

/** Serves the files of views/static from memory (read once at start): no CDN, no directory walking. */
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
  return async (ctx, next) => {
    const file = ctx.method === 'GET' || ctx.method === 'HEAD' ? files.get(ctx.path) : undefined;
    if (!file) return next();
    ctx.type = file.type;
    ctx.set('cache-control', 'public, max-age=3600');
    ctx.body = file.body;
  };
}
