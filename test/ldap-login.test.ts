import { Client } from 'ldapts';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { messages } from '../src/i18n/messages.ts';
import { BrowserAgent, formAction, formField } from './helpers/browser-agent.ts';
import {
  authorizationRequest,
  discover,
  REDIRECT,
  redeemCode,
  registerWebClient,
} from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { errorText, escaped } from './helpers/pages.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import {
  BASE_DN,
  DIRECTORY_USERS,
  openldapConfig,
  PEOPLE_DN,
  pw,
  ROOT_DN,
  type Slapd,
  slapdAvailable,
  startSlapd,
} from './helpers/slapd.ts';

const fr = messages.fr;

const available = slapdAvailable();
let slapd: Slapd;
beforeAll(async () => {
  if (available)
    slapd = await startSlapd({ generatedUsers: 100, users: DIRECTORY_USERS, groups: { staff: ['alice'] } });
});
afterAll(async () => {
  await slapd?.close();
});

for (const kind of databasesUnderTest()) {
  describe.skipIf(!available)(`LDAP login through the HTTP flow [${kind}]`, () => {
    let slapd: Slapd;
    let t: TestServer;
    let config: oidc.Configuration;

    beforeAll(async () => {
      slapd = await startSlapd({ generatedUsers: 100, users: DIRECTORY_USERS, groups: { staff: ['alice'] } });
      t = await startTestServer(kind, {
        config: {
          throttle: { freeFailures: 20 },
          ldap: openldapConfig(slapd, { userBaseDn: BASE_DN }),
        },
      });
      const secret = await registerWebClient(t, 'dpi', { client_name: 'Dossier patient' });
      config = await discover(t, 'dpi', oidc.ClientSecretBasic(secret));
    });
    afterAll(async () => {
      await t?.close();
      await slapd?.close();
    });

    /** Identify step, then the LDAP form; returns the answer to the password POST. */
    async function submit(username: string, password: string) {
      const agent = new BrowserAgent();
      const pending = await authorizationRequest(config, REDIRECT);
      const first = await agent.follow(pending.url, t.issuer);
      if (!first.response) throw new Error('no login page');
      const identified = await agent.postForm(new URL(formAction(agent.lastHtml, '/identify'), t.issuer), {
        csrf: formField(agent.lastHtml, 'csrf') ?? '',
        username,
      });
      expect(identified.status).toBe(303);
      await agent.follow(new URL(identified.headers.get('location') ?? '', t.issuer), t.issuer);
      const page = agent.lastHtml;
      const action = new URL(formAction(page, '/method/ldap'), t.issuer);
      const response = await agent.postForm(action, {
        csrf: formField(page, 'csrf') ?? '',
        username,
        password,
      });
      return { agent, pending, page, response };
    }

    /** A full login: LDAP form, consent, token; returns the ID token claims. */
    async function login(username: string, password: string) {
      const { agent, pending, response } = await submit(username, password);
      expect(response.status, await response.clone().text()).toBe(303);
      let step = await agent.follow(new URL(response.headers.get('location') ?? '', t.issuer), t.issuer);
      if (step.response && agent.lastHtml.includes('/consent"')) {
        const consent = await agent.postForm(new URL(formAction(agent.lastHtml, '/consent'), t.issuer), {
          csrf: formField(agent.lastHtml, 'csrf') ?? '',
        });
        step = await agent.follow(new URL(consent.headers.get('location') ?? '', t.issuer), t.issuer);
      }
      const tokens = await redeemCode(config, pending, step.url);
      const claims = tokens.claims();
      if (!claims) throw new Error('no ID token');
      return claims;
    }

    async function auditReasons(): Promise<(string | null)[]> {
      const rows = await t.passerelle.services.database.db
        .selectFrom('audit_event')
        .select(['reason'])
        .where('type', '=', 'auth.attempt')
        .where('method', '=', 'ldap')
        .orderBy('seq')
        .execute();
      return rows.map((r) => r.reason);
    }

    it('the directory password is the first method offered, labelled as such', async () => {
      const { page } = await submit('alice', 'not-sent-yet');
      expect(page).toContain(`action="/interaction/`);
      expect(page).toContain(escaped(fr['method.ldap']));
      expect(t.logs.join('')).toContain('"msg":"LDAP login enabled"');
    });

    it('first login provisions the account; the next login gives the same sub', async () => {
      const claims = await login('alice', pw('alice'));
      expect(claims.amr).toEqual(['pwd']);
      const account = await t.passerelle.services.accounts.findById(claims.sub);
      expect(account).toMatchObject({
        username: 'alice',
        displayName: 'Alice Martin',
        email: 'alice@chu.test',
      });
      expect((await login('alice', pw('alice'))).sub).toBe(claims.sub);
    });

    it('a rename and a move in the directory keep the same sub', async () => {
      const before = await login('bob', pw('bob'));
      const root = new Client({ url: slapd.ldapsUrl, tlsOptions: { ca: slapd.pki.caPem } });
      await root.bind(ROOT_DN, slapd.rootPassword);
      await root.modifyDN(`uid=bob,${PEOPLE_DN}`, `uid=bob.durand,ou=moved,${BASE_DN}`);
      await root.unbind();
      const after = await login('bob.durand', pw('bob'));
      expect(after.sub).toBe(before.sub);
      expect((await t.passerelle.services.accounts.findById(after.sub))?.username).toBe('bob.durand');
    });

    it('no enumeration: unknown user and wrong password get the same page; the audit tells them apart', async () => {
      const before = (await auditReasons()).length;
      const wrong = await submit('carol', 'wrong-password');
      const unknown = await submit('nobody-here', 'wrong-password');
      const wrongHtml = await wrong.response.text();
      const unknownHtml = await unknown.response.text();
      expect([wrong.response.status, unknown.response.status]).toEqual([401, 401]);
      expect(errorText(wrongHtml)).toBe(escaped(fr['error.invalid_credentials']));
      expect(errorText(unknownHtml)).toBe(escaped(fr['error.invalid_credentials']));
      const normalise = (html: string) =>
        html
          .replace(/name="csrf" value="[^"]*"/g, '')
          .replace(/<code>[0-9a-f-]{36}<\/code>/g, '<code>REQUEST-ID</code>')
          .replace(/\/interaction\/[^/"?]+/g, '/interaction/UID')
          .replace(/value="(carol|nobody-here)"/g, 'value="USER"')
          .replace(/(carol|nobody-here)/g, 'USER');
      expect(normalise(unknownHtml)).toBe(normalise(wrongHtml));
      expect((await auditReasons()).slice(before)).toEqual(['wrong_password', 'unknown_user']);
    });

    it('a disabled account is refused after the right password only', async () => {
      const claims = await login('dave', pw('dave'));
      await t.passerelle.services.accounts.setDisabled(claims.sub, true);
      try {
        const right = await submit('dave', pw('dave'));
        expect(right.response.status).toBe(403);
        expect(errorText(await right.response.text())).toBe(escaped(fr['error.account_disabled']));
        const wrong = await submit('dave', 'wrong-password');
        expect(wrong.response.status).toBe(401);
        expect(errorText(await wrong.response.text())).toBe(escaped(fr['error.invalid_credentials']));
      } finally {
        await t.passerelle.services.accounts.setDisabled(claims.sub, false);
      }
    });

    it('directory down: "service unavailable" page and /readyz 503; both recover when it is back', async () => {
      expect((await fetch(`${t.issuer}/readyz`)).status).toBe(200);
      await slapd.stop();
      try {
        const down = await submit('alice', pw('alice'));
        expect(down.response.status).toBe(503);
        expect(errorText(await down.response.text())).toBe(escaped(fr['error.service_unavailable']));
        const ready = await fetch(`${t.issuer}/readyz`);
        expect(ready.status).toBe(503);
        expect((await ready.json()).checks.ldap).toEqual({ ok: false, detail: 'directory unreachable' });
      } finally {
        await slapd.start();
      }
      expect((await login('alice', pw('alice'))).amr).toEqual(['pwd']);
      const ready = await fetch(`${t.issuer}/readyz`);
      expect(ready.status).toBe(200);
      expect((await ready.json()).checks.ldap).toEqual({ ok: true });
      expect((await auditReasons()).includes('directory_unavailable')).toBe(true);
    });

    it('never logs the service account password or a user password', () => {
      const logs = t.logs.join('');
      expect(logs).not.toContain(slapd.servicePassword);
      for (const u of DIRECTORY_USERS) expect(logs).not.toContain(u.password);
    });
  });
}
