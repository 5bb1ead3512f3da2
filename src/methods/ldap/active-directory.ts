import type { AuthFailureCode } from '../types.ts';
import { escapeFilterValue } from './escape.ts';

/**
 * Active Directory specifics: bind error subcodes, userAccountControl, nested groups, objectGUID.
 *
 * AD answers a failed simple bind with resultCode 49 and a diagnostic message such as
 * `80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 52e, v4563`: the hex
 * number after `data` is the Windows error. AD (and Samba AD, checked by test/ldap-active-directory.test.ts)
 * returns 530, 531, 532, 533, 701 and 773 only when the password is right; a wrong password gives 52e
 * whatever the account state, and an unknown DN gives 52e too (525 only in some forest configurations).
 * 775 (locked out) can come for a wrong password too: it proves nothing, so the user sees the generic
 * message (the audit trail keeps `ad_775`).
 */
export interface AdBindFailure {
  subcode: string;
  /** Internal reason for the audit trail, e.g. `ad_52e`. */
  reason: string;
  code: AuthFailureCode;
  /** Whether AD gives this subcode only for the right password. */
  provesPassword: boolean;
}

const SUBCODES: Record<string, { code: AuthFailureCode; provesPassword: boolean; meaning: string }> = {
  '525': { code: 'invalid_credentials', provesPassword: false, meaning: 'user_not_found' },
  '52e': { code: 'invalid_credentials', provesPassword: false, meaning: 'invalid_credentials' },
  '530': { code: 'account_disabled', provesPassword: true, meaning: 'logon_hours' },
  '531': { code: 'account_disabled', provesPassword: true, meaning: 'workstation_restricted' },
  '532': { code: 'password_expired', provesPassword: true, meaning: 'password_expired' },
  '533': { code: 'account_disabled', provesPassword: true, meaning: 'account_disabled' },
  '701': { code: 'account_disabled', provesPassword: true, meaning: 'account_expired' },
  '773': { code: 'password_must_change', provesPassword: true, meaning: 'password_must_change' },
  '775': { code: 'invalid_credentials', provesPassword: false, meaning: 'account_locked' },
};

/** What each subcode means, for logs and documentation. */
export function adSubcodeMeaning(subcode: string): string | undefined {
  return SUBCODES[subcode]?.meaning;
}

/** Reads the subcode of an AD bind error message; undefined when the message carries none. */
export function parseAdBindError(message: string): AdBindFailure | undefined {
  const match = /\bdata ([0-9a-f]{3,8})\b/i.exec(message);
  if (!match?.[1]) return undefined;
  const subcode = match[1].toLowerCase();
  const known = SUBCODES[subcode];
  if (!known) {
    return { subcode, reason: `ad_${subcode}`, code: 'invalid_credentials', provesPassword: false };
  }
  return { subcode, reason: `ad_${subcode}`, code: known.code, provesPassword: known.provesPassword };
}

/** userAccountControl flag ACCOUNTDISABLE. */
export const UAC_ACCOUNTDISABLE = 0x2;

export function isDisabledByUac(userAccountControl: string | undefined): boolean {
  if (!userAccountControl) return false;
  const value = Number.parseInt(userAccountControl, 10);
  return Number.isFinite(value) && (value & UAC_ACCOUNTDISABLE) !== 0;
}

/** LDAP_MATCHING_RULE_IN_CHAIN: transitive membership, evaluated by the domain controller. */
export const IN_CHAIN = '1.2.840.113556.1.4.1941';

/** Groups the user belongs to, directly or through nested groups. */
export function nestedGroupsFilter(userDn: string): string {
  return `(&(objectClass=group)(member:${IN_CHAIN}:=${escapeFilterValue(userDn)}))`;
}

/**
 * objectGUID (16 bytes, the first three fields little-endian) as the canonical GUID string, e.g.
 * `b221f067-79a8-442b-a5f5-8f4a45303cb7`.
 */
export function guidToString(bytes: Uint8Array): string {
  if (bytes.length !== 16) throw new Error(`objectGUID must be 16 bytes, got ${bytes.length}`);
  const hex = (from: number, to: number, reverse: boolean) => {
    const part = Array.from(bytes.subarray(from, to));
    if (reverse) part.reverse();
    return part.map((b) => b.toString(16).padStart(2, '0')).join('');
  };
  return [hex(0, 4, true), hex(4, 6, true), hex(6, 8, true), hex(8, 10, false), hex(10, 16, false)].join('-');
}
