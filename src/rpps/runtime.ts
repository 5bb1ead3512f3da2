import { DirectoryAccounts } from '../accounts/directory-accounts.ts';
import { AdminAlerts } from '../admin/alerts.ts';
import type { Services } from '../app.ts';
import type { ReadinessCheck } from '../http/health.ts';
import { AnnuaireClient } from './annuaire-client.ts';
import { OpenDataIndex } from './open-data-index.ts';
import { RppsSync } from './sync.ts';

export interface RppsRuntime {
  /** Absent without an API key (rpps.api.apiKey). */
  client: AnnuaireClient | undefined;
  index: OpenDataIndex;
  alerts: AdminAlerts;
  sync: RppsSync;
}

/** The RPPS pieces, shared by the server (scheduled sync, readiness) and the CLI. */
export function createRpps(services: Services): RppsRuntime {
  const { config, database, logger, identities, accounts, audit } = services;
  const { apiKey } = config.rpps.api;
  const client = apiKey ? new AnnuaireClient({ api: { ...config.rpps.api, apiKey }, logger }) : undefined;
  const index = new OpenDataIndex(database.db);
  const alerts = new AdminAlerts(database.db, logger);
  const sync = new RppsSync({
    db: database.db,
    identities,
    accounts,
    directory: new DirectoryAccounts(database.db, accounts),
    client,
    index,
    audit,
    alerts,
    logger,
    config: config.rpps,
    instanceId: audit.instanceId,
  });
  return { client, index, alerts, sync };
}

/** How long one answer of the CapabilityStatement is reused: probes must not eat the API quota. */
const CAPABILITY_CACHE_MS = 60_000;

/**
 * The Annuaire Santé API, reported by /readyz but never making the instance unready: logins do not
 * depend on it, and the sync falls back to the open-data index.
 */
export function annuaireCheck(client: AnnuaireClient): ReadinessCheck {
  let cached: { at: number; ok: boolean; detail?: string } | undefined;
  return {
    name: 'annuaire',
    optional: true,
    async run() {
      if (!cached || Date.now() - cached.at > CAPABILITY_CACHE_MS) {
        try {
          const { fhirVersion } = await client.capabilities();
          cached = { at: Date.now(), ok: true, detail: `FHIR ${fhirVersion}` };
        } catch (err) {
          cached = { at: Date.now(), ok: false, detail: (err as Error).name };
        }
      }
      return { ok: cached.ok, detail: cached.detail };
    },
  };
}
