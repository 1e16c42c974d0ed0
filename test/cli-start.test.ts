/**
 * `azhexgate start` as a child process with the embedded default (gateway + relay emulator in the
 * process, no configuration): --json events, the human banner and request lines, curl through the
 * printed URL, Ctrl+C draining a slow download (and a second Ctrl+C stopping at once), a port with
 * nothing listening yet, and two `start`s side by side.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, get, killAll, spawnCli, startOrigin, until } from "./support/cli-proc.ts";

const origins: Array<{ stop(force?: boolean): unknown }> = [];
afterEach(async () => {
  await killAll();
  for (const o of origins.splice(0)) o.stop(true);
});

/** An empty directory: no azhexgate.json / .toml to pick up. */
const emptyCwd = () => mkdtempSync(join(tmpdir(), "azhexgate-cli-"));

function app(slowChunks = 15, chunkMs = 100) {
  const o = startOrigin((req) => {
    const path = new URL(req.url).pathname;
    if (path === "/slow") {
      let i = 0;
      const chunk = new Uint8Array(64 * 1024).fill(0x61);
      return new Response(
        new ReadableStream({
          async pull(c) {
            if (i++ >= slowChunks) return c.close();
            await Bun.sleep(chunkMs);
            c.enqueue(chunk);
          },
        }),
        { headers: { "content-type": "application/octet-stream", "content-length": String(slowChunks * chunk.length) } },
      );
    }
    return new Response(`hello from ${path}`);
  });
  origins.push(o);
  return o;
}

