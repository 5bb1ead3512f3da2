import type { ColumnType, Generated } from 'kysely';

type Timestamp = ColumnType<Date, Date | string, Date | string>;
type CreatedAt = ColumnType<Date, Date | string | undefined, never>;
/** A timestamp with a database default that may also be written. */
type DefaultedTimestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type Json<T = unknown> = ColumnType<T, string, string>;

export interface OidcPayloadTable {
  model: string;
  id: string;
  payload: Json<Record<string, unknown>>;
  grant_id: string | null;
  user_code: string | null;
  uid: string | null;
  expires_at: Timestamp | null;
  consumed_at: Timestamp | null;
}

export interface SigningKeyTable {
  kid: string;
  family: 'EC-P256' | 'RSA-3072';
  public_jwk: Json<Record<string, unknown>>;
  private_jwk_sealed: string;
  created_at: CreatedAt;
  /** When the key stopped signing; it stays published until removable_at. */
  retired_at: Timestamp | null;
  removable_at: Timestamp | null;
}

export interface AppSecretTable {
  name: string;
  value_sealed: string;
  created_at: CreatedAt;
}

export interface OidcClientTable {
  client_id: string;
  metadata: Json<Record<string, unknown>>;
  secret_sealed: string | null;
  source: string;
  created_at: CreatedAt;
  updated_at: Timestamp;
}

export interface AccountTable {
  id: string;
  username: string;
  display_name: string | null;
  given_name: string | null;
  family_name: string | null;
  email: string | null;
  is_demo: Generated<boolean>;
  disabled_at: Timestamp | null;
  created_at: CreatedAt;
  updated_at: Timestamp;
}

export interface PasswordCredentialTable {
  account_id: string;
  hash: string;
  updated_at: Timestamp;
}

export interface InteractionStateTable {
  uid: string;
  state: Json<Record<string, unknown>>;
  expires_at: Timestamp;
}

export interface RateLimitTable {
  key: string;
  window_start: Timestamp;
  hits: number;
  expires_at: Timestamp;
  last_hit_at: Timestamp | null;
}

export interface CompletedMethod {
  method: string;
  amr: string[];
  phishingResistant: boolean;
  /** Epoch seconds. */
  at: number;
}

export interface AuthSessionTable {
  session_uid: string;
  account_id: string;
  methods: Json<CompletedMethod[]>;
  profile: 'standard' | 'shared';
  started_at: DefaultedTimestamp;
  last_active_at: DefaultedTimestamp;
  expires_at: Timestamp;
}

export interface AuditEventTable {
  seq: Generated<string>;
  at: CreatedAt;
  type: string;
  outcome: 'success' | 'failure';
  account_id: string | null;
  client_id: string | null;
  session_id: string | null;
  interaction_id: string | null;
  ip: string | null;
  user_agent: string | null;
  method: string | null;
  amr: Json<string[]> | null;
  acr: string | null;
  reason: string | null;
  request_id: string | null;
  instance_id: string;
  detail: Json<Record<string, unknown>> | null;
}

export interface DirectoryLinkTable {
  account_id: string;
  /** objectGUID (canonical string) or entryUUID. */
  stable_id: string;
  dn: string;
  id_nat: string | null;
  groups: Json<string[]>;
  synced_at: Timestamp;
}

export type NationalIdentitySource =
  | 'cps-certificate'
  | 'psc-login'
  | 'directory-attribute'
  | 'manual'
  | 'name-match';
export type NationalIdentityStatus = 'verified' | 'candidate' | 'conflict' | 'inactive';

export interface NationalIdentityTable {
  account_id: string;
  id_nat: string;
  rpps: string | null;
  source: NationalIdentitySource;
  status: NationalIdentityStatus;
  verified_at: Timestamp | null;
  updated_at: Timestamp;
}

export interface SmartcardCertificateTable {
  /** SHA-256 of the DER, lowercase hex. */
  fingerprint: string;
  account_id: string;
  subject: string;
  not_after: Timestamp;
  created_at: CreatedAt;
}

export interface WebauthnCredentialTable {
  /** Credential id, base64url. */
  id: string;
  account_id: string;
  name: string;
  public_key: Uint8Array;
  /** bigint: read as a string by pg, as a number by PGlite; always written as a number. */
  counter: ColumnType<string | number, number | undefined, number>;
  transports: Json<string[]>;
  aaguid: string;
  device_type: 'singleDevice' | 'multiDevice';
  backed_up: boolean;
  created_at: CreatedAt;
  last_used_at: Timestamp | null;
  revoked_at: Timestamp | null;
  flagged_at: Timestamp | null;
  flag_reason: string | null;
}

export interface WebauthnChallengeTable {
  challenge: string;
  purpose: 'registration' | 'authentication';
  /** `interaction:<uid>` or `account:<id>`: what the challenge is bound to. */
  subject: string;
  /** The account the options were made for (username-first login, enrollment); null when usernameless. */
  account_id: string | null;
  expires_at: Timestamp;
}

export interface EnrollmentCodeTable {
  code_hash: string;
  account_id: string;
  issued_by: string;
  created_at: CreatedAt;
  expires_at: Timestamp;
  used_at: Timestamp | null;
}

export interface Database {
  oidc_payload: OidcPayloadTable;
  signing_key: SigningKeyTable;
  app_secret: AppSecretTable;
  oidc_client: OidcClientTable;
  account: AccountTable;
  password_credential: PasswordCredentialTable;
  interaction_state: InteractionStateTable;
  rate_limit: RateLimitTable;
  auth_session: AuthSessionTable;
  audit_event: AuditEventTable;
  directory_link: DirectoryLinkTable;
  national_identity: NationalIdentityTable;
  smartcard_certificate: SmartcardCertificateTable;
  webauthn_credential: WebauthnCredentialTable;
  webauthn_challenge: WebauthnChallengeTable;
  enrollment_code: EnrollmentCodeTable;
}
