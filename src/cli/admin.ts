import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import type { Command } from 'commander';
import { AccountAdminActs, AdminActError, type AdminActor } from '../accounts/admin-acts.ts';
import {
  CardCertificates,
  CertificateTakenError,
  certificateFingerprint,
} from '../accounts/card-certificates.ts';
import { MIN_PASSWORD_LENGTH, passwordProblem } from '../accounts/passwords.ts';
import { CONSOLE_ROLES, isConsoleRole } from '../accounts/roles.ts';
import { type Account, AccountExistsError } from '../accounts/store.ts';
import { openServices, type Services } from '../app.ts';
import { type AuditEvent, AuditTrail } from '../audit/trail.ts';
import { clientSchema } from '../config/schema.ts';
import { connectDatabase } from '../db/connect.ts';
import { migrateDown, migrateToLatest, migrationStatus } from '../db/migrate.ts';
import { webauthnSettings } from '../methods/webauthn/settings.ts';
import { CredentialStore } from '../methods/webauthn/store.ts';
import { type ClientMetadata, toClientMetadata } from '../oidc/clients.ts';
import { listSigningKeys, retiredKeyLifetime, rotateSigningKeys } from '../oidc/keys.ts';
import {
  CliError,
  cliTime,
  discoveryUrl,
  type GlobalOptions,
  loadCliConfig,
  out,
  promptPassword,
  readStdinLine,
} from './context.ts';

export async function withServices<T>(command: Command, run: (services: Services) => Promise<T>): Promise<T> {
  const { loaded, logger } = loadCliConfig(command.optsWithGlobals<GlobalOptions>(), 'warn');
  const services = await openServices(loaded.config, logger);
  try {
    return await run(services);
  } finally {
    await services.database.close();
  }
}

/** Records an administrative act done from the command line, with the operator who ran it. */
async function recordAdmin(
  services: Services,
  event: Omit<AuditEvent, 'outcome'> & { detail?: Record<string, unknown> },
): Promise<void> {
  await services.audit.record({
    ...event,
    outcome: 'success',
    detail: { via: 'cli', actor: operator(undefined), ...event.detail },
  });
}

async function readNewPassword(fromStdin: boolean): Promise<string> {
  const password = fromStdin ? await readStdinLine() : await promptPassword('New password');
  const problem = passwordProblem(password);
  if (problem === 'too_short') throw new CliError(`password: at least ${MIN_PASSWORD_LENGTH} characters`);
  if (problem === 'too_long') throw new CliError('password: too long');
  return password;
}

export function registerMigrate(program: Command): void {
  program
    .command('migrate')
    .description('apply pending database migrations (also done at start)')
    .argument('[direction]', 'latest | down | status', 'latest')
    .action(async (direction: string, _opts, command: Command) => {
      const { loaded } = loadCliConfig(command.optsWithGlobals<GlobalOptions>(), 'warn');
      const database = await connectDatabase(loaded.config);
      try {
        if (direction === 'latest') for (const line of await migrateToLatest(database.db)) out(line);
        else if (direction === 'down') for (const line of await migrateDown(database.db)) out(line);
        else if (direction === 'status') {
          for (const m of await migrationStatus(database.db)) {
            out(`${m.name}\t${m.executedAt ? `applied ${cliTime(loaded.config)(m.executedAt)}` : 'pending'}`);
          }
        } else throw new CliError(`unknown direction ${direction}: latest, down or status`);
      } finally {
        await database.close();
      }
    });
}

export function registerKeys(program: Command): void {
  const keys = program.command('keys').description('signing keys');
  keys
    .command('list')
    .description('list signing keys and their state')
    .action(async (_opts, command: Command) => {
      await withServices(command, async ({ database, config }) => {
        const time = cliTime(config);
        for (const k of await listSigningKeys(database.db)) {
          const state = k.retiredAt
            ? `retired ${time(k.retiredAt)}, published until ${time(k.removableAt)}`
            : 'active';
          out(`${k.kid}\t${k.family}\t${time(k.createdAt)}\t${state}`);
        }
      });
    });
  keys
    .command('rotate')
    .description(
      'add new signing keys; previous keys stay published until the tokens they signed expire and their sessions end',
    )
    .action(async (_opts, command: Command) => {
      await withServices(command, async (services) => {
        const { database, sealer, config } = services;
        const kids = await rotateSigningKeys(database.db, sealer, retiredKeyLifetime(config));
        await recordAdmin(services, { type: 'admin.keys.rotated', detail: { kids } });
        for (const kid of kids) out(`new key ${kid}`);
        out(`running instances pick the new keys up within ${config.keys.reloadIntervalSeconds} s`);
      });
    });
}

