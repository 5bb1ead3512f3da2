/**
 * The label catalogue: every internal id a page may name (statuses, sources, methods, health checks,
 * audit types, results and reason codes, scopes, form fields…) → its French and English label. Pages
 * show labels, never ids; a test renders the French pages and fails on any id left untranslated.
 */

export interface Pair {
  readonly fr: string;
  readonly en: string;
}
type Table = Readonly<Record<string, Pair>>;
type LabelLocale = 'fr' | 'en';

const p = (fr: string, en: string): Pair => ({ fr, en });

/** Authentication methods (AuthMethod ids). */
const method = {
  password: p('Mot de passe local', 'Local password'),
  ldap: p('Mot de passe de l’établissement', 'Establishment password'),
  webauthn: p('Clé de sécurité FIDO2', 'FIDO2 security key'),
  smartcard: p('Carte CPS', 'CPS card'),
  psc: p('Pro Santé Connect (e-CPS, carte CPS)', 'Pro Santé Connect (e-CPS, CPS card)'),
} as const;

/** Status of a national identity link (feminine: « identité … »). */
const linkStatus = {
  verified: p('vérifiée', 'verified'),
  candidate: p('à confirmer', 'to be confirmed'),
  conflict: p('en conflit (examen par un administrateur)', 'in conflict (reviewed by an administrator)'),
  inactive: p('inactive', 'inactive'),
} as const;

/** Where a national identity link comes from, strongest first. */
const linkSource = {
  'cps-certificate': p('carte CPS', 'CPS card'),
  'psc-login': p('connexion Pro Santé Connect', 'Pro Santé Connect sign-in'),
  'directory-attribute': p('annuaire de l’établissement', 'establishment directory'),
  manual: p('saisie par un administrateur', 'entered by an administrator'),
  'name-match': p('rapprochement par le nom', 'matched by name'),
} as const;

/** Readiness checks (/readyz, the console's health page). */
const healthCheck = {
  database: p('Base de données', 'Database'),
  migrations: p('Schéma de la base à jour', 'Database schema up to date'),
  audit: p('Écriture de la traçabilité', 'Audit records written'),
  ldap: p('Annuaire de l’établissement (LDAP)', 'Establishment directory (LDAP)'),
  annuaire: p('API Annuaire Santé', 'Annuaire Santé API'),
  psc: p('Pro Santé Connect (document de découverte)', 'Pro Santé Connect (discovery document)'),
  smartcard_crl: p('Listes de révocation des cartes CPS', 'CPS card revocation lists'),
  webauthnMetadata: p('Métadonnées FIDO des clés de sécurité', 'FIDO metadata of security keys'),
} as const;

const auditOutcome = {
  success: p('réussite', 'success'),
  failure: p('échec', 'failure'),
} as const;

