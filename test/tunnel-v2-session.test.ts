/**
 * Tunnel protocol v2 session rules (docs/protocol.md, "Compatibility rule", "TCP streams", "Rules
 * every end enforces"): each rule with a test, over in-memory transports (a Session against a
 * Session, or against a hand-driven raw peer that forges frames; test/support/tunnel-peers.ts).
 */
import { describe, expect, test } from "bun:test";
import { FrameType as T, ResetCode, parseReset, varintPayload, wsClosePayload, type Frame } from "../src/tunnel/frame.ts";
import { ProtocolMismatchError } from "../src/tunnel/session.ts";
import { StreamResetError, type TunnelStream } from "../src/tunnel/stream.ts";
import { GET, V2_AGENT, V2_GATEWAY, echoAgent, open, pair, raw, roundTrip, tick } from "./support/tunnel-peers.ts";

describe("version negotiation", () => {
  test("v2 ↔ v2 speaks 2; a v1-only peer on either side gets v1, and requests work", async () => {
    for (const [gw, ag, want] of [[undefined, undefined, 2], [undefined, [1], 1], [[1], undefined, 1]] as const) {
      const p = pair(gw ? { versions: gw } : {}, { ...(ag ? { versions: ag } : {}), onStream: echoAgent });
      await Promise.all([p.gateway.ready, p.agent.ready]);
      expect([p.gateway.version, p.agent.version]).toEqual([want, want]);
      expect(await roundTrip(p.gateway, "/x")).toEqual({ status: 200, body: "hello /x" });
    }
  });
  test("no common version: both sides close with 1002 and a sentence naming both versions", async () => {
    const p = pair({ versions: [2] }, { versions: [1], onStream: echoAgent });
    const err = await p.gateway.ready.then(() => null, (e) => e);
    expect(err).toBeInstanceOf(ProtocolMismatchError);
    expect(err.message).toBe("tunnel protocol mismatch: this gateway speaks versions 2, the agent speaks 1; upgrade azhexgate on the agent");
    await tick();
    expect(p.closes).toContainEqual([1002, "tunnel protocol mismatch: this agent speaks versions 1, the gateway speaks 2; upgrade azhexgate on this agent"]);
    await expect(p.gateway.open(GET)).rejects.toThrow(/mismatch/);
  });
});

describe("heads over the limit fail their stream only", () => {
  test("a 150,000-byte request header: REQUEST_HEAD_TOO_LARGE before any stream opens; the next request works", async () => {
    // v1 JSON heads allow 256 KiB, v2 binary heads 128 KiB
    for (const [versions, size] of [[[1, 2], 150_000], [[1], 300_000]] as const) {
      const p = pair({ versions }, { onStream: echoAgent });
      const err = await p.gateway.open({ ...GET, headers: [["x-big", "a".repeat(size)]] }).then(() => null, (e) => e);
      expect(err).toBeInstanceOf(StreamResetError);
      expect(err.code).toBe(ResetCode.REQUEST_HEAD_TOO_LARGE);
      expect(await roundTrip(p.gateway, "/after")).toEqual({ status: 200, body: "hello /after" });
      expect(p.gateway.isClosed).toBe(false);
    }
  });
  test("an OPEN over the limit from the peer: RESET REQUEST_HEAD_TOO_LARGE for that stream, the session goes on", async () => {
    const streams: TunnelStream[] = [];
    const r = raw({ role: "agent", onStream: (s) => streams.push(s) }, V2_GATEWAY);
    const big = new Uint8Array(200_000);
    r.inject({ type: T.OPEN, stream: 1, payload: big }, open(3));
    await tick();
    const reset = r.frames().find((f) => f.type === T.RESET)!;
    expect(reset.stream).toBe(1);
    expect(parseReset(reset.payload)!.code).toBe(ResetCode.REQUEST_HEAD_TOO_LARGE);
    expect(streams.map((s) => s.id)).toEqual([3]);
    expect(r.state.closed).toBeNull();
  });
  test("a response head over the limit: that stream fails RESPONSE_HEAD_TOO_LARGE, a sibling stream is served", async () => {
    const p = pair({}, {
      onStream: (s) => {
        if (s.head!.target === "/big") expect(s.sendResponse({ status: 200, headers: [["x", "b".repeat(140_000)]] })).toBe(false);
        else echoAgent(s);
      },
    });
    const big = await p.gateway.open({ ...GET, target: "/big" });
    big.end();
    const err = await big.response.then(() => null, (e) => e);
    expect(err?.code).toBe(ResetCode.RESPONSE_HEAD_TOO_LARGE);
    expect(await roundTrip(p.gateway, "/ok")).toEqual({ status: 200, body: "hello /ok" });
  });
});

