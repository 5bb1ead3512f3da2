import { IncomingMessage } from 'node:http';
import type { Context, Middleware } from 'koa';
import type { Logger } from 'pino';
import getRawBody from 'raw-body';

/**
 * Input the database cannot store, refused at the door: a NUL character (PostgreSQL's text and jsonb
 * refuse it), a lone surrogate in JSON (jsonb refuses it), and bytes that are not UTF-8 (overlong forms,
 * surrogates encoded in UTF-8, stray bytes: decoders would turn them into U+FFFD silently). Checked in
 * the path, the query, form and JSON bodies, the credentials of `Authorization: Basic`, and the JSON a
 * parameter carries (the `claims` parameter, the header and payload of a JWT such as `client_assertion`
 * or `id_token_hint`, which the engine reads before verifying it).
 */

const UTF8 = new TextDecoder('utf-8', { fatal: true });

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x41 && code <= 0x46) return code - 0x37;
  if (code >= 0x61 && code <= 0x66) return code - 0x57;
  return -1;
}

/**
 * Percent-decodes one component (`+` is a space in forms) to its bytes; a malformed escape stays as it
 * is, as Node's querystring leaves it. Characters above U+00FF (JSON strings) are UTF-8-encoded.
 */
function percentDecode(raw: string, plusIsSpace: boolean): Uint8Array {
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const code = raw.charCodeAt(i);
    if (code === 0x25 && i + 2 < raw.length) {
      const high = hexValue(raw.charCodeAt(i + 1));
      const low = hexValue(raw.charCodeAt(i + 2));
      if (high >= 0 && low >= 0) {
        bytes.push(high * 16 + low);
        i += 2;
        continue;
      }
    }
    if (code === 0x2b && plusIsSpace) bytes.push(0x20);
    else if (code <= 0xff) bytes.push(code);
    else bytes.push(...Buffer.from(raw[i] ?? '', 'utf8'));
  }
  return Uint8Array.from(bytes);
}

/** The text of `bytes`, or undefined when they are not UTF-8. */
function utf8Text(bytes: Uint8Array): string | undefined {
  try {
    return UTF8.decode(bytes);
  } catch {
    return undefined;
  }
}

/** Text PostgreSQL stores as it is: no NUL, no lone surrogate. */
function storable(text: string): boolean {
  return !text.includes('\0') && text.isWellFormed();
}

/** Every string of a JSON value (keys included) is storable. */
function storableJson(value: unknown): boolean {
  if (typeof value === 'string') return storable(value);
  if (Array.isArray(value)) return value.every(storableJson);
  if (value && typeof value === 'object') {
    return Object.entries(value).every(([key, v]) => storable(key) && storableJson(v));
  }
  return true;
}

function parsedJson(text: string): { value: unknown } | undefined {
  try {
    return { value: JSON.parse(text) };
  } catch {
    return undefined;
  }
}

const COMPACT_JWT = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]*){2,4}$/;

/** The JSON a parameter value carries, as an object or array or as the header and payload of a JWT, is storable. */
function storableEmbeddedJson(value: string): boolean {
  const trimmed = value.trimStart();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    const parsed = parsedJson(value);
    return !parsed || storableJson(parsed.value);
  }
  if (!COMPACT_JWT.test(value)) return true;
  // JWS: header and payload; JWE: only the protected header is readable.
  for (const segment of value.split('.').slice(0, 2)) {
    const text = utf8Text(Buffer.from(segment, 'base64url'));
    if (text === undefined) continue; // not JSON at all: the engine refuses it as any malformed JWT
    const parsed = parsedJson(text);
    if (parsed && !storableJson(parsed.value)) return false;
  }
  return true;
}

/** One decoded name or value: UTF-8, storable, and so is the JSON it carries. */
function acceptableComponent(raw: string, plusIsSpace: boolean): boolean {
  const text = utf8Text(percentDecode(raw, plusIsSpace));
  return text !== undefined && storable(text) && storableEmbeddedJson(text);
}

/** A query string or form body (`a=1&b=2`): every name and value is acceptable. */
export function acceptableForm(encoded: string): boolean {
  for (const pair of encoded.split('&')) {
    if (!pair) continue;
    const eq = pair.indexOf('=');
    const name = eq < 0 ? pair : pair.slice(0, eq);
    const value = eq < 0 ? '' : pair.slice(eq + 1);
    if (!acceptableComponent(name, true) || !acceptableComponent(value, true)) return false;
  }
  return true;
}