function list(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** The options of `clients add` that carry URIs: their problems name the option (and the URI). */
const URI_FLAGS: Record<string, string> = {
  redirectUris: '--redirect-uri',
  postLogoutRedirectUris: '--post-logout-redirect-uri',
};

export function registerClients(program: Command): void {
  const clients = program.command('clients').description('relying parties (applications)');
  clients
    .command('add')
    .description('register a client; a generated secret is printed once')
    .argument('<client-id>')
    .requiredOption('--redirect-uri <uri>', 'exact redirect URI (repeatable)', list)
    .option('--name <name>', 'display name')
    .option(
      '--auth-method <method>',
      'client_secret_basic (default) | client_secret_post (default with --psc-establishment) | private_key_jwt | tls_client_auth | none',
    )
    .option('--post-logout-redirect-uri <uri>', 'post-logout redirect URI (repeatable)', list)
    .option(
      '--grant-type <type>',
      'authorization_code | refresh_token | client_credentials (repeatable)',
      list,
    )
    .option('--scope <scope>', 'allowed scopes', 'openid profile email offline_access')
    .option('--signing-alg <alg>', 'ID token signing algorithm: ES256 | PS256 | RS256', 'ES256')
    .option('--backchannel-logout-uri <uri>', 'back-channel logout URI')
    .option('--jwks-uri <uri>', 'client keys for private_key_jwt')
    .option('--jwks-file <file>', 'client public JWK Set file for private_key_jwt')
    .option('--tls-subject-dn <dn>', 'expected certificate subject DN for tls_client_auth')
    .option('--first-party', 'application of the establishment: no consent screen', false)
    .option('--resource-server', 'an API allowed to introspect tokens issued to other clients', false)
    .option(
      '--no-pkce',
      "do not require PKCE of this confidential client (Pro Santé Connect's Keycloak broker sends none by default)",
    )
    .option('--psc-establishment <finess>', 'Pro Santé Connect as client, for this establishment (FINESS)')
    .option(
      '--native',
      'native application (workstation or phone, RFC 8252): private-use scheme redirect URIs such as fr.hopital.app:/callback',
      false,
    )
    .action(async (clientId: string, opts, command: Command) => {
      const jwks = opts.jwksFile ? JSON.parse(await readFile(opts.jwksFile, 'utf8')) : undefined;
      // The registry generates the secret of secret-based clients and prints it once.
      const parsed = clientSchema.safeParse({
        clientId,
        clientName: opts.name,
        redirectUris: opts.redirectUri,
        postLogoutRedirectUris: opts.postLogoutRedirectUri,
        grantTypes: opts.grantType,
        tokenEndpointAuthMethod: opts.authMethod,
        scope: opts.scope,
        idTokenSignedResponseAlg: opts.signingAlg,
        backchannelLogoutUri: opts.backchannelLogoutUri,
        jwksUri: opts.jwksUri,
        jwks,
        tlsClientAuthSubjectDn: opts.tlsSubjectDn,
        firstParty: opts.firstParty,
        resourceServer: opts.resourceServer,
        pkceRequired: opts.pkce,
        pscEstablishment: opts.pscEstablishment,
        applicationType: opts.native ? 'native' : 'web',
      });
      if (!parsed.success) {
        throw new CliError(
          parsed.error.issues
            .map((i) => `${URI_FLAGS[String(i.path[0])] ?? i.path.join('.')}: ${i.message}`)
            .join('\n'),
        );
      }
      const metadata: ClientMetadata = toClientMetadata(parsed.data);
      await withServices(command, async (services) => {
        const { clients, validateClient } = services;
        if (await clients.findMetadata(clientId)) throw new CliError(`client ${clientId} already exists`);
        const { generatedSecret } = await clients.save(metadata, 'cli', validateClient);
        await recordAdmin(services, {
          type: 'admin.client.added',
          clientId,
          detail: {
            authMethod: metadata.token_endpoint_auth_method,
            redirectUris: metadata.redirect_uris,
            grantTypes: metadata.grant_types,
            pkceRequired: metadata.pkce_required !== false,
          },
        });
        out(`client ${clientId} registered`);
        // What the application is configured with: the issuer (behind its reverse proxy), not this host.
        out(`issuer: ${services.config.issuer}`);
        out(`discovery: ${discoveryUrl(services.config)}`);
        if (generatedSecret) out(`client secret (shown once, store it now): ${generatedSecret}`);
      });
    });
  clients
    .command('list')
    .description('list clients')
    .action(async (_opts, command: Command) => {
      await withServices(command, async ({ clients }) => {
        for (const c of await clients.list()) {
          out(
            `${c.clientId}\t${c.authMethod}\t${c.source}\t${c.clientName ?? ''}\t${c.redirectUris.join(' ')}`,
          );
        }
      });
    });
  clients
    .command('show')
    .description('show a client (without its secret)')
    .argument('<client-id>')
    .action(async (clientId: string, _opts, command: Command) => {
      await withServices(command, async ({ clients }) => {
        const metadata = await clients.show(clientId);
        if (!metadata) throw new CliError(`no client ${clientId}`);
        out(JSON.stringify(metadata, null, 2));
      });
    });
  clients
    .command('rotate-secret')
    .description('replace the secret of a client; the new one is printed once')
    .argument('<client-id>')
    .action(async (clientId: string, _opts, command: Command) => {
      await withServices(command, async (services) => {
        const secret = await services.clients.rotateSecret(clientId);
        await recordAdmin(services, { type: 'admin.client.secret_rotated', clientId });
        out(`client secret (shown once, store it now): ${secret}`);
      });
    });
  clients
    .command('remove')
    .description('remove a client and revoke its tokens')
    .argument('<client-id>')
    .action(async (clientId: string, _opts, command: Command) => {
      await withServices(command, async (services) => {
        if (!(await services.clients.remove(clientId))) throw new CliError(`no client ${clientId}`);
        await recordAdmin(services, { type: 'admin.client.removed', clientId });
        out(`client ${clientId} removed`);
      });
    });
}

export function registerUsers(program: Command): void {
  const users = program.command('users').description('local accounts (break-glass administrators, demo)');
  users
    .command('add')
    .description('create a local account with a password')
    .argument('<username>')
    .option('--name <display-name>', 'display name')
    .option('--given-name <name>')
    .option('--family-name <name>')
    .option('--email <email>')
    .option('--password-stdin', 'read the password from standard input', false)
    .action(async (username: string, opts, command: Command) => {
      const password = await readNewPassword(opts.passwordStdin);
      await withServices(command, async (services) => {
        try {
          const account = await services.accounts.create(
            {
              username,
              displayName: opts.name,
              givenName: opts.givenName,
              familyName: opts.familyName,
              email: opts.email,
            },
            password,
          );
          await recordAdmin(services, {
            type: 'admin.account.added',
            accountId: account.id,
            detail: { username: account.username },
          });
          out(`account ${account.username} created (id ${account.id})`);
        } catch (err) {
          if (err instanceof AccountExistsError) throw new CliError(err.message);
          throw err;
        }
      });
    });
  users
    .command('list')
    .description('list local accounts')
    .action(async (_opts, command: Command) => {
      await withServices(command, async ({ accounts }) => {
        for (const a of await accounts.list()) {
          const state = a.disabledAt ? 'disabled' : 'active';
          out(`${a.username}\t${a.id}\t${state}\t${a.displayName ?? ''}${a.isDemo ? '\t(demo)' : ''}`);
        }
      });
    });
  for (const [name, disabled] of [
    ['disable', true],
    ['enable', false],
  ] as const) {
    users
      .command(name)
      .description(`${name} an account`)
      .argument('<username>')
      .action(async (username: string, _opts, command: Command) => {
        await withServices(command, async (services) => {
          const account = await accountNamed(services, username);
          await adminActs(services).setDisabled(account, disabled, cliActor(undefined));
          out(`account ${account.username} ${disabled ? 'disabled' : 'enabled'}`);
        });
      });
  }
  users
    .command('unlock')
    .description('lift the temporary lock and forget the failed attempts of an account (helpdesk)')
    .argument('<username>')
    .action(async (username: string, _opts, command: Command) => {
      await withServices(command, async (services) => {
        const account = await services.accounts.findByUsername(username);
        await adminActs(services).unlock(account, username, cliActor(undefined));
        out(`failed attempts of ${account?.username ?? username} forgotten; the account may sign in again`);
      });
    });
  users
    .command('set-password')
    .description('set the password of a local account')
    .argument('<username>')
    .option('--password-stdin', 'read the password from standard input', false)
    .action(async (username: string, opts, command: Command) => {
      const password = await readNewPassword(opts.passwordStdin);
      await withServices(command, async (services) => {
        const account = await accountNamed(services, username);
        await services.accounts.setPassword(account.id, password);
        await recordAdmin(services, {
          type: 'admin.account.password_set',
          accountId: account.id,
          detail: { username: account.username },
        });
        out(`password of ${account.username} changed`);
      });
    });
  registerCardCommands(users);
  registerUserKeys(users);
  users
    .command('roles')
    .description(`show the console roles of an account; --add / --remove one (${CONSOLE_ROLES.join(', ')})`)
    .argument('<username>')
    .option('--add <role>', 'grant this role')
    .option('--remove <role>', 'revoke this role')
    .option('--by <operator>', 'who does it, for the audit trail')
    .action(async (username: string, opts, command: Command) => {
      await withServices(command, async (services) => {
        const account = await accountNamed(services, username);
        for (const [role, change] of [
          [opts.add, 'grant'],
          [opts.remove, 'revoke'],
        ] as const) {
          if (role === undefined) continue;
          if (!isConsoleRole(role)) throw new CliError(`role: one of ${CONSOLE_ROLES.join(', ')}`);
          const changed = await services.roles[change](account.id, role, operator(opts.by));
          out(
            `${account.username}: ${role} ${change === 'grant' ? 'granted' : 'revoked'}${changed ? '' : ' (unchanged)'}`,
          );
        }
        const roles = await services.roles.of(account.id);
        out(`${account.username}: ${roles.length ? roles.join(', ') : 'no console role'}`);
      });
    });
  users
    .command('establishments')
    .description('show the establishments (FINESS) an account belongs to; --add / --remove list it')
    .argument('<username>')
    .option('--add <finess>', 'list the account as a member of this establishment')
    .option('--remove <finess>', 'remove that listing')
    .option('--by <operator>', 'who does it, for the audit trail')
    .action(async (username: string, opts, command: Command) => {
      await withServices(command, async (services) => {
        const account = await accountNamed(services, username);
        const { establishments } = services;
        for (const [finess, change] of [
          [opts.add, 'add'],
          [opts.remove, 'remove'],
        ] as const) {
          if (finess === undefined) continue;
          if (!establishments.establishment(finess))
            throw new CliError(`no establishment with FINESS ${finess}`);
          const changed = await establishments[change](account.id, finess, operator(opts.by));
          out(
            `${account.username}: ${change === 'add' ? 'listed in' : 'removed from'} ${finess}${changed ? '' : ' (unchanged)'}`,
          );
        }
        const memberships = await establishments.of(account.id);
        if (!memberships.length) out(`${account.username} belongs to no establishment`);
        for (const { establishment, basis } of memberships) {
          out(`${establishment.finess}\t${establishment.name}\ttid ${establishment.tid}\t${basis}`);
        }
      });
    });
}

async function readCardCertificate(file: string): Promise<X509Certificate> {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(await readFile(file));
  } catch (err) {
    throw new CliError(`${file}: not a certificate (PEM or DER): ${(err as Error).message}`);
  }
  if (cert.ca) throw new CliError(`${file}: a CA certificate, not a card certificate`);
  if (!(cert.keyUsage ?? []).includes('1.3.6.1.5.5.7.3.2'))
    throw new CliError(`${file}: not an authentication certificate (no clientAuth extended key usage)`);
  return cert;
}

