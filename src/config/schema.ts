import { isIP } from 'node:net';
import { z } from 'zod';
import { isTimeZone } from '../i18n/time.ts';
import { APPLICATION_TYPES, redirectUriIssues, redirectUriMessage } from '../oidc/redirect-uris.ts';

/** http issuers are tolerated only on this machine (development, tests). */
function isLoopback(url: string): boolean {
  const host = new URL(url).hostname;
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

const port = z.number().int().min(1).max(65535);
const seconds = z.number().int().positive();
const base64Key = z
  .string()
  .refine((v) => Buffer.from(v, 'base64').length === 32, 'must be 32 bytes encoded in base64');

/** RFC 5424 facilities a SIEM forwarder may use (their codes: src/audit/syslog.ts). */
export const syslogFacilities = [
  'auth',
  'authpriv',
  'logaudit',
  'local0',
  'local1',
  'local2',
  'local3',
  'local4',
  'local5',
  'local6',
  'local7',
] as const;

export const signingAlgs = ['ES256', 'PS256', 'RS256'] as const;
export const clientAuthMethods = [
  'client_secret_basic',
  'client_secret_post',
  'private_key_jwt',
  'tls_client_auth',
  'none',
] as const;

/** A relying party described in camelCase (configuration file and command line). */
export const clientDescriptionSchema = z.strictObject({
  clientId: z.string().regex(/^[A-Za-z0-9._~-]{1,128}$/, 'letters, digits and . _ ~ - only (max 128)'),
  clientName: z.string().max(200).optional(),
  clientSecret: z.string().min(32, 'must be at least 32 characters').optional(),
  /** Exact URIs (src/oidc/redirect-uris.ts: https, http on loopback, private-use scheme if native). */
  redirectUris: z.array(z.string()).min(1),
  postLogoutRedirectUris: z.array(z.string()).default([]),
  /** `native`: an application installed on the workstation or a phone (RFC 8252); default `web`. */
  applicationType: z.enum(APPLICATION_TYPES).default('web'),
  grantTypes: z
    .array(z.enum(['authorization_code', 'refresh_token', 'client_credentials']))
    .default(['authorization_code', 'refresh_token']),
  /** Default: `client_secret_post` for a PSC client (Keycloak's broker default), `client_secret_basic` otherwise. */
  tokenEndpointAuthMethod: z.enum(clientAuthMethods).optional(),
  /**
   * PKCE (S256) required of this client. Only a confidential client may go without: Keycloak's broker
   * (Pro Santé Connect) sends no PKCE by default.
   */
  pkceRequired: z.boolean().default(true),
  scope: z.string().default('openid profile email offline_access'),
  idTokenSignedResponseAlg: z.enum(signingAlgs).default('ES256'),
  backchannelLogoutUri: z.url().optional(),
  jwksUri: z.url().optional(),
  jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())) }).optional(),
  tlsClientAuthSubjectDn: z.string().optional(),
  firstParty: z.boolean().default(false),
  /** An API (resource server) allowed to introspect tokens issued to other clients. */
  resourceServer: z.boolean().default(false),
  /** The assurance level (acr) this client always needs; default: policy.defaultAcr. */
  requiredAcr: z.string().optional(),
  /** Authentication methods offered for this client (ids); default: every configured method. */
  allowedMethods: z.array(z.string().min(1)).optional(),
  /** Maximum age of the authentication, in seconds (OpenID Connect default_max_age). */
  defaultMaxAge: z.number().int().positive().optional(),
  /**
   * Pro Santé Connect calling as a client (FI habilité profile), for the establishment with this FINESS:
   * its tokens carry `tid` and `oid`, the amr allow-list and acr of the `psc` section apply.
   */
  pscEstablishment: z
    .string()
    .regex(/^\d{9}$/, 'a FINESS number (9 digits)')
    .optional(),
});

/** The client authentication method of a description: the given one, or the default of its kind. */
function withDefaultAuthMethod<
  T extends { tokenEndpointAuthMethod?: ClientAuthMethod; pscEstablishment?: string },
>(client: T): T & { tokenEndpointAuthMethod: ClientAuthMethod } {
  const tokenEndpointAuthMethod =
    client.tokenEndpointAuthMethod ??
    (client.pscEstablishment ? 'client_secret_post' : 'client_secret_basic');
  return { ...client, tokenEndpointAuthMethod };
}

/** A public client always proves PKCE (RFC 9700 §2.1.1). */
function checkPkce(
  client: { pkceRequired: boolean; tokenEndpointAuthMethod: ClientAuthMethod },
  ctx: z.RefinementCtx,
) {
  if (!client.pkceRequired && client.tokenEndpointAuthMethod === 'none') {
    ctx.addIssue({
      code: 'custom',
      path: ['pkceRequired'],
      message: 'cannot be false for a public client (tokenEndpointAuthMethod: none)',
    });
  }
}

export type ClientAuthMethod = (typeof clientAuthMethods)[number];

/** Each redirect and post-logout redirect URI is one a client may register, named when it is not. */
function checkRedirectUris(
  client: { applicationType: 'web' | 'native'; redirectUris: string[]; postLogoutRedirectUris: string[] },
  ctx: z.RefinementCtx,
) {
  for (const issue of redirectUriIssues(
    client.applicationType,
    client.redirectUris,
    client.postLogoutRedirectUris,
  )) {
    ctx.addIssue({
      code: 'custom',
      path: [issue.kind === 'redirect' ? 'redirectUris' : 'postLogoutRedirectUris', issue.index],
      message: redirectUriMessage(issue.uri, issue.problem, issue.kind),
      params: { redirectUri: issue.uri, problem: issue.problem, kind: issue.kind },
    });
  }
}

