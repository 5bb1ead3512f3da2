import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import Koa from 'koa';
import type { Logger } from 'pino';
import { CardCertificates } from './accounts/card-certificates.ts';
import { DirectoryAccounts } from './accounts/directory-accounts.ts';
import { EstablishmentMembers } from './accounts/establishments.ts';
import { NationalIdentities } from './accounts/national-identity.ts';
import { AccountRoles } from './accounts/roles.ts';
import { AccountStore } from './accounts/store.ts';
import { accountRoutes } from './admin/accounts.ts';
import { auditRoutes } from './admin/audit.ts';
import { clientRoutes } from './admin/clients.ts';
import { consoleGate, consoleRoutes } from './admin/console.ts';
import { establishmentRoutes } from './admin/establishments.ts';
import { consoleHealthRoutes } from './admin/health.ts';
import { rppsRoutes } from './admin/rpps.ts';
import { AuditCheckpoints, AuditSigningKey, scheduleCheckpoints } from './audit/checkpoints.ts';
import { SyslogForwarder } from './audit/syslog.ts';
import { AuditTrail } from './audit/trail.ts';
import type { Config } from './config/schema.ts';
import { Sealer } from './crypto/sealer.ts';
import { type ConnectOptions, connectDatabase, type DatabaseHandle } from './db/connect.ts';
import { migrateToLatest } from './db/migrate.ts';
import { demoRoutes } from './demo/relying-party.ts';
import { DEMO_CLIENT_ID, seedDemo } from './demo/seed.ts';
import { pscLoginRoutes, pscLogoutChain } from './federation/psc-login-routes.ts';
import { pscInitiatedLogout, pscServerSideLogout } from './federation/psc-logout.ts';
import { addressMatcher, presentedCertificate } from './http/client-certificate.ts';
import {
  auditWriteCheck,
  databaseCheck,
  HEALTH_PATHS,
  healthRoutes,
  migrationsCheck,
  type ReadinessCheck,
} from './http/health.ts';
import { hostCheck } from './http/host-check.ts';
import { inputCheck } from './http/input-check.ts';
import { bodyLimit, errorBoundary, requestContext, securityHeaders } from './http/middleware.ts';
import { staticAssets, Views } from './http/views.ts';
import { negotiateLocale, translator } from './i18n/messages.ts';
import { CsrfTokens } from './interaction/form.ts';
import { interactionRoutes } from './interaction/routes.ts';
import { InteractionStates } from './interaction/state.ts';
import { LdapDirectory } from './methods/ldap/directory.ts';
import { ldapReadinessCheck } from './methods/ldap/health.ts';
import { ldapMethod } from './methods/ldap/index.ts';
import { passwordMethod } from './methods/password/index.ts';
import { PSC_BACKCHANNEL_LOGOUT_PATH, pscDiscoveryCheck, pscLoginMethod } from './methods/psc/index.ts';
import { smartcardMethod } from './methods/smartcard/index.ts';
import { createSmartcard, type SmartcardRuntime } from './methods/smartcard/setup.ts';
import { type AuthMethod, registered } from './methods/types.ts';
import { Ceremonies } from './methods/webauthn/ceremonies.ts';
import { webauthnMethod } from './methods/webauthn/index.ts';
import { AttestationPolicy } from './methods/webauthn/policy.ts';
import { securityKeyRoutes } from './methods/webauthn/routes.ts';
import { webauthnSettings } from './methods/webauthn/settings.ts';
import { ChallengeStore, CredentialStore, EnrollmentCodes } from './methods/webauthn/store.ts';
import { clientAuthLimitKey, createAdapterClass, purgeExpired } from './oidc/adapter.ts';
import { type ClientMetadata, ClientRegistry, type MetadataValidator } from './oidc/clients.ts';
import { ProviderHost } from './oidc/host.ts';
import { ensureCookieKeys, ensureSigningKeys, keySetFingerprint, loadKeySet } from './oidc/keys.ts';
import { postAsGet } from './oidc/post-as-get.ts';
import {
  buildProvider,
  ENGINE_JSON_PATHS,
  ENGINE_PAGE_PATHS,
  ENGINE_USERINFO_PATH,
} from './oidc/provider.ts';
import { redirectUriIssues, redirectUriMessage } from './oidc/redirect-uris.ts';
import { portalRoutes } from './portal/routes.ts';
import { PORTAL_SECURITY_PATH, portalSecurityRoutes } from './portal/security.ts';
import { internalClients, signInFlow } from './portal/sign-in.ts';
import { RateLimiter } from './ratelimit/limiter.ts';
import { CredentialThrottle } from './ratelimit/throttle.ts';
import { annuaireCheck, createRpps, type RppsRuntime } from './rpps/runtime.ts';
import { scheduleRppsSync } from './rpps/scheduler.ts';
import { AuthSessions } from './sessions/auth-sessions.ts';

