import type { Logger } from 'pino';
import type { ReadinessCheck } from '../../http/health.ts';
import type { LdapDirectory } from './directory.ts';

/** /readyz: the directory answers (rootDSE) and accepts the service account. */
export function ldapReadinessCheck(directory: LdapDirectory, logger?: Logger): ReadinessCheck {
  return {
    name: 'ldap',
    async run() {
      const { ok, detail, error } = await directory.readiness();
      if (!ok) logger?.warn({ error }, 'directory readiness check failed');
      return ok ? { ok } : { ok, detail };
    },
  };
}
