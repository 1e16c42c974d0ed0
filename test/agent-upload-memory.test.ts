/**
 * Memory on large uploads (issue 13): while a large request body crosses the tunnel on loopback,
 * the agent's receive window stays at its start (2 MiB) and what it holds stays within it. Before
 * the fix the round trip that sizes windows (src/tunnel/window.ts) was measured behind a window of
 * upload data (a queue, not the path: 6–14 ms on loopback instead of < 1 ms), and the agent's
 * windows grew to 32 MiB, with up to 24 MiB of body held (bench/results/README.md, "Memory on
 * large uploads (agent)"). Whole stack in one process: relay emulator, gateway, agent, a local app.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { processBudget } from "../src/tunnel/window.ts";
import { startStack, type Stack } from "./support/stack.ts";

const MiB = 1 << 20;
const BODY = 96 * MiB;
let stack: Stack;

beforeAll(async () => {
  stack = await startStack({
    async fetch(req) {
      let n = 0;
      if (req.body) for await (const c of req.body) n += c.length;
      return new Response(String(n));
    },
  });
});
afterAll(() => stack?.stop());

/** A body of `total` bytes in 256 KiB pieces, made as it is read. */
function body(total: number): ReadableStream<Uint8Array> {
  const piece = new Uint8Array(256 * 1024).fill(0x61);
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    pull(c) {
      if (sent >= total) return c.close();
      const n = Math.min(piece.length, total - sent);
      sent += n;
      c.enqueue(n === piece.length ? piece : piece.subarray(0, n));
    },
  });
}

test("a 96 MiB upload on loopback: the agent's window never grows and it holds at most one window", async () => {
  // the gateway keeps warm sessions: one small request first, as a running tunnel has
  const warm = await fetch(stack.url, { method: "POST", body: "x" });
  expect(await warm.text()).toBe("1");
  await Bun.sleep(200);
  processBudget.resetPeaks();
  const res = await fetch(stack.url, { method: "POST", body: body(BODY), headers: { "content-length": String(BODY) } });
  expect(res.status).toBe(200);
  expect(await res.text()).toBe(String(BODY)); // every byte arrived
  expect(processBudget.peakGrown).toBe(0);
  expect(processBudget.peak).toBeLessThanOrEqual(2 * MiB); // the stream's start window (session.ts DEFAULT_WINDOW)
}, 120_000);