describe("stream ids and directions", () => {
  test("an OPEN id not above every earlier one closes the session; so does a frame for a never-opened id", () => {
    for (const ids of [[3, 2], [1, 1]]) {
      const r = raw({ role: "agent", onStream: () => {} }, V2_GATEWAY);
      r.inject(open(ids[0]!), open(ids[1]!));
      expect(r.state.closed?.[0]).toBe(1002);
      expect(r.state.closed?.[1]).toMatch(/stream id \d reused or not increasing/);
    }
    const r = raw({ role: "agent", onStream: () => {} }, V2_GATEWAY);
    r.inject({ type: T.DATA, stream: 9, payload: new Uint8Array(1) });
    expect(r.state.closed).toEqual([1002, "protocol error: frame for stream 9, which was never opened"]);
    const g = raw({ role: "gateway" }, V2_AGENT);
    g.inject(open(2));
    expect(g.state.closed).toEqual([1002, "protocol error: only the gateway opens streams"]);
  });
  test("a frame for a stream that has closed is ignored (it may have been in flight)", async () => {
    const r = raw({ role: "agent", onStream: (s) => s.reset(ResetCode.CANCEL) }, V2_GATEWAY);
    r.inject(open(1), { type: T.DATA, stream: 1, payload: new Uint8Array(5) }, { type: T.END, stream: 1, payload: new Uint8Array(0) });
    expect(r.state.closed).toBeNull();
  });
  test("DATA after END, END twice, WS_MESSAGE after WS_CLOSE: RESET PROTOCOL of that stream only", async () => {
    const streams: TunnelStream[] = [];
    const r = raw({ role: "agent", onStream: (s) => streams.push(s) }, V2_GATEWAY);
    const end = (id: number): Frame => ({ type: T.END, stream: id, payload: new Uint8Array(0) });
    r.inject(open(1), end(1), { type: T.DATA, stream: 1, payload: new Uint8Array(3) });
    r.inject(open(3), end(3), end(3));
    r.inject(open(5, { ...GET, kind: "ws" }), { type: T.WS_CLOSE, stream: 5, payload: wsClosePayload(1000) }, { type: T.WS_MESSAGE, stream: 5, payload: new Uint8Array([3, 1]) });
    r.inject(open(7));
    await tick();
    const resets = r.frames().filter((f) => f.type === T.RESET).map((f) => [f.stream, parseReset(f.payload)]);
    expect(resets).toEqual([
      [1, { code: ResetCode.PROTOCOL, reason: "DATA after the peer ended the stream" }],
      [3, { code: ResetCode.PROTOCOL, reason: "END after the peer ended the stream" }],
      [5, { code: ResetCode.PROTOCOL, reason: "WS_MESSAGE after the peer ended the stream" }],
    ]);
    expect(r.state.closed).toBeNull();
    expect(streams.at(-1)!.id).toBe(7);
    expect(streams.at(-1)!.isReset).toBe(false);
  });
});

describe("GOAWAY", () => {
  test("v2: streams above lastStream fail REFUSED at once; streams at or below it finish", async () => {
    const g = raw({ role: "gateway" }, V2_AGENT);
    const s1 = await g.s.open(GET);
    const s2 = await g.s.open(GET);
    const s2err = s2.response.then(() => null, (e) => e);
    g.inject({ type: T.GOAWAY, stream: 0, payload: varintPayload(1, 0) });
    expect((await s2err)?.code).toBe(ResetCode.REFUSED);
    expect(s1.isReset).toBe(false);
    expect(g.s.acceptsStreams).toBe(false);
    g.inject({ type: T.RESPONSE, stream: 1, payload: new Uint8Array([0, 200, 0, 0]) }, { type: T.END, stream: 1, payload: new Uint8Array(0) });
    expect((await s1.response).status).toBe(200);
  });
  test("a v1 peer's GOAWAY (whose lastStream means something else) lets every stream finish", async () => {
    const g = raw({ role: "gateway" }, { azhexgate: 1, role: "agent" });
    expect(g.s.version).toBe(1);
    const s1 = await g.s.open(GET);
    g.inject({ type: T.GOAWAY, stream: 0, payload: varintPayload(0, 0) });
    expect(s1.isReset).toBe(false);
  });
  test("the agent's GOAWAY names the highest stream it took; an OPEN after it is refused", async () => {
    const r = raw({ role: "agent", onStream: () => {} }, V2_GATEWAY);
    r.inject(open(1), open(4));
    r.s.goAway();
    r.inject(open(6));
    await tick();
    const f = r.frames();
    expect(f.find((x) => x.type === T.GOAWAY)!.payload).toEqual(varintPayload(4, 0));
    const reset = f.find((x) => x.type === T.RESET)!;
    expect([reset.stream, parseReset(reset.payload)!.code]).toEqual([6, ResetCode.REFUSED]);
  });
  test("a malformed GOAWAY closes the session", () => {
    const r = raw({ role: "agent", onStream: () => {} }, V2_GATEWAY);
    r.inject({ type: T.GOAWAY, stream: 0, payload: new Uint8Array([0x40]) });
    expect(r.state.closed).toEqual([1002, "protocol error: malformed goaway frame"]);
  });
});