export interface Services {
  config: Config;
  logger: Logger;
  database: DatabaseHandle;
  sealer: Sealer;
  accounts: AccountStore;
  clients: ClientRegistry;
  host: ProviderHost;
  limiter: RateLimiter;
  sessions: AuthSessions;
  audit: AuditTrail;
  /** National identity links (RPPS) and their review queue. */
  identities: NationalIdentities;
  /** Which establishments (FINESS) each account belongs to. */
  establishments: EstablishmentMembers;
  roles: AccountRoles;
  throttle: CredentialThrottle;
  views: Views;
  /** Cookie-signing keys shared by all instances (also the CSRF and demo cookie keys). */
  cookieKeys: string[];
  validateClient: MetadataValidator;
}

/** Connects, migrates, prepares keys and the engine. Shared by `serve` and the CLI commands. */
export async function openServices(
  config: Config,
  logger: Logger,
  options: ConnectOptions = {},
): Promise<Services> {
  const database = await connectDatabase(config, {
    onWait: (message) => logger.warn(message),
    ...options,
  });
  try {
    for (const line of await migrateToLatest(database.db)) logger.info(line);
    const sealer = new Sealer(config.keys.encryptionKey);
    const audit = new AuditTrail(database.db, logger, {
      failOpenForLocalSso: config.audit.failOpenForLocalSso,
    });
    const created = await ensureSigningKeys(database.db, sealer, audit);
    if (created.length) logger.info({ kids: created }, 'signing keys created');
    const cookieKeys = await ensureCookieKeys(database.db, sealer);
    const accounts = new AccountStore(database.db);
    const clients = new ClientRegistry(database.db, sealer);
    const limiter = new RateLimiter(database.db);
    const sessions = new AuthSessions(database.db, config.sessions);
    const identities = new NationalIdentities(database.db, audit);
    const establishments = new EstablishmentMembers(database.db, audit, config);
    const roles = new AccountRoles(database.db, audit);
    const throttle = new CredentialThrottle(database.db, limiter, config.throttle);
    const views = new Views();
    const host = await ProviderHost.create({
      build: (keySet) =>
        buildProvider({
          config,
          keySet,
          cookieKeys,
          adapter: createAdapterClass(database.db, clients, config.rateLimits.clientAuthPerIp),
          accounts,
          identities,
          establishments,
          views,
          logger,
          sessions,
          audit,
          onClientAuthFailure: async (ip) => {
            await limiter.hit(clientAuthLimitKey(ip), config.rateLimits.clientAuthPerIp);
          },
        }),
      loadKeySet: () => loadKeySet(database.db, sealer),
      fingerprint: () => keySetFingerprint(database.db),
      reloadIntervalMs: config.keys.reloadIntervalSeconds * 1000,
      logger,
    });
    const validateClient: MetadataValidator = async (metadata: ClientMetadata) => {
      // The same rules as the configuration, the command line and the console, for every registration.
      const [uriIssue] = redirectUriIssues(
        metadata.application_type === 'native' ? 'native' : 'web',
        (metadata.redirect_uris as string[] | undefined) ?? [],
        (metadata.post_logout_redirect_uris as string[] | undefined) ?? [],
      );
      if (uriIssue) {
        throw new Error(
          `client ${metadata.client_id}: ${redirectUriMessage(uriIssue.uri, uriIssue.problem, uriIssue.kind)}`,
        );
      }
      try {
        await host.provider.Client.validate(metadata);
      } catch (err) {
        const e = err as { error_description?: string; message: string };
        throw new Error(`client ${metadata.client_id}: ${e.error_description ?? e.message}`);
      }
    };
    return {
      config,
      logger,
      database,
      sealer,
      accounts,
      clients,
      host,
      limiter,
      sessions,
      audit,
      identities,
      establishments,
      roles,
      throttle,
      views,
      cookieKeys,
      validateClient,
    };
  } catch (err) {
    await database.close();
    throw err;
  }
}

