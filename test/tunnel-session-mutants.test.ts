/**
 * A tunnel Session as its peer sees it (src/tunnel/session.ts): the hello it sends, the frames
 * and close codes its rules produce, what a closed session does. One session driven by hand
 * (`raw`, test/support/tunnel-peers.ts). Written to kill mutation survivors (issue 18).
 */
import { DEFAULT_MAX_STREAM_WINDOW } from "../src/tunnel/window.ts";
import { describe, expect, test } from "bun:test";
import { FrameType as T, ResetCode, encodeFrames, parseReset, parseVarints, varintPayload, type Frame } from "../src/tunnel/frame.ts";
import { Session, type Transport } from "../src/tunnel/session.ts";
import { GET, V2_AGENT, V2_GATEWAY, open, pair, raw, tick } from "./support/tunnel-peers.ts";

function bare(opts: ConstructorParameters<typeof Session>[1]) {
  const sent: Array<Uint8Array | string> = [];
  const t: Transport = { send: (d) => (sent.push(d), true), drained: () => Promise.resolve(), close: () => {} };
  const s = new Session(t, opts);
  return { s, sent, hello: JSON.parse(sent[0] as string) };
}
const windowsOn0 = (fs: Frame[]) => fs.filter((f) => f.type === T.WINDOW && f.stream === 0).map((f) => parseVarints(f.payload, 1)![0]);

describe("hello", () => {
  test("names versions, role, window; v2 adds the session window; 'tcp' only with a TCP handler", () => {
    const { hello } = bare({ role: "agent", window: 4096, sessionWindow: 1 << 20 });
    expect(hello).toEqual({ azhexgate: 1, versions: [1, 2], role: "agent", features: ["ws"], window: 4096, sessionWindow: 1 << 20 });
    expect(bare({ role: "agent", onTcpStream: () => {} }).hello.features).toEqual(["ws", "tcp"]);
    expect(bare({ role: "agent", versions: [1], onTcpStream: () => {} }).hello).toEqual({ azhexgate: 1, versions: [1], role: "agent", features: ["ws"], window: 2 << 20 });
    expect(bare({ role: "gateway", versions: [2] }).hello.azhexgate).toBe(2);
    expect(bare({ role: "gateway", features: ["x"] }).hello.features).toEqual(["x"]);
  });

  test("a bad hello closes 1002; text after the hello and binary before it close the session", async () => {
    const a = bare({ role: "gateway" });
    const closes: Array<[number | undefined, string | undefined]> = [];
    const t: Transport = { send: () => true, drained: () => Promise.resolve(), close: (c, r) => void closes.push([c, r]) };
    const s = new Session(t, { role: "gateway" });
    s.handleMessage("not json");
    expect(closes[0]![0]).toBe(1002);
    expect(closes[0]![1]).toStartWith("protocol error: ");
    await expect(s.ready).rejects.toThrow();
    const r = raw({ role: "gateway" }, V2_AGENT);
    r.s.handleMessage(JSON.stringify(V2_AGENT));
    expect(r.state.closed).toEqual([1002, "protocol error: unexpected text message after hello"]);
    const b = new Session({ ...t, close: (c, why) => void closes.push([c, why]) }, { role: "gateway" });
    b.handleMessage(new Uint8Array([1]));
    expect(closes.at(-1)).toEqual([1002, "protocol error: binary message before hello"]);
    expect(a.s.isClosed).toBe(false);
  });

  test("v2: the stream window may grow up to maxWindow (default 32 MiB; the session window grows with it), never below the window", async () => {
    const r = raw({ role: "gateway", window: 1000, sessionWindow: 8000, maxWindow: 4000 }, V2_AGENT);
    expect(r.s.maxWindow).toBe(4000);
    expect(raw({ role: "gateway", window: 1000, sessionWindow: 8000 }, V2_AGENT).s.maxWindow).toBe(DEFAULT_MAX_STREAM_WINDOW);
    expect(DEFAULT_MAX_STREAM_WINDOW).toBe(32 * 1024 * 1024);
    expect(raw({ role: "gateway", window: 1000, sessionWindow: 8000, maxWindow: 99_000 }, V2_AGENT).s.maxWindow).toBe(99_000);
    expect(raw({ role: "gateway", window: 5000, sessionWindow: 8000, maxWindow: 10 }, V2_AGENT).s.maxWindow).toBe(5000);
    expect(raw({ role: "gateway", window: 1000, sessionWindow: 8000, maxWindow: 4000 }, { azhexgate: 1, versions: [1], role: "agent" }).s.maxWindow).toBe(1000);
    // the peer's session window is our send credit
    expect(raw({ role: "gateway" }, { ...V2_AGENT, sessionWindow: 12345 }).s.sessionCredit).toBe(12345);
    expect(raw({ role: "gateway" }, { azhexgate: 1, versions: [1], role: "agent", sessionWindow: 12345 }).s.sessionCredit).toBe(Infinity);
  });
});

