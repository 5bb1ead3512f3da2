import type { Config } from '../../config/schema.ts';

export type WebauthnSettings = NonNullable<Config['webauthn']>;

/**
 * The configured section, or in demo mode (when absent) settings for the demo issuer: RP ID its host
 * name, its origin, no attestation asked (no browser prompt), and self-enrollment after the password.
 */
export function webauthnSettings(config: Config): WebauthnSettings | undefined {
  if (config.webauthn) return config.webauthn;
  if (!config.demo) return undefined;
  const issuer = new URL(config.issuer);
  return {
    rpId: issuer.hostname,
    rpName: 'Passerelle (démonstration)',
    origins: [issuer.origin],
    attestation: 'none',
    policy: { requireTrustedAttestation: false },
    selfEnrollmentAfterPassword: true,
    enrollmentCodeTtlSeconds: 3600,
    challengeTtlSeconds: 300,
    timeoutMs: 120_000,
  };
}
