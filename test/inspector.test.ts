/**
 * The request inspector without a browser: `azhexgate start` captures what goes through the
 * tunnel (headers, the first bytes of bodies, WebSocket messages), serves it on 127.0.0.1 with
 * replay, refuses other hosts and sites, moves to the next port when its own is taken, and
 * `--no-inspect` turns all of it off.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loopbackAddress, loopbackHost, refusal } from "../src/agent/inspect/guard.ts";
import { BodyTap, bodyView } from "../src/agent/inspect/store.ts";
import { get, killAll, spawnCli, until } from "./support/cli-proc.ts";

afterEach(killAll);

const cwd = () => mkdtempSync(join(tmpdir(), "azhexgate-inspect-"));
const sha = (b: Uint8Array | ArrayBuffer) => createHash("sha256").update(new Uint8Array(b)).digest("hex");

function app() {
  return Bun.serve<undefined>({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req, server) {
      const url = new URL(req.url);
      if (url.pathname === "/ws" && server.upgrade(req, { data: undefined })) return undefined;
      if (url.pathname === "/sha") {
        const body = new Uint8Array(await req.arrayBuffer());
        return Response.json({ sha256: sha(body), size: body.length });
      }
      if (url.pathname === "/big") return new Response(new Uint8Array(300 * 1024).map((_, i) => i % 251));
      const body = await req.text();
      return Response.json({ method: req.method, path: url.pathname + url.search, body, header: req.headers.get("x-edit") });
    },
    websocket: {
      message(ws, msg) {
        ws.send(`echo:${msg}`);
      },
    },
  });
}

async function startAgent(port: number, extra: string[] = []) {
  const cli = spawnCli(["start", String(port), "--json", "--inspect-port", "0", ...extra], { cwd: cwd() });
  const ready = await cli.waitEvent((e) => e.event === "ready", 20_000);
  return { cli, ready, publicUrl: String(ready.public_url), inspect: String(ready.inspect_url ?? "") };
}

describe("the inspector's guards (pure)", () => {
  test("only loopback peers, loopback Host names with our port, and our own origin", () => {
    expect(loopbackAddress("127.0.0.1")).toBe(true);
    expect(loopbackAddress("::ffff:127.0.0.1")).toBe(true);
    expect(loopbackAddress("::1")).toBe(true);
    expect(loopbackAddress("10.0.0.5")).toBe(false);
    expect(loopbackAddress("192.168.1.2")).toBe(false);
    expect(loopbackHost("localhost:4040", 4040)).toBe(true);
    expect(loopbackHost("[::1]:4040", 4040)).toBe(true);
    expect(loopbackHost("127.0.0.1:4041", 4040)).toBe(false);
    expect(loopbackHost("attacker.example:4040", 4040)).toBe(false);
    const h = (o: Record<string, string>) => new Headers(o);
    expect(refusal("10.1.2.3", h({ host: "127.0.0.1:4040" }), 4040)).toContain("loopback");
    expect(refusal("127.0.0.1", h({ host: "rebind.example:4040" }), 4040)).toContain("DNS-rebinding");
    expect(refusal("127.0.0.1", h({ host: "127.0.0.1:4040", origin: "http://localhost:3000" }), 4040)).toContain("Cross-site");
    expect(refusal("127.0.0.1", h({ host: "127.0.0.1:4040", origin: "http://localhost:4040" }), 4040)).toBeUndefined();
    expect(refusal("127.0.0.1", h({ host: "127.0.0.1:4040" }), 4040)).toBeUndefined();
  });

  test("a body tap keeps the first bytes only, and a multi-byte character cut at the limit is still text", () => {
    const tap = new BodyTap(5);
    tap.push(new TextEncoder().encode("abcdé")); // é is 2 bytes: the 6th byte is cut
    tap.push(new Uint8Array(1000));
    expect(tap.size).toBe(1006);
    expect(tap.captured).toBe(5);
    const v = bodyView(tap);
    expect(v).toMatchObject({ truncated: true, encoding: "utf8", data: "abcd" });
    const bin = new BodyTap(10);
    bin.push(new Uint8Array([0, 1, 2, 255]));
    expect(bodyView(bin)).toMatchObject({ encoding: "base64", truncated: false, data: "AAEC/w==" });
  });
});

describe("azhexgate start with the inspector (default on)", () => {
  test("captures requests, replays them as they were and edited, and refuses other hosts and sites", async () => {
    const origin = app();
    try {
      const { publicUrl, inspect } = await startAgent(origin.port!);
      expect(inspect).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect((await get(`${publicUrl}/hello?x=1`)).status).toBe(200);
      const posted = await get(`${publicUrl}/form`, 5000, { method: "POST", body: "a=1&b=two", headers: { "content-type": "application/x-www-form-urlencoded" } });
      expect(posted.status).toBe(200);

      const list = await until("two captured requests", async () => {
        const l = (await (await fetch(`${inspect}/api/requests`)).json()) as { requests: Array<Record<string, unknown>> };
        return l.requests.length === 2 && l.requests.every((r) => r.done) ? l.requests : undefined;
      });
      expect(list.map((r) => [r.method, r.path, r.status])).toEqual([["POST", "/form", 200], ["GET", "/hello?x=1", 200]]);
      const filtered = (await (await fetch(`${inspect}/api/requests?method=POST`)).json()) as { requests: unknown[] };
      expect(filtered.requests).toHaveLength(1);

      const d = (await (await fetch(`${inspect}/api/requests/${list[0]!.id}`)).json()) as Record<string, any>;
      expect(d.request.body).toMatchObject({ encoding: "utf8", data: "a=1&b=two", truncated: false, size: 9 });
      expect(d.request.headers).toContainEqual(["content-type", "application/x-www-form-urlencoded"]);
      expect(d.response.status).toBe(200);
      expect(JSON.parse(d.response.body.data)).toMatchObject({ method: "POST", body: "a=1&b=two" });
      expect(typeof d.ttfb_ms).toBe("number");

      const again = (await (await fetch(`${inspect}/api/requests/${d.id}/replay`, { method: "POST" })).json()) as Record<string, any>;
      expect(again.result.status).toBe(200);
      expect(JSON.parse(again.result.body.data)).toMatchObject({ method: "POST", body: "a=1&b=two" });
      const edited = (await (
        await fetch(`${inspect}/api/requests/${d.id}/replay`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ method: "PUT", path: "/edited?y=2", headers: [["x-edit", "yes"]], body: "changed" }),
        })
      ).json()) as Record<string, any>;
      expect(JSON.parse(edited.result.body.data)).toEqual({ method: "PUT", path: "/edited?y=2", body: "changed", header: "yes" });
      // both replays are in the list, newest first, marked as replays of the original
      const after = ((await (await fetch(`${inspect}/api/requests`)).json()) as { requests: Array<Record<string, any>> }).requests;
      expect(after.slice(0, 2).map((r) => [r.id, r.replay_of, r.method, r.path, r.status, r.done])).toEqual([
        [edited.replay_id, d.id, "PUT", "/edited?y=2", 200, true],
        [again.replay_id, d.id, "POST", d.path, 200, true],
      ]);
      expect(after.find((r) => r.id === d.id)!.replay_of).toBeUndefined();
      const rd = (await (await fetch(`${inspect}/api/requests/${edited.replay_id}`)).json()) as Record<string, any>;
      expect(rd.request.body).toMatchObject({ encoding: "utf8", data: "changed" });
      expect(rd.request.headers).toContainEqual(["x-edit", "yes"]);
      expect(JSON.parse(rd.response.body.data)).toMatchObject({ method: "PUT", body: "changed" });
      const bad = await fetch(`${inspect}/api/requests/${d.id}/replay`, { method: "POST", body: JSON.stringify({ nope: 1 }) });
      expect(bad.status).toBe(400);
      expect(((await bad.json()) as any).error.code).toBe("invalid_field");

      // DNS rebinding and cross-site pages: 403 with a reason, nothing served
      const port = new URL(inspect).port;
      const rebound = await fetch(`${inspect}/api/requests`, { headers: { host: `rebind.attacker.example:${port}` } });
      expect(rebound.status).toBe(403);
      expect(((await rebound.json()) as any).error.message).toContain("DNS-rebinding");
      const crossSite = await fetch(`${inspect}/api/requests/${d.id}/replay`, { method: "POST", headers: { origin: "http://localhost:3000" } });
      expect(crossSite.status).toBe(403);
      const page = await fetch(`${inspect}/`);
      expect(page.status).toBe(200);
      expect(page.headers.get("content-security-policy")).toContain("default-src 'none'");
      expect(await page.text()).not.toMatch(/<(script|link)[^>]+(src|href)="?https?:/);
    } finally {
      origin.stop(true);
    }
  }, 60_000);

  test("bodies over the capture limit are marked truncated and still arrive intact both ways", async () => {
    const origin = app();
    try {
      const { publicUrl, inspect } = await startAgent(origin.port!, ["--inspect-body-limit", "1024"]);
      const up = crypto.getRandomValues(new Uint8Array(60_000));
      const upBody = new Uint8Array(3 * 1024 * 1024);
      for (let i = 0; i < upBody.length; i += up.length) upBody.set(up.subarray(0, Math.min(up.length, upBody.length - i)), i);
      const r = await get(`${publicUrl}/sha`, 30_000, { method: "POST", body: upBody });
      expect(await r.json()).toEqual({ sha256: sha(upBody), size: upBody.length });
      const down = await get(`${publicUrl}/big`, 30_000);
      const downBody = await down.arrayBuffer();
      expect(sha(downBody)).toBe(sha(new Uint8Array(300 * 1024).map((_, i) => i % 251)));

      const list = await until("both captured", async () => {
        const l = (await (await fetch(`${inspect}/api/requests`)).json()) as { requests: Array<Record<string, any>> };
        return l.requests.length === 2 && l.requests.every((x) => x.done) ? l.requests : undefined;
      });
      const upload = (await (await fetch(`${inspect}/api/requests/${list.find((x) => x.path === "/sha")!.id}`)).json()) as Record<string, any>;
      expect(upload.request.body).toMatchObject({ size: upBody.length, captured: 1024, truncated: true, encoding: "base64" });
      const download = (await (await fetch(`${inspect}/api/requests/${list.find((x) => x.path === "/big")!.id}`)).json()) as Record<string, any>;
      expect(download.response.body).toMatchObject({ size: 300 * 1024, captured: 1024, truncated: true });
      // a cut body cannot be replayed as captured; an edited one can
      const refused = await fetch(`${inspect}/api/requests/${upload.id}/replay`, { method: "POST" });
      expect(refused.status).toBe(409);
      expect(((await refused.json()) as any).error.code).toBe("body_truncated");
    } finally {
      origin.stop(true);
    }
  }, 90_000);

  test("a WebSocket session is captured with message counts and the last messages", async () => {
    const origin = app();
    try {
      const { publicUrl, inspect } = await startAgent(origin.port!);
      const ws = new WebSocket(`${publicUrl.replace(/^http/, "ws")}/ws`);
      const got: string[] = [];
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error("websocket timed out")), 10_000);
        ws.onopen = () => ["one", "two", "three"].forEach((m) => ws.send(m));
        ws.onmessage = (e) => {
          got.push(String(e.data));
          if (got.length === 3) ws.close(1000);
        };
        ws.onclose = () => {
          clearTimeout(t);
          resolve();
        };
        ws.onerror = () => reject(new Error("websocket failed"));
      });
      const e = await until("the finished session", async () => {
        const l = (await (await fetch(`${inspect}/api/requests`)).json()) as { requests: Array<Record<string, any>> };
        const s = l.requests.find((x) => x.kind === "ws");
        return s?.done ? s : undefined;
      });
      expect(e.messages).toEqual({ in: 3, out: 3 });
      const d = (await (await fetch(`${inspect}/api/requests/${e.id}`)).json()) as Record<string, any>;
      expect(d.status).toBe(101);
      expect(d.ws_messages.map((m: any) => `${m.dir}:${m.body.data}`)).toEqual(expect.arrayContaining(["in:one", "out:echo:one", "in:three", "out:echo:three"]));
    } finally {
      origin.stop(true);
    }
  }, 60_000);

  test("the inspector takes the next port when its own is taken; --no-inspect captures nothing and serves nothing", async () => {
    const origin = app();
    const squatter = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("someone else") });
    try {
      const taken = squatter.port!;
      const cli = spawnCli(["start", String(origin.port), "--json", "--inspect-port", String(taken)], { cwd: cwd() });
      const ready = await cli.waitEvent((e) => e.event === "ready", 20_000);
      const port = Number(new URL(String(ready.inspect_url)).port);
      expect(port).toBeGreaterThan(taken);
      expect(port).toBeLessThan(taken + 20);
      const human = spawnCli(["start", String(origin.port), "--inspect-port", "0"], { cwd: cwd() });
      expect(await human.waitOut(/^Inspector:\s+http:\/\/127\.0\.0\.1:\d+$/, 20_000)).toBeTruthy();

      const off = spawnCli(["start", String(origin.port), "--json", "--no-inspect"], { cwd: cwd() });
      const r2 = await off.waitEvent((e) => e.event === "ready", 20_000);
      expect(r2.inspect_url).toBeUndefined();
      expect((await get(`${r2.public_url}/x`)).status).toBe(200);
      await off.waitEvent((e) => e.event === "request", 10_000);
    } finally {
      squatter.stop(true);
      origin.stop(true);
    }
  }, 60_000);

  test("bad inspector settings are usage errors naming the flag", async () => {
    const cli = spawnCli(["start", "3000", "--inspect-entries", "0"], { cwd: cwd() });
    expect(await cli.exit()).toBe(2);
    expect(cli.text().err).toContain("--inspect-entries (inspect_entries in a config file) must be a whole number from 1");
  });
});
