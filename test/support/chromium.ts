import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';

/** The system's Chromium (Debian's package); tests never download a browser. CHROMIUM_PATH overrides it. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export const chromiumAvailable = () => existsSync(CHROMIUM);

/** LATCHKEY_SCREENSHOTS=1: the browser tests write their screenshots to docs/. */
export const screenshots = process.env.LATCHKEY_SCREENSHOTS === '1';
export const docsFile = (file: string) => fileURLToPath(new URL(`../../docs/${file}`, import.meta.url));
/** Longest wait for one page action. */
export const ACTION_TIMEOUT = 10_000;

/**
 * A headless Chromium with nothing that talks to the network on its own (updates, sync, QUIC probes).
 * Playwright gives every launch a fresh, temporary profile and removes it on close, and every
 * `browser.newContext()` its own cookie jar and storage.
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