describe("opening streams", () => {
  test("stream ids go 1, 2, 3 …; a session going away refuses with REFUSED 'session is closing'", async () => {
    const r = raw({ role: "gateway" }, V2_AGENT);
    const a = await r.s.open(GET);
    const b = await r.s.open(GET);
    const c = await r.s.openTcp();
    expect([a.id, b.id, c.id]).toEqual([1, 2, 3]);
    expect(r.s.activeStreams).toBe(3);
    r.s.goAway();
    expect(r.s.acceptsStreams).toBe(false);
    for (const p of [r.s.open(GET), r.s.openTcp()]) {
      const e = await p.catch((x) => x);
      expect([e.code, e.message]).toEqual([ResetCode.REFUSED, "session is closing"]);
    }
  });

  test("a request head over the limit: REQUEST_HEAD_TOO_LARGE, no stream, nothing sent", async () => {
    const r = raw({ role: "gateway" }, V2_AGENT);
    const e = await r.s.open({ ...GET, headers: [["x", "y".repeat(200_000)]] }).catch((x) => x);
    expect([e.code, e.message]).toEqual([ResetCode.REQUEST_HEAD_TOO_LARGE, "The request's headers are larger than the tunnel's head limit."]);
    const t = await r.s.openTcp("z".repeat(300_000)).catch((x) => x);
    expect([t.code, t.message]).toEqual([ResetCode.REQUEST_HEAD_TOO_LARGE, "TCP target label too long"]);
    await tick();
    expect(r.frames()).toEqual([]);
    expect(r.s.activeStreams).toBe(0);
  });

  test("v1: the OPEN head is JSON", async () => {
    const r = raw({ role: "gateway" }, { azhexgate: 1, versions: [1], role: "agent" });
    await r.s.open({ ...GET, target: "/v1" });
    await tick();
    const f = r.frames()[0]!;
    expect(f.type).toBe(T.OPEN);
    expect(JSON.parse(new TextDecoder().decode(f.payload)).target).toBe("/v1");
  });

  test("the agent refuses OPENs after its GOAWAY, and without a handler; a bad head resets REFUSED", async () => {
    const r = raw({ role: "agent", onStream: () => {} }, V2_GATEWAY);
    r.inject(open(1));
    r.s.goAway(7);
    r.inject(open(3));
    const n = raw({ role: "agent" }, V2_GATEWAY);
    n.inject(open(1));
    const h = raw({ role: "agent", onStream: () => {} }, V2_GATEWAY);
    h.inject({ type: T.OPEN, stream: 1, payload: new Uint8Array([0xee]) });
    await tick();
    expect(r.frames().filter((f) => f.type === T.RESET).map((f) => [f.stream, parseReset(f.payload)])).toEqual([
      [3, { code: ResetCode.REFUSED, reason: "not accepting streams: the session is going away" }],
    ]);
    const goaway = r.frames().find((f) => f.type === T.GOAWAY)!;
    expect(parseVarints(goaway.payload, 2)).toEqual([1, 7]); // the highest stream it took, and the code
    expect(n.frames().map((f) => [f.type, parseReset(f.payload)])).toEqual([[T.RESET, { code: ResetCode.REFUSED, reason: "not accepting streams" }]]);
    const bad = h.frames().find((f) => f.type === T.RESET)!;
    expect(parseReset(bad.payload)!.code).toBe(ResetCode.REFUSED);
    expect(h.s.activeStreams).toBe(0);
    expect([r.state.closed, n.state.closed, h.state.closed]).toEqual([null, null, null]);
  });
});

