import type { CompletedMethod } from '../db/types.ts';

/**
 * Assurance policy: data, not code paths. A level is reached when the methods completed in one
 * authentication prove at least `minFactors` distinct factor kinds and, if asked, include a
 * phishing-resistant method (origin-bound: FIDO2 key, CPS card).
 */
export interface AssuranceLevel {
  readonly acr: string;
  readonly minFactors: number;
  readonly phishingResistant: boolean;
}

export type FactorKind = 'knowledge' | 'possession' | 'inherence';

/** RFC 8176 amr values and the factor they prove. `mfa`, `user` and `pop` prove no factor by themselves. */
const FACTOR_OF_AMR: Readonly<Record<string, FactorKind>> = {
  pwd: 'knowledge',
  pin: 'knowledge',
  kba: 'knowledge',
  hwk: 'possession',
  swk: 'possession',
  sc: 'possession',
  otp: 'possession',
  sms: 'possession',
  tel: 'possession',
  fpt: 'inherence',
  face: 'inherence',
  iris: 'inherence',
  retina: 'inherence',
  vbm: 'inherence',
};

export interface Assurance {
  /** Union of the methods' amr values, with `mfa` when two factor kinds are proven; sorted. */
  amr: string[];
  /** The strongest level reached, if any. */
  acr: string | undefined;
  factors: number;
  phishingResistant: boolean;
}

/** What a set of methods (completed, or planned) proves. */
export function assess(
  levels: readonly AssuranceLevel[],
  methods: readonly Pick<CompletedMethod, 'amr' | 'phishingResistant'>[],
): Assurance {
  const values = new Set(methods.flatMap((m) => m.amr));
  const kinds = new Set([...values].map((v) => FACTOR_OF_AMR[v]).filter((k) => k !== undefined));
  if (kinds.size >= 2) values.add('mfa');
  const assurance: Assurance = {
    amr: [...values].sort(),
    acr: undefined,
    factors: kinds.size,
    phishingResistant: methods.some((m) => m.phishingResistant),
  };
  for (const level of levels) if (reaches(assurance, level)) assurance.acr = level.acr;
  return assurance;
}

export function reaches(assurance: Pick<Assurance, 'factors' | 'phishingResistant'>, level: AssuranceLevel) {
  return assurance.factors >= level.minFactors && (!level.phishingResistant || assurance.phishingResistant);
}

const rank = (levels: readonly AssuranceLevel[], acr: string | undefined) =>
  levels.findIndex((l) => l.acr === acr);

/**
 * The level a request needs: the strongest of the configured default, the client's own requirement,
 * and the weakest known value of `acr_values` (a client asking for more gets a step-up; unknown
 * values are ignored, as acr_values are voluntary).
 */
export function requiredLevel(
  levels: readonly AssuranceLevel[],
  sources: {
    defaultAcr: string;
    clientAcr?: string | undefined;
    /** A floor set by a profile (PSC: two-factor, phishing resistant), whatever the client asks. */
    profileAcr?: string | undefined;
    acrValues?: unknown;
  },
): AssuranceLevel {
  const requested =
    typeof sources.acrValues === 'string'
      ? sources.acrValues
          .split(' ')
          .map((value) => rank(levels, value))
          .filter((index) => index >= 0)
      : [];
  const index = Math.max(
    rank(levels, sources.defaultAcr),
    rank(levels, sources.clientAcr),
    rank(levels, sources.profileAcr),
    requested.length ? Math.min(...requested) : -1,
    0,
  );
  return levels[index] as AssuranceLevel;
}

/**
 * The methods Passerelle proved itself: without those whose proof came from an upstream provider. A
 * login for Pro Santé Connect counts only these, so that PSC's own authentication never comes back to
 * PSC as Passerelle's.
 */
export function provenLocally<M extends Pick<CompletedMethod, 'federated'>>(methods: readonly M[]): M[] {
  return methods.filter((m) => m.federated !== true);
}

/** Completed methods still valid for a maximum authentication age (seconds), at `now` (epoch seconds). */
export function withinMaxAge(
  methods: readonly CompletedMethod[],
  maxAge: number | undefined,
  now: number,
): CompletedMethod[] {
  return maxAge === undefined ? [...methods] : methods.filter((m) => now - m.at <= maxAge);
}
