/**
 * Session credit (src/tunnel/credit.ts), liveness (src/tunnel/liveness.ts) and the per-frame
 * dispatch to a stream (src/tunnel/deliver.ts), as a peer sees them: how many WINDOW bytes come
 * back and when, who waits, which PINGs go out, which sentence a stream or session fails with.
 * Written to kill mutation survivors (issue 18, docs/testing.md).
 */
import { describe, expect, test } from "bun:test";
import { SessionCredit } from "../src/tunnel/credit.ts";
import { FrameType as T, ResetCode, parseVarints, resetPayload, type Frame } from "../src/tunnel/frame.ts";
import { Liveness } from "../src/tunnel/liveness.ts";
import type { StreamResetError, TunnelStream } from "../src/tunnel/stream.ts";
import { V2_AGENT, V2_GATEWAY, open, raw, tick } from "./support/tunnel-peers.ts";

const settled = async (p: Promise<unknown>) => {
  let done = false;
  void p.then(() => (done = true));
  await tick(2);
  return done;
};

describe("session credit", () => {
  test("before v2 is negotiated (a v1 peer) nothing is counted and no credit is returned", async () => {
    const c = new SessionCredit(800);
    expect(c.send).toBe(Infinity);
    expect(c.receive(1 << 30)).toBe(true);
    expect(c.release(1 << 30)).toBe(0);
    expect(await settled(c.waiter())).toBe(true);
  });

  test("start: our window counts from now; the peer's hello sets our send credit (absent: unlimited)", () => {
    const a = new SessionCredit(800);
    a.start(undefined);
    expect(a.send).toBe(Infinity);
    expect(a.receive(800)).toBe(true); // exactly the window
    expect(a.receive(1)).toBe(false); // one byte past it
    const b = new SessionCredit(800);
    b.start(500);
    expect(b.send).toBe(500);
  });

  test("credit returns in batches of an eighth of the window, and is usable again", () => {
    const c = new SessionCredit(800);
    c.start(1);
    expect(c.receive(800)).toBe(true);
    expect(c.release(99)).toBe(0);
    expect(c.release(1)).toBe(100); // 100 = 800 / 8
    expect(c.release(50)).toBe(0); // the batch starts again
    expect(c.receive(100)).toBe(true); // the 100 returned may be used
    expect(c.receive(1)).toBe(false);
  });

  test("a sender out of credit waits until WINDOW on stream 0; every waiter wakes", async () => {
    const c = new SessionCredit(800);
    c.start(10);
    expect(await settled(c.waiter())).toBe(true); // credit left: no wait
    c.send = 0;
    const w1 = c.waiter();
    const w2 = c.waiter();
    expect(await settled(w1)).toBe(false);
    c.grant(5);
    expect(c.send).toBe(5);
    expect(await settled(w1)).toBe(true);
    expect(await settled(w2)).toBe(true);
    c.send = -3; // spent past zero (a frame larger than what was left is never sent, but be safe)
    const w3 = c.waiter();
    c.grant(2);
    expect(c.send).toBe(-1);
    expect(await settled(w3)).toBe(true); // woken to look again: it waits anew if still short
    c.wake(); // nobody waiting: nothing happens
  });
});

