/** sysexits(3) codes of a start that cannot proceed. */
export const EX_UNAVAILABLE = 69;
export const EX_TEMPFAIL = 75;
export const EX_CONFIG = 78;

/** The database cannot be opened: a message for the operator (no stack) and the process exit code. */
export class DatabaseStartError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DatabaseStartError';
    this.exitCode = exitCode;
  }
}