describe("session frames", () => {
  test("a frame other than WINDOW on stream 0 closes the session; WINDOW on stream 0 grants session credit", async () => {
    const r = raw({ role: "gateway" }, { ...V2_AGENT, sessionWindow: 10 });
    r.inject({ type: T.DATA, stream: 0, payload: new Uint8Array(1) });
    expect(r.state.closed).toEqual([1002, "protocol error: frame type 3 on stream 0"]);
    const g = raw({ role: "gateway" }, { ...V2_AGENT, sessionWindow: 10 });
    g.inject({ type: T.WINDOW, stream: 0, payload: varintPayload(5) });
    expect(g.s.sessionCredit).toBe(15);
    for (const payload of [varintPayload(0), new Uint8Array([0x40])]) {
      const z = raw({ role: "gateway" }, V2_AGENT);
      z.inject({ type: T.WINDOW, stream: 0, payload });
      expect(z.state.closed).toEqual([1002, "protocol error: malformed window frame"]);
    }
  });

  test("a PONG that is not 8 bytes closes the session", () => {
    const r = raw({ role: "gateway" }, V2_AGENT);
    r.inject({ type: T.PONG, stream: 0, payload: new Uint8Array(7) });
    expect(r.state.closed).toEqual([1002, "protocol error: PONG payload of 7 bytes (must be 8)"]);
  });

  test("GOAWAY on the agent side does not fail its streams (only a gateway's streams can be unprocessed)", async () => {
    const streams: import("../src/tunnel/stream.ts").TunnelStream[] = [];
    const r = raw({ role: "agent", onStream: (s) => streams.push(s) }, V2_GATEWAY);
    r.inject(open(1), open(3));
    r.inject({ type: T.GOAWAY, stream: 0, payload: varintPayload(0, 0) });
    expect(streams.map((s) => s.isReset)).toEqual([false, false]);
    expect(r.s.acceptsStreams).toBe(false);
  });

  test("body bytes for a stream that closed go back to the session window (in batches)", async () => {
    const r = raw({ role: "agent", onStream: (s) => s.reset(ResetCode.CANCEL), sessionWindow: 800 }, V2_GATEWAY);
    r.inject(open(1));
    r.inject({ type: T.DATA, stream: 1, payload: new Uint8Array(99) });
    await tick();
    expect(windowsOn0(r.frames())).toEqual([]);
    r.inject({ type: T.WS_MESSAGE, stream: 1, payload: new Uint8Array(2) }); // 1 byte of data
    r.inject({ type: T.WS_MESSAGE, stream: 1, payload: new Uint8Array(0) }); // no data at all
    await tick();
    expect(windowsOn0(r.frames())).toEqual([100]);
    expect(r.state.closed).toBeNull();
  });

  test("gateway side: a frame for a stream it never opened closes the session; one it closed is ignored", async () => {
    const r = raw({ role: "gateway" }, V2_AGENT);
    const s = await r.s.open(GET);
    s.reset(ResetCode.CANCEL);
    r.inject({ type: T.DATA, stream: 1, payload: new Uint8Array(3) });
    expect(r.state.closed).toBeNull();
    r.inject({ type: T.DATA, stream: 2, payload: new Uint8Array(3) });
    expect(r.state.closed).toEqual([1002, "protocol error: frame for stream 2, which was never opened"]);
  });

  test("frames after a fatal one in the same message are not handled", () => {
    const streams: number[] = [];
    const r = raw({ role: "agent", onStream: (s) => streams.push(s.id) }, V2_GATEWAY);
    r.s.handleMessage(encodeFrames([{ type: T.PING, stream: 1, payload: new Uint8Array(8) }, open(1)]));
    expect(r.state.closed?.[0]).toBe(1002);
    expect(streams).toEqual([]);
    r.inject(open(3)); // after close: ignored
    expect(streams).toEqual([]);
  });

  test("a malformed message closes the session with the decoder's reason", () => {
    const r = raw({ role: "agent", onStream: () => {} }, V2_GATEWAY);
    r.s.handleMessage(new Uint8Array([T.DATA, 1, 5, 0]));
    expect(r.state.closed?.[0]).toBe(1002);
    expect(r.state.closed?.[1]).toStartWith("protocol error: ");
  });
});

