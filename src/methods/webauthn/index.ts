import { z } from 'zod';
import type { AccountStore } from '../../accounts/store.ts';
import type { AuditTrail } from '../../audit/trail.ts';
import type { AuthMethod, AuthOutcome, MethodContext } from '../types.ts';
import { type Ceremonies, MAX_RESPONSE_LENGTH } from './ceremonies.ts';
import type { CredentialStore } from './store.ts';

const input = z.object({ response: z.string().min(2).max(MAX_RESPONSE_LENGTH) });
type WebauthnInput = z.infer<typeof input>;

export interface WebauthnMethodDeps {
  ceremonies: Ceremonies;
  credentials: CredentialStore;
  accounts: AccountStore;
  audit: AuditTrail;
}

/** JSON for a `<script type="application/json">` element: nothing in it can close the element. */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/** RFC 8176 values of a key used with user verification (PIN or biometrics on the key). */
export const WEBAUTHN_AMR = ['hwk', 'pin', 'mfa'] as const;

/** FIDO2 security keys with user verification: two factors, phishing resistant (origin-bound). */
export function webauthnMethod(deps: WebauthnMethodDeps): AuthMethod<WebauthnInput> {
  const { ceremonies, credentials, accounts, audit } = deps;
  return {
    id: 'webauthn',
    label: 'method.webauthn',
    amr: WEBAUTHN_AMR,
    phishingResistant: true,
    needsUsername: false,
    input,
    view: 'method-webauthn',

    async prepare(context: MethodContext) {
      let target: { account?: Awaited<ReturnType<AccountStore['findById']>>; username?: string } | undefined;
      if (context.accountId) target = { account: await accounts.findById(context.accountId) };
      else if (context.username) {
        target = { account: await accounts.findByUsername(context.username), username: context.username };
      }
      const options = await ceremonies.authenticationOptions(context.interactionUid, target);
      return { webauthnOptions: scriptJson(options), webauthnMode: target ? 'username' : 'discoverable' };
    },

    async authenticate({ response }, context: MethodContext): Promise<AuthOutcome> {
      const result = await ceremonies.verifyAssertion(context.interactionUid, response);
      if (!result.ok) {
        if (result.reason === 'counter_regression' && result.credential) {
          await credentials.flag(result.credential.id, 'counter_regression');
          await audit.record({
            type: 'webauthn.counter_regression',
            outcome: 'failure',
            accountId: result.credential.accountId,
            interactionId: context.interactionUid,
            ip: context.ip,
            userAgent: context.userAgent,
            requestId: context.requestId,
            method: 'webauthn',
            reason: 'counter_regression',
            detail: { credentialId: result.credential.id, storedCounter: result.credential.counter },
          });
        }
        return {
          kind: 'failure',
          code: result.code,
          reason: result.reason,
          accountId: result.credential?.accountId,
        };
      }
      const { credential } = result;
      const account = await accounts.findById(credential.accountId);
      if (!account) return { kind: 'failure', code: 'ceremony_failed', reason: 'unknown_account' };
      if (
        !context.accountId &&
        context.username &&
        context.username.toLowerCase() !== account.username.toLowerCase()
      ) {
        return {
          kind: 'failure',
          code: 'ceremony_failed',
          reason: 'credential_of_other_account',
          accountId: account.id,
        };
      }
      return {
        kind: 'success',
        accountId: account.id,
        amr: [...WEBAUTHN_AMR],
        detail: { credentialId: credential.id, aaguid: credential.aaguid, counter: result.newCounter },
      };
    },
  };
}
