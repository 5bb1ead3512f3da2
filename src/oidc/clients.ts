import { randomBytes } from 'node:crypto';
import { type Kysely, sql } from 'kysely';
import { canonicalJson } from '../audit/canonical.ts';
import type { ClientDescription, DeclaredClient } from '../config/schema.ts';
import type { Sealer } from '../crypto/sealer.ts';
import type { Database } from '../db/types.ts';

/** `internal`: Passerelle's own portal and console. */
export type ClientSource = 'cli' | 'config' | 'demo' | 'internal';

/** A rate-limit key and its maximum, checked while looking a client up. */
export interface RateLimitGuard {
  key: string;
  max: number;
}
export type ClientMetadata = Record<string, unknown> & { client_id: string };

/** Validates metadata against the protocol engine's rules; throws with a readable message. */
export type MetadataValidator = (metadata: ClientMetadata) => Promise<void>;

const SECRET_METHODS = new Set(['client_secret_basic', 'client_secret_post', 'client_secret_jwt']);

export function generateClientSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** Maps the configuration's camelCase client description to OpenID Connect registration metadata. */
export function toClientMetadata(client: ClientDescription): ClientMetadata {
  const metadata: ClientMetadata = {
    client_id: client.clientId,
    client_name: client.clientName,
    redirect_uris: client.redirectUris,
    post_logout_redirect_uris: client.postLogoutRedirectUris,
    // Stored only for a native application (the engine's default is web).
    application_type: client.applicationType === 'native' ? 'native' : undefined,
    grant_types: client.grantTypes,
    response_types: client.grantTypes.includes('authorization_code') ? ['code'] : [],
    token_endpoint_auth_method: client.tokenEndpointAuthMethod,
    scope: client.scope,
    id_token_signed_response_alg: client.idTokenSignedResponseAlg,
    backchannel_logout_uri: client.backchannelLogoutUri,
    backchannel_logout_session_required: client.backchannelLogoutUri ? true : undefined,
    jwks_uri: client.jwksUri,
    jwks: client.jwks,
    tls_client_auth_subject_dn: client.tlsClientAuthSubjectDn,
    first_party: client.firstParty,
    // Stored only when PKCE is waived (a confidential client such as PSC's broker).
    pkce_required: client.pkceRequired ? undefined : false,
    resource_server: client.resourceServer || undefined,
    required_acr: client.requiredAcr,
    allowed_methods: client.allowedMethods,
    default_max_age: client.defaultMaxAge,
    psc_establishment: client.pscEstablishment,
  };
  for (const key of Object.keys(metadata)) if (metadata[key] === undefined) delete metadata[key];
  return metadata;
}

export interface ClientSummary {
  clientId: string;
  clientName: string | undefined;
  authMethod: string;
  redirectUris: string[];
  source: ClientSource;
  createdAt: Date;
}

/** The registry of relying parties, stored in the database; secrets sealed under the key-encryption key. */
export class ClientRegistry {
  readonly #db: Kysely<Database>;
  readonly #sealer: Sealer;

  constructor(db: Kysely<Database>, sealer: Sealer) {
    this.#db = db;
    this.#sealer = sealer;
  }

