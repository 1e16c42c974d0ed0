/**
 * One tunnel stream against a recording host (test/support/stream-host.ts): what the peer sees
 * (frames, credit) when the app writes, ends, resets, sends WebSocket messages, and what the app
 * sees when the peer misbehaves. Written to kill mutation survivors in src/tunnel/stream.ts
 * (issue 18, docs/testing.md); each test asserts a behaviour a peer or the app would notice.
 * This file: errors and the send side (data, end, WebSocket send); the receive side is in
 * tunnel-stream-inbound-mutants.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { FrameType as T, MAX_FRAME_PAYLOAD, ResetCode, WsFlags } from "../src/tunnel/frame.ts";
import { SessionLostError, StreamResetError } from "../src/tunnel/stream.ts";
import { bytes, mkStream, turn } from "./support/stream-host.ts";

const FIN = WsFlags.FIN;
const BIN = WsFlags.BINARY;

describe("errors", () => {
  test("a reset error carries its code and reason; without a reason it names the code", () => {
    const e = new StreamResetError(ResetCode.REFUSED, "busy");
    expect([e.name, e.code, e.reason, e.message]).toEqual(["StreamResetError", 1, "busy", "busy"]);
    expect(new StreamResetError(5, "").message).toBe("stream reset (code 5)");
    const lost = new SessionLostError("peer closed");
    expect(lost).toBeInstanceOf(StreamResetError);
    expect([lost.code, lost.message]).toEqual([ResetCode.INTERNAL, "tunnel session lost: peer closed"]);
  });
});

describe("outbound", () => {
  test("the response head goes out once; a head over the limit resets the stream RESPONSE_HEAD_TOO_LARGE", async () => {
    const { host, s } = mkStream();
    expect(s.sendResponse({ status: 200, headers: [] })).toBe(true);
    expect(host.of(T.RESPONSE).length).toBe(1);
    expect(host.of(T.RESPONSE)[0]!.stream).toBe(7);

    const b = mkStream();
    b.host.tooLarge = true;
    let seen: StreamResetError | null = null;
    b.s.onReset = (e) => (seen = e);
    expect(b.s.sendResponse({ status: 200, headers: [] })).toBe(false);
    expect(b.host.of(T.RESPONSE).length).toBe(0);
    expect(b.host.resets()).toEqual([{ code: ResetCode.RESPONSE_HEAD_TOO_LARGE, reason: "The local app's response headers are larger than the tunnel's head limit." }]);
    expect(seen!.code).toBe(ResetCode.RESPONSE_HEAD_TOO_LARGE);
    expect(b.s.isReset).toBe(true);
    expect(b.host.released).toEqual([7]);
    // after the reset nothing more is sent
    b.host.tooLarge = false;
    expect(b.s.sendResponse({ status: 200, headers: [] })).toBe(false);
    expect(b.host.of(T.RESPONSE).length).toBe(0);
  });

  test("write: split to the credit, waits for WINDOW, counts bytes, charges the session", async () => {
    const { host, s } = mkStream({ peerWindow: 10 });
    let done = false;
    const w = s.write(bytes(25)).then(() => (done = true));
    await turn();
    expect(host.of(T.DATA).map((f) => f.payload.length)).toEqual([10]);
    expect(done).toBe(false);
    s.handleWindow(8);
    await turn();
    expect(host.of(T.DATA).map((f) => f.payload.length)).toEqual([10, 8]);
    expect(done).toBe(false);
    s.handleWindow(100);
    await w;
    expect(host.of(T.DATA).map((f) => f.payload.length)).toEqual([10, 8, 7]);
    expect(s.bytesSent).toBe(25);
    expect(host.spent).toBe(25);
    // the credit left is 93: a write of 93 goes in one frame, the 94th byte waits
    const w2 = s.write(bytes(94));
    await turn();
    expect(host.of(T.DATA).map((f) => f.payload.length)).toEqual([10, 8, 7, 93]);
    s.fail(new StreamResetError(ResetCode.CANCEL, "gone"));
    await expect(w2).rejects.toThrow("gone");
  });

  test("write: a frame never exceeds the frame limit", async () => {
    const { host, s } = mkStream({ peerWindow: 4 << 20 });
    await s.write(bytes(MAX_FRAME_PAYLOAD * 2 + 1));
    expect(host.of(T.DATA).map((f) => f.payload.length)).toEqual([MAX_FRAME_PAYLOAD, MAX_FRAME_PAYLOAD, 1]);
  });

  test("write: waits for session credit as well as stream credit", async () => {
    const { host, s } = mkStream({ peerWindow: 1000 });
    host.sessionCredit = 4;
    let done = false;
    const w = s.write(bytes(10)).then(() => (done = true));
    await turn();
    expect(host.of(T.DATA).map((f) => f.payload.length)).toEqual([4]);
    expect(done).toBe(false);
    host.grantSession(100);
    await w;
    expect(host.of(T.DATA).map((f) => f.payload.length)).toEqual([4, 6]);
    expect(host.sessionCredit).toBe(94);
  });

  test("write: waits while the transport is congested, fails if reset meanwhile", async () => {
    const { host, s } = mkStream();
    let drain!: () => void;
    host.congested = new Promise((r) => (drain = r));
    const w = s.write(bytes(3));
    await turn();
    expect(host.of(T.DATA).length).toBe(0);
    host.congested = null;
    drain();
    await w;
    expect(host.of(T.DATA).length).toBe(1);

    let drain2!: () => void;
    host.congested = new Promise((r) => (drain2 = r));
    const w2 = s.write(bytes(3));
    await turn();
    s.reset(ResetCode.CANCEL, "client left");
    // the transport drains after the reset: the write fails and sends nothing after the RESET
    host.congested = null;
    drain2();
    await expect(w2).rejects.toThrow("client left");
    expect(host.frames.at(-1)!.type).toBe(T.RESET);
    expect(host.of(T.DATA).length).toBe(1);
  });

  test("write after end fails 'stream already ended'; write after reset fails with the reset", async () => {
    const { host, s } = mkStream();
    s.end();
    const e = await s.write(bytes(1)).catch((x) => x);
    expect(e).toBeInstanceOf(StreamResetError);
    expect([e.code, e.message]).toEqual([ResetCode.PROTOCOL, "stream already ended"]);
    expect(host.of(T.DATA).length).toBe(0);

    const b = mkStream();
    b.s.handleReset(ResetCode.ORIGIN_TIMEOUT, "slow");
    const e2 = await b.s.write(bytes(1)).catch((x) => x);
    expect([e2.code, e2.message]).toEqual([ResetCode.ORIGIN_TIMEOUT, "slow"]);
    expect(b.host.of(T.DATA).length).toBe(0);
  });

  test("a writer waiting for credit fails when the stream is reset", async () => {
    const { s } = mkStream({ peerWindow: 0 });
    const w = s.write(bytes(5));
    await turn();
    s.handleReset(ResetCode.CANCEL, "bye");
    await expect(w).rejects.toThrow("bye");
    const b = mkStream();
    b.host.sessionCredit = 0;
    const w2 = b.s.write(bytes(5));
    await turn();
    b.s.fail(new StreamResetError(ResetCode.CANCEL, "bye2"));
    b.host.grantSession(10); // the session wakes its waiters
    await expect(w2).rejects.toThrow("bye2");
    expect(b.host.of(T.DATA).length).toBe(0);
  });

  test("end: one END; none after a reset; released once both directions ended", () => {
    const { host, s } = mkStream();
    s.end();
    s.end();
    expect(host.of(T.END).length).toBe(1);
    expect(host.released).toEqual([]);
    s.handleEnd();
    expect(host.released).toEqual([7]);
    // both ended: a reset now tells the peer nothing (it has nothing to abort) but fails locally
    s.reset(ResetCode.CANCEL);
    expect(host.of(T.RESET).length).toBe(0);
    expect(s.isReset).toBe(true);

    const b = mkStream();
    b.s.handleEnd();
    expect(b.host.released).toEqual([]);
    b.s.reset(ResetCode.CANCEL, "x"); // only the peer ended: it still hears the reset
    expect(b.host.resets()).toEqual([{ code: 0, reason: "x" }]);
    b.s.end();
    expect(b.host.of(T.END).length).toBe(0);
    const d = mkStream();
    let err: StreamResetError | null = null;
    d.s.onReset = (e) => (err = e);
    d.s.reset(ResetCode.CANCEL); // no reason: an empty one on the wire, the code in the message
    expect(d.host.resets()).toEqual([{ code: 0, reason: "" }]);
    expect(err!.message).toBe("stream reset (code 0)");
    const c = mkStream();
    c.s.end();
    c.s.reset(ResetCode.CANCEL, "y"); // only we ended: the peer still hears the reset
    expect(c.host.resets()).toEqual([{ code: 0, reason: "y" }]);
  });

  test("reset: one RESET frame, the response and body fail, onReset hears it once", async () => {
    const { host, s } = mkStream();
    const seen: StreamResetError[] = [];
    s.onReset = (e) => seen.push(e);
    const response = s.response;
    const reader = s.body.getReader();
    s.reset(ResetCode.ORIGIN_UNREACHABLE, "refused");
    s.reset(ResetCode.INTERNAL, "again");
    s.handleReset(ResetCode.CANCEL, "peer");
    expect(host.resets()).toEqual([{ code: ResetCode.ORIGIN_UNREACHABLE, reason: "refused" }]);
    expect(seen.map((e) => e.reason)).toEqual(["refused"]);
    expect(host.released).toEqual([7]);
    await expect(response).rejects.toThrow("refused");
    await expect(reader.read()).rejects.toThrow("refused");
    expect(s.takeCompleteBody()).toBeNull();
    // a RESPONSE after the reset does not resolve anything
    s.handleResponse({ status: 200, headers: [] });
    await expect(s.response).rejects.toThrow("refused");
  });

  test("the first response head stands", async () => {
    const { s } = mkStream();
    s.handleResponse({ status: 200, headers: [] });
    s.handleResponse({ status: 500, headers: [] });
    expect((await s.response).status).toBe(200);
  });
});

describe("WebSocket send", () => {
  test("wsSend: fragments at the frame limit (less the flags byte), FIN on the last, BINARY on each", async () => {
    const { host, s } = mkStream({ peerWindow: 4 << 20 });
    await s.wsSend(bytes(MAX_FRAME_PAYLOAD), true);
    expect(host.wsFrames()).toEqual([[BIN, MAX_FRAME_PAYLOAD - 1], [BIN | FIN, 1]]);
    await s.wsSend(bytes(3), false);
    await s.wsSend(new Uint8Array(0), false);
    await s.wsSend(new Uint8Array(0), true);
    expect(host.wsFrames().slice(2)).toEqual([[FIN, 3], [FIN, 0], [BIN | FIN, 0]]);
    expect(s.bytesSent).toBe(MAX_FRAME_PAYLOAD + 3);
  });

  test("wsSendQueued sends at once when credit allows, and charges stream and session credit", () => {
    const { host, s } = mkStream({ peerWindow: 10 });
    host.sessionCredit = 10;
    s.wsSendQueued(bytes(10), true, () => {});
    expect(host.wsFrames()).toEqual([[BIN | FIN, 10]]); // synchronously: no promise per message
    expect(host.sessionCredit).toBe(0);
    expect(s.bytesSent).toBe(10);
    expect(s.wsBusy).toBe(false);
    // the stream credit is spent: the next message waits for WINDOW
    s.wsSendQueued(bytes(1), false, () => {});
    expect(host.wsFrames().length).toBe(1);
    expect(s.wsBusy).toBe(true);
  });

  test("wsSendQueued: a message larger than the credit waits, goes after WINDOW, in order", async () => {
    const { host, s } = mkStream({ peerWindow: 5 });
    const errors: number[] = [];
    s.wsSendQueued(bytes(6, 0x31), false, () => errors.push(1));
    s.wsSendQueued(bytes(1, 0x32), false, () => errors.push(2)); // queued behind, though credit would allow
    expect(host.wsFrames()).toEqual([]); // not synchronously
    await turn();
    expect(host.wsFrames()).toEqual([[0, 5]]);
    expect(s.wsBusy).toBe(true);
    s.handleWindow(10);
    await s.wsFlushed();
    expect(host.wsFrames()).toEqual([[0, 5], [FIN, 1], [FIN, 1]]);
    expect(host.of(T.WS_MESSAGE)[2]!.payload[1]).toBe(0x32);
    expect(s.wsBusy).toBe(false);
    expect(errors).toEqual([]);
  });

  test("wsSendQueued waits for session credit and for a congested transport", async () => {
    const { host, s } = mkStream();
    host.sessionCredit = 2;
    s.wsSendQueued(bytes(3), false, () => {});
    await turn();
    expect(host.wsFrames()).toEqual([[0, 2]]); // the part the session credit allowed
    host.grantSession(5);
    await s.wsFlushed();
    expect(host.wsFrames()).toEqual([[0, 2], [FIN, 1]]);

    let drain!: () => void;
    host.congested = new Promise((r) => (drain = r));
    s.wsSendQueued(bytes(1), false, () => {});
    await turn();
    expect(host.wsFrames().length).toBe(2);
    host.congested = null;
    drain();
    await s.wsFlushed();
    expect(host.wsFrames().length).toBe(3);
  });

  test("wsSendQueued: a message of a whole frame or more is fragmented, never sent in one frame", async () => {
    const { host, s } = mkStream({ peerWindow: 4 << 20 });
    s.wsSendQueued(bytes(MAX_FRAME_PAYLOAD), false, () => {});
    await s.wsFlushed();
    expect(host.wsFrames()).toEqual([[0, MAX_FRAME_PAYLOAD - 1], [FIN, 1]]);
  });

  test("wsSendQueued: an empty message goes at once while there is credit", () => {
    const { host, s } = mkStream({ peerWindow: 5 });
    s.wsSendQueued(new Uint8Array(0), false, () => {});
    expect(host.wsFrames()).toEqual([[FIN, 0]]);
  });

  test("wsSendQueued: an empty message with no credit left still goes (it costs nothing)", async () => {
    const { host, s } = mkStream({ peerWindow: 0 });
    let failed = 0;
    s.wsSendQueued(new Uint8Array(0), true, () => failed++);
    await s.wsFlushed();
    expect(host.wsFrames()).toEqual([[BIN | FIN, 0]]);
    expect(failed).toBe(0);
  });

  test("wsSendQueued after a reset calls onError at once and sends nothing; after a close, onError too", async () => {
    const { host, s } = mkStream();
    s.handleReset(ResetCode.CANCEL, "");
    let failed = 0;
    s.wsSendQueued(bytes(1), false, () => failed++);
    expect(failed).toBe(1);
    expect(s.wsBusy).toBe(false);
    expect(host.wsFrames()).toEqual([]);

    const b = mkStream();
    b.s.wsClose(1000, "done");
    let failed2 = 0;
    b.s.wsSendQueued(bytes(1), false, () => failed2++);
    await b.s.wsFlushed();
    expect(failed2).toBe(1);
    expect(b.host.wsFrames()).toEqual([]);
  });

  test("a message queued when the stream is reset fails through onError", async () => {
    const { host, s } = mkStream({ peerWindow: 0 });
    let failed = 0;
    s.wsSendQueued(bytes(2), false, () => failed++);
    s.handleReset(ResetCode.CANCEL, "gone");
    await s.wsFlushed();
    expect(failed).toBe(1);
    expect(host.wsFrames()).toEqual([]);
  });

  test("wsClose: one WS_CLOSE with code and reason; none after a reset; wsCloseQueued waits for queued messages", async () => {
    const { host, s } = mkStream();
    s.wsClose(4000, "bye");
    s.wsClose(1000, "again");
    expect(host.wsCloses()).toEqual([{ code: 4000, reason: "bye" }]);
    s.handleWsClose(1000, "");
    expect(host.released).toEqual([7]);

    const b = mkStream();
    b.s.reset(ResetCode.CANCEL);
    b.s.wsClose(1000, "x");
    b.s.wsCloseQueued(1000, "x");
    expect(b.host.wsCloses()).toEqual([]);

    const c = mkStream({ peerWindow: 0 });
    c.s.wsSendQueued(bytes(2), false, () => {});
    c.s.wsCloseQueued(1001, "later");
    await turn(); // the message waits for credit: the close must wait behind it
    expect(c.host.wsCloses()).toEqual([]);
    c.s.handleWindow(2);
    await c.s.wsFlushed();
    await turn();
    expect(c.host.of(T.WS_MESSAGE).length).toBe(1);
    expect(c.host.wsCloses()).toEqual([{ code: 1001, reason: "later" }]);
    expect(c.host.frames.map((f) => f.type)).toEqual([T.WS_MESSAGE, T.WS_CLOSE]);

    const d = mkStream();
    d.s.wsCloseQueued(1000, "now"); // nothing queued: synchronously
    expect(d.host.wsCloses()).toEqual([{ code: 1000, reason: "now" }]);
  });
});
