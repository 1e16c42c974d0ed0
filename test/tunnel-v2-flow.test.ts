/**
 * Tunnel protocol v2 flow control (docs/protocol.md, "Flow control"): the session window (WINDOW
 * on stream 0), adaptive stream windows, and a hostile peer sending any sequence of frames.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { FrameType as T, ResetCode, varintPayload, type Frame } from "../src/tunnel/frame.ts";
import { encodeOpenHead } from "../src/tunnel/head-binary.ts";
import type { TunnelStream } from "../src/tunnel/stream.ts";
import { GET, V2_AGENT, V2_GATEWAY, open, pair, raw, tick } from "./support/tunnel-peers.ts";

describe("session window (WINDOW on stream 0)", () => {
  test("a stalled reader holds at most the session window across all its streams; reading resumes the flow", async () => {
    const sessionWindow = 256 * 1024;
    const total = 1 << 20;
    const p = pair({ window: 1 << 20, sessionWindow }, {
      window: 1 << 20,
      onStream: (s) => {
        s.sendResponse({ status: 200, headers: [] });
        void (async () => {
          for (let i = 0; i < total / 16384; i++) await s.write(new Uint8Array(16384));
          s.end();
        })();
      },
    });
    const a = await p.gateway.open(GET);
    const b = await p.gateway.open(GET);
    a.end();
    b.end();
    await Promise.all([a.response, b.response]);
    await tick(50);
    // nobody reads: with 1 MiB stream windows, only the 256 KiB session window bounds what came
    const held = (a as any).inbound.queued + (b as any).inbound.queued;
    expect(held).toBeGreaterThan(0);
    expect(held).toBeLessThanOrEqual(sessionWindow);
    const [x, y] = await Promise.all([new Response(a.body).arrayBuffer(), new Response(b.body).arrayBuffer()]);
    expect([x.byteLength, y.byteLength]).toEqual([total, total]);
  });
  test("a peer that sends past the session window: the session closes with 1002", async () => {
    const r = raw({ role: "agent", onStream: () => {}, sessionWindow: 1000, window: 1 << 20 }, V2_GATEWAY);
    r.inject(open(1), { type: T.DATA, stream: 1, payload: new Uint8Array(1001) });
    expect(r.state.closed).toEqual([1002, "protocol error: peer sent past the session window"]);
  });
  test("bytes for a closed stream still count, and are returned (no leak of session credit)", async () => {
    const r = raw({ role: "agent", onStream: (s) => s.reset(ResetCode.CANCEL), sessionWindow: 8000, window: 1 << 20 }, V2_GATEWAY);
    r.inject(open(1));
    for (let i = 0; i < 10; i++) r.inject({ type: T.DATA, stream: 1, payload: new Uint8Array(1000) });
    await tick();
    expect(r.state.closed).toBeNull();
    const credit = r.frames().filter((f) => f.type === T.WINDOW && f.stream === 0);
    expect(credit.length).toBeGreaterThan(0);
  });
  test("WINDOW with a zero increment closes the session", () => {
    const r = raw({ role: "agent", onStream: () => {} }, V2_GATEWAY);
    r.inject({ type: T.WINDOW, stream: 0, payload: varintPayload(0) });
    expect(r.state.closed).toEqual([1002, "protocol error: malformed window frame"]);
  });
});

describe("adaptive stream windows (v2)", () => {
  const sender = (total: number) => (s: TunnelStream) => {
    s.sendResponse({ status: 200, headers: [] });
    void (async () => {
      for (let i = 0; i < total / 16384; i++) await s.write(new Uint8Array(16384));
      s.end();
    })();
  };
  const recvWindow = (s: TunnelStream) => s.recv.size;
  test("a consumer that keeps up grows the window (up to the cap); a slow one keeps it at the start", async () => {
    const window = 64 * 1024;
    const fast = pair({ window, maxWindow: 1 << 20, sessionWindow: 4 << 20 }, { window, onStream: sender(8 << 20) });
    (fast.gateway as unknown as { liveness: { rtt: number } }).liveness.rtt = 5_000; // a long link: the window is the limit
    const a = await fast.gateway.open(GET);
    a.end();
    await a.response;
    let got = 0;
    for await (const c of a.body) got += c.length;
    expect(got).toBe(8 << 20);
    expect(recvWindow(a)).toBeGreaterThan(window);
    expect(recvWindow(a)).toBeLessThanOrEqual(1 << 20);

    const slow = pair({ window, maxWindow: 1 << 20, sessionWindow: 4 << 20 }, { window, onStream: sender(1 << 20) });
    (slow.gateway as unknown as { liveness: { rtt: number } }).liveness.rtt = 5_000;
    const b = await slow.gateway.open(GET);
    b.end();
    await b.response;
    got = 0;
    for await (const c of b.body) {
      got += c.length;
      await tick(20); // the sender refills the window while we dawdle: the consumer is the limit
    }
    expect(got).toBe(1 << 20);
    expect(recvWindow(b)).toBe(window);
  });
  test("the round trip is measured once a stream moved a whole window (one PING), not before", async () => {
    const window = 64 * 1024;
    const p = pair({ window }, { window, onStream: sender(512 * 1024) });
    await p.gateway.ready;
    await tick(20);
    const rtt = () => (p.gateway as unknown as { liveness: { rtt: number } }).liveness.rtt;
    expect(rtt()).toBe(0); // an idle session sends no PING
    const a = await p.gateway.open(GET);
    a.end();
    await a.response;
    await new Response(a.body).arrayBuffer();
    for (let i = 0; i < 100 && rtt() === 0; i++) await tick();
    expect(rtt()).toBeGreaterThan(0);
  });
  test("on a short link (loopback) and with a v1 peer, windows do not grow", async () => {
    const window = 64 * 1024;
    const loop = pair({ window, maxWindow: 1 << 20 }, { window, onStream: sender(2 << 20) });
    await loop.gateway.ready;
    await tick(20); // the first round trip is measured: well under the time a window takes here
    (loop.gateway as unknown as { liveness: { rtt: number } }).liveness.rtt = 0.001;
    const l = await loop.gateway.open(GET);
    l.end();
    await l.response;
    await new Response(l.body).arrayBuffer();
    expect(recvWindow(l)).toBe(window);
    const p = pair({ window, versions: [1] }, { window, onStream: sender(2 << 20) });
    const a = await p.gateway.open(GET);
    a.end();
    await a.response;
    await new Response(a.body).arrayBuffer();
    expect(recvWindow(a)).toBe(window);
  });
});

describe("hostile peer (property)", () => {
  test("any sequence of well-framed frames: the session never throws; it goes on or closes with 1002", async () => {
    const frame = fc.record({
      type: fc.integer({ min: 1, max: 11 }),
      stream: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 6 }), fc.constant(1 << 30)),
      payload: fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.constant(encodeOpenHead(GET)!), fc.constant(new Uint8Array([0, 200, 0, 0]))),
    });
    const outcomes = { closed: 0, open: 0 };
    await fc.assert(
      fc.asyncProperty(fc.constantFrom("agent" as const, "gateway" as const), fc.array(frame, { maxLength: 30 }), async (role, frames) => {
        const r = raw(
          role === "agent" ? { role, onStream: (s) => void s.body.cancel().catch(() => {}), onTcpStream: (s) => s.end() } : { role },
          role === "agent" ? V2_GATEWAY : V2_AGENT,
        );
        if (role === "gateway") {
          for (let i = 0; i < 3; i++) void r.s.open(GET).catch(() => {});
          for (let i = 0; i < 5; i++) await Promise.resolve(); // the OPENs are out: streams 1-3 exist
        }
        for (const f of frames) {
          expect(() => r.inject(f as Frame)).not.toThrow();
          if (r.state.closed) break;
        }
        if (r.state.closed) {
          outcomes.closed++;
          expect(r.state.closed[0]).toBe(1002);
        } else outcomes.open++;
      }),
      { numRuns: 1000 },
    );
    // both outcomes happen (else the property asserted nothing about one of them)
    expect(outcomes.closed).toBeGreaterThan(0);
    expect(outcomes.open).toBeGreaterThan(0);
  });
});
