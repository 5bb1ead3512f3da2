/**
 * PSC's memory of which national identity a local account of an establishment is linked to ("appairage"),
 * keyed on (FI alias, tid, oid). A pairing lives `ttlSeconds` when set (the real lifetime is unknown).
 */

export interface Pairing {
  alias: string;
  tid: string;
  oid: string;
  idNatPs: string;
  pairedAt: Date;
  /** null: no expiry. */
  expiresAt: Date | null;
  /** Each later delegated login confirmed on this pairing. */
  confirmations: Date[];
}

export class Pairings {
  readonly #byKey = new Map<string, Pairing>();
  readonly #ttlSeconds: number | undefined;
  readonly #now: () => Date;

  constructor(ttlSeconds: number | undefined, now: () => Date) {
    this.#ttlSeconds = ttlSeconds;
    this.#now = now;
  }

  static #key(alias: string, tid: string, oid: string): string {
    return JSON.stringify([alias, tid, oid]);
  }

  /** The live pairing of the account, or undefined (an expired one is forgotten). */
  find(alias: string, tid: string, oid: string): Pairing | undefined {
    const key = Pairings.#key(alias, tid, oid);
    const pairing = this.#byKey.get(key);
    if (pairing?.expiresAt && pairing.expiresAt <= this.#now()) {
      this.#byKey.delete(key);
      return undefined;
    }
    return pairing;
  }

  pair(alias: string, tid: string, oid: string, idNatPs: string): Pairing {
    const pairedAt = this.#now();
    const pairing: Pairing = {
      alias,
      tid,
      oid,
      idNatPs,
      pairedAt,
      expiresAt:
        this.#ttlSeconds === undefined ? null : new Date(pairedAt.getTime() + this.#ttlSeconds * 1000),
      confirmations: [],
    };
    this.#byKey.set(Pairings.#key(alias, tid, oid), pairing);
    return pairing;
  }

  /** Every pairing, expired ones included, in creation order. */
  all(): Pairing[] {
    return [...this.#byKey.values()];
  }

  /** Forgets a pairing (the user unpairs); true when there was one. */
  remove(alias: string, tid: string, oid: string): boolean {
    return this.#byKey.delete(Pairings.#key(alias, tid, oid));
  }
}
