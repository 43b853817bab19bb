// A real headless Chromium (Debian's) for the tests that meet the daemon as a browser does,
// and the attacker's side of them: a page served from another origin.
import { createServer, type Server } from 'node:http';
import { chromium, type Browser, type Page } from 'playwright-core';
import { freePort } from './harness.js';

export const CHROMIUM = '/usr/bin/chromium';

export function launchChromium(args: string[] = []): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args });
}

/** One HTML page served at / of a port of its own: another origin than the daemon's. */
export async function serveForeignPage(html: string): Promise<{ url: string; close: () => void }> {
  const port = await freePort();
  const server: Server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(html));
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${port}/`, close: () => server.close() };
}

/** What a test page's script leaves in window.results once it is done. */
export async function pageResults(page: Page, timeoutMs = 30_000): Promise<Record<string, string>> {
  const handle = await page.waitForFunction(() => (window as unknown as { results?: Record<string, string> }).results, undefined, { timeout: timeoutMs });
  return (await handle.jsonValue()) as Record<string, string>;
}
