/**
 * Tunnel protocol v2 golden vectors (the same hex is in docs/protocol.md, "Golden vectors (v2)"):
 * every frame type, binary request / response / tcp heads, the hello; hostile heads with their
 * stable errors; property tests (the head decoder never throws, never yields more than its input,
 * round-trips every valid head, and the encoder refuses what is over the limits).
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import {
  FrameType as T, MAX_HEAD_BYTES, PING_PAYLOAD, PROTOCOL_VERSIONS, ResetCode, decodeFrames, encodeFrame, resetPayload, varintPayload, wsClosePayload,
} from "../src/tunnel/frame.ts";
import { decodeOpenHead, decodeResponseHead, encodeOpenHead, encodeResponseHead, type OpenHead } from "../src/tunnel/head-binary.ts";
import { helloMessage, parseHello, pickVersion, versionMismatch, type RequestHead, type ResponseHead } from "../src/tunnel/head.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const unhex = (h: string) => new Uint8Array(Buffer.from(h, "hex"));
const utf8 = (s: string) => new TextEncoder().encode(s);

const OPEN_HTTP: RequestHead = { kind: "http", method: "GET", target: "/a?b=1", headers: [["accept", "*/*"], ["cookie", "x=1"], ["cookie", "y=2"]], remote: { address: "203.0.113.7", port: 51234 } };
const OPEN_WS: RequestHead = { kind: "ws", method: "GET", target: "/chat", headers: [["origin", "https://example.com"]], protocols: ["mqtt", "v2.chat"] };
const RES_200: ResponseHead = { status: 200, headers: [["content-type", "text/plain"], ["set-cookie", "a=1"], ["set-cookie", "b=2"]] };
const RES_101: ResponseHead = { status: 101, headers: [], protocol: "mqtt" };

/** [name, frame type, stream, payload, golden hex of the whole frame] */
const VECTORS: Array<[string, number, number, Uint8Array, string]> = [
  ["OPEN http GET /a?b=1, remote 203.0.113.7:51234, repeated cookie", T.OPEN, 1, encodeOpenHead(OPEN_HTTP)!,
    "01013f0003474554062f613f623d310b3230332e302e3131332e378000c822000306616363657074032a2f2a06636f6f6b696503783d3106636f6f6b696503793d32"],
  ["OPEN ws /chat, protocols mqtt + v2.chat", T.OPEN, 3, encodeOpenHead(OPEN_WS)!,
    "0103370103474554052f63686174000002046d7174740776322e6368617401066f726967696e1368747470733a2f2f6578616d706c652e636f6d"],
  ["OPEN tcp, label postgres", T.OPEN, 5, encodeOpenHead({ kind: "tcp", target: "postgres" })!, "01050a0208706f737467726573"],
  ["RESPONSE 200, two Set-Cookie kept apart", T.RESPONSE, 1, encodeResponseHead(RES_200)!,
    "02013a00c800030c636f6e74656e742d747970650a746578742f706c61696e0a7365742d636f6f6b696503613d310a7365742d636f6f6b696503623d32"],
  ["RESPONSE 101, protocol mqtt", T.RESPONSE, 3, encodeResponseHead(RES_101)!, "0203080065046d71747400"],
  ["DATA 'PING\\r\\n' on tcp stream 5", T.DATA, 5, utf8("PING\r\n"), "03050650494e470d0a"],
  ["END (TCP FIN) on stream 5", T.END, 5, new Uint8Array(0), "040500"],
  ["RESET REQUEST_HEAD_TOO_LARGE 'head too large'", T.RESET, 1, resetPayload(ResetCode.REQUEST_HEAD_TOO_LARGE, "head too large"), "05010f076865616420746f6f206c61726765"],
  ["RESET ORIGIN_INVALID_RESPONSE 'not http'", T.RESET, 1, resetPayload(ResetCode.ORIGIN_INVALID_RESPONSE, "not http"), "0501090a6e6f742068747470"],
  ["WINDOW +16 MiB on stream 0 (session)", T.WINDOW, 0, varintPayload(16 << 20), "06000481000000"],
  ["WINDOW +64 KiB on stream 3", T.WINDOW, 3, varintPayload(65536), "06030480010000"],
  ["WS_MESSAGE text FIN 'hi'", T.WS_MESSAGE, 3, new Uint8Array([2, 0x68, 0x69]), "070303026869"],
  ["WS_CLOSE 1000 'bye'", T.WS_CLOSE, 3, wsClosePayload(1000, "bye"), "08030503e8627965"],
  ["PING 0102030405060708", T.PING, 0, unhex("0102030405060708"), "0900080102030405060708"],
  ["PONG 0102030405060708", T.PONG, 0, unhex("0102030405060708"), "0a00080102030405060708"],
  ["GOAWAY lastStream 7 code 0", T.GOAWAY, 0, varintPayload(7, 0), "0b00020700"],
];

