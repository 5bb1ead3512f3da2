/** Assurance policy: data, not code paths. A level is reached when all its required amr values are present. */
export interface AssuranceLevel {
  readonly acr: string;
  readonly requiredAmr: readonly string[];
}

/** The strongest level (last in the list) whose requirements the amr values satisfy. */
export function achievedAcr(levels: readonly AssuranceLevel[], amr: readonly string[]): string | undefined {
  const have = new Set(amr);
  let achieved: string | undefined;
  for (const level of levels) {
    if (level.requiredAmr.every((value) => have.has(value))) achieved = level.acr;
  }
  return achieved;
}

/** Union of the amr values of the methods completed in one authentication, in a stable order. */
export function combineAmr(methodAmrs: readonly (readonly string[])[]): string[] {
  const values = new Set(methodAmrs.flat());
  if (methodAmrs.length >= 2) values.add('mfa');
  return [...values].sort();
}

/** True when `acr` is at least as strong as `required` in the ordered list of levels. */
export function acrSatisfies(
  levels: readonly AssuranceLevel[],
  acr: string | undefined,
  required: string,
): boolean {
  const rank = (value: string | undefined) => levels.findIndex((l) => l.acr === value);
  return acr !== undefined && rank(acr) >= rank(required) && rank(required) >= 0;
}
