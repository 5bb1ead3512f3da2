/**
 * Failures of the Annuaire Santé API, one class per kind. They carry the HTTP status and the
 * OperationOutcome diagnostics, never the request headers (the API key).
 */

export type AnnuaireErrorKind =
  | 'unauthorized'
  | 'forbidden'
  | 'not-found'
  | 'gone'
  | 'invalid-request'
  | 'server'
  | 'unavailable';

type Details = { status: number | null; diagnostics?: string | null };

export abstract class AnnuaireError extends Error {
  abstract readonly kind: AnnuaireErrorKind;
  /** HTTP status of the last answer; null when none came (network, timeout, breaker open). */
  readonly status: number | null;
  /** `issue[].diagnostics` of the OperationOutcome, joined; null when the body had none. */
  readonly diagnostics: string | null;

  constructor(message: string, details: Details, options?: ErrorOptions) {
    super(message, options);
    this.status = details.status;
    this.diagnostics = details.diagnostics ?? null;
  }
}

/** 401: missing or refused API key. */
export class AnnuaireUnauthorizedError extends AnnuaireError {
  override readonly name = 'AnnuaireUnauthorizedError';
  readonly kind = 'unauthorized';
}

/** 403: the key may not use this API or resource. */
export class AnnuaireForbiddenError extends AnnuaireError {
  override readonly name = 'AnnuaireForbiddenError';
  readonly kind = 'forbidden';
}

/** 404: unknown resource or path. */
export class AnnuaireNotFoundError extends AnnuaireError {
  override readonly name = 'AnnuaireNotFoundError';
  readonly kind = 'not-found';
}

/** 410: the resource was deleted. */
export class AnnuaireGoneError extends AnnuaireError {
  override readonly name = 'AnnuaireGoneError';
  readonly kind = 'gone';
}

/** 400, 412 and other 4xx: the request was refused as written (a bug on our side). */
export class AnnuaireInvalidRequestError extends AnnuaireError {
  override readonly name = 'AnnuaireInvalidRequestError';
  readonly kind = 'invalid-request';
}

/** 500 outside paging restarts, other 5xx, and answers that are not the expected FHIR resource. */
export class AnnuaireServerError extends AnnuaireError {
  override readonly name = 'AnnuaireServerError';
  readonly kind = 'server';
}

export type UnavailableReason = 'retries-exhausted' | 'breaker-open' | 'incomplete';

/**
 * The API could not be reached or gave no complete answer: retries exhausted (429, 502, 503, 504,
 * timeouts, network), breaker open, or answers persistently missing matches (`incomplete`).
 */
export class AnnuaireUnavailableError extends AnnuaireError {
  override readonly name = 'AnnuaireUnavailableError';
  readonly kind = 'unavailable';
  readonly reason: UnavailableReason;

  constructor(message: string, details: Details & { reason: UnavailableReason }, options?: ErrorOptions) {
    super(message, details, options);
    this.reason = details.reason;
  }
}

/** Maps a final (non-retried) HTTP error status to its error class. */
export function errorForStatus(status: number, diagnostics: string | null, what: string): AnnuaireError {
  const details = { status, diagnostics };
  const message = `${what}: HTTP ${status}${diagnostics ? ` (${diagnostics})` : ''}`;
  if (status === 401) return new AnnuaireUnauthorizedError(message, details);
  if (status === 403) return new AnnuaireForbiddenError(message, details);
  if (status === 404) return new AnnuaireNotFoundError(message, details);
  if (status === 410) return new AnnuaireGoneError(message, details);
  if (status >= 400 && status < 500) return new AnnuaireInvalidRequestError(message, details);
  return new AnnuaireServerError(message, details);
}

/**
 * `_lastUpdated` deltas reach back 30 days at most: changes before that are lost, so the caller must run
 * a full pass instead. An expected outcome of a long gap, not an outage.
 */
export class DeltaTooOldError extends Error {
  readonly since: Date;
  readonly horizon: Date;

  constructor(since: Date, horizon: Date) {
    super(
      `changes since ${since.toISOString()} are out of reach: deltas go back to ${horizon.toISOString()}`,
    );
    this.name = 'DeltaTooOldError';
    this.since = since;
    this.horizon = horizon;
  }
}
