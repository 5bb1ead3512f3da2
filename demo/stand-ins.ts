import { PROFESSIONS } from '../test/simulators/annuaire/fixtures.ts';
import { type ClientApp, type ReceivedLogin, startClientApp } from './client-app.ts';
import { DEMO_CLIENTS, DEMO_ESTABLISHMENT, type DemoPorts, demoUrls } from './config.ts';
import { escapeHtml } from './html.ts';

/** The two applications of the demo: the DPI (client of Passerelle) and DRIMBOX (client of PSC). */

const text = (value: unknown) => escapeHtml(Array.isArray(value) ? value.join(', ') : String(value ?? '—'));

function facts(rows: [string, string, unknown][]): string {
  return `<dl>${rows
    .map(
      ([label, english, value]) =>
        `<dt>${escapeHtml(label)} <span class="en">${escapeHtml(english)}</span></dt><dd>${text(value)}</dd>`,
    )
    .join('\n')}</dl>`;
}

/** The level Passerelle asks for a security key (its default levels). */
const KEY_LEVEL = 'urn:passerelle:loa:high';

export function startDpi(ports: DemoPorts): Promise<ClientApp> {
  const urls = demoUrls(ports);
  return startClientApp({
    id: 'dpi',
    title: 'Dossier patient informatisé — démonstration',
    english: 'Electronic patient record — demo: an application of the establishment, client of Passerelle',
    accent: '#18753c',
    intro: `<p>Une application de l'établissement, cliente OpenID Connect de
<a href="${escapeHtml(urls.passerelle)}">Passerelle</a> (son fournisseur d'identité).</p>`,
    port: ports.dpi,
    origin: urls.dpi,
    issuer: urls.passerelle,
    clientId: DEMO_CLIENTS.dpi.clientId,
    clientSecret: DEMO_CLIENTS.dpi.secret,
    scope: 'openid profile email rpps',
    signIns: [
      { name: 'default', label: 'Se connecter', params: {} },
      { name: 'key', label: 'Se connecter avec une clé FIDO2', params: { acr_values: KEY_LEVEL } },
    ],
    summary: ({ idToken, userinfo }: ReceivedLogin) =>
      facts([
        ['Utilisateur', 'User', userinfo.name ?? idToken.sub],
        ['Identifiant', 'Username', userinfo.preferred_username],
        ['Compte (sub)', 'Account', idToken.sub],
        ['Niveau (acr)', 'Level', idToken.acr],
        ['Méthodes (amr)', 'Methods', idToken.amr],
        ['Authentifié à', 'Authenticated at', new Date(Number(idToken.auth_time) * 1000).toISOString()],
        ['Identité nationale vérifiée', 'Verified national id', userinfo.idnat_ps],
      ]),
    signedInLinks: `<p><a class="button secondary" href="${escapeHtml(urls.passerelle)}/account/security-keys">Enregistrer une clé FIDO2</a>
<span class="en">Enrol a security key (a Passerelle page)</span></p>`,
    walkthroughUrl: urls.walkthrough,
  });
}

export function startDrimbox(ports: DemoPorts): Promise<ClientApp> {
  const urls = demoUrls(ports);
  return startClientApp({
    id: 'drimbox',
    title: 'DRIMBOX — démonstration',
    english: 'DRIMBOX — demo: an external service, client of Pro Santé Connect',
    accent: '#6a3ea1',
    intro: `<p>Un service externe à l'établissement, client de Pro Santé Connect. Il envoie
<code>kc_idp_hint=${escapeHtml(DEMO_ESTABLISHMENT.pscAlias)}</code> : PSC délègue l'authentification à
Passerelle.</p>`,
    port: ports.drimbox,
    origin: urls.drimbox,
    issuer: urls.pscIssuer,
    clientId: DEMO_CLIENTS.drimbox.clientId,
    clientSecret: DEMO_CLIENTS.drimbox.secret,
    scope: 'openid scope_all',
    signIns: [
      {
        name: 'psc',
        label: 'Se connecter avec Pro Santé Connect',
        params: { kc_idp_hint: DEMO_ESTABLISHMENT.pscAlias, acr_values: 'eidas1' },
      },
    ],
    summary: ({ idToken, userinfo }: ReceivedLogin) => {
      const claims = { ...idToken, ...userinfo };
      const exercise = (claims.SubjectRefPro as { exercices?: { codeProfession?: string }[] } | undefined)
        ?.exercices?.[0];
      const code = exercise?.codeProfession;
      const label = PROFESSIONS.find((p) => p.code === code)?.label;
      return facts([
        ['Identité nationale (SubjectNameID)', 'National id', claims.SubjectNameID],
        ['Prénom', 'Given name', claims.given_name],
        ['Nom', 'Family name', claims.family_name],
        [
          'Profession (SubjectRefPro)',
          'Profession',
          code ? `${code}${label ? ` — ${label}` : ''}` : undefined,
        ],
        ['Structure', 'Organisation', claims.SubjectOrganization],
        ['Niveau (acr)', 'Level', claims.acr],
        ['Mode (authMode)', 'Authentication mode', claims.authMode],
      ]);
    },
    walkthroughUrl: urls.walkthrough,
  });
}
