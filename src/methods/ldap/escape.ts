/**
 * Escaping of user input placed in LDAP filters (RFC 4515) and distinguished names (RFC 4514).
 * Everything that reaches a filter or a DN from outside goes through one of these.
 */

/**
 * RFC 4515 §3: an assertion value escapes `*`, `(`, `)`, `\` and NUL as `\XX`. Other control characters
 * are escaped too (harmless, and they keep logs readable). Works on UTF-8 bytes, as the RFC does.
 */
export function escapeFilterValue(value: string): string {
  let out = '';
  for (const char of value) {
    const code = char.codePointAt(0) ?? 0;
    if (char === '*' || char === '(' || char === ')' || char === '\\' || code < 0x20 || code === 0x7f) {
      out += `\\${code.toString(16).padStart(2, '0')}`;
    } else {
      out += char;
    }
  }
  return out;
}

/** Raw bytes (e.g. an objectGUID) as a filter assertion value: every byte escaped. */
export function escapeFilterBytes(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => `\\${b.toString(16).padStart(2, '0')}`).join('');
}

/** Replaces every `{username}` of a filter template with the escaped value. */
export function fillFilter(template: string, username: string): string {
  return template.replaceAll('{username}', escapeFilterValue(username));
}

/**
 * RFC 4514 §2.4: an attribute value in a DN escapes `"`, `+`, `,`, `;`, `<`, `>`, `\`, a leading `#` or
 * space, a trailing space, and NUL (as `\00`).
 */
export function escapeDnValue(value: string): string {
  let out = '';
  const chars = Array.from(value);
  for (const [i, char] of chars.entries()) {
    if (char === '\0') out += '\\00';
    else if ('"+,;<>\\='.includes(char)) out += `\\${char}`;
    else if (i === 0 && (char === '#' || char === ' ')) out += `\\${char}`;
    else if (i === chars.length - 1 && char === ' ') out += '\\ ';
    else out += char;
  }
  return out;
}
