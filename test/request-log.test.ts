/**
 * Every request is visible: one `--json` event and one human line per HTTP request and per
 * WebSocket session, failures included, with the status the public client actually got
 * (502 app down, 499 client gone before the answer, 101 + close code for a WebSocket session).
 */
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { API_KEY, freePort, get, killAll, spawnCli, startGatewayChild } from "./support/cli-proc.ts";
import { startEchoApp, wsEcho } from "./support/echo-app.ts";

afterEach(killAll);

const cwd = () => mkdtempSync(join(tmpdir(), "azhexgate-reqlog-"));

const appWithWebSocket = () => startEchoApp({ slowMs: 5000, fetch: (req) => new Response(`hello ${new URL(req.url).pathname}`) });

test("--json: a 502 (app down), a client that left (499) and a WebSocket session each get a request event", async () => {
  const app = appWithWebSocket();
  const dead = freePort();
  try {
    const cli = spawnCli(["start", String(app.port), String(dead), "--json"], { cwd: cwd() });
    const up = await cli.waitEvent((e) => e.event === "ready" && e.local_url === `http://localhost:${app.port}`, 20_000);
    const down = await cli.waitEvent((e) => e.event === "ready" && e.local_url === `http://localhost:${dead}`, 20_000);

    const r = await get(`${down.public_url}/nothing-here`);
    expect(r.status).toBe(502);
    const e502 = await cli.waitEvent((e) => e.event === "request" && e.path === "/nothing-here");
    expect(e502).toMatchObject({ kind: "http", method: "GET", status: 502, error: "origin_unreachable", tunnel_id: down.tunnel_id });

    await wsEcho(`${String(up.public_url).replace(/^http/, "ws")}/ws`);
    const ews = await cli.waitEvent((e) => e.event === "request" && e.path === "/ws");
    expect(ews).toMatchObject({ kind: "ws", method: "GET", status: 101, close_code: 1000, tunnel_id: up.tunnel_id });
    expect(Number(ews.bytes)).toBeGreaterThanOrEqual(8); // "ping" both ways
    expect(ews.error).toBeUndefined();

    const gone = await get(`${up.public_url}/slow`, 500).then(() => "answered", () => "aborted");
    expect(gone).toBe("aborted");
    const e499 = await cli.waitEvent((e) => e.event === "request" && e.path === "/slow", 15_000);
    expect(e499).toMatchObject({ kind: "http", status: 499, error: "client_gone" });

    const ok = await get(`${up.public_url}/fine`);
    expect(await ok.text()).toBe("hello /fine");
    await cli.waitEvent((e) => e.event === "request" && e.path === "/fine" && e.status === 200 && e.error === undefined);
  } finally {
    app.stop(true);
  }
});

test("human output: the 502 and the WebSocket session each get one line saying what happened", async () => {
  const app = appWithWebSocket();
  const dead = freePort();
  try {
    const cli = spawnCli(["start", String(app.port), String(dead)], { cwd: cwd() });
    await cli.waitOut(/^Public URL:/, 20_000);
    await cli.waitOut((l) => l.startsWith("Public URL:") && cli.out.filter((x) => x.startsWith("Public URL:")).length === 2, 20_000);
    const urls = cli.out.filter((l) => l.startsWith("Public URL:")).map((l) => l.replace(/^Public URL:\s+/, ""));
    const forwards = cli.out.filter((l) => l.startsWith("Forwarding to:"));
    const upUrl = urls[forwards.findIndex((l) => l.endsWith(`:${app.port}`))]!;
    const downUrl = urls[forwards.findIndex((l) => l.endsWith(`:${dead}`))]!;

    expect((await get(`${downUrl}/down`)).status).toBe(502);
    expect(await cli.waitOut(/^GET\s+\/down\s/)).toMatch(/^GET\s+\/down\s+502\s+\d+ ms\s+0 B {2}origin_unreachable$/);
    await wsEcho(`${upUrl.replace(/^http/, "ws")}/ws`);
    expect(await cli.waitOut(/^WS\s+\/ws\s/)).toMatch(/^WS\s+\/ws\s+101\s+\d+ ms\s+\d+ B {2}closed 1000$/);
  } finally {
    app.stop(true);
  }
});

test("--json: a request the gateway times out (504) is logged with the status the client got", async () => {
  const gw = await startGatewayChild({ extra: ["--ttfb", "1"] });
  const app = appWithWebSocket();
  try {
    const cli = spawnCli(["start", String(app.port), "--api-url", gw.apiUrl, "--json"], { env: { AZHEXGATE_API_KEY: API_KEY }, cwd: cwd() });
    const ready = await cli.waitEvent((e) => e.event === "ready", 20_000);
    const res = await get(`${ready.public_url}/slow`, 10_000);
    expect(res.status).toBe(504);
    expect(res.headers.get("x-azhexgate-error")).toBe("origin_timeout");
    const e = await cli.waitEvent((x) => x.event === "request" && x.path === "/slow", 15_000);
    expect(e).toMatchObject({ kind: "http", status: 504, error: "origin_timeout", tunnel_id: ready.tunnel_id });
  } finally {
    app.stop(true);
  }
});
