import { randomBytes } from 'node:crypto';
import type { Client, Entry } from 'ldapts';
import type { LdapConfig } from '../../config/schema.ts';
import type { CheckResult } from '../../http/health.ts';
import type { AuthFailureCode } from '../types.ts';
import { guidToString, isDisabledByUac, nestedGroupsFilter, parseAdBindError } from './active-directory.ts';
import { DirectoryUnavailableError, isLdapResult, LdapConnector, ServicePool } from './client.ts';
import { escapeDnValue, escapeFilterValue, fillFilter } from './escape.ts';

/** A user entry as Passerelle needs it. */
export interface DirectoryUser {
  dn: string;
  /** objectGUID (canonical string) or entryUUID: the link to the local account. */
  stableId: string;
  username: string;
  displayName: string | undefined;
  givenName: string | undefined;
  familyName: string | undefined;
  mail: string | undefined;
  idNat: string | undefined;
  /** Group DNs (nested ones included on Active Directory); filled after a proven password. */
  groups: string[];
  /** userAccountControl ACCOUNTDISABLE (Active Directory). */
  disabled: boolean;
}

export type PasswordCheck =
  | { ok: true; user: DirectoryUser }
  | {
      ok: false;
      code: AuthFailureCode;
      reason: string;
      /** Present only when the password was proven (AD subcodes given for the right password only). */
      user?: DirectoryUser;
    };

/** Page size of paged searches: below Active Directory's MaxPageSize (1000). */
const PAGE_SIZE = 500;
const LDAP_INVALID_CREDENTIALS = 49;

