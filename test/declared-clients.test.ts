import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { declaredClientSchema } from '../src/config/schema.ts';
import { basicAuthorization, rawPost, registerWebClient } from './helpers/clients.ts';
import { databasesUnderTest } from './helpers/databases.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';

const SECRET_A = 'a'.repeat(40);
const SECRET_B = 'b'.repeat(40);
/** A back-end service as an operator would declare it in the configuration file. */
const declaredService = (clientId: string, clientSecret: string) => ({
  clientId,
  clientSecret,
  redirectUris: [`https://${clientId}.hopital.test/cb`],
  grantTypes: ['client_credentials'],
});

for (const kind of databasesUnderTest()) {
  describe(`clients declared in the configuration file [${kind}]`, () => {
    let t: TestServer;

    beforeAll(async () => {
      t = await startTestServer(kind, {
        config: {
          clients: [declaredService('batch-a', SECRET_A), declaredService('batch-b', SECRET_B)],
        },
      });
    });
    afterAll(async () => {
      await t?.close();
    });

    const ccToken = (clientId: string, secret: string) =>
      rawPost(
        t,
        '/token',
        { grant_type: 'client_credentials' },
        { authorization: basicAuthorization(clientId, secret) },
      );

    it('are registered at start with their secrets, and the file stays their only source', async () => {
      const { clients, validateClient } = t.passerelle.services;
      expect((await clients.list()).filter((c) => c.source === 'config').map((c) => c.clientId)).toEqual([
        'batch-a',
        'batch-b',
      ]);
      const cliSecret = await registerWebClient(t, 'from-cli', { grant_types: ['client_credentials'] });
      const issued = await ccToken('batch-b', SECRET_B);
      expect(issued.status).toBe(200);
      const token = String(issued.json?.access_token);
      const api = await registerWebClient(t, 'api', {
        grant_types: ['client_credentials'],
        resource_server: true,
      });
      const active = async () =>
        (
          await rawPost(
            t,
            '/token/introspection',
            { token },
            { authorization: basicAuthorization('api', api) },
          )
        ).json?.active;
      expect(await active()).toBe(true);

      // batch-b leaves the file: at the next sync it is removed and its tokens stop working.
      await clients.syncDeclared(
        [declaredClientSchema.parse(declaredService('batch-a', SECRET_A))],
        validateClient,
      );
      expect(
        (await clients.list())
          .filter((c) => c.source !== 'internal')
          .map((c) => c.clientId)
          .sort(),
      ).toEqual(['api', 'batch-a', 'from-cli']);
      expect(await active()).toBe(false);
      expect((await ccToken('batch-b', SECRET_B)).status).toBe(401);
      expect((await ccToken('batch-a', SECRET_A)).status).toBe(200);
      expect((await ccToken('from-cli', cliSecret)).status).toBe(200);
    });

    it('each change the file makes is in the audit trail once, never the secret', async () => {
      const { clients, validateClient, database } = t.passerelle.services;
      const started = await database.db
        .selectFrom('audit_event')
        .select(['type', 'client_id', 'detail'])
        .where('type', 'like', 'admin.client.%')
        .where('client_id', 'in', ['batch-a', 'batch-b'])
        .orderBy('seq')
        .execute();
      // Recorded by the server's sync at start (a direct syncDeclared call only returns its changes).
      expect(started).toEqual([
        { type: 'admin.client.added', client_id: 'batch-a', detail: { via: 'config' } },
        { type: 'admin.client.added', client_id: 'batch-b', detail: { via: 'config' } },
      ]);
      const sync = (...declared: ReturnType<typeof declaredService>[]) =>
        clients.syncDeclared(
          declared.map((c) => declaredClientSchema.parse(c)),
          validateClient,
        );
      const a = declaredService('batch-a', SECRET_A);
      expect(await sync(a)).toEqual([]);
      expect(await sync({ ...a, clientSecret: SECRET_B })).toEqual([
        { clientId: 'batch-a', change: 'updated', secretChanged: true },
      ]);
      expect(
        await sync({ ...a, clientSecret: SECRET_B, redirectUris: ['https://batch-a.hopital.test/cb2'] }),
      ).toEqual([{ clientId: 'batch-a', change: 'updated', secretChanged: false }]);
      expect(await sync(declaredService('batch-c', SECRET_A))).toEqual([
        { clientId: 'batch-c', change: 'added' },
        { clientId: 'batch-a', change: 'removed' },
      ]);
      const all = JSON.stringify(await database.db.selectFrom('audit_event').selectAll().execute());
      for (const secret of [SECRET_A, SECRET_B]) expect(all).not.toContain(secret);
    });
  });
}
