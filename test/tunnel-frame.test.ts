import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import {
  FrameType, MAX_FRAME_PAYLOAD, MAX_HEAD_PAYLOAD, PROTOCOL_VERSION, ResetCode, WsFlags,
  decodeFrames, encodeFrame, encodeFrames, frameParts, parseReset, parseVarints, parseWsClose, readVarint,
  resetPayload, varintPayload, writeVarint, wsClosePayload, jsonPayload, parseJsonPayload,
} from "../src/tunnel/frame.ts";
import { parseHello, parseRequestHead, parseResponseHead, helloMessage } from "../src/tunnel/head.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("wire constants are pinned", () => {
  test("frame types, reset codes, flags, limits", () => {
    expect(PROTOCOL_VERSION).toBe(1);
    expect(FrameType).toEqual({ OPEN: 1, RESPONSE: 2, DATA: 3, END: 4, RESET: 5, WINDOW: 6, WS_MESSAGE: 7, WS_CLOSE: 8, PING: 9, PONG: 10, GOAWAY: 11 });
    expect(ResetCode).toEqual({ CANCEL: 0, REFUSED: 1, ORIGIN_UNREACHABLE: 2, ORIGIN_TIMEOUT: 3, PROTOCOL: 4, FLOW_CONTROL: 5, INTERNAL: 6, REQUEST_HEAD_TOO_LARGE: 7, CONNECTION_RESET: 8, RESPONSE_HEAD_TOO_LARGE: 9, ORIGIN_INVALID_RESPONSE: 10 });
    expect(WsFlags).toEqual({ BINARY: 1, FIN: 2 });
    expect(MAX_FRAME_PAYLOAD).toBe(1048576);
    expect(MAX_HEAD_PAYLOAD).toBe(262144);
  });
});

describe("varint (RFC 9000 §16 vectors)", () => {
  const vectors: Array<[number, string]> = [
    [37, "25"], [15293, "7bbd"], [494878333, "9d7f3e7d"], [0, "00"],
    [63, "3f"], [64, "4040"], [16383, "7fff"], [16384, "80004000"], [1073741823, "bfffffff"], [1073741824, "c000000040000000"],
    [Number.MAX_SAFE_INTEGER, "c01fffffffffffff"],
  ];
  for (const [v, h] of vectors) {
    test(`${v} ↔ ${h}`, () => {
      const buf = new Uint8Array(8);
      const end = writeVarint(buf, 0, v);
      expect(hex(buf.subarray(0, end))).toBe(h);
      expect(readVarint(Buffer.from(h, "hex"), 0)).toEqual([v, h.length / 2]);
    });
  }
  test("RFC 9000's 8-byte example beyond 2^53 is refused, not mis-read", () => {
    expect(readVarint(Buffer.from("c2197c5eff14e88c", "hex"), 0)).toBeNull();
  });
  test("truncated varints are null", () => {
    expect(readVarint(Buffer.from("40", "hex"), 0)).toBeNull();
    expect(readVarint(Buffer.from("9d7f3e", "hex"), 0)).toBeNull();
    expect(readVarint(new Uint8Array(0), 0)).toBeNull();
  });
});

describe("frames: golden vectors", () => {
  test("DATA on stream 1 with 'hi'", () => {
    expect(hex(encodeFrame(FrameType.DATA, 1, new TextEncoder().encode("hi")))).toBe("0301026869");
  });
  test("END on stream 300", () => {
    expect(hex(encodeFrame(FrameType.END, 300, new Uint8Array(0)))).toBe("04412c00");
  });
  test("WINDOW +1 MiB on stream 0", () => {
    expect(hex(encodeFrame(FrameType.WINDOW, 0, varintPayload(1 << 20)))).toBe("06000480100000");
  });
  test("RESET origin unreachable with reason", () => {
    expect(hex(encodeFrame(FrameType.RESET, 7, resetPayload(ResetCode.ORIGIN_UNREACHABLE, "refused")))).toBe("0507080272656675736564");
  });
  test("WS_CLOSE 4001 'bye'", () => {
    expect(hex(encodeFrame(FrameType.WS_CLOSE, 2, wsClosePayload(4001, "bye")))).toBe("080205" + "0fa1" + "627965");
  });
  test("several frames in one message decode in order, payloads are views", () => {
    const msg = encodeFrames([
      { type: FrameType.OPEN, stream: 1, payload: jsonPayload({ kind: "http", method: "GET", target: "/", headers: [] }) },
      { type: FrameType.END, stream: 1, payload: new Uint8Array(0) },
      { type: FrameType.PING, stream: 0, payload: new Uint8Array(8).fill(7) },
    ]);
    const r = decodeFrames(msg);
    if ("error" in r) throw new Error(r.error);
    const openLen = JSON.stringify({ kind: "http", method: "GET", target: "/", headers: [] }).length;
    expect(r.frames.map((f) => [f.type, f.stream, f.payload.length])).toEqual([[1, 1, openLen], [4, 1, 0], [9, 0, 8]]);
    expect(r.frames[2]!.payload.buffer).toBe(msg.buffer);
    expect(parseRequestHead(parseJsonPayload(r.frames[0]!.payload))).toEqual({ kind: "http", method: "GET", target: "/", headers: [] });
  });
});

