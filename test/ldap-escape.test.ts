import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.ts';
import {
  adSubcodeMeaning,
  guidToString,
  isDisabledByUac,
  nestedGroupsFilter,
  parseAdBindError,
} from '../src/methods/ldap/active-directory.ts';
import {
  escapeDnValue,
  escapeFilterBytes,
  escapeFilterValue,
  fillFilter,
} from '../src/methods/ldap/escape.ts';

describe('RFC 4515 filter value escaping', () => {
  it('escapes the special characters and NUL', () => {
    expect(escapeFilterValue('*')).toBe('\\2a');
    expect(escapeFilterValue('(')).toBe('\\28');
    expect(escapeFilterValue(')')).toBe('\\29');
    expect(escapeFilterValue('\\')).toBe('\\5c');
    expect(escapeFilterValue('\0')).toBe('\\00');
    expect(escapeFilterValue('jean.dupont@chu.example')).toBe('jean.dupont@chu.example');
    expect(escapeFilterValue('Éloïse')).toBe('Éloïse');
  });

  it('keeps injection attempts inside the assertion value', () => {
    const template = '(&(objectClass=inetOrgPerson)(uid={username}))';
    expect(fillFilter(template, '*')).toBe('(&(objectClass=inetOrgPerson)(uid=\\2a))');
    expect(fillFilter(template, 'x)(uid=*')).toBe('(&(objectClass=inetOrgPerson)(uid=x\\29\\28uid=\\2a))');
    expect(fillFilter(template, 'admin)(|(objectClass=*')).toBe(
      '(&(objectClass=inetOrgPerson)(uid=admin\\29\\28|\\28objectClass=\\2a))',
    );
    expect(fillFilter(template, 'alice\0')).toBe('(&(objectClass=inetOrgPerson)(uid=alice\\00))');
    expect(fillFilter(template, 'a\\2a')).toBe('(&(objectClass=inetOrgPerson)(uid=a\\5c2a))');
    // Every {username} of the template is replaced.
    expect(fillFilter('(|(a={username})(b={username}))', '*')).toBe('(|(a=\\2a)(b=\\2a))');
  });

  it('escapes raw bytes', () => {
    expect(escapeFilterBytes(Uint8Array.from([0, 0x2a, 0xff]))).toBe('\\00\\2a\\ff');
  });
});

describe('RFC 4514 DN value escaping', () => {
  it('escapes the special characters, leading # or space, trailing space, NUL', () => {
    expect(escapeDnValue('Dupont, Jean')).toBe('Dupont\\, Jean');
    expect(escapeDnValue('a+b;c<d>e"f\\g=h')).toBe('a\\+b\\;c\\<d\\>e\\"f\\\\g\\=h');
    expect(escapeDnValue('#admin')).toBe('\\#admin');
    expect(escapeDnValue(' lead')).toBe('\\ lead');
    expect(escapeDnValue('trail ')).toBe('trail\\ ');
    expect(escapeDnValue('nul\0')).toBe('nul\\00');
    expect(escapeDnValue('x,cn=admin,dc=example')).toBe('x\\,cn\\=admin\\,dc\\=example');
  });
});

/** Diagnostic messages as Windows Server domain controllers send them (resultCode 49). */
const AD_MESSAGES: Record<string, string> = {
  '525': '80090308: LdapErr: DSID-0C09042F, comment: AcceptSecurityContext error, data 525, v4563',
  '52e': '80090308: LdapErr: DSID-0C09042F, comment: AcceptSecurityContext error, data 52e, v4563',
  '530': '80090308: LdapErr: DSID-0C09042F, comment: AcceptSecurityContext error, data 530, v4563',
  '531': '80090308: LdapErr: DSID-0C09042F, comment: AcceptSecurityContext error, data 531, v4563',
  '532': '80090308: LdapErr: DSID-0C09042F, comment: AcceptSecurityContext error, data 532, v4563',
  '533': '80090308: LdapErr: DSID-0C09042F, comment: AcceptSecurityContext error, data 533, v4563',
  '701': '80090308: LdapErr: DSID-0C09042F, comment: AcceptSecurityContext error, data 701, v4563',
  '773': '80090308: LdapErr: DSID-0C09042F, comment: AcceptSecurityContext error, data 773, v4563',
  '775': '80090308: LdapErr: DSID-0C09042F, comment: AcceptSecurityContext error, data 775, v4563',
};

