/** Error pages of the protocol engine and of unknown addresses (src/http/error-pages.ts), French first. */
export const errorMessages = {
  fr: {
    'error.engine.invalid_client':
      'L’application qui vous a dirigé ici n’est pas connue de Passerelle : elle n’est pas déclarée, ou elle a envoyé un identifiant erroné.',
    'error.engine.invalid_redirect_uri':
      'L’application a demandé à recevoir la réponse à une adresse qui n’a pas été déclarée pour elle : par sécurité, la connexion s’arrête ici.',
    'error.engine.invalid_request':
      'La demande envoyée par l’application est incomplète ou invalide : Passerelle ne peut pas y donner suite.',
    'error.engine.unsupported_request':
      'L’application a fait une demande que Passerelle n’accepte pas pour elle (type de réponse, droits d’accès ou paramètres non autorisés).',
    'error.engine.access_denied': 'La connexion a été refusée ou annulée.',
    'error.engine.other': 'La demande de l’application n’a pas pu aboutir.',
    'error.engine.advice.contact':
      'Retournez à l’application et réessayez. Si le problème persiste, contactez le support informatique en indiquant la référence de la requête ci-dessous.',
    'error.engine.advice.restart': 'Retournez à l’application et recommencez la connexion.',
    'error.not_found.title': 'Page introuvable',
    'error.not_found': 'Cette adresse ne correspond à aucune page de Passerelle.',
    'error.not_found.advice':
      'Vérifiez l’adresse saisie, ou repartez de l’accueil. Si un lien vous a mené ici, signalez-le au support informatique avec la référence de la requête ci-dessous.',
  },
  en: {
    'error.engine.invalid_client':
      'The application that sent you here is not known to Passerelle: it is not registered, or it sent a wrong identifier.',
    'error.engine.invalid_redirect_uri':
      'The application asked for the answer at an address that was not registered for it: for your security, the sign-in stops here.',
    'error.engine.invalid_request':
      'The request sent by the application is incomplete or invalid: Passerelle cannot act on it.',
    'error.engine.unsupported_request':
      'The application made a request that Passerelle does not accept from it (response type, access rights or parameters not allowed).',
    'error.engine.access_denied': 'The sign-in was refused or cancelled.',
    'error.engine.other': 'The application’s request could not be completed.',
    'error.engine.advice.contact':
      'Go back to the application and try again. If the problem persists, contact the IT support and give the request reference below.',
    'error.engine.advice.restart': 'Go back to the application and sign in again.',
    'error.not_found.title': 'Page not found',
    'error.not_found': 'This address matches no page of Passerelle.',
    'error.not_found.advice':
      'Check the address you typed, or start again from the home page. If a link brought you here, report it to the IT support with the request reference below.',
  },
} as const;
