import type { Professional } from '../annuaire/fixtures.ts';
import { identityLabel, type PsiIdentity, psiIdentityLabel } from './claims.ts';
import { PSC_CHECKS, type RefusalReason } from './federation.ts';

/** The simulator's pages, in French like PSC's. Every interpolated value is escaped. */

export function escapeHtml(value: string): string {
  return value.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string,
  );
}

function layout(title: string, body: string): string {
  return `<!doctype html>
<html lang="fr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} — Pro Santé Connect (simulateur)</title>
<style>
body{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;color:#1e1e1e}
header{border-bottom:3px solid #000091;margin-bottom:1.5rem}header p{color:#000091;font-weight:700}
section{border:1px solid #ddd;padding:1rem;margin-bottom:1rem}
button{background:#000091;color:#fff;border:0;padding:.5rem 1rem;cursor:pointer}
button.secondary{background:#fff;color:#000091;border:1px solid #000091}
select{max-width:100%}.error{border-color:#ce0500}code{background:#eee;padding:0 .2rem}
</style>
</head>
<body>
<header><p>Pro Santé Connect — simulateur de test</p></header>
<main>
<h1>${escapeHtml(title)}</h1>
${body}
</main>
</body>
</html>`;
}

function identitySelect(
  professionals: readonly Professional[],
  psiOnly: readonly PsiIdentity[] = [],
): string {
  const options = [
    ...professionals.map((p) => ({ value: p.idNatPs, label: identityLabel(p) })),
    ...psiOnly.map((i) => ({ value: i.psiId, label: psiIdentityLabel(i) })),
  ]
    .map((o) => `<option value="${escapeHtml(o.value)}">${escapeHtml(o.label)}</option>`)
    .join('');
  return `<label for="idNatPs">Identité nationale (simulée)</label>
<select id="idNatPs" name="idNatPs" required>${options}</select>`;
}

export interface EstablishmentLink {
  name: string;
  url: string;
}

/** The messages of PSC's login page after an FI error (Keycloak's French messages). */
export const LOGIN_MESSAGES = {
  /** `access_denied` from the FI (IBS `cancelled`). */
  accessDenied: 'Accès refusé.',
  /** Any other error from the FI (IBS `error`, `identityProviderUnexpectedErrorMessage`). */
  unexpected: "Erreur inattendue lors de l'authentification auprès du fournisseur d'identité.",
};

/**
 * Without `kc_idp_hint` (or after an FI error): the establishments ("Délégation") and the direct CPS / e-CPS
 * login (the RPPS professionals and the identities known to Pro Santé Identité only), with a message,
 * and a way back to the service (guessed: Keycloak themes vary).
 */
export function choicePage(
  establishments: readonly EstablishmentLink[],
  directAction: string,
  professionals: readonly Professional[],
  options: { message?: string; abortAction?: string; psiOnly?: readonly PsiIdentity[] } = {},
): string {
  const alert = options.message
    ? `<section class="error" role="alert"><p>${escapeHtml(options.message)}</p></section>\n`
    : '';
  const links = establishments.length
    ? `<ul>${establishments.map((e) => `<li><a href="${escapeHtml(e.url)}">${escapeHtml(e.name)}</a></li>`).join('')}</ul>`
    : '<p>Aucun établissement habilité.</p>';
  return layout(
    'Connexion',
    `${alert}<section>
<h2>Délégation</h2>
<p>Se connecter avec le compte de son établissement.</p>
${links}
</section>
<section>
<h2>Carte CPS ou e-CPS</h2>
<form method="post" action="${escapeHtml(directAction)}">
${identitySelect(professionals, options.psiOnly)}
<fieldset><legend>Moyen d'identification</legend>
<label><input type="radio" name="authMode" value="MOBILE" checked> e-CPS (application mobile)</label>
<label><input type="radio" name="authMode" value="CARD"> Carte CPS</label>
</fieldset>
<button type="submit">Valider</button>
</form>
</section>
${options.abortAction ? cancelForm(options.abortAction) : ''}`,
  );
}

function cancelForm(abortAction: string): string {
  return `<form method="post" action="${escapeHtml(abortAction)}"><button class="secondary" type="submit">Annuler</button></form>`;
}

/** First delegated login of a local account: prove the national identity once. */
export function pairingPage(
  establishment: string,
  oid: string,
  action: string,
  abortAction: string,
  professionals: readonly Professional[],
): string {
  return layout(
    'Appairage de votre compte',
    `<p>Première connexion depuis <strong>${escapeHtml(establishment)}</strong> avec le compte local
<code>${escapeHtml(oid)}</code>. Pour lier ce compte à votre identité nationale, authentifiez-vous une fois
avec votre carte CPS ou votre e-CPS.</p>
<form method="post" action="${escapeHtml(action)}">
${identitySelect(professionals)}
<button type="submit">Valider</button>
</form>
${cancelForm(abortAction)}`,
  );
}