/** A client described on the command line or in the console (a secret is generated when needed). */
export const clientSchema = clientDescriptionSchema
  .transform(withDefaultAuthMethod)
  .superRefine(checkPkce)
  .superRefine(checkRedirectUris);
export type ClientDescription = z.infer<typeof clientSchema>;

/** A client declared in the configuration file: the file is its only source, so it carries its secret. */
export const declaredClientSchema = clientSchema.superRefine((client, ctx) => {
  const usesSecret = ['client_secret_basic', 'client_secret_post'].includes(client.tokenEndpointAuthMethod);
  if (usesSecret && !client.clientSecret) {
    ctx.addIssue({
      code: 'custom',
      path: ['clientSecret'],
      message: `is required with ${client.tokenEndpointAuthMethod}`,
    });
  }
});
export type DeclaredClient = z.infer<typeof declaredClientSchema>;

/** Default user filters by directory flavour; `{username}` is replaced by the escaped identifier. */
export const LDAP_DEFAULT_FILTERS = {
  activeDirectory:
    '(&(objectCategory=person)(objectClass=user)(|(sAMAccountName={username})(userPrincipalName={username})))',
  openldap: '(&(objectClass=inetOrgPerson)(uid={username}))',
} as const;

const LDAP_DEFAULT_ATTRIBUTES = {
  activeDirectory: { username: 'sAMAccountName', stableId: 'objectGUID' },
  openldap: { username: 'uid', stableId: 'entryUUID' },
} as const;

