/**
 * The gateway console in headless Chromium: sign in with an API key, see the tunnel that
 * `azhexgate start` created (online, with its request counter), reserve a name, delete the
 * tunnel and watch the agent report it and exit 5. Another key's tunnels never appear, a wrong
 * key is refused, no cookie is set, and the page runs under a strict Content-Security-Policy.
 */
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CONSOLE_CSP } from "../src/gateway/console/routes.ts";
import { artifact, browserPerFile, waitCount } from "./support/browser.ts";
import { API_KEY, get, killAll, spawnCli, startGatewayChild, startOrigin } from "./support/cli-proc.ts";

const OTHER_KEY = "console-other-key-abcdef0123456789";

const browser = browserPerFile();
afterEach(killAll);

test("sign in, see the agent's tunnel and its counters, reserve a name, delete the tunnel: the agent exits 5", async () => {
  const app = startOrigin(() => new Response("hi from the app"));
  try {
    const gw = await startGatewayChild({ env: { AZHEXGATE_API_KEYS: `${API_KEY},${OTHER_KEY}` } });
    const cwd = mkdtempSync(join(tmpdir(), "azhexgate-console-"));
    const agent = spawnCli(["start", String(app.port), "--api-url", gw.apiUrl, "--json", "--no-inspect"], { env: { AZHEXGATE_API_KEY: API_KEY }, cwd });
    const ready = await agent.waitEvent((e) => e.event === "ready", 20_000);
    const id = String(ready.tunnel_id);
    for (let i = 0; i < 3; i++) expect((await get(`${ready.public_url}/x${i}`)).status).toBe(200);
    // another key's tunnel
    const other = await fetch(`${gw.apiUrl}/api/tunnels`, { method: "POST", headers: { authorization: `Bearer ${OTHER_KEY}`, "content-type": "application/json" }, body: "{}" });
    expect(other.status).toBe(201);
    const otherId = ((await other.json()) as { id: string }).id;

    const res = await fetch(`${gw.apiUrl}/console`);
    expect(res.headers.get("content-security-policy")).toBe(CONSOLE_CSP);
    expect(await res.text()).not.toMatch(/<script>|<style>|\son\w+=/); // nothing inline: the CSP allows none

    const page = await browser.context.newPage();
    const cspErrors: string[] = [];
    page.on("console", (m) => /Content Security Policy/i.test(m.text()) && cspErrors.push(m.text()));
    await page.goto(`${gw.apiUrl}/console`);

    // a wrong key: refused, stays on the sign-in form
    await page.fill("#key", "not-a-key");
    await page.click("#signin-btn");
    await page.locator("#signin-error", { hasText: /key/i }).waitFor();
    expect(await page.locator("#signin").isVisible()).toBe(true);

    await page.fill("#key", API_KEY);
    await page.click("#signin-btn");
    const row = page.locator(`#rows tr[data-id="${id}"]`);
    await row.waitFor();
    expect(await row.locator("[data-state]").textContent()).toBe("online");
    expect(Number(await row.locator("td.requests").textContent())).toBe(3);
    expect(await page.locator(`#rows tr[data-id="${otherId}"]`).count()).toBe(0);
    expect(await page.locator("#rows tr[data-id]").count()).toBe(1);

    // reserve a name: it appears as a reserved tunnel of this key
    await page.fill("#reserve-name", "console-demo");
    await page.click("#reserve-btn");
    await page.locator('#rows tr[data-id="console-demo"] .reserved').waitFor();

    // the key is in sessionStorage for this tab, never in a cookie
    expect(await browser.context.cookies()).toEqual([]);
    expect(await page.evaluate(() => sessionStorage.getItem("azhexgate.apiKey"))).toBe(API_KEY);
    await page.screenshot({ path: artifact("console.png"), fullPage: true });

    await row.locator("button[data-delete]").click();
    await page.locator("#message", { hasText: `Deleted tunnel ${id}` }).waitFor();
    await waitCount(page.locator(`#rows tr[data-id="${id}"]`), 0);
    expect(await agent.exit(30_000)).toBe(5);
    const err = agent.events().find((e) => e.event === "error");
    expect(err).toMatchObject({ code: "tunnel_deleted", exit_code: 5 });

    // release names: with its tunnel ("Delete and release name"), and one whose tunnel is gone already
    await page.locator('button[data-release="console-demo"]').click();
    await page.locator("#message", { hasText: "released the name" }).waitFor();
    await waitCount(page.locator('#rows tr[data-id="console-demo"]'), 0);
    const kept = await fetch(`${gw.apiUrl}/api/tunnels`, { method: "POST", headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" }, body: JSON.stringify({ subdomain: "console-kept" }) });
    expect(kept.status).toBe(201);
    expect((await fetch(`${gw.apiUrl}/api/tunnels/console-kept`, { method: "DELETE", headers: { authorization: `Bearer ${API_KEY}` } })).status).toBe(204);
    const claim = (name: string) => fetch(`${gw.apiUrl}/api/tunnels`, { method: "POST", headers: { authorization: `Bearer ${OTHER_KEY}`, "content-type": "application/json" }, body: JSON.stringify({ subdomain: name }) });
    expect((await claim("console-kept")).status).toBe(409); // still reserved by the first key
    await page.fill("#reserve-name", "console-kept");
    await page.click("#release-btn");
    await page.locator("#message", { hasText: "Released console-kept" }).waitFor();
    expect(cspErrors).toEqual([]);

    // the other key sees its own tunnel only
    await page.click("#signout");
    await page.fill("#key", OTHER_KEY);
    await page.click("#signin-btn");
    await page.locator(`#rows tr[data-id="${otherId}"]`).waitFor();
    expect(await page.locator("#rows tr[data-id]").count()).toBe(1);
    await page.close();
    // both released names are free for another key now
    expect((await claim("console-demo")).status).toBe(201);
    expect((await claim("console-kept")).status).toBe(201);
  } finally {
    app.stop(true);
  }
}, 90_000);

test("the console's data view has the API's authorization: no key, a wrong key → 401; other paths 404", async () => {
  const gw = await startGatewayChild();
  expect((await fetch(`${gw.apiUrl}/console/api/tunnels`)).status).toBe(401);
  expect((await fetch(`${gw.apiUrl}/console/api/tunnels`, { headers: { authorization: "Bearer nope" } })).status).toBe(401);
  const ok = await fetch(`${gw.apiUrl}/console/api/tunnels`, { headers: { authorization: `Bearer ${API_KEY}` } });
  expect(ok.status).toBe(200);
  expect(await ok.json()).toEqual({ tunnels: [] });
  expect((await fetch(`${gw.apiUrl}/console/nothing`)).status).toBe(404);
  expect((await fetch(`${gw.apiUrl}/console/console.js`)).headers.get("content-type")).toContain("javascript");
}, 30_000);