/** `Authorization: Basic`: the client id and secret, form-encoded then base64 (RFC 6749 §2.3.1). */
function acceptableAuthorization(header: string): boolean {
  const match = /^basic\s+(\S+)\s*$/i.exec(header);
  if (!match?.[1]) return true;
  const decoded = utf8Text(Buffer.from(match[1], 'base64'));
  if (decoded === undefined) return false;
  return decoded.split(':').every((part) => acceptableComponent(part, true));
}

/** A body: UTF-8, then acceptable as a form or as JSON (unparseable JSON is left to its reader). */
function acceptableBody(body: Buffer, json: boolean): boolean {
  const text = utf8Text(body);
  if (text === undefined) return false;
  if (!json) return acceptableForm(text);
  const parsed = parsedJson(text);
  return !parsed || storableJson(parsed.value);
}

/** The same request with its body to read again, for the readers after this check (forms, the engine). */
function replayed(req: IncomingMessage, body: Buffer): IncomingMessage {
  const copy = new IncomingMessage(req.socket);
  copy.method = req.method;
  copy.url = req.url;
  copy.httpVersion = req.httpVersion;
  copy.httpVersionMajor = req.httpVersionMajor;
  copy.httpVersionMinor = req.httpVersionMinor;
  copy.headers = req.headers;
  copy.rawHeaders = req.rawHeaders;
  copy.trailers = req.trailers;
  copy.rawTrailers = req.rawTrailers;
  copy.complete = true;
  copy.push(body);
  copy.push(null);
  return copy;
}

const BODY_TYPES = ['application/x-www-form-urlencoded', 'application/json', '+json'];

export interface InputCheckOptions {
  logger: Logger;
  limitBytes: number;
  /** Endpoints answering in JSON (`{ error: 'invalid_request' }`): token, introspection, PAR… */
  jsonPaths: readonly string[];
  /** Protected resources (userinfo): JSON with `WWW-Authenticate: Bearer` (RFC 6750 §3.1). */
  bearerPaths: readonly string[];
  /** Realm of WWW-Authenticate (the issuer). */
  realm: string;
  /** The error page of the browser endpoints, with the message for this refusal. */
  page(ctx: Context): string;
}

/**
 * Refuses, with the endpoint's 400, any request carrying input the database cannot store, before any
 * route sees it. Form and JSON bodies are read here (within the body limit) and handed on to the
 * readers after this check as a fresh request stream, so that the engine and the forms read them as usual.
 */
export function inputCheck(options: InputCheckOptions): Middleware {
  const refuse = (ctx: Context, where: string) => {
    options.logger.info(
      { requestId: ctx.state.requestId, path: ctx.path, where },
      'request refused: invalid characters',
    );
    const description = 'request contains a NUL character or invalid UTF-8';
    ctx.status = 400;
    ctx.set('cache-control', 'no-store');
    if (options.bearerPaths.includes(ctx.path)) {
      ctx.set(
        'www-authenticate',
        `Bearer realm="${options.realm}", error="invalid_request", error_description="${description}"`,
      );
      ctx.body = { error: 'invalid_request', error_description: description };
    } else if (options.jsonPaths.includes(ctx.path) || ctx.accepts('html', 'json') === 'json') {
      ctx.body = { error: 'invalid_request', error_description: description };
    } else {
      ctx.type = 'html';
      ctx.body = options.page(ctx);
    }
  };

  return async (ctx, next) => {
    if (!acceptableComponent(ctx.path, false)) return refuse(ctx, 'path');
    if (!acceptableForm(ctx.querystring)) return refuse(ctx, 'query');
    const authorization = ctx.get('authorization');
    if (authorization && !acceptableAuthorization(authorization)) return refuse(ctx, 'authorization');
    const type = ctx.is(BODY_TYPES);
    if (!type) return next();
    let body: Buffer;
    try {
      body = await getRawBody(ctx.req, { limit: options.limitBytes, length: ctx.request.length });
    } catch (err) {
      const tooLarge = (err as { status?: number }).status === 413;
      ctx.status = tooLarge ? 413 : 400;
      ctx.body = {
        error: 'invalid_request',
        error_description: tooLarge ? 'request body too large' : 'unreadable request body',
      };
      if (tooLarge) ctx.set('connection', 'close');
      return;
    }
    if (!acceptableBody(body, type !== 'application/x-www-form-urlencoded')) return refuse(ctx, 'body');
    const req = replayed(ctx.req, body);
    ctx.req = req;
    ctx.request.req = req;
    ctx.response.req = req;
    await next();
  };
}
