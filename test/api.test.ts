/**
 * Management API over a real socket: every endpoint, every error status, key ownership, and no
 * secret in any response or log line.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { MAX_BODY_BYTES } from "../src/api/routes.ts";
import { assertNoSecrets, KEY_A, KEY_B, startApiStack, type ApiStack, type Reply } from "./support/api-stack.ts";

let s: ApiStack;
beforeAll(async () => {
  s = await startApiStack();
});
afterAll(async () => {
  assertNoSecrets(s);
  await s.stop();
});

function expectError(r: Reply, status: number, code: string) {
  expect(r.status).toBe(status);
  expect(r.json.error.code).toBe(code);
  expect(r.json.error.message.length).toBeGreaterThan(10);
  expect(r.headers.get("x-azhexgate-error")).toBe(code);
}

describe("POST /api/tunnels", () => {
  test("creates a random 13-character base32 tunnel with a listener token and its HC", async () => {
    const r = await s.call("POST", "/api/tunnels", { key: KEY_A, body: { local_port: 3000 } });
    expect(r.status).toBe(201);
    const t = r.json;
    expect(t.id).toMatch(/^[a-z2-7]{13}$/); // ≥ 60 bits: not enumerable
    expect(t.public_url).toBe(`http://${t.id}.localhost:8080`);
    expect(t.relay_endpoint).toBe(`ws://${s.relay.endpoint.host}`);
    expect(t.hybrid_connection_name).toBe(`hc-${t.id}`);
    expect(t.listener_token).toStartWith("SharedAccessSignature ");
    expect(t.listener_token).toContain("skn=azhexgate-listen");
    expect(t.session_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(t.local_port).toBe(3000);
    expect(t.reserved).toBe(false);
    const exp = Date.parse(t.expires_at);
    expect(Math.abs(exp - (Date.now() + 3600_000))).toBeLessThan(5_000);
    expect(Date.parse(t.idle_expires_at)).toBeGreaterThan(exp);
    expect(s.relay.entities.get(`hc-${t.id}`)?.rules.get("azhexgate-listen")?.rights).toEqual(["Listen"]);
    expect(r.headers.get("cache-control")).toBe("no-store");
  });

  test("an empty body is fine; the key may come as a bearer token", async () => {
    const r = await s.call("POST", "/api/tunnels", { bearer: KEY_B });
    expect(r.status).toBe(201);
    expect(r.json.local_port).toBeNull();
  });

  test("reserves a name (lower-cased) for the key; another key gets 409 subdomain_taken", async () => {
    const a = await s.call("POST", "/api/tunnels", { key: KEY_A, body: { subdomain: "My-App" } });
    expect(a.status).toBe(201);
    expect(a.json.id).toBe("my-app");
    expect(a.json.reserved).toBe(true);
    const b = await s.call("POST", "/api/tunnels", { key: KEY_B, body: { subdomain: "my-app" } });
    expectError(b, 409, "subdomain_taken");
    // Deleting the tunnel keeps the name owned by A.
    expect((await s.call("DELETE", "/api/tunnels/my-app", { key: KEY_A })).status).toBe(204);
    expectError(await s.call("POST", "/api/tunnels", { key: KEY_B, body: { subdomain: "my-app" } }), 409, "subdomain_taken");
    expect((await s.call("POST", "/api/tunnels", { key: KEY_A, body: { subdomain: "my-app" } })).status).toBe(201);
  });

  test.each([
    [{ subdomain: "ab" }, "subdomain"],
    [{ subdomain: "-abc" }, "subdomain"],
    [{ subdomain: "abc-" }, "subdomain"],
    [{ subdomain: "a".repeat(41) }, "subdomain"],
    [{ subdomain: "a_b_c" }, "subdomain"],
    [{ subdomain: "12345678" }, "subdomain"],
    [{ subdomain: "api" }, "subdomain"],
    [{ subdomain: "www" }, "subdomain"],
    [{ subdomain: "admin" }, "subdomain"],
    [{ subdomain: "xn--abc" }, "subdomain"],
    [{ subdomain: 42 }, "subdomain"],
    [{ local_port: 0 }, "local_port"],
    [{ local_port: 70000 }, "local_port"],
    [{ local_port: "3000" }, "local_port"],
    [{ local_port: 3000.5 }, "local_port"],
    [{ subdomian: "typo" }, "subdomian"],
  ])("400 invalid_request for %j names field %s", async (body, field) => {
    const r = await s.call("POST", "/api/tunnels", { key: KEY_A, body });
    expectError(r, 400, "invalid_request");
    expect(r.json.error.field).toBe(field);
  });

  test("400 for malformed JSON and for a non-object body", async () => {
    const bad = await s.call("POST", "/api/tunnels", { key: KEY_A, rawBody: "{nope", headers: { "content-type": "application/json" } });
    expectError(bad, 400, "invalid_request");
    expect(bad.json.error.field).toBe("body");
    expectError(await s.call("POST", "/api/tunnels", { key: KEY_A, body: [1, 2] }), 400, "invalid_request");
  });

  test("413 above 16 KiB (declared or chunked) and 415 for a non-JSON content type", async () => {
    const big = JSON.stringify({ subdomain: "x".repeat(MAX_BODY_BYTES) });
    expectError(await s.call("POST", "/api/tunnels", { key: KEY_A, rawBody: big, headers: { "content-type": "application/json" } }), 413, "payload_too_large");
    const chunked = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 5; i++) c.enqueue(new Uint8Array(4096).fill(32));
        c.close();
      },
    });
    const res = await fetch(`${s.url}/api/tunnels`, { method: "POST", body: chunked, headers: { "x-azhexgate-apikey": KEY_A, "content-type": "application/json" } });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("payload_too_large");
    const form = await s.call("POST", "/api/tunnels", { key: KEY_A, rawBody: "subdomain=abc", headers: { "content-type": "application/x-www-form-urlencoded" } });
    expectError(form, 415, "unsupported_media_type");
  });
});

describe("authentication", () => {
  test("401 unauthorized, same message for a missing and an unknown key, on every route", async () => {
    const missing = await s.call("GET", "/api/tunnels");
    const unknown = await s.call("GET", "/api/tunnels", { key: "not-a-real-key-0000000000000000" });
    const badBearer = await s.call("POST", "/api/tunnels/123456789/token", { bearer: "nope", body: { session_id: "x" } });
    for (const r of [missing, unknown, badBearer]) expectError(r, 401, "unauthorized");
    expect(missing.json.error.message).toBe(unknown.json.error.message);
    expect(unknown.headers.get("www-authenticate")).toContain("Bearer");
    expectError(await s.call("DELETE", "/api/tunnels/123456789"), 401, "unauthorized");
    expectError(await s.call("GET", "/api/tunnels/123456789", { bearer: KEY_A.slice(0, -1) }), 401, "unauthorized");
  });

  test("GET /api/openapi.json needs no key", async () => {
    const r = await s.call("GET", "/api/openapi.json");
    expect(r.status).toBe(200);
    expect(r.json.openapi).toBe("3.1.0");
  });
});

describe("reading and deleting", () => {
  test("list and get show only the caller's tunnels, without tokens; key B gets 404 for A's", async () => {
    const a = (await s.call("POST", "/api/tunnels", { key: KEY_A, body: {} })).json;
    const b = (await s.call("POST", "/api/tunnels", { key: KEY_B, body: {} })).json;
    const listA = await s.call("GET", "/api/tunnels", { key: KEY_A });
    expect(listA.status).toBe(200);
    const idsA = listA.json.tunnels.map((t: { id: string }) => t.id);
    expect(idsA).toContain(a.id);
    expect(idsA).not.toContain(b.id);
    expect(listA.text).not.toContain("listener_token");
    expect(listA.text).not.toContain("session_id");
    const got = await s.call("GET", `/api/tunnels/${a.id}`, { key: KEY_A });
    expect(got.status).toBe(200);
    expect(got.json).toEqual({ ...listA.json.tunnels.find((t: { id: string }) => t.id === a.id) });
    const foreign = await s.call("GET", `/api/tunnels/${a.id}`, { key: KEY_B });
    const unknown = await s.call("GET", "/api/tunnels/99999999", { key: KEY_B });
    expectError(foreign, 404, "not_found");
    expect(foreign.text).toBe(unknown.text);
    expectError(await s.call("DELETE", `/api/tunnels/${a.id}`, { key: KEY_B }), 404, "not_found");
    expectError(await s.call("POST", `/api/tunnels/${a.id}/token`, { key: KEY_B, body: { session_id: a.session_id } }), 404, "not_found");
    expect(s.relay.entities.get(`hc-${a.id}`)).toBeDefined();
  });

  test("DELETE removes the tunnel and its HC; a second DELETE is 404", async () => {
    const t = (await s.call("POST", "/api/tunnels", { key: KEY_A })).json;
    const del = await s.call("DELETE", `/api/tunnels/${t.id}`, { key: KEY_A });
    expect(del.status).toBe(204);
    expect(del.text).toBe("");
    expect(s.relay.entities.get(`hc-${t.id}`)).toBeUndefined();
    expectError(await s.call("GET", `/api/tunnels/${t.id}`, { key: KEY_A }), 404, "not_found");
    expectError(await s.call("DELETE", `/api/tunnels/${t.id}`, { key: KEY_A }), 404, "not_found");
  });

  test("ids that cannot exist are 404 too; unknown paths are 404; wrong methods 405 with Allow", async () => {
    expectError(await s.call("GET", "/api/tunnels/%2e%2e", { key: KEY_A }), 404, "not_found");
    expectError(await s.call("GET", `/api/tunnels/${"9".repeat(41)}`, { key: KEY_A }), 404, "not_found");
    expectError(await s.call("GET", "/api/nothing", { key: KEY_A }), 404, "not_found");
    const put = await s.call("PUT", "/api/tunnels", { key: KEY_A, body: {} });
    expectError(put, 405, "method_not_allowed");
    expect(put.headers.get("allow")).toBe("GET, POST");
    expect((await s.call("GET", "/api/tunnels/123456789/token", { key: KEY_A })).headers.get("allow")).toBe("POST");
    expect((await s.call("POST", "/api/openapi.json", { key: KEY_A })).status).toBe(405);
  });
});

describe("POST /api/tunnels/{id}/token", () => {
  test("issues a fresh token and renews the idle deadline", async () => {
    const t = (await s.call("POST", "/api/tunnels", { key: KEY_A })).json;
    s.clock.now += 60_000;
    const r = await s.call("POST", `/api/tunnels/${t.id}/token`, { key: KEY_A, body: { session_id: t.session_id } });
    expect(r.status).toBe(200);
    expect(r.json.listener_token).toStartWith("SharedAccessSignature ");
    expect(Date.parse(r.json.expires_at)).toBeGreaterThan(Date.now());
    expect(Date.parse(r.json.idle_expires_at)).toBe(Date.parse(t.idle_expires_at) + 60_000);
  });

  test("400 without session_id, with a bad `rejected`, or with no body; 409 for a stale session", async () => {
    const t = (await s.call("POST", "/api/tunnels", { key: KEY_A })).json;
    const path = `/api/tunnels/${t.id}/token`;
    const none = await s.call("POST", path, { key: KEY_A });
    expectError(none, 400, "invalid_request");
    expect(none.json.error.field).toBe("body");
    expect((await s.call("POST", path, { key: KEY_A, body: {} })).json.error.field).toBe("session_id");
    expect((await s.call("POST", path, { key: KEY_A, body: { session_id: t.session_id, rejected: "yes" } })).json.error.field).toBe("rejected");
    expectError(await s.call("POST", path, { key: KEY_A, body: { session_id: "00000000-0000-0000-0000-000000000000" } }), 409, "session_superseded");
    expectError(await s.call("POST", path, { key: KEY_A, rawBody: "x", headers: { "content-type": "text/plain" } }), 415, "unsupported_media_type");
  });
});

describe("failures", () => {
  test("502 relay_unavailable when provisioning fails; the tunnel is not kept; the cause is logged redacted", async () => {
    s.relayDown.on = true;
    try {
      const r = await s.call("POST", "/api/tunnels", { key: KEY_A, body: { subdomain: "down-app" } });
      expectError(r, 502, "relay_unavailable");
      expect(r.json.error.message).toContain("check the relay namespace");
      expect(r.text).not.toContain("ECONNREFUSED");
    } finally {
      s.relayDown.on = false;
    }
    expect(await s.registry.get("down-app")).toBeUndefined();
    const line = s.logs.find((l) => l.includes("api relay error"));
    expect(line).toContain("ECONNREFUSED");
    expect(line).toContain("sig=REDACTED");
  });

  test("500 internal with a generic message when the registry fails; logged with its cause", async () => {
    const broken = await startApiStack();
    try {
      await broken.registry.close();
      const r = await broken.call("GET", "/api/tunnels", { key: KEY_A });
      expectError(r, 500, "internal");
      expect(r.json.error.message).not.toMatch(/database|sqlite/i);
      expect(broken.logs.some((l) => l.includes("api internal error") && /closed|database/i.test(l))).toBe(true);
      assertNoSecrets(broken);
    } finally {
      await broken.stop();
    }
  });

  test("every request is logged with route, status and key id, never the key", async () => {
    await s.call("GET", "/api/tunnels", { key: KEY_B });
    const line = s.logs.findLast((l) => l.includes('"api request"'));
    const obj = JSON.parse(line ?? "{}");
    expect(obj).toMatchObject({ method: "GET", route: "/api/tunnels", status: 200 });
    expect(obj.key_id).toMatch(/^[0-9a-f]{16}$/);
  });
});
