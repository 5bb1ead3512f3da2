import { createHmac } from 'node:crypto';
import {
  type AuthenticationResponseJSON,
  generateAuthenticationOptions,
  generateRegistrationOptions,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from '@simplewebauthn/server';
import {
  decodeAttestationObject,
  decodeClientDataJSON,
  isoBase64URL,
  parseAuthenticatorData,
} from '@simplewebauthn/server/helpers';
import { z } from 'zod';
import type { Account } from '../../accounts/store.ts';
import { type AttestationPolicy, attestationFacts } from './policy.ts';
import type { WebauthnSettings } from './settings.ts';
import type { ChallengeStore, CredentialStore, NewCredential, StoredCredential } from './store.ts';

/**
 * ES256, EdDSA, RS256: what FIDO2 security keys use. Explicit, so that SimpleWebAuthn does not probe the
 * runtime for post-quantum algorithms (an experimental Web Crypto feature that warns on every start).
 */
const ALGORITHMS = [-7, -8, -257];

/** Largest WebAuthn response accepted (JSON text): attestation with a certificate chain fits easily. */
export const MAX_RESPONSE_LENGTH = 16_384;

const b64url = z
  .string()
  .regex(/^[A-Za-z0-9_-]*$/)
  .max(MAX_RESPONSE_LENGTH);

const registrationSchema = z.object({
  id: b64url.min(1),
  rawId: b64url.min(1),
  type: z.literal('public-key'),
  response: z
    .object({
      clientDataJSON: b64url,
      attestationObject: b64url,
      transports: z.array(z.string().max(32)).max(8).optional(),
    })
    .passthrough(),
  clientExtensionResults: z.record(z.string(), z.unknown()).default({}),
  authenticatorAttachment: z.string().optional(),
});

const authenticationSchema = z.object({
  id: b64url.min(1),
  rawId: b64url.min(1),
  type: z.literal('public-key'),
  response: z.object({
    clientDataJSON: b64url,
    authenticatorData: b64url,
    signature: b64url,
    userHandle: b64url.optional(),
  }),
  clientExtensionResults: z.record(z.string(), z.unknown()).default({}),
  authenticatorAttachment: z.string().optional(),
});

/** Parses the JSON text the browser script put in the form; undefined when it is not a response. */
function parseResponse<T>(schema: z.ZodType<T>, text: string): T | undefined {
  try {
    const parsed = schema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

function clientChallenge(clientDataJSON: string): string | undefined {
  try {
    const challenge = decodeClientDataJSON(clientDataJSON).challenge;
    return typeof challenge === 'string' ? challenge : undefined;
  } catch {
    return undefined;
  }
}

/** Flags of the authenticator data, read to name the reason of a failure (never to accept anything). */
function flags(authenticatorData: string): { up: boolean; uv: boolean } | undefined {
  try {
    const parsed = parseAuthenticatorData(isoBase64URL.toBuffer(authenticatorData));
    return { up: parsed.flags.up, uv: parsed.flags.uv };
  } catch {
    return undefined;
  }
}

function uuidBytes(uuid: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(Buffer.from(uuid.replace(/-/g, ''), 'hex'));
}

export type RegistrationResult =
  | { ok: true; credential: NewCredential; fmt: string; modelDescription?: string }
  | { ok: false; code: 'ceremony_failed' | 'authenticator_not_allowed'; reason: string; detail?: string };

export type AssertionResult =
  | { ok: true; credential: StoredCredential; newCounter: number }
  | {
      ok: false;
      code: 'ceremony_failed' | 'invalid_credentials' | 'credential_blocked';
      reason: string;
      credential?: StoredCredential;
      detail?: string;
    };

export interface CeremonyDeps {
  settings: WebauthnSettings;
  credentials: CredentialStore;
  challenges: ChallengeStore;
  policy: AttestationPolicy;
  /** Secret for the fake credential ids of unknown accounts (stable across instances). */
  fakeIdKey: string;
}

/** The two WebAuthn ceremonies, with server-side challenges and the attestation policy. */
export class Ceremonies {
  readonly #deps: CeremonyDeps;
  constructor(deps: CeremonyDeps) {
    this.#deps = deps;
  }

  get settings(): WebauthnSettings {
    return this.#deps.settings;
  }

  async registrationOptions(account: Account): Promise<PublicKeyCredentialCreationOptionsJSON> {
    const { settings, credentials, challenges } = this.#deps;
    const existing = await credentials.listForAccount(account.id);
    const challenge = await challenges.create('registration', `account:${account.id}`, account.id);
    return generateRegistrationOptions({
      rpName: settings.rpName,
      rpID: settings.rpId,
      userName: account.username,
      userID: uuidBytes(account.id),
      userDisplayName: account.displayName ?? account.username,
      challenge,
      timeout: settings.timeoutMs,
      attestationType: settings.attestation,
      excludeCredentials: existing.map((c) => ({ id: c.id, transports: c.transports })),
      authenticatorSelection: { residentKey: 'preferred', userVerification: 'required' },
      supportedAlgorithmIDs: ALGORITHMS,
    });
  }

  async verifyRegistration(accountId: string, responseText: string): Promise<RegistrationResult> {
    const { settings, challenges, policy } = this.#deps;
    const response = parseResponse(registrationSchema, responseText) as RegistrationResponseJSON | undefined;
    if (!response) return { ok: false, code: 'ceremony_failed', reason: 'malformed_response' };
    const challenge = clientChallenge(response.response.clientDataJSON);
    const consumed = challenge
      ? await challenges.consume(challenge, 'registration', `account:${accountId}`)
      : undefined;
    if (!consumed) return { ok: false, code: 'ceremony_failed', reason: 'challenge_unknown' };

    let facts: ReturnType<typeof attestationFacts>;
    try {
      facts = attestationFacts(response.response.attestationObject);
    } catch {
      return { ok: false, code: 'ceremony_failed', reason: 'malformed_response' };
    }
    const decision = policy.check(facts);
    if (!decision.allowed) {
      return {
        ok: false,
        code: 'authenticator_not_allowed',
        reason: decision.reason,
        detail: decision.message,
      };
    }

    let verified: Awaited<ReturnType<typeof verifyRegistrationResponse>>;
    try {
      verified = await verifyRegistrationResponse({
        response,
        expectedChallenge: consumed.challenge,
        expectedOrigin: [...settings.origins],
        expectedRPID: settings.rpId,
        requireUserVerification: false,
        supportedAlgorithmIDs: ALGORITHMS,
      });
    } catch (err) {
      return { ok: false, ...this.#failureReason(response.response.attestationObject, err, true) };
    }
    if (!verified.verified) return { ok: false, code: 'ceremony_failed', reason: 'bad_attestation' };
    const info = verified.registrationInfo;
    if (!info.userVerified) return { ok: false, code: 'ceremony_failed', reason: 'uv_missing' };
    return {
      ok: true,
      fmt: info.fmt,
      modelDescription: decision.description,
      credential: {
        id: info.credential.id,
        accountId,
        name: '',
        publicKey: info.credential.publicKey,
        counter: info.credential.counter,
        transports: info.credential.transports ?? response.response.transports ?? [],
        aaguid: info.aaguid,
        deviceType: info.credentialDeviceType,
        backedUp: info.credentialBackedUp,
      },
    };
  }

  /** Plausible credential ids for a username without keys: the options look the same either way. */
  #fakeCredentials(username: string): { id: string; transports: string[] }[] {
    const mac = createHmac('sha256', this.#deps.fakeIdKey)
      .update(`webauthn-fake-credential:${username.toLowerCase()}`)
      .digest();
    const id = Buffer.concat([mac, createHmac('sha256', mac).update('2').digest()]).toString('base64url');
    return [{ id, transports: ['usb'] }];
  }

  /**
   * Options for a login. With an account (username-first), allowCredentials lists its keys (or fake ids
   * when it has none or does not exist); without, they are empty and the key offers its discoverable
   * credentials (usernameless).
   */
  async authenticationOptions(
    interactionUid: string,
    target: { account?: Account; username?: string } | undefined,
  ): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const { settings, credentials, challenges } = this.#deps;
    let allowCredentials: { id: string; transports: string[] }[] | undefined;
    if (target) {
      // A blocked key is offered too: its owner is then told it is blocked, not to retype the PIN.
      const keys = target.account ? await credentials.listForAccount(target.account.id) : [];
      allowCredentials = keys.length
        ? keys.map((k) => ({ id: k.id, transports: k.transports }))
        : this.#fakeCredentials(target.account?.username ?? target.username ?? '');
    }
    const challenge = await challenges.create(
      'authentication',
      `interaction:${interactionUid}`,
      target?.account?.id ?? null,
    );
    return generateAuthenticationOptions({
      rpID: settings.rpId,
      allowCredentials,
      challenge,
      timeout: settings.timeoutMs,
      userVerification: 'required',
    });
  }

  /**
   * Verifies an assertion: challenge of this interaction (consumed), known and active key, origin and
   * RP ID, signature, user presence and verification, then the counter (checked and stored atomically).
   */
  async verifyAssertion(interactionUid: string, responseText: string): Promise<AssertionResult> {
    const { settings, credentials, challenges } = this.#deps;
    const response = parseResponse(authenticationSchema, responseText) as
      | AuthenticationResponseJSON
      | undefined;
    if (!response) return { ok: false, code: 'ceremony_failed', reason: 'malformed_response' };
    const challenge = clientChallenge(response.response.clientDataJSON);
    const consumed = challenge
      ? await challenges.consume(challenge, 'authentication', `interaction:${interactionUid}`)
      : undefined;
    if (!consumed) return { ok: false, code: 'ceremony_failed', reason: 'challenge_unknown' };

    const credential = await credentials.find(response.id);
    if (!credential) return { ok: false, code: 'ceremony_failed', reason: 'unknown_credential' };
    if (credential.revokedAt)
      return { ok: false, code: 'ceremony_failed', reason: 'credential_revoked', credential };
    if (consumed.accountId && consumed.accountId !== credential.accountId) {
      return { ok: false, code: 'ceremony_failed', reason: 'credential_of_other_account', credential };
    }

    let verified: Awaited<ReturnType<typeof verifyAuthenticationResponse>>;
    try {
      verified = await verifyAuthenticationResponse({
        response,
        expectedChallenge: consumed.challenge,
        expectedOrigin: [...settings.origins],
        expectedRPID: settings.rpId,
        // The counter is checked below, atomically with its update (see CredentialStore.recordUse).
        credential: {
          id: credential.id,
          publicKey: credential.publicKey,
          counter: 0,
          transports: credential.transports,
        },
        requireUserVerification: false,
      });
    } catch (err) {
      return {
        ok: false,
        ...this.#failureReason(response.response.authenticatorData, err, false),
        credential,
      };
    }
    if (!verified.verified)
      return { ok: false, code: 'ceremony_failed', reason: 'bad_signature', credential };
    const info = verified.authenticationInfo;
    if (!info.userVerified) return { ok: false, code: 'ceremony_failed', reason: 'uv_missing', credential };
    // Only the key's own valid signature learns that it is blocked.
    if (credential.flaggedAt)
      return { ok: false, code: 'credential_blocked', reason: 'credential_blocked', credential };
    if (!(await credentials.recordUse(credential.id, info.newCounter, info.credentialBackedUp))) {
      return { ok: false, code: 'credential_blocked', reason: 'counter_regression', credential };
    }
    return { ok: true, credential, newCounter: info.newCounter };
  }

  /** Names why the library refused a response, for the audit trail; the user sees one message. */
  #failureReason(
    data: string,
    err: unknown,
    registration: boolean,
  ): { code: 'ceremony_failed'; reason: string; detail: string } {
    const message = err instanceof Error ? err.message : String(err);
    let authData = data;
    if (registration) {
      try {
        // The attestation object carries the authenticator data (and its flags).
        const decoded = decodeAttestationObject(isoBase64URL.toBuffer(data));
        authData = isoBase64URL.fromBuffer(decoded.get('authData'));
      } catch {
        authData = '';
      }
    }
    const f = flags(authData);
    // What remains once origin, RP ID and flags are fine is the signature (a bogus one often fails to
    // parse) or, at registration, the attestation statement.
    let reason = registration ? 'bad_attestation' : 'bad_signature';
    if (/origin/i.test(message)) reason = 'origin_mismatch';
    else if (/rp ?id/i.test(message)) reason = 'rpid_mismatch';
    else if (f && !f.up) reason = 'up_missing';
    else if (f && !f.uv) reason = 'uv_missing';
    return { code: 'ceremony_failed', reason, detail: message.slice(0, 200) };
  }
}
