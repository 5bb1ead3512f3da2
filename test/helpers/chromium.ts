import { existsSync } from 'node:fs';

import { type Browser, chromium, type Page } from 'playwright-core';
import { missingComponentSuite } from './components.ts';

/** Debian's Chromium, driven by playwright-core (which never downloads a browser). */
export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_MISSING = `${CHROMIUM} not found: install Debian's Chromium with "apt-get install -y chromium" (Playwright browser downloads are not used)`;
export const chromiumAvailable = (): boolean => existsSync(CHROMIUM);

/** Headless, and quiet on a closed network (no background connections that would be refused). */
const LAUNCH_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: LAUNCH_ARGS });
}

/** Stands in for a suite that needs Chromium when it is missing: a failure on CI, a visible skip elsewhere. */
export function missingChromiumSuite(title: string): void {
  missingComponentSuite(title, 'Chromium', CHROMIUM_MISSING);
}

/**
 * Lets `rewrite` see, and change, the URL of each request of `page` matching `pattern` (DevTools Fetch
 * pattern: `*` matches anything) before it leaves the browser, the hops of a redirect chain included
 * (page.route sees only the first request of a chain). The page still shows the original URL. Returns
 * the function that stops intercepting.
 */
export async function interceptRequests(
  page: Page,
  pattern: string,
  rewrite: (url: URL) => URL | undefined,
): Promise<() => Promise<void>> {
  const cdp = await page.context().newCDPSession(page);
  cdp.on('Fetch.requestPaused', ({ requestId, request }) => {
    const url = rewrite(new URL(request.url))?.href;
    void cdp.send('Fetch.continueRequest', { requestId, ...(url ? { url } : {}) });
  });
  await cdp.send('Fetch.enable', { patterns: [{ urlPattern: pattern, requestStage: 'Request' }] });
  return async () => {
    await cdp.send('Fetch.disable');
    await cdp.detach();
  };
}
