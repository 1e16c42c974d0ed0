/**
 * Exposure (issue 12, Medium 12 and the per-key quota), against the real `azhexgate gateway`
 * process: `/metrics` only for loopback, the API allow-list or the metrics token by default
 * (AZHEXGATE_METRICS), tunnel ids of 13 base32 characters (~65 bits), AZHEXGATE_MAX_TUNNELS_PER_KEY.
 */
import { afterAll, expect, test } from "bun:test";
import { API_KEY, killAll, startGatewayChild } from "./support/cli-proc.ts";

afterAll(killAll);
const TOKEN = "metrics-secret-0123456789";
const trustLoopback = { AZHEXGATE_TRUSTED_PROXIES: "127.0.0.1/32" };

async function createTunnel(apiUrl: string) {
  const r = await fetch(`${apiUrl}/api/tunnels`, { method: "POST", headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" }, body: "{}" });
  return { status: r.status, json: (await r.json()) as { id?: string; error?: { code: string; message: string } } };
}
const metrics = (apiUrl: string, headers: Record<string, string> = {}) => fetch(`${apiUrl}/metrics`, { headers });

test("by default /metrics answers loopback and the token holder, not an internet client; tunnel ids are 13 base32 characters", async () => {
  const gw = await startGatewayChild({ env: { ...trustLoopback, AZHEXGATE_METRICS_TOKEN: TOKEN } });
  const ids = new Set<string>();
  for (let i = 0; i < 5; i++) {
    const t = await createTunnel(gw.apiUrl);
    expect(t.status).toBe(201);
    expect(t.json.id).toMatch(/^[a-z2-7]{13}$/); // 13 × 5 bits: not enumerable
    ids.add(t.json.id!);
  }
  expect(ids.size).toBe(5);
  // an internet client (through the trusted front end): refused, no tunnel id in the answer
  const outside = await metrics(gw.apiUrl, { "x-forwarded-for": "203.0.113.7" });
  expect(outside.status).toBe(403);
  expect(outside.headers.get("x-azhexgate-error")).toBe("metrics_forbidden");
  const body = await outside.text();
  for (const id of ids) expect(body).not.toContain(id);
  expect(body).not.toContain(TOKEN);
  // the wrong token: still refused; the right one: served
  expect((await metrics(gw.apiUrl, { "x-forwarded-for": "203.0.113.7", authorization: "Bearer wrong-token-000000000" })).status).toBe(403);
  const scraper = await metrics(gw.apiUrl, { "x-forwarded-for": "203.0.113.7", authorization: `Bearer ${TOKEN}` });
  expect(scraper.status).toBe(200);
  expect(await scraper.text()).toContain("azhexgate_gateway_errors_total");
  // loopback (a sidecar scraper): served
  expect((await metrics(gw.apiUrl)).status).toBe(200);
  gw.child.kill("SIGKILL");
}, 60_000);

test("AZHEXGATE_METRICS=public serves anyone; off serves nobody; the API allow-list may scrape", async () => {
  const pub = await startGatewayChild({ env: { ...trustLoopback, AZHEXGATE_METRICS: "public" } });
  expect((await metrics(pub.apiUrl, { "x-forwarded-for": "203.0.113.7" })).status).toBe(200);
  pub.child.kill("SIGKILL");
  const off = await startGatewayChild({ env: { AZHEXGATE_METRICS: "off" } });
  const r = await metrics(off.apiUrl);
  expect(r.status).toBe(404);
  expect(r.headers.get("x-azhexgate-error")).toBe("metrics_off");
  off.child.kill("SIGKILL");
  const listed = await startGatewayChild({ env: { ...trustLoopback, AZHEXGATE_API_ALLOW_CIDRS: "127.0.0.1/32,198.51.100.0/24" } });
  expect((await metrics(listed.apiUrl, { "x-forwarded-for": "198.51.100.9" })).status).toBe(200);
  expect((await metrics(listed.apiUrl, { "x-forwarded-for": "203.0.113.7" })).status).toBe(403);
  listed.child.kill("SIGKILL");
}, 60_000);

test("AZHEXGATE_MAX_TUNNELS_PER_KEY: one more tunnel than the quota is a 429 tunnel_quota with a sentence", async () => {
  const gw = await startGatewayChild({ env: { AZHEXGATE_MAX_TUNNELS_PER_KEY: "2" } });
  expect((await createTunnel(gw.apiUrl)).status).toBe(201);
  expect((await createTunnel(gw.apiUrl)).status).toBe(201);
  const third = await createTunnel(gw.apiUrl);
  expect(third.status).toBe(429);
  expect(third.json.error?.code).toBe("tunnel_quota");
  expect(third.json.error?.message).toContain("AZHEXGATE_MAX_TUNNELS_PER_KEY=2");
  gw.child.kill("SIGKILL");
}, 60_000);
