import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { closePayload, encodeFrame, FrameDecoder, type FrameEvent, maskInPlace, Opcode } from "../src/ws/frame.ts";

const hex = (s: string) => new Uint8Array(s.split(/\s+/).filter(Boolean).map((b) => parseInt(b, 16)));
const KEY = hex("37 fa 21 3d");

function decodeAll(chunks: Uint8Array[], role: "client" | "server" = "client", max?: number): FrameEvent[] {
  const d = new FrameDecoder({ role, maxMessageSize: max });
  return chunks.flatMap((c) => d.push(c));
}

/** Splits `buf` at random points (deterministic for a seed). */
function randomSplit(buf: Uint8Array, seed: number): Uint8Array[] {
  let s = seed >>> 0 || 1;
  const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) >>> 8) / 2 ** 24;
  const out: Uint8Array[] = [];
  let i = 0;
  while (i < buf.length) {
    const n = 1 + Math.floor(rnd() * Math.min(buf.length - i, rnd() < 0.5 ? 7 : 70_000));
    out.push(buf.slice(i, i + n));
    i += n;
  }
  return out;
}

describe("RFC 6455 §5.7 golden vectors", () => {
  test("single-frame unmasked text", () => {
    expect(encodeFrame(Opcode.TEXT, "Hello", { mask: false })).toEqual(hex("81 05 48 65 6c 6c 6f"));
    expect(decodeAll([hex("81 05 48 65 6c 6c 6f")])).toEqual([{ type: "message", data: "Hello", binary: false }]);
  });
  test("a gathered payload encodes exactly like the concatenated one", () => {
    const parts = [new TextEncoder().encode("Hel"), new Uint8Array(0), new TextEncoder().encode("lo")];
    expect(encodeFrame(Opcode.BINARY, parts, { mask: KEY })).toEqual(encodeFrame(Opcode.BINARY, new TextEncoder().encode("Hello"), { mask: KEY }));
    const big = [new Uint8Array(70_000).fill(1), new Uint8Array(10).fill(2)];
    expect(encodeFrame(Opcode.BINARY, big, { mask: false })).toEqual(encodeFrame(Opcode.BINARY, Buffer.concat(big), { mask: false }));
  });
  test("single-frame masked text", () => {
    const wire = hex("81 85 37 fa 21 3d 7f 9f 4d 51 58");
    expect(encodeFrame(Opcode.TEXT, "Hello", { mask: KEY })).toEqual(wire);
    expect(encodeFrame(Opcode.TEXT, new TextEncoder().encode("Hello"), { mask: KEY })).toEqual(wire);
    expect(decodeAll([wire.slice()], "server")).toEqual([{ type: "message", data: "Hello", binary: false }]);
  });
  test("fragmented unmasked text", () => {
    const a = hex("01 03 48 65 6c");
    const b = hex("80 02 6c 6f");
    expect(encodeFrame(Opcode.TEXT, "Hel", { mask: false, fin: false })).toEqual(a);
    expect(encodeFrame(Opcode.CONTINUATION, "lo", { mask: false })).toEqual(b);
    expect(decodeAll([a, b])).toEqual([{ type: "message", data: "Hello", binary: false }]);
  });
  test("unmasked ping, masked pong", () => {
    expect(decodeAll([hex("89 05 48 65 6c 6c 6f")])).toEqual([{ type: "ping", data: new TextEncoder().encode("Hello") }]);
    const pong = hex("8a 85 37 fa 21 3d 7f 9f 4d 51 58");
    expect(encodeFrame(Opcode.PONG, "Hello", { mask: KEY })).toEqual(pong);
    expect(decodeAll([pong.slice()], "server")).toEqual([{ type: "pong", data: new TextEncoder().encode("Hello") }]);
  });
  test("256 bytes and 64 KiB binary use 16- and 64-bit lengths", () => {
    const f256 = encodeFrame(Opcode.BINARY, new Uint8Array(256), { mask: false });
    expect(f256.subarray(0, 4)).toEqual(hex("82 7e 01 00"));
    const f64k = encodeFrame(Opcode.BINARY, new Uint8Array(65536), { mask: false });
    expect(f64k.subarray(0, 10)).toEqual(hex("82 7f 00 00 00 00 00 01 00 00"));
    const ev = decodeAll([f64k]);
    expect(ev.length).toBe(1);
    expect((ev[0] as { data: Uint8Array }).data.length).toBe(65536);
  });
  test("close frame payload", () => {
    const f = encodeFrame(Opcode.CLOSE, closePayload(4001, "bye"), { mask: false });
    expect(decodeAll([f])).toEqual([{ type: "close", code: 4001, reason: "bye" }]);
    expect(decodeAll([encodeFrame(Opcode.CLOSE, undefined, { mask: false })])).toEqual([{ type: "close", code: 1005, reason: "" }]);
    expect(closePayload(1000, "é".repeat(100)).length).toBeLessThanOrEqual(125);
  });
});

