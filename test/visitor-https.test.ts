/**
 * Visitor sign-in behind https (a deployed gateway): the whole redirect chain against the real
 * OpenID provider, driven with fetch, checking the cookies' attributes — `__Host-` names with
 * Secure, HttpOnly, SameSite=Lax, Path=/ and no Domain — and the return to the original path.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { AdmitContext } from "../src/gateway/policy/gate.ts";
import { createVisitorAuth } from "../src/gateway/visitor-auth.ts";
import { AUDIENCE, type OidcFixture, startOidcProvider, USERS, WEB_CLIENT_ID, WEB_CLIENT_SECRET } from "./support/oidc.ts";

let idp: OidcFixture;
beforeAll(async () => {
  idp = await startOidcProvider();
  await idp.setRedirectUris(["https://api.tunnels.test/auth/callback"]);
});
afterAll(() => idp?.stop());

test("https: __Host- cookies with Secure, HttpOnly, SameSite=Lax; back to the original path with the identity", async () => {
  const entra = { tenants: [], groups: [] };
  const auth = createVisitorAuth({
    oidc: { issuer: idp.issuer, audience: [AUDIENCE], tenants: [], groups: [], cliScopes: "" },
    visitor: { clientId: WEB_CLIENT_ID, clientSecret: WEB_CLIENT_SECRET, cookieKey: new TextEncoder().encode("k".repeat(48)), sessionSeconds: 3600 },
    apiBase: "https://api.tunnels.test",
    policyOf: async (id) => (id === "app" ? { entra } : undefined),
    tunnelOf: (h) => (h === "app.tunnels.test" ? "app" : undefined),
  });
  expect(auth.redirectUri).toBe("https://api.tunnels.test/auth/callback");
  const ctx: AdmitContext = { id: "app", host: "app.tunnels.test", kind: "http", client: "203.0.113.1", proto: "https", activeStreams: 0 };

  const first = (await auth.admit(new Request("https://app.tunnels.test/page?x=1", { headers: { accept: "text/html" } }), ctx, entra)) as Response;
  expect(first.status).toBe(302);
  const start = first.headers.get("location")!;
  expect(start).toStartWith("https://api.tunnels.test/auth/start?s=");

  const toIdp = (await auth.apex(new Request(start)))!;
  expect(toIdp.status).toBe(302);
  const login = toIdp.headers.get("set-cookie")!;
  expect(login).toMatch(/^__Host-azhexgate_login=[\w-]+; Path=\/; HttpOnly; SameSite=Lax; Max-Age=600; Secure$/);
  const authorize = new URL(toIdp.headers.get("location")!);
  expect(authorize.searchParams.get("code_challenge_method")).toBe("S256");
  expect(authorize.searchParams.get("redirect_uri")).toBe("https://api.tunnels.test/auth/callback");

  const back = await idp.signInWithFetch(authorize.toString(), "alice");
  expect(back).toStartWith("https://api.tunnels.test/auth/callback?");
  // without the login cookie (another browser): refused
  expect((await auth.apex(new Request(back)))!.status).toBe(400);
  const handoff = (await auth.apex(new Request(back, { headers: { cookie: login.split(";")[0]! } })))!;
  expect(handoff.status).toBe(302);
  const code = handoff.headers.get("location")!;
  expect(code).toStartWith("https://app.tunnels.test/.azhexgate/callback?code=");

  const landed = (await auth.admit(new Request(code), ctx, entra)) as Response;
  expect(landed.status).toBe(302);
  expect(landed.headers.get("location")).toBe("/page?x=1");
  const session = landed.headers.get("set-cookie")!;
  expect(session).toMatch(/^__Host-azhexgate_session=[\w.-]+; Path=\/; HttpOnly; SameSite=Lax; Max-Age=3600; Secure$/);
  expect(session).not.toMatch(/Domain=/i);

  const req = new Request("https://app.tunnels.test/page", { headers: { cookie: `${session.split(";")[0]}; theme=dark` } });
  const who = await auth.admit(req, ctx, entra);
  expect(who).toEqual({ "x-azhexgate-user-oid": USERS.alice!.oid, "x-azhexgate-user-email": USERS.alice!.email, "x-azhexgate-user-name": "Alice", "x-azhexgate-user-tenant": USERS.alice!.tid });
  expect(req.headers.get("cookie")).toBe("theme=dark"); // the app never sees the session
  // the http-named cookie is not accepted over https
  const plainName = (await auth.admit(new Request("https://app.tunnels.test/", { headers: { cookie: session.split(";")[0]!.replace("__Host-", "") } }), ctx, entra)) as Response;
  expect(plainName.status).toBe(401);
}, 30_000);
