/**
 * Error pages of the protocol engine and of unknown addresses (src/http/error-pages.ts), and the
 * console's refusals of an application's registration (src/admin/client-form-errors.ts), French first.
 */
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
    'console.client.error.redirect_uris_missing': '{field} : indiquez au moins une adresse.',
    'console.client.error.redirect_uri_invalid':
      '{field}, ligne {line} : « {uri} » n’est pas une adresse valide (par exemple https://application.hopital.fr/callback).',
    'console.client.error.redirect_uri_refused':
      '{field}, ligne {line} : « {uri} » n’est pas acceptée (https, ou http sur cette machine seulement, ou le schéma propre d’une application installée ; sans caractère générique).',
    'console.client.error.client_id':
      '{field} : lettres, chiffres et les signes . _ ~ - seulement, 128 caractères au plus.',
    'console.client.error.client_name': '{field} : 200 caractères au plus.',
    'console.client.error.auth_method': '{field} : choisissez une méthode dans la liste.',
    'console.client.error.pkce_public':
      '{field} : une application publique (sans secret) doit toujours utiliser PKCE.',
    'console.client.error.finess': '{field} : un numéro FINESS de 9 chiffres.',
    'console.client.error.refused': '{field} : valeur refusée.',
    'console.client.error.engine_field':
      '{field} : absente ou non acceptée par la vérification des applications OpenID Connect.',
    'console.client.error.engine':
      'La vérification des applications OpenID Connect refuse cette déclaration : contrôlez les adresses et la méthode d’authentification.',
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
    'console.client.error.redirect_uris_missing': '{field}: give at least one address.',
    'console.client.error.redirect_uri_invalid':
      '{field}, line {line}: “{uri}” is not a valid address (for example https://app.hospital.example/callback).',
    'console.client.error.redirect_uri_refused':
      '{field}, line {line}: “{uri}” is not accepted (https, or http on this machine only, or an installed application’s own scheme; no wildcard).',
    'console.client.error.client_id': '{field}: letters, digits and . _ ~ - only, at most 128 characters.',
    'console.client.error.client_name': '{field}: at most 200 characters.',
    'console.client.error.auth_method': '{field}: choose a method from the list.',
    'console.client.error.pkce_public': '{field}: a public application (without a secret) always uses PKCE.',
    'console.client.error.finess': '{field}: a FINESS number of 9 digits.',
    'console.client.error.refused': '{field}: value refused.',
    'console.client.error.engine_field':
      '{field}: missing or not accepted by the OpenID Connect application check.',
    'console.client.error.engine':
      'The OpenID Connect application check refuses this registration: check the addresses and the authentication method.',
  },
} as const;