describe("v2 golden vectors", () => {
  for (const [name, type, stream, payload, golden] of VECTORS) {
    test(name, () => {
      expect(hex(encodeFrame(type as never, stream, payload))).toBe(golden);
      const r = decodeFrames(unhex(golden));
      if ("error" in r) throw new Error(r.error);
      expect(r.frames).toHaveLength(1);
      expect(r.frames[0]!.type).toBe(type as never);
      expect(r.frames[0]!.stream).toBe(stream);
      expect(hex(r.frames[0]!.payload)).toBe(hex(payload));
    });
  }
  test("heads decode from the golden bytes", () => {
    const payload = (h: string) => (decodeFrames(unhex(h)) as { frames: Array<{ payload: Uint8Array }> }).frames[0]!.payload;
    expect(decodeOpenHead(payload(VECTORS[0]![4]))).toEqual(OPEN_HTTP);
    expect(decodeOpenHead(payload(VECTORS[1]![4]))).toEqual(OPEN_WS);
    expect(decodeOpenHead(payload(VECTORS[2]![4]))).toEqual({ kind: "tcp", target: "postgres" });
    expect(decodeResponseHead(payload(VECTORS[3]![4]))).toEqual(RES_200);
    expect(decodeResponseHead(payload(VECTORS[4]![4]))).toEqual(RES_101);
  });
  test("hello: exact text, negotiation picks the highest common version", () => {
    const h = { azhexgate: 1, versions: [...PROTOCOL_VERSIONS], role: "gateway" as const, features: ["ws", "tcp"], window: 2097152, sessionWindow: 16777216 };
    expect(helloMessage(h)).toBe('{"azhexgate":1,"versions":[1,2],"role":"gateway","features":["ws","tcp"],"window":2097152,"sessionWindow":16777216}');
    expect(parseHello(helloMessage(h))).toEqual(h);
    expect(pickVersion([1, 2], [1, 2])).toBe(2);
    expect(pickVersion([1, 2], [1])).toBe(1); // a v1 peer
    expect(pickVersion([1, 2], [2, 3])).toBe(2);
    expect(pickVersion([2], [1])).toBeNull();
    const v1 = parseHello('{"azhexgate":1,"role":"agent","features":["ws"],"window":1048576}');
    if ("error" in v1) throw new Error(v1.error);
    expect(versionMismatch([2], "gateway", v1)).toBe("tunnel protocol mismatch: this gateway speaks versions 2, the agent speaks 1; upgrade azhexgate on the agent");
    const v3 = parseHello('{"azhexgate":3,"versions":[3],"role":"gateway","features":[],"window":1}');
    if ("error" in v3) throw new Error(v3.error);
    expect(versionMismatch([1, 2], "agent", v3)).toBe("tunnel protocol mismatch: this agent speaks versions 1, 2, the gateway speaks 3; upgrade azhexgate on this agent");
    expect(parseHello('{"azhexgate":1,"role":"agent","window":1,"sessionWindow":-1}')).toEqual({ error: "hello has no valid sessionWindow" });
  });
});

