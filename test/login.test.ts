/**
 * `azhexgate login | whoami | logout` and `start` as the signed-in user, against a real OpenID
 * provider on loopback (device authorization grant; the test completes the user's browser step)
 * and a real gateway that accepts its tokens. The token cache is 0600, refreshed silently, and
 * no token ever reaches stdout / stderr.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type AccessStack, startAccessStack } from "./support/access-stack.ts";
import { killAll, spawnCli } from "./support/cli-proc.ts";
import { GROUP_ADMINS, GROUP_DEVS, cliLoginConfig, gatewayOidcEnv, type OidcFixture, startOidcProvider, TENANT, USERS } from "./support/oidc.ts";

let idp: OidcFixture;
let s: AccessStack;
let api: string;
const { config, env } = cliLoginConfig("azhexgate-login-");
const cacheFile = join(config, "azhexgate", "credentials.json");
const cache = () => JSON.parse(readFileSync(cacheFile, "utf8"));
const entry = () => Object.values(cache().logins)[0] as { access_token: string; refresh_token: string; expires_at: number };

beforeAll(async () => {
  idp = await startOidcProvider();
  s = await startAccessStack(gatewayOidcEnv(idp, { cli: true, extra: { AZHEXGATE_OIDC_GROUPS: GROUP_DEVS, AZHEXGATE_OIDC_ADMIN_GROUP: GROUP_ADMINS } }));
  api = `http://localhost:${s.app.gateway.port}`;
});
afterAll(async () => {
  await killAll();
  await s?.stop();
  await idp?.stop();
});

function noTokenIn(text: string) {
  if (!require("node:fs").existsSync(cacheFile)) return;
  const e = entry();
  expect(text).not.toContain(e.access_token);
  expect(text).not.toContain(e.access_token.split(".")[2]!);
  if (e.refresh_token) expect(text).not.toContain(e.refresh_token);
}

describe("device-code sign-in", () => {
  test("login: the user completes the device step; the cache file is 0600 in a 0700 directory; whoami names the user", async () => {
    const login = spawnCli(["login", "--api-url", api, "--json"], { env });
    const dc = await login.waitEvent((e) => e.event === "device_code", 20_000);
    expect(String(dc.verification_uri)).toStartWith(idp.issuer);
    await idp.approveDevice(String(dc.user_code), "alice");
    expect(await login.exit(30_000)).toBe(0);
    const done = await login.waitEvent((e) => e.event === "signed_in");
    expect(done.email).toBe(USERS.alice!.email);
    expect(statSync(cacheFile).mode & 0o777).toBe(0o600);
    expect(statSync(join(config, "azhexgate")).mode & 0o777).toBe(0o700);
    noTokenIn(login.text().out + login.text().err);

    const who = spawnCli(["whoami", "--api-url", api], { env });
    expect(await who.exit()).toBe(0);
    expect(who.text().out).toContain(`<${USERS.alice!.email}>`);
    noTokenIn(who.text().out + who.text().err);
  }, 60_000);

  test("start without an API key creates the tunnel as the signed-in user", async () => {
    const start = spawnCli(["start", "3999", "--api-url", api, "--json"], { env });
    const ready = await start.waitEvent((e) => e.event === "ready", 20_000);
    const tunnels = await s.app.registry.list();
    const mine = tunnels.filter((t) => t.keyId === `user:${TENANT}:${USERS.alice!.oid}`);
    expect(mine.length).toBe(1);
    expect(JSON.stringify(ready)).toContain(mine[0]!.id);
    const list = spawnCli(["tunnels", "list", "--api-url", api, "--json"], { env });
    expect(await list.exit()).toBe(0);
    expect(JSON.parse(list.text().out).map((t: { id: string }) => t.id)).toEqual([mine[0]!.id]);
    noTokenIn(list.text().out + list.text().err);
    start.kill("SIGINT");
    expect(await start.exit()).toBe(0);
    noTokenIn(start.text().out + start.text().err);
  }, 60_000);

  test("an expired access token is refreshed silently (new token cached, still 0600, never printed)", async () => {
    const before = entry();
    const c = cache();
    for (const k of Object.keys(c.logins)) c.logins[k].expires_at = Date.now() - 1000;
    writeFileSync(cacheFile, JSON.stringify(c), { mode: 0o600 });
    const who = spawnCli(["whoami", "--api-url", api, "--json"], { env });
    expect(await who.exit()).toBe(0);
    expect(JSON.parse(who.text().out).email).toBe(USERS.alice!.email);
    const after = entry();
    expect(after.access_token).not.toBe(before.access_token);
    expect(after.expires_at).toBeGreaterThan(Date.now());
    expect(statSync(cacheFile).mode & 0o777).toBe(0o600);
    noTokenIn(who.text().out + who.text().err);
    // the refreshed token works on the API
    const r = await fetch(`http://127.0.0.1:${s.app.gateway.port}/api/tunnels`, { headers: { host: `localhost:${s.app.gateway.port}`, authorization: `Bearer ${after.access_token}` } });
    expect(r.status).toBe(200);
  }, 30_000);

  test("logout forgets the sign-in: whoami exits 3, start without a key exits 2 naming `azhexgate login`", async () => {
    const out = spawnCli(["logout", "--api-url", api], { env });
    expect(await out.exit()).toBe(0);
    expect(out.text().out).toContain("Signed out");
    expect(Object.keys(cache().logins)).toEqual([]);
    const who = spawnCli(["whoami", "--api-url", api], { env });
    expect(await who.exit()).toBe(3);
    expect(who.text().err).toContain("azhexgate login");
    const start = spawnCli(["start", "3999", "--api-url", api], { env });
    expect(await start.exit()).toBe(2);
    expect(start.text().err).toContain("azhexgate login --api-url");
  }, 30_000);

  test("login against a gateway without sign-in exits 2", async () => {
    const plain = await startAccessStack();
    try {
      const login = spawnCli(["login", "--api-url", `http://localhost:${plain.app.gateway.port}`], { env });
      expect(await login.exit()).toBe(2);
      expect(login.text().err).toContain("API keys only");
    } finally {
      await plain.stop();
    }
  }, 30_000);
});
