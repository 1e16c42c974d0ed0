/**
 * Issue 17: receive windows that grow with the round trip (src/tunnel/window.ts). Through a real
 * tunnel (relay emulator, gateway, agent) whose two relay legs go through delay proxies, a fast
 * reader grows the windows and gives the growth back when the stream ends; a slow reader keeps
 * the window at its start. Assertions count bytes and window sizes, never time.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { processBudget } from "../src/tunnel/window.ts";
import type { TunnelStream } from "../src/tunnel/stream.ts";
import { GET, pair, tick } from "./support/tunnel-peers.ts";
import { startWanStack } from "./support/wan-stack.ts";

const MiB = 1 << 20;
const settle = async (ok: () => boolean) => {
  for (let i = 0; i < 200 && !ok(); i++) await Bun.sleep(10);
};

describe("through a delayed tunnel (5 ms each way per relay leg)", () => {
  let stack: Awaited<ReturnType<typeof startWanStack>>;
  beforeAll(async () => {
    stack = await startWanStack({ delayMs: 5, window: 64 * 1024 });
  });
  afterAll(() => stack.stop());

  test("a fast download grows the gateway's window; the growth goes back when the stream ends", async () => {
    await (await fetch(`${stack.url}/small`)).arrayBuffer(); // sessions up, round trip measured
    const base = processBudget.grown; // other files' sessions in this process may hold growth
    processBudget.resetPeaks();
    const res = await fetch(`${stack.url}/down?n=${8 * MiB}`);
    let got = 0;
    for await (const c of res.body!) got += c.length;
    expect(got).toBe(8 * MiB);
    // 64 KiB per ~20 ms round trip is far below what loopback moves: the window was the limit
    expect(processBudget.peakGrown - base).toBeGreaterThanOrEqual(64 * 1024);
    await settle(() => processBudget.grown === base);
    expect(processBudget.grown).toBe(base);
  });

  test("a fast upload grows the agent's window the same way", async () => {
    const base = processBudget.grown;
    processBudget.resetPeaks();
    const body = new Uint8Array(8 * MiB).fill(1);
    const res = await fetch(`${stack.url}/up`, { method: "POST", body });
    expect(await res.text()).toBe(String(8 * MiB));
    expect(processBudget.peakGrown - base).toBeGreaterThanOrEqual(64 * 1024);
    await settle(() => processBudget.grown === base);
    expect(processBudget.grown).toBe(base);
  });
});

describe("window growth on one session (in-memory peers, round trip set)", () => {
  const sender = (total: number) => (s: TunnelStream) => {
    s.sendResponse({ status: 200, headers: [] });
    void (async () => {
      for (let i = 0; i < total / 16384; i++) await s.write(new Uint8Array(16384));
      s.end();
    })();
  };
  const window = 64 * 1024;

  test("a fast reader grows the window up to the cap, a slow reader keeps it at its start", async () => {
    const fast = pair({ window, maxWindow: MiB }, { window, onStream: sender(8 * MiB) });
    await fast.gateway.ready;
    (fast.gateway as unknown as { liveness: { rtt: number } }).liveness.rtt = 1_000; // a long link
    const a = await fast.gateway.open(GET);
    a.end();
    await a.response;
    let max = 0;
    let got = 0;
    for await (const c of a.body) {
      got += c.length;
      max = Math.max(max, a.recv.size);
    }
    expect(got).toBe(8 * MiB);
    expect(max).toBeGreaterThan(window);
    expect(max).toBeLessThanOrEqual(MiB);

    const slow = pair({ window, maxWindow: MiB }, { window, onStream: sender(MiB) });
    await slow.gateway.ready;
    (slow.gateway as unknown as { liveness: { rtt: number } }).liveness.rtt = 1_000;
    const b = await slow.gateway.open(GET);
    b.end();
    await b.response;
    got = 0;
    max = 0;
    for await (const c of b.body) {
      got += c.length;
      max = Math.max(max, b.recv.size);
      await tick(20); // the sender refills the window while we dawdle: the reader is the limit
    }
    expect(got).toBe(MiB);
    expect(max).toBe(window);
  });
});