describe("masking", () => {
  test("fast mask equals byte-wise mask at every alignment and phase", () => {
    const key = hex("01 23 45 67");
    for (let off = 0; off < 5; off++) {
      for (let phase = 0; phase < 4; phase++) {
        const base = new Uint8Array(64 + off);
        for (let i = 0; i < base.length; i++) base[i] = (i * 31) & 0xff;
        const view = base.subarray(off);
        const expected = view.map((b, i) => b ^ key[(i + phase) & 3]!);
        maskInPlace(view, 0, view.length, key, phase);
        expect(view).toEqual(expected);
      }
    }
  });
});

describe("incremental decoding", () => {
  test("random chunk splits give the same events, control frames interleaved", () => {
    const big = crypto.getRandomValues(new Uint8Array(200_000));
    const frames = [
      encodeFrame(Opcode.TEXT, "héllo wörld ".repeat(20), { mask: false }),
      encodeFrame(Opcode.BINARY, big.subarray(0, 70_000), { mask: false, fin: false }),
      encodeFrame(Opcode.PING, "p", { mask: false }),
      encodeFrame(Opcode.CONTINUATION, big.subarray(70_000, 70_000), { mask: false, fin: false }),
      encodeFrame(Opcode.CONTINUATION, big.subarray(70_000), { mask: false }),
      encodeFrame(Opcode.TEXT, "", { mask: false }),
      encodeFrame(Opcode.CLOSE, closePayload(1000, "done"), { mask: false }),
    ];
    const wire = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
    let o = 0;
    for (const f of frames) wire.set(f, (o += f.length) - f.length);
    const expected = decodeAll([wire.slice()]);
    expect(expected.map((e) => e.type)).toEqual(["message", "ping", "message", "message", "close"]);
    expect((expected[1] as { data: Uint8Array }).data).toEqual(new TextEncoder().encode("p"));
    expect((expected[2] as { data: Uint8Array }).data).toEqual(big);
    for (let seed = 1; seed <= 40; seed++) expect(decodeAll(randomSplit(wire, seed))).toEqual(expected);
  });
  test("masked client frames across splits (server role)", () => {
    const payload = crypto.getRandomValues(new Uint8Array(100_003));
    const wire = encodeFrame(Opcode.BINARY, payload);
    for (let seed = 1; seed <= 10; seed++) {
      const ev = decodeAll(randomSplit(wire, seed), "server");
      expect(ev).toEqual([{ type: "message", data: payload, binary: true }]);
    }
  });
});

