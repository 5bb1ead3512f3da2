import type { LogEvent } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { messages } from '../src/i18n/messages.ts';
import { BrowserAgent, formAction, formField } from './helpers/browser-agent.ts';
import {
  authUrl,
  basicAuthorization,
  createUser,
  REDIRECT,
  registerWebClient,
  S256_CHALLENGE,
} from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { errorText, escaped } from './helpers/pages.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

/**
 * Input the database refuses (a NUL character, a lone surrogate in JSON) or that is not UTF-8 at all
 * (overlong forms, surrogates encoded in UTF-8, stray bytes), sent in every parameter a client or a
 * browser controls. Each request gets the protocol's 400 before any database statement sees the value,
 * and nothing is logged at error level.
 */

/** Percent-encoded bytes that are not valid UTF-8 text, or text PostgreSQL refuses. */
const BAD_BYTES = [
  ['NUL', '%00'],
  ['UTF-8-encoded lone surrogate', '%ED%A0%80'],
  ['overlong NUL', '%C0%80'],
  ['invalid byte', '%FF'],
] as const;

/** JSON text PostgreSQL's jsonb refuses: `\u0000`, a lone surrogate. */
const BAD_JSON_ESCAPES = [
  ['JSON \\u0000', '\\u0000'],
  ['JSON lone surrogate \\ud800', '\\ud800'],
] as const;

type Shape = 'page' | 'json' | 'bearer';

interface Probe {
  name: string;
  shape: Shape;
  /** Sends the request with `bad` (raw, already percent-encoded) inserted in the parameter under test. */
  send(bad: string): Promise<Response>;
}

const fr = messages.fr;

