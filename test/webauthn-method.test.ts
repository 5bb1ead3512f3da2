import { randomUUID } from 'node:crypto';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditTrail } from '../src/audit/trail.ts';
import type { AuthOutcome, MethodContext } from '../src/methods/types.ts';
import { Ceremonies } from '../src/methods/webauthn/ceremonies.ts';
import { webauthnMethod } from '../src/methods/webauthn/index.ts';
import { AttestationPolicy } from '../src/methods/webauthn/policy.ts';
import type { WebauthnSettings } from '../src/methods/webauthn/settings.ts';
import { ChallengeStore, CredentialStore, EnrollmentCodes } from '../src/methods/webauthn/store.ts';
import { attempt } from './helpers/attempts.ts';
import { createUser } from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import {
  chromiumAvailable,
  enrollKey,
  launchChromium,
  missingChromiumSuite,
  newFrenchContext,
  passwordLogin,
  VirtualKey,
} from './helpers/webauthn-browser.ts';

/**
 * The webauthn method on its own (prepare → browser ceremony → authenticate), with real Chromium
 * assertions from a virtual authenticator and the real stores; the login pages are tested elsewhere.
 */

type Method = ReturnType<typeof webauthnMethod>;

function context(overrides: Partial<MethodContext> = {}): MethodContext {
  return {
    ip: '127.0.0.1',
    userAgent: 'test',
    interactionUid: `int-${randomUUID()}`,
    requestId: randomUUID(),
    locale: 'fr',
    username: undefined,
    accountId: undefined,
    clientCertificate: undefined,
    ...overrides,
  };
}

/** Runs navigator.credentials.get() in the page through the served browser library; the JSON answer. */
async function assertion(page: Page, optionsJson: string): Promise<string> {
  return page.evaluate(async (options) => {
    const lib = (
      window as unknown as {
        SimpleWebAuthnBrowser: { startAuthentication: (o: unknown) => Promise<unknown> };
      }
    ).SimpleWebAuthnBrowser;
    return JSON.stringify(await lib.startAuthentication({ optionsJSON: JSON.parse(options) }));
  }, optionsJson);
}

function failure(outcome: AuthOutcome) {
  return outcome.kind === 'failure'
    ? { code: outcome.code, reason: outcome.reason }
    : { code: 'success', reason: '' };
}

