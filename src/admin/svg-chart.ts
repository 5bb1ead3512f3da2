/** Server-side bar charts for the console's reports: inline SVG, no script, with a <title> for assistive technology. */

const escapeXml = (text: string) =>
  text.replace(/[<>&"']/g, (c) => `&${{ '<': 'lt', '>': 'gt', '&': 'amp', '"': 'quot', "'": 'apos' }[c]};`);

export interface BarChartOptions {
  /** Unique in the page: the id of the chart's <title>. */
  id: string;
  title: string;
  /** Label and value of each bar, in display order. */
  bars: readonly (readonly [string, number])[];
  /** Formats a value next to its bar (default: as is). */
  format?: (value: number) => string;
}

const LABEL_WIDTH = 220;
const BAR_AREA = 360;
const ROW = 28;

/** A horizontal bar chart: one row per bar, the value written after it. Empty string when there is no bar. */
export function barChart({ id, title, bars, format = String }: BarChartOptions): string {
  if (!bars.length) return '';
  const max = Math.max(1, ...bars.map(([, v]) => v));
  const width = LABEL_WIDTH + BAR_AREA + 80;
  const height = bars.length * ROW + 8;
  const rows = bars.map(([label, value], i) => {
    const y = 4 + i * ROW;
    const w = Math.round((value / max) * BAR_AREA);
    return (
      `<g><text x="${LABEL_WIDTH - 8}" y="${y + 18}" text-anchor="end" font-size="13" fill="#1e1e1e">${escapeXml(label)}</text>` +
      `<rect x="${LABEL_WIDTH}" y="${y + 4}" width="${w}" height="${ROW - 10}" fill="#000091"></rect>` +
      `<text x="${LABEL_WIDTH + w + 6}" y="${y + 18}" font-size="13" fill="#1e1e1e">${escapeXml(format(value))}</text></g>`
    );
  });
  return (
    `<svg class="chart" role="img" aria-labelledby="${id}" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" xmlns="http://www.w3.org/2000/svg">` +
    `<title id="${id}">${escapeXml(title)}</title>${rows.join('')}</svg>`
  );
}
