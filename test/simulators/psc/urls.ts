/** The simulator's Keycloak paths, and the URLs of PSC that an establishment's FI registers. */

export const REALM_PATH = '/auth/realms/esante-wallet';
export const PROTOCOL = '/protocol/openid-connect';
/** Keycloak's back-channel logout endpoint for brokered identity providers (one for all FIs). */
export const BACKCHANNEL_LOGOUT_PATH = `${PROTOCOL}/logout/backchannel-logout`;

/** Keycloak's broker endpoint for the FI `alias`: PSC's redirect URI there. */
export function pscBrokerRedirectUri(issuer: string, alias: string): string {
  return `${issuer}/broker/${encodeURIComponent(alias)}/endpoint`;
}

/** Where the FI sends the browser back once PSC ended the FI session: PSC's `post_logout_redirect_uri`. */
export function pscBrokerLogoutResponseUri(issuer: string, alias: string): string {
  return `${pscBrokerRedirectUri(issuer, alias)}/logout_response`;
}

/** Where the FI sends its logout tokens: PSC's back-channel logout URI there. */
export function pscBackchannelLogoutUri(issuer: string): string {
  return `${issuer}${BACKCHANNEL_LOGOUT_PATH}`;
}
