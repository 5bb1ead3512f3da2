import { type EstablishmentMembers, sameDn } from '../accounts/establishments.ts';
import type { ClientMetadata } from '../oidc/clients.ts';

/** An application on the staff portal, with the URL that opens it. */
export interface PortalApp {
  clientId: string;
  name: string;
  /** OpenID Connect third-party-initiated login (`initiate_login_uri?iss=…`), or the application's URL. */
  launchUrl: string;
}

/** The launch URL: third-party-initiated login when the client registered one (OIDC Core §4), else client_uri. */
export function launchUrl(issuer: string, metadata: ClientMetadata): string | undefined {
  const initiate = metadata.initiate_login_uri;
  if (typeof initiate === 'string') {
    const url = new URL(initiate);
    url.searchParams.set('iss', issuer);
    if (typeof metadata.client_uri === 'string') url.searchParams.set('target_link_uri', metadata.client_uri);
    return url.toString();
  }
  return typeof metadata.client_uri === 'string' ? metadata.client_uri : undefined;
}

/**
 * The applications marked for the portal (`portal: true`) that this account may open: restricted, when
 * the client says so, to members of its establishments (`portal_establishments`) and of its directory
 * groups (`portal_groups`). An application without a launch URL is not listed.
 */
export async function portalApps(
  issuer: string,
  clients: readonly ClientMetadata[],
  account: { id: string; groups: readonly string[] },
  establishments: EstablishmentMembers,
): Promise<PortalApp[]> {
  const memberOf = new Set((await establishments.of(account.id)).map((m) => m.establishment.finess));
  const apps: PortalApp[] = [];
  for (const metadata of clients) {
    if (metadata.portal !== true) continue;
    const finess = (metadata.portal_establishments as string[] | undefined) ?? [];
    if (finess.length && !finess.some((f) => memberOf.has(f))) continue;
    const groups = (metadata.portal_groups as string[] | undefined) ?? [];
    if (groups.length && !groups.some((g) => account.groups.some((mine) => sameDn(g, mine)))) continue;
    const url = launchUrl(issuer, metadata);
    if (!url) continue;
    const name = typeof metadata.client_name === 'string' ? metadata.client_name : metadata.client_id;
    apps.push({ clientId: metadata.client_id, name, launchUrl: url });
  }
  return apps.sort((a, b) => a.name.localeCompare(b.name, 'fr'));
}
