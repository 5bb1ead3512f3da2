import type { Kysely } from 'kysely';
import pino from 'pino';
import { type AuditEvent, AuditTrail } from '../../src/audit/trail.ts';
import { connectDatabase, type DatabaseHandle } from '../../src/db/connect.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import type { Database } from '../../src/db/types.ts';
import { createTestDatabase, type DatabaseKind, type TestDatabase } from './databases.ts';

/** A migrated database of the matrix, with an audit trail to seed it. */
export async function auditDatabase(kind: DatabaseKind) {
  const database: TestDatabase = await createTestDatabase(kind);
  const handle: DatabaseHandle = await connectDatabase({
    database: { url: database.url, dataDir: database.dataDir, poolSize: 4 },
  });
  await migrateToLatest(handle.db);
  const trail = new AuditTrail(handle.db, pino({ level: 'silent' }));
  return {
    database,
    db: handle.db,
    trail,
    async close() {
      await handle.close();
      await database.drop();
    },
  };
}

/** Appends events and returns their sequence numbers. */
export async function appendEvents(
  db: Kysely<Database>,
  trail: AuditTrail,
  events: readonly AuditEvent[],
): Promise<string[]> {
  for (const event of events) await trail.record(event);
  const rows = await db
    .selectFrom('audit_event')
    .select('seq')
    .orderBy('seq', 'desc')
    .limit(events.length)
    .execute();
  return rows.map((r) => String(r.seq)).reverse();
}

/** Events with the awkward values an export must carry intact (quotes, commas, line breaks, accents). */
export function sampleEvents(count: number): AuditEvent[] {
  return Array.from({ length: count }, (_, i) =>
    i % 3 === 0
      ? {
          type: 'auth.attempt',
          outcome: 'success',
          accountId: '0b5c9a1e-6a55-4a8e-9d6f-1f2a3b4c5d6e',
          clientId: `dossier-patient-${i}`,
          interactionId: `interaction-${i}`,
          ip: '10.1.2.3',
          userAgent: 'Mozilla/5.0 (X11; Linux x86_64) "quoted", comma',
          method: 'webauthn',
          amr: ['hwk', 'pin', 'mfa'],
          acr: 'urn:passerelle:loa:high',
          requestId: `req-${i}`,
          detail: { credentialId: `cred-${i}`, note: 'ligne 1\r\nligne 2 — é' },
        }
      : i % 3 === 1
        ? {
            type: 'auth.attempt',
            outcome: 'failure',
            method: 'password',
            reason: 'bad_password',
            ip: '10.1.2.4',
            userAgent: '',
          }
        : {
            type: 'psc.federation',
            outcome: 'success',
            clientId: 'psc',
            nationalId: '810002345678',
            tid: 'tid-hopital',
            establishment: '750000001',
            amr: ['sc', 'pin'],
          },
  );
}
