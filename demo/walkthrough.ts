import type { Server } from 'node:http';
import type { Passerelle } from '../src/app.ts';
import { DEMO_ACCOUNT } from '../src/demo/seed.ts';
import type { PscSimulator } from '../test/simulators/psc/server.ts';
import type { ClientApp, ReceivedLogin } from './client-app.ts';
import { DEMO_ESTABLISHMENT, type DemoUrls } from './config.ts';
import { escapeHtml, jsonBlock, page } from './html.ts';
import { listen } from './listen.ts';

/**
 * The walkthrough page: what runs where, the three steps, and panels read at each request from the
 * parts running in this process (the simulator's pairings and events, what the stand-ins received,
 * Passerelle's audit trail). No script: a reload refreshes the panels.
 */

export interface WalkthroughSources {
  urls: DemoUrls & { annuaire: string };
  passerelle: Passerelle;
  psc: PscSimulator;
  dpi: ClientApp;
  drimbox: ClientApp;
}

const AUDIT_ROWS = 25;
const PSC_EVENTS = 8;

const cell = (value: unknown) =>
  `<td>${escapeHtml(value === null || value === undefined ? '' : Array.isArray(value) ? value.join(' ') : String(value))}</td>`;
const time = (at: Date) => at.toISOString().slice(11, 19);

