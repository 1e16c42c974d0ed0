/**
 * `azhexgate login --browser --no-open`: authorization code + PKCE with a loopback redirect; the
 * test plays the user's browser (chromium via playwright-core) on the printed URL.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { launchChromium } from "./support/browser.ts";
import { type AccessStack, startAccessStack } from "./support/access-stack.ts";
import { killAll, spawnCli } from "./support/cli-proc.ts";
import { cliLoginConfig, gatewayOidcEnv, type OidcFixture, startOidcProvider, USERS } from "./support/oidc.ts";

let idp: OidcFixture;
let s: AccessStack;
let browser: Browser;
const { config, env } = cliLoginConfig("azhexgate-login-browser-");

beforeAll(async () => {
  idp = await startOidcProvider();
  s = await startAccessStack(gatewayOidcEnv(idp, { cli: true }));
  browser = await launchChromium();
}, 60_000);
afterAll(async () => {
  await killAll();
  await browser?.close();
  await s?.stop();
  await idp?.stop();
});

test("login --browser: the printed URL signs in at the provider, the loopback redirect completes it, the cache is 0600", async () => {
  const api = `http://localhost:${s.app.gateway.port}`;
  const login = spawnCli(["login", "--api-url", api, "--browser", "--no-open", "--json"], { env });
  const ev = await login.waitEvent((e) => e.event === "browser", 20_000);
  const page = await (await browser.newContext()).newPage();
  await page.goto(String(ev.url));
  await page.fill('input[name="login"]', "bob");
  await page.fill('input[name="password"]', "any");
  await page.click('button[type="submit"]');
  // the provider asks for consent to the API scope on a first sign-in
  await page.waitForURL((u) => u.pathname.startsWith("/interaction/") || u.pathname === "/callback");
  if (new URL(page.url()).pathname.startsWith("/interaction/")) await page.click('button[type="submit"]:has-text("Continue")');
  await page.waitForURL(/^http:\/\/127\.0\.0\.1:\d+\/callback\?/);
  expect(await page.locator("h1").innerText()).toBe("Signed in");
  expect(await login.exit(30_000)).toBe(0);
  expect((await login.waitEvent((e) => e.event === "signed_in")).email).toBe(USERS.bob!.email);
  const file = join(config, "azhexgate", "credentials.json");
  expect(statSync(file).mode & 0o777).toBe(0o600);
  const token = (Object.values(JSON.parse(readFileSync(file, "utf8")).logins)[0] as { access_token: string }).access_token;
  expect(login.text().out + login.text().err).not.toContain(token);
  const r = await fetch(`http://127.0.0.1:${s.app.gateway.port}/api/tunnels`, { headers: { host: `localhost:${s.app.gateway.port}`, authorization: `Bearer ${token}` } });
  expect(r.status).toBe(200);
}, 60_000);
