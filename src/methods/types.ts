import type { z } from 'zod';

/**
 * Reason codes shown to the user (each maps to one translated message). Codes that could reveal
 * whether an account exists are only returned after the credential itself was proven.
 */
export type AuthFailureCode =
  /** Unknown user, wrong password, bad signature…: one message for all. */
  | 'invalid_credentials'
  | 'rate_limited'
  /** Disabled or locked account, reported only after a valid credential. */
  | 'account_disabled'
  /** A dependency (directory, database) is down. */
  | 'service_unavailable'
  /** Directory password expired (AD 532, 701): reported only after the right password. */
  | 'password_expired'
  /** Directory password must be changed (AD 773): reported only after the right password. */
  | 'password_must_change'
  /** A security key outside the attestation policy. */
  | 'authenticator_not_allowed'
  /** The WebAuthn ceremony did not complete (cancelled, wrong origin, no user verification…). */
  | 'ceremony_failed'
  /** A security key blocked as possibly cloned (its signature counter went back): only after its valid signature. */
  | 'credential_blocked'
  /** The card certificate is not acceptable (expired, revoked, wrong CA, wrong usage). */
  | 'certificate_rejected'
  /** No client certificate reached Passerelle. */
  | 'certificate_missing'
  /** A valid card that no account is linked to. */
  | 'card_not_linked'
  /** A step-up proved a different account than the one of the session. */
  | 'account_mismatch'
  /** The login through Pro Santé Connect did not complete (refused, expired, invalid answer). */
  | 'upstream_failed'
  /** PSC proved a national identity linked to no account (or a link flagged inactive/conflict). */
  | 'psc_not_linked'
  /** PSC proved a national identity that contradicts the account's link, or is another account's. */
  | 'national_id_conflict'
  /** PSC's level (`acr`) is below the establishment's minimum, or missing or unknown. */
  | 'psc_level_too_low'
  /** PSC proved an identity from Pro Santé Identité and the establishment accepts RPPS identities only. */
  | 'psc_identity_not_accepted';

/** A national identifier proven by the method (CPS card, PSC), recorded as an RPPS link proof. */
export interface ProvenNationalId {
  idNat: string;
  /** The RPPS (idNatPS) unless said otherwise; Pro Santé Identité through PSC. */
  origin?: 'rpps' | 'psi';
  source: 'cps-certificate' | 'psc-login';
}

export type AuthOutcome =
  | {
      kind: 'success';
      accountId: string;
      /** RFC 8176 values for this method as it actually ran (e.g. `pin` vs `user` for a key). */
      amr: readonly string[];
      /** Internal detail for the audit trail (e.g. credential id, certificate serial); no secrets. */
      detail?: Record<string, string | number | boolean>;
      nationalId?: ProvenNationalId;
      /** This login's resistance to phishing, when it depends on how it ran (PSC: card or e-CPS). */
      phishingResistant?: boolean;
      /** The upstream provider's session id (PSC), ended by its back-channel logout. */
      upstreamSid?: string;
    }
  | {
      kind: 'failure';
      code: AuthFailureCode;
      /** Internal reason code for the audit trail, e.g. `unknown_user`, `ad_52e`, `counter_regression`. */
      reason: string;
      /** The account concerned, when known (audit only, never shown). */
      accountId?: string;
      retryAfterSeconds?: number;
      /** Internal detail for the audit trail (e.g. the identity PSC proved, its acr); never shown. */
      detail?: Record<string, string | number | boolean>;
    };

/** A client certificate as received: from this process's own TLS listener or from a trusted proxy. */
export interface PresentedCertificate {
  /** DER bytes of the leaf, then any chain the peer sent. */
  chain: readonly Buffer[];
  source: 'tls' | 'proxy';
}

/** What a method knows about the request; never the raw HTTP objects. */
export interface MethodContext {
  ip: string;
  userAgent: string;
  interactionUid: string;
  requestId: string;
  locale: 'fr' | 'en';
  /** The identifier typed at the identify step, if any. */
  username: string | undefined;
  /**
   * The account already established in this login (session being stepped up, or an earlier step).
   * A method that proves another account must fail with `account_mismatch`.
   */
  accountId: string | undefined;
  clientCertificate: PresentedCertificate | undefined;
}

/**
 * One authentication method (local password, LDAP, WebAuthn, smart card…). Each validates its own
 * payload with its own schema and reports RFC 8176 amr values; the interaction layer does the HTTP,
 * CSRF, throttling and auditing around it.
 */
export interface AuthMethod<Input = unknown> {
  readonly id: string;
  /** Message id of its label on the login pages (src/i18n/messages.ts). */
  readonly label: string;
  /** Nominal RFC 8176 values (what a success usually reports), used to plan step-up. */
  readonly amr: readonly string[];
  /** Resistant to phishing (origin-bound: WebAuthn, TLS client certificate). */
  readonly phishingResistant: boolean;
  /**
   * The proof comes from an upstream identity provider (login through PSC): marked federated (RFC 8176
   * `fed`) wherever it appears, never offered nor counted in a login for Pro Santé Connect itself.
   */
  readonly federated?: boolean;
  /** Whether the identify step (username) must come first. */
  readonly needsUsername: boolean;
  readonly input: z.ZodType<Input>;
  /** The view rendering the method's form (views/<view>.eta). */
  readonly view: string;
  /**
   * Origin that must receive the method's form when it is not the issuer's (the smart card
   * listener). The interaction state is in the database, so any instance on any origin can take it.
   */
  readonly formOrigin?: string;
  /**
   * The method's answer comes back by a browser redirect (a federated login): its input is the query
   * of `GET /interaction/<uid>/method/<id>/return`, bound to the interaction's cookie.
   */
  readonly returnsByRedirect?: boolean;
  /** Extra data for the view, computed when it is shown (e.g. WebAuthn options with a fresh challenge). */
  prepare?(context: MethodContext): Promise<Record<string, unknown>>;
  authenticate(input: Input, context: MethodContext): Promise<AuthOutcome>;
}

/**
 * A method as the interaction layer holds it: its input type erased. Sound because the layer only
 * calls `authenticate` with what the method's own `input` schema parsed.
 */
export function registered<Input>(method: AuthMethod<Input>): AuthMethod {
  return method as unknown as AuthMethod;
}