/** First value of an attribute, matched case-insensitively (servers echo their own spelling). */
function values(entry: Entry, name: string): (string | Buffer)[] {
  const key = Object.keys(entry).find((k) => k.toLowerCase() === name.toLowerCase());
  if (!key) return [];
  const value = entry[key];
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

function text(entry: Entry, name: string): string | undefined {
  const value = values(entry, name)[0];
  if (value === undefined) return undefined;
  const s = Buffer.isBuffer(value) ? value.toString('utf8') : value;
  return s === '' ? undefined : s;
}

/** The `DC=` components of a DN (the naming context of an Active Directory domain). */
function domainRoot(dn: string): string | undefined {
  const root = dn
    .split(',')
    .map((rdn) => rdn.trim())
    .filter((rdn) => /^dc=/i.test(rdn))
    .join(',');
  return root || undefined;
}

type BindResult = { ok: true } | { ok: false; message: string; code: number };

export interface DirectoryStats {
  searches: number;
  binds: number;
}

/**
 * The directory: users found with the service account, passwords checked by binding as the user on a
 * connection of its own. Search references (referrals) are never followed.
 */
export class LdapDirectory {
  readonly config: LdapConfig;
  readonly #connector: LdapConnector;
  readonly #pool: ServicePool;
  /** Directory operations performed (tests compare the work of different paths). */
  readonly stats: DirectoryStats = { searches: 0, binds: 0 };

  constructor(config: LdapConfig, ca?: Buffer) {
    this.config = config;
    this.#connector = new LdapConnector({
      urls: config.urls,
      startTls: config.startTls,
      ca,
      connectTimeoutMs: config.connectTimeoutMs,
      operationTimeoutMs: config.operationTimeoutMs,
    });
    this.#pool = new ServicePool(this.#connector, config.bindDn, config.bindPassword, config.poolSize);
  }

  get #isAd(): boolean {
    return this.config.flavour === 'activeDirectory';
  }

  #userAttributes(): string[] {
    const a = this.config.attributes;
    const list = [a.username, a.displayName, a.givenName, a.familyName, a.mail, a.stableId, a.groups];
    if (a.idNat) list.push(a.idNat);
    if (this.#isAd) list.push('userAccountControl');
    return list;
  }

  #binaryAttributes(): string[] {
    return this.config.attributes.stableId.toLowerCase() === 'objectguid'
      ? [this.config.attributes.stableId]
      : [];
  }

  #toUser(entry: Entry): DirectoryUser | undefined {
    const a = this.config.attributes;
    const rawId = values(entry, a.stableId)[0];
    const username = text(entry, a.username);
    if (rawId === undefined || !username) return undefined;
    const stableId = Buffer.isBuffer(rawId)
      ? rawId.length === 16
        ? guidToString(rawId)
        : rawId.toString('hex')
      : rawId.toLowerCase();
    return {
      dn: entry.dn,
      stableId,
      username,
      displayName: text(entry, a.displayName),
      givenName: text(entry, a.givenName),
      familyName: text(entry, a.familyName),
      mail: text(entry, a.mail),
      idNat: a.idNat ? text(entry, a.idNat) : undefined,
      groups: values(entry, a.groups).map((v) => (Buffer.isBuffer(v) ? v.toString('utf8') : v)),
      disabled: this.#isAd && isDisabledByUac(text(entry, 'userAccountControl')),
    };
  }

  /** A subtree search, never dereferencing aliases nor following referrals; paged for listings. */
  async #search(
    client: Client,
    base: string,
    filter: string,
    attributes: string[],
    limit: { sizeLimit: number } | 'paged',
  ): Promise<Entry[]> {
    this.stats.searches++;
    const result = await client.search(base, {
      scope: 'sub',
      filter,
      attributes,
      explicitBufferAttributes: this.#binaryAttributes(),
      derefAliases: 'never',
      ...(limit === 'paged' ? { paged: { pageSize: PAGE_SIZE } } : { sizeLimit: limit.sizeLimit }),
    });
    // result.searchReferences (referrals) are deliberately ignored: never followed.
    return result.searchEntries;
  }

  /** Finds one user; `ambiguous` when the filter matches several entries. */
  async findUser(username: string): Promise<DirectoryUser | 'ambiguous' | undefined> {
    const filter = fillFilter(this.config.userFilter, username);
    const entries = await this.#pool.run((c) =>
      this.#search(c, this.config.userBaseDn, filter, this.#userAttributes(), { sizeLimit: 2 }),
    );
    if (entries.length > 1) return 'ambiguous';
    const entry = entries[0];
    return entry ? this.#toUser(entry) : undefined;
  }

  /** Binds as `dn` on a short-lived connection of its own; returns the LDAP error, if any. */
  async #bindAs(dn: string, password: string): Promise<BindResult> {
    this.stats.binds++;
    try {
      const { client } = await this.#connector.open((c) => c.bind(dn, password));
      await client.unbind().catch(() => {});
      return { ok: true };
    } catch (err) {
      if (isLdapResult(err)) return { ok: false, message: err.message, code: err.code };
      throw err;
    }
  }

  /** Groups of a user whose password was proven. */
  async groupsOf(user: DirectoryUser): Promise<string[]> {
    if (this.#isAd) {
      const base = this.config.groupBaseDn ?? domainRoot(this.config.userBaseDn) ?? this.config.userBaseDn;
      const entries = await this.#pool.run((c) =>
        this.#search(c, base, nestedGroupsFilter(user.dn), ['1.1'], 'paged'),
      );
      return entries.map((e) => e.dn).sort();
    }
    if (this.config.groupBaseDn) {
      const base = this.config.groupBaseDn;
      const dn = escapeFilterValue(user.dn);
      const filter = `(|(&(objectClass=groupOfNames)(member=${dn}))(&(objectClass=groupOfUniqueNames)(uniqueMember=${dn})))`;
      const entries = await this.#pool.run((c) => this.#search(c, base, filter, ['1.1'], 'paged'));
      return entries.map((e) => e.dn).sort();
    }
    return [...user.groups].sort();
  }

  /** Every user the filter matches, with paged results (beyond server size limits). */
  async listUsers(): Promise<DirectoryUser[]> {
    const filter = this.config.userFilter.replaceAll('{username}', '*');
    const entries = await this.#pool.run((c) =>
      this.#search(c, this.config.userBaseDn, filter, this.#userAttributes(), 'paged'),
    );
    return entries.map((e) => this.#toUser(e)).filter((u): u is DirectoryUser => u !== undefined);
  }

  /**
   * Checks a password. Unknown users cost the same directory work as known ones (one search, one bind
   * to a DN that does not exist), and account states are reported only after the right password.
   * Throws DirectoryUnavailableError when the directory cannot answer.
   */
  async checkPassword(username: string, password: string): Promise<PasswordCheck> {
    // An empty password would be an unauthenticated bind, which servers report as a success.
    if (password === '' || username === '')
      return { ok: false, code: 'invalid_credentials', reason: 'empty_password' };
    let found: DirectoryUser | 'ambiguous' | undefined;
    try {
      found = await this.findUser(username);
    } catch (err) {
      throw this.#outage(err, 'user search');
    }
    if (found === undefined || found === 'ambiguous') {
      const decoy = `${this.config.attributes.username}=${escapeDnValue(`passerelle-no-such-user-${randomBytes(8).toString('hex')}`)},${this.config.userBaseDn}`;
      try {
        await this.#bindAs(decoy, password);
      } catch (err) {
        throw this.#outage(err, 'bind');
      }
      return {
        ok: false,
        code: 'invalid_credentials',
        reason: found === 'ambiguous' ? 'ambiguous_user' : 'unknown_user',
      };
    }
    const user = found;
    let bound: BindResult;
    try {
      bound = await this.#bindAs(user.dn, password);
    } catch (err) {
      throw this.#outage(err, 'bind');
    }
    if (!bound.ok) {
      if (bound.code !== LDAP_INVALID_CREDENTIALS) {
        throw new DirectoryUnavailableError(`user bind refused by the directory: ${bound.message}`);
      }
      if (!this.#isAd) return { ok: false, code: 'invalid_credentials', reason: 'wrong_password' };
      const ad = parseAdBindError(bound.message);
      if (!ad) return { ok: false, code: 'invalid_credentials', reason: 'wrong_password' };
      if (!ad.provesPassword) return { ok: false, code: 'invalid_credentials', reason: ad.reason };
      return { ok: false, code: ad.code, reason: ad.reason, user };
    }
    if (user.disabled) return { ok: false, code: 'account_disabled', reason: 'ad_uac_disabled', user };
    try {
      user.groups = await this.groupsOf(user);
    } catch (err) {
      throw this.#outage(err, 'group search');
    }
    return { ok: true, user };
  }

  #outage(err: unknown, what: string): Error {
    if (err instanceof DirectoryUnavailableError) return err;
    // An LDAP error on the service account's operations (bad service password, base DN missing…) is a
    // configuration or directory problem, never the user's.
    if (isLdapResult(err)) return new DirectoryUnavailableError(`${what}: ${err.message}`, { cause: err });
    return err instanceof Error ? err : new Error(String(err));
  }

  /**
   * rootDSE read on a fresh connection bound as the service account. `detail` is public (/readyz): no
   * host names; `error` is for the log.
   */
  async readiness(): Promise<CheckResult & { url?: string; error?: string }> {
    try {
      const { client, url, value } = await this.#connector.open(async (c) => {
        await c.bind(this.config.bindDn, this.config.bindPassword);
        return c.search('', {
          scope: 'base',
          filter: '(objectClass=*)',
          attributes: ['supportedLDAPVersion'],
        });
      });
      await client.unbind().catch(() => {});
      if (!value.searchEntries.length) return { ok: false, detail: 'rootDSE not readable', url };
      return { ok: true, url };
    } catch (err) {
      const error = (err as Error).message;
      if (isLdapResult(err)) return { ok: false, detail: 'service account bind refused', error };
      return { ok: false, detail: 'directory unreachable', error };
    }
  }

  async close(): Promise<void> {
    await this.#pool.close();
  }
}
