/** The portal's "Ma sécurité" page text (src/portal/security.ts), French first; merged into messages.ts. */
export const portalSecurityMessages = {
  fr: {},
  en: {},
} as const;
