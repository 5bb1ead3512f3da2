import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * A string value carried through the browser (e.g. in an OAuth `state`) that comes back unaltered and
 * in time or not at all: `<base64url JSON {value, exp}>.<HMAC-SHA256>`. `key` is a server secret with a
 * purpose prefix, shared by every instance.
 */
export function signValue(key: string, value: string, ttlMs: number): string {
  const body = Buffer.from(JSON.stringify({ value, exp: Date.now() + ttlMs })).toString('base64url');
  return `${body}.${createHmac('sha256', key).update(body).digest('base64url')}`;
}

/** The value signed by signValue with the same key, if the signature holds and it has not expired. */
export function verifySignedValue(key: string, signed: unknown): string | undefined {
  if (typeof signed !== 'string') return undefined;
  const [body = '', mac = ''] = signed.split('.');
  const expected = createHmac('sha256', key).update(body).digest();
  const given = Buffer.from(mac, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
  try {
    const { value, exp } = JSON.parse(Buffer.from(body, 'base64url').toString()) as {
      value?: unknown;
      exp?: unknown;
    };
    return typeof value === 'string' && typeof exp === 'number' && exp > Date.now() ? value : undefined;
  } catch {
    return undefined;
  }
}
