/**
 * The stream's receive side, one rule per test (inbound DATA / END / RESET, credit returned, the
 * WebSocket receive path), written against the stream mutation group (docs/testing.md): each kills
 * mutants the end-to-end tests leave alive. Its send side: tunnel-stream-mutants.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { FrameType as T, ResetCode, WsFlags } from "../src/tunnel/frame.ts";
import { MAX_WS_MESSAGE, SessionLostError, StreamResetError, TunnelStream } from "../src/tunnel/stream.ts";
import { RecordingHost, bytes, mkStream, turn, wsPayload } from "./support/stream-host.ts";

const FIN = WsFlags.FIN;
const BIN = WsFlags.BINARY;

describe("inbound", () => {
  test("DATA is counted and readable; past the granted window the stream is reset FLOW_CONTROL", async () => {
    const { host, s } = mkStream({ window: 100 });
    s.handleData(bytes(60));
    s.handleData(bytes(40)); // exactly the window: fine
    expect(s.bytesReceived).toBe(100);
    expect(host.resets()).toEqual([]);
    s.handleData(bytes(1));
    expect(host.resets()).toEqual([{ code: ResetCode.FLOW_CONTROL, reason: "peer sent past its credit" }]);
    expect(s.bytesReceived).toBe(100);
    // every byte held goes back to the session window
    expect(host.returned).toBe(101);
  });

  test("credit goes back in quarter-window batches as the body is read; none after END", async () => {
    const { host, s } = mkStream({ window: 400 });
    const reader = s.body.getReader();
    s.handleData(bytes(99));
    await reader.read();
    expect(host.windows()).toEqual([]);
    expect(host.returned).toBe(99);
    s.handleData(bytes(1));
    await reader.read();
    expect(host.windows()).toEqual([100]);
    s.handleData(bytes(150));
    s.handleEnd();
    await reader.read();
    expect(host.windows()).toEqual([100]); // the peer ended: no WINDOW is useful
    expect((await reader.read()).done).toBe(true);
    expect(host.returned).toBe(250);
  });

  test("a reader that takes a whole window within a round trip grows it (quadruples, up to maxWindow); with no round trip measured it does not", async () => {
    const { host, s } = mkStream({ window: 400, maxWindow: 1000 });
    host.rtt = 60_000; // a long round trip: any reader keeps up
    const reader = s.body.getReader();
    const feed = async (n: number) => {
      s.handleData(bytes(n));
      await reader.read();
    };
    for (let i = 0; i < 4; i++) await feed(100);
    // a whole window (400) read well within a round trip: clearly window-bound, so the grant
    // quadruples the window — 1600, capped at 1000: 100 + 600 extra, paid from the session
    expect(host.windows()).toEqual([100, 100, 100, 700]);
    expect([s.recv.size, host.grownSession]).toEqual([1000, 600]);
    for (let i = 0; i < 8; i++) await feed(200);
    // at the cap: a quarter window (250) batches the credit, no more growth
    expect(host.windows()).toEqual([100, 100, 100, 700, 400, 400, 400, 400]);
    expect(host.grownSession).toBe(600);
    // the peer may now send 1000 unacknowledged bytes
    s.handleData(bytes(1000));
    expect(host.resets()).toEqual([]);

    const b = mkStream({ window: 400, maxWindow: 1000 }); // rtt 0: not measured, no growth
    const r2 = b.s.body.getReader();
    for (let i = 0; i < 8; i++) {
      b.s.handleData(bytes(100));
      await r2.read();
    }
    expect(b.host.windows()).toEqual([100, 100, 100, 100, 100, 100, 100, 100]);
    b.s.handleData(bytes(400));
    b.s.handleData(bytes(1));
    expect(b.host.resets()[0]!.code).toBe(ResetCode.FLOW_CONTROL);
  });

  test("growth needs the window read within two round trips of the last growth (elapsed time, not a clock reading)", async () => {
    // the clock reading (performance.now) is well past 2 × rtt here, the elapsed time well below
    while (performance.now() < 500) await Bun.sleep(20);
    const { host, s } = mkStream({ window: 400, maxWindow: 1000 });
    host.rtt = 100;
    const reader = s.body.getReader();
    for (let i = 0; i < 4; i++) {
      s.handleData(bytes(100));
      await reader.read();
    }
    expect(host.windows()).toEqual([100, 100, 100, 700]);
  });

  test("the window does not grow while more than a quarter of it is still queued (the reader, not the window, is the limit)", async () => {
    const { host, s } = mkStream({ window: 400, maxWindow: 1000 });
    host.rtt = 60_000;
    const reader = s.body.getReader();
    for (let i = 0; i < 3; i++) {
      s.handleData(bytes(100));
      await reader.read();
    }
    s.handleData(bytes(100));
    s.handleData(bytes(150));
    await reader.read();
    // the fourth read made a whole window with 150 bytes (over a quarter window) still queued: no growth
    expect(host.windows()).toEqual([100, 100, 100, 100]);
    expect(s.isReset).toBe(false);
  });

  test("DATA / END / WS_CLOSE after the peer ended: RESET PROTOCOL naming the frame, session bytes returned", () => {
    for (const [what, act] of [
      ["DATA", (s: TunnelStream) => s.handleData(bytes(5))],
      ["END", (s: TunnelStream) => s.handleEnd()],
    ] as const) {
      const { host, s } = mkStream();
      s.handleData(bytes(10));
      s.handleEnd();
      act(s);
      expect(host.resets()).toEqual([{ code: ResetCode.PROTOCOL, reason: `${what} after the peer ended the stream` }]);
      expect(host.returned).toBe(what === "DATA" ? 15 : 10);
    }
    for (const [what, act] of [
      ["WS_MESSAGE", (s: TunnelStream) => s.handleWsMessage(wsPayload(FIN, bytes(5)))],
      ["WS_CLOSE", (s: TunnelStream) => s.handleWsClose(1000, "")],
    ] as const) {
      const { host, s } = mkStream();
      let closes = 0;
      s.onWsClose = () => closes++;
      s.handleWsClose(1000, "");
      act(s);
      expect(host.resets()).toEqual([{ code: ResetCode.PROTOCOL, reason: `${what} after the peer ended the stream` }]);
      expect(closes).toBe(1);
      expect(host.returned).toBe(what === "WS_MESSAGE" ? 5 : 0);
    }
  });

  test("bytes for a reset stream go straight back to the session window, and are not counted", () => {
    const { host, s } = mkStream();
    s.handleData(bytes(10)); // unread
    s.handleReset(ResetCode.CANCEL, "");
    expect(host.returned).toBe(10);
    s.handleData(bytes(7));
    s.handleWsMessage(wsPayload(FIN, bytes(3)));
    expect(host.returned).toBe(20);
    expect(s.bytesReceived).toBe(10);
  });

  test("session credit returns as the body is read, chunk by chunk (not what is still queued)", async () => {
    const { host, s } = mkStream({ window: 400 });
    s.handleData(bytes(60));
    s.handleData(bytes(40));
    const reader = s.body.getReader();
    await reader.read();
    expect(host.returned).toBe(60);
    await reader.read();
    expect(host.returned).toBe(100);
  });

  test("END returns what the unread body holds to the session (not to the stream)", () => {
    const { host, s } = mkStream();
    s.handleData(bytes(30));
    expect(host.returned).toBe(0);
    s.handleEnd();
    expect(host.returned).toBe(30);
    expect(host.windows()).toEqual([]);
    // taking the body afterwards returns nothing twice
    expect(s.takeCompleteBody()!.length).toBe(30);
    expect(host.returned).toBe(30);
  });

  test("takeCompleteBody: the whole body up to 64 KiB by default, null above, null before END", () => {
    const { s } = mkStream({ window: 1 << 20 });
    s.handleData(bytes(1000));
    expect(s.takeCompleteBody()).toBeNull();
    s.handleData(bytes(64 * 1024 - 1000, 0x62));
    s.handleEnd();
    const whole = s.takeCompleteBody()!;
    expect(whole.length).toBe(64 * 1024);
    expect([whole[0], whole[999], whole[1000], whole[64 * 1024 - 1]]).toEqual([0x61, 0x61, 0x62, 0x62]); // both parts, in order
    expect(s.takeCompleteBody()).toBeNull(); // taken once
    const b = mkStream({ window: 1 << 20 });
    b.s.handleData(bytes(64 * 1024 + 1));
    b.s.handleEnd();
    expect(b.s.takeCompleteBody()).toBeNull();
    expect(b.s.takeCompleteBody(64 * 1024 + 1)!.length).toBe(64 * 1024 + 1);
  });

  test("a body taken whole, or discarded, reads as empty afterwards", async () => {
    const a = mkStream();
    a.s.handleData(bytes(5));
    a.s.handleEnd();
    expect(a.s.takeCompleteBody()!.length).toBe(5);
    expect((await new Response(a.s.body).arrayBuffer()).byteLength).toBe(0);
    const b = mkStream();
    b.s.handleData(bytes(5));
    b.s.discardBody();
    b.s.handleEnd();
    expect((await new Response(b.s.body).arrayBuffer()).byteLength).toBe(0);
  });

  test("the body stream reads nothing ahead: no credit returns for bytes the app has not read", async () => {
    const { host, s } = mkStream({ window: 400 });
    const reader = s.body.getReader();
    s.handleData(bytes(100));
    await turn();
    expect(host.windows()).toEqual([]);
    expect(host.returned).toBe(0);
    await reader.read();
    expect(host.windows()).toEqual([100]);
  });

  test("cancelling the body stream drops what is queued and what comes, and credit flows back", async () => {
    const { host, s } = mkStream({ window: 400 });
    const reader = s.body.getReader();
    s.handleData(bytes(60));
    await reader.cancel();
    s.handleData(bytes(40));
    expect(host.windows()).toEqual([100]);
    expect(host.returned).toBe(100);
  });

  test("asking for the response twice before it comes: both answers settle", async () => {
    const { s } = mkStream();
    const a = s.response;
    const b = s.response;
    s.handleResponse({ status: 204, headers: [] });
    expect([(await a).status, (await b).status]).toEqual([204, 204]);
  });

  test("discardBody: queued and later bytes are dropped and their credit flows back", () => {
    const { host, s } = mkStream({ window: 400 });
    s.handleData(bytes(60));
    s.discardBody();
    s.handleData(bytes(40));
    expect(host.windows()).toEqual([100]);
    expect(host.returned).toBe(100);
  });

  test("a lost session settles the held bytes and wakes a writer", async () => {
    const { host, s } = mkStream({ peerWindow: 0 });
    s.handleData(bytes(12));
    const w = s.write(bytes(1));
    await turn();
    s.fail(new SessionLostError("transport closed"));
    await expect(w).rejects.toThrow("tunnel session lost: transport closed");
    expect(host.returned).toBe(12);
    expect(host.released).toEqual([7]);
  });
});

describe("WebSocket receive", () => {
  test("fragments join on FIN; the binary flag of the last fragment is reported; empty payloads are ignored", () => {
    const { host, s } = mkStream();
    const got: Array<[string, boolean]> = [];
    s.onWsMessage = (d, b) => void got.push([new TextDecoder().decode(d), b]);
    s.handleWsMessage(new Uint8Array(0));
    s.handleWsMessage(wsPayload(0, new TextEncoder().encode("ab")));
    s.handleWsMessage(wsPayload(FIN, new TextEncoder().encode("c")));
    s.handleWsMessage(wsPayload(FIN | BIN, new TextEncoder().encode("d")));
    expect(got).toEqual([["abc", false], ["d", true]]);
    expect(s.bytesReceived).toBe(4);
    expect(host.resets()).toEqual([]);
  });

  test("credit for WebSocket bytes returns as messages are handed on (quarter-window batches)", () => {
    const { host, s } = mkStream({ window: 400 });
    s.onWsMessage = () => {};
    s.handleWsMessage(wsPayload(FIN, bytes(99)));
    expect(host.windows()).toEqual([]);
    s.handleWsMessage(wsPayload(FIN, bytes(1)));
    expect(host.windows()).toEqual([100]);
    expect(host.returned).toBe(100);
  });

  test("a congested consumer holds credit until resumeWs, which returns it at once (not batched)", () => {
    const { host, s } = mkStream({ window: 400 });
    let congested = true;
    s.onWsMessage = () => !congested;
    s.handleWsMessage(wsPayload(FIN, bytes(150))); // first message: credit still flows, then held
    expect(host.windows()).toEqual([150]);
    s.handleWsMessage(wsPayload(FIN, bytes(10)));
    s.handleWsMessage(wsPayload(FIN, bytes(20)));
    expect(host.windows()).toEqual([150]);
    expect(host.returned).toBe(150);
    congested = false;
    s.resumeWs();
    expect(host.windows()).toEqual([150, 30]);
    expect(host.returned).toBe(180);
    s.resumeWs(); // nothing held: no empty WINDOW
    expect(host.windows()).toEqual([150, 30]);
    s.handleWsMessage(wsPayload(FIN, bytes(10)));
    expect(host.windows()).toEqual([150, 30]); // batched again
    s.resumeWs(); // nothing held: the batch is not cut short either
    expect(host.windows()).toEqual([150, 30]);
  });

  test("resumeWs after the peer closed returns no stream credit", () => {
    const { host, s } = mkStream({ window: 400 });
    s.onWsMessage = () => false;
    s.handleWsMessage(wsPayload(FIN, bytes(10)));
    s.handleWsMessage(wsPayload(FIN, bytes(10)));
    s.handleWsClose(1000, "");
    s.resumeWs();
    expect(host.windows()).toEqual([]);
    expect(host.returned).toBe(20);
  });

  test(`a message over ${MAX_WS_MESSAGE} bytes resets the stream PROTOCOL; exactly the limit is delivered`, () => {
    const big = new Uint8Array(1 << 20);
    const { host, s } = mkStream({ window: MAX_WS_MESSAGE * 2 });
    let size = -1;
    s.onWsMessage = (d) => void (size = d.length);
    for (let i = 0; i < 64; i++) s.handleWsMessage(wsPayload(0, big));
    s.handleWsMessage(wsPayload(FIN, new Uint8Array(0)));
    expect(size).toBe(MAX_WS_MESSAGE);
    expect(host.resets()).toEqual([]);
    for (let i = 0; i < 64; i++) s.handleWsMessage(wsPayload(0, big));
    s.handleWsMessage(wsPayload(FIN, new Uint8Array(1)));
    expect(host.resets()).toEqual([{ code: ResetCode.PROTOCOL, reason: `WebSocket message larger than ${MAX_WS_MESSAGE} bytes` }]);
    expect(size).toBe(MAX_WS_MESSAGE);
  });

  test("past the granted window a WebSocket message resets the stream FLOW_CONTROL and is not delivered", () => {
    const { host, s } = mkStream({ window: 10 });
    let got = 0;
    s.onWsMessage = () => void got++;
    s.handleWsMessage(wsPayload(FIN, bytes(11)));
    expect(got).toBe(0);
    expect(host.resets()[0]!.code).toBe(ResetCode.FLOW_CONTROL);
  });
});

test("a stream built on a host starts with the host's window and the peer's credit", async () => {
  const host = new RecordingHost(50);
  const s = new TunnelStream(host, 3, 20, { kind: "http", method: "GET", target: "/x", headers: [] });
  expect(s.head!.target).toBe("/x");
  s.sendOpen(new Uint8Array([1]));
  expect(host.frames[0]!.type).toBe(T.OPEN);
  const w = s.write(bytes(21));
  await turn();
  expect(host.of(T.DATA)[0]!.payload.length).toBe(20);
  s.handleData(bytes(50));
  expect(host.resets()).toEqual([]);
  s.handleData(bytes(1));
  expect(host.resets()[0]!.code).toBe(ResetCode.FLOW_CONTROL);
  await expect(w).rejects.toBeInstanceOf(StreamResetError);
});