  /** The stored metadata and sealed secret of one client. */
  #findRow(clientId: string, unlessLimited?: RateLimitGuard) {
    return this.#db
      .selectFrom('oidc_client')
      .select(['metadata', 'secret_sealed'])
      .select((eb) =>
        unlessLimited
          ? eb
              .exists(
                eb
                  .selectFrom('rate_limit')
                  .select('key')
                  .where('key', '=', unlessLimited.key)
                  .where('hits', '>=', unlessLimited.max)
                  .where('expires_at', '>', sql<Date>`now()`),
              )
              .as('limited')
          : sql<boolean>`false`.as('limited'),
      )
      .where('client_id', '=', clientId)
      .executeTakeFirst();
  }

  /**
   * The client's metadata with its secret. With `unlessLimited`, a client is reported missing while
   * that rate-limit key is over its maximum (checked in the same statement: no extra round trip).
   */
  async findMetadata(clientId: string, unlessLimited?: RateLimitGuard): Promise<ClientMetadata | undefined> {
    const row = await this.#findRow(clientId, unlessLimited);
    if (!row || row.limited) return undefined;
    const metadata = { ...(row.metadata as ClientMetadata) };
    if (row.secret_sealed)
      metadata.client_secret = this.#sealer.open(row.secret_sealed, `client:${clientId}`);
    return metadata;
  }

  /**
   * Registers or replaces a client. Returns the secret when one was generated (to be shown once).
   * A secret given in `metadata.client_secret` is stored sealed and never returned.
   */
  async save(
    input: ClientMetadata,
    source: ClientSource,
    validate?: MetadataValidator,
  ): Promise<{ clientId: string; generatedSecret?: string }> {
    const { client_secret: givenSecret, ...metadata } = input;
    const method = String(metadata.token_endpoint_auth_method ?? 'client_secret_basic');
    let secret = typeof givenSecret === 'string' ? givenSecret : undefined;
    let generatedSecret: string | undefined;
    if (SECRET_METHODS.has(method) && !secret) {
      const existing = await this.findMetadata(metadata.client_id);
      secret = typeof existing?.client_secret === 'string' ? existing.client_secret : undefined;
      if (!secret) {
        secret = generateClientSecret();
        generatedSecret = secret;
      }
    }
    if (!SECRET_METHODS.has(method)) secret = undefined;
    if (validate) await validate(secret ? { ...metadata, client_secret: secret } : metadata);
    const row = {
      client_id: metadata.client_id,
      metadata: JSON.stringify(metadata),
      secret_sealed: secret ? this.#sealer.seal(secret, `client:${metadata.client_id}`) : null,
      source,
      updated_at: new Date(),
    };
    await this.#db
      .insertInto('oidc_client')
      .values(row)
      .onConflict((oc) =>
        oc.column('client_id').doUpdateSet({
          metadata: row.metadata,
          secret_sealed: row.secret_sealed,
          source: row.source,
          updated_at: row.updated_at,
        }),
      )
      .execute();
    return generatedSecret
      ? { clientId: metadata.client_id, generatedSecret }
      : { clientId: metadata.client_id };
  }

  async rotateSecret(clientId: string): Promise<string> {
    const existing = await this.findMetadata(clientId);
    if (!existing) throw new Error(`no client ${clientId}`);
    if (!SECRET_METHODS.has(String(existing.token_endpoint_auth_method ?? 'client_secret_basic'))) {
      throw new Error(`client ${clientId} does not authenticate with a secret`);
    }
    const secret = generateClientSecret();
    await this.#db
      .updateTable('oidc_client')
      .set({ secret_sealed: this.#sealer.seal(secret, `client:${clientId}`), updated_at: new Date() })
      .where('client_id', '=', clientId)
      .execute();
    return secret;
  }

  async list(): Promise<ClientSummary[]> {
    const rows = await this.#db
      .selectFrom('oidc_client')
      .select(['client_id', 'metadata', 'source', 'created_at'])
      .orderBy('client_id')
      .execute();
    return rows.map((row) => {
      const m = row.metadata as ClientMetadata;
      return {
        clientId: row.client_id,
        clientName: typeof m.client_name === 'string' ? m.client_name : undefined,
        authMethod: String(m.token_endpoint_auth_method ?? 'client_secret_basic'),
        redirectUris: (m.redirect_uris as string[] | undefined) ?? [],
        source: row.source as ClientSource,
        createdAt: row.created_at,
      };
    });
  }

  /** Every client's metadata, without secrets (the portal's list of applications). */
  async listMetadata(): Promise<ClientMetadata[]> {
    const rows = await this.#db.selectFrom('oidc_client').select('metadata').orderBy('client_id').execute();
    return rows.map((row) => row.metadata as ClientMetadata);
  }

  /** Metadata without the secret, for display. */
  async show(clientId: string): Promise<ClientMetadata | undefined> {
    const row = await this.#findRow(clientId);
    if (!row) return undefined;
    return { ...(row.metadata as ClientMetadata), ...(row.secret_sealed ? { client_secret: '(set)' } : {}) };
  }

  async remove(clientId: string): Promise<boolean> {
    const result = await this.#db
      .deleteFrom('oidc_client')
      .where('client_id', '=', clientId)
      .executeTakeFirst();
    if (result.numDeletedRows === 0n) return false;
    // Tokens of a removed client stop working at once.
    await this.#db
      .deleteFrom('oidc_payload')
      .where(sql<string>`payload->>'clientId'`, '=', clientId)
      .execute();
    return true;
  }

  /**
   * Makes the registry's config-sourced clients equal to the declared list. Returns what changed
   * (for the audit trail): a client added, one whose metadata or secret changed, one removed.
   */
  async syncDeclared(
    declared: readonly DeclaredClient[],
    validate?: MetadataValidator,
  ): Promise<DeclaredClientChange[]> {
    const changes: DeclaredClientChange[] = [];
    const ids = declared.map((c) => c.clientId);
    for (const client of declared) {
      const metadata = toClientMetadata(client);
      if (client.clientSecret) metadata.client_secret = client.clientSecret;
      const before = await this.findMetadata(client.clientId);
      await this.save(metadata, 'config', validate);
      const after = await this.findMetadata(client.clientId);
      if (!before) changes.push({ clientId: client.clientId, change: 'added' });
      else if (canonicalJson(before) !== canonicalJson(after))
        changes.push({
          clientId: client.clientId,
          change: 'updated',
          secretChanged: before.client_secret !== after?.client_secret,
        });
    }
    let stale = this.#db.selectFrom('oidc_client').select('client_id').where('source', '=', 'config');
    if (ids.length > 0) stale = stale.where('client_id', 'not in', ids);
    // Removed from the file: removed like any other client, tokens included.
    for (const { client_id } of await stale.execute())
      if (await this.remove(client_id)) changes.push({ clientId: client_id, change: 'removed' });
    return changes;
  }
}

/** One change made by the configuration file's client list. */
export interface DeclaredClientChange {
  clientId: string;
  change: 'added' | 'updated' | 'removed';
  secretChanged?: boolean;
}