const ldapUrl = z
  .string()
  .regex(/^ldaps?:\/\/[^/?#\s]+\/?$/i, 'must be ldap://host[:port] or ldaps://host[:port]');

/** The LDAP / Active Directory section; absent = method disabled. */
const ldapSchema = z
  .strictObject({
    /** Servers tried in this order (failover): ldaps://dc1.hopital.example, ldaps://dc2… */
    urls: z.array(ldapUrl).min(1),
    /** Upgrade ldap:// connections with StartTLS (required for ldap:// outside loopback). */
    startTls: z.boolean().default(false),
    /** PEM file of the CA(s) that issued the servers' certificates (ldaps:// and StartTLS). */
    caFile: z.string().optional(),
    /** 'activeDirectory' (subcodes, userAccountControl, nested groups) or 'openldap'. */
    flavour: z.enum(['activeDirectory', 'openldap']).default('activeDirectory'),
    /** Service account that searches users (read-only rights are enough). */
    bindDn: z.string().min(1),
    /** Its password: a secret, better set as PASSERELLE_LDAP__BIND_PASSWORD. */
    bindPassword: z.string().min(1),
    /** Where users are searched (subtree). */
    userBaseDn: z.string().min(1),
    /** Search filter with `{username}` (escaped per RFC 4515); default by flavour. */
    userFilter: z.string().includes('{username}', { message: 'must contain {username}' }).optional(),
    /** Where groups are searched (OpenLDAP groupOfNames); AD reads nested groups from the whole base. */
    groupBaseDn: z.string().optional(),
    /** Directory attribute names; defaults by flavour. */
    attributes: z
      .strictObject({
        username: z.string().optional(),
        displayName: z.string().default('displayName'),
        givenName: z.string().default('givenName'),
        familyName: z.string().default('sn'),
        mail: z.string().default('mail'),
        /** Immutable identifier linking the account: objectGUID (AD) or entryUUID (OpenLDAP). */
        stableId: z.string().optional(),
        /** Optional attribute holding the RPPS/ADELI national identifier (idNat). */
        idNat: z.string().optional(),
        /** Membership attribute read from the user entry (OpenLDAP memberOf overlay). */
        groups: z.string().default('memberOf'),
      })
      .prefault({}),
    connectTimeoutMs: z.number().int().min(100).max(60_000).default(3000),
    operationTimeoutMs: z.number().int().min(100).max(120_000).default(5000),
    /** Service-account connections kept open per instance. */
    poolSize: z.number().int().min(1).max(50).default(4),
  })
  .superRefine((ldap, ctx) => {
    for (const [i, url] of ldap.urls.entries()) {
      if (
        url.toLowerCase().startsWith('ldap://') &&
        !ldap.startTls &&
        !isLoopback(url.replace(/^ldap/i, 'http'))
      ) {
        ctx.addIssue({
          code: 'custom',
          path: ['urls', i],
          message:
            'ldap:// sends passwords in clear: use ldaps://, or set ldap.startTls: true (Active Directory refuses simple binds without TLS)',
        });
      }
    }
  })
  .transform((ldap) => ({
    ...ldap,
    userFilter: ldap.userFilter ?? LDAP_DEFAULT_FILTERS[ldap.flavour],
    attributes: {
      ...ldap.attributes,
      username: ldap.attributes.username ?? LDAP_DEFAULT_ATTRIBUTES[ldap.flavour].username,
      stableId: ldap.attributes.stableId ?? LDAP_DEFAULT_ATTRIBUTES[ldap.flavour].stableId,
    },
  }));
export type LdapConfig = z.output<typeof ldapSchema>;

/**
 * Default pattern of the national identifier (idNat_PS) in the CN of a CPx card: `8` + RPPS (11
 * digits), `0` + ADELI (9 digits), or the staff forms `3…` and `<structure>/<personal id>`.
 */
export const DEFAULT_IDNAT_PATTERN =
  '^(?:8\\d{11}|0\\d{9}|3[0-9A-Za-z]{1,40}|[0-9][0-9A-Za-z]{1,40}/[0-9A-Za-z]{1,40})$';

/** An IPv4/IPv6 address or CIDR block (trusted proxies). */
const addressOrCidr = z.string().refine((value) => {
  const [address = '', prefix, extra] = value.split('/');
  const family = isIP(address);
  if (!family || extra !== undefined) return false;
  if (prefix === undefined) return true;
  const bits = Number(prefix);
  return /^\d{1,3}$/.test(prefix) && bits <= (family === 4 ? 32 : 128);
}, 'must be an IP address or a CIDR block (10.0.0.0/8, fd00::/8)');

/** An origin: scheme, host and port, no path. */
const origin = z.url().refine((value) => {
  const url = new URL(value);
  return url.origin === value.replace(/\/$/, '') && (url.protocol === 'https:' || isLoopback(value));
}, 'must be an origin such as https://carte.passerelle.hopital.example (https, no path)');

const validRegExp = z.string().refine((value) => {
  try {
    new RegExp(value, 'u');
    return true;
  } catch {
    return false;
  }
}, 'must be a valid regular expression');

/** CPS smart card login (IGC-Santé authentication certificate over TLS client authentication). */
const smartcardSchema = z.strictObject({
  /** PEM files of the IGC-Santé roots accepted (e.g. AC RACINE IGC-SANTE FORT). */
  trustAnchors: z.array(z.string().min(1)).min(1),
  /** PEM files of the intermediate CAs (AC IGC-SANTE FORT PERSONNES, STANDARD PERSONNES…). */
  intermediates: z.array(z.string().min(1)).default([]),
  /**
   * Issuer CNs accepted for card certificates, matched on the whole CN or its last words: `FORT PERSONNES`
   * (CPS only), add `STANDARD PERSONNES` for CPE cards. Absent = any CA of the chain files.
   */
  acceptedIssuers: z.array(z.string().min(1)).min(1).optional(),
  crl: z
    .strictObject({
      /** Local CRL files (DER or PEM), e.g. refreshed by a cron job on offline servers. */
      files: z.array(z.string().min(1)).default([]),
      /** CRL URLs fetched by Passerelle (http://igc-sante.esante.gouv.fr/CRL/ACI-FO-PP.crl…). */
      urls: z.array(z.url()).default([]),
      /** How often files are re-read and URLs re-fetched. */
      refreshIntervalSeconds: seconds.default(3600),
      fetchTimeoutSeconds: seconds.max(120).default(15),
      /**
       * When the CRL of the card's CA is missing or past its nextUpdate: `refuse` the login (default), or
       * `allow` it without revocation checking (logged and reported by /readyz detail).
       */
      whenUnavailable: z.enum(['refuse', 'allow']).default('refuse'),
    })
    .prefault({}),
  identifier: z
    .strictObject({
      /** Where the national identifier (idNat) is read: the CN of the last RDN of the subject. */
      from: z.enum(['subject-cn']).default('subject-cn'),
      /** Pattern the identifier must match (default: 8+RPPS, 0+ADELI, 3… and id/id staff forms). */
      pattern: validRegExp.default(DEFAULT_IDNAT_PATTERN),
    })
    .prefault({}),
  /** Mode (a): Passerelle terminates TLS itself on a dedicated listener that asks for the card. */
  listener: z
    .strictObject({
      host: z.string().default('0.0.0.0'),
      port,
      /** Server certificate (PEM, with its chain) and key of the card listener's host name. */
      certFile: z.string().min(1),
      keyFile: z.string().min(1),
    })
    .optional(),
  /**
   * Mode (b): addresses of the reverse proxies allowed to forward a card certificate in
   * http.clientCertHeader (TCP peer address, never X-Forwarded-For).
   */
  trustedProxies: z.array(addressOrCidr).default([]),
  /** Origin that serves the card login form (the listener's https URL or the proxy's card host). */
  formOrigin: origin.optional(),
});
/** An AAGUID (key model id) in its usual 8-4-4-4-12 hex form; any version nibble (not an RFC 9562 UUID). */
const aaguid = z
  .string()
  .regex(/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/, 'must be an AAGUID')
  .transform((v) => v.toLowerCase());
/** scheme://host[:port], nothing else (WebAuthn compares origins exactly). */
const webOrigin = z.url().refine((v) => {
  const url = new URL(v);
  return url.origin === v && (url.protocol === 'https:' || isLoopback(v));
}, 'must be an origin (https://host[:port], no path or trailing slash; http:// on loopback only)');

/** PSC's levels as its tokens name them (`acr`), weakest first: the scopes PSC publishes (eidas1, eidas2). */
const PSC_ACR_LEVELS = ['eidas1', 'eidas2'];

const pscLoginSchema = z
  .strictObject({
    /** PSC's issuer (realm URL): the discovery document must name it, and so must its tokens. */
    issuer: z.url(),
    /**
     * PSC's discovery document. Default `<issuer>/.well-known/wallet-openid-configuration`, the one the
     * ANS names (ansforge/keycloak-prosanteconnect, psc.properties); Keycloak's own
     * `<issuer>/.well-known/openid-configuration` is served too.
     */
    discoveryUrl: z.url().optional(),
    /**
     * Overrides the discovery's `authorization_endpoint`. Production authorizes on another host than the
     * realm (`https://wallet.esw.esante.gouv.fr/auth`); whether each discovery document names it is not
     * published.
     */
    authorizationEndpoint: z.url().optional(),
    clientId: z.string().min(1),
    tokenEndpointAuthMethod: z
      .enum(['client_secret_basic', 'client_secret_post', 'none'])
      .default('client_secret_basic'),
    clientSecret: z.string().min(1).optional(),
    scope: z.string().default('openid scope_all'),
    /** Sent as `acr_values` (PSC's levels: eidas1, ...). Empty = not sent. */
    acrValues: z.string().default('eidas1'),
    /**
     * PSC's levels (the ID token's `acr`), weakest first. A login whose `acr` is missing, not listed or
     * listed before `minimumAcr` is refused, as the ANS connector refuses an acr other than eidas1.
     */
    acrLevels: z.array(z.string().min(1)).min(1).default(PSC_ACR_LEVELS),
    minimumAcr: z.string().min(1).default('eidas1'),
    /**
     * Identities of Pro Santé Identité (PSC's `PSISubjectNameID`, Référentiel PSC v2.1, EXI PSC 18/19).
     * Their format is not published: any identifier matching `identifierPattern` is taken as it is.
     */
    psi: z
      .strictObject({
        /** Sign in and link accounts with a PSI identity (false: only RPPS identities, cf. EXI PSC 45). */
        accept: z.boolean().default(true),
        /** Regular expression a PSI identifier must match: by default 1 to 128 visible ASCII characters. */
        identifierPattern: z.string().min(1).default('^[!-~]{1,128}$'),
      })
      .prefault({}),
    /**
     * RFC 8176 amr of a login through PSC, by PSC's `authMode` claim (CARD: CPS card; MOBILE: e-CPS);
     * `default` for any other or a missing authMode.
     */
    amrByAuthMode: z
      .record(z.string(), z.array(z.string().min(1)).min(1))
      .default({ CARD: ['sc', 'pin', 'mfa', 'hwk'], MOBILE: ['swk', 'pin', 'mfa'], default: ['mfa'] }),
    /** authMode values counted as phishing resistant (the card's TLS certificate; not the e-CPS push). */
    phishingResistantAuthModes: z.array(z.string().min(1)).default(['CARD']),
    /** Allow an `http:` issuer (simulators on a test machine only). */
    allowInsecureHttp: z.boolean().default(false),
  })
  .superRefine((value, ctx) => {
    const needsSecret = value.tokenEndpointAuthMethod.startsWith('client_secret');
    if (needsSecret && !value.clientSecret) {
      ctx.addIssue({
        code: 'custom',
        path: ['clientSecret'],
        message: `required with ${value.tokenEndpointAuthMethod}`,
      });
    }
    if (value.issuer.startsWith('http:') && !value.allowInsecureHttp) {
      ctx.addIssue({
        code: 'custom',
        path: ['issuer'],
        message: 'must be https (allowInsecureHttp: true for a simulator)',
      });
    }
    if (!value.amrByAuthMode.default) {
      ctx.addIssue({ code: 'custom', path: ['amrByAuthMode', 'default'], message: 'is required' });
    }
    if (!value.acrLevels.includes(value.minimumAcr)) {
      ctx.addIssue({
        code: 'custom',
        path: ['minimumAcr'],
        message: `must be one of acrLevels (${value.acrLevels.join(', ')})`,
      });
    }
    if (value.discoveryUrl && !new URL(value.discoveryUrl).pathname.includes('/.well-known/')) {
      ctx.addIssue({ code: 'custom', path: ['discoveryUrl'], message: 'must be a /.well-known/ URL' });
    }
    for (const key of ['discoveryUrl', 'authorizationEndpoint'] as const) {
      if (value[key]?.startsWith('http:') && !value.allowInsecureHttp) {
        ctx.addIssue({ code: 'custom', path: [key], message: 'must be https' });
      }
    }
    try {
      new RegExp(value.psi.identifierPattern, 'u');
    } catch {
      ctx.addIssue({
        code: 'custom',
        path: ['psi', 'identifierPattern'],
        message: 'is not a regular expression',
      });
    }
  });

/**
 * The Annuaire Santé FHIR API client (docs/rpps.md). Its limits come from
 * ../shared/reference/annuaire-sante.md: 17 requests/s per application, a 30 s gateway timeout, trouble
 * past about 50 identifiers combined with `_revinclude` (ANS documentation issue #372).
 */
export const annuaireApiSchema = z.strictObject({
  /** FHIR base URL of the Annuaire Santé (v2 production API; there is no sandbox). */
  baseUrl: z.url().default('https://gateway.api.esante.gouv.fr/fhir/v2'),
  /** Key from the ANS API portal, sent as ESANTE-API-KEY; absent = no API calls (sync disabled). */
  apiKey: z.string().min(1).optional(),
  /**
   * Client-side throttle of this instance. The ANS allows 17 requests per second per application (API
   * key); 15 leaves room for the other instances sharing the key, whose calls are occasional (the sync
   * runs on one instance at a time). Lower it when other consumers share the key.
   */
  requestsPerSecond: z.number().positive().max(100).default(15),
  /** Per-request timeout; above the gateway's 30 s, so that its 504 arrives rather than our abort. */
  timeoutMs: z.number().int().min(1000).max(120_000).default(35_000),
  /** Entries per page (`_count`), at most 200 as the ANS recommends. */
  pageSize: z.number().int().min(1).max(200).default(200),
  /**
   * Identifier values per search (comma-OR) with `_revinclude`: an idNatPS from an RPPS is searched as
   * both idNatPS and RPPS (two values). Past about 50 the API fails (504 after 30 s).
   */
  batchSize: z.number().int().min(1).max(200).default(50),
  /** Retries of one request on 429, 502, 503, 504 and timeouts, with exponential backoff and jitter. */
  maxRetries: z.number().int().min(0).max(10).default(4),
  /** First backoff delay; doubled at each retry, with full jitter. */
  retryBaseDelayMs: z.number().int().min(10).max(60_000).default(500),
  /** Consecutive failed requests that open the circuit breaker. */
  breakerFailureThreshold: z.number().int().min(1).max(100).default(5),
  /** How long the open breaker refuses calls before letting one through. */
  breakerResetSeconds: seconds.max(3600).default(60),
});

const rateLimitRule = z.strictObject({ max: z.number().int().positive(), windowSeconds: seconds });

export const configSchema = z
  .strictObject({
    /** Demo mode: public demo secrets, demo account and demo relying party. Never in production. */
    demo: z.boolean().default(false),
    issuer: z.url().optional(),
    http: z
      .strictObject({
        /** Address to listen on. Default 0.0.0.0; in demo mode 127.0.0.1 (public demo secrets). */
        host: z.string().min(1).optional(),
        port: port.default(3000),
        /** Trust X-Forwarded-* from the reverse proxy in front of Passerelle. */
        trustProxy: z.boolean().default(false),
        /** Header in which a trusted reverse proxy forwards the client certificate (PEM, URL-encoded). */
        clientCertHeader: z.string().optional(),
        /** Header in which that proxy reports its verification of the certificate (`SUCCESS`). */
        clientCertVerifyHeader: z.string().default('x-ssl-client-verify'),
        bodyLimitBytes: z.number().int().min(1024).max(10_485_760).default(65_536),
        shutdownGraceSeconds: seconds.default(10),
        /**
         * Let the engine call private and loopback addresses (back-channel logout, client jwks_uri).
         * Clients are registered by administrators only, and hospital applications live on private networks.
         */
        outboundAllowPrivateAddresses: z.boolean().default(true),
      })
      .prefault({}),
    database: z
      .strictObject({
        /** postgres://… to use a PostgreSQL server; absent = embedded PGlite under dataDir. */
        url: z
          .string()
          .startsWith('postgres', 'must be a postgres:// or postgresql:// URL')
          .refine(
            (url) => !url.startsWith('postgres') || URL.canParse(url),
            'is not a valid URL (postgres://user:password@host:port/database)',
          )
          .optional(),
        dataDir: z.string().default('./data/pglite'),
        poolSize: z.number().int().min(1).max(200).default(10),
        /** How long a start waits for an unreachable PostgreSQL server before it gives up (exit code 69). */
        connectTimeoutSeconds: seconds.max(3600).default(30),
      })
      .prefault({}),
    keys: z
      .strictObject({
        /** Key-encryption key (AES-256-GCM) protecting private keys and secrets in the database. */
        encryptionKey: base64Key.optional(),
        /** How often each instance checks the database for rotated keys. */
        reloadIntervalSeconds: seconds.default(10),
      })
      .prefault({}),
    tokens: z
      .strictObject({
        authorizationCodeTtl: seconds.max(600).default(60),
        accessTokenTtl: seconds.default(600),
        idTokenTtl: seconds.default(600),
        refreshTokenTtl: seconds.default(14 * 24 * 3600),
        interactionTtl: seconds.default(900),
        grantTtl: seconds.default(30 * 24 * 3600),
        parTtl: seconds.max(600).default(60),
      })
      .prefault({}),
    purge: z
      .strictObject({
        intervalSeconds: seconds.default(60),
        batchSize: z.number().int().positive().default(500),
      })
      .prefault({}),
    log: z
      .strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info') })
      .prefault({}),
    ui: z
      .strictObject({
        defaultLocale: z.enum(['fr', 'en']).default('fr'),
        /** The establishment's time zone (IANA): every date and time pages and the command line show. */
        timeZone: z
          .string()
          .refine(isTimeZone, 'an IANA time zone, for example Europe/Paris or Indian/Reunion')
          .default('Europe/Paris'),
        /**
         * Whom a person is told to call when only the IT team can help (a blocked security key), as it
         * reads after « Contactez » / "Contact", e.g. « le centre de services au 01 23 45 67 89 ».
         * Default: « votre service informatique » ("your IT service desk").
         */
        supportContact: z.string().trim().min(1).max(200).optional(),
      })
      .prefault({}),
    /** The administration console (docs/console.md). */
    console: z
      .strictObject({
        /**
         * The console needs a phishing-resistant two-factor authentication at most this old; older, the
         * administrator authenticates again (default 15 minutes).
         */
        maxAuthAgeSeconds: seconds.max(12 * 3600).default(900),
      })
      .prefault({}),
    policy: z
      .strictObject({
        /**
         * Assurance levels, weakest first. A level is reached when the methods of one authentication prove
         * `minFactors` distinct factor kinds (knowledge, possession, inherence) and, if `phishingResistant`,
         * include an origin-bound method (FIDO2 key, CPS card). The `acr` names are what tokens carry.
         */
        levels: z
          .array(
            z.strictObject({
              acr: z.string().min(1),
              minFactors: z.number().int().min(1).max(3),
              phishingResistant: z.boolean().default(false),
            }),
          )
          .min(1)
          .default([
            { acr: 'urn:passerelle:loa:low', minFactors: 1, phishingResistant: false },
            { acr: 'urn:passerelle:loa:substantial', minFactors: 2, phishingResistant: false },
            { acr: 'urn:passerelle:loa:high', minFactors: 2, phishingResistant: true },
          ]),
        /** The level required from clients that set none (client `requiredAcr`); default: the first level. */
        defaultAcr: z.string().optional(),
      })
      .prefault({}),
    sessions: z
      .strictObject({
        /** Single sign-on ends after this long without any authorization request. */
        idleSeconds: seconds.default(1800),
        /** …and at the latest this long after the first authentication (NIST AAL2: 12 h). */
        absoluteSeconds: seconds.default(12 * 3600),
        /** Shared ward workstations, recognised by their network: shorter lifetimes, no persistent cookie. */
        sharedWorkstations: z
          .strictObject({
            networks: z.array(z.string()).default([]),
            idleSeconds: seconds.default(600),
            absoluteSeconds: seconds.default(4 * 3600),
          })
          .prefault({}),
      })
      .prefault({}),
    throttle: z
      .strictObject({
        /** Failed credential checks per account allowed without delay. */
        freeFailures: z.number().int().min(0).default(3),
        /** Delay after the next failure, doubling at each further one. */
        baseDelaySeconds: seconds.default(2),
        /** Failures per account that lock it temporarily; must stay below the directory's threshold. */
        lockAfter: z.number().int().min(1).default(5),
        /** How long a lock lasts after the last failure. */
        lockSeconds: seconds.default(900),
        /** An account's failures are forgotten after this long without a failure (AD observation window). */
        windowSeconds: seconds.default(1800),
        /** Active Directory "account lockout threshold" (GPO); 0 when the directory has none. */
        directoryLockoutThreshold: z.number().int().min(0).default(10),
        /** Failed credential checks per source address. */
        perIp: rateLimitRule.default({ max: 50, windowSeconds: 900 }),
      })
      .prefault({}),
    rateLimits: z
      .strictObject({
        /**
         * Failed client authentications (token, introspection, revocation, PAR) per source address; once
         * reached, client authentication from that address fails until the window ends.
         */
        clientAuthPerIp: rateLimitRule.default({ max: 50, windowSeconds: 900 }),
      })
      .prefault({}),
    clients: z.array(declaredClientSchema).default([]),
    /** LDAP / Active Directory login (docs/ldap.md); absent = method disabled. */
    /** RPPS reconciliation: the Annuaire Santé FHIR API, the scheduled sync and the open-data index. */
    rpps: z
      .strictObject({
        api: annuaireApiSchema.prefault({}),
        sync: z
          .strictObject({
            /** Run the sync in-process at this interval (one runner across instances); 0 = only on command. */
            intervalSeconds: z.number().int().min(0).default(86_400),
            /** A verified link is checked again against the API when older than this (ANS: two years). */
            reverifyAfterDays: z.number().int().min(1).max(730).default(730),
            /** A run that would change the status of more than this share of links stops and reports. */
            maxChangeShare: z.number().min(0).max(1).default(0.05),
            /** ... unless it changes at most this many links (small establishments). */
            maxChangeFloor: z.number().int().min(0).default(5),
            /** Lease of the sync lock; renewed while the run progresses. */
            lockSeconds: seconds.max(3600).default(300),
          })
          .prefault({}),
        openData: z
          .strictObject({
            /** The imported open-data index serves offline verification only when younger than this. */
            offlineMaxAgeDays: z.number().int().min(1).max(90).default(7),
          })
          .prefault({}),
      })
      .prefault({}),
    /**
     * Establishments of this installation (one, or several for a GHT). Each has its tenant id (`tid`)
     * agreed with the ANS and the alias PSC uses as `kc_idp_hint`.
     */
    establishments: z
      .array(
        z.strictObject({
          finess: z.string().regex(/^\d{9}$/, 'a FINESS number (9 digits)'),
          name: z.string().min(1),
          /** Constant tenant identifier sent to PSC in `tid` (agreed with the ANS). */
          tid: z.string().min(1).max(200),
          /** The alias PSC knows this establishment by (`kc_idp_hint`). */
          pscAlias: z
            .string()
            .regex(/^[A-Za-z0-9._-]{1,100}$/)
            .optional(),
          /**
           * Who belongs to the establishment (only its members are federated to PSC under its `tid`):
           * `all` accounts, or those `listed` (`passerelle users establishments`) or in `directoryGroups`.
           * Default: `all` when the installation has one establishment, `listed` otherwise.
           */
          members: z.enum(['all', 'listed']).optional(),
          /** Directory group DNs whose members belong to the establishment (as of their last login). */
          directoryGroups: z.array(z.string().min(1)).default([]),
        }),
      )
      .default([]),
    /** The traceability trail (docs/audit.md). */
    audit: z
      .strictObject({
        /**
         * When the audit record of a sign-in cannot be written, the sign-in is refused (fail closed).
         * `true` lets a local sign-in (the establishment's own applications) proceed, its record going to
         * the operator's log only. Sign-ins for or through Pro Santé Connect are always refused.
         */
        failOpenForLocalSso: z.boolean().default(false),
        /** A signed checkpoint of the hash chain this often (one instance writes it). */
        checkpointIntervalSeconds: seconds.default(300),
        /** Forwarding to a SIEM as RFC 5424 syslog over TCP (RFC 6587 octet counting) or TLS; absent = off. */
        syslog: z
          .strictObject({
            host: z.string().min(1),
            port: port.default(6514),
            tls: z.boolean().default(false),
            /** CA certificates (PEM) trusted for the collector's certificate; default: the system's. */
            caFile: z.string().optional(),
            /** Name checked in the collector's certificate; default: host. */
            serverName: z.string().optional(),
            facility: z.enum(syslogFacilities).default('auth'),
            /** Records sent per write; the cursor advances after each acknowledged batch. */
            batchSize: z.number().int().min(1).max(10_000).default(100),
            /** First delay before reconnecting to a collector that is down; doubles up to 20 times it. */
            retrySeconds: seconds.max(3600).default(5),
          })
          .optional(),
        retention: z
          .strictObject({
            /** Records older than this may be purged once exported and verified; absent = keep forever. */
            days: z.number().int().positive().optional(),
          })
          .prefault({}),
      })
      .prefault({}),
    /** Passerelle as FI habilité for Pro Santé Connect (docs/psc.md). The ANS rules are configuration. */
    psc: z
      .strictObject({
        /** amr values PSC accepts; the others are removed from PSC's tokens (ANS "Ressources techniques pour FI tiers"). */
        amrAllowList: z.array(z.string().min(1)).min(1).default(['sc', 'pin', 'hwk', 'mfa', 'swk']),
        /** The acr sent to PSC for each Passerelle level reached (PSC chokes on unexpected values). */
        acrValues: z.record(z.string(), z.string().min(1)).default({ 'urn:passerelle:loa:high': 'eidas1' }),
        /** A PSC login needs an authentication at most this old (ANS maximum: 4 hours). */
        maxAuthAgeSeconds: seconds.max(4 * 3600).default(4 * 3600),
        /** Also send the verified idNatPS (`idnat_ps`); off by default: PSC pairs by itself. */
        releaseIdNat: z.boolean().default(false),
      })
      .prefault({}),
    /**
     * "Se connecter avec Pro Santé Connect": Passerelle as a client of PSC (e-CPS or CPS through PSC).
     * Absent = method disabled. Redirect URI to register at PSC: `<issuer>/federation/psc/callback`;
     * back-channel logout URI: `<issuer>/federation/psc/backchannel-logout` (docs/psc.md).
     */
    pscLogin: pscLoginSchema.optional(),
    ldap: ldapSchema.optional(),
    smartcard: smartcardSchema.optional(),
    /** FIDO2 security keys (WebAuthn). Absent = method disabled (demo mode supplies localhost defaults). */
    webauthn: z
      .strictObject({
        /** Relying party ID: the registrable domain the keys are bound to (e.g. passerelle.hopital.example). */
        rpId: z.string().min(1),
        /** Name shown by the browser and some keys when enrolling. */
        rpName: z.string().min(1).default('Passerelle'),
        /** Exact origins (scheme://host[:port]) the ceremonies may come from. */
        origins: z.array(webOrigin).min(1),
        /** Attestation asked for at enrollment: `direct` (needed to check the key model) or `none`. */
        attestation: z.enum(['none', 'direct']).default('direct'),
        policy: z
          .strictObject({
            /** Key models (AAGUIDs) accepted at enrollment; absent = any model. */
            aaguidAllowList: z.array(aaguid).min(1).optional(),
            /** FIDO Metadata Service (MDS3) blob file, downloaded and refreshed offline; its signature is verified. */
            metadataBlobFile: z.string().optional(),
            /** Refuse keys that do not prove their model (attestation `none` or self attestation). */
            requireTrustedAttestation: z.boolean().default(false),
          })
          .prefault({}),
        /** Allow enrolling a first key right after a password login, without an enrollment code. */
        selfEnrollmentAfterPassword: z.boolean().default(false),
        /** Validity of a one-time enrollment code printed by `passerelle enroll`. */
        enrollmentCodeTtlSeconds: seconds.max(7 * 24 * 3600).default(3600),
        /** Validity of a WebAuthn challenge. */
        challengeTtlSeconds: seconds.max(3600).default(300),
        /** Time given to the browser for the ceremony (milliseconds). */
        timeoutMs: z.number().int().min(10_000).max(600_000).default(120_000),
      })
      .refine((w) => !(w.attestation === 'none' && w.policy.requireTrustedAttestation), {
        path: ['policy', 'requireTrustedAttestation'],
        message: 'needs attestation: direct (with none, keys never prove their model)',
      })
      .optional(),
  })
  .superRefine((cfg, ctx) => {
    const card = cfg.smartcard;
    if (card) {
      if (!card.crl.files.length && !card.crl.urls.length && card.crl.whenUnavailable === 'refuse') {
        ctx.addIssue({
          code: 'custom',
          path: ['smartcard', 'crl'],
          message: 'needs files or urls (or whenUnavailable: allow): without a CRL every card is refused',
        });
      }
      if (!card.listener && !card.trustedProxies.length) {
        ctx.addIssue({
          code: 'custom',
          path: ['smartcard'],
          message:
            'needs a listener (mode a) or trustedProxies (mode b): no certificate could reach Passerelle',
        });
      }
      if (card.trustedProxies.length && !cfg.http.clientCertHeader) {
        ctx.addIssue({
          code: 'custom',
          path: ['http', 'clientCertHeader'],
          message: 'is required with smartcard.trustedProxies (the header the proxy forwards the card in)',
        });
      }
    }
    const acrs = cfg.policy.levels.map((l) => l.acr);
    if (new Set(acrs).size !== acrs.length) {
      ctx.addIssue({ code: 'custom', path: ['policy', 'levels'], message: 'acr names must be unique' });
    }
    if (cfg.policy.defaultAcr !== undefined && !acrs.includes(cfg.policy.defaultAcr)) {
      ctx.addIssue({
        code: 'custom',
        path: ['policy', 'defaultAcr'],
        message: `must be one of the levels: ${acrs.join(', ')}`,
      });
    }
    for (const [index, client] of cfg.clients.entries()) {
      if (client.requiredAcr !== undefined && !acrs.includes(client.requiredAcr)) {
        ctx.addIssue({
          code: 'custom',
          path: ['clients', index, 'requiredAcr'],
          message: `must be one of the levels: ${acrs.join(', ')}`,
        });
      }
    }
    if (
      cfg.establishments.length &&
      !cfg.policy.levels.some((l) => l.phishingResistant && l.minFactors >= 2)
    ) {
      ctx.addIssue({
        code: 'custom',
        path: ['policy', 'levels'],
        message:
          'needs a two-factor, phishing-resistant level for Pro Santé Connect (establishments are configured)',
      });
    }
    const finessList = cfg.establishments.map((e) => e.finess);
    for (const [key, values] of [
      ['finess', finessList],
      ['tid', cfg.establishments.map((e) => e.tid)],
      ['pscAlias', cfg.establishments.flatMap((e) => (e.pscAlias ? [e.pscAlias] : []))],
    ] as const) {
      if (new Set(values).size !== values.length) {
        ctx.addIssue({ code: 'custom', path: ['establishments'], message: `each ${key} must be unique` });
      }
    }
    for (const [index, client] of cfg.clients.entries()) {
      if (client.pscEstablishment !== undefined && !finessList.includes(client.pscEstablishment)) {
        ctx.addIssue({
          code: 'custom',
          path: ['clients', index, 'pscEstablishment'],
          message: 'must be the FINESS of one of the establishments',
        });
      }
    }
    for (const acr of Object.keys(cfg.psc.acrValues)) {
      if (!acrs.includes(acr)) {
        ctx.addIssue({
          code: 'custom',
          path: ['psc', 'acrValues', acr],
          message: `is not a level: ${acrs.join(', ')}`,
        });
      }
    }
    const t = cfg.throttle;
    // Worst case inside the directory's observation window: the failures before the lock, then one
    // attempt each time the lock ends.
    const worstCase = t.lockAfter + Math.ceil(t.windowSeconds / t.lockSeconds);
    if (t.directoryLockoutThreshold > 0 && worstCase >= t.directoryLockoutThreshold) {
      ctx.addIssue({
        code: 'custom',
        path: ['throttle', 'lockAfter'],
        message: `allows ${worstCase} failures within windowSeconds, not below directoryLockoutThreshold (${t.directoryLockoutThreshold}): lower lockAfter or raise lockSeconds`,
      });
    }
    if (t.lockAfter + Math.ceil(3600 / t.lockSeconds) > 100) {
      ctx.addIssue({
        code: 'custom',
        path: ['throttle', 'lockSeconds'],
        message: 'allows more than 100 failed attempts per hour per account',
      });
    }
    if (cfg.demo) return;
    if (!cfg.issuer) {
      ctx.addIssue({ code: 'custom', path: ['issuer'], message: 'is required outside demo mode' });
    } else if (!cfg.issuer.startsWith('https://') && !isLoopback(cfg.issuer)) {
      ctx.addIssue({
        code: 'custom',
        path: ['issuer'],
        message: 'must be an https:// URL (plain http is accepted on loopback addresses only)',
      });
    }
    if (!cfg.keys.encryptionKey) {
      ctx.addIssue({
        code: 'custom',
        path: ['keys', 'encryptionKey'],
        message: 'is required outside demo mode (generate one with: openssl rand -base64 32)',
      });
    }
  });

export type RawConfig = z.infer<typeof configSchema>;

export type Config = Readonly<
  Omit<RawConfig, 'issuer' | 'keys' | 'http'> & {
    issuer: string;
    keys: RawConfig['keys'] & { encryptionKey: string };
    http: RawConfig['http'] & { host: string };
  }
>;
