import type { z } from 'zod';

/** Internal reason codes; the user sees a translated, non-enumerating message for each. */
export type AuthFailureCode =
  | 'invalid_credentials'
  | 'rate_limited'
  | 'account_disabled'
  | 'service_unavailable';

export type AuthOutcome =
  | { kind: 'success'; accountId: string; amr: readonly string[] }
  | { kind: 'failure'; code: AuthFailureCode; retryAfterSeconds?: number };

/** What a method knows about the request; never the raw HTTP objects. */
export interface MethodContext {
  ip: string;
  userAgent: string;
  interactionUid: string;
  /** The identifier typed at the identify step, if the method needs one. */
  username: string | undefined;
}

/**
 * One authentication method (password, LDAP, WebAuthn, smart card, PSC…). Each validates its own
 * payload with its own schema and reports RFC 8176 amr values on success.
 */
export interface AuthMethod<Input = unknown> {
  readonly id: string;
  /** RFC 8176 values reported on success. */
  readonly amr: readonly string[];
  /** Whether the method needs the identify step first. */
  readonly needsUsername: boolean;
  readonly input: z.ZodType<Input>;
  /** The view rendering the method's form. */
  readonly view: string;
  authenticate(input: Input, context: MethodContext): Promise<AuthOutcome>;
}
