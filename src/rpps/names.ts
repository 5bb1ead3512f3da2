/**
 * Comparable form of a person's name: accents removed, upper case, hyphens and apostrophes as spaces,
 * spaces collapsed. "Jean-Éric D'Artagnan" and "JEAN ERIC D ARTAGNAN" fold to the same value.
 */
export function foldName(value: string | null | undefined): string {
  if (!value) return '';
  return value
    .normalize('NFD')
    .replace(/\p{M}/gu, '')
    .replace(/Œ/g, 'OE')
    .replace(/œ/g, 'oe')
    .replace(/Æ/g, 'AE')
    .replace(/æ/g, 'ae')
    .toUpperCase()
    .replace(/[^A-Z0-9]+/g, ' ')
    .trim();
}

/** True when both names fold to the same value (and are not empty). */
export function sameName(a: string | null | undefined, b: string | null | undefined): boolean {
  const fa = foldName(a);
  return fa !== '' && fa === foldName(b);
}

function tokens(value: string | null | undefined): string[] {
  return foldName(value).split(' ').filter(Boolean);
}

/**
 * Whether the local names and the exercise names of the RPPS can be the same person: they share a family
 * name token (compound and married names), and, when both are known, the first given names agree. An
 * unknown local family name cannot contradict.
 */
export function namesConsistent(
  local: { familyName: string | null; givenName: string | null },
  national: { familyName: string | null; givenName: string | null },
): boolean {
  const localFamily = tokens(local.familyName);
  const nationalFamily = tokens(national.familyName);
  if (!localFamily.length || !nationalFamily.length) return true;
  if (!localFamily.some((t) => nationalFamily.includes(t))) return false;
  const localGiven = tokens(local.givenName);
  const nationalGiven = tokens(national.givenName);
  if (!localGiven.length || !nationalGiven.length) return true;
  return nationalGiven.includes(localGiven[0] as string) || localGiven.includes(nationalGiven[0] as string);
}