/** Audit record types (docs/audit.md). */
const auditType = {
  'auth.attempt': p('Tentative d’authentification', 'Authentication attempt'),
  'auth.locked': p('Verrouillage après des échecs', 'Lock after failures'),
  'session.started': p('Session ouverte', 'Session started'),
  'session.refreshed': p('Session prolongée', 'Session refreshed'),
  'session.expired': p('Session expirée', 'Session expired'),
  'session.ended': p('Session fermée', 'Session ended'),
  'session.client_logout': p('Déconnexion d’une application', 'Sign-out of one application'),
  'logout.backchannel': p('Déconnexion notifiée à une application', 'Back-channel logout sent'),
  'token.issued': p('Jetons délivrés', 'Tokens issued'),
  'token.refresh_reuse': p('Jeton de rafraîchissement réutilisé', 'Refresh token reused'),
  'token.code_reuse': p('Code d’autorisation réutilisé', 'Authorization code reused'),
  'token.revoked': p('Jeton révoqué', 'Token revoked'),
  'token.introspected': p('Jeton vérifié par une API', 'Token introspected'),
  'psc.federation.accepted': p('Fédération PSC acceptée', 'PSC federation accepted'),
  'psc.federation.refused': p('Fédération PSC refusée', 'PSC federation refused'),
  'rpps.link.created': p('Lien RPPS créé', 'RPPS link created'),
  'rpps.link.updated': p('Lien RPPS modifié', 'RPPS link updated'),
  'rpps.link.verified': p('Lien RPPS vérifié', 'RPPS link verified'),
  'rpps.link.refreshed': p('Lien RPPS contrôlé', 'RPPS link refreshed'),
  'rpps.link.inactive': p('Lien RPPS inactif', 'RPPS link inactive'),
  'rpps.link.reactivated': p('Lien RPPS réactivé', 'RPPS link reactivated'),
  'rpps.link.conflict': p('Conflit de lien RPPS', 'RPPS link conflict'),
  'rpps.link.removed': p('Lien RPPS supprimé', 'RPPS link removed'),
  'rpps.review.accepted': p('Proposition RPPS acceptée', 'RPPS proposal accepted'),
  'rpps.review.rejected': p('Proposition RPPS rejetée', 'RPPS proposal rejected'),
  'rpps.sync.completed': p('Synchronisation RPPS terminée', 'RPPS sync completed'),
  'rpps.sync.halted': p('Synchronisation RPPS arrêtée', 'RPPS sync halted'),
  'rpps.sync.failed': p('Synchronisation RPPS en échec', 'RPPS sync failed'),
  'config.loaded': p('Configuration chargée', 'Configuration loaded'),
  'audit.purged': p('Traçabilité purgée', 'Audit trail purged'),
  'admin.access.denied': p('Accès à la console refusé', 'Console access denied'),
  'admin.account.added': p('Compte créé', 'Account added'),
  'admin.account.disabled': p('Compte désactivé', 'Account disabled'),
  'admin.account.enabled': p('Compte réactivé', 'Account enabled'),
  'admin.account.password_set': p('Mot de passe défini', 'Password set'),
  'admin.account.unlocked': p('Compte déverrouillé', 'Account unlocked'),
  'admin.account.sessions_ended': p('Sessions du compte fermées', 'Account sessions ended'),
  'admin.role.granted': p('Rôle de console accordé', 'Console role granted'),
  'admin.role.revoked': p('Rôle de console retiré', 'Console role revoked'),
  'admin.client.added': p('Application déclarée', 'Application registered'),
  'admin.client.updated': p('Application modifiée', 'Application updated'),
  'admin.client.removed': p('Application supprimée', 'Application removed'),
  'admin.client.secret_rotated': p('Secret d’application renouvelé', 'Application secret rotated'),
  'admin.keys.created': p('Clés de signature créées', 'Signing keys created'),
  'admin.keys.rotated': p('Clés de signature renouvelées', 'Signing keys rotated'),
  'admin.audit_key.rotated': p('Clé de la traçabilité renouvelée', 'Audit key rotated'),
  'admin.audit.exported': p('Traçabilité exportée', 'Audit trail exported'),
  'admin.audit.verified': p('Chaîne de traçabilité vérifiée', 'Audit chain verified'),
  'admin.rpps.sync': p('Synchronisation RPPS lancée', 'RPPS sync started'),
  'establishment.member_added': p('Membre ajouté à un établissement', 'Establishment member added'),
  'establishment.member_removed': p('Membre retiré d’un établissement', 'Establishment member removed'),
  'webauthn.enrolled': p('Clé de sécurité enregistrée', 'Security key enrolled'),
  'webauthn.revoked': p('Clé de sécurité révoquée', 'Security key revoked'),
  'webauthn.enrollment': p('Enregistrement d’une clé de sécurité', 'Security key enrollment'),
  'webauthn.refused': p('Clé de sécurité refusée', 'Security key refused'),
  'webauthn.enrollment_code': p('Code d’enrôlement émis', 'Enrollment code issued'),
  'webauthn.counter_regression': p('Clé de sécurité peut-être clonée', 'Security key possibly cloned'),
  'smartcard.card_registered': p('Carte CPS enregistrée', 'CPS card registered'),
  'smartcard.card_removed': p('Carte CPS retirée', 'CPS card removed'),
} as const;