if (!chromiumAvailable()) {
  missingChromiumSuite('webauthn method in a real browser');
} else {
  for (const kind of databasesUnderTest()) {
    describe(`webauthn method with Chromium assertions [${kind}]`, () => {
      let t: TestServer;
      let browser: Browser;
      let browserContext: BrowserContext;
      let page: Page;
      let key: VirtualKey;
      let method: Method;
      let credentials: CredentialStore;
      let settings: WebauthnSettings;
      let alice: { id: string; username: string };
      let credentialId: string;

      const build = (overrides: Partial<WebauthnSettings> = {}): Method => {
        const db = t.passerelle.services.database.db;
        const s = { ...settings, ...overrides };
        return webauthnMethod({
          ceremonies: new Ceremonies({
            settings: s,
            credentials,
            challenges: new ChallengeStore(db, s.challengeTtlSeconds),
            policy: new AttestationPolicy(s.policy),
            fakeIdKey: 'test-fake-id-key',
          }),
          credentials,
          accounts: t.passerelle.services.accounts,
          audit: new AuditTrail(db, t.passerelle.services.logger),
        });
      };

      /** prepare → ceremony in the browser → authenticate, for one interaction. */
      const login = async (ctx: MethodContext, m: Method = method) => {
        const prepared = await (m.prepare as NonNullable<Method['prepare']>)(ctx);
        const response = await assertion(page, String(prepared.webauthnOptions));
        return { outcome: await m.authenticate({ response }, ctx), response, prepared };
      };

      beforeAll(async () => {
        t = await startTestServer(kind, {
          issuerHost: 'localhost',
          config: (issuer) => ({ demo: true, webauthn: { rpId: 'localhost', origins: [issuer] } }),
        });
        settings = t.config.webauthn as WebauthnSettings;
        credentials = new CredentialStore(t.passerelle.services.database.db);
        method = build();
        browser = await launchChromium();
        browserContext = await newFrenchContext(browser);
        page = await browserContext.newPage();
        // Enroll one key for alice through the pages, as a user would.
        const user = await createUser(t, 'method.alice');
        alice = { id: user.id, username: user.username };
        await passwordLogin(page, t.issuer, alice.username);
        key = await VirtualKey.attach(page);
        const code = await new EnrollmentCodes(t.passerelle.services.database.db).issue(
          alice.id,
          'test',
          600,
        );
        await enrollKey(page, t.issuer, 'Clé de test', code.code);
        const [stored] = await credentials.listForAccount(alice.id);
        credentialId = stored?.id ?? '';
        // The ceremonies run on a page of the RP's origin, with the browser library Passerelle serves.
        await page.goto(`${t.issuer}/`);
        await page.addScriptTag({ url: '/static/vendor/simplewebauthn-browser.umd.min.js' });
      });
      afterAll(async () => {
        await browserContext?.close();
        await browser?.close();
        await t?.close();
      });

      it('declares a phishing-resistant two-factor method that needs no username', () => {
        expect(method).toMatchObject({
          id: 'webauthn',
          label: 'method.webauthn',
          amr: ['hwk', 'pin', 'mfa'],
          phishingResistant: true,
          needsUsername: false,
          view: 'method-webauthn',
        });
        expect(credentialId).toMatch(/^[A-Za-z0-9_-]{16,}$/);
      });

      it('usernameless: empty allowCredentials, the key offers its discoverable credential', async () => {
        const { outcome, prepared } = await login(context());
        expect(prepared.webauthnMode).toBe('discoverable');
        const options = JSON.parse(String(prepared.webauthnOptions));
        expect(options.allowCredentials ?? []).toEqual([]);
        expect(options.userVerification).toBe('required');
        expect(options.rpId).toBe('localhost');
        expect(Buffer.from(options.challenge, 'base64url')).toHaveLength(32);
        expect(outcome).toEqual({
          kind: 'success',
          accountId: alice.id,
          amr: ['hwk', 'pin', 'mfa'],
          detail: { credentialId, aaguid: expect.any(String), counter: expect.any(Number) },
        });
        const [stored] = await credentials.listForAccount(alice.id);
        expect(stored?.lastUsedAt).toBeInstanceOf(Date);
      });

      it('username-first: allowCredentials lists the account keys', async () => {
        const { outcome, prepared } = await login(context({ username: 'METHOD.ALICE' }));
        expect(prepared.webauthnMode).toBe('username');
        const options = JSON.parse(String(prepared.webauthnOptions));
        expect(options.allowCredentials).toEqual([
          { id: credentialId, type: 'public-key', transports: expect.any(Array) },
        ]);
        expect(outcome.kind).toBe('success');
      });

      it('an unknown username gets plausible, stable fake credential ids (no enumeration)', async () => {
        const ctx = context({ username: 'nobody.here' });
        const prepare = method.prepare as NonNullable<Method['prepare']>;
        const first = JSON.parse(String((await prepare(ctx)).webauthnOptions));
        const second = JSON.parse(
          String((await prepare(context({ username: 'nobody.here' }))).webauthnOptions),
        );
        const other = JSON.parse(
          String((await prepare(context({ username: 'someone.else' }))).webauthnOptions),
        );
        expect(first.allowCredentials).toHaveLength(1);
        expect(first.allowCredentials[0].id).toMatch(/^[A-Za-z0-9_-]{43,}$/);
        expect(first.allowCredentials).toEqual(second.allowCredentials);
        expect(other.allowCredentials[0].id).not.toBe(first.allowCredentials[0].id);
        expect(Object.keys(first).sort()).toEqual(
          Object.keys(
            JSON.parse(String((await prepare(context({ username: alice.username }))).webauthnOptions)),
          ).sort(),
        );
        // An account without keys looks the same as an unknown one.
        const bob = await createUser(t, 'method.bob');
        const bobOptions = JSON.parse(
          String((await prepare(context({ username: bob.username }))).webauthnOptions),
        );
        expect(bobOptions.allowCredentials).toHaveLength(1);
        expect(bobOptions.allowCredentials[0].id).toHaveLength(first.allowCredentials[0].id.length);
      });

      it('a key answering without user verification (UV=0) is refused: uv_missing', async () => {
        await key.override({ isBadUV: true });
        try {
          expect(failure((await login(context())).outcome)).toEqual({
            code: 'ceremony_failed',
            reason: 'uv_missing',
          });
        } finally {
          await key.override({ isBadUV: false });
        }
      });

      it('a key answering without user presence (UP=0) is refused: up_missing', async () => {
        await key.override({ isBadUP: true });
        try {
          expect(failure((await login(context())).outcome)).toEqual({
            code: 'ceremony_failed',
            reason: 'up_missing',
          });
        } finally {
          await key.override({ isBadUP: false });
        }
      });

      it('a bogus signature is refused: bad_signature', async () => {
        await key.override({ isBogusSignature: true });
        try {
          expect(failure((await login(context())).outcome)).toEqual({
            code: 'ceremony_failed',
            reason: 'bad_signature',
          });
        } finally {
          await key.override({ isBogusSignature: false });
        }
      });

      it('a replayed assertion is refused (the challenge was consumed), as is one for another interaction', async () => {
        const ctx = context();
        const { outcome, response } = await login(ctx);
        expect(outcome.kind).toBe('success');
        expect(failure(await method.authenticate({ response }, ctx))).toEqual({
          code: 'ceremony_failed',
          reason: 'challenge_unknown',
        });
        // A fresh challenge for interaction A cannot be answered in interaction B.
        const a = context();
        const prepared = await (method.prepare as NonNullable<Method['prepare']>)(a);
        const answer = await assertion(page, String(prepared.webauthnOptions));
        expect(failure(await method.authenticate({ response: answer }, context()))).toEqual({
          code: 'ceremony_failed',
          reason: 'challenge_unknown',
        });
        // …and it was not consumed by that attempt: interaction A can still use it.
        expect((await method.authenticate({ response: answer }, a)).kind).toBe('success');
      });

      it('an expired challenge is refused', async () => {
        const ctx = context();
        const prepared = await (method.prepare as NonNullable<Method['prepare']>)(ctx);
        const answer = await assertion(page, String(prepared.webauthnOptions));
        await t.passerelle.services.database.db
          .updateTable('webauthn_challenge')
          .set({ expires_at: new Date(Date.now() - 1000) })
          .where('subject', '=', `interaction:${ctx.interactionUid}`)
          .execute();
        expect(failure(await method.authenticate({ response: answer }, ctx))).toEqual({
          code: 'ceremony_failed',
          reason: 'challenge_unknown',
        });
      });

      it('an origin not in the configured origins is refused: origin_mismatch', async () => {
        // Same RP ID (localhost), but this deployment accepts another origin only: the page's origin, which
        // the browser wrote into the signed client data, is not one of them.
        const strict = build({ origins: ['https://passerelle.hopital.example'] });
        expect(failure((await login(context(), strict)).outcome)).toEqual({
          code: 'ceremony_failed',
          reason: 'origin_mismatch',
        });
      });

      it('the key of another account than the one of the session fails with account_mismatch', async () => {
        const other = await createUser(t, 'method.carol');
        // Usernameless step-up (no account in the options) proving alice while the session is carol's.
        const ctx = context();
        const prepared = await (method.prepare as NonNullable<Method['prepare']>)(ctx);
        const answer = await assertion(page, String(prepared.webauthnOptions));
        expect(
          failure(
            await attempt(
              t.passerelle.services,
              method,
              { response: answer },
              { ...ctx, accountId: other.id },
            ),
          ),
        ).toEqual({
          code: 'account_mismatch',
          reason: 'account_mismatch',
        });
      });

      it('a disabled account is refused after a valid assertion (by the login layer)', async () => {
        await t.passerelle.services.accounts.setDisabled(alice.id, true);
        try {
          const ctx = context();
          const prepared = await (method.prepare as NonNullable<Method['prepare']>)(ctx);
          const response = await assertion(page, String(prepared.webauthnOptions));
          expect(failure(await attempt(t.passerelle.services, method, { response }, ctx))).toEqual({
            code: 'account_disabled',
            reason: 'account_disabled',
          });
        } finally {
          await t.passerelle.services.accounts.setDisabled(alice.id, false);
        }
      });

      it('malformed or oversized responses are refused without reaching the verification', async () => {
        expect(failure(await method.authenticate({ response: 'not json' }, context()))).toEqual({
          code: 'ceremony_failed',
          reason: 'malformed_response',
        });
        expect(method.input.safeParse({ response: 'x'.repeat(20_000) }).success).toBe(false);
      });

      // Last: these two change the key's state for good.
      it('a signature counter regression is refused, the key flagged and audited, then blocked', async () => {
        const db = t.passerelle.services.database.db;
        await db
          .updateTable('webauthn_credential')
          .set({ counter: 1_000_000 })
          .where('id', '=', credentialId)
          .execute();
        expect(failure((await login(context())).outcome)).toEqual({
          code: 'credential_blocked',
          reason: 'counter_regression',
        });
        const stored = await credentials.find(credentialId);
        expect(stored?.flagReason).toBe('counter_regression');
        expect(stored?.flaggedAt).toBeInstanceOf(Date);
        const events = await db
          .selectFrom('audit_event')
          .selectAll()
          .where('type', '=', 'webauthn.counter_regression')
          .execute();
        expect(events).toHaveLength(1);
        expect(events[0]).toMatchObject({
          account_id: alice.id,
          outcome: 'failure',
          reason: 'counter_regression',
        });
        expect(events[0]?.detail).toMatchObject({ credentialId, storedCounter: 1_000_000 });
        // Even with a counter back in order, a flagged key stays refused until an administrator acts.
        await db
          .updateTable('webauthn_credential')
          .set({ counter: 0 })
          .where('id', '=', credentialId)
          .execute();
        expect(failure((await login(context())).outcome)).toEqual({
          code: 'credential_blocked',
          reason: 'credential_blocked',
        });
      });

      it('a revoked key is refused', async () => {
        await credentials.revoke(alice.id, credentialId);
        expect(failure((await login(context())).outcome)).toEqual({
          code: 'ceremony_failed',
          reason: 'credential_revoked',
        });
      });
    });
  }
}
