/** The console's accounts and applications pages text (src/admin/), French first; merged into messages.ts. */
export const consolePeopleMessages = {
  fr: {},
  en: {},
} as const;
