import type { Logger } from 'pino';
import { z } from 'zod';
import type { DirectoryAccounts } from '../../accounts/directory-accounts.ts';
import { MAX_PASSWORD_LENGTH } from '../../accounts/passwords.ts';
import type { AuditTrail } from '../../audit/trail.ts';
import type { AuthMethod, AuthOutcome, MethodContext } from '../types.ts';
import { DirectoryUnavailableError } from './client.ts';
import type { LdapDirectory } from './directory.ts';

// No min(1): the empty password reaches the method, which refuses it before any bind (reason
// `empty_password`), whatever the layer in front does.
const input = z.object({ password: z.string().max(MAX_PASSWORD_LENGTH) });
type LdapInput = z.infer<typeof input>;

export interface LdapMethodDeps {
  directory: LdapDirectory;
  accounts: DirectoryAccounts;
  /** Records provisioning of accounts (login attempts themselves are audited by the interaction layer). */
  audit?: AuditTrail;
  logger?: Logger;
}

/** The establishment's directory password (Active Directory or OpenLDAP): search, then bind as the user. */
export function ldapMethod(deps: LdapMethodDeps): AuthMethod<LdapInput> {
  const { directory, accounts } = deps;
  return {
    id: 'ldap',
    label: 'method.ldap',
    amr: ['pwd'],
    phishingResistant: false,
    needsUsername: true,
    input,
    view: 'method-password',
    async authenticate({ password }, context: MethodContext): Promise<AuthOutcome> {
      let check: Awaited<ReturnType<LdapDirectory['checkPassword']>>;
      try {
        check = await directory.checkPassword(context.username ?? '', password);
      } catch (err) {
        if (!(err instanceof DirectoryUnavailableError)) throw err;
        deps.logger?.warn({ err: err.message, requestId: context.requestId }, 'directory unavailable');
        return { kind: 'failure', code: 'service_unavailable', reason: 'directory_unavailable' };
      }
      if (!check.ok) {
        // Account states come only with a proven password (check.user present): the account may be named.
        const linked = check.user ? await accounts.findByStableId(check.user.stableId) : undefined;
        return { kind: 'failure', code: check.code, reason: check.reason, accountId: linked?.id };
      }
      const user = check.user;
      if (context.accountId) {
        const linked = await accounts.findByStableId(user.stableId);
        if (linked?.id !== context.accountId)
          return {
            kind: 'failure',
            code: 'account_mismatch',
            reason: 'account_mismatch',
            accountId: linked?.id,
          };
      }
      const result = await accounts.provision({
        stableId: user.stableId,
        dn: user.dn,
        username: user.username,
        displayName: user.displayName,
        givenName: user.givenName,
        familyName: user.familyName,
        mail: user.mail,
        idNat: user.idNat,
        groups: user.groups,
      });
      if (result.kind === 'refused') {
        deps.logger?.warn(
          { reason: result.reason, username: user.username, requestId: context.requestId },
          'directory user not linked: a local account already has this username',
        );
        // The password was proven: "contact the IT support" is the right message.
        return {
          kind: 'failure',
          code: 'account_disabled',
          reason: result.reason,
          accountId: result.accountId,
        };
      }
      const { account } = result;
      if (result.created || result.renamedFrom) {
        await deps.audit?.record({
          type: result.created ? 'directory.account_provisioned' : 'directory.account_renamed',
          outcome: 'success',
          accountId: account.id,
          interactionId: context.interactionUid,
          ip: context.ip,
          userAgent: context.userAgent,
          method: 'ldap',
          requestId: context.requestId,
          detail: { stableId: user.stableId, username: account.username, renamedFrom: result.renamedFrom },
        });
      }
      return { kind: 'success', accountId: account.id, amr: ['pwd'], detail: { directoryId: user.stableId } };
    },
  };
}