describe("sending", () => {
  test("frames of one turn go out in one message; flushBytes sends at once", async () => {
    const r = raw({ role: "gateway" }, V2_AGENT);
    const a = await r.s.open(GET);
    a.end();
    expect(r.frames()).toEqual([]); // not yet: at the end of the turn
    await tick();
    expect(r.frames().map((f) => f.type)).toEqual([T.OPEN, T.END]);
    const f = raw({ role: "gateway", flushBytes: 10 }, V2_AGENT);
    const s = await f.s.open(GET); // the OPEN is over 10 bytes? it is small: queued
    await s.write(new Uint8Array(10)); // 10 bytes of payload queued: flushed synchronously
    expect(f.frames().map((x) => x.type)).toContain(T.DATA);
    const d = raw({ role: "gateway" }, V2_AGENT);
    const t = await d.s.open(GET); // its head counts too (a few bytes)
    await t.write(new Uint8Array(256 * 1024 - 64));
    expect(d.frames().length).toBe(0);
    await t.write(new Uint8Array(64)); // 256 KiB queued (the default flushBytes): sent at once
    expect(d.frames().map((x) => x.type)).toEqual([T.OPEN, T.DATA, T.DATA]);
  });

  test("a transport that prefers gather-send gets the frames as parts", async () => {
    const parts: number[] = [];
    const t: Transport = { send: () => true, sendParts: (p) => (parts.push(p.length), true), drained: () => Promise.resolve(), close: () => {} };
    const s = new Session(t, { role: "gateway" });
    s.handleMessage(JSON.stringify({ ...V2_AGENT, features: ["ws"], window: 1 << 20 }));
    const st = await s.open(GET);
    st.end();
    await tick();
    expect(parts.length).toBe(1);
    expect(parts[0]).toBeGreaterThanOrEqual(2);
  });

  test("returned session credit goes out as WINDOW on stream 0", async () => {
    const r = raw({ role: "gateway", sessionWindow: 80 }, V2_AGENT);
    r.s.returnSession(9);
    await tick();
    expect(windowsOn0(r.frames())).toEqual([]);
    r.s.returnSession(1);
    await tick();
    expect(windowsOn0(r.frames())).toEqual([10]);
  });

  test("a congested transport: writers wait until it drains", async () => {
    const r = raw({ role: "gateway" }, V2_AGENT);
    r.state.congested = true;
    const s = await r.s.open(GET);
    await tick();
    expect(r.s.writable()).not.toBeNull();
    let wrote = false;
    const w = s.write(new Uint8Array(5)).then(() => (wrote = true));
    await tick();
    expect(wrote).toBe(false);
    r.state.congested = false;
    r.state.drain();
    await w;
    expect(r.s.writable()).toBeNull();
  });
});

describe("closing", () => {
  test("close: default 1000 'session closed'; streams fail with the reason; ping and checkAlive refuse; onClose once", async () => {
    const reasons: string[] = [];
    const closes: Array<[number | undefined, string | undefined]> = [];
    const t: Transport = { send: () => true, drained: () => Promise.resolve(), close: (c, r) => void closes.push([c, r]) };
    const s = new Session(t, { role: "gateway", onClose: (r) => reasons.push(r) });
    s.handleMessage(JSON.stringify({ ...V2_AGENT, features: ["ws"], window: 100 }));
    const st = await s.open(GET);
    const p = s.ping(60_000);
    s.close();
    expect(closes).toEqual([[1000, "session closed"]]);
    expect(reasons).toEqual(["session closed"]);
    expect(s.isClosed).toBe(true);
    expect(s.acceptsStreams).toBe(false);
    expect(s.activeStreams).toBe(0);
    await expect(st.response).rejects.toThrow("tunnel session lost: session closed");
    await expect(p).rejects.toThrow("session closed: session closed");
    await expect(s.ping()).rejects.toThrow("session closed: session closed");
    expect(s.checkAlive()).toBe(false);
    s.handleClose("again");
    expect(reasons).toEqual(["session closed"]);
    await expect(s.sessionCreditWaiter()).resolves.toBeUndefined();
  });

  test("a writer waiting for session credit fails when the session closes", async () => {
    const p = pair({ sessionWindow: 1 << 20 }, { onStream: () => {} , sessionWindow: 1 << 20 });
    await p.gateway.ready;
    const r = raw({ role: "gateway" }, { ...V2_AGENT, sessionWindow: 4 });
    const s = await r.s.open(GET);
    const w = s.write(new Uint8Array(10)).catch((e) => e);
    await tick();
    r.s.handleClose("transport closed");
    expect((await w).message).toBe("tunnel session lost: transport closed");
  });

  test("rtt: v2 sends one PING to measure on first ask; a v1 peer or a closed session is never probed", async () => {
    const r = raw({ role: "gateway" }, V2_AGENT);
    expect(r.s.rtt).toBe(0);
    expect(r.s.rtt).toBe(0);
    await tick();
    expect(r.frames().filter((f) => f.type === T.PING).length).toBe(1);
    const v1 = raw({ role: "gateway" }, { azhexgate: 1, versions: [1], role: "agent" });
    void v1.s.rtt;
    await tick();
    expect(v1.frames().filter((f) => f.type === T.PING).length).toBe(0);
    const c = raw({ role: "gateway" }, V2_AGENT);
    c.s.close();
    void c.s.rtt;
    await tick();
    expect(c.frames().length).toBe(0);
  });

  test("checkAlive on a live quiet session sends a PING and stays alive until maxMissed", async () => {
    const r = raw({ role: "gateway" }, V2_AGENT);
    expect(r.s.checkAlive(1)).toBe(true); // the hello arrived since: alive, no PING
    await tick();
    expect(r.frames().length).toBe(0);
    expect(r.s.checkAlive(1)).toBe(true); // quiet: a PING
    expect(r.s.checkAlive(1)).toBe(false); // still nothing
    await tick();
    expect(r.frames().filter((f) => f.type === T.PING).length).toBe(1);
    const d = raw({ role: "gateway" }, V2_AGENT); // the default: two missed checks
    expect([d.s.checkAlive(), d.s.checkAlive(), d.s.checkAlive(), d.s.checkAlive()]).toEqual([true, true, true, false]);
  });
});