/** Reason codes of audit records (failures, session ends, refusals). */
const auditReason = {
  // Passwords and accounts
  wrong_password: p('mot de passe erroné', 'wrong password'),
  empty_password: p('mot de passe vide', 'empty password'),
  unknown_user: p('identifiant inconnu', 'unknown username'),
  username_invalid: p('identifiant mal formé', 'malformed username'),
  username_conflict: p('identifiant déjà pris par un autre compte', 'username taken by another account'),
  account_missing: p('compte inexistant', 'no such account'),
  unknown_account: p('compte inconnu', 'unknown account'),
  account_disabled: p('compte désactivé', 'account disabled'),
  account_mismatch: p('autre compte que celui de la session', 'another account than the session’s'),
  ad_uac_disabled: p('compte désactivé dans l’annuaire', 'account disabled in the directory'),
  directory_unavailable: p('annuaire injoignable', 'directory unreachable'),
  method_error: p('erreur du moyen d’authentification', 'authentication method error'),
  audit_unavailable: p('traçabilité impossible à écrire', 'audit record could not be written'),
  throttle_delayed: p('tentatives ralenties', 'attempts delayed'),
  throttle_locked: p('compte temporairement verrouillé', 'account temporarily locked'),
  too_many_failures: p('trop d’échecs', 'too many failures'),
  role_missing: p('aucun rôle de console', 'no console role'),
  // Security keys
  malformed_response: p('réponse de la clé mal formée', 'malformed key response'),
  challenge_unknown: p('défi inconnu ou expiré', 'unknown or expired challenge'),
  bad_attestation: p('attestation de la clé invalide', 'invalid key attestation'),
  bad_signature: p('signature invalide', 'invalid signature'),
  uv_missing: p('code PIN de la clé non vérifié', 'key PIN not verified'),
  up_missing: p('clé non touchée', 'key not touched'),
  origin_mismatch: p('origine de la page inattendue', 'unexpected page origin'),
  rpid_mismatch: p('identifiant de service inattendu', 'unexpected relying party id'),
  unknown_credential: p('clé inconnue', 'unknown key'),
  credential_revoked: p('clé révoquée', 'revoked key'),
  credential_of_other_account: p('clé d’un autre compte', 'key of another account'),
  credential_flagged: p('clé bloquée (anomalie détectée)', 'key blocked (anomaly detected)'),
  counter_regression: p(
    'compteur de la clé en recul : clé peut-être clonée',
    'key counter went back: key possibly cloned',
  ),
  attestation_untrusted: p('attestation non reconnue', 'attestation not trusted'),
  aaguid_not_allowed: p('modèle de clé non autorisé', 'key model not allowed'),
  aaguid_not_in_metadata: p(
    'modèle de clé absent des métadonnées FIDO',
    'key model missing from FIDO metadata',
  ),
  authenticator_compromised: p('modèle de clé compromis', 'compromised key model'),
  code_invalid: p('code d’enrôlement invalide', 'invalid enrollment code'),
  // Cards
  no_certificate: p('aucune carte présentée', 'no card presented'),
  malformed: p('certificat illisible', 'unreadable certificate'),
  untrusted_issuer: p('autorité de certification inconnue', 'unknown certification authority'),
  issuer_not_accepted: p('autorité de certification non acceptée', 'certification authority not accepted'),
  expired: p('expiré', 'expired'),
  not_yet_valid: p('pas encore valide', 'not yet valid'),
  wrong_key_usage: p('usage du certificat inadapté', 'wrong certificate usage'),
  unknown_critical_extension: p('extension critique inconnue', 'unknown critical extension'),
  revoked: p('révoqué', 'revoked'),
  crl_unavailable: p('liste de révocation indisponible', 'revocation list unavailable'),
  crl_stale: p('liste de révocation périmée', 'revocation list out of date'),
  no_identifier: p('carte sans identifiant national', 'card without national identifier'),
  identifier_mismatch: p('identifiant de la carte différent', 'card identifier mismatch'),
  unmapped: p('carte liée à aucun compte', 'card linked to no account'),
  // Pro Santé Connect and national identities
  acr_missing: p('niveau PSC absent', 'PSC level missing'),
  acr_unknown: p('niveau PSC inconnu', 'unknown PSC level'),
  acr_too_low: p('niveau PSC insuffisant', 'PSC level too low'),
  psi_not_accepted: p('identité Pro Santé Identité non acceptée', 'Pro Santé Identité identity not accepted'),
  unknown_national_id: p('identité nationale liée à aucun compte', 'national identity linked to no account'),
  national_id_conflict: p('identité nationale en conflit', 'national identity in conflict'),
  national_id_rejected: p('identité nationale rejetée', 'national identity rejected'),
  national_id_inactive: p('identité nationale inactive', 'national identity inactive'),
  link_candidate: p('lien d’identité à confirmer', 'identity link to be confirmed'),
  link_conflict: p('lien d’identité en conflit', 'identity link in conflict'),
  link_inactive: p('inscription au RPPS inactive', 'RPPS registration inactive'),
  not_member: p('compte hors de l’établissement', 'account outside the establishment'),
  unknown_state: p('retour de connexion inconnu ou expiré', 'unknown or expired sign-in return'),
  names_mismatch: p('noms différents', 'names differ'),
  inactive_in_rpps: p('inactif au RPPS', 'inactive in the RPPS'),
  review_accepted_for_another_account: p(
    'proposition acceptée pour un autre compte',
    'proposal accepted for another account',
  ),
  superseded: p('remplacé par une nouvelle proposition', 'superseded by a new proposal'),
  circuit_breaker: p('arrêt de sécurité : trop de changements', 'safety stop: too many changes'),
  busy: p('déjà en cours', 'already running'),
  'retries-exhausted': p('API injoignable après plusieurs essais', 'API unreachable after retries'),
  'breaker-open': p('API suspendue après des erreurs', 'API suspended after errors'),
  incomplete: p('réponse incomplète', 'incomplete response'),
  error: p('erreur', 'error'),
  // Sessions and logout
  idle: p('inactivité', 'inactivity'),
  absolute: p('durée maximale atteinte', 'maximum lifetime reached'),
  rp_initiated_logout: p('déconnexion demandée par l’application', 'sign-out asked by the application'),
  psc_backchannel_logout: p('déconnexion notifiée par PSC', 'sign-out notified by PSC'),
  psc_server_side_logout: p('déconnexion demandée par PSC', 'sign-out asked by PSC'),
  user_everywhere: p('« Se déconnecter partout »', '“Sign out everywhere”'),
  admin_console: p('fermée depuis la console', 'ended from the console'),
  delivery_failed: p('notification non délivrée', 'notification not delivered'),
  step_up: p('niveau supérieur demandé', 'higher level asked'),
  // Tokens (OAuth errors)
  reuse_detected: p('réutilisation détectée', 'reuse detected'),
  token_unknown: p('jeton inconnu', 'unknown token'),
  invalid_client: p('application non authentifiée', 'application not authenticated'),
  invalid_grant: p('autorisation invalide ou expirée', 'invalid or expired grant'),
  invalid_request: p('requête invalide', 'invalid request'),
  invalid_scope: p('droits d’accès non autorisés', 'scope not allowed'),
  invalid_token: p('jeton invalide', 'invalid token'),
  unauthorized_client: p('application non autorisée', 'application not allowed'),
  unsupported_grant_type: p('type d’autorisation non pris en charge', 'unsupported grant type'),
  access_denied: p('accès refusé', 'access denied'),
} as const;

