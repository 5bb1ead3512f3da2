/** The console's RPPS, establishments, audit and health pages text (src/admin/), French first; merged into messages.ts. */
export const consoleRecordsMessages = {
  fr: {},
  en: {},
} as const;
