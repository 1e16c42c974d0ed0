/**
 * `start` conventions from the first hour: a positional port (`start 3000`, `start
 * localhost:5173`), no false "not listening" warning for an app on ::1 only (and the real one is
 * a warning, not an error), and a fast Ctrl+C: well under a second when nothing is in flight,
 * bounded by --grace (and saying so truthfully) when something is.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseTarget } from "../src/agent/start-config.ts";
import { freePort, get, killAll, spawnCli } from "./support/cli-proc.ts";

afterEach(killAll);

const cwd = () => mkdtempSync(join(tmpdir(), "azhexgate-conv-"));

describe("positional port", () => {
  test("parseTarget reads the forms users type", () => {
    expect(parseTarget("3000")).toEqual({ port: 3000 });
    expect(parseTarget("localhost:5173")).toEqual({ port: 5173, host: "localhost" });
    expect(parseTarget("127.0.0.1:8000")).toEqual({ port: 8000, host: "127.0.0.1" });
    expect(parseTarget("[::1]:3000")).toEqual({ port: 3000, host: "::1" });
    expect(parseTarget("http://localhost:3000")).toEqual({ port: 3000, host: "localhost", https: false });
    expect(parseTarget("https://app.local")).toEqual({ port: 443, host: "app.local", https: true });
    expect(() => parseTarget("0")).toThrow(/1 to 65535/);
    expect(() => parseTarget("my app")).toThrow('cannot read "my app" (the local app to expose: a port like 3000, or host:port like localhost:5173)');
  });

  test("`start PORT` and `start localhost:PORT` serve the app; a bad one exits 2", async () => {
    const app = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => new Response(`app saw ${req.headers.get("host")}`) });
    try {
      for (const target of [String(app.port), `localhost:${app.port}`]) {
        const cli = spawnCli(["start", target, "--json"], { cwd: cwd() });
        const ready = await cli.waitEvent((e) => e.event === "ready", 20_000);
        expect(ready.local_url).toBe(`http://localhost:${app.port}`);
        expect(await (await get(String(ready.public_url))).text()).toBe(`app saw localhost:${app.port}`);
        cli.kill("SIGINT");
        expect(await cli.exit()).toBe(0);
      }
      const bad = spawnCli(["start", "three-thousand"], { cwd: cwd() });
      expect(await bad.exit()).toBe(2);
      expect(bad.text().err).toContain('azhexgate start: cannot read "three-thousand"');
    } finally {
      app.stop(true);
    }
  });
});

describe("the origin pre-check", () => {
  test("an app listening on ::1 only gets no warning and is served; nothing at all is a warning, not an error", async () => {
    const v6 = Bun.serve({ hostname: "::1", port: 0, fetch: () => new Response("from ::1") });
    try {
      const cli = spawnCli(["start", String(v6.port), "--json"], { cwd: cwd() });
      const ready = await cli.waitEvent((e) => e.event === "ready", 20_000);
      expect(await (await get(String(ready.public_url))).text()).toBe("from ::1");
      expect(cli.events().filter((e) => e.event === "warning" || e.event === "error")).toEqual([]);
    } finally {
      v6.stop(true);
    }
    const port = freePort();
    const human = spawnCli(["start", String(port)], { cwd: cwd() });
    const line = await human.waitErr(/listening/, 20_000);
    expect(line).toBe(`warning: Nothing is listening on localhost:${port} yet; requests will get 502 until your app starts.`);
    expect(human.text().err).not.toMatch(/^error:/m);
  });
});

describe("Ctrl+C", () => {
  /** Time from SIGINT to exit, ms. */
  async function stopTime(cli: ReturnType<typeof spawnCli>): Promise<number> {
    const t0 = performance.now();
    cli.kill("SIGINT");
    expect(await cli.exit(15_000)).toBe(0);
    return performance.now() - t0;
  }

  test("with nothing in flight it exits in well under a second — idle, and after requests (keep-alive sockets open)", async () => {
    const app = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("ok") });
    try {
      const idle = spawnCli(["start", String(app.port), "--json"], { cwd: cwd() });
      await idle.waitEvent((e) => e.event === "ready", 20_000);
      expect(await stopTime(idle)).toBeLessThan(1000);

      const busy = spawnCli(["start", String(app.port)], { cwd: cwd() });
      const url = (await busy.waitOut(/^Public URL:/, 20_000)).replace(/^Public URL:\s+/, "");
      for (let i = 0; i < 3; i++) expect(await (await get(url)).text()).toBe("ok");
      await busy.waitOut(/^GET\s/);
      expect(await stopTime(busy)).toBeLessThan(1000);
      expect(busy.text().err).not.toContain("waiting for"); // nothing to wait for: no message promising a wait
    } finally {
      app.stop(true);
    }
  });

  test("with a request in flight it waits at most --grace, says so, and says what it cut", async () => {
    const app = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      idleTimeout: 30,
      fetch: async () => {
        await Bun.sleep(8000);
        return new Response("late");
      },
    });
    try {
      const cli = spawnCli(["start", String(app.port), "--grace", "1"], { cwd: cwd() });
      const url = (await cli.waitOut(/^Public URL:/, 20_000)).replace(/^Public URL:\s+/, "");
      const pending = get(url, 15_000).then((r) => r.status, () => "failed");
      await Bun.sleep(500); // the request reaches the app
      const ms = await stopTime(cli);
      expect(ms).toBeGreaterThanOrEqual(900); // it did wait for the request…
      expect(ms).toBeLessThan(6000); // …but not the 8 s the app takes
      const err = cli.text().err;
      expect(err).toContain("stopping: waiting for 1 request(s) in flight, up to 1 s (Ctrl+C again to stop now)");
      expect(err).toContain("stopped: 1 request(s) still in flight after the 1 s grace were cut off");
      expect(await pending).not.toBe(200);
    } finally {
      app.stop(true);
    }
  });
});