/** OpenID Connect scopes, as the consent page describes them. */
const scope = {
  openid: p('Votre identifiant de connexion', 'Your sign-in identifier'),
  profile: p('Votre nom et votre identifiant', 'Your name and username'),
  email: p('Votre adresse électronique', 'Your e-mail address'),
  offline_access: p(
    'Un accès prolongé, même après votre déconnexion de cette page',
    'Long-lived access, even after you leave this page',
  ),
  rpps: p(
    'Votre identité nationale de professionnel de santé (RPPS) et votre profession',
    'Your national health professional identity (RPPS) and your profession',
  ),
} as const;

/** Client authentication methods at the token endpoint. */
const authMethod = {
  client_secret_basic: p('secret (en-tête HTTP Basic)', 'secret (HTTP Basic header)'),
  client_secret_post: p('secret (dans le formulaire)', 'secret (in the form)'),
  private_key_jwt: p('clé privée de l’application (JWT signé)', 'application private key (signed JWT)'),
  tls_client_auth: p('certificat TLS de l’application', 'application TLS certificate'),
  none: p('aucune (application publique, PKCE)', 'none (public application, PKCE)'),
} as const;

/** Fields of an application's registration (zod paths of clientSchema and the console's form). */
const clientField = {
  clientId: p('Identifiant', 'Identifier'),
  clientName: p('Nom', 'Name'),
  clientSecret: p('Secret', 'Secret'),
  redirectUris: p('Adresses de retour', 'Redirect URIs'),
  postLogoutRedirectUris: p('Adresses après déconnexion', 'Post-logout redirect URIs'),
  grantTypes: p('Types d’autorisation', 'Grant types'),
  tokenEndpointAuthMethod: p('Authentification', 'Authentication'),
  pkceRequired: p('PKCE exigé', 'PKCE required'),
  scope: p('Droits d’accès', 'Scopes'),
  idTokenSignedResponseAlg: p('Algorithme de signature', 'Signing algorithm'),
  backchannelLogoutUri: p('Adresse de déconnexion (back-channel)', 'Back-channel logout URI'),
  jwksUri: p('Adresse des clés publiques', 'Public keys URL'),
  jwks: p('Clés publiques', 'Public keys'),
  tlsClientAuthSubjectDn: p('Sujet du certificat', 'Certificate subject'),
  firstParty: p('Application de l’établissement', 'Application of the establishment'),
  resourceServer: p('API (serveur de ressources)', 'API (resource server)'),
  requiredAcr: p('Niveau exigé', 'Required level'),
  allowedMethods: p('Moyens d’authentification', 'Authentication methods'),
  defaultMaxAge: p('Âge maximal de l’authentification', 'Maximum authentication age'),
  pscEstablishment: p('Établissement PSC', 'PSC establishment'),
  initiateLoginUri: p('Adresse de connexion initiée', 'Initiate login URI'),
  clientUri: p('Adresse de l’application', 'Application URL'),
} as const;

