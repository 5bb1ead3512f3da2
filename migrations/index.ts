import type { Migration } from 'kysely/migration';
import * as m0001 from './0001_initial.ts';
import * as m0002 from './0002_sessions_audit.ts';
import * as m0003 from './0003_directory.ts';
import * as m0004 from './0004_webauthn.ts';
import * as m0005 from './0005_smartcard.ts';
import * as m0006 from './0006_rpps.ts';
import * as m0007 from './0007_psc.ts';
import * as m0008 from './0008_audit_chain.ts';
import * as m0009 from './0009_audit_keys.ts';
import * as m0010 from './0010_console.ts';
import * as m0011 from './0011_psi.ts';

/** Every migration, in order. Names are stable: they are recorded in the database. */
export const migrations: Record<string, Migration> = {
  '0001_initial': m0001,
  '0002_sessions_audit': m0002,
  '0003_directory': m0003,
  '0004_webauthn': m0004,
  '0005_smartcard': m0005,
  '0006_rpps': m0006,
  '0007_psc': m0007,
  '0008_audit_chain': m0008,
  '0009_audit_keys': m0009,
  '0010_console': m0010,
  '0011_psi': m0011,
};
