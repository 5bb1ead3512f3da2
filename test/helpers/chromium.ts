import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';
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
