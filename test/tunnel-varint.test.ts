/**
 * Tunnel frame codec at its boundaries (issue 18: mutation survivors in src/tunnel/frame.ts).
 * Varints at both ends of every length, the 2^53 bound, frames that overrun their message by one
 * byte, the 1 MiB payload limit, and the small payload codecs — exact bytes, not round trips only.
 */
import { describe, expect, test } from "bun:test";
import {
  decodeFrames, encodeFrame, encodeFrames, frameParts, frameSize, FrameType, MAX_FRAME_PAYLOAD, MAX_HEAD_BYTES, MAX_HEAD_PAYLOAD,
  parseJsonPayload, parseReset, parseVarints, parseWsClose, PING_PAYLOAD, PROTOCOL_VERSION, PROTOCOL_VERSIONS, readVarint,
  resetPayload, varintPayload, varintSize, writeVarint, wsClosePayload, jsonPayload,
} from "../src/tunnel/frame.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const bytes = (h: string) => new Uint8Array(Buffer.from(h, "hex"));

// [value, encoding] at the edges of each length (RFC 9000 §16 plus our 2^53 - 1 ceiling).
const VECTORS: [number, string][] = [
  [0, "00"],
  [1, "01"],
  [0x3f, "3f"],
  [0x40, "4040"],
  [0xff, "40ff"],
  [0x100, "4100"],
  [0x3fff, "7fff"],
  [0x4000, "80004000"],
  [0xffffff, "80ffffff"],
  [0x1000000, "81000000"],
  [0x3fffffff, "bfffffff"],
  [0x40000000, "c000000040000000"],
  [0xffffffff, "c0000000ffffffff"],
  [0x100000000, "c000000100000000"],
  [0x123456789abc, "c00012345678 9abc".replace(" ", "")],
  [Number.MAX_SAFE_INTEGER, "c01fffffffffffff"],
];

describe("varint vectors at every length", () => {
  for (const [v, h] of VECTORS) {
    test(`${v} ⇄ ${h}`, () => {
      expect(varintSize(v) as number).toBe(h.length / 2);
      const buf = new Uint8Array(10).fill(0xee);
      expect(writeVarint(buf, 1, v)).toBe(1 + h.length / 2);
      expect(hex(buf.subarray(1, 1 + h.length / 2))).toBe(h);
      expect(buf[0]).toBe(0xee); // nothing written before or after
      expect(buf[1 + h.length / 2]).toBe(0xee);
      expect(readVarint(bytes("aa" + h + "bb"), 1)).toEqual([v, 1 + h.length / 2]);
      expect(hex(varintPayload(v))).toBe(h);
    });
  }

  test("non-minimal encodings decode to the same value", () => {
    expect(readVarint(bytes("4001"), 0)).toEqual([1, 2]);
    expect(readVarint(bytes("80000001"), 0)).toEqual([1, 4]);
    expect(readVarint(bytes("c000000000000001"), 0)).toEqual([1, 8]);
  });

  test("an 8-byte varint above 2^53 - 1 is refused, the largest safe one is read", () => {
    expect(readVarint(bytes("c020000000000000"), 0)).toBeNull(); // 2^53
    expect(readVarint(bytes("c100000000000000"), 0)).toBeNull(); // a bit in the first byte
    expect(readVarint(bytes("ffffffffffffffff"), 0)).toBeNull();
    expect(readVarint(bytes("c01fffffffffffff"), 0)).toEqual([Number.MAX_SAFE_INTEGER, 8]);
  });

  test("a varint cut short at any length is null, never a shorter value", () => {
    for (const [, h] of VECTORS) {
      const b = bytes(h);
      for (let cut = 0; cut < b.length; cut++) expect(readVarint(b.subarray(0, cut), 0)).toBeNull();
      expect(readVarint(b, b.length)).toBeNull(); // reading at the end
    }
  });
});

