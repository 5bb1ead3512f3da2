import { escapeHtml } from '../test/simulators/psc/pages.ts';

/** The pages of the demo's own servers (walkthrough, DPI, DRIMBOX): plain HTML, styles inline, no script. */

export { escapeHtml };

export interface PageOptions {
  title: string;
  /** One line in English under the French title. */
  english: string;
  /** The colour of the header band, one per application. */
  accent: string;
  body: string;
}

export function page({ title, english, accent, body }: PageOptions): string {
  return `<!doctype html>
<html lang="fr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:60rem;margin:0 auto;padding:0 1rem 3rem;color:#1e1e1e;line-height:1.45}
header{border-bottom:4px solid ${accent};margin-bottom:1.5rem;padding-top:1rem}
header h1{margin:.2rem 0}header p{margin:.2rem 0 .8rem;color:#555}
.en{color:#555;font-style:italic}
section{border:1px solid #ddd;border-radius:4px;padding:.5rem 1rem;margin-bottom:1rem}
pre{background:#f4f4f4;padding:.6rem;overflow:auto;font-size:.85rem;max-height:28rem}
table{border-collapse:collapse;width:100%;font-size:.9rem}td,th{border-bottom:1px solid #ddd;padding:.25rem .4rem;text-align:left;vertical-align:top}
button,a.button{background:${accent};color:#fff;border:0;padding:.5rem 1rem;cursor:pointer;text-decoration:none;display:inline-block;font-size:1rem;margin:.2rem .4rem .2rem 0}
a.button.secondary{background:#fff;color:${accent};border:1px solid ${accent}}
.error{border-color:#ce0500}code{background:#eee;padding:0 .2rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dt{font-weight:600}dd{margin:0}
</style>
</head>
<body>
<header><h1>${escapeHtml(title)}</h1><p class="en">${escapeHtml(english)}</p></header>
<main>
${body}
</main>
</body>
</html>`;
}

/** A value as indented JSON in a <pre> (escaped). */
export function jsonBlock(id: string | undefined, value: unknown): string {
  const attribute = id === undefined ? '' : ` id="${escapeHtml(id)}"`;
  return `<pre${attribute}>${escapeHtml(JSON.stringify(value, null, 2))}</pre>`;
}
