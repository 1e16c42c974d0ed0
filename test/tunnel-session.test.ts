/**
 * Sessions over an in-memory transport pair with a small high-water mark, so flow control and
 * backpressure are exercised without sockets (the real-socket paths are covered end to end).
 */
import { describe, expect, test } from "bun:test";
import { Session, type Transport } from "../src/tunnel/session.ts";
import { FrameType, ResetCode, encodeFrame } from "../src/tunnel/frame.ts";
import type { TunnelStream } from "../src/tunnel/stream.ts";

/** Two transports wired back to back; delivery is asynchronous; `inflight` counts undelivered bytes. */
function pipePair(highWater = 64 * 1024) {
  const stats = { inflight: 0, maxInflight: 0, messages: 0 };
  let a!: Session;
  let b!: Session;
  const mk = (deliver: () => Session): Transport => {
    let waiters: Array<() => void> = [];
    let closed = false;
    return {
      send(data) {
        if (closed) return false;
        const n = typeof data === "string" ? data.length : data.length;
        stats.inflight += n;
        stats.messages++;
        stats.maxInflight = Math.max(stats.maxInflight, stats.inflight);
        setImmediate(() => {
          stats.inflight -= n;
          deliver().handleMessage(data);
          if (stats.inflight < highWater) {
            const w = waiters;
            waiters = [];
            for (const f of w) f();
          }
        });
        return stats.inflight < highWater;
      },
      drained: () => (stats.inflight < highWater ? Promise.resolve() : new Promise<void>((r) => waiters.push(r))),
      close() {
        closed = true;
        setImmediate(() => deliver().handleClose("peer closed"));
      },
    };
  };
  return {
    stats,
    connect(onStream: (s: TunnelStream) => void, window = 256 * 1024) {
      a = new Session(mk(() => b), { role: "gateway", window });
      b = new Session(mk(() => a), { role: "agent", window, onStream });
      return { gateway: a, agent: b };
    },
  };
}

async function* chunks(total: number, size: number) {
  let sent = 0;
  let i = 0;
  while (sent < total) {
    const n = Math.min(size, total - sent);
    yield new Uint8Array(n).fill(i++ & 0xff);
    sent += n;
  }
}

async function drain(body: ReadableStream<Uint8Array>, delayEvery = 0): Promise<{ bytes: number; sum: number }> {
  let bytes = 0;
  let sum = 0;
  let n = 0;
  for await (const c of body) {
    bytes += c.length;
    sum = (sum + c[0]! * c.length) % 1_000_000_007;
    if (delayEvery && ++n % delayEvery === 0) await Bun.sleep(1);
  }
  return { bytes, sum };
}