/** What the verification of the audit chain found (src/audit/verify.ts). */
const chainProblem = {
  altered: p('enregistrement modifié', 'record altered'),
  deleted: p('enregistrement supprimé', 'record deleted'),
  inserted: p('enregistrement inséré', 'record inserted'),
  reordered: p('enregistrements dans le désordre', 'records reordered'),
  truncated: p('fin de la trace supprimée', 'trail truncated'),
  'bad-checkpoint': p(
    'point de contrôle dont la signature est invalide',
    'checkpoint with an invalid signature',
  ),
} as const;

/** RPPS sync runs. */
const syncStatus = {
  running: p('en cours', 'running'),
  completed: p('terminée', 'completed'),
  halted: p('arrêtée (trop de changements)', 'halted (too many changes)'),
  failed: p('en échec', 'failed'),
} as const;
const syncMode = {
  full: p('complète', 'full'),
  delta: p('différentielle', 'delta'),
} as const;
const syncTrigger = {
  schedule: p('planifiée', 'scheduled'),
  command: p('à la demande', 'on demand'),
} as const;

/** Changes of RPPS links (audit types rpps.link.*), as the monthly report counts them. */
const rppsChange = {
  created: p('créés', 'created'),
  updated: p('modifiés', 'updated'),
  verified: p('vérifiés', 'verified'),
  refreshed: p('contrôlés', 'refreshed'),
  inactive: p('devenus inactifs', 'became inactive'),
  reactivated: p('réactivés', 'reactivated'),
  conflict: p('en conflit', 'in conflict'),
  removed: p('supprimés', 'removed'),
} as const;

export const LABELS = {
  method,
  linkStatus,
  linkSource,
  healthCheck,
  auditOutcome,
  auditType,
  auditReason,
  scope,
  authMethod,
  clientField,
  syncStatus,
  syncMode,
  syncTrigger,
  rppsChange,
  chainProblem,
} as const satisfies Record<string, Table>;

export type LabelKind = keyof typeof LABELS;
export type Label = (kind: LabelKind, id: string | null | undefined) => string;

/** Reason codes made of a family and a code: `ad_52e` (Active Directory's sub-code). */
function composedReason(id: string, locale: LabelLocale): string | undefined {
  const ad = /^ad_([0-9a-f]{3,4})$/.exec(id);
  if (ad)
    return locale === 'fr' ? `refus de l’annuaire (code ${ad[1]})` : `directory refusal (code ${ad[1]})`;
  return undefined;
}

/** The label of an id, in the page's language; an id missing from the catalogue is shown as it is. */
export function label(locale: LabelLocale, kind: LabelKind, id: string | null | undefined): string {
  if (id === null || id === undefined || id === '') return '—';
  // The report's key for a record without this field.
  if (id === '-') return locale === 'fr' ? 'non précisé' : 'not recorded';
  const table: Table = LABELS[kind];
  const entry = Object.hasOwn(table, id) ? table[id] : undefined;
  if (entry) return entry[locale];
  return (kind === 'auditReason' && composedReason(id, locale)) || id;
}

export function labeller(locale: LabelLocale): Label {
  return (kind, id) => label(locale, kind, id);
}

/** Message entries `<prefix>.<id>` of a table (the login pages' method and scope message ids). */
export function asMessages<P extends string, T extends Table>(
  prefix: P,
  table: T,
  locale: LabelLocale,
): { readonly [K in keyof T & string as `${P}.${K}`]: string } {
  return Object.fromEntries(Object.entries(table).map(([id, pair]) => [`${prefix}.${id}`, pair[locale]])) as {
    readonly [K in keyof T & string as `${P}.${K}`]: string;
  };
}

/** An assurance level described by what it asks (its acr is configured, not meant for people). */
export function levelLabel(
  locale: LabelLocale,
  level: { acr: string; minFactors: number; phishingResistant: boolean } | undefined,
): string {
  if (!level) return locale === 'fr' ? 'aucun niveau atteint' : 'no level reached';
  const factors =
    locale === 'fr'
      ? `${level.minFactors} facteur${level.minFactors > 1 ? 's' : ''}`
      : `${level.minFactors} factor${level.minFactors > 1 ? 's' : ''}`;
  const resistant = locale === 'fr' ? ', résistant à l’hameçonnage' : ', phishing resistant';
  return `${factors}${level.phishingResistant ? resistant : ''}`;
}
