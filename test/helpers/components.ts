import { describe, it } from 'vitest';

/**
 * Stands in for a suite whose real component (a Debian package) is missing: a failure on CI, a visible
 * skip elsewhere. `problem` says what is missing and how to install it.
 */
export function missingComponentSuite(title: string, component: string, problem: string): void {
  describe(title, () => {
    if (process.env.CI === 'true') {
      it(`needs ${component} on CI`, () => {
        throw new Error(`CI=true but ${problem}`);
      });
    } else {
      it(`is skipped: ${problem}`, ({ skip }) => skip(problem));
    }
  });
}
