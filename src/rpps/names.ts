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