describe('Active Directory bind subcodes', () => {
  it('maps every documented subcode to its internal reason and user-facing code', () => {
    const mapped = Object.fromEntries(
      Object.entries(AD_MESSAGES).map(([sub, message]) => {
        const r = parseAdBindError(message);
        return [sub, [r?.reason, r?.code, r?.provesPassword, adSubcodeMeaning(sub)]];
      }),
    );
    expect(mapped).toEqual({
      '525': ['ad_525', 'invalid_credentials', false, 'user_not_found'],
      '52e': ['ad_52e', 'invalid_credentials', false, 'invalid_credentials'],
      '530': ['ad_530', 'account_disabled', true, 'logon_hours'],
      '531': ['ad_531', 'account_disabled', true, 'workstation_restricted'],
      '532': ['ad_532', 'password_expired', true, 'password_expired'],
      '533': ['ad_533', 'account_disabled', true, 'account_disabled'],
      '701': ['ad_701', 'account_disabled', true, 'account_expired'],
      '773': ['ad_773', 'password_must_change', true, 'password_must_change'],
      '775': ['ad_775', 'invalid_credentials', false, 'account_locked'],
    });
  });

  it('reads the format Samba AD sends and the one ldapts appends its code to', () => {
    const samba =
      '80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 773, v1db1 Code: 0x31';
    expect(parseAdBindError(samba)?.reason).toBe('ad_773');
    expect(parseAdBindError('80090308: LdapErr: DSID-0C090447, data 52E, v3839')?.reason).toBe('ad_52e');
  });

  it('has no subcode for other messages; unknown subcodes stay generic', () => {
    expect(parseAdBindError('Invalid credentials')).toBeUndefined();
    expect(parseAdBindError('')).toBeUndefined();
    expect(parseAdBindError('... data 999, v1')).toEqual({
      subcode: '999',
      reason: 'ad_999',
      code: 'invalid_credentials',
      provesPassword: false,
    });
  });

  it('userAccountControl ACCOUNTDISABLE bit', () => {
    expect(isDisabledByUac('512')).toBe(false);
    expect(isDisabledByUac('514')).toBe(true);
    expect(isDisabledByUac('66050')).toBe(true);
    expect(isDisabledByUac('66048')).toBe(false);
    expect(isDisabledByUac(undefined)).toBe(false);
  });

  it('objectGUID bytes as the canonical GUID string (first three fields little-endian)', () => {
    const bytes = Buffer.from('67f021b2a8792b44a5f58f4a45303cb7', 'hex');
    expect(guidToString(bytes)).toBe('b221f067-79a8-442b-a5f5-8f4a45303cb7');
    expect(() => guidToString(Buffer.alloc(15))).toThrow(/16 bytes/);
  });

  it('nested group filter uses LDAP_MATCHING_RULE_IN_CHAIN with the escaped DN', () => {
    expect(nestedGroupsFilter('CN=Dupont\\, Jean (ext),OU=Staff,DC=chu,DC=example')).toBe(
      '(&(objectClass=group)(member:1.2.840.113556.1.4.1941:=CN=Dupont\\5c, Jean \\28ext\\29,OU=Staff,DC=chu,DC=example))',
    );
  });
});

describe('ldap configuration section', () => {
  const base = { demo: true, ldap: { bindDn: 'cn=svc', bindPassword: 'x', userBaseDn: 'dc=chu' } };
  function problems(ldap: Record<string, unknown>): string[] {
    try {
      loadConfig({ env: {}, overrides: { ...base, ldap: { ...base.ldap, ...ldap } } });
      return [];
    } catch (err) {
      return [...((err as { problems?: string[] }).problems ?? [String(err)])];
    }
  }

  it('refuses ldap:// without StartTLS outside loopback, naming the key', () => {
    expect(problems({ urls: ['ldaps://dc1.chu.example', 'ldap://dc2.chu.example'] })).toEqual([
      'ldap.urls.1: ldap:// sends passwords in clear: use ldaps://, or set ldap.startTls: true (Active Directory refuses simple binds without TLS)',
    ]);
    expect(problems({ urls: ['ldap://dc2.chu.example'], startTls: true })).toEqual([]);
    expect(problems({ urls: ['ldap://127.0.0.1:3389'] })).toEqual([]);
    expect(problems({ urls: ['https://dc1'] })[0]).toMatch(/^ldap\.urls\.0: must be ldap/);
    expect(problems({ urls: [] })[0]).toMatch(/^ldap\.urls:/);
    expect(problems({ urls: ['ldaps://dc1'], userFilter: '(uid=x)' })).toEqual([
      'ldap.userFilter: must contain {username}',
    ]);
  });

  it('fills defaults by flavour', () => {
    const ad = loadConfig({ env: {}, overrides: { ...base, ldap: { ...base.ldap, urls: ['ldaps://dc1'] } } })
      .config.ldap;
    expect(ad?.userFilter).toBe(
      '(&(objectCategory=person)(objectClass=user)(|(sAMAccountName={username})(userPrincipalName={username})))',
    );
    expect(ad?.attributes).toMatchObject({ username: 'sAMAccountName', stableId: 'objectGUID' });
    const ol = loadConfig({
      env: { PASSERELLE_LDAP__BIND_PASSWORD: 'from-env' },
      overrides: {
        ...base,
        ldap: { bindDn: 'cn=svc', userBaseDn: 'dc=chu', urls: ['ldaps://ol'], flavour: 'openldap' },
      },
    }).config.ldap;
    expect(ol?.userFilter).toBe('(&(objectClass=inetOrgPerson)(uid={username}))');
    expect(ol?.attributes).toMatchObject({ username: 'uid', stableId: 'entryUUID' });
    expect(ol?.bindPassword).toBe('from-env');
  });
});

describe('deploy/passerelle.example.yaml ldap section', () => {
  it('parses; the environment overrides the placeholder service password', async () => {
    const { parse } = await import('yaml');
    const { readFileSync } = await import('node:fs');
    const file = parse(readFileSync(new URL('../deploy/passerelle.example.yaml', import.meta.url), 'utf8'));
    expect(file.ldap.bindPassword).toBe('REPLACE-WITH-THE-SERVICE-ACCOUNT-PASSWORD');
    const { config } = loadConfig({
      env: {
        PASSERELLE_KEYS__ENCRYPTION_KEY: Buffer.alloc(32, 7).toString('base64'),
        PASSERELLE_LDAP__BIND_PASSWORD: 'secret-from-env',
        PASSERELLE_PSC_LOGIN__CLIENT_SECRET: 'sample',
      },
      file: new URL('../deploy/passerelle.example.yaml', import.meta.url).pathname,
    });
    expect(config.ldap).toMatchObject({
      urls: ['ldaps://dc1.hopital.example', 'ldaps://dc2.hopital.example'],
      flavour: 'activeDirectory',
      bindPassword: 'secret-from-env',
      attributes: { idNat: 'employeeID', stableId: 'objectGUID' },
    });
  });
});