describe("PING / PONG", () => {
  const ping = (b = 8): Frame => ({ type: T.PING, stream: 0, payload: new Uint8Array(b).fill(7) });
  test("a PING that is not 8 bytes closes the session (1002)", () => {
    for (const n of [0, 9, 1 << 20]) {
      const r = raw({ role: "gateway" }, V2_AGENT);
      r.inject(ping(n));
      expect(r.state.closed).toEqual([1002, `protocol error: PING payload of ${n} bytes (must be 8)`]);
    }
  });
  test("a PING flood gets at most 16 PONGs per turn", async () => {
    const r = raw({ role: "gateway" }, V2_AGENT);
    r.inject(...Array.from({ length: 10_000 }, () => ping()));
    await tick();
    expect(r.frames().filter((f) => f.type === T.PONG).length).toBe(16);
  });
  test("under backpressure no PONG is queued; the latest PING is answered once the transport drains", async () => {
    const r = raw({ role: "gateway" }, V2_AGENT);
    r.state.congested = true;
    void r.s.ping(1000).catch(() => {}); // something to send: the transport then reports congestion
    await tick();
    const before = r.frames().length;
    for (let i = 0; i < 1000; i++) r.inject({ type: T.PING, stream: 0, payload: new Uint8Array(8).fill(i & 0xff) });
    await tick();
    expect(r.frames().length).toBe(before); // nothing queued or sent while congested
    r.state.congested = false;
    r.state.drain();
    await tick();
    const pongs = r.frames().filter((f) => f.type === T.PONG);
    expect(pongs.map((f) => f.payload[0])).toEqual([999 & 0xff]);
  });
  test("PING / PONG / GOAWAY on a stream other than 0 close the session", () => {
    const r = raw({ role: "gateway" }, V2_AGENT);
    r.inject({ type: T.PING, stream: 1, payload: new Uint8Array(8) });
    expect(r.state.closed).toEqual([1002, "protocol error: frame type 9 on stream 1 (stream 0 only)"]);
  });
});

describe("TCP streams", () => {
  test("bytes both ways, half-close each way independently, RESET with a code and a reason", async () => {
    let agentSide!: TunnelStream;
    const p = pair({}, {
      onTcpStream: (s, head) => {
        expect(head).toEqual({ kind: "tcp", target: agentSide ? "" : "postgres" });
        agentSide = s;
        void (async () => {
          const got = await new Response(s.body).text(); // until the opener's FIN
          await s.write(new TextEncoder().encode(`echo:${got}`)); // still allowed after the peer's FIN
          s.end();
        })().catch(() => {}); // the second stream is reset below
      },
    });
    const s = await p.gateway.openTcp("postgres");
    await s.write(new TextEncoder().encode("SELECT 1"));
    s.end(); // our FIN: the agent still answers
    expect(await new Response(s.body).text()).toBe("echo:SELECT 1");
    await tick();
    expect(agentSide.isReset).toBe(false);
    expect(p.gateway.activeStreams).toBe(0);

    const t = await p.gateway.openTcp();
    await tick();
    const err = new Promise<StreamResetError>((r) => (t.onReset = r));
    expect(agentSide.tcp).toEqual({ kind: "tcp", target: "" }); // the second stream
    agentSide.reset(ResetCode.CONNECTION_RESET, "connection reset by localhost:5432 on the serving side");
    expect(await err).toMatchObject({ code: ResetCode.CONNECTION_RESET, reason: "connection reset by localhost:5432 on the serving side" });
  });
  test("an agent that serves no TCP: not asked (no 'tcp' feature), and refuses such an OPEN; a v1 peer cannot be asked", async () => {
    const p = pair({}, { onStream: echoAgent });
    await expect(p.gateway.openTcp("x")).rejects.toThrow("The agent does not serve TCP streams.");
    const r = raw({ role: "agent", onStream: echoAgent }, V2_GATEWAY);
    r.inject(open(1, { kind: "tcp", target: "x" }));
    await tick();
    const reset = r.frames().find((f) => f.type === T.RESET)!;
    expect([reset.stream, parseReset(reset.payload)]).toEqual([1, { code: ResetCode.REFUSED, reason: "this end does not serve TCP streams" }]);
    const old = pair({}, { versions: [1], onStream: echoAgent });
    await expect(old.gateway.openTcp()).rejects.toThrow("The agent speaks tunnel protocol 1, which has no TCP streams: upgrade azhexgate on the agent.");
  });
  test("a RESPONSE on a TCP stream resets it", async () => {
    const g = raw({ role: "gateway" }, V2_AGENT);
    const s = await g.s.openTcp();
    g.inject({ type: T.RESPONSE, stream: s.id, payload: new Uint8Array([0, 200, 0, 0]) });
    expect(s.isReset).toBe(true);
  });
});
