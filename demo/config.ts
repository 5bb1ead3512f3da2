import { join } from 'node:path';
import { PSC_LOGGED_OUT_PATH } from '../src/federation/psc-login-routes.ts';
import { PSC_BACKCHANNEL_LOGOUT_PATH, PSC_CALLBACK_PATH } from '../src/methods/psc/index.ts';
import type { Professional } from '../test/simulators/annuaire/fixtures.ts';
import type { FiOptions } from '../test/simulators/psc/federation.ts';
import {
  type PscSimulatorOptions,
  pscBackchannelLogoutUri,
  pscBrokerLogoutResponseUri,
  REALM_PATH,
} from '../test/simulators/psc/server.ts';
import { DEMO_HOST } from './listen.ts';

/**
 * What `npm run demo` runs and how its parts know each other: ports, URLs, the establishment, the client
 * registrations on both sides. Every secret here is public (demo only).
 */

export const DEFAULT_BASE_PORT = 3000;

/** Offsets from --base-port: Passerelle N, walkthrough N+100, DPI N+101, DRIMBOX N+102, PSC N+200. */
export const PORT_OFFSETS = { passerelle: 0, walkthrough: 100, dpi: 101, drimbox: 102, psc: 200 } as const;
export type DemoPorts = Record<keyof typeof PORT_OFFSETS, number>;

/** Where each part answers; the Annuaire Santé simulator's URL is known once it listens (a free port). */
export interface DemoUrls {
  passerelle: string;
  walkthrough: string;
  dpi: string;
  drimbox: string;
  pscIssuer: string;
}

export function demoPorts(base: number): DemoPorts {
  const entries = Object.entries(PORT_OFFSETS).map(([name, offset]) => [name, base + offset]);
  return Object.fromEntries(entries) as DemoPorts;
}

export function demoUrls(ports: DemoPorts): DemoUrls {
  const at = (port: number) => `http://${DEMO_HOST}:${port}`;
  return {
    passerelle: at(ports.passerelle),
    walkthrough: at(ports.walkthrough),
    dpi: at(ports.dpi),
    drimbox: at(ports.drimbox),
    pscIssuer: `${at(ports.psc)}${REALM_PATH}`,
  };
}

export const DEMO_ESTABLISHMENT = {
  finess: '990000013',
  name: 'CHU de démonstration',
  tid: 'tid-chu-demo',
  pscAlias: 'chu-demo',
} as const;

/** Client registrations (public demo values). */
export const DEMO_CLIENTS = {
  /** PSC at Passerelle (FI habilité profile). */
  pscAtPasserelle: { clientId: 'pro-sante-connect', secret: 'demo-psc-at-passerelle-not-a-secret-0001' },
  /** The DPI stand-in at Passerelle. */
  dpi: { clientId: 'dpi', secret: 'demo-dpi-at-passerelle-not-a-secret-0002' },
  /** The DRIMBOX stand-in at PSC. */
  drimbox: { clientId: 'drimbox', secret: 'demo-drimbox-at-psc-not-a-secret-0003' },
  /** Passerelle at PSC (the login through Pro Santé Connect). */
  passerelleAtPsc: { clientId: 'passerelle', secret: 'demo-passerelle-at-psc-not-a-secret-0004' },
} as const;

/** Passerelle's configuration for the demo, as overrides for loadConfig (demo mode, PGlite under dataDir). */
export function passerelleOverrides(
  ports: DemoPorts,
  options: { dataDir: string; logLevel: string; pscBrokerRedirectUri: string },
): Record<string, unknown> {
  const urls = demoUrls(ports);
  return {
    demo: true,
    issuer: urls.passerelle,
    http: { port: ports.passerelle },
    database: { dataDir: join(options.dataDir, 'pglite') },
    log: { level: options.logLevel },
    establishments: [DEMO_ESTABLISHMENT],
    clients: [
      {
        clientId: DEMO_CLIENTS.pscAtPasserelle.clientId,
        clientName: 'Pro Santé Connect (simulateur)',
        clientSecret: DEMO_CLIENTS.pscAtPasserelle.secret,
        redirectUris: [options.pscBrokerRedirectUri],
        // PSC's RP-initiated logout comes back to its broker; Passerelle's logout reaches PSC by back-channel.
        postLogoutRedirectUris: [pscBrokerLogoutResponseUri(urls.pscIssuer, DEMO_ESTABLISHMENT.pscAlias)],
        backchannelLogoutUri: pscBackchannelLogoutUri(urls.pscIssuer),
        pscEstablishment: DEMO_ESTABLISHMENT.finess,
        // PSC's broker with Keycloak's defaults (client_secret_post, the PSC client's default, and no PKCE).
        pkceRequired: false,
        firstParty: true,
        scope: 'openid',
      },
      {
        clientId: DEMO_CLIENTS.dpi.clientId,
        clientName: 'Dossier patient informatisé (démonstration)',
        clientSecret: DEMO_CLIENTS.dpi.secret,
        redirectUris: [`${urls.dpi}/callback`],
        postLogoutRedirectUris: [`${urls.dpi}/`],
        firstParty: true,
        scope: 'openid profile email rpps',
      },
    ],
    pscLogin: {
      issuer: urls.pscIssuer,
      clientId: DEMO_CLIENTS.passerelleAtPsc.clientId,
      clientSecret: DEMO_CLIENTS.passerelleAtPsc.secret,
      allowInsecureHttp: true,
    },
  };
}

/** The PSC simulator's options: two services, DRIMBOX and Passerelle (its login through PSC). */
export function pscOptions(ports: DemoPorts, professionals: Professional[]): PscSimulatorOptions {
  const urls = demoUrls(ports);
  return {
    port: ports.psc,
    host: DEMO_HOST,
    professionals,
    clients: [
      {
        clientId: DEMO_CLIENTS.drimbox.clientId,
        clientSecret: DEMO_CLIENTS.drimbox.secret,
        redirectUris: [`${urls.drimbox}/callback`],
        postLogoutRedirectUris: [`${urls.drimbox}/`],
      },
      {
        clientId: DEMO_CLIENTS.passerelleAtPsc.clientId,
        clientSecret: DEMO_CLIENTS.passerelleAtPsc.secret,
        redirectUris: [`${urls.passerelle}${PSC_CALLBACK_PATH}`],
        postLogoutRedirectUris: [`${urls.passerelle}${PSC_LOGGED_OUT_PATH}`],
        backchannelLogoutUri: `${urls.passerelle}${PSC_BACKCHANNEL_LOGOUT_PATH}`,
      },
    ],
  };
}

/** Passerelle as the establishment's FI at PSC, accepting the amr values Passerelle sends to PSC. */
export function pscFi(ports: DemoPorts, amrAllowList: string[]): FiOptions {
  return {
    alias: DEMO_ESTABLISHMENT.pscAlias,
    name: DEMO_ESTABLISHMENT.name,
    discoveryUrl: demoUrls(ports).passerelle,
    clientId: DEMO_CLIENTS.pscAtPasserelle.clientId,
    clientSecret: DEMO_CLIENTS.pscAtPasserelle.secret,
    tidAllowList: [DEMO_ESTABLISHMENT.tid],
    amrAllowList,
  };
}
