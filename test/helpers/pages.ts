/** The text of a page's error paragraph (login forms and error page alike), as rendered (HTML-escaped). */
export function errorText(html: string): string | undefined {
  return /<p class="error" role="alert"[^>]*>([^<]*)<\/p>/.exec(html)?.[1];
}

/** Eta's HTML escaping, to compare rendered text with the message catalogue. */
export function escaped(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}