describe("more of what a peer or the owner sees", () => {
  test("no common version: ready rejects with a ProtocolMismatchError", async () => {
    const { ProtocolMismatchError } = await import("../src/tunnel/session.ts");
    const r = raw({ role: "gateway", versions: [2] }, { azhexgate: 1, versions: [1], role: "agent" });
    const e = await r.s.ready.catch((x) => x);
    expect(e).toBeInstanceOf(ProtocolMismatchError);
    expect(e.name).toBe("ProtocolMismatchError");
  });

  test("a stream that ends both ways is reported once, even if reset afterwards", async () => {
    const ended: unknown[] = [];
    const r = raw({ role: "agent", onStream: () => {}, onStreamEnd: (s) => ended.push(s) }, V2_GATEWAY);
    r.inject(open(1), { type: T.END, stream: 1, payload: new Uint8Array(0) });
    const s = (r.s as unknown as { streams: Map<number, import("../src/tunnel/stream.ts").TunnelStream> }).streams.get(1)!;
    s.end();
    expect(ended.length).toBe(1);
    expect(ended[0]).toBe(s);
    s.reset(ResetCode.CANCEL);
    expect(ended.length).toBe(1);
  });

  test("a TCP stream carries no request head (it is not HTTP); its label is on `tcp`", () => {
    const got: Array<[unknown, unknown]> = [];
    const r = raw({ role: "agent", onTcpStream: (s, head) => got.push([s.head, s.tcp]) }, V2_GATEWAY);
    r.inject(open(1, { kind: "tcp", target: "db" }));
    expect(got).toEqual([[undefined, { kind: "tcp", target: "db" }]]);
  });

  test("streams above the agent's GOAWAY fail REFUSED with a sentence saying why", async () => {
    const r = raw({ role: "gateway" }, V2_AGENT);
    const a = await r.s.open(GET);
    const b = await r.s.open(GET);
    r.inject({ type: T.GOAWAY, stream: 0, payload: varintPayload(1, 0) });
    expect(a.isReset).toBe(false);
    const e = await b.response.catch((x) => x);
    expect([e.code, e.message]).toEqual([ResetCode.REFUSED, "not processed: the agent is going away"]);
  });

  test("no empty message is ever sent (a flush with nothing queued sends nothing)", async () => {
    const { s, sent } = bare({ role: "gateway", flushBytes: 100 });
    s.handleMessage(JSON.stringify({ ...V2_AGENT, features: ["ws"], window: 1 << 20 }));
    const st = await s.open(GET);
    await st.write(new Uint8Array(200)); // over flushBytes: flushed at once
    await tick();
    const binary = sent.filter((m) => typeof m !== "string") as Uint8Array[];
    expect(binary.length).toBe(1);
    expect(binary.every((m) => m.length > 0)).toBe(true);
  });
});
