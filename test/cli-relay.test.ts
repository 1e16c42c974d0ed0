/**
 * `azhexgate relay` as a child process: prints a usable connection string; bad flags exit 2.
 */
import { describe, expect, test } from "bun:test";
import { parseConnectionString } from "../src/hc/address.ts";
import { HybridConnectionListener } from "../src/hc/listener.ts";
import { connectSender } from "../src/hc/sender.ts";
import { sasTokenProvider } from "../src/hc/tokens.ts";

const CLI = new URL("../src/cli.ts", import.meta.url).pathname;

async function readLines(stream: ReadableStream<Uint8Array>, count: number, timeoutMs = 10_000): Promise<string[]> {
  const lines: string[] = [];
  const reader = stream.getReader();
  const td = new TextDecoder();
  let buf = "";
  const deadline = Date.now() + timeoutMs;
  while (lines.length < count && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += td.decode(value, { stream: true });
    const parts = buf.split("\n");
    buf = parts.pop()!;
    lines.push(...parts);
  }
  reader.releaseLock();
  return lines;
}

describe("azhexgate relay", () => {
  test("starts, prints a connection string that a listener and a sender can use, stops on SIGTERM", async () => {
    const proc = Bun.spawn(["bun", CLI, "relay", "--port", "0", "--hc", "demo"], { stdout: "pipe", stderr: "pipe" });
    try {
      const lines = await readLines(proc.stdout, 2);
      expect(lines[0]).toMatch(/^relay emulator listening on ws:\/\/127\.0\.0\.1:\d+$/);
      const cs = parseConnectionString(lines[1]!.replace(/^connection string: /, ""));
      const tokens = sasTokenProvider(cs.keyName!, cs.key!);
      const listener = new HybridConnectionListener({ endpoint: cs.endpoint, hcPath: "demo", token: tokens });
      listener.on("accept", async (msg) => {
        const ws = await listener.accept(msg);
        ws.on("message", (d) => ws.send(d));
      });
      await listener.open();
      const sender = await connectSender({ endpoint: cs.endpoint, hcPath: "demo", token: tokens });
      const echoed = new Promise<string>((r) => sender.on("message", (d) => r(String(d))));
      sender.send("ping through the CLI relay");
      expect(await echoed).toBe("ping through the CLI relay");
      sender.terminate();
      await listener.close();
    } finally {
      proc.kill("SIGTERM");
    }
    expect(await proc.exited).toBe(0);
  });

  test("a bad --port is a one-line error with exit code 2", async () => {
    const proc = Bun.spawn(["bun", CLI, "relay", "--port", "http"], { stdout: "pipe", stderr: "pipe" });
    expect(await proc.exited).toBe(2);
    const err = await new Response(proc.stderr).text();
    expect(err.trim().split("\n")).toHaveLength(1);
    expect(err).toContain("--port must be a whole number");
  });
});