describe("protocol errors", () => {
  const code = (chunks: Uint8Array[], role: "client" | "server" = "client", max?: number) => {
    const ev = decodeAll(chunks, role, max);
    const last = ev[ev.length - 1];
    return last?.type === "error" ? last.code : undefined;
  };
  test("reserved bits and bad opcodes → 1002", () => {
    expect(code([hex("c1 00")])).toBe(1002);
    expect(code([hex("83 00")])).toBe(1002);
    expect(code([hex("8b 00")])).toBe(1002);
  });
  test("masking rules → 1002", () => {
    expect(code([hex("81 85 37 fa 21 3d 7f 9f 4d 51 58")])).toBe(1002); // masked from server
    expect(code([hex("81 05 48 65 6c 6c 6f")], "server")).toBe(1002); // unmasked from client
  });
  test("fragmentation rules → 1002", () => {
    expect(code([hex("80 00")])).toBe(1002); // continuation without start
    expect(code([hex("01 00 01 00")])).toBe(1002); // new message inside a fragmented one
    expect(code([hex("09 00")])).toBe(1002); // fragmented ping
    expect(code([hex("89 7e 00 80")])).toBe(1002); // control over 125
  });
  test("too big → 1009 before buffering", () => {
    expect(code([hex("82 7e 01 00")], "client", 255)).toBe(1009);
    expect(code([hex("02 7e 00 80"), new Uint8Array(128), hex("80 7e 00 80")], "client", 255)).toBe(1009);
    expect(code([hex("82 7f 00 00 00 01 00 00 00 00")])).toBe(1009);
    expect(code([hex("82 7f 80 00 00 00 00 00 00 00")])).toBe(1002);
  });
  test("invalid UTF-8 → 1007", () => {
    expect(code([hex("81 02 c3 28")])).toBe(1007);
    expect(code([hex("01 01 e2"), hex("80 01 28")])).toBe(1007);
    expect(code([hex("88 04 03 e8 c3 28")])).toBe(1007);
  });
  test("bad close payloads → 1002", () => {
    expect(code([hex("88 01 03")])).toBe(1002);
    expect(code([hex("88 02 03 ed")])).toBe(1002); // 1005 on the wire
    expect(code([hex("88 02 00 00")])).toBe(1002);
  });
  test("a fragmented text message split inside a multi-byte character decodes", () => {
    expect(decodeAll([hex("01 01 c3"), hex("80 01 a9")])).toEqual([{ type: "message", data: "é", binary: false }]);
  });
});

describe("property: arbitrary bytes", () => {
  test("never throw, never yield a message past the limit", () => {
    const max = 1024;
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }),
        fc.constantFrom<"client" | "server">("client", "server"),
        (chunks, role) => {
          const d = new FrameDecoder({ role, maxMessageSize: max });
          for (const c of chunks) {
            for (const ev of d.push(c)) {
              if (ev.type === "message") {
                const n = typeof ev.data === "string" ? Buffer.byteLength(ev.data) : ev.data.length;
                expect(n).toBeLessThanOrEqual(max);
              }
            }
          }
        },
      ),
      { numRuns: 3000 },
    );
  });
  test("declared lengths over the limit fail with 1009 before any payload is buffered", () => {
    const seen = { over: 0, under: 0 };
    fc.assert(
      fc.property(fc.oneof(fc.integer({ min: 65, max: 1 << 20 }), fc.integer({ min: (1 << 20) + 1, max: 2 ** 31 })), fc.uint8Array({ maxLength: 64 }), (len, tail) => {
        const d = new FrameDecoder({ maxMessageSize: 1 << 20 });
        const head = new Uint8Array(10);
        head[0] = 0x82;
        head[1] = 127;
        new DataView(head.buffer).setUint32(6, len);
        const ev = [...d.push(head), ...d.push(tail)];
        if (len > 1 << 20) {
          seen.over++;
          expect(ev).toEqual([{ type: "error", code: 1009, message: expect.any(String) }]);
        } else {
          seen.under++;
          expect(ev).toEqual([]); // at or under the limit (and longer than the tail): waits for the payload, no error
        }
      }),
      { numRuns: 500 },
    );
    expect(seen.over).toBeGreaterThan(50); // both sides of the limit were exercised
    expect(seen.under).toBeGreaterThan(50);
  });
  test("encode → random split → decode round-trips", () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.string(), fc.uint8Array({ maxLength: 70_000 })), { minLength: 1, maxLength: 5 }),
        fc.integer({ min: 1, max: 1000 }),
        (msgs, seed) => {
          const frames = msgs.map((m) => encodeFrame(typeof m === "string" ? Opcode.TEXT : Opcode.BINARY, m, { mask: false }));
          const wire = Buffer.concat(frames);
          const ev = decodeAll(randomSplit(new Uint8Array(wire), seed));
          expect(ev.map((e) => (e.type === "message" ? e.data : null))).toEqual(msgs);
        },
      ),
      { numRuns: 200 },
    );
  });
});
