/**
 * The gateway console signs users in with the gateway's OpenID provider (Entra ID in production;
 * here a real oidc-provider on loopback) in headless Chromium: authorization code + PKCE run by the
 * console's own script as a public client, the access token kept in sessionStorage and sent as a
 * bearer header (no cookie on the console's origin), the provider's token endpoint the only
 * addition to the CSP. Alice signs in, sees only the tunnel `azhexgate start` created as her (not
 * Bob's, not an API key's), deletes it, and her agent reports it and exits 5.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { CONSOLE_CSP, consoleCsp } from "../src/gateway/console/routes.ts";
import { type AccessStack, startAccessStack } from "./support/access-stack.ts";
import { artifact, launchBrowser, waitCount, type Browser } from "./support/browser.ts";
import { killAll, spawnCli } from "./support/cli-proc.ts";
import { CLI_CLIENT_ID, GROUP_DEVS, cliLoginConfig, gatewayOidcEnv, type OidcFixture, startOidcProvider, USERS } from "./support/oidc.ts";

let idp: OidcFixture;
let s: AccessStack;
let api: string;
let browser: Browser;
const { env } = cliLoginConfig("azhexgate-console-entra-");

beforeAll(async () => {
  idp = await startOidcProvider();
  s = await startAccessStack(gatewayOidcEnv(idp, { cli: true, extra: { AZHEXGATE_OIDC_GROUPS: GROUP_DEVS } }));
  api = `http://localhost:${s.app.gateway.port}`;
  // what docs/access.md tells operators to register: {api host}/console/ on the public client
  await idp.setCliRedirectUris([`${api}/console/`]);
  browser = await launchBrowser();
}, 60_000);
afterAll(async () => {
  await killAll();
  await browser?.close();
  await s?.stop();
  await idp?.stop();
});

test("the console tells the browser how to sign in, and its CSP adds only the token endpoint", async () => {
  const auth = (await (await fetch(`${api}/console/api/auth`)).json()) as { oidc: Record<string, string> };
  expect(Object.keys(auth.oidc).sort()).toEqual(["authorization_endpoint", "client_id", "scopes", "token_endpoint"]);
  expect(auth.oidc.authorization_endpoint).toStartWith(`${idp.issuer}/`);
  expect(auth.oidc.token_endpoint).toStartWith(`${idp.issuer}/`);
  expect(auth.oidc.client_id).toBe(CLI_CLIENT_ID);
  expect(auth.oidc.scopes).toBe("openid profile email offline_access api");
  const page = await fetch(`${api}/console/`);
  expect(page.headers.get("content-security-policy")).toBe(consoleCsp(auth.oidc.token_endpoint));
  expect(page.headers.get("content-security-policy")).toBe(CONSOLE_CSP.replace("connect-src 'self'", `connect-src 'self' ${auth.oidc.token_endpoint}`));
  // a gateway without OIDC: no sign-in button, the plain CSP
  const plain = await startAccessStack();
  try {
    const url = `http://localhost:${plain.app.gateway.port}`;
    expect(await (await fetch(`${url}/console/api/auth`)).json()).toEqual({ oidc: null });
    expect((await fetch(`${url}/console/`)).headers.get("content-security-policy")).toBe(CONSOLE_CSP);
  } finally {
    await plain.stop();
  }
}, 30_000);

test("sign in with Entra ID as Alice: only her tunnel (created by start as her) is listed; she deletes it and her agent exits 5", async () => {
  // Alice signs the CLI in (device code) and runs start: the tunnel is hers
  const login = spawnCli(["login", "--api-url", api, "--json"], { env });
  const dc = await login.waitEvent((e) => e.event === "device_code", 20_000);
  await idp.approveDevice(String(dc.user_code), "alice");
  expect(await login.exit(30_000)).toBe(0);
  const start = spawnCli(["start", "3999", "--api-url", api, "--json", "--no-inspect"], { env });
  const ready = await start.waitEvent((e) => e.event === "ready", 20_000);
  const mine = String(ready.tunnel_id);
  // Bob's tunnel and an API key's tunnel
  const bob = await s.create({}, { bearer: await idp.mint(idp.claimsOf("bob")) });
  expect(bob.status).toBe(201);
  const bobId = ((await bob.json()) as { id: string }).id;
  const keyed = await s.create({});
  expect(keyed.status).toBe(201);
  const keyId = ((await keyed.json()) as { id: string }).id;

  const page = await browser.context.newPage();
  const cspErrors: string[] = [];
  page.on("console", (m) => /Content Security Policy/i.test(m.text()) && cspErrors.push(m.text()));
  await page.goto(`${api}/console`);
  await page.locator("#entra-btn").click();
  // the provider's sign-in page (and, on a first sign-in, its consent page)
  await page.waitForURL((u) => u.origin === idp.issuer);
  await page.fill('input[name="login"]', "alice");
  await page.fill('input[name="password"]', "any");
  await page.click('button[type="submit"]');
  await page.waitForURL((u) => u.origin === api || u.pathname.startsWith("/interaction/"));
  if (new URL(page.url()).origin !== api) await page.click('button[type="submit"]:has-text("Continue")');
  await page.waitForURL(`${api}/console/`); // back, and the code is gone from the address bar

  const row = page.locator(`#rows tr[data-id="${mine}"]`);
  await row.waitFor();
  expect(await page.locator("#rows tr[data-id]").count()).toBe(1);
  expect(await page.locator(`#rows tr[data-id="${bobId}"]`).count()).toBe(0);
  expect(await page.locator(`#rows tr[data-id="${keyId}"]`).count()).toBe(0);
  expect(await page.locator("#who").textContent()).toContain(USERS.alice!.email);
  // the access token is in this tab's sessionStorage (a JWT for the API), no cookie on the console's origin
  const token = await page.evaluate(() => sessionStorage.getItem("azhexgate.apiKey"));
  expect(token?.split(".").length).toBe(3);
  expect(await page.evaluate(() => sessionStorage.getItem("azhexgate.signin"))).toBeNull();
  expect(await browser.context.cookies(api)).toEqual([]);
  await page.screenshot({ path: artifact("console-entra.png"), fullPage: true });

  await row.locator("button[data-delete]").click();
  await page.locator("#message", { hasText: `Deleted tunnel ${mine}` }).waitFor();
  await waitCount(page.locator(`#rows tr[data-id="${mine}"]`), 0);
  expect(await start.exit(30_000)).toBe(5);
  expect(start.events().find((e) => e.event === "error")).toMatchObject({ code: "tunnel_deleted", exit_code: 5 });
  // Bob's and the key's tunnels are untouched
  expect((await s.app.registry.get(bobId))?.id).toBe(bobId);
  expect((await s.app.registry.get(keyId))?.id).toBe(keyId);
  expect(cspErrors).toEqual([]);

  await page.close();

  // an answer that does not belong to a sign-in started in this tab (a new tab: its own sessionStorage) is refused
  const other = await browser.context.newPage();
  await other.goto(`${api}/console/?code=forged&state=forged`);
  await other.locator("#signin-error", { hasText: /does not belong/ }).waitFor();
  expect(await other.evaluate(() => sessionStorage.getItem("azhexgate.apiKey"))).toBeNull();
  expect(new URL(other.url()).search).toBe("");
  await other.close();
}, 120_000);
