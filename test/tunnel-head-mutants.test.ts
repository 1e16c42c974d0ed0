/**
 * The hello and the v1 JSON heads (src/tunnel/head.ts) as tables: what a peer may send, what is
 * refused and with which sentence, each limit at its edge. Written to kill mutation survivors
 * (issue 18, docs/testing.md); the golden vectors (test/tunnel-v2-vectors.test.ts) cover v2.
 */
import { describe, expect, test } from "bun:test";
import { MAX_HEAD_PAYLOAD } from "../src/tunnel/frame.ts";
import { MAX_HEADERS, jsonHead, parseHello, parseJsonHead, parseRequestHead, parseResponseHead, pickVersion, versionMismatch } from "../src/tunnel/head.ts";

const H = (o: object) => JSON.stringify({ azhexgate: 1, role: "agent", window: 10, ...o });

describe("hello", () => {
  test.each([
    ["{", "hello is not JSON"],
    ["[]", "not an azhexgate hello"],
    ["null", "not an azhexgate hello"],
    [H({ azhexgate: 0 }), "not an azhexgate hello"],
    [H({ azhexgate: 1.5 }), "not an azhexgate hello"],
    [H({ azhexgate: "1" }), "not an azhexgate hello"],
    [H({ azhexgate: 2 ** 53 }), "not an azhexgate hello"],
    [H({ role: "client" }), "hello has no valid role"],
    [H({ window: 0 }), "hello has no valid window"],
    [H({ window: -5 }), "hello has no valid window"],
    [H({ window: "10" }), "hello has no valid window"],
    [H({ sessionWindow: 0 }), "hello has no valid sessionWindow"],
    [H({ sessionWindow: null }), "hello has no valid sessionWindow"],
  ])("%s → %s", (text, error) => {
    expect(parseHello(text)).toEqual({ error });
  });

  test("valid: features are strings (at most 64), versions positive integers (at most 64), default [azhexgate]", () => {
    expect(parseHello(H({ features: ["ws", 3, null, "tcp"], versions: [1, 0, -1, 2.5, "3", 2] }))).toEqual({ azhexgate: 1, role: "agent", window: 10, features: ["ws", "tcp"], versions: [1, 2] });
    expect(parseHello(H({ role: "gateway", features: "ws" }))).toEqual({ azhexgate: 1, role: "gateway", window: 10, features: [], versions: [1] });
    expect(parseHello(H({ azhexgate: 2, versions: [0] }))).toMatchObject({ versions: [2] });
    const many = Array.from({ length: 100 }, (_, i) => i + 1);
    const h = parseHello(H({ features: many.map(String), versions: many })) as { features: string[]; versions: number[] };
    expect([h.features.length, h.versions.length, h.versions.at(-1)]).toEqual([64, 64, 64]);
    expect(parseHello(H({ sessionWindow: 7 }))).toMatchObject({ sessionWindow: 7 });
    expect("sessionWindow" in (parseHello(H({})) as object)).toBe(false);
  });

  test("negotiation: the highest common version; none → null; the mismatch sentence names who must upgrade", () => {
    expect(pickVersion([1, 2], [2, 1])).toBe(2);
    expect(pickVersion([1, 2], [1, 2, 3])).toBe(2);
    expect(pickVersion([1, 2], [1])).toBe(1);
    expect(pickVersion([2], [1, 3])).toBeNull();
    expect(pickVersion([1, 2], [])).toBeNull();
    const old = { azhexgate: 1, versions: [1], role: "agent" as const, features: [], window: 1 };
    expect(versionMismatch([2, 3], "gateway", old)).toBe("tunnel protocol mismatch: this gateway speaks versions 2, 3, the agent speaks 1; upgrade azhexgate on the agent");
    const newer = { ...old, versions: [4, 5] };
    expect(versionMismatch([2, 3], "gateway", newer)).toBe("tunnel protocol mismatch: this gateway speaks versions 2, 3, the agent speaks 4, 5; upgrade azhexgate on this gateway");
    expect(versionMismatch([3], "gateway", { ...old, versions: [3] })).toEndWith("upgrade azhexgate on this gateway");
    // the highest versions decide, not the lowest
    expect(versionMismatch([1, 3], "gateway", { ...old, versions: [2] })).toEndWith("upgrade azhexgate on the agent");
    expect(versionMismatch([1, 3], "gateway", { ...old, versions: [2, 4] })).toEndWith("upgrade azhexgate on this gateway");
  });
});

