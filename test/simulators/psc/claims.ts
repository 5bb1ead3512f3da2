import type { Activity, Professional } from '../annuaire/fixtures.ts';

/**
 * The claims Pro Santé Connect releases about a health professional, shaped like the userinfo responses
 * published in ANS samples and in projects integrating PSC (field names and value formats as seen there,
 * e.g. `nomDexercice`, `codeSecteurDactivite`, `SA07^1.2.250.1.71.4.2.4`). Values come from the fixtures.
 */

/**
 * PSC's `sub` is Keycloak's id of a user held by a user-storage provider: `f:<provider id>:<username>`,
 * the username being the idNatPS. Real PSC uses its own provider id; this one is the simulator's.
 */
const FEDERATION_PROVIDER_ID = '5e1d8c3a-0f4b-4a57-9c2e-7d1b6a3f9e20';

export function pscSubject(idNatPs: string): string {
  return `f:${FEDERATION_PROVIDER_ID}:${idNatPs}`;
}

/** `authMode` of a direct login: a CPx card (`CARD`, seen in PSC responses) or the e-CPS app (`MOBILE`). */
export type DirectAuthMode = 'CARD' | 'MOBILE';

/** OIDs PSC appends to coded values (`code^OID`), as seen in its responses. */
const SECTOR_OID = '1.2.250.1.71.4.2.4';
const PROFESSION_OID = '1.2.250.1.213.1.1.5.5';
/** The only `Palier_Authentification` value seen in published PSC responses. */
const AUTHENTICATION_LEVEL = 'APPPRIP3^1.2.250.1.213.1.5.1.1.1';

/** Address fields of an activity, always present in PSC responses; the fixtures have no addresses. */
const EMPTY_ADDRESS = {
  complementDestinataire: '',
  complementPointGeographique: '',
  numeroVoie: '',
  indiceRepetitionVoie: '',
  codeTypeDeVoie: '',
  libelleVoie: '',
  mentionDistribution: '',
  bureauCedex: '',
  codePostal: '',
  codeCommune: '',
  codePays: '',
  telephone: '',
  telephone2: '',
  telecopie: '',
  adresseEMail: '',
};

/** TRE_R02 secteur d'activité: a FINESS site is taken as a public hospital (SA01), else a practice (SA07). */
function sectorOf(activity: Activity): string {
  return activity.finessSite ? 'SA01' : 'SA07';
}

/** Structure id as PSC writes it: `F` + FINESS of the site, or an `R…` id for a practice. */
function structureIdOf(activity: Activity): string {
  return activity.finessSite ? `F${activity.finessSite}` : `R${activity.id.replace(/\D/g, '').slice(-6)}`;
}

function activityClaims(activity: Activity) {
  return {
    codeModeExercice: activity.mode.code,
    codeSecteurDactivite: sectorOf(activity),
    codeSectionPharmacien: '',
    codeRole: activity.role.code,
    codeGenreActivite: activity.genre.code,
    numeroSiretSite: activity.siret ?? '',
    numeroSirenSite: activity.siret?.slice(0, 9) ?? '',
    numeroFinessSite: activity.finessSite ?? '',
    numeroFinessetablissementJuridique: activity.finessLegal ?? '',
    identifiantTechniqueDeLaStructure: structureIdOf(activity),
    raisonSocialeSite: activity.organizationName,
    enseigneCommercialeSite: '',
    ...EMPTY_ADDRESS,
    codeDepartement: activity.department,
    ancienIdentifiantDeLaStructure: '',
    autoriteDenregistrement: '',
  };
}

/**
 * A professional enrolled in Pro Santé Identité (PSI), the ANS's identity base opened in 2026 beside the
 * RPPS (Référentiel PSC v2.1, EXI PSC 18: a service uses `SubjectNameID` and/or `PSISubjectNameID`).
 */
export interface PsiIdentity {
  /** PSI's identifier, released as `PSISubjectNameID`. Its format is not published: any string. */
  psiId: string;
  givenName: string;
  familyName: string;
  /** The idNatPS when the professional is in the RPPS too (one of `professionals`): both ids are sent. */
  idNatPs?: string;
}

/** What `SubjectNameID` holds for an identity outside the RPPS (not published): nothing, or the PSI id. */
export type PsiSubjectNameId = 'absent' | 'psi';