describe("frames: malformed input is an error value", () => {
  test("unknown type, truncation, over-limit length", () => {
    expect(decodeFrames(Buffer.from("ff0100", "hex"))).toEqual({ error: "unknown frame type 0xff" });
    expect(decodeFrames(Buffer.from("03", "hex"))).toEqual({ error: "truncated stream id" });
    expect(decodeFrames(Buffer.from("0301", "hex"))).toEqual({ error: "truncated length" });
    expect(decodeFrames(Buffer.from("030105aa", "hex"))).toEqual({ error: "frame runs past the end of the message" });
    // DATA claiming 1 GiB: refused by the limit before anything is allocated
    expect("error" in decodeFrames(Buffer.from("0301c000000040000000", "hex"))).toBe(true);
    expect(() => encodeFrame(FrameType.DATA, 1, new Uint8Array(MAX_FRAME_PAYLOAD + 1))).toThrow(RangeError);
  });
  test("a frame with an empty payload and a non-minimal stream id (found by the property below): decoded, the payload empty", () => {
    const r = decodeFrames(Uint8Array.from([1, 0x80, 0, 0, 0, 0]));
    expect("frames" in r && r.frames.map((f) => [f.type, f.stream, f.payload.length])).toEqual([[1, 0, 0]]);
  });
  test("property: arbitrary bytes never throw and never yield payloads past the limit or the input", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        const r = decodeFrames(bytes);
        // Either an error string or frames laid out exactly over the input: each payload a view
        // after a header of at least 3 bytes, the last one ending at the input's end (a bare
        // "total <= input" check could not fail: subarray clamps an overrun silently).
        expect("error" in r ? typeof r.error : "frames").toBe("error" in r ? "string" : "frames");
        // (An empty payload is one shared empty array — no view per END frame — so it carries no
        // position: the layout is checked over the frames with a payload.)
        let end = bytes.byteOffset;
        let lastHadPayload = false;
        for (const f of "frames" in r ? r.frames : []) {
          expect(f.payload.length).toBeLessThanOrEqual(MAX_FRAME_PAYLOAD);
          lastHadPayload = f.payload.length > 0;
          if (!lastHadPayload) continue;
          expect(f.payload.buffer).toBe(bytes.buffer);
          expect(f.payload.byteOffset).toBeGreaterThanOrEqual(end + 3);
          end = f.payload.byteOffset + f.payload.length;
        }
        if (lastHadPayload) expect(end).toBe(bytes.byteOffset + bytes.length);
        parseReset(bytes);
        parseWsClose(bytes);
        parseVarints(bytes, 2);
        parseRequestHead(parseJsonPayload(bytes));
      }),
      { numRuns: 5000 },
    );
  });
  test("property: frameParts gathered equal encodeFrames", () => {
    const frame = fc.record({
      type: fc.constantFrom(...Object.values(FrameType)),
      stream: fc.integer({ min: 0, max: 1 << 20 }),
      payload: fc.uint8Array({ maxLength: 200 }),
    });
    fc.assert(
      fc.property(fc.array(frame, { maxLength: 6 }), (frames) => {
        expect(hex(Buffer.concat(frameParts(frames)))).toBe(hex(encodeFrames(frames)));
      }),
      { numRuns: 1000 },
    );
  });

  test("property: encode → decode round-trips any frame list", () => {
    const frame = fc.record({
      type: fc.constantFrom(...Object.values(FrameType)),
      stream: fc.oneof(fc.integer({ min: 0, max: 70000 }), fc.constant(Number.MAX_SAFE_INTEGER)),
      payload: fc.uint8Array({ maxLength: 300 }),
    });
    fc.assert(
      fc.property(fc.array(frame, { maxLength: 8 }), (frames) => {
        const r = decodeFrames(encodeFrames(frames));
        if ("error" in r) throw new Error(r.error);
        expect(r.frames.map((f) => ({ ...f, payload: [...f.payload] }))).toEqual(frames.map((f) => ({ ...f, payload: [...f.payload] })));
      }),
      { numRuns: 2000 },
    );
  });
});

describe("heads", () => {
  test("hello round trip; a v1 hello (no versions) speaks exactly its azhexgate", () => {
    const h = { azhexgate: 1, versions: [1, 2], role: "gateway" as const, features: ["ws"], window: 1 << 20 };
    expect(parseHello(helloMessage(h))).toEqual(h);
    const { versions: _, ...v1 } = h;
    expect(parseHello(JSON.stringify(v1))).toEqual({ ...v1, versions: [1] });
    expect(parseHello(JSON.stringify({ ...v1, azhexgate: 2 }))).toEqual({ ...v1, azhexgate: 2, versions: [2] });
    expect("error" in parseHello("nope")).toBe(true);
  });
  test("request head keeps repeated headers and rejects injection", () => {
    const ok = parseRequestHead({ kind: "http", method: "POST", target: "/a%20b?x=1&x=2", headers: [["cookie", "a"], ["cookie", "b"]], remote: { address: "1.2.3.4", port: 5 } });
    expect(ok).toEqual({ kind: "http", method: "POST", target: "/a%20b?x=1&x=2", headers: [["cookie", "a"], ["cookie", "b"]], remote: { address: "1.2.3.4", port: 5 } });
    expect("error" in parseRequestHead({ kind: "http", method: "GET", target: "/", headers: [["x", "a\r\nb: c"]] })).toBe(true);
    expect("error" in parseRequestHead({ kind: "http", method: "G ET", target: "/", headers: [] })).toBe(true);
    expect("error" in parseRequestHead({ kind: "http", method: "GET", target: "http://evil/", headers: [] })).toBe(true);
    expect("error" in parseRequestHead({ kind: "tcp", method: "GET", target: "/", headers: [] })).toBe(true);
  });
  test("response head sanitises status", () => {
    expect(parseResponseHead({ status: 204, headers: [["set-cookie", "a=1"], ["set-cookie", "b=2"]] })).toEqual({ status: 204, headers: [["set-cookie", "a=1"], ["set-cookie", "b=2"]] });
    expect("error" in parseResponseHead({ status: 999, headers: [] })).toBe(true);
    expect("error" in parseResponseHead({ status: 200.5, headers: [] })).toBe(true);
  });
});