describe("tunnel session", () => {
  test("request head, response head, bodies both ways with flow control", async () => {
    const pair = pipePair();
    const window = 256 * 1024;
    let agentSaw = 0;
    const { gateway } = pair.connect(async (s) => {
      expect(s.head).toEqual({ kind: "http", method: "POST", target: "/up?x=1", headers: [["a", "1"], ["a", "2"]] });
      const got = await drain(s.body, 4); // a slow reader
      agentSaw = got.bytes;
      s.sendResponse({ status: 200, headers: [["set-cookie", "a=1"], ["set-cookie", "b=2"]] });
      for await (const c of chunks(8 << 20, 100_000)) await s.write(c);
      s.end();
    }, window);
    const stream = await gateway.open({ kind: "http", method: "POST", target: "/up?x=1", headers: [["a", "1"], ["a", "2"]] });
    for await (const c of chunks(8 << 20, 64 * 1024)) await stream.write(c);
    stream.end();
    const head = await stream.response;
    expect(head).toEqual({ status: 200, headers: [["set-cookie", "a=1"], ["set-cookie", "b=2"]] });
    const down = await drain(stream.body);
    expect(agentSaw).toBe(8 << 20);
    expect(down.bytes).toBe(8 << 20);
    // Bytes in flight never exceed what credit allows (window per direction plus framing slack).
    expect(pair.stats.maxInflight).toBeLessThan(2 * window + 64 * 1024);
    expect(gateway.activeStreams).toBe(0);
  });

  test("a stalled reader does not stall another stream on the same session", async () => {
    const pair = pipePair();
    let release!: () => void;
    const stalled = new Promise<void>((r) => (release = r));
    const { gateway } = pair.connect(async (s) => {
      s.sendResponse({ status: 200, headers: [] });
      if (s.head!.target === "/big") {
        for await (const c of chunks(4 << 20, 64 * 1024)) await s.write(c);
      } else {
        await s.write(new TextEncoder().encode("small"));
      }
      s.end();
    });
    const big = await gateway.open({ kind: "http", method: "GET", target: "/big", headers: [] });
    big.end();
    await big.response; // nobody reads big.body yet: its sender runs out of credit
    const small = await gateway.open({ kind: "http", method: "GET", target: "/small", headers: [] });
    small.end();
    await small.response;
    const t0 = performance.now();
    expect(new TextDecoder().decode(await new Response(small.body).arrayBuffer())).toBe("small");
    expect(performance.now() - t0).toBeLessThan(1000);
    release();
    await stalled;
    expect((await drain(big.body)).bytes).toBe(4 << 20);
  });

  test("WebSocket messages: 4 MiB binary reassembled, text, close code both ways", async () => {
    const pair = pipePair();
    const closes: Array<[number, string]> = [];
    const { gateway } = pair.connect((s) => {
      s.sendResponse({ status: 101, headers: [], protocol: "chat" });
      s.onWsMessage = (d, bin) => void s.wsSend(d, bin); // echo
      s.onWsClose = (code, reason) => {
        closes.push([code, reason]);
        s.wsClose(4001, "bye from origin");
      };
    });
    const ws = await gateway.open({ kind: "ws", method: "GET", target: "/ws", headers: [], protocols: ["chat"] });
    expect((await ws.response).protocol).toBe("chat");
    const got: Array<[number, boolean, number]> = [];
    const closed = new Promise<[number, string]>((r) => (ws.onWsClose = (c, why) => r([c, why])));
    const done = new Promise<void>((r) => {
      ws.onWsMessage = (d, bin) => {
        got.push([d.length, bin, d[d.length - 1] ?? -1]);
        if (got.length === 2) r();
      };
    });
    const big = new Uint8Array(4 << 20);
    big[big.length - 1] = 42;
    await ws.wsSend(new TextEncoder().encode("hello"), false);
    await ws.wsSend(big, true);
    await done;
    expect(got).toEqual([[5, false, 111], [4 << 20, true, 42]]);
    ws.wsClose(1000, "client done");
    expect(await closed).toEqual([4001, "bye from origin"]);
    expect(closes).toEqual([[1000, "client done"]]);
  });

  test("reset travels to the peer; a lost session fails every stream", async () => {
    const pair = pipePair();
    const agentStreams: TunnelStream[] = [];
    let seen!: () => void;
    const twoSeen = new Promise<void>((r) => (seen = r));
    const { gateway, agent } = pair.connect((s) => {
      agentStreams.push(s);
      if (agentStreams.length === 2) seen();
    });
    const one = await gateway.open({ kind: "http", method: "GET", target: "/1", headers: [] });
    const two = await gateway.open({ kind: "http", method: "GET", target: "/2", headers: [] });
    await twoSeen;
    const resetSeen = new Promise<number>((r) => (agentStreams[0]!.onReset = (e) => r(e.code)));
    one.reset(ResetCode.CANCEL, "client went away");
    expect(await resetSeen).toBe(ResetCode.CANCEL);
    expect(one.response).rejects.toThrow("client went away");
    agent.close(1011, "agent stopping");
    await expect(two.response).rejects.toThrow("tunnel session lost");
    expect(gateway.isClosed).toBe(true);
    await expect(gateway.open({ kind: "http", method: "GET", target: "/3", headers: [] })).rejects.toThrow();
  });

  test("garbage after the hello closes the session with a protocol error", async () => {
    const pair = pipePair();
    let reason = "";
    const { gateway, agent } = pair.connect(() => {});
    await gateway.ready;
    const closed = new Promise<void>((r) => {
      const orig = (agent as any).opts.onClose;
      (agent as any).opts.onClose = (why: string) => { reason = why; orig?.(why); r(); };
    });
    agent.handleMessage(new Uint8Array([0xff, 0x01, 0x00]));
    await closed;
    expect(reason).toBe("protocol error: unknown frame type 0xff");
  });

  test("a peer that sends past its credit gets its stream reset with FLOW_CONTROL", async () => {
    const pair = pipePair();
    let agentStream!: TunnelStream;
    let seen!: () => void;
    const opened = new Promise<void>((r) => (seen = r));
    const window = 64 * 1024;
    const { gateway, agent } = pair.connect((s) => { agentStream = s; seen(); }, window);
    const stream = await gateway.open({ kind: "http", method: "POST", target: "/", headers: [] });
    await opened;
    const resetAtGateway = new Promise<number>((r) => (stream.onReset = (e) => r(e.code)));
    // Forge a DATA frame bigger than the window the agent granted (bypassing the sender's checks).
    agent.handleMessage(encodeFrame(FrameType.DATA, stream.id, new Uint8Array(window + 1)));
    expect(agentStream.isReset).toBe(true);
    expect(await resetAtGateway).toBe(ResetCode.FLOW_CONTROL);
  });

  test("ping measures a round trip", async () => {
    const pair = pipePair();
    const { gateway } = pair.connect(() => {});
    await gateway.ready;
    const rtt = await gateway.ping();
    expect(Number.isFinite(rtt) && rtt >= 0 && rtt < 10_000).toBe(true);
  });
});

