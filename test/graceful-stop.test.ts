/**
 * Graceful stop loses nothing in flight (issue 12, High 6): a 2 s request with Ctrl+C 0.5 s in →
 * the client gets the whole reply, every time (8 tries, each a fresh `azhexgate start` process
 * with its embedded gateway); the same for the gateway's SIGTERM drain (`azhexgate gateway` and
 * `azhexgate start --api-url` as separate processes).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { API_KEY, get, killAll, spawnCli, startGatewayChild, startOrigin } from "./support/cli-proc.ts";

afterAll(killAll);
const cwd = () => mkdtempSync(join(tmpdir(), "azhexgate-stop-"));

/** 256 KiB, so a reply cut short cannot pass for a whole one. */
const BODY = "0123456789abcdef".repeat(16 * 1024);
/** 32 MiB for the gateway drain: the reply's tail is still on its way when the stream ends. */
const BIG = "0123456789abcdef".repeat(2 * 1024 * 1024);
const slowApp = (body = BODY) =>
  startOrigin(async () => {
    await Bun.sleep(2000);
    return new Response(body);
  });

describe("Ctrl+C on `azhexgate start` (embedded gateway)", () => {
  test("a 2 s request with Ctrl+C 0.5 s in gets its full reply, 8 times out of 8", async () => {
    const app = slowApp();
    try {
      const results: string[] = [];
      for (let i = 0; i < 8; i++) {
        const cli = spawnCli(["start", String(app.port)], { cwd: cwd() });
        const url = (await cli.waitOut(/^Public URL:/, 20_000)).replace(/^Public URL:\s+/, "");
        const reply = get(url, 15_000).then(
          async (r) => `${r.status} ${(await r.text().catch(() => "")) === BODY ? "whole" : "cut"}`,
          (e) => `failed ${String(e)}`,
        );
        await Bun.sleep(500);
        cli.kill("SIGINT");
        results.push(await reply);
        expect(await cli.exit(15_000)).toBe(0);
      }
      expect(results).toEqual(Array(8).fill("200 whole"));
    } finally {
      app.stop(true);
    }
  }, 240_000);
});

/** Reads a body at about 16 MiB/s; "" when it fails. */
async function slowText(r: Response): Promise<string> {
  const parts: Uint8Array[] = [];
  try {
    for await (const c of r.body!) {
      parts.push(c);
      await Bun.sleep(4);
    }
  } catch {
    return "";
  }
  return Buffer.concat(parts).toString();
}

describe("SIGTERM on `azhexgate gateway`", () => {
  test("a 2 s request (32 MiB reply) with SIGTERM 0.5 s in gets its full reply, 8 times out of 8, read slowly", async () => {
    const app = slowApp(BIG);
    try {
      const results: string[] = [];
      for (let i = 0; i < 8; i++) {
        const gw = await startGatewayChild({ extra: ["--drain", "10"] });
        const agent = spawnCli(["start", String(app.port), "--api-url", gw.apiUrl, "--json"], { cwd: cwd(), env: { AZHEXGATE_API_KEY: API_KEY } });
        const ready = await agent.waitEvent((e) => e.event === "ready", 20_000);
        const url = String(ready.public_url);
        // a client that reads slowly: the tail of the reply is still in the gateway when the stream ends
        const reply = get(url, 30_000).then(
          async (r) => `${r.status} ${(await slowText(r)) === BIG ? "whole" : "cut"}`,
          (e) => `failed ${String(e)}`,
        );
        await Bun.sleep(500);
        gw.child.kill("SIGTERM");
        results.push(await reply);
        expect(await gw.child.exit(20_000)).toBe(0);
        agent.kill("SIGKILL");
      }
      expect(results).toEqual(Array(8).fill("200 whole"));
    } finally {
      app.stop(true);
    }
  }, 240_000);
});