describe("v2 heads: hostile input gets a stable error", () => {
  const cases: Array<[string, string, string]> = [
    ["empty", "", "request head: truncated"],
    ["unknown kind", "07", "request head: unknown kind 7"],
    ["method with a space", "0004474520540" + "12f000000", "request head: invalid method"],
    ["empty method", "0000012f000000", "request head: empty method"],
    ["absolute-form target", "0003474554" + "0d687474703a2f2f6576696c2f" + "000000", "request head: invalid target"],
    ["target with a space", "0003474554032f2061000000", "request head: invalid target"],
    ["header count past the bytes", "0003474554012f00000005", "request head: truncated headers"],
    ["300 headers", "0003474554012f000000412c", "request head: more than 256 headers"],
    ["header name with ':'", "0003474554012f0000000102613a0162", "request head: invalid header name"],
    ["header value with CR LF", "0003474554012f00000001016104610d0a62", "request head: invalid header value"],
    ["header value with NUL", "0003474554012f000000010161026100", "request head: invalid header value"],
    ["port past 65535", "0003474554012f0080010000000000", "request head: invalid port"],
    ["trailing byte", "0003474554012f00000000ff", "request head: trailing bytes"],
  ];
  for (const [name, h, error] of cases) test(name, () => expect(decodeOpenHead(unhex(h))).toMatchObject({ error }));
  test("response: status out of range, trailing bytes, truncated", () => {
    expect(decodeResponseHead(unhex("03e70000"))).toEqual({ error: "response head: invalid status 999" });
    expect(decodeResponseHead(unhex("00c8000000"))).toEqual({ error: "response head: trailing bytes" });
    expect(decodeResponseHead(unhex("00"))).toEqual({ error: "response head: truncated status" });
  });
  test("over 128 KiB: refused as too large, before any field is read", () => {
    const big = new Uint8Array(MAX_HEAD_BYTES + 1);
    expect(decodeOpenHead(big)).toEqual({ error: `request head of ${MAX_HEAD_BYTES + 1} bytes is over the 131072-byte limit`, tooLarge: true });
    expect(decodeResponseHead(big)).toMatchObject({ tooLarge: true });
  });
  test("the encoder refuses heads over the limits (the gateway answers 431 without opening a stream)", () => {
    expect(encodeOpenHead({ ...OPEN_HTTP, headers: [["x-big", "a".repeat(150_000)]] })).toBeNull();
    expect(encodeOpenHead({ ...OPEN_HTTP, headers: Array.from({ length: 257 }, () => ["a", "b"] as [string, string]) })).toBeNull();
    expect(encodeOpenHead({ ...OPEN_HTTP, headers: [["n".repeat(257), "v"]] })).toBeNull();
    expect(encodeResponseHead({ status: 200, headers: [["x", "é".repeat(70_000)]] })).toBeNull(); // 140,000 UTF-8 bytes
    // exactly at the limit is accepted
    const fixed = encodeOpenHead({ ...OPEN_HTTP, headers: [] })!.length + 1 + 1 + 4; // name prefix + name + value prefix
    const edge = encodeOpenHead({ ...OPEN_HTTP, headers: [["x", "v".repeat(MAX_HEAD_BYTES - fixed)]] });
    expect(edge?.length).toBe(MAX_HEAD_BYTES);
    expect(decodeOpenHead(edge!)).toMatchObject({ method: "GET" });
  });
  test("non-UTF-8 bytes read as Latin-1; UTF-8 round-trips", () => {
    expect(decodeResponseHead(unhex("00c80001017801e9"))).toEqual({ status: 200, headers: [["x", "é"]] });
    const h: ResponseHead = { status: 200, headers: [["x", "naïve ☃ 😀"]] };
    expect(decodeResponseHead(encodeResponseHead(h)!)).toEqual(h);
    // long non-ASCII values whose UTF-8 length needs a longer length prefix than their UTF-16 length
    for (const v of ["é".repeat(10_000), `${"a".repeat(200)}😀`, "☃".repeat(6000)]) {
      const long: ResponseHead = { status: 200, headers: [["x", v], ["y", "z"]] };
      expect(decodeResponseHead(encodeResponseHead(long)!)).toEqual(long);
    }
  });
  test("PING payloads are 8 bytes", () => expect(PING_PAYLOAD).toBe(8));
});

describe("v2 heads: properties", () => {
  const token = fc.stringMatching(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,20}$/);
  const value = fc.string({ maxLength: 60 }).filter((s) => !/[\r\n\0]/.test(s));
  const headers = fc.array(fc.tuple(token, value), { maxLength: 20 });
  const request: fc.Arbitrary<OpenHead> = fc.oneof(
    fc.record({
      kind: fc.constantFrom("http" as const, "ws" as const),
      method: token,
      target: fc.stringMatching(/^\/[!-~]{0,40}$/),
      headers,
    }),
    fc.record({ kind: fc.constant("tcp" as const), target: value }),
  );
  test("round trip: every valid head decodes to itself", () => {
    fc.assert(fc.property(request, (h) => expect(decodeOpenHead(encodeOpenHead(h)!)).toEqual(h)), { numRuns: 2000 });
    const response = fc.record({ status: fc.integer({ min: 100, max: 599 }), headers });
    fc.assert(fc.property(response, (h) => expect(decodeResponseHead(encodeResponseHead(h)!)).toEqual(h)), { numRuns: 2000 });
  });
  test("arbitrary bytes: never throws; yields no more characters than input bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        for (const r of [decodeOpenHead(bytes), decodeResponseHead(bytes)] as Array<Record<string, unknown>>) {
          if ("error" in r) {
            expect(typeof r.error).toBe("string");
            continue;
          }
          const chars = JSON.stringify(r).length; // generous bound on what was built
          expect(chars).toBeLessThan(bytes.length * 8 + 200);
          const list = (r.headers ?? []) as unknown[];
          expect(list.length).toBeLessThanOrEqual(bytes.length);
        }
      }),
      { numRuns: 5000 },
    );
  });
  test("mutated valid heads: never throws, and what decodes still obeys the rules", () => {
    const enc = encodeOpenHead(OPEN_HTTP)!;
    fc.assert(
      fc.property(fc.nat(enc.length - 1), fc.integer({ min: 0, max: 255 }), (i, b) => {
        const m = enc.slice();
        m[i] = b;
        const r = decodeOpenHead(m);
        if ("error" in r || r.kind === "tcp") return;
        for (const [n, v] of r.headers) {
          expect(n).toMatch(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/);
          expect(v).not.toMatch(/[\r\n\0]/);
        }
      }),
      { numRuns: 3000 },
    );
  });
});