/**
 * A WebSocket stream over a pipe pair whose agent-side consumer reports itself congested (holds
 * credit) until `uncongest()`; `received()` counts the bytes it got.
 */
async function congestedWsPair(window: number) {
  const pair = pipePair();
  let agentStream!: TunnelStream;
  let received = 0;
  let congested = true;
  let seen!: () => void;
  const opened = new Promise<void>((r) => (seen = r));
  const { gateway } = pair.connect((s) => {
    agentStream = s;
    s.onWsMessage = (d) => {
      received += d.length;
      return !congested; // the consumer's socket is over its high-water mark
    };
    s.sendResponse({ status: 101, headers: [] });
    seen();
  }, window);
  const ws = await gateway.open({ kind: "ws", method: "GET", target: "/", headers: [] });
  await opened;
  await ws.response;
  return {
    ws,
    agentStream: () => agentStream,
    received: () => received,
    uncongest: () => {
      congested = false;
      agentStream.resumeWs();
    },
  };
}

describe("WebSocket credit follows the consumer", () => {
  test("a congested consumer holds credit: the sender stops after one window and resumes on resumeWs()", async () => {
    const window = 64 * 1024;
    const c = await congestedWsPair(window);
    const ws = c.ws;
    let sent = 0;
    const sending = (async () => {
      for (let i = 0; i < 16; i++) {
        await ws.wsSend(new Uint8Array(16 * 1024), true);
        sent++;
      }
    })();
    for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
    // one window (64 KiB = 4 messages) got through, then the sender waits for credit
    expect(c.received()).toBeLessThanOrEqual(window + 16 * 1024);
    expect(sent).toBeLessThan(16);
    c.uncongest();
    await sending;
    for (let i = 0; i < 50 && c.received() < 16 * 16 * 1024; i++) await new Promise((r) => setImmediate(r));
    expect(c.received()).toBe(16 * 16 * 1024);
  });

  test("the production send path (wsSendQueued, used by the gateway and the agent) charges credit too", async () => {
    const window = 64 * 1024;
    const c = await congestedWsPair(window);
    const ws = c.ws;
    let failed = 0;
    for (let i = 0; i < 16; i++) ws.wsSendQueued(new Uint8Array(16 * 1024).fill(i), true, () => failed++);
    for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
    // one window got through; the rest waits (the caller sees wsBusy) instead of overrunning the peer
    expect(c.agentStream().isReset).toBe(false);
    expect(c.received()).toBeGreaterThanOrEqual(window);
    expect(c.received()).toBeLessThanOrEqual(window + 16 * 1024); // as the wsSend test: one message may be in flight when credit is held
    expect(ws.wsBusy).toBe(true);
    c.uncongest();
    await ws.wsFlushed();
    for (let i = 0; i < 50 && c.received() < 16 * 16 * 1024; i++) await new Promise((r) => setImmediate(r));
    expect(c.received()).toBe(16 * 16 * 1024);
    expect(failed).toBe(0);
    expect(ws.wsBusy).toBe(false);
  });
});
