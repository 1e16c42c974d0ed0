/**
 * Headless Chromium for the browser tests: Debian's `chromium` (installed by .ci/run) driven by
 * `playwright-core`, with a fresh profile directory each launch and everything that would reach
 * outside the machine turned off. Screenshots go under test/artifacts/ (git-ignored).
 */
import { afterAll, beforeAll } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Browser as PlainBrowser } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";
export const ARTIFACTS = new URL("../artifacts/", import.meta.url).pathname;

/** Everything that would reach outside the machine (updates, sync, QUIC) off. */
const ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic"];

export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

/** Launches Chromium with a fresh --user-data-dir (removed on close). */
export async function launchBrowser(): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), "azhexgate-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60_000,
    args: ARGS,
  });
  context.setDefaultTimeout(20_000);
  return {
    context,
    async close() {
      await Promise.race([context.close().catch(() => {}), Bun.sleep(10_000)]);
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** One Chromium for the calling test file: launched before its first test, closed after its last. */
export function browserPerFile(): { readonly context: BrowserContext } {
  let browser: Browser | undefined;
  beforeAll(async () => {
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
  });
  return {
    get context() {
      if (!browser) throw new Error("the browser did not launch");
      return browser.context;
    },
  };
}

/** Launches Chromium for tests that open their own contexts (playwright gives each launch a fresh temporary profile). */
export function launchChromium(): Promise<PlainBrowser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
}

/** Path for a screenshot under test/artifacts/. */
export function artifact(name: string): string {
  mkdirSync(ARTIFACTS, { recursive: true });
  return join(ARTIFACTS, name);
}

/** Waits (bounded) until `locator` matches exactly `n` elements. */
export async function waitCount(locator: { count(): Promise<number> }, n: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let c = -1;
  while (Date.now() < deadline) {
    c = await locator.count();
    if (c === n) return;
    await Bun.sleep(50);
  }
  throw new Error(`expected ${n} elements, found ${c}`);
}