/** Configuration keys whose values are secrets (in any section: clients, LDAP, Annuaire Santé, PSC, keys). */
const SECRET_CONFIG_KEYS: ReadonlySet<string> = new Set([
  'clientSecret',
  'apiKey',
  'bindPassword',
  'encryptionKey',
]);

/** The configuration without its secrets: secret keys masked, URL passwords (database.url) removed. */
export function redactedConfig(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactedConfig);
  if (value && typeof value === 'object') {
    const entries = Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return Object.fromEntries(
      entries.map(([key, v]) => [
        key,
        SECRET_CONFIG_KEYS.has(key) && v !== undefined ? '(secret)' : redactedConfig(v),
      ]),
    );
  }
  if (typeof value === 'string' && URL.canParse(value)) {
    const url = new URL(value);
    if (url.password) {
      url.password = '';
      return url.href;
    }
  }
  return value;
}

/** SHA-256 of the configuration with every secret removed: which configuration an instance ran with. */
export function configDigest(config: Config): string {
  return createHash('sha256')
    .update(JSON.stringify(redactedConfig(config)))
    .digest('hex');
}

export interface Passerelle {
  services: Services;
  app: Koa;
  /** Card verification (trust material, CRLs), when the smartcard section is configured. */
  smartcard: SmartcardRuntime | undefined;
  /** RPPS reconciliation: Annuaire Santé client, sync, open-data index, alerts. */
  rpps: RppsRuntime;
  /** The readiness checks of /readyz (database, directory, Annuaire API, CRLs…), also on the console's health page. */
  readiness: readonly ReadinessCheck[];
  /** Starts background work (key reload, purge, CRL refresh, scheduled RPPS sync). */
  start(): void;
  /** Stops background work, waits for the servers to drain, closes the database. */
  stop(...servers: (Server | HttpsServer)[]): Promise<void>;
}