/** Card certificates registered for an account (login by certificate fingerprint). */
function registerCardCommands(users: Command): void {
  users
    .command('add-card')
    .description('register the authentication certificate of a CPS card for an account')
    .argument('<username>')
    .argument('<certificate>', 'PEM or DER file of the card authentication certificate')
    .action(async (username: string, file: string, _opts, command: Command) => {
      const cert = await readCardCertificate(file);
      await withServices(command, async ({ accounts, database, logger }) => {
        const account = await accounts.findByUsername(username);
        if (!account) throw new CliError(`no account ${username}`);
        const fingerprint = certificateFingerprint(cert);
        let added: boolean;
        try {
          added = await new CardCertificates(database.db).register(account.id, cert);
        } catch (err) {
          if (err instanceof CertificateTakenError) throw new CliError(err.message);
          throw err;
        }
        if (added) {
          await new AuditTrail(database.db, logger).record({
            type: 'smartcard.card_registered',
            outcome: 'success',
            accountId: account.id,
            method: 'smartcard',
            detail: {
              fingerprint,
              serial: cert.serialNumber,
              subject: cert.subject.replaceAll('\n', ', '),
              by: 'cli',
            },
          });
        }
        out(
          `${added ? 'card registered' : 'card already registered'} for ${account.username}: ${fingerprint}`,
        );
      });
    });
  users
    .command('cards')
    .description('list the card certificates registered for an account')
    .argument('<username>')
    .action(async (username: string, _opts, command: Command) => {
      await withServices(command, async ({ accounts, database, config }) => {
        const account = await accounts.findByUsername(username);
        if (!account) throw new CliError(`no account ${username}`);
        for (const c of await new CardCertificates(database.db).list(account.id)) {
          out(`${c.fingerprint}\t${cliTime(config)(c.notAfter)}\t${c.subject}`);
        }
      });
    });
  users
    .command('remove-card')
    .description('remove a card certificate from an account')
    .argument('<username>')
    .argument('<fingerprint>', 'SHA-256 fingerprint as listed by `users cards` (colons allowed)')
    .action(async (username: string, fingerprint: string, _opts, command: Command) => {
      await withServices(command, async ({ accounts, database, logger }) => {
        const account = await accounts.findByUsername(username);
        if (!account) throw new CliError(`no account ${username}`);
        if (!(await new CardCertificates(database.db).remove(account.id, fingerprint)))
          throw new CliError(`no card ${fingerprint} for ${account.username}`);
        await new AuditTrail(database.db, logger).record({
          type: 'smartcard.card_removed',
          outcome: 'success',
          accountId: account.id,
          method: 'smartcard',
          detail: { fingerprint: fingerprint.replaceAll(':', '').toLowerCase(), by: 'cli' },
        });
        out(`card removed from ${account.username}`);
      });
    });
}

