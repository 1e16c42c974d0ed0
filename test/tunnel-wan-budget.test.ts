/**
 * Issue 17: memory stays bounded with grown windows — the session window bounds what one
 * session's unread streams hold, the process budget (src/tunnel/window.ts) bounds what all of them
 * hold even when finished bodies give their session credit back; and two bulk streams on one
 * session share it fairly. Counts buffered bytes, never time.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import type { TunnelStream } from "../src/tunnel/stream.ts";
import { processBudget } from "../src/tunnel/window.ts";
import { GET, pair, tick } from "./support/tunnel-peers.ts";
import { startWanStack } from "./support/wan-stack.ts";

const MiB = 1 << 20;
const sender = (total: number) => (s: TunnelStream) => {
  s.sendResponse({ status: 200, headers: [] });
  void (async () => {
    for (let i = 0; i < total / 65536; i++) await s.write(new Uint8Array(65536));
    s.end();
  })().catch(() => {});
};
/** Waits until `f()` stops changing (traffic settled), bounded. */
const quiet = async (f: () => number) => {
  let last = -1;
  for (let i = 0; i < 400; i++) {
    await tick(20);
    const v = f();
    if (v === last) return v;
    last = v;
  }
  return last;
};

const limit0 = processBudget.limit;
afterEach(() => {
  processBudget.limit = limit0;
});

describe("100 slow streams", () => {
  test("bodies larger than the stream window: the session window bounds what is held", async () => {
    const sessionWindow = 4 * MiB;
    const p = pair({ window: 2 * MiB, sessionWindow }, { window: 2 * MiB, onStream: sender(4 * MiB) });
    const streams = await Promise.all(Array.from({ length: 100 }, async () => {
      const s = await p.gateway.open(GET);
      s.end();
      return s;
    }));
    await Promise.all(streams.map((s) => s.response));
    const held = await quiet(() => streams.reduce((a, s) => a + s.bytesReceived, 0));
    expect(held).toBeGreaterThan(sessionWindow / 2); // it did fill
    expect(held).toBeLessThanOrEqual(sessionWindow);
    p.gateway.close();
  });

  test("finished bodies give session credit back, so only the process budget bounds them; reading resumes the flow", async () => {
    const before = processBudget.buffered; // other files' unread streams in this process, if any
    processBudget.limit = before + 8 * MiB;
    const sessionWindow = 4 * MiB;
    const p = pair({ window: 2 * MiB, sessionWindow }, { window: 2 * MiB, onStream: sender(MiB) });
    const streams: TunnelStream[] = [];
    for (let i = 0; i < 100; i++) {
      // one after the other: each body fits its stream window, ends, and returns its session credit
      const s = await p.gateway.open(GET);
      s.end();
      streams.push(s);
      await quiet(() => processBudget.buffered);
    }
    const held = processBudget.buffered - before;
    // without the budget all 100 MiB would be here (each body fits its stream window and ends)
    expect(held).toBeGreaterThanOrEqual(processBudget.limit - before);
    expect(held).toBeGreaterThan(sessionWindow);
    expect(held).toBeLessThanOrEqual(processBudget.limit - before + sessionWindow);
    const got = await Promise.all(streams.map(async (s) => (await new Response(s.body).arrayBuffer()).byteLength));
    expect(got).toEqual(Array(100).fill(MiB));
    expect(await quiet(() => processBudget.buffered)).toBe(before);
    p.gateway.close();
  });

  test("grown windows shrink back when the reader falls behind, and growth is not granted under pressure", async () => {
    const window = 64 * 1024;
    const p = pair({ window, maxWindow: 4 * MiB }, { window, onStream: sender(16 * MiB) });
    await p.gateway.ready;
    (p.gateway as unknown as { liveness: { rtt: number } }).liveness.rtt = 1_000;
    const s = await p.gateway.open(GET);
    s.end();
    await s.response;
    const reader = s.body.getReader();
    let got = 0;
    while (got < 8 * MiB) got += (await reader.read()).value!.length; // fast: the window grows
    const grown = s.recv.size;
    expect(grown).toBeGreaterThan(window);
    await quiet(() => s.bytesReceived); // the reader stops: the peer fills what we granted, no more
    expect(s.bytesReceived - got).toBeLessThanOrEqual(grown + window);
    processBudget.limit = 1; // memory pressure: credit goes back smaller, down to the start
    for (let i = 0; i < 400 && s.recv.size > window; i++) {
      const r = await reader.read();
      if (r.done) break;
      got += r.value.length;
    }
    expect(s.recv.size).toBe(window);
    processBudget.limit = limit0;
    while (!(await reader.read()).done);
    p.gateway.close();
  });
});

describe("fairness", () => {
  let stack: Awaited<ReturnType<typeof startWanStack>> | undefined;
  afterAll(() => stack?.stop());
  test("two bulk downloads on one session (delayed tunnel): neither gets below a third of the bytes", async () => {
    stack = await startWanStack({ delayMs: 5, pool: { min: 1, max: 1 } });
    await (await fetch(`${stack.url}/small`)).arrayBuffer();
    const n = 24 * MiB;
    const got = [0, 0];
    let atFirstDone: number[] | null = null;
    await Promise.all([0, 1].map(async (i) => {
      const res = await fetch(`${stack!.url}/down?n=${n}`);
      for await (const c of res.body!) got[i]! += c.length;
      atFirstDone ??= [...got];
    }));
    expect(got).toEqual([n, n]);
    const [a, b] = atFirstDone!;
    expect(Math.min(a!, b!)).toBeGreaterThanOrEqual((a! + b!) / 3);
  });
});
