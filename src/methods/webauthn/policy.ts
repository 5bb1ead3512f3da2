import { readFile } from 'node:fs/promises';
import { type MetadataBLOBPayloadEntry, MetadataService } from '@simplewebauthn/server';
import {
  convertAAGUIDToString,
  decodeAttestationObject,
  isoBase64URL,
  verifyMDSBlob,
} from '@simplewebauthn/server/helpers';

export interface PolicySettings {
  aaguidAllowList?: readonly string[];
  metadataBlobFile?: string;
  requireTrustedAttestation: boolean;
}

/** What an attestation object says about the key (read before verification: used to refuse only). */
export interface AttestationFacts {
  fmt: string;
  aaguid: string;
  /** An attestation certificate chain (x5c) was sent: basic/attCA attestation, not `none` or self. */
  hasCertificateChain: boolean;
}

export type PolicyDecision =
  | { allowed: true; description?: string }
  | { allowed: false; reason: string; message: string };

/** Statuses of the FIDO Metadata Service that make a key model unacceptable. */
const COMPROMISED = new Set([
  'REVOKED',
  'USER_VERIFICATION_BYPASS',
  'ATTESTATION_KEY_COMPROMISE',
  'USER_KEY_REMOTE_COMPROMISE',
  'USER_KEY_PHYSICAL_COMPROMISE',
]);

export const ZERO_AAGUID = '00000000-0000-0000-0000-000000000000';

export function attestationFacts(attestationObjectB64: string): AttestationFacts {
  const decoded = decodeAttestationObject(isoBase64URL.toBuffer(attestationObjectB64));
  const authData = decoded.get('authData');
  // authData: rpIdHash (32) | flags (1) | signCount (4) | AAGUID (16) | … (attested credential data).
  const aaguid = authData.length >= 53 ? convertAAGUIDToString(authData.slice(37, 53)) : ZERO_AAGUID;
  const x5c = decoded.get('attStmt').get('x5c');
  return { fmt: decoded.get('fmt'), aaguid, hasCertificateChain: Array.isArray(x5c) && x5c.length > 0 };
}

export interface LoadedMetadata {
  /** Serial number of the blob (`no`) and its nextUpdate date. */
  serial: number;
  nextUpdate: Date;
  entries: number;
}

/**
 * Which key models may be enrolled: an AAGUID allow-list (the "keys referenced by the ANS" model) and/or
 * the FIDO Metadata Service blob, loaded from a file (no network at run time) and verified against the
 * FIDO root embedded in SimpleWebAuthn. With the blob, SimpleWebAuthn also checks attestation certificate
 * chains against the roots of each model's metadata statement.
 */
export class AttestationPolicy {
  readonly #settings: PolicySettings;
  readonly #allow: Set<string> | undefined;
  #metadata = new Map<string, MetadataBLOBPayloadEntry>();
  #loaded: LoadedMetadata | undefined;

  constructor(settings: PolicySettings) {
    this.#settings = settings;
    this.#allow = settings.aaguidAllowList
      ? new Set(settings.aaguidAllowList.map((a) => a.toLowerCase()))
      : undefined;
  }

  get metadata(): LoadedMetadata | undefined {
    return this.#loaded;
  }

  /**
   * Reads and verifies the blob file (when configured) and hands its statements to SimpleWebAuthn's
   * MetadataService (a process-wide singleton). Throws when the file is unreadable or its signature invalid.
   */
  async load(): Promise<void> {
    const file = this.#settings.metadataBlobFile;
    if (!file) return;
    const blob = (await readFile(file, 'utf8')).trim();
    let verified: Awaited<ReturnType<typeof verifyMDSBlob>>;
    try {
      verified = await verifyMDSBlob(blob);
    } catch (err) {
      throw new Error(`webauthn.policy.metadataBlobFile ${file}: not a valid FIDO metadata blob`, {
        cause: err,
      });
    }
    const metadata = new Map<string, MetadataBLOBPayloadEntry>();
    for (const entry of verified.payload.entries) {
      if (entry.aaguid) metadata.set(entry.aaguid.toLowerCase(), entry);
    }
    // Permissive: a model missing from the blob is refused by check() with a clear reason, not by an
    // exception deep inside the verification.
    await MetadataService.initialize({
      mdsServers: [],
      statements: verified.statements,
      verificationMode: 'permissive',
    });
    this.#metadata = metadata;
    this.#loaded = {
      serial: verified.payload.no,
      nextUpdate: verified.parsedNextUpdate,
      entries: metadata.size,
    };
  }

  /** The metadata statement's description of a model, if known (to name keys by default). */
  describe(aaguid: string): string | undefined {
    return this.#metadata.get(aaguid.toLowerCase())?.metadataStatement?.description;
  }

  check(facts: AttestationFacts): PolicyDecision {
    const aaguid = facts.aaguid.toLowerCase();
    if (this.#settings.requireTrustedAttestation && (facts.fmt === 'none' || !facts.hasCertificateChain)) {
      return {
        allowed: false,
        reason: 'attestation_untrusted',
        message: `attestation ${facts.fmt}${facts.hasCertificateChain ? '' : ' without certificate'} does not prove the key model`,
      };
    }
    if (this.#allow && !this.#allow.has(aaguid)) {
      return {
        allowed: false,
        reason: 'aaguid_not_allowed',
        message: `AAGUID ${aaguid} is not in the allow-list`,
      };
    }
    if (this.#settings.metadataBlobFile) {
      const entry = this.#metadata.get(aaguid);
      if (!entry) {
        return {
          allowed: false,
          reason: 'aaguid_not_in_metadata',
          message: `AAGUID ${aaguid} is not in the FIDO metadata blob`,
        };
      }
      const compromised = entry.statusReports.find((report) => COMPROMISED.has(report.status));
      if (compromised) {
        return {
          allowed: false,
          reason: 'authenticator_compromised',
          message: `AAGUID ${aaguid} has status ${compromised.status} in the FIDO metadata blob`,
        };
      }
      return { allowed: true, description: entry.metadataStatement?.description };
    }
    return { allowed: true };
  }
}
