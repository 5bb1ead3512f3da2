import { consoleMessages } from './console-messages.ts';
import { consolePeopleMessages } from './console-people-messages.ts';
import { consoleRecordsMessages } from './console-records-messages.ts';
import { errorMessages } from './error-messages.ts';
import { asMessages, LABELS } from './labels.ts';
import { portalMessages } from './portal-messages.ts';
import { portalSecurityMessages } from './portal-security-messages.ts';

/** User-facing text, French first. Keys are stable message ids used by views and error codes. */
export const messages = {
  fr: {
    'app.name': 'Passerelle',
    'app.tagline': 'Connexion unique des professionnels de l’établissement',
    'demo.banner': 'Mode démonstration : comptes et secrets publics. Ne pas utiliser en production.',
    'login.title': 'Connexion',
    'login.identify.lead': 'Saisissez votre identifiant pour vous connecter à {client}.',
    'login.username': 'Identifiant',
    'login.continue': 'Continuer',
    'login.password': 'Mot de passe',
    'login.password.lead': 'Saisissez le mot de passe du compte {username}.',
    'login.signin': 'Se connecter',
    'login.change_user': 'Changer d’identifiant',
    'login.cancel': 'Annuler',
    'login.other_methods': 'Autres moyens de connexion',
    'login.step_up.lead':
      'Cette application demande un niveau de sécurité plus élevé : confirmez votre identité avec un second moyen.',
    'select_account.title': 'Choisir un compte',
    'select_account.lead':
      '{client} vous demande de choisir le compte à utiliser. Vous êtes connecté(e) en tant que {name}.',
    'select_account.continue': 'Continuer en tant que {name}',
    'select_account.other': 'Utiliser un autre compte',
    'consent.title': 'Autorisation',
    'consent.lead': '{client} demande l’accès aux informations suivantes :',
    'consent.allow': 'Autoriser',
    'consent.deny': 'Refuser',
    'error.invalid_credentials': 'Identifiant ou mot de passe incorrect.',
    'error.rate_limited': 'Trop de tentatives. Réessayez dans {minutes} minute(s).',
    'error.account_disabled':
      'Ce compte est désactivé. Contactez le support informatique de l’établissement.',
    'error.service_unavailable':
      'Le service de connexion est momentanément indisponible. Réessayez dans quelques instants.',
    'error.password_expired':
      'Votre mot de passe a expiré. Changez-le depuis un poste de l’établissement (Ctrl+Alt+Suppr) ou appelez le support informatique.',
    'error.password_must_change':
      'Vous devez changer votre mot de passe avant de vous connecter. Changez-le depuis un poste de l’établissement ou appelez le support informatique.',
    'error.authenticator_not_allowed':
      'Ce modèle de clé de sécurité n’est pas autorisé par l’établissement. Utilisez une clé fournie par le support informatique.',
    'error.ceremony_failed':
      'La clé de sécurité n’a pas pu être vérifiée. Réessayez en saisissant le code PIN de la clé.',
    'error.credential_blocked':
      'Cette clé de sécurité est bloquée : elle a peut-être été copiée (clonage possible) et ne permet plus de se connecter. Contactez {support} pour la remplacer.',
    'support.default': 'votre service informatique',
    'error.certificate_rejected':
      'Le certificat de votre carte n’est pas accepté (carte expirée, révoquée ou non reconnue). Contactez le support informatique.',
    'error.certificate_missing':
      'Aucune carte n’a été détectée. Insérez votre carte CPS dans le lecteur, puis réessayez.',
    'error.card_not_linked':
      'Votre carte est valide mais n’est associée à aucun compte de l’établissement. Contactez le support informatique.',
    'error.account_mismatch':
      'Ce moyen d’authentification appartient à un autre compte que celui de votre session.',
    'error.upstream_failed':
      'La connexion par Pro Santé Connect n’a pas abouti (annulée, expirée ou refusée). Vous pouvez réessayer.',
    'error.psc_not_linked':
      'Pro Santé Connect vous a identifié, mais votre identité nationale n’est liée à aucun compte de l’établissement. Pour la lier une fois pour toutes : connectez-vous ci-dessous avec votre identifiant, puis Passerelle vous renverra vers Pro Santé Connect. En cas de difficulté, contactez l’équipe informatique.',
    'error.national_id_conflict':
      'L’identité nationale prouvée par Pro Santé Connect ne correspond pas à celle de votre compte, ou appartient à un autre compte. Le lien n’a pas été modifié ; l’équipe informatique doit le vérifier.',
    'error.psc_level_too_low':
      'Pro Santé Connect vous a identifié avec un niveau de garantie inférieur à celui qu’exige l’établissement. Reconnectez-vous avec votre carte CPS ou votre e-CPS ; si le refus se répète, contactez l’équipe informatique.',
    'error.psc_identity_not_accepted':
      'Pro Santé Connect vous a identifié par Pro Santé Identité ; l’établissement n’accepte pour cette connexion que les identités inscrites au RPPS. Connectez-vous avec un autre moyen ou contactez l’équipe informatique.',
    'error.no_method':
      'Aucun moyen de connexion disponible ne permet d’atteindre le niveau de sécurité demandé par cette application. Contactez le support informatique.',
    'login.other_ways_lead': 'Ou connectez-vous sans saisir d’identifiant :',
    'identity.registry.rpps': 'RPPS',
    'identity.registry.psi': 'Pro Santé Identité',
    'psc.login.lead':
      'Vous allez être dirigé vers Pro Santé Connect, le service national d’identification des professionnels de santé, pour vous identifier avec votre e-CPS ou votre carte CPS.',
    'psc.login.link':
      'Dernière étape : identifiez-vous avec Pro Santé Connect pour lier votre identité nationale à votre compte.',
    'psc.login.submit': 'Se connecter avec Pro Santé Connect',
    'psc.login.unavailable':
      'Pro Santé Connect ne répond pas pour le moment. Réessayez dans quelques minutes ou connectez-vous avec un autre moyen.',
    'smartcard.lead':
      'Insérez votre carte CPS (ou CPE) dans le lecteur, puis cliquez sur « Se connecter avec la carte ».',
    'smartcard.pin':
      'Votre navigateur vous demandera de choisir le certificat de votre carte puis le code PIN de la carte.',
    'smartcard.submit': 'Se connecter avec la carte',
    'webauthn.login.lead':
      'Branchez votre clé de sécurité, cliquez sur le bouton ci-dessous, puis saisissez le code PIN de la clé et touchez-la.',
    'webauthn.login.lead_username': 'Connexion du compte {username} avec sa clé de sécurité.',
    'webauthn.start': 'Utiliser ma clé de sécurité',
    'webauthn.in_progress': 'Saisissez le code PIN de votre clé, puis touchez-la…',
    'webauthn.noscript':
      'La clé de sécurité nécessite JavaScript. Activez JavaScript dans le navigateur, ou choisissez un autre moyen de connexion.',
    'webauthn.unsupported':
      'Ce navigateur ne prend pas en charge les clés de sécurité. Utilisez un navigateur récent (Edge, Firefox, Chrome) ou un autre moyen de connexion.',
    'webauthn.browser_error':
      'La clé de sécurité n’a pas répondu ou l’opération a été annulée. Réessayez, ou choisissez un autre moyen de connexion.',
    'webauthn.demo.home':
      'Clé de sécurité FIDO2 : connectez-vous d’abord avec le mot de passe, puis ouvrez « Mes clés de sécurité » pour enregistrer votre clé (sans code en démonstration ; le support informatique, lui, crée un code avec « PASSERELLE_DEMO=true npx passerelle enroll demo », serveur arrêté car la base embarquée n’accepte qu’un processus). Choisissez ensuite « Clé de sécurité FIDO2 » sur la page de connexion.',
    'webauthn.demo.keys_link': 'Mes clés de sécurité',
    'webauthn.keys.title': 'Mes clés de sécurité',
    'webauthn.keys.lead': 'Clés de sécurité FIDO2 enregistrées pour le compte {username}.',
    'webauthn.keys.none': 'Aucune clé de sécurité n’est enregistrée.',
    'webauthn.keys.name': 'Nom',
    'webauthn.keys.created': 'Ajoutée le',
    'webauthn.keys.last_used': 'Dernière utilisation',
    'webauthn.keys.never': 'jamais',
    'webauthn.keys.blocked': 'Bloquée — clonage possible',
    'webauthn.keys.blocked_lead':
      'Une clé bloquée ne permet plus de vous connecter : son compteur de signatures a reculé, elle a peut-être été copiée. Révoquez-la et contactez {support}.',
    'webauthn.keys.rename': 'Renommer',
    'webauthn.keys.new_name': 'Nouveau nom de la clé {name}',
    'webauthn.keys.revoke': 'Révoquer',
    'webauthn.keys.revoke_label': 'Révoquer la clé {name}',
    'webauthn.keys.add.title': 'Ajouter une clé',
    'webauthn.keys.add.lead_code':
      'Saisissez le code d’enrôlement à usage unique remis par le support informatique, et un nom pour reconnaître la clé.',
    'webauthn.keys.add.lead_self':
      'Vous pouvez enregistrer votre première clé sans code : choisissez un nom pour la reconnaître.',
    'webauthn.keys.add.code': 'Code d’enrôlement',
    'webauthn.keys.add.name': 'Nom de la clé',
    'webauthn.keys.add.default_name': 'Clé de sécurité',
    'webauthn.keys.add.submit': 'Continuer',
    'webauthn.keys.register.lead':
      'Branchez la clé « {name} », cliquez sur le bouton ci-dessous, puis choisissez ou saisissez son code PIN et touchez-la.',
    'webauthn.keys.register.start': 'Enregistrer ma clé de sécurité',
    'webauthn.keys.done.enrolled': 'La clé a été enregistrée. Vous pouvez l’utiliser pour vous connecter.',
    'webauthn.keys.done.revoked': 'La clé a été révoquée : elle ne permet plus de se connecter.',
    'webauthn.keys.done.renamed': 'La clé a été renommée.',
    'webauthn.keys.error.code':
      'Ce code d’enrôlement n’est pas valable (erroné, expiré ou déjà utilisé). Demandez un nouveau code au support informatique.',
    'webauthn.keys.error.not_allowed':
      'Ce modèle de clé de sécurité n’est pas autorisé par l’établissement. Utilisez une clé fournie par le support informatique.',
    'webauthn.keys.error.failed':
      'La clé n’a pas pu être enregistrée (opération annulée, code PIN non saisi ou délai dépassé). Recommencez.',
    'webauthn.keys.error.name': 'Donnez un nom à la clé (64 caractères au plus).',
    'webauthn.keys.login_required':
      'Connectez-vous d’abord à une application de l’établissement avec Passerelle, puis revenez sur cette page.',
    'error.invalid_form': 'Le formulaire est incomplet ou invalide.',
    'error.invalid_characters':
      'La requête contient des caractères non valides (caractère nul ou encodage incorrect). Vérifiez le lien ou recommencez depuis l’application.',
    'error.csrf': 'La page a expiré ou la requête ne provient pas de Passerelle. Recommencez la connexion.',
    'psc.refused.link_inactive':
      'Pro Santé Connect ne peut pas vous identifier : votre inscription au RPPS n’est plus active. Contactez le service des ressources humaines ou l’équipe informatique de l’établissement.',
    'psc.refused.link_conflict':
      'Pro Santé Connect ne peut pas vous identifier pour le moment : le lien entre votre compte et votre identité nationale est en cours de vérification. Contactez l’équipe informatique de l’établissement.',
    'psc.refused.not_member':
      'Pro Santé Connect ne peut pas vous identifier pour cet établissement : votre compte n’en fait pas partie. Passez par l’établissement où vous exercez, ou contactez son équipe informatique.',
    'psc.back_to_application': 'Retour à l’application',
    'error.interaction_expired':
      'Votre demande de connexion a expiré. Retournez à l’application et recommencez.',
    'error.title': 'Une erreur est survenue',
    'error.reference': 'Référence de la requête',
    'error.back': 'Retour à l’accueil',
    'logout.title': 'Déconnexion',
    'logout.lead': 'Voulez-vous vous déconnecter de Passerelle ?',
    'logout.confirm': 'Se déconnecter',
    'logout.cancel': 'Rester connecté',
    'logout.psc':
      'Vous vous êtes connecté avec Pro Santé Connect : vous serez aussi déconnecté de Pro Santé Connect.',
    'logout.done': 'Vous êtes déconnecté.',
    'home.title': 'Passerelle',
    'home.lead': 'Fournisseur d’identité OpenID Connect de l’établissement.',
    'home.try': 'Essayer une connexion',
    'home.discovery': 'Document de découverte OpenID Connect',
    'home.demo_credentials':
      'Compte de démonstration : identifiant « {username} », mot de passe « {password} ».',
    'demo.result.title': 'Connexion réussie',
    'demo.result.lead': 'L’application de démonstration a reçu et vérifié ce jeton d’identité :',
    'demo.result.userinfo': 'Réponse du point d’accès userinfo :',
    'demo.result.logout': 'Se déconnecter',
    'demo.result.again': 'Recommencer',
    'lang.switch': 'English',
    ...portalMessages.fr,
    ...consoleMessages.fr,
    ...portalSecurityMessages.fr,
    ...consolePeopleMessages.fr,
    ...consoleRecordsMessages.fr,
    ...errorMessages.fr,
    ...asMessages('method', LABELS.method, 'fr'),
  },
  en: {
    'app.name': 'Passerelle',
    'app.tagline': 'Single sign-on for the staff of the establishment',
    'demo.banner': 'Demo mode: public accounts and secrets. Do not use in production.',
    'login.title': 'Sign in',
    'login.identify.lead': 'Enter your username to sign in to {client}.',
    'login.username': 'Username',
    'login.continue': 'Continue',
    'login.password': 'Password',
    'login.password.lead': 'Enter the password of account {username}.',
    'login.signin': 'Sign in',
    'login.change_user': 'Use another username',
    'login.cancel': 'Cancel',
    'login.other_methods': 'Other ways to sign in',
    'login.step_up.lead':
      'This application needs a higher security level: confirm your identity with a second means.',
    'select_account.title': 'Choose an account',
    'select_account.lead': '{client} asks you to choose the account to use. You are signed in as {name}.',
    'select_account.continue': 'Continue as {name}',
    'select_account.other': 'Use another account',
    'consent.title': 'Authorisation',
    'consent.lead': '{client} asks for access to:',
    'consent.allow': 'Allow',
    'consent.deny': 'Deny',
    'error.invalid_credentials': 'Incorrect username or password.',
    'error.rate_limited': 'Too many attempts. Try again in {minutes} minute(s).',
    'error.account_disabled': 'This account is disabled. Contact the IT support of the establishment.',
    'error.service_unavailable':
      'The sign-in service is temporarily unavailable. Try again in a few moments.',
    'error.password_expired':
      'Your password has expired. Change it from a workstation of the establishment (Ctrl+Alt+Del) or call the IT support.',
    'error.password_must_change':
      'You must change your password before signing in. Change it from a workstation of the establishment or call the IT support.',
    'error.authenticator_not_allowed':
      'This security key model is not allowed by the establishment. Use a key provided by the IT support.',
    'error.ceremony_failed':
      'The security key could not be verified. Try again and enter the PIN of the key.',
    'error.credential_blocked':
      'This security key is blocked: it may have been copied (possible cloning) and can no longer be used to sign in. Contact {support} to replace it.',
    'support.default': 'your IT service desk',
    'error.certificate_rejected':
      'The certificate of your card is not accepted (expired, revoked or unknown card). Contact the IT support.',
    'error.certificate_missing': 'No card was detected. Insert your CPS card in the reader and try again.',
    'error.card_not_linked':
      'Your card is valid but is not linked to any account of the establishment. Contact the IT support.',
    'error.account_mismatch':
      'This authentication means belongs to another account than the one of your session.',
    'error.upstream_failed':
      'The sign-in through Pro Santé Connect did not complete (cancelled, expired or refused). You may try again.',
    'error.psc_not_linked':
      'Pro Santé Connect identified you, but your national identity is not linked to any account of the establishment. To link it once and for all: sign in below with your username, then Passerelle will send you back to Pro Santé Connect. If in doubt, contact the IT team.',
    'error.national_id_conflict':
      'The national identity proven by Pro Santé Connect does not match your account’s, or belongs to another account. The link was not changed; the IT team must check it.',
    'error.psc_level_too_low':
      'Pro Santé Connect identified you with a lower assurance level than the establishment requires. Sign in again with your CPS card or e-CPS; if this happens again, contact the IT team.',
    'error.psc_identity_not_accepted':
      'Pro Santé Connect identified you through Pro Santé Identité; for this sign-in the establishment accepts only identities registered in the RPPS. Use another sign-in method or contact the IT team.',
    'error.no_method':
      'No available sign-in means reaches the security level this application needs. Contact the IT support.',
    'login.other_ways_lead': 'Or sign in without typing a username:',
    'identity.registry.rpps': 'RPPS',
    'identity.registry.psi': 'Pro Santé Identité',
    'psc.login.lead':
      'You will be sent to Pro Santé Connect, the national identification service for health professionals, to identify yourself with your e-CPS or CPS card.',
    'psc.login.link':
      'Last step: identify yourself with Pro Santé Connect to link your national identity to your account.',
    'psc.login.submit': 'Sign in with Pro Santé Connect',
    'psc.login.unavailable':
      'Pro Santé Connect is not answering at the moment. Try again in a few minutes or use another sign-in method.',
    'smartcard.lead': 'Insert your CPS (or CPE) card in the reader, then click “Sign in with the card”.',
    'smartcard.pin':
      'Your browser will ask you to choose the certificate of your card, then the PIN of the card.',
    'smartcard.submit': 'Sign in with the card',
    'webauthn.login.lead':
      'Plug in your security key, click the button below, then enter the key’s PIN and touch it.',
    'webauthn.login.lead_username': 'Sign-in of account {username} with its security key.',
    'webauthn.start': 'Use my security key',
    'webauthn.in_progress': 'Enter your key’s PIN, then touch it…',
    'webauthn.noscript':
      'Security keys need JavaScript. Enable JavaScript in the browser, or choose another sign-in method.',
    'webauthn.unsupported':
      'This browser does not support security keys. Use a recent browser (Edge, Firefox, Chrome) or another sign-in method.',
    'webauthn.browser_error':
      'The security key did not answer or the operation was cancelled. Try again, or choose another sign-in method.',
    'webauthn.demo.home':
      'FIDO2 security key: first sign in with the password, then open “My security keys” to register your key (no code needed in the demo; the IT helpdesk creates one with “PASSERELLE_DEMO=true npx passerelle enroll demo”, server stopped as the embedded database accepts one process). Then choose “FIDO2 security key” on the sign-in page.',
    'webauthn.demo.keys_link': 'My security keys',
    'webauthn.keys.title': 'My security keys',
    'webauthn.keys.lead': 'FIDO2 security keys registered for account {username}.',
    'webauthn.keys.none': 'No security key is registered.',
    'webauthn.keys.name': 'Name',
    'webauthn.keys.created': 'Added on',
    'webauthn.keys.last_used': 'Last used',
    'webauthn.keys.never': 'never',
    'webauthn.keys.blocked': 'Blocked — possible cloning',
    'webauthn.keys.blocked_lead':
      'A blocked key can no longer sign you in: its signature counter went back, it may have been copied. Revoke it and contact {support}.',
    'webauthn.keys.rename': 'Rename',
    'webauthn.keys.new_name': 'New name of key {name}',
    'webauthn.keys.revoke': 'Revoke',
    'webauthn.keys.revoke_label': 'Revoke key {name}',
    'webauthn.keys.add.title': 'Add a key',
    'webauthn.keys.add.lead_code':
      'Enter the one-time enrollment code given by the IT helpdesk, and a name to recognise the key.',
    'webauthn.keys.add.lead_self':
      'You may register your first key without a code: choose a name to recognise it.',
    'webauthn.keys.add.code': 'Enrollment code',
    'webauthn.keys.add.name': 'Key name',
    'webauthn.keys.add.default_name': 'Security key',
    'webauthn.keys.add.submit': 'Continue',
    'webauthn.keys.register.lead':
      'Plug in the key “{name}”, click the button below, then choose or enter its PIN and touch it.',
    'webauthn.keys.register.start': 'Register my security key',
    'webauthn.keys.done.enrolled': 'The key was registered. You can now sign in with it.',
    'webauthn.keys.done.revoked': 'The key was revoked: it can no longer be used to sign in.',
    'webauthn.keys.done.renamed': 'The key was renamed.',
    'webauthn.keys.error.code':
      'This enrollment code is not valid (wrong, expired or already used). Ask the IT helpdesk for a new code.',
    'webauthn.keys.error.not_allowed':
      'This security key model is not allowed by the establishment. Use a key provided by the IT helpdesk.',
    'webauthn.keys.error.failed':
      'The key could not be registered (operation cancelled, PIN not entered or time-out). Start again.',
    'webauthn.keys.error.name': 'Give the key a name (at most 64 characters).',
    'webauthn.keys.login_required':
      'First sign in to an application of the establishment through Passerelle, then come back to this page.',
    'error.invalid_form': 'The form is incomplete or invalid.',
    'error.invalid_characters':
      'The request contains invalid characters (a NUL character or an invalid encoding). Check the link or start again from the application.',
    'error.csrf': 'The page expired or the request did not come from Passerelle. Start signing in again.',
    'psc.refused.link_inactive':
      'Pro Santé Connect cannot identify you: your RPPS registration is no longer active. Contact the human resources department or the IT team of the establishment.',
    'psc.refused.link_conflict':
      'Pro Santé Connect cannot identify you for now: the link between your account and your national identity is being checked. Contact the IT team of the establishment.',
    'psc.refused.not_member':
      'Pro Santé Connect cannot identify you for this establishment: your account does not belong to it. Go through the establishment where you work, or contact its IT team.',
    'psc.back_to_application': 'Back to the application',
    'error.interaction_expired': 'Your sign-in request expired. Go back to the application and start again.',
    'error.title': 'Something went wrong',
    'error.reference': 'Request reference',
    'error.back': 'Back to the home page',
    'logout.title': 'Sign out',
    'logout.lead': 'Do you want to sign out of Passerelle?',
    'logout.confirm': 'Sign out',
    'logout.cancel': 'Stay signed in',
    'logout.psc': 'You signed in with Pro Santé Connect: you will be signed out of Pro Santé Connect too.',
    'logout.done': 'You are signed out.',
    'home.title': 'Passerelle',
    'home.lead': 'OpenID Connect identity provider of the establishment.',
    'home.try': 'Try a sign-in',
    'home.discovery': 'OpenID Connect discovery document',
    'home.demo_credentials': 'Demo account: username “{username}”, password “{password}”.',
    'demo.result.title': 'Signed in',
    'demo.result.lead': 'The demo application received and verified this ID token:',
    'demo.result.userinfo': 'Userinfo endpoint response:',
    'demo.result.logout': 'Sign out',
    'demo.result.again': 'Start again',
    'lang.switch': 'Français',
    ...portalMessages.en,
    ...consoleMessages.en,
    ...portalSecurityMessages.en,
    ...consolePeopleMessages.en,
    ...consoleRecordsMessages.en,
    ...errorMessages.en,
    ...asMessages('method', LABELS.method, 'en'),
  },
} as const;