export async function accountNamed(services: Services, username: string): Promise<Account> {
  const account = await services.accounts.findByUsername(username);
  if (!account) throw new CliError(`no account ${username}`);
  return account;
}

/** The acts on accounts shared with the console. */
export function adminActs(services: Services): AccountAdminActs {
  return new AccountAdminActs({ ...services, db: services.database.db });
}

function cliActor(by: string | undefined): AdminActor {
  return { via: 'cli', actor: operator(by) };
}

/** An act refused for a reason the operator can fix: printed as an error, not a stack. */
async function cliAct<T>(act: () => Promise<T>): Promise<T> {
  try {
    return await act();
  } catch (err) {
    if (err instanceof AdminActError) throw new CliError(err.message);
    throw err;
  }
}

/** Who ran the command, for the audit trail (the operator's name when given). */
export function operator(by: string | undefined): string {
  if (by) return by;
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return 'cli';
  }
}

export function registerWebauthn(program: Command): void {
  program
    .command('enroll')
    .description('issue a one-time code with which the user adds a FIDO2 security key (printed once)')
    .argument('<username>')
    .option('--by <operator>', 'name of the helpdesk operator, recorded in the audit trail')
    .action(async (username: string, opts, command: Command) => {
      await withServices(command, async (services) => {
        if (!webauthnSettings(services.config))
          throw new CliError('security keys are not enabled (no webauthn section in the configuration)');
        const account = await accountNamed(services, username);
        const issued = await cliAct(() =>
          adminActs(services).issueEnrollmentCode(account, cliActor(opts.by)),
        );
        out(`enrollment code for ${account.username}: ${issued.code}`);
        out(`valid once, until ${cliTime(services.config)(issued.expiresAt)}`);
        out(`the user signs in, opens ${services.config.issuer}/account/security-keys and types this code`);
      });
    });
}