describe("liveness", () => {
  const LIVE = [0x61, 0x6c, 0x69, 0x76, 0x65, 0x3f, 0, 0];
  test("a quiet session gets a PING per check, and is declared dead after maxMissed checks without anything", () => {
    const sent: number[][] = [];
    const l = new Liveness((p) => sent.push([...p]));
    expect(l.check(2)).toBe(true);
    expect(sent).toEqual([LIVE]);
    expect(l.check(2)).toBe(true); // one missed
    expect(sent.length).toBe(2);
    expect(l.check(2)).toBe(false); // two missed
    expect(sent.length).toBe(2);
    // something arrived: alive again, no PING needed, the count starts over
    l.rx++;
    expect(l.check(2)).toBe(true);
    expect(sent.length).toBe(2);
    expect(l.check(2)).toBe(true);
    expect(l.check(2)).toBe(true);
    expect(l.check(2)).toBe(false);
    const m = new Liveness(() => {});
    expect([m.check(1), m.check(1)]).toEqual([true, false]);
  });

  test("the PONG of a liveness PING measures the round trip once", async () => {
    const l = new Liveness(() => {});
    l.check(2);
    await Bun.sleep(3);
    l.pong(new Uint8Array(LIVE));
    expect(l.rtt).toBeGreaterThanOrEqual(2);
    const first = l.rtt;
    await Bun.sleep(3);
    l.pong(new Uint8Array(LIVE)); // a duplicate: not measured again
    expect(l.rtt).toBe(first);
    const fresh = new Liveness(() => {});
    fresh.pong(new Uint8Array(LIVE)); // never sent: no measurement
    expect(fresh.rtt).toBe(0);
    // the round trip is the time between the PING and its PONG, not more
    const timed = new Liveness(() => {});
    const t0 = performance.now();
    timed.check(2);
    await Bun.sleep(2);
    timed.pong(new Uint8Array(LIVE));
    expect(timed.rtt).toBeLessThanOrEqual(performance.now() - t0);
  });

  test("while a liveness PING is out, a PONG with another payload is not taken for its answer", () => {
    const l = new Liveness(() => {});
    l.check(2);
    l.pong(new Uint8Array([0x61, 0, 0, 0, 0, 0, 0, 1])); // shares the first byte only
    l.pong(new Uint8Array(8).fill(7));
    expect(l.rtt).toBe(0);
    l.pong(new Uint8Array(LIVE));
    expect(l.rtt).toBeGreaterThan(0);
  });

  test("ping: random 8 bytes; the matching PONG resolves with the round trip; others are ignored", async () => {
    const sent: Uint8Array[] = [];
    const l = new Liveness((p) => sent.push(p));
    const t0 = performance.now();
    const p1 = l.ping(5000);
    const p2 = l.ping(5000);
    expect(sent.length).toBe(2);
    expect(sent[0]!.length).toBe(8);
    expect(Buffer.compare(sent[0]!, sent[1]!)).not.toBe(0);
    await Bun.sleep(3);
    l.pong(new Uint8Array(8).fill(9)); // not ours
    l.pong(sent[1]!);
    expect(await settled(p1)).toBe(false);
    const before = performance.now();
    const rtt = await p2;
    expect(rtt).toBeGreaterThanOrEqual(2);
    expect(rtt).toBeLessThanOrEqual(before - t0);
    expect(l.rtt).toBe(rtt);
    l.pong(sent[0]!);
    expect(await p1).toBeGreaterThanOrEqual(2);
  });

  test("ping times out with a sentence; its late PONG is ignored; close rejects the rest", async () => {
    const sent: Uint8Array[] = [];
    const l = new Liveness((p) => sent.push(p));
    await expect(l.ping(5)).rejects.toThrow("no answer to a tunnel ping within 5 ms");
    l.pong(sent[0]!);
    expect(l.rtt).toBe(0);
    const a = l.ping(60_000);
    const b = l.ping(60_000);
    l.close("transport closed");
    await expect(a).rejects.toThrow("session closed: transport closed");
    await expect(b).rejects.toThrow("session closed: transport closed");
    l.pong(sent[1]!);
    expect(l.rtt).toBe(0);
  });
});

