/**
 * The WebAssembly SIMD masker (src/ws/mask.ts) and the scratch-built client frames: every length
 * and offset masks exactly like the byte-wise definition in RFC 6455 §5.3, and frames built in the
 * scratch area decode (server role) to the bytes that went in.
 */
import { describe, expect, test } from "bun:test";
import { encodeMaskedFrameScratch, FrameDecoder, Opcode } from "../src/ws/frame.ts";
import { maskScratch, SCRATCH_MAX, scratch, wasmMasking } from "../src/ws/mask.ts";

const bytewise = (data: Uint8Array, key: Uint8Array) => data.map((b, i) => b ^ key[i & 3]!);

describe("maskScratch", () => {
  test("WebAssembly SIMD is available on this Bun (else every client frame is masked in JS)", () => {
    expect(wasmMasking).toBe(true);
  });

  test("equals byte-wise masking at every length 0..100 and start offset 0..20, in scratch and in a plain buffer", () => {
    const key = new Uint8Array([0x9a, 0x01, 0xfe, 0x37]);
    for (let len = 0; len <= 100; len++) {
      for (let start = 0; start <= 20; start++) {
        const data = crypto.getRandomValues(new Uint8Array(len));
        const want = bytewise(data, key);
        const s = scratch(start + len + 8)!;
        s.fill(0xaa, 0, start + len + 8);
        s.set(data, start);
        maskScratch(s, start, start + len, key);
        expect(s.subarray(start, start + len)).toEqual(want);
        // bytes around the range are untouched
        expect(s.subarray(0, start).every((b) => b === 0xaa)).toBe(true);
        expect(s.subarray(start + len, start + len + 8).every((b) => b === 0xaa)).toBe(true);
        const plain = new Uint8Array(start + len);
        plain.set(data, start);
        maskScratch(plain, start, start + len, key); // JS fallback path
        expect(plain.subarray(start)).toEqual(want);
      }
    }
  });

  test("a 5 MiB range (the scratch area grows) masks correctly", () => {
    const key = crypto.getRandomValues(new Uint8Array(4));
    const data = crypto.getRandomValues(new Uint8Array(5 << 20));
    const s = scratch(data.length + 3)!;
    s.set(data, 3);
    maskScratch(s, 3, 3 + data.length, key);
    const got = s.subarray(3, 3 + data.length);
    let bad = -1;
    for (let i = 0; i < data.length; i++) if (got[i] !== (data[i]! ^ key[i & 3]!)) { bad = i; break; }
    expect(bad).toBe(-1);
  });

  test("scratch refuses sizes over SCRATCH_MAX (callers fall back to allocating frames)", () => {
    expect(scratch(SCRATCH_MAX + 1)).toBeNull();
  });
});

describe("encodeMaskedFrameScratch", () => {
  for (const len of [0, 125, 126, 65535, 65536, 300_000]) {
    test(`${len}-byte binary frame from parts decodes to the same bytes (server role)`, () => {
      const data = crypto.getRandomValues(new Uint8Array(len));
      const parts = [data.subarray(0, len >> 1), data.subarray(len >> 1)];
      const frame = encodeMaskedFrameScratch(Opcode.BINARY, parts)!.slice();
      expect(frame[1]! & 0x80).toBe(0x80); // masked
      const events = [...new FrameDecoder({ role: "server" }).push(frame)];
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ type: "message", binary: true });
      expect((events[0] as { data: Uint8Array }).data).toEqual(data);
    });
  }

  test("a text frame keeps multi-byte UTF-8 intact", () => {
    const text = "héllo wörld ✓ ".repeat(3000);
    const frame = encodeMaskedFrameScratch(Opcode.TEXT, text)!.slice();
    const events = [...new FrameDecoder({ role: "server" }).push(frame)];
    expect(events[0]).toMatchObject({ type: "message", binary: false, data: text });
  });

  test("each frame gets a fresh masking key", () => {
    const a = encodeMaskedFrameScratch(Opcode.BINARY, new Uint8Array(1000))!.slice();
    const b = encodeMaskedFrameScratch(Opcode.BINARY, new Uint8Array(1000))!.slice();
    expect(a.subarray(4, 8)).not.toEqual(b.subarray(4, 8));
  });
});
