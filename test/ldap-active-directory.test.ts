import { Attribute, Change, Client } from 'ldapts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LDAP_DEFAULT_FILTERS, type LdapConfig } from '../src/config/schema.ts';
import { guidToString } from '../src/methods/ldap/active-directory.ts';
import { DirectoryUnavailableError } from '../src/methods/ldap/client.ts';
import { LdapDirectory } from '../src/methods/ldap/directory.ts';
import { AD_ADMIN_DN, AD_BASE_DN, type SambaDc, sambaAvailable, startSambaDc } from './helpers/samba.ts';

const USERS_DN = `CN=Users,${AD_BASE_DN}`;
const STAFF_OU = `OU=Staff,${AD_BASE_DN}`;
const PASSWORD = 'Passw0rd-Good!';
const SERVICE_PASSWORD = 'Svc-Passw0rd-1!';

const available = sambaAvailable();

/** Active Directory behaviour against a real Samba AD DC (provisioned in a temporary directory). */
describe.skipIf(!available)('Active Directory (Samba AD DC)', () => {
  let dc: SambaDc;
  let admin: Client;
  const opened: LdapDirectory[] = [];

  const replace = (dn: string, type: string, value: string | Buffer) =>
    admin.modify(dn, [
      new Change({ operation: 'replace', modification: new Attribute({ type, values: [value as string] }) }),
    ]);
  const unicodePwd = (password: string) => Buffer.from(`"${password}"`, 'utf16le');

  async function addUser(
    cn: string,
    extra: Record<string, string> = {},
    password = PASSWORD,
  ): Promise<string> {
    const dn = `CN=${cn},${STAFF_OU}`;
    await admin.add(dn, {
      objectClass: ['top', 'person', 'organizationalPerson', 'user'],
      sAMAccountName: cn,
      userPrincipalName: `${cn}@passerelle.test`,
      ...extra,
    });
    await replace(dn, 'unicodePwd', unicodePwd(password));
    await replace(dn, 'userAccountControl', '512');
    return dn;
  }

  function directory(over: Partial<LdapConfig> = {}): LdapDirectory {
    const d = new LdapDirectory(
      {
        urls: [dc.ldapsUrl],
        startTls: false,
        flavour: 'activeDirectory',
        bindDn: `CN=svc-passerelle,${STAFF_OU}`,
        bindPassword: SERVICE_PASSWORD,
        userBaseDn: STAFF_OU,
        userFilter: LDAP_DEFAULT_FILTERS.activeDirectory,
        attributes: {
          username: 'sAMAccountName',
          displayName: 'displayName',
          givenName: 'givenName',
          familyName: 'sn',
          mail: 'mail',
          stableId: 'objectGUID',
          idNat: 'employeeID',
          groups: 'memberOf',
        },
        connectTimeoutMs: 2000,
        operationTimeoutMs: 5000,
        poolSize: 2,
        ...over,
      },
      dc.pki.caPem,
    );
    opened.push(d);
    return d;
  }

  beforeAll(async () => {
    dc = await startSambaDc();
    console.info(
      `Samba AD DC: provisioned in ${dc.provisionSeconds.toFixed(1)} s, LDAPS up in ${dc.startSeconds.toFixed(1)} s`,
    );
    admin = new Client({ url: dc.ldapsUrl, tlsOptions: { ca: dc.pki.caPem }, timeout: 10_000 });
    await admin.bind(AD_ADMIN_DN, dc.adminPassword);
    await admin.add(STAFF_OU, { objectClass: ['top', 'organizationalUnit'], ou: 'Staff' });
    await addUser('svc-passerelle', {}, SERVICE_PASSWORD);
    const alice = await addUser('alice', {
      givenName: 'Alice',
      sn: 'Martin',
      displayName: 'Alice Martin',
      mail: 'alice@chu.test',
      employeeID: '810001234567',
    });
    await admin.add(`CN=GG-Nested,${STAFF_OU}`, {
      objectClass: ['top', 'group'],
      sAMAccountName: 'GG-Nested',
      member: alice,
    });
    await admin.add(`CN=GG-Pharmacy,${USERS_DN}`, {
      objectClass: ['top', 'group'],
      sAMAccountName: 'GG-Pharmacy',
      member: `CN=GG-Nested,${STAFF_OU}`,
    });
    const disabled = await addUser('disabled-user');
    await replace(disabled, 'userAccountControl', '514');
    const mustChange = await addUser('must-change');
    await replace(mustChange, 'pwdLastSet', '0');
    const expired = await addUser('expired-account');
    await replace(expired, 'accountExpires', '129000000000000000'); // 2009
    await addUser('locked-user');
  });
  afterAll(async () => {
    for (const d of opened) await d.close();
    await admin?.unbind().catch(() => {});
    await dc?.close();
  });

  it('search then bind; objectGUID as the stable id; nested groups through 1.2.840.113556.1.4.1941', async () => {
    const d = directory();
    const check = await d.checkPassword('alice', PASSWORD);
    expect(check.ok).toBe(true);
    if (!check.ok) return;
    const raw = await admin.search(`CN=alice,${STAFF_OU}`, {
      scope: 'base',
      attributes: ['objectGUID'],
      explicitBufferAttributes: ['objectGUID'],
    });
    const guid = raw.searchEntries[0]?.objectGUID as Buffer;
    expect(check.user).toMatchObject({
      dn: `CN=alice,${STAFF_OU}`,
      stableId: guidToString(guid),
      username: 'alice',
      displayName: 'Alice Martin',
      givenName: 'Alice',
      familyName: 'Martin',
      mail: 'alice@chu.test',
      idNat: '810001234567',
      disabled: false,
    });
    expect(check.user.groups).toEqual([`CN=GG-Nested,${STAFF_OU}`, `CN=GG-Pharmacy,${USERS_DN}`]);
    // memberOf alone gives only the direct group.
    const direct = await admin.search(`CN=alice,${STAFF_OU}`, { scope: 'base', attributes: ['memberOf'] });
    expect(direct.searchEntries[0]?.memberOf).toBe(`CN=GG-Nested,${STAFF_OU}`);
  });

  it('userPrincipalName is accepted by the default filter', async () => {
    const check = await directory().checkPassword('alice@passerelle.test', PASSWORD);
    expect(check.ok && check.user.username).toBe('alice');
  });

  it('52e for a wrong password; an unknown user costs the same work and says the same', async () => {
    const d = directory();
    expect(await d.checkPassword('alice', 'wrong')).toEqual({
      ok: false,
      code: 'invalid_credentials',
      reason: 'ad_52e',
    });
    expect(await d.checkPassword('nobody', 'wrong')).toEqual({
      ok: false,
      code: 'invalid_credentials',
      reason: 'unknown_user',
    });
    expect(d.stats).toEqual({ searches: 2, binds: 2 });
  });

  it('account states (533 disabled, 773 must change, 701 expired) only with the right password', async () => {
    const d = directory();
    const cases: [string, string, string][] = [
      ['disabled-user', 'account_disabled', 'ad_533'],
      ['must-change', 'password_must_change', 'ad_773'],
      ['expired-account', 'account_disabled', 'ad_701'],
    ];
    for (const [user, code, reason] of cases) {
      const right = await d.checkPassword(user, PASSWORD);
      expect(right, user).toMatchObject({ ok: false, code, reason });
      expect(!right.ok && right.user?.username, user).toBe(user);
      // Wrong password: AD answers 52e whatever the state, so the state is never revealed.
      expect(await d.checkPassword(user, 'wrong'), user).toEqual({
        ok: false,
        code: 'invalid_credentials',
        reason: 'ad_52e',
      });
    }
  });

  it('775 (locked out) comes even with a wrong password: generic message, reason kept', async () => {
    await replace(AD_BASE_DN, 'lockoutThreshold', '3');
    try {
      const d = directory();
      for (let i = 0; i < 3; i++) await d.checkPassword('locked-user', 'wrong');
      expect(await d.checkPassword('locked-user', 'wrong')).toEqual({
        ok: false,
        code: 'invalid_credentials',
        reason: 'ad_775',
      });
      expect(await d.checkPassword('locked-user', PASSWORD)).toEqual({
        ok: false,
        code: 'invalid_credentials',
        reason: 'ad_775',
      });
    } finally {
      await replace(AD_BASE_DN, 'lockoutThreshold', '0');
    }
  });

  it('simple bind refused without TLS; StartTLS works', async () => {
    const plain = directory({ urls: [dc.ldapUrl] });
    expect(await plain.readiness()).toMatchObject({ ok: false, detail: 'service account bind refused' });
    expect((await plain.readiness()).error).toMatch(/Transport encryption required/);
    await expect(plain.checkPassword('alice', PASSWORD)).rejects.toThrow(DirectoryUnavailableError);
    const startTls = directory({ urls: [dc.ldapUrl], startTls: true });
    expect((await startTls.checkPassword('alice', PASSWORD)).ok).toBe(true);
  });

  it('readiness: rootDSE and service bind', async () => {
    expect(await directory().readiness()).toMatchObject({ ok: true, url: dc.ldapsUrl });
  });
});
