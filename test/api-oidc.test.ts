/**
 * OIDC bearer tokens on the management API against a real OpenID provider on loopback
 * (oidc-provider, RS256, JWKS from its discovery document): accepted / refused tokens, per-user
 * ownership, the admin group, key rollover, and API keys unchanged beside them.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createOidcVerifier } from "../src/api/oidc.ts";
import { type ApiStack, KEY_A, startApiStack } from "./support/api-stack.ts";
import { AUDIENCE, GROUP_ADMINS, GROUP_DEVS, type OidcFixture, startOidcProvider, TENANT } from "./support/oidc.ts";

let idp: OidcFixture;
let stack: ApiStack;

beforeAll(async () => {
  idp = await startOidcProvider();
  const oidc = createOidcVerifier({ issuer: idp.issuer, audience: [AUDIENCE], tenants: [TENANT], groups: [GROUP_DEVS], adminGroup: GROUP_ADMINS }, { cooldownMs: 0 });
  stack = await startApiStack({ oidc });
});
afterAll(async () => {
  await stack?.stop();
  await idp?.stop();
});

const tokenFor = (login: string, extra: Record<string, unknown> = {}, o?: Parameters<OidcFixture["mint"]>[1]) => idp.mint({ ...idp.claimsOf(login), ...extra }, o);

describe("bearer JWTs", () => {
  test("a valid token is accepted and the user owns the tunnel it creates", async () => {
    const bearer = await tokenFor("alice");
    const created = await stack.call("POST", "/api/tunnels", { bearer, body: {} });
    expect(created.status).toBe(201);
    const rec = await stack.registry.get(created.json.id);
    expect(rec?.keyId).toBe(`user:${TENANT}:${idp.claimsOf("alice").oid}`);
    const list = await stack.call("GET", "/api/tunnels", { bearer });
    expect(list.json.tunnels.map((t: { id: string }) => t.id)).toContain(created.json.id);
  });

  test.each([
    ["wrong audience", { aud: "api://someone-else" }, {}, 401, /audience/],
    ["wrong issuer", { iss: "https://login.example.test/other" }, {}, 401, /another identity provider/],
    ["expired", { exp: Math.floor(Date.now() / 1000) - 3600, iat: Math.floor(Date.now() / 1000) - 7200, nbf: Math.floor(Date.now() / 1000) - 7200 }, {}, 401, /expired/],
    ["unsigned (alg none)", {}, { alg: "none" as const }, 401, /algorithm "none"/],
    ["signed by a key the provider does not publish", {}, { key: "stranger" as const }, 401, /key the identity provider does not publish|signature/],
    ["wrong tenant", { tid: "99999999-9999-9999-9999-999999999999" }, {}, 403, /tenant/],
    ["outside the allowed groups", { groups: ["someone-else"] }, {}, 403, /group/],
  ])("%s → %d", async (_name, claims, opts, status, message) => {
    const bearer = await tokenFor("alice", claims, opts);
    const r = await stack.call("GET", "/api/tunnels", { bearer });
    expect(r.status).toBe(status);
    expect(r.json.error.code).toBe(status === 401 ? "invalid_token" : "forbidden");
    expect(r.json.error.message).toMatch(message);
    if (status === 401) expect(r.headers.get("www-authenticate")).toContain('error="invalid_token"');
    expect(r.text).not.toContain(bearer);
  });

  test("a token within the clock skew is accepted (exp 20 s ago)", async () => {
    const now = Math.floor(Date.now() / 1000);
    const r = await stack.call("GET", "/api/tunnels", { bearer: await tokenFor("alice", { exp: now - 20 }) });
    expect(r.status).toBe(200);
  });

  test("a rolled-over signing key: new tokens accepted (JWKS refetched), old-key tokens refused", async () => {
    const before = await tokenFor("alice");
    expect((await stack.call("GET", "/api/tunnels", { bearer: before })).status).toBe(200);
    await idp.rotate();
    const after = await tokenFor("alice");
    expect((await stack.call("GET", "/api/tunnels", { bearer: after })).status).toBe(200);
    const old = await stack.call("GET", "/api/tunnels", { bearer: before });
    expect(old.status).toBe(401);
  });
});

test("an unreachable identity provider is 503 with Retry-After (worth retrying), not 401; API keys keep working", async () => {
  const dead = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("down", { status: 500 }) });
  const down = await startApiStack({ oidc: createOidcVerifier({ issuer: `http://127.0.0.1:${dead.port}`, audience: [AUDIENCE], tenants: [], groups: [] }) });
  try {
    const r = await down.call("GET", "/api/tunnels", { bearer: await tokenFor("alice") });
    expect(r.status).toBe(503);
    expect(r.json.error.code).toBe("identity_provider_unavailable");
    expect(r.headers.get("retry-after")).toBe("30");
    expect((await down.call("GET", "/api/tunnels", { key: KEY_A })).status).toBe(200);
  } finally {
    await down.stop();
    dead.stop(true);
  }
});

describe("ownership", () => {
  test("one user cannot see or touch another's tunnels; an admin can; API keys keep their own", async () => {
    const alice = await tokenFor("alice");
    const bob = await tokenFor("bob");
    const root = await tokenFor("root");
    const a = await stack.call("POST", "/api/tunnels", { bearer: alice, body: { subdomain: "alice-app" } });
    expect(a.status).toBe(201);
    const k = await stack.call("POST", "/api/tunnels", { key: KEY_A, body: {} });
    expect(k.status).toBe(201);

    expect((await stack.call("GET", `/api/tunnels/${a.json.id}`, { bearer: bob })).status).toBe(404);
    expect((await stack.call("DELETE", `/api/tunnels/${a.json.id}`, { bearer: bob })).status).toBe(404);
    expect((await stack.call("POST", "/api/tunnels", { bearer: bob, body: { subdomain: "alice-app" } })).status).toBe(409);
    const bobList = await stack.call("GET", "/api/tunnels", { bearer: bob });
    expect(bobList.json.tunnels).toEqual([]);
    // the key's tunnel is not a user's and vice versa
    expect((await stack.call("GET", `/api/tunnels/${a.json.id}`, { key: KEY_A })).status).toBe(404);
    expect((await stack.call("GET", `/api/tunnels/${k.json.id}`, { bearer: alice })).status).toBe(404);
    // alice's ?all=true is ignored (not an admin)
    const aliceAll = await stack.call("GET", "/api/tunnels?all=true", { bearer: alice });
    expect(aliceAll.json.tunnels.map((t: { id: string }) => t.id)).not.toContain(k.json.id);

    const all = await stack.call("GET", "/api/tunnels?all=true", { bearer: root });
    expect(all.status).toBe(200);
    const ids = all.json.tunnels.map((t: { id: string }) => t.id);
    expect(ids).toContain(a.json.id);
    expect(ids).toContain(k.json.id);
    expect(all.json.tunnels.find((t: { id: string }) => t.id === a.json.id).owner).toBe(`user:${TENANT}:${idp.claimsOf("alice").oid}`);
    expect((await stack.call("GET", `/api/tunnels/${a.json.id}`, { bearer: root })).status).toBe(200);
    expect((await stack.call("DELETE", `/api/tunnels/${a.json.id}`, { bearer: root })).status).toBe(204);
    expect((await stack.call("GET", `/api/tunnels/${a.json.id}`, { bearer: alice })).status).toBe(404);
  });

  test("an API key that is not a JWT is still checked as a key (401 unauthorized)", async () => {
    const r = await stack.call("GET", "/api/tunnels", { bearer: "not-a-key-0123456789abcdef" });
    expect(r.status).toBe(401);
    expect(r.json.error.code).toBe("unauthorized");
    expect(r.json.error.message).toMatch(/azhexgate login/);
  });
});
