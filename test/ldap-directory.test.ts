import { createServer, type Server, type Socket } from 'node:net';
import { Client } from 'ldapts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LdapConfig } from '../src/config/schema.ts';
import { DirectoryUnavailableError } from '../src/methods/ldap/client.ts';
import { LdapDirectory } from '../src/methods/ldap/directory.ts';
import { ldapReadinessCheck } from '../src/methods/ldap/health.ts';
import { REFUSED_PORT } from './helpers/net.ts';
import {
  GENERATED_PASSWORD,
  GROUPS_DN,
  openldapConfig,
  PEOPLE_DN,
  ROOT_DN,
  SERVICE_DN,
  SIZE_LIMIT,
  type Slapd,
  slapdAvailable,
  startSlapd,
} from './helpers/slapd.ts';

/** A TCP server that accepts connections and never answers (a hung directory). */
async function silentServer(): Promise<{ url: string; accepted: () => number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server: Server = createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `ldap://127.0.0.1:${port}`,
    accepted: () => accepted,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const ALICE = {
  uid: 'alice',
  password: 'Alice-pw-1',
  givenName: 'Alice',
  sn: 'Martin',
  idNat: '810001234567',
};
const STAR = { uid: 'star*user', password: 'Star-pw-1', givenName: 'Star', sn: 'User' };
const PAREN = { uid: 'paren)(x', password: 'Paren-pw-1', givenName: 'Paren', sn: 'User' };

const available = slapdAvailable();

describe.skipIf(!available)('LDAP directory against OpenLDAP slapd', () => {
  let slapd: Slapd;
  const opened: LdapDirectory[] = [];
  function directory(over: Partial<LdapConfig> = {}, ca: Buffer | undefined = slapd.pki.caPem) {
    const d = new LdapDirectory(openldapConfig(slapd, over), ca);
    opened.push(d);
    return d;
  }

  beforeAll(async () => {
    slapd = await startSlapd({
      generatedUsers: 3000,
      users: [ALICE, STAR, PAREN],
      groups: { staff: ['alice', 'user0001'], pharmacy: ['alice'] },
    });
  });
  afterAll(async () => {
    for (const d of opened) await d.close();
    await slapd?.close();
  });

  it('finds the user with the service account, then binds as the user (LDAPS, test CA)', async () => {
    const d = directory();
    const check = await d.checkPassword('alice', ALICE.password);
    expect(check.ok).toBe(true);
    if (!check.ok) return;
    expect(check.user).toMatchObject({
      dn: `uid=alice,${PEOPLE_DN}`,
      username: 'alice',
      displayName: 'Alice Martin',
      givenName: 'Alice',
      familyName: 'Martin',
      idNat: ALICE.idNat,
      groups: [`cn=pharmacy,${GROUPS_DN}`, `cn=staff,${GROUPS_DN}`],
      disabled: false,
    });
    expect(check.user.stableId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(d.stats).toEqual({ searches: 2, binds: 1 });
  });

  it('wrong password and unknown user: same code, own reasons, same directory work', async () => {
    const d = directory();
    expect(await d.checkPassword('alice', 'wrong')).toEqual({
      ok: false,
      code: 'invalid_credentials',
      reason: 'wrong_password',
    });
    const afterWrong = { ...d.stats };
    expect(await d.checkPassword('nobody', 'wrong')).toEqual({
      ok: false,
      code: 'invalid_credentials',
      reason: 'unknown_user',
    });
    expect(afterWrong).toEqual({ searches: 1, binds: 1 });
    expect(d.stats).toEqual({ searches: 2, binds: 2 });
  });

  it('refuses the empty password before any directory operation', async () => {
    const d = directory();
    expect(await d.checkPassword('alice', '')).toEqual({
      ok: false,
      code: 'invalid_credentials',
      reason: 'empty_password',
    });
    expect(d.stats).toEqual({ searches: 0, binds: 0 });
    // What the refusal protects against: the server accepts an unauthenticated bind with any DN.
    const raw = new Client({ url: slapd.ldapsUrl, tlsOptions: { ca: slapd.pki.caPem } });
    await expect(raw.bind(`uid=alice,${PEOPLE_DN}`, '')).resolves.toBeUndefined();
    await raw.unbind();
  });

  it('escapes the identifier: wildcards and filter injection match nothing, odd names match exactly', async () => {
    const d = directory();
    for (const attempt of ['*', 'user000*', 'alice)(uid=*', '*)(|(uid=*', 'alice\0', 'al\\69ce']) {
      expect(await d.findUser(attempt), attempt).toBeUndefined();
      expect((await d.checkPassword(attempt, GENERATED_PASSWORD)).ok, attempt).toBe(false);
    }
    expect((await d.checkPassword(STAR.uid, STAR.password)).ok).toBe(true);
    expect((await d.checkPassword(PAREN.uid, PAREN.password)).ok).toBe(true);
    const star = await d.findUser('star*user');
    expect(star === 'ambiguous' ? star : star?.dn).toBe(`uid=star*user,${PEOPLE_DN}`);
    // An over-broad filter template matching several entries is refused, not resolved to the first one.
    const broad = directory({ userFilter: '(|(uid={username})(uid=user000*))' });
    expect(await broad.findUser('alice')).toBe('ambiguous');
    expect(await broad.checkPassword('alice', ALICE.password)).toEqual({
      ok: false,
      code: 'invalid_credentials',
      reason: 'ambiguous_user',
    });
  });

  it('lists every user with paged results beyond the server size limit', async () => {
    const d = directory();
    const raw = new Client({ url: slapd.ldapsUrl, tlsOptions: { ca: slapd.pki.caPem } });
    await raw.bind(SERVICE_DN, slapd.servicePassword);
    await expect(raw.search(PEOPLE_DN, { filter: '(uid=*)', attributes: ['uid'] })).rejects.toThrow(
      /Code: 0x4$/,
    );
    await raw.unbind();
    const users = await d.listUsers();
    expect(users.length).toBe(3000 + 3);
    expect(users.length).toBeGreaterThan(SIZE_LIMIT);
    expect(new Set(users.map((u) => u.stableId)).size).toBe(users.length);
  });

  it('StartTLS with the CA file', async () => {
    const d = directory({ urls: [slapd.url], startTls: true });
    expect((await d.checkPassword('alice', ALICE.password)).ok).toBe(true);
    expect(await d.readiness()).toMatchObject({ ok: true, url: slapd.url });
  });

  it('refuses a server certificate from another CA (LDAPS and StartTLS): directory unavailable', async () => {
    for (const over of [{}, { urls: [slapd.url], startTls: true }]) {
      const d = directory(over, slapd.otherCa.caPem);
      await expect(d.checkPassword('alice', ALICE.password)).rejects.toThrow(DirectoryUnavailableError);
      const ready = await d.readiness();
      expect(ready.ok).toBe(false);
      expect(ready.detail).toBe('directory unreachable');
      expect(ready.error).toMatch(/certificate/i);
    }
  });

  it('fails over in order: a refused first URL, then a hung one, are skipped', async () => {
    // Port 0: nothing can listen there, the connection is refused.
    const refused = directory({ urls: [`ldaps://127.0.0.1:${REFUSED_PORT}`, slapd.ldapsUrl] });
    expect((await refused.checkPassword('alice', ALICE.password)).ok).toBe(true);

    const silent = await silentServer();
    try {
      const hung = directory({
        urls: [silent.url, slapd.ldapsUrl],
        // The hung server costs one wait for its answer; slapd, next, answers well within it on a loaded
        // machine.
        connectTimeoutMs: 3000,
        operationTimeoutMs: 3000,
      });
      expect((await hung.checkPassword('alice', ALICE.password)).ok).toBe(true);
      const firstAttempts = silent.accepted();
      expect(firstAttempts).toBe(1);
      // The hung server is now tried after the others: later logins do not wait for it again.
      expect((await hung.checkPassword('alice', ALICE.password)).ok).toBe(true);
      expect((await hung.checkPassword('alice', 'wrong')).ok).toBe(false);
      expect(silent.accepted()).toBe(firstAttempts);
    } finally {
      await silent.close();
    }
  });

  it('times out on a hung directory (no other server): unavailable, never a hang', async () => {
    const silent = await silentServer();
    try {
      const d = directory({ urls: [silent.url], connectTimeoutMs: 200, operationTimeoutMs: 300 });
      await expect(d.checkPassword('alice', ALICE.password)).rejects.toThrow(DirectoryUnavailableError);
      const ready = await ldapReadinessCheck(d).run();
      expect(ready).toEqual({ ok: false, detail: 'directory unreachable' });
      const ldaps = directory({
        urls: [silent.url.replace('ldap:', 'ldaps:')],
        connectTimeoutMs: 200,
        operationTimeoutMs: 300,
      });
      await expect(ldaps.checkPassword('alice', ALICE.password)).rejects.toThrow(/Connection timeout/);
    } finally {
      await silent.close();
    }
  });

  it('readiness: rootDSE read and service bind; a wrong service password is reported', async () => {
    expect(await ldapReadinessCheck(directory()).run()).toEqual({ ok: true });
    const wrong = directory({ bindPassword: 'not-the-password' });
    expect(await ldapReadinessCheck(wrong).run()).toEqual({
      ok: false,
      detail: 'service account bind refused',
    });
    // A refused service account is an outage for logins, not the user's wrong password.
    await expect(wrong.checkPassword('alice', ALICE.password)).rejects.toThrow(DirectoryUnavailableError);
  });

  it('directory outage: unavailable while slapd is stopped, recovers when it is back', async () => {
    const d = directory();
    expect((await d.checkPassword('alice', ALICE.password)).ok).toBe(true);
    await slapd.stop();
    try {
      await expect(d.checkPassword('alice', ALICE.password)).rejects.toThrow(DirectoryUnavailableError);
      expect((await d.readiness()).ok).toBe(false);
    } finally {
      await slapd.start();
    }
    // The pooled connection died with the server: the same directory object reconnects.
    expect((await d.checkPassword('alice', ALICE.password)).ok).toBe(true);
    expect((await d.readiness()).ok).toBe(true);
  });

  it('a rename and a move keep the stable id', async () => {
    const d = directory();
    const before = await d.findUser('user0002');
    const root = new Client({ url: slapd.ldapsUrl, tlsOptions: { ca: slapd.pki.caPem } });
    await root.bind(ROOT_DN, slapd.rootPassword);
    await root.modifyDN(`uid=user0002,${PEOPLE_DN}`, `uid=user0002-renamed,${PEOPLE_DN}`);
    await root.unbind();
    const after = await d.findUser('user0002-renamed');
    expect(typeof before === 'object' && typeof after === 'object').toBe(true);
    if (typeof before !== 'object' || typeof after !== 'object') return;
    expect(after.stableId).toBe(before.stableId);
    expect(after.dn).toBe(`uid=user0002-renamed,${PEOPLE_DN}`);
  });
});