export type Locale = keyof typeof messages;
export type MessageId = keyof (typeof messages)['fr'];
export const LOCALES: readonly Locale[] = ['fr', 'en'];

/** Whom to call, as it reads after « Contactez » / "Contact": the configured `ui.supportContact`, or a default. */
export function supportContact(configured: string | undefined, locale: Locale): string {
  return configured ?? messages[locale]['support.default'];
}

export type Translate = (id: MessageId, params?: Record<string, string | number>) => string;

export function translator(locale: Locale): Translate {
  const table = messages[locale];
  return (id, params) =>
    table[id].replace(/\{(\w+)\}/g, (match, name: string) =>
      params?.[name] === undefined ? match : String(params[name]),
    );
}

/**
 * Picks the locale from ui_locales (space-separated; the raw request parameter, anything but a
 * string is ignored), then Accept-Language, then the default.
 */
export function negotiateLocale(
  uiLocales: unknown,
  acceptLanguage: string | undefined,
  fallback: Locale,
): Locale {
  const candidates = [
    ...(typeof uiLocales === 'string' ? uiLocales.split(/\s+/) : []),
    ...(acceptLanguage ?? '')
      .split(',')
      .map((part) => part.split(';')[0] ?? '')
      .map((tag) => tag.trim()),
  ];
  for (const tag of candidates) {
    const base = tag.toLowerCase().split('-')[0];
    if (base && (LOCALES as readonly string[]).includes(base)) return base as Locale;
  }
  return fallback;
}
