import { generateKeyPairSync, type JsonWebKey, randomUUID } from 'node:crypto';

export type SigningAlg = 'RS256' | 'ES256';

/** A fresh private signing key as a JWK (RSA 2048, Keycloak's default size, or P-256). */
export function privateSigningJwk(alg: SigningAlg, kid: string = randomUUID()): JsonWebKey {
  const { privateKey } =
    alg === 'RS256'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}
