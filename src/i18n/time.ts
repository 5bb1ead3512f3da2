import type { Locale } from './messages.ts';

/** Whether the runtime knows this IANA time zone (`Europe/Paris`, `Indian/Reunion`…). */
export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

type When = Date | string | null | undefined;

/**
 * Dates and times as the establishment reads them: in its time zone (`ui.timeZone`), in the page's
 * language. The one formatter of pages.
 */
export function timeFormat(locale: Locale, timeZone: string) {
  const tag = locale === 'fr' ? 'fr-FR' : 'en-GB';
  const full = new Intl.DateTimeFormat(tag, { dateStyle: 'medium', timeStyle: 'short', timeZone });
  const precise = new Intl.DateTimeFormat(tag, { dateStyle: 'medium', timeStyle: 'medium', timeZone });
  const date = new Intl.DateTimeFormat(tag, { dateStyle: 'medium', timeZone });
  const time = new Intl.DateTimeFormat(tag, { hour: '2-digit', minute: '2-digit', timeZone });
  const day = new Intl.DateTimeFormat('en-CA', { timeZone });
  const shown = (format: Intl.DateTimeFormat) => (d: When) =>
    d === null || d === undefined ? '—' : format.format(new Date(d));
  return {
    /** « 8 déc. 2026, 06:04 ». */
    full: shown(full),
    /** With the seconds (audit records, key ages). */
    precise: shown(precise),
    /**
     * The moment in a sentence: « à 06:04 » today, else « le 8 déc. 2026 à 06:04 » (English: "at 06:04",
     * "on 8 Dec 2026 at 06:04").
     */
    when(d: Date, now = new Date()): string {
      const at = time.format(d);
      if (day.format(d) === day.format(now)) return locale === 'fr' ? `à ${at}` : `at ${at}`;
      return locale === 'fr' ? `le ${date.format(d)} à ${at}` : `on ${date.format(d)} at ${at}`;
    },
  };
}

export type TimeFormat = ReturnType<typeof timeFormat>;

/** The offset of a time zone at a moment, as ISO 8601 writes it: `+01:00`, `Z` for UTC. */
function offsetAt(d: Date, timeZone: string): string {
  const name =
    new Intl.DateTimeFormat('en-US', { timeZone, timeZoneName: 'longOffset' })
      .formatToParts(d)
      .find((part) => part.type === 'timeZoneName')?.value ?? 'GMT';
  const offset = name.replace(/^GMT/, '');
  return offset === '' ? 'Z' : offset;
}

/**
 * A moment for the command line: ISO 8601 in the establishment's time zone, with its offset
 * (`2026-12-08T06:04:05+01:00`): readable, and unambiguous for a script.
 */
export function zonedIso(d: Date, timeZone: string): string {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-CA', {
      timeZone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      hourCycle: 'h23',
    })
      .formatToParts(d)
      .map((part) => [part.type, part.value]),
  );
  return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}:${parts.second}${offsetAt(d, timeZone)}`;
}

/** A month (`YYYY-MM`) in words: « décembre 2026 », "December 2026". */
export function monthName(locale: Locale, month: string): string {
  return new Intl.DateTimeFormat(locale === 'fr' ? 'fr-FR' : 'en-GB', {
    month: 'long',
    year: 'numeric',
    timeZone: 'UTC',
  }).format(new Date(`${month}-15T12:00:00Z`));
}

/** The calendar month (`YYYY-MM`) of a moment in a time zone. */
export function monthIn(timeZone: string, now = new Date()): string {
  return new Intl.DateTimeFormat('sv-SE', { timeZone, year: 'numeric', month: '2-digit' }).format(now);
}