/** Later delegated logins: the pairing exists, the user confirms (kept by PSC for shared workstations). */
export function confirmPage(
  establishment: string,
  professional: Professional,
  action: string,
  abortAction: string,
): string {
  return layout(
    'Confirmer la connexion',
    `<p>Vous vous connectez depuis <strong>${escapeHtml(establishment)}</strong> en tant que
<strong>${escapeHtml(identityLabel(professional))}</strong>.</p>
<form method="post" action="${escapeHtml(action)}"><button type="submit">Confirmer</button></form>
${cancelForm(abortAction)}`,
  );
}

const REFUSAL_MESSAGES: Record<RefusalReason, string> = {
  unknown_idp: "Cet établissement n'est pas connu de Pro Santé Connect.",
  fi_unavailable: "Le fournisseur d'identité de l'établissement est injoignable.",
  state_missing: "Paramètre d'état manquant dans la réponse du fournisseur d'identité.",
  state_unknown: 'Aucune connexion en cours ne correspond à cette réponse.',
  code_missing: "Ni code ni erreur dans la réponse du fournisseur d'identité.",
  token_error: "L'échange du code auprès du fournisseur d'identité a échoué.",
  access_token_missing: "Pas de jeton d'accès dans la réponse du fournisseur d'identité.",
  id_token_missing: "Pas de jeton d'identité dans la réponse du fournisseur d'identité.",
  malformed: "Le jeton d'identité de l'établissement est illisible.",
  bad_signature: "La signature du jeton d'identité de l'établissement est invalide.",
  token_expired: "Le jeton d'identité de l'établissement a expiré.",
  token_not_yet_valid: "Le jeton d'identité de l'établissement n'est pas encore valide.",
  aud_mismatch: "Le jeton d'identité n'est pas destiné à Pro Santé Connect.",
  azp_mismatch: "Le jeton d'identité a été émis pour un autre client.",
  iss_mismatch: "Le jeton d'identité n'a pas été émis par l'établissement attendu.",
  nonce_mismatch: "Le jeton d'identité ne correspond pas à cette connexion.",
  auth_time_expired: "L'établissement n'a pas authentifié à nouveau l'utilisateur (max_age).",
  userinfo_error: "L'appel userinfo auprès du fournisseur d'identité a échoué.",
  userinfo_sub_mismatch: "La réponse userinfo ne concerne pas l'utilisateur du jeton d'identité.",
  claim_filter: "Le jeton d'identité ne satisfait pas le filtre de l'établissement.",
  tid_missing: "L'identifiant de l'établissement (tid) est absent du jeton d'identité.",
  tid_not_allowed: "Cet établissement (tid) n'est pas habilité à la délégation d'authentification.",
  oid_missing: "L'identifiant du compte local (oid) est absent du jeton d'identité.",
  auth_time_missing: "L'heure de l'authentification (auth_time) est absente du jeton d'identité.",
  auth_too_old: 'Votre authentification est trop ancienne : reconnectez-vous auprès de votre établissement.',
  amr_missing: "Les moyens d'authentification utilisés (amr) ne sont pas indiqués.",
  amr_not_allowed: "Le moyen d'authentification utilisé n'est pas accepté par Pro Santé Connect.",
  acr_not_allowed: "Le niveau d'authentification (acr) n'est pas accepté par Pro Santé Connect.",
};

/**
 * A refused delegated login: PSC's own checks ("Connexion refusée", 403, guessed), or Keycloak's error
 * page ("Erreur inattendue…", 502 or 400) with the detail in the code only (Keycloak logs it).
 */
export function refusalPage(reason: RefusalReason, abortAction: string | undefined): string {
  const back = abortAction
    ? `<form method="post" action="${escapeHtml(abortAction)}"><button type="submit">Retour au service</button></form>`
    : '';
  const pscCheck = PSC_CHECKS.includes(reason);
  return layout(
    pscCheck ? 'Connexion refusée' : 'Erreur',
    `<section class="error">
${pscCheck ? '' : `<p>${escapeHtml(LOGIN_MESSAGES.unexpected)}</p>\n`}<p>${escapeHtml(REFUSAL_MESSAGES[reason])}</p>
<p>Code : <code>${escapeHtml(reason)}</code></p>
</section>
${back}`,
  );
}

export function messagePage(title: string, message: string): string {
  return layout(title, `<p>${escapeHtml(message)}</p>`);
}

export function logoutPage(form: string): string {
  return layout(
    'Déconnexion',
    `<p>Voulez-vous vous déconnecter de Pro Santé Connect ?</p>
${form}
<button type="submit" form="op.logoutForm" name="logout" value="yes">Se déconnecter</button>
<button class="secondary" type="submit" form="op.logoutForm">Rester connecté</button>`,
  );
}