for (const kind of databasesUnderTest()) {
  describe(`hostile input is refused with the protocol's 400 [${kind}]`, () => {
    let t: TestServer;
    let secret: string;
    const statements: LogEvent[] = [];
    let marker = 0;

    const url = (path: string) => new URL(path, t.issuer).href;
    const get = (path: string, headers: Record<string, string> = {}) =>
      fetch(url(path), { redirect: 'manual', headers });
    const post = (path: string, body: string, headers: Record<string, string> = {}) =>
      fetch(url(path), {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
        body,
      });
    const basic = () => ({ authorization: basicAuthorization('dpi', secret) });
    const authQuery = (param: string, value: string) => {
      const params: Record<string, string> = {
        client_id: 'dpi',
        redirect_uri: REDIRECT,
        response_type: 'code',
        scope: 'openid',
        state: 'st',
        nonce: 'n',
        code_challenge: S256_CHALLENGE,
        code_challenge_method: 'S256',
      };
      delete params[param];
      const query = new URLSearchParams(params).toString();
      return `${query}&${param}=${value}`;
    };
    const jwt = (payload: string) =>
      `${Buffer.from('{"alg":"ES256","typ":"JWT"}').toString('base64url')}.${Buffer.from(payload).toString('base64url')}.AAAA`;

    /** A login form of a real interaction: its action and CSRF token. */
    const loginForm = async () => {
      const agent = new BrowserAgent();
      await agent.follow(
        authUrl(t, {
          client_id: 'dpi',
          redirect_uri: REDIRECT,
          response_type: 'code',
          scope: 'openid',
          code_challenge: S256_CHALLENGE,
          code_challenge_method: 'S256',
        }),
        t.issuer,
      );
      const html = agent.lastHtml;
      return { agent, action: url(formAction(html, '/identify')), csrf: formField(html, 'csrf') ?? '' };
    };

    const probes: Probe[] = [
      ...['state', 'client_id', 'nonce', 'login_hint', 'ui_locales', 'acr_values', 'redirect_uri'].map(
        (param): Probe => ({
          name: `GET /auth ${param}`,
          shape: 'page',
          send: (bad) => get(`/auth?${authQuery(param, bad)}`),
        }),
      ),
      {
        name: 'POST /auth state (form)',
        shape: 'page',
        send: (bad) => post('/auth', authQuery('state', bad)),
      },
      {
        name: 'POST /token grant_type',
        shape: 'json',
        send: (bad) => post('/token', `grant_type=${bad}&code=abc`, basic()),
      },
      {
        name: 'POST /token code',
        shape: 'json',
        send: (bad) =>
          post('/token', `grant_type=authorization_code&code=${bad}&redirect_uri=${REDIRECT}`, basic()),
      },
      {
        name: 'POST /token refresh_token',
        shape: 'json',
        send: (bad) => post('/token', `grant_type=refresh_token&refresh_token=${bad}`, basic()),
      },
      {
        name: 'POST /token client_id (body)',
        shape: 'json',
        send: (bad) => post('/token', `grant_type=refresh_token&refresh_token=x&client_id=${bad}`),
      },
      {
        name: 'POST /token client_id (Basic header)',
        shape: 'json',
        send: (bad) =>
          post('/token', 'grant_type=refresh_token&refresh_token=x', {
            authorization: `Basic ${Buffer.from(`${bad}:secret`).toString('base64')}`,
          }),
      },
      {
        name: 'POST /token/introspection token',
        shape: 'json',
        send: (bad) => post('/token/introspection', `token=${bad}`, basic()),
      },
      {
        name: 'POST /token/revocation token',
        shape: 'json',
        send: (bad) => post('/token/revocation', `token=${bad}`, basic()),
      },
      {
        name: 'POST /request (PAR) state',
        shape: 'json',
        send: (bad) => post('/request', authQuery('state', bad), basic()),
      },
      {
        name: 'POST /me access_token (body)',
        shape: 'bearer',
        send: (bad) => post('/me', `access_token=${bad}`),
      },
      {
        name: 'GET /me access_token (query)',
        shape: 'bearer',
        send: (bad) => get(`/me?access_token=${bad}`),
      },
      ...['client_id', 'state', 'post_logout_redirect_uri', 'logout_hint', 'ui_locales', 'id_token_hint'].map(
        (param): Probe => ({
          name: `GET /session/end ${param}`,
          shape: 'page',
          send: (bad) => get(`/session/end?${param}=${bad}`),
        }),
      ),
      {
        name: 'POST /session/end state (form)',
        shape: 'page',
        send: (bad) => post('/session/end', `state=${bad}`),
      },
      {
        name: 'POST /session/end/confirm xsrf',
        shape: 'page',
        send: (bad) => post('/session/end/confirm', `xsrf=${bad}&logout=yes`),
      },
      {
        name: 'POST login form username',
        shape: 'page',
        send: async (bad) => {
          const form = await loginForm();
          return form.agent.request(form.action, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: `csrf=${encodeURIComponent(form.csrf)}&username=${bad}`,
          });
        },
      },
      {
        name: 'GET interaction path',
        shape: 'page',
        send: (bad) => get(`/interaction/${bad}`),
      },
    ];

    beforeAll(async () => {
      t = await startTestServer(kind, { onQuery: (event) => statements.push(event) });
      await createUser(t, 'alice');
      secret = await registerWebClient(t, 'dpi', { first_party: true });
    });
    afterAll(async () => {
      await t?.close();
    });

    /**
     * Sends one probe and returns what is wrong with its answer (empty when it is the expected refusal):
     * 400 without redirect, the error in the endpoint's shape, no error-level log line, and no database
     * statement that saw the value.
     */
    const problems = async (probe: Probe, badBytes: string): Promise<string[]> => {
      const tag = `probe${++marker}x`;
      const logsBefore = t.logs.length;
      const response = await probe.send(`${tag}${badBytes}`);
      const text = await response.text();
      const found: string[] = [];
      const check = (ok: boolean, what: string) => {
        if (!ok) found.push(`${probe.name} with ${badBytes || 'JSON'}: ${what}`);
      };
      check(response.status === 400, `status ${response.status} ${text.slice(0, 120).replace(/\s+/g, ' ')}`);
      check(response.headers.get('location') === null, `redirected to ${response.headers.get('location')}`);
      const type = response.headers.get('content-type') ?? '';
      if (probe.shape === 'page') {
        check(type.startsWith('text/html'), `content-type ${type}`);
        check(errorText(text) === escaped(fr['error.invalid_characters']), `error text ${errorText(text)}`);
        check(text.includes('<html lang="fr"'), 'not a French page');
      } else {
        check(type.startsWith('application/json'), `content-type ${type}`);
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          body = undefined;
        }
        check((body as { error?: string })?.error === 'invalid_request', `body ${text.slice(0, 120)}`);
        if (probe.shape === 'bearer') {
          const header = response.headers.get('www-authenticate') ?? '';
          check(
            /^Bearer realm="[^"]+", error="invalid_request", error_description="[^"]+"$/.test(header),
            `WWW-Authenticate ${header}`,
          );
        }
      }
      // Wait for the access log line: every line of the request has been written by then.
      const requestId = response.headers.get('x-request-id');
      check(requestId !== null, 'no x-request-id');
      const accessLogged = () =>
        t.logs.slice(logsBefore).some((l) => l.includes(`"requestId":"${requestId}","method"`));
      await expect
        .poll(accessLogged)
        .toBe(true)
        .catch(() => check(false, 'no access log line'));
      const errors = t.logs.slice(logsBefore).filter((line) => /"level":(50|60)/.test(line));
      check(errors.length === 0, `logged at error level: ${errors.map((e) => JSON.parse(e).msg).join(', ')}`);
      const reached = statements.filter((s) =>
        JSON.stringify([s.query.sql, s.query.parameters]).includes(tag),
      );
      check(reached.length === 0, `${reached.length} database statement(s) saw the value`);
      return found;
    };

    for (const [label, bytes] of BAD_BYTES) {
      it(`${label} in any parameter`, async () => {
        const found: string[] = [];
        for (const probe of probes) found.push(...(await problems(probe, bytes)));
        expect(found).toEqual([]);
      });
    }

    it('JSON that jsonb refuses inside a parameter (claims) or a JWT (client_assertion, id_token_hint)', async () => {
      const found: string[] = [];
      for (const [, jsonEscape] of BAD_JSON_ESCAPES) {
        const refused = async (probe: Probe) => found.push(...(await problems(probe, '')));
        await refused({
          name: 'GET /auth claims',
          shape: 'page',
          send: (tag) =>
            get(
              `/auth?${authQuery('claims', encodeURIComponent(`{"id_token":{"${tag}${jsonEscape}":null}}`))}`,
            ),
        });
        await refused({
          name: 'POST /token client_assertion',
          shape: 'json',
          send: (tag) =>
            post(
              '/token',
              `grant_type=refresh_token&refresh_token=x&client_assertion_type=${encodeURIComponent(
                'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
              )}&client_assertion=${jwt(`{"iss":"${tag}${jsonEscape}","sub":"${tag}${jsonEscape}","aud":"${t.issuer}"}`)}`,
            ),
        });
        await refused({
          name: 'GET /session/end id_token_hint',
          shape: 'page',
          send: (tag) => get(`/session/end?id_token_hint=${jwt(`{"aud":"${tag}${jsonEscape}","sub":"x"}`)}`),
        });
      }
      expect(found).toEqual([]);
    });

    it('the same parameters with ordinary non-ASCII text still reach the engine', async () => {
      // Control: UTF-8 text (é, an emoji) is not refused by the check (the engine answers as usual).
      const ok = await get(`/auth?${authQuery('state', 'caf%C3%A9%F0%9F%98%80')}`);
      expect(ok.status).toBe(303);
      expect(ok.headers.get('location')).toMatch(/^\/interaction\//);
      const token = await post('/token', 'grant_type=refresh_token&refresh_token=caf%C3%A9', basic());
      expect(token.status).toBe(400);
      expect(await token.json()).toMatchObject({ error: 'invalid_grant' });
    });
  });
}
