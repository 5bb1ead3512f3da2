/**
 * National identifiers of health professionals. RPPS: 11 digits ending with a Luhn check digit.
 * idNatPS: a type prefix and the identifier (`8` + RPPS, `0` + ADELI, …); the key of every link.
 */

export const ID_NAT_PS_SYSTEM = 'urn:oid:1.2.250.1.71.4.2.1';
export const RPPS_SYSTEM = 'https://rpps.esante.gouv.fr';
/** Identifier system used by older Annuaire Santé responses for the RPPS. */
export const LEGACY_RPPS_SYSTEM = 'http://rpps.fr';
export const IDENTIFIER_TYPE_SYSTEM = 'https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203';
export const LEGACY_IDENTIFIER_TYPE_SYSTEM = 'http://interopsante.org/CodeSystem/v2-0203';

/** Luhn check over a string of digits (the last digit is the key). */
export function luhnValid(digits: string): boolean {
  if (!/^\d+$/.test(digits)) return false;
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

/** The Luhn key to append to `digits`. */
export function luhnKey(digits: string): string {
  for (let key = 0; key < 10; key++) if (luhnValid(`${digits}${key}`)) return String(key);
  throw new Error('unreachable');
}

export function isRpps(value: string): boolean {
  return /^\d{11}$/.test(value) && luhnValid(value);
}

/** The RPPS number inside an RPPS-based idNatPS (`8` + 11 digits), or null. */
export function rppsOf(idNat: string): string | null {
  return /^8\d{11}$/.test(idNat) ? idNat.slice(1) : null;
}

/**
 * Accepts an RPPS number or an idNatPS as typed by an administrator or held by a directory attribute;
 * returns the idNatPS, or null when it is not one: `8` + RPPS (Luhn key checked), `0` + ADELI (9 digits),
 * or a structure-based identifier (type digit + FINESS/SIRET-based id + `/` + internal id).
 */
export function normaliseIdNat(value: string): string | null {
  const v = value.trim();
  if (/^\d{11}$/.test(v)) return isRpps(v) ? `8${v}` : null;
  if (/^8\d{11}$/.test(v)) return isRpps(v.slice(1)) ? v : null;
  if (/^0\d{9}$/.test(v)) return v;
  if (/^[1-7]\d{9,14}\/[0-9A-Za-z-]{1,30}$/.test(v)) return v;
  return null;
}
