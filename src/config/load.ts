import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { type Config, configSchema } from './schema.ts';

/** Exit code for configuration errors (sysexits EX_CONFIG). */
export const CONFIG_EXIT_CODE = 78;

/** Public, well-known demo key-encryption key: demo mode only, never protects real secrets. */
const DEMO_ENCRYPTION_KEY = Buffer.from('passerelle-demo-kek-not-secret!!').toString('base64');

export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export interface LoadedConfig {
  config: Config;
  warnings: string[];
  /** Where the file came from, if any. */
  file?: string;
}

export interface LoadOptions {
  env: Record<string, string | undefined>;
  file?: string;
  /** Overrides applied last (command-line flags). */
  overrides?: Record<string, unknown>;
}

const ENV_PREFIX = 'PASSERELLE_';
const ENV_ALIASES: Record<string, string[]> = { DATABASE_URL: ['database', 'url'], PORT: ['http', 'port'] };

function camel(segment: string): string {
  return segment.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function parseEnvValue(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const [i, key] of path.entries()) {
    if (i === path.length - 1) {
      node[key] = value;
      return;
    }
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
}

/** Collects PASSERELLE_SECTION__SOME_KEY=value pairs as { section: { someKey: value } }. */
function fromEnv(
  env: Record<string, string | undefined>,
  origins: Map<string, string>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || value === '') continue;
    let path = ENV_ALIASES[name];
    if (!path && name.startsWith(ENV_PREFIX) && name !== `${ENV_PREFIX}CONFIG`) {
      path = name.slice(ENV_PREFIX.length).split('__').map(camel);
    }
    if (!path) continue;
    setPath(out, path, parseEnvValue(value));
    origins.set(path.join('.'), name);
  }
  return out;
}

function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const current = out[key];
    const bothObjects =
      typeof value === 'object' &&
      value !== null &&
      !Array.isArray(value) &&
      typeof current === 'object' &&
      current !== null &&
      !Array.isArray(current);
    out[key] = bothObjects
      ? merge(current as Record<string, unknown>, value as Record<string, unknown>)
      : value;
  }
  return out;
}

function readFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`config file ${file}: cannot be read (${(err as NodeJS.ErrnoException).code})`]);
  }
  let data: unknown;
  try {
    data = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError([
      `config file ${file}: not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'} (${(err as Error).message.split('\n')[0]})`,
    ]);
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw new ConfigError([`config file ${file}: must contain a mapping of keys`]);
  }
  return data as Record<string, unknown>;
}

function describeIssue(issue: z.core.$ZodIssue, origins: Map<string, string>): string {
  const keys =
    issue.code === 'unrecognized_keys'
      ? issue.keys.map((k) => [...issue.path, k].join('.'))
      : [issue.path.join('.')];
  return keys
    .map((key) => {
      const origin = origins.get(key);
      const where = origin ? ` (from ${origin})` : '';
      const what = issue.code === 'unrecognized_keys' ? 'unknown key' : issue.message;
      return `${key || '(root)'}${where}: ${what}`;
    })
    .join('\n  - ');
}

export function loadConfig(options: LoadOptions): LoadedConfig {
  const origins = new Map<string, string>();
  const file = options.file ?? options.env.PASSERELLE_CONFIG;
  const fromFile = file ? readFile(file) : {};
  const merged = merge(merge(fromFile, fromEnv(options.env, origins)), options.overrides ?? {});
  for (const key of Object.keys(options.overrides ?? {})) origins.set(key, 'command line');

  const result = configSchema.safeParse(merged);
  if (!result.success) {
    throw new ConfigError(result.error.issues.map((issue) => describeIssue(issue, origins)));
  }
  const raw = result.data;
  const warnings: string[] = [];
  if (raw.demo) {
    warnings.push(
      raw.keys.encryptionKey
        ? 'DEMO MODE: demo account with a public password and demo client are enabled. Never use in production.'
        : 'DEMO MODE: public demo key-encryption key, demo account and demo client are enabled. Never use in production.',
    );
  }
  if (raw.demo && raw.http.host && !/^(127\.\d+\.\d+\.\d+|::1|localhost)$/.test(raw.http.host)) {
    warnings.push(
      `DEMO MODE listening on ${raw.http.host}: other machines can reach a server whose secrets and password are public`,
    );
  }
  if (raw.issuer?.startsWith('http://') && raw.demo) {
    warnings.push(`issuer ${raw.issuer} is not https: acceptable on localhost for the demo only`);
  }
  const issuer = (raw.issuer ?? `http://localhost:${raw.http.port}`).replace(/\/$/, '');
  const config: Config = Object.freeze({
    ...raw,
    issuer,
    keys: { ...raw.keys, encryptionKey: raw.keys.encryptionKey ?? DEMO_ENCRYPTION_KEY },
    // The demo's secrets are public: it listens on this machine only unless the operator names an address.
    http: { ...raw.http, host: raw.http.host ?? (raw.demo ? '127.0.0.1' : '0.0.0.0') },
  });
  return { config, warnings, file };
}
