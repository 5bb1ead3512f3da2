import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { messages } from '../src/i18n/messages.ts';
import {
  authUrl,
  type RawResponse,
  REDIRECT,
  rawGet,
  rawPost,
  registerWebClient,
} from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { errorText } from './helpers/pages.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

/**
 * The protocol engine's error pages and the page of an unknown address: in the user's language, in the
 * application's layout, saying what happened and what to do, with the request reference; never the
 * engine's English codes and descriptions.
 */

const BROWSER_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';
const fr = messages.fr;
const en = messages.en;

/** The visible text of a page (tags removed, entities of the catalogue's punctuation decoded). */
function visibleText(html: string): string {
  return html
    .replace(/<head>[\s\S]*<\/head>/, '')
    .replace(/<[^>]+>/g, ' ')
    .replace(/&#39;/g, "'")
    .replace(/&quot;/g, '"')
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ')
    .trim();
}

/** The request reference shown at the foot of the page. */
function reference(html: string): string | undefined {
  return /<footer class="foot">[^<]*<code>([^<]+)<\/code>/.exec(html)?.[1];
}

function expectStyledPage(response: RawResponse) {
  expect(response.headers.get('content-type')).toMatch(/^text\/html/);
  expect(response.text).toContain('<link rel="stylesheet" href="/static/passerelle.css">');
  expect(response.text).toMatch(/<main id="main" class="card">/);
  const id = response.headers.get('x-request-id');
  expect(id).toMatch(/^[0-9a-f-]{36}$/);
  expect(reference(response.text)).toBe(id);
}

for (const kind of databasesUnderTest()) {
  describe(`error pages in French, English by negotiation [${kind}]`, () => {
    let t: TestServer;

    beforeAll(async () => {
      t = await startTestServer(kind);
      await registerWebClient(t, 'dpi', { client_name: 'Dossier patient' });
    });
    afterAll(async () => {
      await t?.close();
    });

    const unknownClient = (extra: Record<string, string> = {}) =>
      authUrl(t, {
        client_id: 'inconnu',
        redirect_uri: REDIRECT,
        response_type: 'code',
        scope: 'openid',
        ...extra,
      });

    it('an unknown client_id at /auth: a French page that says what happened and what to do', async () => {
      const response = await rawGet(unknownClient(), {
        accept: BROWSER_ACCEPT,
        'accept-language': 'fr-FR,fr;q=0.9',
      });
      expect(response.status).toBe(400);
      expectStyledPage(response);
      expect(response.text).toContain('<html lang="fr">');
      expect(response.text).toContain(`<title>${fr['error.title']} · Passerelle</title>`);
      expect(errorText(response.text)).toBe(fr['error.engine.invalid_client']);
      expect(errorText(response.text)).toMatch(/application/);
      expect(visibleText(response.text)).toContain(fr['error.engine.advice.contact']);
      for (const internal of ['invalid_client', 'client is invalid', 'error_description']) {
        expect(response.text).not.toContain(internal);
      }
      // The reference leads IT staff to the log line that holds the engine's own words.
      const id = response.headers.get('x-request-id') ?? '';
      const logged = t.logs.map((l) => JSON.parse(l)).find((l) => l.requestId === id && l.error);
      expect(logged).toMatchObject({ error: 'invalid_client', msg: 'protocol error page' });
    });

    it('in English when ui_locales or Accept-Language asks for it', async () => {
      for (const [url, language] of [
        [unknownClient({ ui_locales: 'en' }), 'fr-FR'],
        [unknownClient(), 'en-GB,en;q=0.8'],
      ] as const) {
        const response = await rawGet(url, { accept: BROWSER_ACCEPT, 'accept-language': language });
        expect(response.status).toBe(400);
        expectStyledPage(response);
        expect(response.text).toContain('<html lang="en">');
        expect(errorText(response.text)).toBe(en['error.engine.invalid_client']);
        expect(response.text).not.toContain('invalid_client');
      }
    });

    it('a redirect_uri that was not registered: the French sentence, not the engine’s', async () => {
      const response = await rawGet(
        authUrl(t, {
          client_id: 'dpi',
          redirect_uri: 'https://evil.example/cb',
          response_type: 'code',
          scope: 'openid',
        }),
        { accept: BROWSER_ACCEPT, 'accept-language': 'fr' },
      );
      expect(response.status).toBe(400);
      expectStyledPage(response);
      expect(errorText(response.text)).toBe(fr['error.engine.invalid_redirect_uri']);
      expect(response.text).not.toContain('redirect_uri did not match');
      expect(response.text).not.toContain('invalid_redirect_uri');
    });

    it('an unknown address: a French 404 page in the layout, with the reference', async () => {
      const response = await rawGet(`${t.issuer}/nulle-part`, {
        accept: BROWSER_ACCEPT,
        'accept-language': 'fr-FR',
      });
      expect(response.status).toBe(404);
      expectStyledPage(response);
      expect(response.text).toContain(`<title>${fr['error.not_found.title']} · Passerelle</title>`);
      expect(errorText(response.text)).toBe(fr['error.not_found']);
      expect(visibleText(response.text)).toContain(fr['error.not_found.advice']);
      expect(response.text).not.toContain('Not Found');
    });

    it('an unknown address in English by negotiation', async () => {
      const response = await rawGet(`${t.issuer}/nowhere`, {
        accept: BROWSER_ACCEPT,
        'accept-language': 'en-US,en;q=0.9',
      });
      expect(response.status).toBe(404);
      expectStyledPage(response);
      expect(errorText(response.text)).toBe(en['error.not_found']);
    });

    it('an API client gets JSON or plain text by Accept, with the same reference', async () => {
      const json = await rawGet(`${t.issuer}/api/nulle-part`, { accept: 'application/json' });
      expect(json.status).toBe(404);
      expect(json.headers.get('content-type')).toMatch(/^application\/json/);
      expect(json.json).toEqual({ error: 'not_found', request_id: json.headers.get('x-request-id') });

      const plain = await rawGet(`${t.issuer}/nulle-part`, {
        accept: 'text/plain',
        'accept-language': 'fr',
      });
      expect(plain.status).toBe(404);
      expect(plain.headers.get('content-type')).toMatch(/^text\/plain/);
      expect(plain.text).toBe(
        `${fr['error.not_found']}\n${fr['error.reference']} : ${plain.headers.get('x-request-id')}\n`,
      );
    });

    it('the known addresses still answer (discovery, the JWKS, the engine’s JSON errors)', async () => {
      expect((await rawGet(`${t.issuer}/.well-known/openid-configuration`)).status).toBe(200);
      expect((await rawGet(`${t.issuer}/jwks`)).status).toBe(200);
      const api = await rawPost(t, '/token', {
        grant_type: 'authorization_code',
        code: 'x',
        client_id: 'inconnu',
      });
      expect(api.status).toBe(401);
      expect(api.json).toMatchObject({ error: 'invalid_client' });
    });
  });
}

for (const kind of databasesUnderTest()) {
  describe(`the demo application's error page [${kind}]`, () => {
    let t: TestServer;
    beforeAll(async () => {
      t = await startTestServer(kind, { config: { demo: true } });
    });
    afterAll(async () => {
      await t?.close();
    });

    it('an error the application received reads in French, without its code or English description', async () => {
      const response = await rawGet(
        `${t.issuer}/demo/callback?error=access_denied&error_description=End-User+aborted+interaction`,
        { accept: BROWSER_ACCEPT, 'accept-language': 'fr' },
      );
      expect(response.status).toBe(400);
      expectStyledPage(response);
      expect(errorText(response.text)).toBe(fr['error.engine.access_denied']);
      expect(visibleText(response.text)).toContain(fr['error.engine.advice.restart']);
      for (const internal of ['access_denied', 'End-User', 'class="detail"'])
        expect(response.text).not.toContain(internal);
    });
  });
}
