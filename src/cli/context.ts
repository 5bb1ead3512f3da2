import type { Logger } from 'pino';
import { CONFIG_EXIT_CODE, ConfigError, type LoadedConfig, loadConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { createLogger } from '../http/logger.ts';
import { zonedIso } from '../i18n/time.ts';

export interface GlobalOptions {
  config?: string;
  demo?: boolean;
  /** `serve --host`: the address to listen on (http.host). */
  host?: string;
}

/** The configuration given on the command line (applied over the file and the environment). */
export function cliOverrides(options: GlobalOptions): Record<string, unknown> | undefined {
  const overrides = {
    ...(options.demo ? { demo: true } : {}),
    ...(options.host ? { http: { host: options.host } } : {}),
  };
  return Object.keys(overrides).length ? overrides : undefined;
}

export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.exitCode = exitCode;
  }
}

/** Loads and validates the configuration once; modules receive it typed, never read process.env. */
export function loadCliConfig(
  options: GlobalOptions,
  logLevel?: string,
): { loaded: LoadedConfig; logger: Logger } {
  let loaded: LoadedConfig;
  try {
    loaded = loadConfig({
      env: process.env,
      file: options.config,
      overrides: cliOverrides(options),
    });
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(`passerelle: ${err.message}`, CONFIG_EXIT_CODE);
    throw err;
  }
  const logger = createLogger(logLevel ?? loaded.config.log.level, process.stderr as never);
  for (const warning of loaded.warnings) logger.warn(warning);
  return { loaded, logger };
}

/** Reads a secret from standard input (one line), for scripts: never from the command line. */
export async function readStdinLine(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

/** Prompts twice without echo on a terminal. */
export async function promptPassword(label: string): Promise<string> {
  if (!process.stdin.isTTY) throw new CliError('no terminal: pass the password with --password-stdin');
  const ask = (question: string) =>
    new Promise<string>((resolve) => {
      process.stderr.write(question);
      const stdin = process.stdin;
      stdin.setRawMode(true);
      stdin.resume();
      let value = '';
      const onData = (data: Buffer) => {
        for (const char of data.toString('utf8')) {
          if (char === '\r' || char === '\n') {
            stdin.setRawMode(false);
            stdin.pause();
            stdin.off('data', onData);
            process.stderr.write('\n');
            resolve(value);
            return;
          }
          if (char === '\u0003') process.exit(130);
          if (char === '\u007f') value = value.slice(0, -1);
          else value += char;
        }
      };
      stdin.on('data', onData);
    });
  const first = await ask(`${label}: `);
  const second = await ask(`${label} (again): `);
  if (first !== second) throw new CliError('the two passwords differ');
  return first;
}

export const out = (line: string) => process.stdout.write(`${line}\n`);

/**
 * Times as the command line prints them: ISO 8601 in the establishment's time zone (`ui.timeZone`) with
 * its offset, `2026-12-08T06:04:05+01:00`; `fallback` when there is no time.
 */
export function cliTime(config: Pick<Config, 'ui'>) {
  return (date: Date | null | undefined, fallback = '-') =>
    date ? zonedIso(date, config.ui.timeZone) : fallback;
}

/** Where applications find the issuer: its discovery document. */
export const discoveryUrl = (config: Pick<Config, 'issuer'>) =>
  `${config.issuer}/.well-known/openid-configuration`;

/** Progress on a terminal: one line rewritten in place; elsewhere (logs), a line every few seconds. */
export class ProgressLine {
  readonly #stream: NodeJS.WriteStream;
  readonly #intervalMs: number;
  #last: number;
  #written = false;

  constructor(stream: NodeJS.WriteStream) {
    this.#stream = stream;
    this.#intervalMs = stream.isTTY ? 250 : 5000;
    // A terminal shows progress at once; a log gets its first line after the interval.
    this.#last = stream.isTTY ? 0 : performance.now();
  }

  show(line: string): void {
    const now = performance.now();
    if (now - this.#last < this.#intervalMs) return;
    this.#last = now;
    if (this.#stream.isTTY) this.#stream.write(`\r${line}\u001b[K`);
    else this.#stream.write(`${line}\n`);
    this.#written = true;
  }

  end(): void {
    if (this.#written && this.#stream.isTTY) this.#stream.write('\n');
  }
}