export async function createPasserelle(
  config: Config,
  logger: Logger,
  options: ConnectOptions = {},
): Promise<Passerelle> {
  // The server owns an embedded database and serves the command line through its relay.
  const services = await openServices(config, logger, { ...options, owner: true });
  const { database, accounts, clients, host, views, cookieKeys, sessions, audit, throttle } = services;
  const db = database.db;

  await audit.record({
    type: 'config.loaded',
    outcome: 'success',
    detail: { sha256: configDigest(config), instanceId: audit.instanceId, demo: config.demo },
  });
  for (const { clientId, change, secretChanged } of await clients.syncDeclared(
    config.clients,
    services.validateClient,
  ))
    await audit.record({
      type: `admin.client.${change}`,
      outcome: 'success',
      clientId,
      detail: { via: 'config', ...(secretChanged ? { secretChanged } : {}) },
    });
  // The portal and the console: registered at each start, following the issuer and the levels.
  for (const metadata of internalClients(config))
    await clients.save(metadata, 'internal', services.validateClient);
  if (config.demo) {
    await seedDemo(config.issuer, accounts, clients, services.validateClient);
  } else {
    if (await clients.remove(DEMO_CLIENT_ID)) logger.warn('demo client removed (demo mode is off)');
    const disabled = await accounts.disableDemoAccounts();
    if (disabled) logger.warn({ count: disabled }, 'demo accounts disabled (demo mode is off)');
  }

  const methods: AuthMethod[] = [registered(passwordMethod(accounts))];
  const readiness: ReadinessCheck[] = [databaseCheck(db), migrationsCheck(db), auditWriteCheck(audit)];
  let directory: LdapDirectory | undefined;
  let directoryAccounts: DirectoryAccounts | undefined;
  if (config.ldap) {
    const ldap = config.ldap;
    let ca: Buffer | undefined;
    if (ldap.caFile) {
      try {
        ca = readFileSync(ldap.caFile);
      } catch (err) {
        throw new Error(
          `ldap.caFile ${ldap.caFile}: cannot be read (${(err as NodeJS.ErrnoException).code})`,
        );
      }
    }
    directory = new LdapDirectory(ldap, ca);
    directoryAccounts = new DirectoryAccounts(db, accounts);
    // First: staff use the directory password; the local password is for break-glass accounts.
    methods.unshift(registered(ldapMethod({ directory, accounts: directoryAccounts, audit, logger })));
    readiness.push(ldapReadinessCheck(directory, logger));
    logger.info(
      {
        urls: ldap.urls,
        flavour: ldap.flavour,
        tls: ldap.urls.map((u) =>
          u.startsWith('ldaps') ? 'ldaps' : ldap.startTls ? 'starttls' : 'none (loopback)',
        ),
        caFile: ldap.caFile ?? 'system trust store',
        userBaseDn: ldap.userBaseDn,
        bindDn: ldap.bindDn,
      },
      'LDAP login enabled',
    );
  }
  const rpps = createRpps(services);
  if (rpps.client) readiness.push(annuaireCheck(rpps.client));
  const smartcard = config.smartcard ? await createSmartcard(config.smartcard, logger) : undefined;
  if (smartcard && config.smartcard) {
    methods.push(
      registered(
        smartcardMethod({
          verifier: smartcard.verifier,
          accounts,
          certificates: new CardCertificates(db),
          identities: services.identities,
          logger,
          formOrigin: config.smartcard.formOrigin,
          // A card is mapped to the account whose directory entry carries its idNat (ldap.attributes.idNat).
          findByDirectoryIdNat: directoryAccounts
            ? async (idNat) => (await directoryAccounts?.findByDirectoryIdNat(idNat))?.id
            : undefined,
        }),
      ),
    );
    readiness.push(smartcard.readiness);
  }
  // "Se connecter avec Pro Santé Connect": Passerelle as a client of PSC.
  const pscLogin = config.pscLogin
    ? pscLoginMethod({
        settings: config.pscLogin,
        issuer: config.issuer,
        db,
        identities: services.identities,
        logger,
      })
    : undefined;
  if (pscLogin && config.pscLogin) {
    readiness.push(pscDiscoveryCheck(config.pscLogin));
    logger.info(
      { issuer: config.pscLogin?.issuer, clientId: config.pscLogin?.clientId },
      'login through Pro Santé Connect enabled',
    );
  }
  const csrf = new CsrfTokens(cookieKeys[0] ?? '', config.issuer);
  const purgers: (() => Promise<number>)[] = [];

  // FIDO2 security keys: the login method and the users' key management pages.
  const webauthn = webauthnSettings(config);
  let keyRoutes: ReturnType<typeof securityKeyRoutes> | undefined;
  let credentials: CredentialStore | undefined;
  if (webauthn) {
    const policy = new AttestationPolicy(webauthn.policy);
    await policy.load();
    credentials = new CredentialStore(db);
    const challenges = new ChallengeStore(db, webauthn.challengeTtlSeconds);
    const codes = new EnrollmentCodes(db);
    const ceremonies = new Ceremonies({
      settings: webauthn,
      credentials,
      challenges,
      policy,
      fakeIdKey: `webauthn:${cookieKeys[0] ?? ''}`,
    });
    methods.push(registered(webauthnMethod({ ceremonies, credentials, accounts, audit })));
    keyRoutes = securityKeyRoutes({
      config,
      db,
      host,
      views,
      csrf,
      accounts,
      credentials,
      codes,
      ceremonies,
      audit,
      sessions,
      logger,
      roles: services.roles,
      securityUrl: PORTAL_SECURITY_PATH,
    });
    purgers.push(
      () => challenges.purgeExpired(),
      () => codes.purgeExpired(),
    );
    const metadata = policy.metadata;
    if (metadata) {
      logger.info({ serial: metadata.serial, entries: metadata.entries }, 'FIDO metadata blob loaded');
      readiness.push({
        name: 'webauthnMetadata',
        // A stale blob keeps working (the models it lists do not change much): reported, not fatal.
        run: async () => ({
          ok: true,
          detail: `blob ${metadata.serial}, next update ${metadata.nextUpdate.toISOString().slice(0, 10)}${
            metadata.nextUpdate < new Date() ? ' (stale: refresh the file)' : ''
          }`,
        }),
      });
    }
  }

  // Offered last: a federated login, after the establishment's own means.
  if (pscLogin) {
    methods.push(registered(pscLogin));
    purgers.push(() => pscLogin.purgeExpired());
  }

  // Mode (a): the card listener's own TLS handshake; mode (b): the header of a trusted proxy address.
  const certificateOptions = {
    header: config.http.clientCertHeader,
    verifyHeader: config.http.clientCertVerifyHeader,
    trustedPeer: addressMatcher(config.smartcard?.trustedProxies ?? []),
  };
  let shuttingDown = false;

  // Behind the reverse proxy, the client address is the last X-Forwarded-For entry (the one the proxy
  // appended): earlier entries come from the client and can be forged.
  const app = new Koa({ proxy: config.http.trustProxy, maxIpsCount: 1, keys: cookieKeys });
  app.silent = true;
  app.use(requestContext(logger, config.http.trustProxy));
  app.use(securityHeaders(config));
  app.use(
    errorBoundary(logger, (ctx) => {
      const locale = negotiateLocale(undefined, ctx.get('accept-language'), config.ui.defaultLocale);
      return views.render(
        'error',
        { locale, demo: config.demo, requestId: ctx.state.requestId },
        { message: translator(locale)('error.service_unavailable') },
      );
    }),
  );
  app.use(bodyLimit(config.http.bodyLimitBytes));
  app.use(hostCheck(config, logger, HEALTH_PATHS));
  app.use(
    inputCheck({
      logger,
      limitBytes: config.http.bodyLimitBytes,
      jsonPaths: [...ENGINE_JSON_PATHS, PSC_BACKCHANNEL_LOGOUT_PATH],
      bearerPaths: [ENGINE_USERINFO_PATH],
      realm: config.issuer,
      page: (ctx) => {
        const locale = negotiateLocale(undefined, ctx.get('accept-language'), config.ui.defaultLocale);
        return views.render(
          'error',
          { locale, demo: config.demo, requestId: ctx.state.requestId },
          {
            message: translator(locale)('error.invalid_characters'),
            // The protocol's error code on the engine's browser endpoints (authorization, logout).
            code: ENGINE_PAGE_PATHS.some((p) => ctx.path.startsWith(p)) ? 'invalid_request' : undefined,
          },
        );
      },
    }),
  );
  app.use(staticAssets());
  const health = healthRoutes(readiness, () => shuttingDown);
  app.use(health.routes());
  const interactions = interactionRoutes({
    config,
    host,
    views,
    csrf,
    states: new InteractionStates(db, config.tokens.interactionTtl),
    sessions,
    accounts,
    methods,
    attempts: { accounts, audit, throttle, logger },
    clientCertificate: (ctx) =>
      config.smartcard ? presentedCertificate(ctx, certificateOptions) : undefined,
    logger,
  });
  app.use(interactions.routes());
  if (pscLogin) {
    const key = `psc-logout:${cookieKeys[0] ?? ''}`;
    app.use(pscLoginRoutes({ config, db, host, views, audit, logger, method: pscLogin, key }).routes());
    app.use(pscLogoutChain({ config, logger, method: pscLogin, key }));
  }
  if (keyRoutes) app.use(keyRoutes.routes());
  const flow = signInFlow({ config, host, sessions, accounts, key: `portal-return:${cookieKeys[0] ?? ''}` });
  const directoryGroups = new DirectoryAccounts(db, accounts);
  const securityUrl = PORTAL_SECURITY_PATH;
  app.use(
    portalRoutes({
      config,
      views,
      flow,
      clients,
      establishments: services.establishments,
      roles: services.roles,
      groupsOf: (accountId) => directoryGroups.groupsOf(accountId),
      securityUrl,
    }).routes(),
  );
  const { identities, roles } = services;
  app.use(
    portalSecurityRoutes({
      config,
      views,
      flow,
      clients,
      roles,
      db,
      host,
      csrf,
      audit,
      logger,
      sessions,
      identities,
      credentials,
    }).routes(),
  );
  const consoleDeps = { config, views, flow, roles: services.roles, audit, securityUrl };
  const gate = consoleGate(consoleDeps);
  app.use(consoleRoutes(consoleDeps, gate).routes());
  // The console's sections: accounts and applications; RPPS, establishments, audit and health.
  const peopleDeps = { ...services, ...consoleDeps, db, csrf };
  app.use(accountRoutes(peopleDeps, gate).routes());
  app.use(clientRoutes(peopleDeps, gate).routes());
  const records = { ...consoleDeps, gate, csrf, services, rpps, readiness, smartcard };
  for (const section of [rppsRoutes, establishmentRoutes, auditRoutes, consoleHealthRoutes])
    app.use(section(records).routes());
  if (config.demo) app.use(demoRoutes(config, views, clients).routes());
  else {
    app.use(async (ctx, next) => {
      if (ctx.path !== '/' || ctx.method !== 'GET') return next();
      ctx.type = 'html';
      ctx.body = views.render('home', { locale: config.ui.defaultLocale, demo: false }, {});
    });
  }
  app.use(pscInitiatedLogout());
  app.use(pscServerSideLogout({ config, host, sessions, audit, logger }));
  app.use(postAsGet());
  app.use(host.handle);

  let purgeTimer: NodeJS.Timeout | undefined;
  let stopRppsSchedule: (() => void) | undefined;
  const purge = async () => {
    try {
      let { deleted } = await purgeExpired(db, config.purge.batchSize);
      for (const purger of purgers) deleted += await purger();
      if (deleted) logger.debug({ deleted }, 'expired rows purged');
    } catch (err) {
      logger.warn({ err }, 'purge of expired rows failed (database unavailable?)');
    }
  };

  // The audit trail forwarded to the SIEM (one instance at a time; the database is the buffer), and
  // signed checkpoints of its hash chain.
  const syslog = config.audit.syslog ? new SyslogForwarder(db, config.audit.syslog, logger) : undefined;
  // Created and published at the first start; loaded again at each checkpoint (another instance may rotate it).
  await AuditSigningKey.load(db, services.sealer);
  const checkpoints = new AuditCheckpoints(db, () => AuditSigningKey.load(db, services.sealer));
  let stopCheckpoints: (() => void) | undefined;

  return {
    services,
    app,
    smartcard,
    rpps,
    readiness,
    start() {
      syslog?.start();
      stopCheckpoints = scheduleCheckpoints(db, checkpoints, config.audit, audit.instanceId, logger);
      host.start();
      smartcard?.start();
      purgeTimer = setInterval(purge, config.purge.intervalSeconds * 1000);
      purgeTimer.unref();
      if (rpps.client && config.rpps.sync.intervalSeconds > 0) {
        stopRppsSchedule = scheduleRppsSync(rpps.sync, config.rpps.sync.intervalSeconds, logger);
      }
    },
    async stop(...servers) {
      shuttingDown = true;
      host.stop();
      smartcard?.stop();
      clearInterval(purgeTimer);
      stopRppsSchedule?.();
      const drain = (server: Server | HttpsServer) =>
        new Promise<void>((resolve) => {
          const force = setTimeout(() => {
            server.closeAllConnections();
            resolve();
          }, config.http.shutdownGraceSeconds * 1000);
          force.unref();
          server.close(() => {
            clearTimeout(force);
            resolve();
          });
          server.closeIdleConnections();
        });
      await Promise.all(servers.map(drain));
      stopCheckpoints?.();
      await syslog?.stop();
      await directory?.close();
      await database.close();
    },
  };
}