describe("frames to a stream (deliver)", () => {
  const agentWith = () => {
    const streams: TunnelStream[] = [];
    const r = raw({ role: "agent", onStream: (s) => streams.push(s) }, V2_GATEWAY);
    return { r, streams };
  };
  test("a malformed RESET still fails the stream (PROTOCOL, 'malformed reset'); a good one carries its code and reason", () => {
    const { r, streams } = agentWith();
    const errs: StreamResetError[] = [];
    r.inject(open(1), open(3));
    for (const s of streams) s.onReset = (e) => errs.push(e);
    r.inject({ type: T.RESET, stream: 1, payload: new Uint8Array([0xff]) }, { type: T.RESET, stream: 3, payload: resetPayload(ResetCode.CANCEL, "client left") });
    expect(errs.map((e) => [e.code, e.reason])).toEqual([[ResetCode.PROTOCOL, "malformed reset"], [ResetCode.CANCEL, "client left"]]);
    expect(r.state.closed).toBeNull();
  });

  test("a WS_CLOSE without a code reports 1005 (no status), as WebSocket does", () => {
    const { r, streams } = agentWith();
    r.inject(open(1, { kind: "ws", method: "GET", target: "/", headers: [] }));
    let got: [number, string] | null = null;
    streams[0]!.onWsClose = (c, why) => (got = [c, why]);
    r.inject({ type: T.WS_CLOSE, stream: 1, payload: new Uint8Array(0) });
    expect(got!).toEqual([1005, ""]);
  });

  test("WINDOW on a stream: zero or malformed closes the session; a good one lets the writer go on", async () => {
    for (const payload of [new Uint8Array([0]), new Uint8Array([0x40])]) {
      const { r } = agentWith();
      r.inject(open(1), { type: T.WINDOW, stream: 1, payload });
      expect(r.state.closed).toEqual([1002, "protocol error: malformed window frame"]);
    }
    const streams: TunnelStream[] = [];
    const r = raw({ role: "agent", onStream: (s) => streams.push(s) }, { ...V2_GATEWAY, window: 4 });
    r.inject(open(1));
    const w = streams[0]!.write(new Uint8Array(6));
    await tick();
    r.inject({ type: T.WINDOW, stream: 1, payload: new Uint8Array([2]) });
    await w;
    await tick();
    expect(r.frames().filter((f) => f.type === T.DATA).map((f) => f.payload.length)).toEqual([4, 2]);
  });

  test("RESPONSE: a malformed head resets PROTOCOL with the decoder's sentence; an oversized one RESPONSE_HEAD_TOO_LARGE", async () => {
    const g = raw({ role: "gateway" }, V2_AGENT);
    const a = await g.s.open({ kind: "http", method: "GET", target: "/", headers: [] });
    const b = await g.s.open({ kind: "http", method: "GET", target: "/", headers: [] });
    g.inject({ type: T.RESPONSE, stream: a.id, payload: new Uint8Array([0xff]) });
    const ea = await a.response.catch((e) => e);
    expect(ea.code).toBe(ResetCode.PROTOCOL);
    expect(ea.message.length).toBeGreaterThan(0);
    // a head over the limit: a header value of 140,000 bytes
    const { encodeResponseHead } = await import("../src/tunnel/head-binary.ts");
    const ok = encodeResponseHead({ status: 200, headers: [["x", "y"]] })!;
    g.inject({ type: T.RESPONSE, stream: b.id, payload: ok });
    expect((await b.response).status).toBe(200);
    const c = await g.s.open({ kind: "http", method: "GET", target: "/", headers: [] });
    const huge = new Uint8Array(200_000);
    huge.set(ok.subarray(0, 2));
    g.inject({ type: T.RESPONSE, stream: c.id, payload: huge });
    const ec = await c.response.catch((e) => e);
    expect([ec.code, ec.message.startsWith("The local app's response headers are too large (")]).toEqual([ResetCode.RESPONSE_HEAD_TOO_LARGE, true]);
    expect(g.state.closed).toBeNull();
  });

  test("v1: the response head is JSON", async () => {
    const g = raw({ role: "gateway" }, { azhexgate: 1, versions: [1], role: "agent" });
    const a = await g.s.open({ kind: "http", method: "GET", target: "/", headers: [] });
    g.inject({ type: T.RESPONSE, stream: a.id, payload: new TextEncoder().encode(JSON.stringify({ status: 204, headers: [] })) });
    expect((await a.response).status).toBe(204);
    const b = await g.s.open({ kind: "http", method: "GET", target: "/", headers: [] });
    g.inject({ type: T.RESPONSE, stream: b.id, payload: new TextEncoder().encode("{") });
    expect((await b.response.catch((e) => e)).code).toBe(ResetCode.PROTOCOL);
  });

  test("a RESPONSE on a TCP stream resets it PROTOCOL with a sentence naming it", async () => {
    const g = raw({ role: "gateway" }, V2_AGENT);
    const s = await g.s.openTcp();
    let err: StreamResetError | null = null;
    s.onReset = (e) => (err = e);
    g.inject({ type: T.RESPONSE, stream: s.id, payload: new Uint8Array([0, 200, 0, 0]) });
    expect([err!.code, err!.reason]).toEqual([ResetCode.PROTOCOL, "RESPONSE on a TCP stream"]);
  });

  test("DATA and END reach the body", async () => {
    const { r, streams } = agentWith();
    r.inject(open(1), { type: T.DATA, stream: 1, payload: new TextEncoder().encode("hi") }, { type: T.END, stream: 1, payload: new Uint8Array(0) });
    expect(new TextDecoder().decode(streams[0]!.takeCompleteBody()!)).toBe("hi");
    const f: Frame[] = r.frames();
    expect(f.filter((x) => x.type === T.WINDOW).map((x) => parseVarints(x.payload, 1)![0])).toEqual([]);
  });
});

describe("answer (the response head)", () => {
  test("the first outcome stands, whether or not anyone asked yet", async () => {
    const { Answer } = await import("../src/tunnel/inbound.ts");
    const a = new Answer<number>();
    a.reject(new Error("reset first"));
    a.resolve(1);
    await expect(a.promise).rejects.toThrow("reset first");
    const b = new Answer<number>();
    b.resolve(2);
    b.reject(new Error("late"));
    b.resolve(3);
    expect(await b.promise).toBe(2);
    const c = new Answer<number>();
    const p = c.promise;
    c.resolve(4);
    c.reject(new Error("late"));
    expect(await p).toBe(4);
    expect(await c.promise).toBe(4);
  });
});