describe("v1 request head", () => {
  const R = { kind: "http", method: "GET", target: "/p?q", headers: [["a", "b"]] };
  test.each([
    [null, "request head is not an object"],
    [[R], "request head is not an object"],
    [{ ...R, kind: "tcp" }, "request head has no valid kind"],
    [{ ...R, method: 1 }, "invalid method"],
    [{ ...R, method: "GE T" }, "invalid method"],
    [{ ...R, method: "" }, "invalid method"],
    [{ ...R, method: "M".repeat(33) }, "invalid method"],
    [{ ...R, target: "p" }, "invalid target"],
    [{ ...R, target: 5 }, "invalid target"],
    [{ ...R, target: "/a b" }, "invalid target"],
    [{ ...R, target: "/a\tb" }, "invalid target"],
    [{ ...R, target: "/a\0" }, "invalid target"],
    [{ ...R, headers: {} }, "invalid headers"],
    [{ ...R, headers: [["a"]] }, "invalid headers"],
    [{ ...R, headers: [["a", "b", "c"]] }, "invalid headers"],
    [{ ...R, headers: ["ab"] }, "invalid headers"],
    [{ ...R, headers: [["a b", "c"]] }, "invalid headers"],
    [{ ...R, headers: [["", "c"]] }, "invalid headers"],
    [{ ...R, headers: [[1, "c"]] }, "invalid headers"],
    [{ ...R, headers: [["a", 1]] }, "invalid headers"],
    [{ ...R, headers: [["a", "x\ry"]] }, "invalid headers"],
    [{ ...R, headers: [["a", "x\ny"]] }, "invalid headers"],
    [{ ...R, headers: [["a", "x\0y"]] }, "invalid headers"],
    [{ ...R, headers: Array.from({ length: MAX_HEADERS + 1 }, () => ["a", "b"]) }, "invalid headers"],
  ])("%j → %s", (v, error) => {
    expect(parseRequestHead(v)).toEqual({ error });
  });

  test("valid: kinds, a 32-byte method, 256 headers, the remote address (port a number or 0), token subprotocols", () => {
    expect(parseRequestHead(R)).toEqual(R as never);
    expect(parseRequestHead({ ...R, kind: "ws", method: "M".repeat(32) })).toMatchObject({ kind: "ws", method: "M".repeat(32) });
    expect((parseRequestHead({ ...R, headers: Array.from({ length: MAX_HEADERS }, () => ["a", "b"]) }) as { headers: unknown[] }).headers.length).toBe(MAX_HEADERS);
    expect(parseRequestHead({ ...R, remote: { address: "1.2.3.4", port: 5 } })).toMatchObject({ remote: { address: "1.2.3.4", port: 5 } });
    expect(parseRequestHead({ ...R, remote: { address: "1.2.3.4", port: "x" } })).toMatchObject({ remote: { address: "1.2.3.4", port: 0 } });
    expect(parseRequestHead({ ...R, remote: { address: "1.2.3.4", port: "8080" } })).toMatchObject({ remote: { address: "1.2.3.4", port: 8080 } });
    expect("remote" in (parseRequestHead({ ...R, remote: { address: 5 } }) as object)).toBe(false);
    expect("remote" in (parseRequestHead({ ...R, remote: "1.2.3.4" }) as object)).toBe(false);
    expect(parseRequestHead({ ...R, protocols: ["chat", "bad proto", 3, "v2.json"] })).toMatchObject({ protocols: ["chat", "v2.json"] });
    expect("protocols" in (parseRequestHead({ ...R, protocols: ["bad proto"] }) as object)).toBe(false);
    expect("protocols" in (parseRequestHead({ ...R, protocols: "chat" }) as object)).toBe(false);
    expect(parseRequestHead({ ...R, headers: [["Set-Cookie", "a"], ["Set-Cookie", "b"]] })).toMatchObject({ headers: [["Set-Cookie", "a"], ["Set-Cookie", "b"]] });
  });
});

describe("v1 response head", () => {
  test.each([
    [null, "response head is not an object"],
    [[], "response head is not an object"],
    [{ status: "200", headers: [] }, "invalid status"],
    [{ status: 99, headers: [] }, "invalid status"],
    [{ status: 600, headers: [] }, "invalid status"],
    [{ status: 200.5, headers: [] }, "invalid status"],
    [{ status: 200 }, "invalid headers"],
  ])("%j → %s", (v, error) => {
    expect(parseResponseHead(v)).toEqual({ error });
  });
  test("100 and 599 are valid; a token subprotocol is kept, another dropped", () => {
    expect(parseResponseHead({ status: 100, headers: [] })).toEqual({ status: 100, headers: [] });
    expect(parseResponseHead({ status: 599, headers: [] })).toEqual({ status: 599, headers: [] });
    expect(parseResponseHead({ status: 101, headers: [], protocol: "chat" })).toEqual({ status: 101, headers: [], protocol: "chat" });
    expect(parseResponseHead({ status: 101, headers: [], protocol: "a b" })).toEqual({ status: 101, headers: [] });
    expect(parseResponseHead({ status: 101, headers: [], protocol: 1 })).toEqual({ status: 101, headers: [] });
  });
});

describe("v1 head limit", () => {
  // {"status":200,"headers":[["x","…"]]} is 32 bytes around the value
  const head = (valueLen: number) => ({ status: 200, headers: [["x", "v".repeat(valueLen)]] as Array<[string, string]> });
  const overhead = JSON.stringify(head(0)).length;
  test("a head of exactly the limit is sent and parsed; one byte more is refused (too large, with the sizes)", () => {
    const at = jsonHead(head(MAX_HEAD_PAYLOAD - overhead))!;
    expect(at.length).toBe(MAX_HEAD_PAYLOAD);
    expect(parseJsonHead(at, parseResponseHead)).toMatchObject({ status: 200 });
    expect(jsonHead(head(MAX_HEAD_PAYLOAD - overhead + 1))).toBeNull();
    const over = new TextEncoder().encode(JSON.stringify(head(MAX_HEAD_PAYLOAD - overhead + 1)));
    expect(parseJsonHead(over, parseResponseHead)).toEqual({ error: `head of ${MAX_HEAD_PAYLOAD + 1} bytes is over the ${MAX_HEAD_PAYLOAD}-byte limit`, tooLarge: true });
    expect(parseJsonHead(new TextEncoder().encode("nope"), parseResponseHead)).toEqual({ error: "response head is not an object" });
  });
});
