/**
 * One tunnel stream against a recording host (test/support/stream-host.ts): `writeNow` (the
 * agent's one-frame body path, src/agent/forward.ts) and the process budget's count of inbound
 * bytes held by a stream. Written for mutation testing (issue 18, the `stream` group).
 */
import { describe, expect, test } from "bun:test";
import { FrameType as T, MAX_FRAME_PAYLOAD, ResetCode } from "../src/tunnel/frame.ts";
import { bytes, mkStream, turn } from "./support/stream-host.ts";

describe("writeNow: one DATA frame now, or nothing", () => {
  test("sends when stream and session credit cover the chunk (exactly is enough); charges both and counts the bytes", () => {
    const { host, s } = mkStream({ peerWindow: 1000 });
    expect(s.writeNow(bytes(600))).toBe(true);
    expect(host.of(T.DATA).map((f) => [f.stream, f.payload.length])).toEqual([[7, 600]]);
    expect([s.bytesSent, host.spent]).toEqual([600, 600]);
    expect(s.writeNow(bytes(401))).toBe(false); // 400 credit left
    expect(s.writeNow(bytes(400))).toBe(true);
    expect(s.writeNow(bytes(1))).toBe(false);
    expect(host.of(T.DATA).map((f) => f.payload.length)).toEqual([600, 400]);
    expect([s.bytesSent, host.spent]).toEqual([1000, 1000]);
  });

  test("the stream's credit left after writeNow is what a later write gets", async () => {
    const { host, s } = mkStream({ peerWindow: 1000 });
    expect(s.writeNow(bytes(700))).toBe(true);
    void s.write(bytes(500)).catch(() => {});
    await turn();
    expect(host.of(T.DATA).map((f) => f.payload.length)).toEqual([700, 300]);
  });

  test("the session's credit bounds it too (exactly is enough)", () => {
    const { host, s } = mkStream({ peerWindow: 1000 });
    host.sessionCredit = 100;
    expect(s.writeNow(bytes(101))).toBe(false);
    expect(host.spent).toBe(0);
    expect(s.writeNow(bytes(100))).toBe(true);
    expect(host.sessionCredit).toBe(0);
  });

  test("nothing for an empty chunk, a chunk over the frame limit (the limit itself goes), a congested transport, after END or a reset", () => {
    const big = mkStream({ peerWindow: 4 * MAX_FRAME_PAYLOAD });
    expect(big.s.writeNow(bytes(0))).toBe(false);
    expect(big.s.writeNow(bytes(MAX_FRAME_PAYLOAD + 1))).toBe(false);
    expect(big.host.frames).toEqual([]);
    expect(big.s.writeNow(bytes(MAX_FRAME_PAYLOAD))).toBe(true);
    expect(big.host.of(T.DATA).length).toBe(1);

    const c = mkStream();
    c.host.congested = new Promise(() => {});
    expect(c.s.writeNow(bytes(10))).toBe(false);
    c.host.congested = null;
    expect(c.s.writeNow(bytes(10))).toBe(true);

    const e = mkStream();
    e.s.end();
    expect(e.s.writeNow(bytes(10))).toBe(false);
    expect(e.host.of(T.DATA)).toEqual([]);

    const r = mkStream();
    r.s.reset(ResetCode.CANCEL, "gone");
    expect(r.s.writeNow(bytes(10))).toBe(false);
    expect(r.host.of(T.DATA)).toEqual([]);
    expect(r.host.spent).toBe(0);
  });
});

describe("the process budget counts what a stream holds", () => {
  test("received bytes count until read", async () => {
    const { host, s } = mkStream({ window: 1000 });
    s.handleData(bytes(300));
    s.handleData(bytes(200));
    expect(host.budget.buffered).toBe(500);
    const r = s.body.getReader();
    let got = (await r.read()).value!.length; // one chunk: only it stops counting
    await turn();
    expect(host.budget.buffered).toBe(500 - got);
    while (got < 500) got += (await r.read()).value!.length;
    await turn();
    expect(host.budget.buffered).toBe(0);
  });

  test("a reset drops what is queued from the count, once: discarding it afterwards frees nothing more", async () => {
    const { host, s } = mkStream({ window: 1000 });
    host.budget.hold(50); // another stream's bytes
    s.handleData(bytes(300));
    expect(host.budget.buffered).toBe(350);
    s.reset(ResetCode.CANCEL, "client gone");
    expect(host.budget.buffered).toBe(50);
    s.discardBody();
    await turn();
    expect(host.budget.buffered).toBe(50);
  });

  test("bytes read before a reset are not freed twice", async () => {
    const { host, s } = mkStream({ window: 1000 });
    host.budget.hold(50);
    s.handleData(bytes(300));
    const r = s.body.getReader();
    expect((await r.read()).value!.length).toBe(300);
    await turn();
    expect(host.budget.buffered).toBe(50);
    s.handleData(bytes(100));
    expect(host.budget.buffered).toBe(150);
    s.reset(ResetCode.CANCEL, "client gone");
    expect(host.budget.buffered).toBe(50);
  });
});
