import type { Establishment } from '../accounts/establishments.ts';
import type { Config } from '../config/schema.ts';

/**
 * The FI habilité profile: what Passerelle's tokens carry when Pro Santé Connect is the client. PSC
 * pairs on `oid` (the account id: immutable, never reused), checks `tid` against its allow-list, and
 * accepts only the amr and acr values the ANS publishes: both are configuration (`psc` section).
 */

/** The establishment a PSC client acts for, from its `psc_establishment` metadata; undefined otherwise. */
export function pscEstablishmentOf(
  config: Config,
  metadata: Record<string, unknown>,
): Establishment | undefined {
  const finess = metadata.psc_establishment;
  return typeof finess === 'string' ? config.establishments.find((e) => e.finess === finess) : undefined;
}

/** Claims added for PSC: the tenant and the pairing pivot. */
export function pscAccountClaims(
  establishment: Establishment,
  accountId: string,
): { tid: string; oid: string } {
  return { tid: establishment.tid, oid: accountId };
}

/**
 * Keeps only the amr values PSC accepts and replaces the acr by the value configured for the level
 * reached; a level without a configured value sends no acr rather than one PSC does not expect.
 */
export function shapeForPsc<T extends { amr?: unknown; acr?: unknown }>(payload: T, psc: Config['psc']): T {
  const amr = Array.isArray(payload.amr)
    ? payload.amr.filter((v) => psc.amrAllowList.includes(String(v)))
    : [];
  const acr = typeof payload.acr === 'string' ? psc.acrValues[payload.acr] : undefined;
  const shaped = { ...payload, amr };
  if (acr) shaped.acr = acr;
  else delete shaped.acr;
  return shaped;
}

/**
 * PSC's `acr_values` as Passerelle levels: each PSC value (`psc.acrValues`' values) stands for the weakest
 * Passerelle level configured to send it; Passerelle's own values pass unchanged, others are dropped.
 */
export function passerelleAcrValues(
  config: Pick<Config, 'psc' | 'policy'>,
  acrValues: unknown,
): string | undefined {
  if (typeof acrValues !== 'string') return undefined;
  const levels = config.policy.levels.map((l) => l.acr);
  const mapped = acrValues.split(' ').flatMap((value) => {
    if (levels.includes(value)) return [value];
    const level = levels.find((acr) => config.psc.acrValues[acr] === value);
    return level ? [level] : [];
  });
  return mapped.join(' ');
}

/** The weakest level PSC accepts: two factors, phishing resistant (FIDO2 with user verification, CPS card). */
export function pscLevelAcr(levels: Config['policy']['levels']): string | undefined {
  return levels.find((l) => l.phishingResistant && l.minFactors >= 2)?.acr;
}
