/** The administration console's text (src/admin/), French first; merged into messages.ts. */
export const consoleMessages = {
  fr: {
    'console.title': 'Console d’administration',
    'console.lead': 'Connecté en tant que {name} ({roles}).',
    'console.denied': 'Votre compte n’a pas de rôle qui donne accès à cette page de la console.',
    'console.no_role':
      'Votre compte n’a pas accès à la console d’administration : aucun rôle ne lui est attribué. Si vous devez l’utiliser, demandez un rôle (administrateur, support ou auditeur) à un administrateur de Passerelle.',
    'console.no_level':
      'Aucun niveau d’authentification à deux facteurs résistant à l’hameçonnage n’est configuré : la console est indisponible.',
    'console.role.administrator': 'administrateur',
    'console.role.helpdesk': 'support',
    'console.role.auditor': 'auditeur',
    'console.nav.home': 'Accueil de la console',
    'console.nav.accounts': 'Comptes',
    'console.nav.clients': 'Applications',
    'console.nav.rpps': 'RPPS',
    'console.nav.establishments': 'Établissements',
    'console.nav.audit': 'Traçabilité',
    'console.nav.health': 'État du service',
  },
  en: {
    'console.title': 'Administration console',
    'console.lead': 'Signed in as {name} ({roles}).',
    'console.denied': 'Your account has no role that gives access to this page of the console.',
    'console.no_role':
      'Your account has no access to the administration console: it has no role. If you need it, ask an administrator of Passerelle for a role (administrator, helpdesk or auditor).',
    'console.no_level':
      'No phishing-resistant two-factor authentication level is configured: the console is unavailable.',
    'console.role.administrator': 'administrator',
    'console.role.helpdesk': 'helpdesk',
    'console.role.auditor': 'auditor',
    'console.nav.home': 'Console home',
    'console.nav.accounts': 'Accounts',
    'console.nav.clients': 'Applications',
    'console.nav.rpps': 'RPPS',
    'console.nav.establishments': 'Establishments',
    'console.nav.audit': 'Audit trail',
    'console.nav.health': 'Service health',
  },
} as const;
