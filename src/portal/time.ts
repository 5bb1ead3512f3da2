import type { Locale } from '../i18n/messages.ts';

const ZONE = 'Europe/Paris';

/** Dates and times as the hospital reads them (Europe/Paris), in the page's language. */
export function parisTime(locale: Locale) {
  const tag = locale === 'fr' ? 'fr-FR' : 'en-GB';
  const full = new Intl.DateTimeFormat(tag, { dateStyle: 'medium', timeStyle: 'short', timeZone: ZONE });
  const time = new Intl.DateTimeFormat(tag, { hour: '2-digit', minute: '2-digit', timeZone: ZONE });
  const day = new Intl.DateTimeFormat('en-CA', { timeZone: ZONE });
  return {
    full: (d: Date) => full.format(d),
    /** The time only when it is today (Paris), else date and time. */
    soon: (d: Date, now = new Date()) =>
      day.format(d) === day.format(now) ? time.format(d) : full.format(d),
  };
}