describe("azhexgate start (embedded default)", () => {
  test("--json: ready first, then a request event per public request, state events on Ctrl+C", async () => {
    const origin = app();
    const cli = spawnCli(["start", "--port", String(origin.port), "--json"], { cwd: emptyCwd() });
    await cli.waitOut(/\S/, 20_000);
    const ready = JSON.parse(cli.out[0]!);
    expect(ready).toMatchObject({ event: "ready", local_url: `http://localhost:${origin.port}` });
    expect(ready.public_url).toMatch(/^http:\/\/[a-z2-7]{13}\.localhost:\d+$/);

    const a = await get(`${ready.public_url}/one`);
    expect(await a.text()).toBe("hello from /one");
    const b = await get(`${ready.public_url}/two?x=1`, 5000, { method: "POST", body: "data" });
    expect(b.status).toBe(200);
    await b.arrayBuffer();
    const missing = await get(`${ready.public_url.replace(/\/\/[a-z2-7]+\./, "//1.")}/nope`);
    expect(missing.status).toBe(404); // another id: not ours, no event for it

    const r1 = await cli.waitEvent((e) => e.event === "request" && e.path === "/one");
    expect(r1).toMatchObject({ method: "GET", status: 200, bytes: "hello from /one".length, tunnel_id: ready.tunnel_id });
    expect(typeof r1.ms).toBe("number");
    const r2 = await cli.waitEvent((e) => e.event === "request" && e.path === "/two?x=1");
    expect(r2).toMatchObject({ method: "POST", status: 200, bytes: "hello from /two".length });

    cli.kill("SIGINT");
    expect(await cli.exit()).toBe(0);
    const events = cli.events();
    expect(events.filter((e) => e.event === "request")).toHaveLength(2);
    const states = events.filter((e) => e.event === "state").map((e) => e.state);
    expect(states).toEqual(["stopping", "offline"]);
    expect(events.find((e) => e.state === "offline")).toMatchObject({ reason: "stopped", local_url: `http://localhost:${origin.port}` });
    // every stdout line is one JSON event
    for (const line of cli.out.filter(Boolean)) expect(() => JSON.parse(line)).not.toThrow();
  });

  test("human output: the banner (with the loopback URL and the inspector's address), then one line per request", async () => {
    const origin = app();
    const cli = spawnCli(["start", "--port", String(origin.port)], { cwd: emptyCwd() });
    await cli.waitOut(/^Forwarding to:/, 20_000);
    expect(cli.out[0]).toBe("Tunnel established");
    expect(cli.out[1]).toMatch(/^Public URL: {4}http:\/\/[a-z2-7]{13}\.localhost:\d+$/);
    expect(cli.out[2]).toBe(`Forwarding to: http://localhost:${origin.port}`);
    await cli.waitOut(/^Inspector:/);
    expect(cli.out[3]).toMatch(/^Loopback URL: {2}http:\/\/127\.0\.0\.1:\d+ /);
    expect(cli.out[4]).toMatch(/^Inspector: {5}http:\/\/127\.0\.0\.1:\d+$/);
    const url = cli.out[1]!.replace(/^Public URL:\s+/, "");

    for (const p of ["/a", "/bb", "/ccc"]) expect(await (await get(`${url}${p}`)).text()).toBe(`hello from ${p}`);
    await cli.waitOut(/^GET\s+\/ccc\s/);
    const lines = cli.out.slice(5).filter((l) => l.trim());
    expect(lines).toHaveLength(3);
    for (const [i, p] of ["/a", "/bb", "/ccc"].entries()) {
      expect(lines[i]).toMatch(new RegExp(`^GET\\s+${p}\\s+200\\s+\\d+ ms\\s+${`hello from ${p}`.length} B$`));
    }
    expect(cli.err.filter(Boolean)).toEqual([]); // nothing on stderr while all is well
    cli.kill("SIGINT");
    expect(await cli.exit()).toBe(0);
  });

  test("no configuration at all: the printed URL answers curl with the app's response", async () => {
    const origin = app();
    const cli = spawnCli(["start", "--port", String(origin.port)], { cwd: emptyCwd() });
    const line = await cli.waitOut(/^Public URL:/, 20_000);
    const url = line.replace(/^Public URL:\s+/, "");
    expect(url).toMatch(/^http:\/\/[a-z2-7]{13}\.localhost:\d+$/);
    const curl = Bun.spawn(["curl", "-s", "--max-time", "5", `${url}/from-curl`], { stdout: "pipe", stderr: "pipe" });
    const body = await new Response(curl.stdout).text();
    expect(await curl.exited).toBe(0);
    expect(body).toBe("hello from /from-curl");
  });

  test("two `start`s side by side each get their own gateway and serve their own app", async () => {
    const a = startOrigin(() => new Response("app A"));
    const b = startOrigin(() => new Response("app B"));
    origins.push(a, b);
    const cliA = spawnCli(["start", "--port", String(a.port), "--json"], { cwd: emptyCwd() });
    const urlA = String((await cliA.waitEvent((e) => e.event === "ready", 20_000)).public_url);
    const cliB = spawnCli(["start", "--port", String(b.port), "--json"], { cwd: emptyCwd() });
    const urlB = String((await cliB.waitEvent((e) => e.event === "ready", 20_000)).public_url);
    expect(new URL(urlB).port).not.toBe(new URL(urlA).port);
    // fresh connections each time: a shared (SO_REUSEPORT) listener would split them between the two
    for (let i = 0; i < 12; i++) {
      expect(await (await get(urlA, 5000, { keepalive: false, headers: { connection: "close" } })).text()).toBe("app A");
      expect(await (await get(urlB, 5000, { keepalive: false, headers: { connection: "close" } })).text()).toBe("app B");
    }
  });

  test("Ctrl+C during a slow download lets it finish with every byte, then exits 0", async () => {
    const origin = app(15, 100); // 15 × 64 KiB over ~1.5 s
    const cli = spawnCli(["start", "--port", String(origin.port), "--json"], { cwd: emptyCwd() });
    const url = String((await cli.waitEvent((e) => e.event === "ready", 20_000)).public_url);
    const res = await get(`${url}/slow`, 15_000);
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let bytes = (await reader.read()).value?.length ?? 0; // the download is under way
    expect(bytes).toBeGreaterThan(0);
    const t0 = Date.now();
    cli.kill("SIGINT");
    const stopping = await cli.waitEvent((e) => e.event === "state" && e.state === "stopping");
    expect(stopping.inFlight).toBe(1);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      bytes += value.length;
    }
    expect(bytes).toBe(15 * 64 * 1024);
    expect(await cli.exit(10_000)).toBe(0);
    expect(Date.now() - t0).toBeLessThan(8000); // drained, not the whole 10 s grace
    expect(await cli.waitEvent((e) => e.event === "request" && e.path === "/slow")).toMatchObject({ status: 200, bytes: 15 * 64 * 1024 });
  });

  test("a second Ctrl+C stops at once, cutting the download", async () => {
    const origin = app(100, 100); // ~10 s: far longer than the test waits
    const cli = spawnCli(["start", "--port", String(origin.port), "--json"], { cwd: emptyCwd() });
    const url = String((await cli.waitEvent((e) => e.event === "ready", 20_000)).public_url);
    const res = await get(`${url}/slow`, 15_000);
    const reader = res.body!.getReader();
    await reader.read();
    cli.kill("SIGINT");
    await cli.waitEvent((e) => e.event === "state" && e.state === "stopping");
    const t0 = Date.now();
    cli.kill("SIGINT");
    await cli.exit(3000);
    expect(Date.now() - t0).toBeLessThan(2000);
    let bytes = 0;
    let cut = false;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        bytes += value.length;
      }
    } catch {
      cut = true;
    }
    // The client must see the cut as an error: a clean end after fewer bytes would pass a
    // truncated download off as complete.
    expect(cut).toBe(true);
    expect(bytes).toBeLessThan(99 * 64 * 1024);
  });

  test("nothing listening on the port: warns, keeps running, 502 origin_unreachable naming the port, serves once the app is up", async () => {
    const port = freePort();
    const cli = spawnCli(["start", "--port", String(port), "--json"], { cwd: emptyCwd() });
    const warn = await cli.waitEvent((e) => e.event === "warning", 20_000);
    expect(warn).toMatchObject({ code: "origin_not_listening", local_port: port });
    expect(String(warn.message)).toBe(`Nothing is listening on localhost:${port} yet; requests will get 502 until your app starts.`);
    const url = String((await cli.waitEvent((e) => e.event === "ready")).public_url);

    const res = await get(`${url}/x`, 5000, { headers: { accept: "application/json" } });
    expect(res.status).toBe(502);
    expect(res.headers.get("x-azhexgate-error")).toBe("origin_unreachable");
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("origin_unreachable");
    expect(body.error.message).toContain(`localhost:${port}`);
    expect(body.error.message).toMatch(/start the local app/);
    expect(cli.proc.exitCode).toBeNull();

    origins.push(startOrigin(() => new Response("up now"), port));
    const text = await until("the tunnel to serve the app", async () => {
      const r = await get(`${url}/x`);
      return r.status === 200 ? r.text() : (await r.arrayBuffer(), undefined);
    }, 10_000);
    expect(text).toBe("up now");
    expect(cli.proc.exitCode).toBeNull();
  });
});
