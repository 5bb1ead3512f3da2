/** The staff portal's text (src/portal/), French first; merged into messages.ts. */
export const portalMessages = {
  fr: {
    'portal.title': 'Mes applications',
    'portal.lead': 'Bonjour {name}. Ouvrez une application de l’établissement sans vous reconnecter.',
    'portal.none': 'Aucune application n’est proposée pour votre compte. Contactez le support informatique.',
    'portal.nav.apps': 'Mes applications',
    'portal.nav.security': 'Ma sécurité',
    'portal.nav.console': 'Console d’administration',
    'portal.signout': 'Se déconnecter',
    'portal.signin_cancelled': 'La connexion n’a pas abouti. Vous pouvez réessayer.',
    'portal.signin_again': 'Se connecter',
  },
  en: {
    'portal.title': 'My applications',
    'portal.lead': 'Hello {name}. Open an application of the establishment without signing in again.',
    'portal.none': 'No application is offered for your account. Contact the IT support.',
    'portal.nav.apps': 'My applications',
    'portal.nav.security': 'My security',
    'portal.nav.console': 'Administration console',
    'portal.signout': 'Sign out',
    'portal.signin_cancelled': 'The sign-in did not complete. You may try again.',
    'portal.signin_again': 'Sign in',
  },
} as const;
