/**
 * v2 binary heads (src/tunnel/head-binary.ts) at every field limit, with the sentence a peer
 * gets and whether it counts as "too large" (431 / 502) or malformed. Fast tables, written to
 * kill mutation survivors (issue 18); the golden vectors are in test/tunnel-v2-vectors.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { MAX_HEAD_BYTES } from "../src/tunnel/frame.ts";
import {
  MAX_ADDRESS_BYTES, MAX_METHOD_BYTES, MAX_NAME_BYTES, MAX_PROTOCOLS, decodeOpenHead, decodeResponseHead, encodeOpenHead, encodeResponseHead,
} from "../src/tunnel/head-binary.ts";
import type { RequestHead } from "../src/tunnel/head.ts";

const R: RequestHead = { kind: "http", method: "GET", target: "/", headers: [] };
const rt = (h: RequestHead) => decodeOpenHead(encodeOpenHead(h)!);

describe("request head limits", () => {
  test.each([
    ["method", { ...R, method: "M".repeat(MAX_METHOD_BYTES + 1) }, `request head: method longer than ${MAX_METHOD_BYTES} bytes`],
    ["address", { ...R, remote: { address: "a".repeat(MAX_ADDRESS_BYTES + 1), port: 1 } }, `request head: address longer than ${MAX_ADDRESS_BYTES} bytes`],
    ["protocol", { ...R, protocols: ["p".repeat(257)] }, "request head: protocol longer than 256 bytes"],
    ["header name", { ...R, headers: [["n".repeat(MAX_NAME_BYTES + 1), "v"]] }, `request head: header name longer than ${MAX_NAME_BYTES} bytes`],
  ] as Array<[string, RequestHead, string]>)("%s one byte over: too large", (_, h, error) => {
    // the encoder checks names itself; build the bytes by hand where it refuses
    const bytes = encodeOpenHead(h) ?? encodeByHand(h);
    expect(decodeOpenHead(bytes)).toEqual({ error, tooLarge: true });
  });

  test("each field at its limit decodes", () => {
    expect(rt({ ...R, method: "M".repeat(MAX_METHOD_BYTES) })).toMatchObject({ method: "M".repeat(MAX_METHOD_BYTES) });
    expect(rt({ ...R, remote: { address: "a".repeat(MAX_ADDRESS_BYTES), port: 65535 } })).toMatchObject({ remote: { address: "a".repeat(MAX_ADDRESS_BYTES), port: 65535 } });
    expect(rt({ ...R, protocols: ["p".repeat(256)] })).toMatchObject({ protocols: ["p".repeat(256)] });
    expect(rt({ ...R, headers: [["n".repeat(MAX_NAME_BYTES), "v"]] })).toMatchObject({ headers: [["n".repeat(MAX_NAME_BYTES), "v"]] });
    const p16 = Array.from({ length: MAX_PROTOCOLS }, (_, i) => `p${i}`);
    expect(rt({ ...R, kind: "ws", protocols: p16 })).toMatchObject({ kind: "ws", protocols: p16 });
  });

  test("17 protocols: the encoder refuses; the decoder says 'more than 16 protocols' (too large)", () => {
    const p17 = Array.from({ length: MAX_PROTOCOLS + 1 }, (_, i) => `p${i}`);
    expect(encodeOpenHead({ ...R, protocols: p17 })).toBeNull();
    expect(decodeOpenHead(encodeByHand({ ...R, protocols: p17 }))).toEqual({ error: "request head: more than 16 protocols", tooLarge: true });
  });

  test("no remote address: no `remote`; an address: `remote` with its port; no protocols: none", () => {
    expect(rt(R)).toEqual(R);
    expect(rt({ ...R, remote: { address: "::1", port: 0 } })).toEqual({ ...R, remote: { address: "::1", port: 0 } });
    expect("protocols" in (rt({ ...R, protocols: [] }) as object)).toBe(false);
  });

  test("targets: origin-form; '*' only for OPTIONS; nothing at or below space, no DEL", () => {
    expect(rt({ ...R, method: "OPTIONS", target: "*" })).toMatchObject({ target: "*" });
    expect(rt({ ...R, target: "*" })).toEqual({ error: "request head: invalid target" });
    expect(rt({ ...R, target: "" })).toEqual({ error: "request head: invalid target" });
    expect(rt({ ...R, target: "/a\x7f" })).toEqual({ error: "request head: invalid target" });
    expect(rt({ ...R, target: "/a\x01" })).toEqual({ error: "request head: invalid target" });
    expect(rt({ ...R, target: "/~!$&'()*+,;=:@%20" })).toMatchObject({ target: "/~!$&'()*+,;=:@%20" });
    expect(rt({ ...R, target: "/é" })).toMatchObject({ target: "/é" });
  });

  test("an empty protocol, an empty header name, a non-token protocol are refused (malformed, not too large)", () => {
    expect(decodeOpenHead(encodeByHand({ ...R, protocols: [""] }))).toEqual({ error: "request head: empty protocol" });
    expect(decodeOpenHead(encodeByHand({ ...R, headers: [["", "v"]] }))).toEqual({ error: "request head: empty header name" });
    expect(decodeOpenHead(encodeByHand({ ...R, protocols: ["a b"] }))).toEqual({ error: "request head: invalid protocol" });
    expect(decodeOpenHead(encodeByHand({ ...R, headers: [["a", "b\nc"]] }))).toEqual({ error: "request head: invalid header value" });
  });

  test("truncation at every byte of a full head says 'truncated …' (never a throw, never a head)", () => {
    const full = encodeOpenHead({ ...R, kind: "ws", remote: { address: "1.2.3.4", port: 443 }, protocols: ["chat"], headers: [["a", "b"]] })!;
    const seen = new Set<string>();
    for (let cut = 1; cut < full.length; cut++) {
      const r = decodeOpenHead(full.subarray(0, cut)) as { error?: string; tooLarge?: boolean };
      expect(r.error).toMatch(/^request head: (truncated|invalid port|empty method)/);
      expect(r.tooLarge).toBeUndefined();
      seen.add(r.error!);
    }
    for (const what of ["method", "target", "address", "protocols count", "protocol", "headers count", "header name", "header value"]) expect(seen).toContain(`request head: truncated ${what}`);
  });

  test("tcp open: a label up to 1024 bytes; longer is too large; trailing bytes refused", () => {
    const label = (n: number) => encodeOpenHead({ kind: "tcp", target: "x".repeat(n) })!;
    expect(decodeOpenHead(label(1024))).toEqual({ kind: "tcp", target: "x".repeat(1024) });
    expect(decodeOpenHead(label(1025))).toEqual({ error: "tcp open: target label longer than 1024 bytes", tooLarge: true });
    const t = label(2);
    const extra = new Uint8Array(t.length + 1);
    extra.set(t);
    expect(decodeOpenHead(extra)).toEqual({ error: "tcp open: trailing bytes" });
    expect(decodeOpenHead(new Uint8Array([2]))).toEqual({ error: "tcp open: truncated target label" });
    expect(decodeOpenHead(new Uint8Array([2, 1, 0]))).toEqual({ error: "tcp open: invalid target label" });
  });
});

describe("response head", () => {
  test("status 100 and 599 decode; 99 and 600 are refused with the number", () => {
    for (const s of [100, 599]) expect(decodeResponseHead(encodeResponseHead({ status: s, headers: [] })!)).toEqual({ status: s, headers: [] });
    for (const s of [99, 600]) expect(decodeResponseHead(encodeResponseHead({ status: s, headers: [] })!)).toEqual({ error: `response head: invalid status ${s}` });
    expect(decodeResponseHead(new Uint8Array([0x01, 0x2c, 0]))).toEqual({ error: "response head: truncated headers count" });
    expect(decodeResponseHead(new Uint8Array([0x01, 0x2c]))).toEqual({ error: "response head: truncated protocol" });
  });
  test("the chosen subprotocol survives; an empty one is absent; a non-token one is refused", () => {
    expect(decodeResponseHead(encodeResponseHead({ status: 101, headers: [], protocol: "mqtt" })!)).toEqual({ status: 101, headers: [], protocol: "mqtt" });
    expect(decodeResponseHead(encodeResponseHead({ status: 101, headers: [], protocol: "" })!)).toEqual({ status: 101, headers: [] });
    expect(decodeResponseHead(encodeResponseHead({ status: 101, headers: [], protocol: "a b" })!)).toEqual({ error: "response head: invalid protocol" });
  });
  test("a large header value that needs a longer length prefix in UTF-8 round-trips, at the size limit too", () => {
    // 100 'é' = 100 UTF-16 units but 200 UTF-8 bytes: the prefix grows from 2 to 2 bytes; 8200 é: 2 → 4
    for (const v of ["é".repeat(100), "é".repeat(8200), `${"a".repeat(130)}é`, "a".repeat(16_383), "a".repeat(16_384)]) {
      const h = { status: 200, headers: [["x", v], ["y", "z"]] as Array<[string, string]> };
      expect(decodeResponseHead(encodeResponseHead(h)!)).toEqual(h);
    }
    const fixed = encodeResponseHead({ status: 200, headers: [["x", ""]] })!.length - 1; // without the value's 1-byte prefix
    const at = encodeResponseHead({ status: 200, headers: [["x", "v".repeat(MAX_HEAD_BYTES - fixed - 4)]] });
    expect(at?.length).toBe(MAX_HEAD_BYTES);
    expect(encodeResponseHead({ status: 200, headers: [["x", "v".repeat(MAX_HEAD_BYTES - fixed - 3)]] })).toBeNull();
    // a head already at the limit: one more short field (ASCII or not) is refused, never cut
    const full: Array<[string, string]> = [["x", "v".repeat(MAX_HEAD_BYTES - fixed - 4)]];
    expect(encodeResponseHead({ status: 200, headers: full })?.length).toBe(MAX_HEAD_BYTES);
    expect(encodeResponseHead({ status: 200, headers: [...full, ["y", "abc"]] })).toBeNull();
    expect(encodeResponseHead({ status: 200, headers: [...full, ["y", "é"]] })).toBeNull();
    expect(encodeResponseHead({ status: 200, headers: [["x", "v".repeat(MAX_HEAD_BYTES - fixed - 10)], ["y", "é".repeat(3)]] })).toBeNull();
    // non-ASCII near the limit: UTF-8 bytes, not characters, count
    expect(encodeResponseHead({ status: 200, headers: [["x", "é".repeat((MAX_HEAD_BYTES - fixed - 4) / 2 + 1)]] })).toBeNull();
    const short = encodeResponseHead({ status: 200, headers: [["x", "é".repeat(50)]] })!; // the ≤ 128-unit path switching to UTF-8
    expect(decodeResponseHead(short)).toEqual({ status: 200, headers: [["x", "é".repeat(50)]] });
    expect(short.length).toBe(2 + 1 + 1 + 1 + 1 + 2 + 100);
  });
  test("more than 256 headers: the decoder says so (too large); a count past the bytes is truncated", () => {
    const many = new Uint8Array([0, 200, 0, 0x41, 0x01]); // 257 headers
    expect(decodeResponseHead(many)).toEqual({ error: "response head: more than 256 headers", tooLarge: true });
    expect(decodeResponseHead(new Uint8Array([0, 200, 0, 4, 1, 0x61, 0]))).toEqual({ error: "response head: truncated headers" });
    expect(decodeResponseHead(new Uint8Array([0, 200, 0, 0x40]))).toEqual({ error: "response head: truncated headers count" });
  });
});

/** Encodes a request head without the encoder's own checks (to show what the decoder refuses). */
function encodeByHand(h: RequestHead): Uint8Array {
  const parts: number[] = [h.kind === "ws" ? 1 : 0];
  const str = (s: string) => {
    const b = new TextEncoder().encode(s);
    varint(b.length);
    parts.push(...b);
  };
  const varint = (n: number) => {
    if (n < 0x40) parts.push(n);
    else if (n < 0x4000) parts.push(0x40 | (n >> 8), n & 0xff);
    else throw new Error("too long for this helper");
  };
  str(h.method);
  str(h.target);
  str(h.remote?.address ?? "");
  varint(h.remote?.port ?? 0);
  varint(h.protocols?.length ?? 0);
  for (const p of h.protocols ?? []) str(p);
  varint(h.headers.length);
  for (const [n, v] of h.headers) {
    str(n);
    str(v);
  }
  return new Uint8Array(parts);
}

describe("edges", () => {
  test("exactly 256 headers encode and decode", () => {
    const h = Array.from({ length: 256 }, (_, i) => [`h${i}`, "v"] as [string, string]);
    const bytes = encodeResponseHead({ status: 200, headers: h });
    expect(bytes).not.toBeNull();
    expect((decodeResponseHead(bytes!) as { headers: unknown[] }).headers.length).toBe(256);
  });
  test("a length prefix cut inside its varint is 'truncated'", () => {
    expect(decodeOpenHead(new Uint8Array([0, 0x40]))).toEqual({ error: "request head: truncated method" });
  });
  test("'*' is a target for OPTIONS only, and nothing else without a slash is", () => {
    expect(rt({ ...R, method: "OPTIONS", target: "x" })).toEqual({ error: "request head: invalid target" });
  });
  test("an oversized response head names itself and the limit", () => {
    const big = new Uint8Array(MAX_HEAD_BYTES + 1);
    expect(decodeResponseHead(big)).toEqual({ error: `response head of ${MAX_HEAD_BYTES + 1} bytes is over the ${MAX_HEAD_BYTES}-byte limit`, tooLarge: true });
  });
});
