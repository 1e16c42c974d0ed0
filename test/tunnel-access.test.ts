/**
 * Per-tunnel access policy and limits through the full path (public client → gateway → relay →
 * agent → app): basic auth, IP allow / deny, request rate and concurrent streams, each also for a
 * WebSocket upgrade; a refused request never reaches the app. Malformed policies: 400 from the API.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type AccessStack, startAccessStack } from "./support/access-stack.ts";

let s: AccessStack;
beforeAll(async () => {
  s = await startAccessStack({ AZHEXGATE_LIMIT_RATE_MAX: "1000/s", AZHEXGATE_LIMIT_STREAMS_MAX: "50" });
});
afterAll(async () => {
  await s?.stop();
});

const basic = (u: string, p: string) => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString("base64")}` });
const hits = (path: string) => s.seen.http.filter((h) => h.path === path).length;

describe("basic auth", () => {
  test("no / wrong credentials → 401 with a challenge, nothing reaches the app; right ones pass; the hash, not the password, is stored", async () => {
    const t = await s.tunnel({ basic_auth: ["ann:correct-horse", "ben:battery-staple"] });
    const none = await s.get(t.host, "/ba-none");
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toBe(`Basic realm="${t.host}", charset="UTF-8"`);
    expect(none.headers.get("x-azhexgate-error")).toBe("unauthorized");
    expect((await s.get(t.host, "/ba-wrong", { headers: basic("ann", "battery-staple") })).status).toBe(401);
    expect((await s.get(t.host, "/ba-wrong", { headers: basic("nobody", "correct-horse") })).status).toBe(401);
    expect(hits("/ba-none") + hits("/ba-wrong")).toBe(0);
    expect((await s.get(t.host, "/ba-ok", { headers: basic("ann", "correct-horse") })).status).toBe(200);
    expect((await s.get(t.host, "/ba-ok", { headers: basic("ben", "battery-staple") })).status).toBe(200);
    expect(hits("/ba-ok")).toBe(2);
    const rec = await s.app.registry.get(t.id);
    expect(JSON.stringify(rec)).not.toContain("correct-horse");
    expect(rec?.policy?.basicAuth?.map((e) => e.user)).toEqual(["ann", "ben"]);
    expect(s.logs.join("\n")).not.toContain("correct-horse");
    // WebSocket upgrades too
    const wsBefore = s.seen.ws;
    expect(await s.ws(t.host)).toBe("refused");
    expect(s.seen.ws).toBe(wsBefore);
    expect(await s.ws(t.host, { headers: basic("ann", "correct-horse") })).toBe("open");
    expect(s.seen.ws).toBe(wsBefore + 1);
  });
});

describe("identity headers", () => {
  test("client-sent X-AzHexGate-User-* headers never reach the app, on any tunnel", async () => {
    const t = await s.tunnel();
    const r = await s.get(t.host, "/spoof", { headers: { "x-azhexgate-user-email": "ceo@example.test", "x-azhexgate-user-oid": "x", "x-azhexgate-user-name": "CEO", "x-azhexgate-user-tenant": "t" } });
    expect(r.status).toBe(200);
    const h = s.seen.http.find((x) => x.path === "/spoof")!.headers;
    expect(Object.keys(h).filter((k) => k.startsWith("x-azhexgate-user-"))).toEqual([]);
  });
});

describe("IP rules", () => {
  test("allow-list and deny-list on the client address behind the trusted proxy; WebSocket alike", async () => {
    const t = await s.tunnel({ allow_ips: ["198.51.100.0/24"], deny_ips: ["198.51.100.66/32"] });
    const out = await s.get(t.host, "/ip-out", { client: "203.0.113.9" });
    expect(out.status).toBe(403);
    expect(out.headers.get("x-azhexgate-error")).toBe("access_denied");
    expect((await s.get(t.host, "/ip-denied", { client: "198.51.100.66" })).status).toBe(403);
    expect(hits("/ip-out") + hits("/ip-denied")).toBe(0);
    expect((await s.get(t.host, "/ip-in", { client: "198.51.100.7" })).status).toBe(200);
    expect(hits("/ip-in")).toBe(1);
    const wsBefore = s.seen.ws;
    expect(await s.ws(t.host, { client: "203.0.113.9" })).toBe("refused");
    expect(s.seen.ws).toBe(wsBefore);
    expect(await s.ws(t.host, { client: "198.51.100.7" })).toBe("open");
  });
});

describe("limits", () => {
  test("request rate: past the burst → 429 with Retry-After, counted in /metrics, never reaching the app", async () => {
    const t = await s.tunnel({ rate_limit: "1/m", rate_burst: 3 });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await s.get(t.host, "/rate")).status);
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    expect(hits("/rate")).toBe(3);
    const limited = await s.get(t.host, "/rate");
    expect(limited.headers.get("retry-after")).toMatch(/^\d+$/);
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(1);
    expect(await s.ws(t.host)).toBe("refused");
    const metrics = await (await fetch(`http://127.0.0.1:${s.app.gateway.port}/metrics`)).text();
    expect(metrics).toContain(`azhexgate_access_refusals_total{reason="rate_limited",tunnel="${t.id}"} 4`);
  });

  test("concurrent streams: a request past the limit while others are in flight → 429", async () => {
    const t = await s.tunnel({ max_streams: 2 });
    const slow = [s.get(t.host, "/slow"), s.get(t.host, "/slow")];
    // wait (bounded) until both are in flight at the app
    for (let i = 0; i < 100 && hits("/slow") < 2; i++) await Bun.sleep(20);
    expect(hits("/slow")).toBe(2);
    const third = await s.get(t.host, "/third");
    expect(third.status).toBe(429);
    expect(third.headers.get("retry-after")).toBe("1");
    expect(hits("/third")).toBe(0);
    expect((await Promise.all(slow)).map((r) => r.status)).toEqual([200, 200]);
    expect((await s.get(t.host, "/third")).status).toBe(200);
  });
});

describe("the API refuses malformed policies", () => {
  test.each([
    [{ basic_auth: ["nopassword"] }, "access.basic_auth"],
    [{ basic_auth: ["ann:short"] }, "access.basic_auth"],
    [{ allow_ips: ["10.0.0.0/33"] }, "access.allow_ips"],
    [{ deny_ips: "10.0.0.0/8" }, "access.deny_ips"],
    [{ rate_limit: "fast" }, "access.rate_limit"],
    [{ rate_limit: "5000/s" }, "access.rate_limit"],
    [{ max_streams: 0 }, "access.max_streams"],
    [{ max_streams: 51 }, "access.max_streams"],
    [{ entra: true }, "access.entra"],
    [{ colour: "red" }, "access.colour"],
  ])("%j → 400 (%s)", async (access, field) => {
    const r = await s.create({ access });
    expect(r.status).toBe(400);
    const body = (await r.json()) as { error: { code: string; field: string; message: string } };
    expect(body.error.code).toBe("invalid_request");
    expect(body.error.field).toBe(field);
    expect(body.error.message.length).toBeGreaterThan(10);
  });

  test("the view shows the policy without passwords", async () => {
    const r = await s.create({ access: { basic_auth: ["ann:correct-horse"], allow_ips: ["10.0.0.0/8"], rate_limit: "10/s" } });
    expect(r.status).toBe(201);
    const text = await r.text();
    expect(text).not.toContain("correct-horse");
    const v = JSON.parse(text);
    expect(v.access).toMatchObject({ basic_auth_users: ["ann"], allow_ips: ["10.0.0.0/8"], rate_limit: { per_second: 10, burst: 10 } });
  });
});

describe("start's access flags", () => {
  const { spawnCli, killAll } = require("./support/cli-proc.ts") as typeof import("./support/cli-proc.ts");
  const { ACCESS_KEY } = require("./support/access-stack.ts") as typeof import("./support/access-stack.ts");
  afterAll(() => killAll());
  const api = () => `http://localhost:${s.app.gateway.port}`;

  test.each([
    [["--basic-auth", "nopassword"], /--basic-auth: basic auth must be USER:PASSWORD/],
    [["--basic-auth", "ann:short"], /--basic-auth: the password/],
    [["--allow-ip", "10.1.2.3/40"], /--allow-ip: "10.1.2.3\/40" is not a CIDR range/],
    [["--rate-limit", "lots"], /--rate-limit: .*100\/s/],
    [["--max-streams", "many"], /--max-streams must be a whole number/],
    [["--bandwidth", "fast"], /--bandwidth: .*500k/],
  ])("%j → exit 2 before any request", async (flags, message) => {
    const before = s.logs.filter((l) => l.includes('"api request"')).length;
    const cli = spawnCli(["start", "3000", "--api-url", api(), ...flags], { env: { AZHEXGATE_API_KEY: ACCESS_KEY } });
    expect(await cli.exit()).toBe(2);
    expect(cli.text().err).toMatch(message);
    expect(s.logs.filter((l) => l.includes('"api request"')).length).toBe(before);
  });

  test("--entra on the embedded gateway (no visitor sign-in there) → exit 2 saying so", async () => {
    const cli = spawnCli(["start", "3000", "--entra"], { env: { AZHEXGATE_API_URL: undefined, AZHEXGATE_API_KEY: undefined } });
    expect(await cli.exit(30_000)).toBe(2);
    expect(cli.text().err).toContain("no visitor sign-in configured");
  }, 40_000);

  test("a policy the gateway refuses (above its maximum) → exit 2 with the gateway's reason", async () => {
    const cli = spawnCli(["start", "3000", "--api-url", api(), "--rate-limit", "5000/s"], { env: { AZHEXGATE_API_KEY: ACCESS_KEY } });
    expect(await cli.exit()).toBe(2);
    expect(cli.text().err).toMatch(/at most 1000\/s/);
  });
});

describe("bandwidth", () => {
  test("a 64 KiB/s cap slows a 256 KiB download and upload down (back-pressure, bodies intact)", async () => {
    const t = await s.tunnel({ bandwidth: "64k" });
    let t0 = performance.now();
    const down = await s.get(t.host, "/big");
    const bytes = new Uint8Array(await down.arrayBuffer());
    const downMs = performance.now() - t0;
    expect(down.status).toBe(200);
    expect(bytes.length).toBe(256 * 1024);
    expect(bytes.every((b) => b === 7)).toBe(true);
    // 64 KiB of burst, then 192 KiB at 64 KiB/s: at least ~3 s (lower bound only: a slow box is slower, never faster)
    expect(downMs).toBeGreaterThan(2500);
    t0 = performance.now();
    const up = await fetch(`http://127.0.0.1:${s.app.gateway.port}/upload`, { method: "POST", headers: { host: t.host }, body: new Uint8Array(256 * 1024) });
    const upMs = performance.now() - t0;
    expect(await up.json()).toEqual({ bytes: 256 * 1024 });
    expect(upMs).toBeGreaterThan(2500);
    const view = await s.create({ access: { bandwidth: "64k" } });
    expect(((await view.json()) as { access: { bandwidth: number } }).access.bandwidth).toBe(65536);
  }, 30_000);
});