function intro(urls: WalkthroughSources['urls']): string {
  const row = (name: string, english: string, url: string, role: string) =>
    `<tr><td><strong>${escapeHtml(name)}</strong><br><span class="en">${escapeHtml(english)}</span></td>
<td><a href="${escapeHtml(url)}">${escapeHtml(url)}</a></td><td>${role}</td></tr>`;
  return `<section id="parts"><h2>Ce qui tourne</h2><p class="en">What runs (all on this machine)</p>
<table>
${row('DPI', 'Electronic patient record (stand-in)', urls.dpi, "Application de l'établissement, cliente OpenID Connect de Passerelle")}
${row('DRIMBOX', 'External service (stand-in)', urls.drimbox, 'Service externe, client de Pro Santé Connect')}
${row('Passerelle', 'The identity provider of the establishment', urls.passerelle, `Fournisseur d'identité de « ${escapeHtml(DEMO_ESTABLISHMENT.name)} », FI habilité pour PSC`)}
${row('Pro Santé Connect', 'PSC simulator', urls.pscIssuer, `Délègue l'authentification à Passerelle (alias <code>${escapeHtml(DEMO_ESTABLISHMENT.pscAlias)}</code>, tid <code>${escapeHtml(DEMO_ESTABLISHMENT.tid)}</code>)`)}
${row('Annuaire Santé', 'Health directory simulator (FHIR)', urls.annuaire, 'Vérifie le lien RPPS du compte de démonstration')}
</table>
<p>Compte de démonstration : identifiant <code>${escapeHtml(DEMO_ACCOUNT.username)}</code>, mot de passe
<code>${escapeHtml(DEMO_ACCOUNT.password)}</code> (${escapeHtml(DEMO_ACCOUNT.displayName)}).</p>
<p class="en">Demo account: username and password above.</p>
</section>`;
}

function steps(urls: DemoUrls): string {
  return `<section id="steps"><h2>Le parcours</h2><p class="en">The walkthrough</p>
<h3>1. Se connecter au DPI avec une clé FIDO2</h3>
<p class="en">Sign in to the DPI with a FIDO2 security key.</p>
<ol>
<li>Ouvrez le <a href="${escapeHtml(urls.dpi)}">DPI</a> et choisissez « Se connecter ». Passerelle demande
l'identifiant puis le mot de passe du compte de démonstration (la première fois, aucune clé n'est encore
enregistrée).</li>
<li>Sur le DPI, suivez « Enregistrer une clé FIDO2 » : la page de Passerelle enregistre une clé, sans code
d'enrôlement puisque la démonstration autorise l'enrôlement après une connexion par mot de passe. La clé
peut être l'authentificateur du navigateur ou du système (Windows Hello, Touch ID, un téléphone), une clé
de sécurité USB/NFC, ou un authentificateur logiciel (Chrome : outils de développement → WebAuthn →
authentificateur virtuel).</li>
<li>De retour sur le DPI, choisissez « Se connecter avec une clé FIDO2 » : Passerelle ne demande que la clé
(montée en niveau). Le DPI affiche <code>acr</code> <code>urn:passerelle:loa:high</code> et
<code>amr</code> <code>hwk</code>, <code>mfa</code>, <code>pin</code> (et <code>pwd</code>, le mot de
passe de la même session).</li>
</ol>
<p class="en">Open the DPI, sign in with the demo password, enrol a key (self-enrolment is allowed in the demo
after a password login; the browser's own authenticator or a software one will do), then sign in with the key:
Passerelle asks only for the key, and the DPI shows the high level.</p>
<h3>2. Ouvrir DRIMBOX : Pro Santé Connect délègue à Passerelle</h3>
<p class="en">Open DRIMBOX: Pro Santé Connect delegates the authentication to Passerelle.</p>
<ol>
<li>Ouvrez <a href="${escapeHtml(urls.drimbox)}">DRIMBOX</a> et choisissez « Se connecter avec Pro Santé
Connect ». DRIMBOX envoie le navigateur à PSC avec <code>kc_idp_hint=${escapeHtml(DEMO_ESTABLISHMENT.pscAlias)}</code>
et <code>acr_values=eidas1</code> ; PSC redirige aussitôt vers Passerelle.</li>
<li>Passerelle reconnaît la session ouverte à l'étape 1 : pas de nouvelle saisie. Si cette session ne
reposait que sur le mot de passe, Passerelle demanderait la clé : PSC n'accepte qu'une authentification à
deux facteurs résistante à l'hameçonnage (clé FIDO2 avec vérification de l'utilisateur, ou carte CPS).</li>
<li>La première fois, PSC affiche l'<strong>appairage</strong> : il lie le compte local (<code>oid</code>)
à une identité nationale prouvée une fois par carte CPS ou e-CPS (simulées ici : choisissez
« ${escapeHtml(DEMO_ACCOUNT.givenName)} ${escapeHtml(DEMO_ACCOUNT.familyName)} »). DRIMBOX affiche alors
l'identité nationale reçue de PSC.</li>
<li>Déconnectez-vous de DRIMBOX : PSC ferme sa session et passe par la page de déconnexion de Passerelle
(la déconnexion se propage à l'établissement), puis revient à DRIMBOX. Reconnectez-vous : Passerelle
redemande la clé, et PSC ne montre plus que « Confirmer ».</li>
<li>Variante : sur la page de connexion de Passerelle, « Pro Santé Connect (e-CPS, carte CPS) » connecte
par PSC (e-CPS simulée) le compte dont l'identité nationale est liée ; une identité inconnue ne crée aucun
compte : Passerelle demande de prouver son compte, puis lie l'identité (source <code>psc-login</code>).</li>
</ol>
<p class="en">DRIMBOX sends you to PSC with the establishment's hint; PSC delegates to Passerelle, whose session
is used without a second prompt (a password-only session would be stepped up to the key: PSC accepts only
two-factor, phishing-resistant authentication). PSC asks for the pairing the first time, "Confirmer" later.
Signing out of DRIMBOX ends the PSC session and, through Passerelle's logout page, Passerelle's session.
Passerelle's login page also offers the login through PSC (simulated e-CPS): an unknown national identity
creates no account; the user proves their account and the identity is linked.</p>
<h3>3. Voir l'appairage, les jetons et la trace</h3>
<p class="en">See the pairing, the tokens each party received, and Passerelle's audit trail: the panels
below (reload the page to refresh them).</p>
</section>`;
}

function pairingsPanel(psc: PscSimulator): string {
  const names = new Map(psc.professionals.map((p) => [p.idNatPs, `${p.givenName} ${p.familyName}`]));
  const rows = psc.pairings
    .all()
    .map(
      (p) =>
        `<tr>${cell(p.alias)}${cell(p.tid)}${cell(p.oid)}${cell(`${p.idNatPs} (${names.get(p.idNatPs) ?? '?'})`)}${cell(
          p.pairedAt.toISOString(),
        )}${cell(p.confirmations.length)}</tr>`,
    )
    .join('\n');
  return `<section id="pairings"><h2>Appairages (Pro Santé Connect)</h2>
<p class="en">Pairings held by the PSC simulator: local account (oid) of the establishment → national identity.</p>
${
  rows
    ? `<table><tr><th>alias</th><th>tid</th><th>oid (compte local)</th><th>identité nationale</th><th>appairé le</th><th>confirmations</th></tr>
${rows}</table>`
    : '<p>Aucun appairage pour le moment (étape 2). <span class="en">No pairing yet.</span></p>'
}
</section>`;
}

function latestClaims(id: string, login: ReceivedLogin | undefined): string {
  if (!login) return '<p>Rien reçu pour le moment. <span class="en">Nothing received yet.</span></p>';
  return `<p>Reçu à ${escapeHtml(time(login.at))} (UTC) — jeton d'identité, puis userinfo.</p>
${jsonBlock(`${id}-id-token`, login.idToken)}
${jsonBlock(`${id}-userinfo`, login.userinfo)}`;
}

function pscEvents(psc: PscSimulator): string {
  const events = psc.events.slice(-PSC_EVENTS).reverse();
  if (!events.length) return '<p>Rien reçu pour le moment. <span class="en">Nothing received yet.</span></p>';
  return events
    .map((event) => {
      const { at, kind, ...rest } = event;
      return `<div data-kind="${escapeHtml(kind)}"><p><strong>${escapeHtml(kind)}</strong> à ${escapeHtml(
        time(at),
      )} (UTC)</p>${jsonBlock(undefined, rest)}</div>`;
    })
    .join('\n');
}

function tokensPanel(sources: WalkthroughSources): string {
  return `<section id="tokens"><h2>Ce que chaque partie a reçu</h2>
<p class="en">The claims each party received (decoded; token values are never shown).</p>
<h3>Le DPI, de Passerelle</h3><p class="en">The DPI, from Passerelle (latest sign-in)</p>
${latestClaims('dpi', sources.dpi.received[0])}
<h3>Pro Santé Connect, de Passerelle</h3>
<p class="en">PSC, from Passerelle: the ID token claims it checked (tid, oid, amr, acr, auth_time) and what followed, newest first</p>
<div id="psc-events">${pscEvents(sources.psc)}</div>
<h3>DRIMBOX, de Pro Santé Connect</h3><p class="en">DRIMBOX, from PSC (latest sign-in)</p>
${latestClaims('drimbox', sources.drimbox.received[0])}
</section>`;
}

async function auditPanel(passerelle: Passerelle): Promise<string> {
  const { database, accounts } = passerelle.services;
  // The trail is written by src/audit/trail.ts; read here for display only.
  const rows = await database.db
    .selectFrom('audit_event')
    .select(['seq', 'at', 'type', 'outcome', 'account_id', 'client_id', 'method', 'amr', 'acr', 'reason'])
    .orderBy('seq', 'desc')
    .limit(AUDIT_ROWS)
    .execute();
  const usernames = new Map<string, string>();
  for (const id of new Set(rows.flatMap((r) => (r.account_id ? [r.account_id] : [])))) {
    usernames.set(id, (await accounts.findById(id))?.username ?? id);
  }
  const body = rows
    .map(
      (r) =>
        `<tr>${cell(r.seq)}${cell(time(new Date(r.at)))}${cell(r.type)}${cell(r.outcome)}${cell(
          r.account_id ? usernames.get(r.account_id) : '',
        )}${cell(r.client_id)}${cell(r.method)}${cell(r.amr)}${cell(r.acr)}${cell(r.reason)}</tr>`,
    )
    .join('\n');
  return `<section id="audit"><h2>Trace d'audit de Passerelle</h2>
<p class="en">Passerelle's audit trail, the ${AUDIT_ROWS} latest events (read from its database).</p>
<table><tr><th>n°</th><th>heure (UTC)</th><th>événement</th><th>résultat</th><th>compte</th><th>client</th><th>méthode</th><th>amr</th><th>acr</th><th>motif</th></tr>
${body}</table>
</section>`;
}

export async function startWalkthrough(sources: WalkthroughSources, port: number): Promise<Server> {
  return listen(
    (req, res) => {
      if (req.method !== 'GET' || (req.url !== '/' && !req.url?.startsWith('/?'))) {
        res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('Not found');
        return;
      }
      auditPanel(sources.passerelle)
        .then((audit) => {
          const html = page({
            title: 'Passerelle — démonstration',
            english: 'Passerelle — demo: a walkthrough of the delegated authentication to Pro Santé Connect',
            accent: '#000091',
            body: [
              intro(sources.urls),
              steps(sources.urls),
              pairingsPanel(sources.psc),
              tokensPanel(sources),
              audit,
            ].join('\n'),
          });
          res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
          res.end(html);
        })
        .catch((err: unknown) => {
          res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
          res.end(`walkthrough: ${err instanceof Error ? err.message : String(err)}`);
        });
    },
    port,
    'walkthrough',
  );
}
