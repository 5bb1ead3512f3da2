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
  /** Session id at the upstream provider (login through PSC). */
  upstreamSid?: string;
  /**
   * Proven by an upstream identity provider (login through PSC), not by Passerelle: its amr carries
   * RFC 8176 `fed`, and it never counts towards what Passerelle reports to PSC.
   */
  federated?: true;
}

export interface AuthSessionTable {
  session_uid: string;
  account_id: string;
  methods: Json<CompletedMethod[]>;
  profile: 'standard' | 'shared';
  started_at: DefaultedTimestamp;
  last_active_at: DefaultedTimestamp;
  expires_at: Timestamp;
  /** PSC's session id when the login came through Pro Santé Connect. */
  upstream_sid: string | null;
}

export interface AccountEstablishmentTable {
  account_id: string;
  finess: string;
  added_at: DefaultedTimestamp;
}

export interface PscLoginPendingTable {
  state: string;
  interaction_uid: string;
  nonce: string;
  code_verifier: string;
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
  /** idNatPS when the account has a link (federation events). */
  national_id: string | null;
  /** PSC tenant id and establishment FINESS of a federation event. */
  tid: string | null;
  establishment: string | null;
  /** Hash chain: SHA-256 (hex) of the previous record's canonical form, and of this one's. */
  prev_hash: string | null;
  hash: string | null;
}

export interface AuditCheckpointTable {
  seq: string;
  hash: string;
  at: CreatedAt;
  key_id: string;
  signature: string;
}

export interface AuditKeyTable {
  key_id: string;
  /** The Ed25519 public key as a JWK (kty, crv, x). */
  public_jwk: ColumnType<Record<string, string>, string, never>;
  created_at: CreatedAt;
  /** The key this one replaced, which signed `endorsement`; null for the first key. */
  endorsed_by: string | null;
  endorsement: string | null;
  retired_at: Date | null;
}

export interface AccountRoleTable {
  account_id: string;
  role: 'administrator' | 'helpdesk' | 'auditor';
  granted_at: CreatedAt;
  granted_by: string;
}

export interface AuditExportTable {
  id: Generated<string>;
  from_seq: string;
  to_seq: string;
  format: string;
  verified: boolean;
  exported_at: DefaultedTimestamp;
  actor: string;
}

export interface AuditForwardCursorTable {
  name: string;
  last_seq: string;
  updated_at: DefaultedTimestamp;
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
/**
 * Where a national identity comes from: the RPPS (an idNatPS, PSC's `SubjectNameID`) or Pro Santé
 * Identité (PSC's `PSISubjectNameID`, an identifier of its own). Identifiers are unique within an origin.
 */
export type NationalIdentityOrigin = 'rpps' | 'psi';

export interface NationalIdentityTable {
  account_id: string;
  /** The idNatPS (origin `rpps`) or the Pro Santé Identité identifier (origin `psi`). */
  id_nat: string;
  origin: ColumnType<NationalIdentityOrigin, NationalIdentityOrigin | undefined, NationalIdentityOrigin>;
  /** Null for a PSI identity. */
  rpps: string | null;
  source: NationalIdentitySource;
  status: NationalIdentityStatus;
  verified_at: Timestamp | null;
  updated_at: Timestamp;
  /** TRE_G15 profession and TRE_R09 category, as the Annuaire Santé last reported them. */
  profession_code: string | null;
  category_code: string | null;
  /** Activity codes (fonction, genre, mode d'exercice) of the professional's active PractitionerRoles. */
  role_codes: ColumnType<string[], string | undefined, string>;
  /** Exercise names as the Annuaire Santé last reported them. */
  national_family_name: string | null;
  national_given_name: string | null;
  /** Last time the link was looked up (API or open-data index), whatever the outcome. */
  checked_at: Timestamp | null;
  /** Why the link is inactive or in conflict (stable code). */
  status_reason: string | null;
}

export type RppsReviewKind = 'candidate' | 'conflict';
export type RppsReviewState = 'open' | 'accepted' | 'rejected';

export interface RppsReviewTable {
  id: string;
  account_id: string;
  kind: RppsReviewKind;
  /** The proposed identifier. */
  id_nat: string;
  origin: ColumnType<NationalIdentityOrigin, NationalIdentityOrigin | undefined, NationalIdentityOrigin>;
  /** The proposed source (NationalIdentitySource). */
  source: NationalIdentitySource;
  /** The account that already holds or claims that identifier, for conflicts between accounts. */
  other_account_id: string | null;
  evidence: Json<Record<string, unknown>>;
  state: RppsReviewState;
  created_at: CreatedAt;
  decided_at: Timestamp | null;
  decided_by: string | null;
}

export interface RppsSyncRunTable {
  id: string;
  mode: 'full' | 'delta';
  trigger: string;
  instance_id: string;
  status: 'running' | 'completed' | 'halted' | 'failed';
  delta_since: Timestamp | null;
  started_at: Timestamp;
  finished_at: Timestamp | null;
  summary: Json<Record<string, unknown>> | null;
  error: string | null;
}

export interface JobLockTable {
  name: string;
  holder: string;
  acquired_at: Timestamp;
  expires_at: Timestamp;
}

export interface AdminAlertTable {
  id: string;
  kind: string;
  account_id: string | null;
  message: string;
  detail: Json<Record<string, unknown>> | null;
  created_at: CreatedAt;
  acknowledged_at: Timestamp | null;
  acknowledged_by: string | null;
}

export interface RppsIndexImportTable {
  generation: number;
  file_name: string;
  started_at: Timestamp;
  completed_at: Timestamp | null;
  is_current: ColumnType<boolean, boolean | undefined, boolean>;
  summary: Json<Record<string, unknown>> | null;
}

export interface RppsIndexEntryTable {
  generation: number;
  id_nat: string;
  rpps: string | null;
  family_name: string;
  given_name: string;
  family_folded: string;
  given_folded: string;
  profession_code: string | null;
  profession_label: string | null;
  category_code: string | null;
  activity_count: number;
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
  account_establishment: AccountEstablishmentTable;
  psc_login_pending: PscLoginPendingTable;
  audit_event: AuditEventTable;
  audit_checkpoint: AuditCheckpointTable;
  audit_key: AuditKeyTable;
  account_role: AccountRoleTable;
  audit_export: AuditExportTable;
  audit_forward_cursor: AuditForwardCursorTable;
  directory_link: DirectoryLinkTable;
  national_identity: NationalIdentityTable;
  smartcard_certificate: SmartcardCertificateTable;
  webauthn_credential: WebauthnCredentialTable;
  webauthn_challenge: WebauthnChallengeTable;
  enrollment_code: EnrollmentCodeTable;
  rpps_review: RppsReviewTable;
  rpps_sync_run: RppsSyncRunTable;
  job_lock: JobLockTable;
  admin_alert: AdminAlertTable;
  rpps_index_import: RppsIndexImportTable;
  rpps_index_entry: RppsIndexEntryTable;
}