export function registerUserKeys(users: Command): void {
  users
    .command('keys')
    .description('list the security keys of an account')
    .argument('<username>')
    .action(async (username: string, _opts, command: Command) => {
      await withServices(command, async (services) => {
        const account = await accountNamed(services, username);
        const keys = await new CredentialStore(services.database.db).listForAccount(account.id, {
          includeRevoked: true,
        });
        const time = cliTime(services.config);
        for (const k of keys) {
          const state = k.revokedAt
            ? `revoked ${time(k.revokedAt)}`
            : k.flaggedAt
              ? `blocked (possible cloning: ${k.flagReason ?? 'flagged'}) since ${time(k.flaggedAt)}`
              : 'active';
          const lastUse = time(k.lastUsedAt, 'never used');
          out(`${k.id}\t${k.name}\t${k.aaguid}\t${time(k.createdAt)}\t${lastUse}\t${state}`);
        }
      });
    });
  users
    .command('revoke-key')
    .description('revoke a security key of an account (by credential id or by name)')
    .argument('<username>')
    .argument('<key>', 'credential id, or the name of the key')
    .option('--by <operator>', 'name of the helpdesk operator, recorded in the audit trail')
    .action(async (username: string, key: string, opts, command: Command) => {
      await withServices(command, async (services) => {
        const account = await accountNamed(services, username);
        const target = await cliAct(() => adminActs(services).revokeKey(account, key, cliActor(opts.by)));
        out(`key ${target.name} (${target.id}) of ${account.username} revoked`);
      });
    });
}
