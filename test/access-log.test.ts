/**
 * The gateway's public access log: one JSON line per public request and WebSocket session (tunnel,
 * method, path without the query, the status the client got, duration, bytes, client address),
 * with AZHEXGATE_ACCESS_LOG=all|errors|off and AZHEXGATE_ACCESS_LOG_SAMPLE for successes.
 */
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolveGatewayConfig } from "../src/config.ts";
import { API_KEY, get, killAll, spawnCli, startGatewayChild, type Child } from "./support/cli-proc.ts";
import { startEchoApp, wsEcho } from "./support/echo-app.ts";

afterEach(killAll);

const cwd = () => mkdtempSync(join(tmpdir(), "azhexgate-access-"));

const app = () =>
  startEchoApp({
    slowMs: 4000,
    async fetch(req) {
      if (new URL(req.url).pathname === "/missing") return new Response("no such page", { status: 404 });
      if (req.method === "POST") return new Response(`got ${(await req.arrayBuffer()).byteLength}`);
      return new Response("x".repeat(1000));
    },
  });

type Line = Record<string, unknown>;
/** The gateway's access-log lines so far. */
const accessLines = (gw: Child): Line[] =>
  gw.err.flatMap((l) => {
    try {
      const v = JSON.parse(l) as Line;
      return v.tag === "gateway:access" || (v.event === "request" && "bytes_out" in v) ? [v] : [];
    } catch {
      return [];
    }
  });

async function stackWith(env: Record<string, string>) {
  const origin = app();
  const gw = await startGatewayChild({ env });
  const agent = spawnCli(["start", String(origin.port), "--api-url", gw.apiUrl, "--api-key", API_KEY, "--json"], { cwd: cwd() });
  const ready = await agent.waitEvent((e) => e.event === "ready", 20_000);
  expect(ready.loopback_url).toBeUndefined(); // loopback ports are the embedded gateway's
  return { origin, gw, agent, url: String(ready.public_url), id: String(ready.tunnel_id) };
}

test("all (default): every request and WebSocket session is one line with status, bytes, duration, client; no query string", async () => {
  const s = await stackWith({});
  try {
    const r1 = await get(`${s.url}/page?token=very-secret-value`);
    expect((await r1.text()).length).toBe(1000);
    const r2 = await get(`${s.url}/upload`, 5000, { method: "POST", body: "y".repeat(300) });
    expect(await r2.text()).toBe("got 300");
    expect((await get(`${s.url}/missing`)).status).toBe(404);
    await wsEcho(`${s.url.replace(/^http/, "ws")}/ws`, "hello");
    // the client leaves before the answer: 499
    expect(await get(`${s.url}/slow`, 500).then(() => "answered", () => "aborted")).toBe("aborted");
    await s.gw.child.waitErr((l) => l.includes('"/slow"'), 10_000);
    // a tunnel that does not exist: the gateway's own 404
    const noTunnel = s.url.replace(s.id, "nosuchtunnel1");
    expect((await get(`${noTunnel}/x`)).status).toBe(404);

    await s.gw.child.waitErr((l) => l.includes('"/ws"') && l.includes("bytes_out"), 10_000);
    await s.gw.child.waitErr((l) => l.includes('"nosuchtunnel1"'), 10_000);
    const lines = accessLines(s.gw.child);
    const by = (path: string) => lines.find((l) => l.path === path);
    expect(by("/page")).toMatchObject({ tunnel: s.id, kind: "http", method: "GET", status: 200, bytes_out: 1000, client: "127.0.0.1" });
    expect(typeof by("/page")!.ms).toBe("number");
    expect(by("/upload")).toMatchObject({ method: "POST", status: 200, bytes_in: 300, bytes_out: 7 });
    expect(by("/missing")).toMatchObject({ status: 404 });
    expect(by("/slow")).toMatchObject({ status: 499, error: "client_gone", bytes_out: 0 });
    expect(by("/ws")).toMatchObject({ tunnel: s.id, kind: "ws", status: 101 });
    expect(Number(by("/ws")!.bytes_in)).toBeGreaterThanOrEqual(5);
    expect(lines.find((l) => l.tunnel === "nosuchtunnel1")).toMatchObject({ status: 404, error: "tunnel_not_found" });
    // one line per request, and the query (which may hold secrets) never
    expect(lines.filter((l) => l.path === "/page")).toHaveLength(1);
    expect(s.gw.child.text().err).not.toContain("very-secret-value");
  } finally {
    s.origin.stop(true);
  }
}, 60_000);

test("errors + sample 0: successes are not logged, failures (404, 502) are", async () => {
  const s = await stackWith({ AZHEXGATE_ACCESS_LOG: "errors" });
  try {
    for (let i = 0; i < 3; i++) expect((await get(`${s.url}/ok${i}`)).status).toBe(200);
    expect((await get(`${s.url}/missing`)).status).toBe(404);
    s.origin.stop(true); // the app goes away: 502
    expect((await get(`${s.url}/down`)).status).toBe(502);
    await s.gw.child.waitErr((l) => l.includes('"/down"'), 10_000);
    const lines = accessLines(s.gw.child);
    expect(lines.map((l) => [l.path, l.status])).toEqual([
      ["/missing", 404],
      ["/down", 502],
    ]);
    expect(lines[1]).toMatchObject({ error: "origin_unreachable" });
  } finally {
    s.origin.stop(true);
  }
}, 60_000);

test("off: no access lines at all; sample 0 in all mode keeps only failures", async () => {
  const off = await stackWith({ AZHEXGATE_ACCESS_LOG: "off" });
  try {
    expect((await get(`${off.url}/a`)).status).toBe(200);
    expect((await get(`${off.url}/missing`)).status).toBe(404);
    await Bun.sleep(300);
    expect(accessLines(off.gw.child)).toEqual([]);
  } finally {
    off.origin.stop(true);
  }
  const sampled = await stackWith({ AZHEXGATE_ACCESS_LOG_SAMPLE: "0" });
  try {
    expect((await get(`${sampled.url}/a`)).status).toBe(200);
    expect((await get(`${sampled.url}/missing`)).status).toBe(404);
    await sampled.gw.child.waitErr((l) => l.includes('"/missing"'), 10_000);
    expect(accessLines(sampled.gw.child).map((l) => l.path)).toEqual(["/missing"]);
  } finally {
    sampled.origin.stop(true);
  }
}, 60_000);

test("bad access-log settings are configuration errors naming the setting", () => {
  expect(() => resolveGatewayConfig({}, { AZHEXGATE_ACCESS_LOG: "some" })).toThrow(/AZHEXGATE_ACCESS_LOG must be one of all, errors, off/);
  expect(() => resolveGatewayConfig({}, { AZHEXGATE_ACCESS_LOG_SAMPLE: "10%" })).toThrow(/AZHEXGATE_ACCESS_LOG_SAMPLE must be a fraction from 0 to 1/);
  expect(resolveGatewayConfig({}, {})).toMatchObject({ accessLog: "all", accessLogSample: 1 });
});
