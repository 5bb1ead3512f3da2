import type { AccountStore } from '../accounts/store.ts';
import type { ClientRegistry, MetadataValidator } from '../oidc/clients.ts';

/** Public demo credentials, shown on the home page in demo mode only. */
export const DEMO_ACCOUNT = {
  username: 'demo',
  password: 'Passerelle-demo-2026',
  displayName: 'Camille Démo',
  givenName: 'Camille',
  familyName: 'Démo',
  email: 'camille.demo@hopital.example',
} as const;

export const DEMO_CLIENT_ID = 'passerelle-demo';

export function demoRedirectUri(issuer: string): string {
  return `${issuer}/demo/callback`;
}

/** Creates the demo account and the demo relying party if missing. Idempotent. */
export async function seedDemo(
  issuer: string,
  accounts: AccountStore,
  clients: ClientRegistry,
  validate: MetadataValidator,
): Promise<void> {
  const existing = await accounts.findByUsername(DEMO_ACCOUNT.username);
  if (!existing) {
    const { password, ...profile } = DEMO_ACCOUNT;
    await accounts.create({ ...profile, isDemo: true }, password);
  } else if (existing.isDemo && existing.disabledAt) {
    await accounts.setDisabled(existing.id, false);
  }
  await clients.save(
    {
      client_id: DEMO_CLIENT_ID,
      client_name: 'Application de démonstration',
      redirect_uris: [demoRedirectUri(issuer)],
      post_logout_redirect_uris: [`${issuer}/`],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: 'openid profile email offline_access rpps',
      id_token_signed_response_alg: 'ES256',
    },
    'demo',
    validate,
  );
}
