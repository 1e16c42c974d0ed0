/**
 * `--entra` tunnels in a real browser (playwright-core driving Debian's chromium) against a real
 * OpenID provider on loopback: redirect to the provider, sign in, land on the app with identity
 * headers; a user outside the tunnel's group gets a clear page; forged cookies, another tunnel's
 * cookie and client-sent identity headers get nowhere; WebSocket upgrades need the session too.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Browser } from "playwright-core";
import { launchChromium } from "./support/browser.ts";
import { type AccessStack, startAccessStack } from "./support/access-stack.ts";
import { GROUP_DEVS, gatewayOidcEnv, type OidcFixture, startOidcProvider, TENANT, USERS, WEB_CLIENT_ID, WEB_CLIENT_SECRET } from "./support/oidc.ts";

let idp: OidcFixture;
let s: AccessStack;
let browser: Browser;
let devsOnly: { id: string; host: string };
let anyone: { id: string; host: string };

beforeAll(async () => {
  idp = await startOidcProvider();
  s = await startAccessStack(gatewayOidcEnv(idp, { extra: {
    AZHEXGATE_VISITOR_CLIENT_ID: WEB_CLIENT_ID,
    AZHEXGATE_VISITOR_CLIENT_SECRET: WEB_CLIENT_SECRET,
    AZHEXGATE_VISITOR_COOKIE_KEY: "visitor-cookie-key-for-tests-0123456789abcdef",
  } }));
  await idp.setRedirectUris([`http://localhost:${s.app.gateway.port}/auth/callback`]);
  devsOnly = await s.tunnel({ entra: { groups: [GROUP_DEVS] } });
  anyone = await s.tunnel({ entra: true });
  browser = await launchChromium();
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await s?.stop();
  await idp?.stop();
});

async function signIn(host: string, login: string, path = "/hello") {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`http://${host}${path}`);
  expect(page.url()).toStartWith(idp.issuer); // redirected to the provider
  await page.fill('input[name="login"]', login);
  await page.fill('input[name="password"]', "any");
  await page.click('button[type="submit"]');
  await page.waitForLoadState("load");
  return { context, page };
}

const sessionCookie = async (context: import("playwright-core").BrowserContext, host: string) =>
  (await context.cookies(`http://${host}/`)).find((c) => c.name === "azhexgate_session");

describe("--entra visitor sign-in", () => {
  test("a member signs in at the provider and lands on the app, which sees the identity headers (client-sent copies removed)", async () => {
    const before = s.seen.http.length;
    const { context, page } = await signIn(devsOnly.host, "alice");
    expect(page.url()).toBe(`http://${devsOnly.host}/hello`);
    const body = JSON.parse(await page.locator("body").innerText());
    expect(body).toEqual({ path: "/hello", email: USERS.alice!.email, oid: USERS.alice!.oid });
    const seen = s.seen.http.slice(before).filter((h) => h.path === "/hello");
    expect(seen.length).toBe(1);
    expect(seen[0]!.headers["x-azhexgate-user-tenant"]).toBe(TENANT);
    expect(seen[0]!.headers.cookie ?? "").not.toContain("azhexgate_session"); // the app never sees the session
    const cookie = await sessionCookie(context, devsOnly.host);
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: "Lax", domain: devsOnly.host.split(":")[0] });

    // the session cookie with forged identity headers: the app sees alice, not the forgery
    const forged = await s.get(devsOnly.host, "/forged", {
      headers: { cookie: `azhexgate_session=${cookie!.value}`, "x-azhexgate-user-email": "ceo@example.test", "x-azhexgate-user-oid": "forged" },
    });
    expect(forged.status).toBe(200);
    expect(await forged.json()).toMatchObject({ email: USERS.alice!.email, oid: USERS.alice!.oid });

    // WebSocket upgrades: refused without the session, accepted with it
    const ws0 = s.seen.ws;
    expect(await s.ws(devsOnly.host)).toBe("refused");
    expect(s.seen.ws).toBe(ws0);
    expect(await s.ws(devsOnly.host, { headers: { cookie: `azhexgate_session=${cookie!.value}` } })).toBe("open");

    // a cookie from another tunnel's host is refused there
    const elsewhere = await s.get(anyone.host, "/elsewhere", { headers: { cookie: `azhexgate_session=${cookie!.value}`, accept: "text/html" } });
    expect(elsewhere.status).toBe(302);
    expect(elsewhere.headers.get("location")).toContain("/auth/start?s=");
    expect(s.seen.http.some((h) => h.path === "/elsewhere")).toBe(false);

    // sign-out clears the cookie
    await page.goto(`http://${devsOnly.host}/.azhexgate/logout`);
    expect(await page.locator("h1").innerText()).toBe("Signed out");
    expect(await sessionCookie(context, devsOnly.host)).toBeUndefined();
    await context.close();
  }, 60_000);

  test("a user outside the tunnel's group is refused with a clear page, and the app is never reached", async () => {
    const before = s.seen.http.filter((h) => h.path === "/hello").length;
    const { context, page } = await signIn(devsOnly.host, "outsider");
    expect(await page.locator("h1").innerText()).toBe("Access denied");
    expect(await page.locator("body").innerText()).toContain("not a member of a group this tunnel admits");
    expect(await sessionCookie(context, devsOnly.host)).toBeUndefined();
    expect(s.seen.http.filter((h) => h.path === "/hello").length).toBe(before);
    await context.close();
  }, 60_000);

  test("forged cookies are refused: garbage, a re-signed payload, an unsigned one", async () => {
    const { context } = await signIn(anyone.host, "bob");
    const real = (await sessionCookie(context, anyone.host))!.value;
    await context.close();
    const [h, p] = real.split(".");
    const claims = JSON.parse(Buffer.from(p!, "base64url").toString());
    const evil = Buffer.from(JSON.stringify({ ...claims, email: "ceo@example.test" })).toString("base64url");
    const none = `${Buffer.from(JSON.stringify({ alg: "none" })).toString("base64url")}.${evil}.`;
    for (const value of ["garbage", `${h}.${evil}.${real.split(".")[2]}`, none]) {
      const r = await s.get(anyone.host, "/forged-cookie", { headers: { cookie: `azhexgate_session=${value}` } });
      expect(r.status).toBe(401);
      expect(r.headers.get("x-azhexgate-error")).toBe("unauthorized");
    }
    expect(s.seen.http.some((x) => x.path === "/forged-cookie")).toBe(false);
    const ok = await s.get(anyone.host, "/real-cookie", { headers: { cookie: `azhexgate_session=${real}` } });
    expect(await ok.json()).toMatchObject({ email: USERS.bob!.email });
  }, 60_000);

  test("a one-time code cannot be replayed, nor used on another tunnel's host", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const codes: string[] = [];
    page.on("request", (r) => {
      if (r.url().includes("/.azhexgate/callback?code=")) codes.push(r.url());
    });
    await page.goto(`http://${anyone.host}/x`);
    await page.fill('input[name="login"]', "alice");
    await page.fill('input[name="password"]', "any");
    await page.click('button[type="submit"]');
    await page.waitForURL(`http://${anyone.host}/x`);
    await context.close();
    expect(codes.length).toBe(1);
    const code = new URL(codes[0]!).searchParams.get("code")!;
    const replay = await s.get(anyone.host, `/.azhexgate/callback?code=${encodeURIComponent(code)}`);
    expect(replay.status).toBe(400);
    expect(replay.headers.get("set-cookie")).toBeNull();
    const moved = await s.get(devsOnly.host, `/.azhexgate/callback?code=${encodeURIComponent(code)}`);
    expect(moved.status).toBe(400);
  }, 60_000);
});
