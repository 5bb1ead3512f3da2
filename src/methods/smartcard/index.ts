import type { Logger } from 'pino';
import { z } from 'zod';
import type { CardCertificates } from '../../accounts/card-certificates.ts';
import { type NationalIdentities, USABLE_STATUSES } from '../../accounts/national-identity.ts';
import type { AccountStore } from '../../accounts/store.ts';
import type { AuthMethod, AuthOutcome, MethodContext } from '../types.ts';
import type { CardVerifier } from './verify.ts';

const input = z.object({});
type SmartcardInput = z.infer<typeof input>;

export const SMARTCARD_AMR = ['sc', 'pin', 'mfa', 'hwk'] as const;

export interface SmartcardMethodDeps {
  verifier: CardVerifier;
  accounts: AccountStore;
  certificates: CardCertificates;
  identities: NationalIdentities;
  logger: Logger;
  /** Origin serving the card form (the TLS listener or the proxy's card host); absent = the issuer's. */
  formOrigin?: string;
  /** Account whose directory entry carries this idNat (LDAP attribute), when a directory is configured. */
  findByDirectoryIdNat?: (idNat: string) => Promise<string | undefined>;
}

type Mapping = { accountId: string; by: 'fingerprint' | 'national_identity' | 'directory' };

/** CPS card: an IGC-Santé authentication certificate presented over TLS client authentication. */
export function smartcardMethod(deps: SmartcardMethodDeps): AuthMethod<SmartcardInput> {
  const mapAccount = async (fingerprint: string, idNat: string): Promise<Mapping | undefined> => {
    const registered = await deps.certificates.findAccount(fingerprint);
    if (registered) return { accountId: registered, by: 'fingerprint' };
    const link = await deps.identities.findByIdNat(idNat);
    if (link && USABLE_STATUSES.includes(link.status))
      return { accountId: link.accountId, by: 'national_identity' };
    if (link) return undefined; // a link flagged conflict or inactive is not used, and not bypassed
    const fromDirectory = await deps.findByDirectoryIdNat?.(idNat);
    return fromDirectory ? { accountId: fromDirectory, by: 'directory' } : undefined;
  };

  return {
    id: 'smartcard',
    label: 'method.smartcard',
    amr: SMARTCARD_AMR,
    phishingResistant: true,
    needsUsername: false,
    input,
    view: 'method-smartcard',
    formOrigin: deps.formOrigin,
    async authenticate(_input, context: MethodContext): Promise<AuthOutcome> {
      const presented = context.clientCertificate;
      if (!presented) return { kind: 'failure', code: 'certificate_missing', reason: 'no_certificate' };
      const result = deps.verifier.verify(presented.chain);
      if (!result.ok) return { kind: 'failure', code: 'certificate_rejected', reason: result.reason };
      if (result.revocationUnchecked.length) {
        deps.logger.warn(
          { requestId: context.requestId, serial: result.serial, unchecked: result.revocationUnchecked },
          'smartcard: revocation not checked (crl.whenUnavailable: allow)',
        );
      }
      const { idNat } = result.identity;
      const detail = {
        serial: result.serial,
        issuer: result.issuer,
        fingerprint: result.fingerprint,
        family: result.identity.family,
        source: presented.source,
        revocationChecked: result.revocationUnchecked.length === 0,
      };

      const mapping = await mapAccount(result.fingerprint, idNat);
      if (!mapping) return { kind: 'failure', code: 'card_not_linked', reason: 'unmapped' };
      const account = await deps.accounts.findById(mapping.accountId);
      if (!account) return { kind: 'failure', code: 'card_not_linked', reason: 'unmapped' };
      // Checked here as well as by the interaction layer: a refused card must not record its proof.
      if (context.accountId && context.accountId !== account.id)
        return {
          kind: 'failure',
          code: 'account_mismatch',
          reason: 'account_mismatch',
          accountId: account.id,
        };

      // The link module audits the conflict and queues it for review; the login is refused.
      const proof = await deps.identities.recordProven(account.id, idNat);
      if (proof.kind === 'conflict') {
        return {
          kind: 'failure',
          code: 'card_not_linked',
          reason: 'national_id_conflict',
          accountId: account.id,
        };
      }
      return {
        kind: 'success',
        accountId: account.id,
        amr: SMARTCARD_AMR,
        nationalId: { idNat, source: 'cps-certificate' },
        detail: { ...detail, mappedBy: mapping.by },
      };
    },
  };
}