describe("decodeFrames", () => {
  test("exact bytes of a frame and its parts", () => {
    const p = new Uint8Array([1, 2, 3]);
    expect(hex(encodeFrame(FrameType.DATA, 5, p))).toBe("030503010203");
    expect(hex(encodeFrame(FrameType.END, 64))).toBe("04404000");
    expect(frameSize(64, 3)).toBe(1 + 2 + 1 + 3);
    expect(frameSize(0x4000, 0x40)).toBe(1 + 4 + 2 + 0x40);
    const parts = frameParts([{ type: FrameType.DATA, stream: 5, payload: p }, { type: FrameType.END, stream: 5, payload: new Uint8Array(0) }]);
    expect(parts.map(hex)).toEqual(["030503", "010203", "040500"]);
  });

  test("a frame whose length runs one byte past the message is an error, not a truncated payload", () => {
    const good = encodeFrame(FrameType.DATA, 1, new Uint8Array([9, 9, 9]));
    expect(decodeFrames(good)).toEqual({ frames: [{ type: FrameType.DATA, stream: 1, payload: new Uint8Array([9, 9, 9]) }] });
    expect(decodeFrames(good.subarray(0, good.length - 1))).toEqual({ error: "frame runs past the end of the message" });
    // two frames, the second overrunning by one
    const two = encodeFrames([{ type: FrameType.END, stream: 1, payload: new Uint8Array(0) }, { type: FrameType.DATA, stream: 3, payload: new Uint8Array([7]) }]);
    expect(decodeFrames(two.subarray(0, two.length - 1))).toEqual({ error: "frame runs past the end of the message" });
    expect(decodeFrames(two)).toHaveProperty("frames.length", 2);
  });

  test("truncated headers and unknown types", () => {
    expect(decodeFrames(bytes("03"))).toEqual({ error: "truncated stream id" });
    expect(decodeFrames(bytes("0340"))).toEqual({ error: "truncated stream id" });
    expect(decodeFrames(bytes("0301"))).toEqual({ error: "truncated length" });
    expect(decodeFrames(bytes("030140"))).toEqual({ error: "truncated length" });
    expect(decodeFrames(bytes("000100"))).toEqual({ error: "unknown frame type 0x0" });
    expect(decodeFrames(bytes("0c0100"))).toEqual({ error: "unknown frame type 0xc" });
    expect(decodeFrames(bytes("0b0100"))).toEqual({ frames: [{ type: FrameType.GOAWAY, stream: 1, payload: new Uint8Array(0) }] });
    expect(decodeFrames(new Uint8Array(0))).toEqual({ frames: [] });
  });

  test("the 1 MiB payload limit: exactly 1 MiB is read, one byte more is refused on both sides", () => {
    expect(MAX_FRAME_PAYLOAD).toBe(1048576);
    const max = new Uint8Array(MAX_FRAME_PAYLOAD);
    const enc = encodeFrame(FrameType.DATA, 1, max);
    const d = decodeFrames(enc);
    expect("frames" in d && d.frames[0]!.payload.length).toBe(MAX_FRAME_PAYLOAD);
    expect(() => encodeFrame(FrameType.DATA, 1, new Uint8Array(MAX_FRAME_PAYLOAD + 1))).toThrow(new RangeError("frame payload 1048577 exceeds 1048576"));
    // a header claiming 1 MiB + 1 is refused before looking for the bytes
    const over = new Uint8Array([FrameType.DATA, 1, 0x80, 0x10, 0x00, 0x01]);
    expect(decodeFrames(over)).toEqual({ error: `frame payload ${MAX_FRAME_PAYLOAD + 1} exceeds the limit ${MAX_FRAME_PAYLOAD}` });
  });

  test("the documented limits", () => {
    expect(MAX_HEAD_PAYLOAD).toBe(256 * 1024);
    expect(MAX_HEAD_BYTES).toBe(128 * 1024);
    expect(PING_PAYLOAD).toBe(8);
    expect(PROTOCOL_VERSION).toBe(1);
    expect(PROTOCOL_VERSIONS).toEqual([1, 2]);
  });
});

describe("payload codecs", () => {
  test("RESET: code varint then UTF-8 reason, cut at 256 characters", () => {
    expect(hex(resetPayload(2, "no"))).toBe("026e6f");
    expect(hex(resetPayload(64))).toBe("4040");
    expect(resetPayload(1, "x".repeat(300)).length).toBe(1 + 256);
    expect(parseReset(bytes("026e6f"))).toEqual({ code: 2, reason: "no" });
    expect(parseReset(new Uint8Array(0))).toBeNull();
    expect(parseReset(bytes("02ff"))).toBeNull(); // invalid UTF-8
  });

  test("parseVarints wants exactly `count` values and nothing after", () => {
    expect(parseVarints(bytes("014002"), 2)).toEqual([1, 2]);
    expect(parseVarints(bytes("01400200"), 2)).toBeNull();
    expect(parseVarints(bytes("01"), 2)).toBeNull();
    expect(parseVarints(new Uint8Array(0), 0)).toEqual([]);
  });

  test("WS_CLOSE: u16 code and reason, 2 to 125 bytes", () => {
    expect(hex(wsClosePayload(1000, "ok"))).toBe("03e86f6b");
    expect(hex(wsClosePayload(4999))).toBe("1387");
    expect(parseWsClose(bytes("03e86f6b"))).toEqual({ code: 1000, reason: "ok" });
    expect(parseWsClose(bytes("ffff"))).toEqual({ code: 65535, reason: "" });
    expect(parseWsClose(bytes("03"))).toBeNull();
    expect(parseWsClose(new Uint8Array(125).fill(0x61))).toEqual({ code: 0x6161, reason: "a".repeat(123) });
    expect(parseWsClose(new Uint8Array(126).fill(0x61))).toBeNull();
    expect(parseWsClose(bytes("03e8ff"))).toBeNull();
  });

  test("JSON heads: strict UTF-8, undefined on bad input", () => {
    expect(parseJsonPayload(jsonPayload({ a: 1 }))).toEqual({ a: 1 });
    expect(parseJsonPayload(bytes("7b"))).toBeUndefined();
    expect(parseJsonPayload(bytes("22ff22"))).toBeUndefined();
  });
});

describe("property: a message cut anywhere inside its last frame is an error", () => {
  test("never fewer or shorter frames", async () => {
    const fc = (await import("fast-check")).default;
    const frame = fc.record({
      type: fc.constantFrom(FrameType.DATA, FrameType.END, FrameType.WINDOW, FrameType.RESET),
      stream: fc.oneof(fc.integer({ min: 0, max: 70 }), fc.integer({ min: 0, max: 2 ** 40 })),
      payload: fc.uint8Array({ maxLength: 300 }),
    });
    fc.assert(
      fc.property(fc.array(frame, { minLength: 1, maxLength: 4 }), fc.nat(), (frames, k) => {
        const enc = encodeFrames(frames);
        const last = frames[frames.length - 1]!;
        const cut = 1 + (k % (frameSize(last.stream, last.payload.length) - 1)); // a frame is at least 3 bytes
        const whole = decodeFrames(enc);
        expect("frames" in whole && whole.frames.length).toBe(frames.length);
        expect("error" in decodeFrames(enc.subarray(0, enc.length - cut))).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});
