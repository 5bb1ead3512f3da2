import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { Logger } from 'pino';
import type { KeySet } from './keys.ts';

/** Internal header carrying our request id into the engine's own context (set by the host, not the client). */
export const REQUEST_ID_HEADER = 'x-request-id';

export interface ProviderHostOptions {
  build(keySet: KeySet): Provider;
  loadKeySet(): Promise<KeySet>;
  fingerprint(): Promise<string>;
  reloadIntervalMs: number;
  logger: Logger;
}

/**
 * Holds the current protocol engine. The engine's key set is fixed at construction, so when another
 * instance (or the CLI) rotates keys, this host notices the new fingerprint and swaps in a fresh
 * engine; all protocol state lives in the database, so the swap is invisible to users.
 */
export class ProviderHost {
  readonly #options: ProviderHostOptions;
  #provider: Provider;
  #callback: ReturnType<Provider['callback']>;
  #fingerprint: string;
  #timer: NodeJS.Timeout | undefined;

  private constructor(options: ProviderHostOptions, provider: Provider, fingerprint: string) {
    this.#options = options;
    this.#provider = provider;
    this.#callback = provider.callback();
    this.#fingerprint = fingerprint;
  }

  static async create(options: ProviderHostOptions): Promise<ProviderHost> {
    const keySet = await options.loadKeySet();
    return new ProviderHost(options, options.build(keySet), keySet.fingerprint);
  }

  get provider(): Provider {
    return this.#provider;
  }

  get fingerprint(): string {
    return this.#fingerprint;
  }

  /** Koa middleware handing the request to the protocol engine. */
  handle = async (ctx: Context): Promise<void> => {
    ctx.respond = false;
    ctx.req.headers[REQUEST_ID_HEADER] = String(ctx.state.requestId ?? '');
    await this.#callback(ctx.req, ctx.res);
  };

  async reloadIfChanged(): Promise<boolean> {
    const current = await this.#options.fingerprint();
    if (current === this.#fingerprint) return false;
    const keySet = await this.#options.loadKeySet();
    this.#provider = this.#options.build(keySet);
    this.#callback = this.#provider.callback();
    this.#fingerprint = keySet.fingerprint;
    this.#options.logger.info({ fingerprint: keySet.fingerprint }, 'signing keys reloaded');
    return true;
  }

  start(): void {
    this.#timer = setInterval(() => {
      this.reloadIfChanged().catch((err: unknown) =>
        this.#options.logger.warn({ err }, 'cannot check signing keys (database unavailable?)'),
      );
    }, this.#options.reloadIntervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