/**
 * The claims of an identity known to PSI only. Guessed: no RPPS data (`SubjectRefPro`, `SubjectRole`,
 * `otherIds`…); `preferred_username` is the PSI id (Keycloak's username); the session claims as for others.
 */
export function psiClaims(
  identity: PsiIdentity,
  subjectNameId: PsiSubjectNameId,
  authMode: string,
): { sub: string; [claim: string]: unknown } {
  return {
    sub: pscSubject(identity.psiId),
    ...(subjectNameId === 'psi' ? { SubjectNameID: identity.psiId } : {}),
    PSISubjectNameID: identity.psiId,
    preferred_username: identity.psiId,
    given_name: identity.givenName,
    family_name: identity.familyName,
    email_verified: false,
    Palier_Authentification: AUTHENTICATION_LEVEL,
    authMode,
  };
}

/**
 * Every claim PSC releases about the professional (userinfo with `scope_all`), `sub` included;
 * `PSISubjectNameID` too when the professional is also enrolled in PSI.
 */
export function professionalClaims(
  professional: Professional,
  authMode: string,
  psiId?: string,
): { sub: string; [claim: string]: unknown } {
  const activities = professional.activities.filter((a) => a.active);
  const main = activities[0];
  return {
    sub: pscSubject(professional.idNatPs),
    SubjectNameID: professional.idNatPs,
    ...(psiId ? { PSISubjectNameID: psiId } : {}),
    preferred_username: professional.idNatPs,
    given_name: professional.givenName,
    family_name: professional.familyName,
    email_verified: false,
    SubjectRefPro: {
      codeCivilite: professional.civility === 'MME' ? 'MME' : 'M',
      exercices: [
        {
          codeProfession: professional.profession.code,
          codeCategorieProfessionnelle: professional.category.code,
          codeCiviliteDexercice: professional.civility,
          nomDexercice: professional.familyName,
          prenomDexercice: professional.givenName,
          codeTypeSavoirFaire: '',
          codeSavoirFaire: '',
          activities: activities.map(activityClaims),
        },
      ],
    },
    otherIds: [{ identifiant: professional.idNatPs, origine: 'RPPS', qualite: 1 }],
    SubjectOrganization: main?.organizationName ?? '',
    SubjectOrganizationID: main ? structureIdOf(main) : '',
    SubjectRole: [`${professional.profession.code}^${PROFESSION_OID}`],
    Secteur_Activite: main ? `${sectorOf(main)}^${SECTOR_OID}` : '',
    Palier_Authentification: AUTHENTICATION_LEVEL,
    PSI_Locale: '1.2.250.1.213.1.3.1.1',
    UITVersion: '1.0',
    Acces_Regulation_Medicale: 'FAUX',
    Mode_Acces_Raison: '',
    authMode,
  };
}

/** Names of the claims above, per scope (the scope → claims mapping of real PSC is not published). */
const IDENTITY = [
  'SubjectNameID',
  'PSISubjectNameID',
  'preferred_username',
  'given_name',
  'family_name',
  'otherIds',
];
const PRACTICE = ['SubjectRefPro', 'SubjectOrganization', 'SubjectOrganizationID', 'SubjectRole'];
const SESSION = ['authMode', 'Palier_Authentification'];
export const CLAIMS_BY_SCOPE: Record<string, string[]> = {
  openid: ['sub', ...SESSION],
  scope_all: [
    ...IDENTITY,
    ...PRACTICE,
    'email_verified',
    'Secteur_Activite',
    'PSI_Locale',
    'UITVersion',
    'Acces_Regulation_Medicale',
    'Mode_Acces_Raison',
  ],
  identity: IDENTITY,
  rpps: [...IDENTITY, 'SubjectRole'],
  referentiel: [...PRACTICE, 'Secteur_Activite'],
  profile: ['preferred_username', 'given_name', 'family_name'],
  email: ['email_verified'],
};
/** Scopes PSC accepts that add no claim of their own. */
export const SCOPES_WITHOUT_CLAIMS = ['eidas1', 'eidas2', 'offline_access'];

export function identityLabel(professional: Professional): string {
  return `${professional.givenName} ${professional.familyName} — ${professional.profession.label} (${professional.idNatPs})`;
}

export function psiIdentityLabel(identity: PsiIdentity): string {
  return `${identity.givenName} ${identity.familyName} — Pro Santé Identité (${identity.psiId})`;
}
