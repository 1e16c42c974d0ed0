/**
 * The management API's network rules as tables (issue 18: mutation testing left CIDR edges, the
 * trusted-proxy hop walk and the limiter's memory bound untested). Pure functions, no sockets:
 * what an operator writes in AZHEXGATE_API_ALLOW / AZHEXGATE_TRUSTED_PROXIES and which client a
 * request is then counted as.
 */
import { describe, expect, test } from "bun:test";
import { createAccessPolicy, parseCidr, parseIp } from "../src/api/access.ts";

const CIDR_ERROR = /is not a CIDR range; write e\.g\. 203\.0\.113\.0\/24 or 2001:db8::\/32$/;

describe("IP literals", () => {
  const table: Array<[string, { v: 4 | 6; n: bigint } | undefined]> = [
    ["0.0.0.0", { v: 4, n: 0n }],
    ["255.255.255.255", { v: 4, n: 0xffffffffn }],
    ["1.2.3.4", { v: 4, n: 0x01020304n }],
    [" 1.2.3.4 ", { v: 4, n: 0x01020304n }],
    ["01.2.3.4", { v: 4, n: 0x01020304n }],
    ["[1.2.3.4]", { v: 4, n: 0x01020304n }],
    ["1.2.3.4%eth0", { v: 4, n: 0x01020304n }],
    ["1.2.3.0004", undefined], // four digits
    ["1.2.3.256", undefined],
    ["1.2.3", undefined],
    ["1.2.3.4.", undefined],
    ["1..3.4", undefined],
    ["1.2.3.+4", undefined],
    ["::", { v: 6, n: 0n }],
    ["::1", { v: 6, n: 1n }],
    ["1::", { v: 6, n: 1n << 112n }],
    ["[::1]", { v: 6, n: 1n }],
    ["[::1", undefined],
    ["::1]", undefined],
    ["FE80::ABCD", { v: 6, n: (0xfe80n << 112n) | 0xabcdn }],
    ["1:2:3:4:5:6:7:8", { v: 6, n: 0x00010002000300040005000600070008n }],
    ["1:2:3:4:5:6:7::", { v: 6, n: 0x00010002000300040005000600070000n }],
    ["::2:3:4:5:6:7:8", { v: 6, n: 0x00000002000300040005000600070008n }],
    ["1:2:3:4:5:6:7", undefined], // seven groups, no "::"
    ["1:2:3:4:5:6:7:8::", undefined], // "::" standing for nothing
    ["1:2:3:4::5:6:7:8", undefined],
    ["1::2::3", undefined],
    ["1:2:3:4:5:6:1.2.3.4", { v: 6, n: 0x00010002000300040005000601020304n }],
    ["::1.2.3.4", { v: 6, n: 0x01020304n }],
    ["::1.2.3", undefined],
    ["::1.2.3.999", undefined],
    ["::ffff:1.2.3.4", { v: 4, n: 0x01020304n }], // IPv4-mapped → IPv4
    ["::ffff:102:304", { v: 4, n: 0x01020304n }],
    ["::fffe:1.2.3.4", { v: 6, n: 0xfffe01020304n }],
    ["1::ffff:1.2.3.4", { v: 6, n: (1n << 112n) | 0xffff01020304n }],
    ["12345::", undefined],
    ["::g", undefined],
    [":", undefined],
    ["", undefined],
    ["banana", undefined],
  ];
  for (const [text, want] of table) {
    test(`${JSON.stringify(text)} → ${want ? `IPv${want.v} ${want.n.toString(16)}` : "not an address"}`, () => {
      expect(parseIp(text)).toEqual(want);
    });
  }
});

describe("CIDR ranges (AZHEXGATE_API_ALLOW, AZHEXGATE_TRUSTED_PROXIES)", () => {
  const good: Array<[string, { text: string; v: 4 | 6; base: bigint; bits: number }]> = [
    ["10.1.2.3/8", { text: "10.1.2.3/8", v: 4, base: 0x0a000000n, bits: 8 }],
    [" 10.0.0.0/8 ", { text: "10.0.0.0/8", v: 4, base: 0x0a000000n, bits: 8 }],
    ["1.2.3.4/0", { text: "1.2.3.4/0", v: 4, base: 0n, bits: 0 }],
    ["1.2.3.4/32", { text: "1.2.3.4/32", v: 4, base: 0x01020304n, bits: 32 }],
    ["1.2.3.4/024", { text: "1.2.3.4/024", v: 4, base: 0x01020300n, bits: 24 }],
    ["1.2.3.4/31", { text: "1.2.3.4/31", v: 4, base: 0x01020304n, bits: 31 }],
    ["1.2.3.5/31", { text: "1.2.3.5/31", v: 4, base: 0x01020304n, bits: 31 }],
    ["203.0.113.7", { text: "203.0.113.7", v: 4, base: 0xcb007107n, bits: 32 }],
    ["2001:db8::1", { text: "2001:db8::1", v: 6, base: 0x20010db8000000000000000000000001n, bits: 128 }],
    ["2001:db8:ff::/32", { text: "2001:db8:ff::/32", v: 6, base: 0x20010db8n << 96n, bits: 32 }],
    ["::/0", { text: "::/0", v: 6, base: 0n, bits: 0 }],
    ["::1/128", { text: "::1/128", v: 6, base: 1n, bits: 128 }],
  ];
  for (const [text, want] of good) {
    test(`${JSON.stringify(text)} is ${want.base.toString(16)}/${want.bits}`, () => {
      expect(parseCidr(text)).toEqual(want);
    });
  }
  const bad = [
    "1.2.3.4/33",
    "1.2.3.4/",
    "/24",
    "1.2.3.4/-1",
    "1.2.3.4/ 8",
    "1.2.3.4/0024",
    "1.2.3.4/8/8",
    "1.2.3.4/x",
    "::/129",
    "::1/1000",
    "::ffff:1.2.3.4/24", // an IPv4-mapped address in IPv6 form: write the IPv4 range
    "::ffff:1.2.3.4",
    "1.2.3.256/8",
    "",
    "banana",
  ];
  for (const text of bad) {
    test(`${JSON.stringify(text)} is refused with a sentence naming it`, () => {
      let err: unknown;
      try {
        parseCidr(text);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(TypeError);
      expect((err as Error).message).toMatch(CIDR_ERROR);
      expect((err as Error).message.startsWith(`"${text}" is not`)).toBe(true);
    });
  }

  test("allow-list membership at the edges of each range, per family", () => {
    const p = createAccessPolicy({ allow: ["10.0.0.0/8", "192.0.2.4/31", "2001:db8::/32", "fd00::/8"] });
    const table: Array<[string, boolean]> = [
      ["10.0.0.0", true],
      ["10.255.255.255", true],
      ["9.255.255.255", false],
      ["11.0.0.0", false],
      ["192.0.2.3", false],
      ["192.0.2.4", true],
      ["192.0.2.5", true],
      ["192.0.2.6", false],
      ["::ffff:10.9.8.7", true], // an IPv4 client seen on a dual-stack socket
      ["2001:db8::", true],
      ["2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true],
      ["2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", false],
      ["2001:db9::", false],
      ["fdff::1", true],
      ["fe00::1", false],
      ["::a00:1", false], // 10.0.0.1 as an IPv4-compatible (not mapped) IPv6 address is IPv6
      ["garbage", false],
      ["", false],
    ];
    for (const [ip, want] of table) expect([ip, p.allowed(ip)]).toEqual([ip, want]);
  });

  test("a range of one family never matches the other; an empty allow-list allows anything", () => {
    expect(createAccessPolicy({ allow: ["0.0.0.0/0"] }).allowed("2001:db8::1")).toBe(false);
    expect(createAccessPolicy({ allow: ["0.0.0.0/0"] }).allowed("203.0.113.9")).toBe(true);
    expect(createAccessPolicy({ allow: ["::/0"] }).allowed("203.0.113.9")).toBe(false);
    expect(createAccessPolicy({ allow: ["::/0"] }).allowed("::ffff:203.0.113.9")).toBe(false);
    expect(createAccessPolicy({ allow: [] }).allowed("garbage")).toBe(true);
    expect(() => createAccessPolicy({ allow: ["10.0.0.0/8", "1.2.3.4/"] })).toThrow('"1.2.3.4/" is not a CIDR range');
    expect(() => createAccessPolicy({ trustedProxies: ["10.0.0.0/33"] })).toThrow('"10.0.0.0/33" is not a CIDR range');
  });
});

describe("the client behind trusted proxies (X-Forwarded-For hop walk)", () => {
  const p = createAccessPolicy({ trustedProxies: ["10.0.0.0/8", "2001:db8:f::/48"] });
  const table: Array<[string, string | null, string | undefined]> = [
    // peer, X-Forwarded-For, client
    ["203.0.113.1", "198.51.100.7", "203.0.113.1"], // untrusted peer: its header is a lie
    ["garbage", "198.51.100.7", "garbage"],
    ["10.0.0.1", null, "10.0.0.1"],
    ["10.0.0.1", "", "10.0.0.1"],
    ["10.0.0.1", " , ,", "10.0.0.1"], // no hops at all
    ["10.0.0.1", "198.51.100.7", "198.51.100.7"],
    ["10.0.0.1", " 198.51.100.7 ", "198.51.100.7"],
    ["10.0.0.1", "198.51.100.7,,", "198.51.100.7"],
    ["10.0.0.1", "1.1.1.1, 198.51.100.7", "198.51.100.7"], // the left entry is the client's claim
    ["10.0.0.1", "1.1.1.1, 198.51.100.7, 10.2.2.2, 10.3.3.3", "198.51.100.7"], // two trusted hops skipped
    ["10.0.0.1", "10.4.4.4, 10.2.2.2", "10.4.4.4"], // every hop trusted: the left-most
    ["10.0.0.1", "10.4.4.4", "10.4.4.4"],
    ["10.0.0.1", "garbage, 198.51.100.7", "198.51.100.7"], // never read past the client
    ["10.0.0.1", "198.51.100.7, garbage", undefined], // a trusted proxy sent nonsense: no client
    ["10.0.0.1", "198.51.100.7, 10.2.2.2, garbage", undefined],
    ["10.0.0.1", "198.51.100.7:4431", "198.51.100.7"],
    ["10.0.0.1", "198.51.100.7:", undefined],
    ["10.0.0.1", "[2001:db8::5]", "2001:db8::5"],
    ["10.0.0.1", "[2001:db8::5]:443", "2001:db8::5"],
    ["10.0.0.1", "[2001:db8::5]x", undefined],
    ["10.0.0.1", "x[2001:db8::5]:443", undefined], // junk before the bracket
    ["10.0.0.1", "x198.51.100.7:80", undefined], // junk before the address
    ["10.0.0.1", "198.51.100.7:80x", undefined], // junk after the port
    ["10.0.0.1", "2001:db8::5", "2001:db8::5"], // a bare IPv6 address: its last group is not a port
    ["10.0.0.1", "2001:db8::5:80", "2001:db8::5:80"],
    ["10.0.0.1", "198.51.100.7, [2001:db8:f::9]:80", "198.51.100.7"], // an IPv6 proxy in the list
    ["2001:db8:f::1", "198.51.100.7", "198.51.100.7"], // an IPv6 trusted peer
    ["[2001:db8:f::1]", "198.51.100.7", "198.51.100.7"],
    ["::ffff:10.0.0.1", "198.51.100.7", "198.51.100.7"], // a mapped peer is the IPv4 proxy
    ["2001:db8:e::1", "198.51.100.7", "2001:db8:e::1"],
  ];
  for (const [peer, xff, want] of table) {
    test(`peer ${peer}, X-Forwarded-For ${JSON.stringify(xff)} → ${want ?? "no client"}`, () => {
      expect(p.clientIp(peer, xff)).toBe(want);
    });
  }

  test("trusts: only peers inside a trusted range", () => {
    expect([p.trusts("10.9.9.9"), p.trusts("::ffff:10.9.9.9"), p.trusts("2001:db8:f:1::1"), p.trusts("11.0.0.1"), p.trusts("2001:db8:e::1"), p.trusts("garbage")]).toEqual([
      true,
      true,
      true,
      false,
      false,
      false,
    ]);
    const none = createAccessPolicy();
    expect(none.trusts("127.0.0.1")).toBe(false);
    expect(none.clientIp("127.0.0.1", "198.51.100.7")).toBe("127.0.0.1");
  });
});

describe("the failed-authentication limiter", () => {
  test("the limit needs a sane configuration", () => {
    for (const bad of [{ maxFailures: 0 }, { maxFailures: 0.5 }, { maxFailures: Number.NaN }, { windowMs: 0 }, { windowMs: Number.NaN }]) {
      expect(() => createAccessPolicy(bad)).toThrow("the failed-auth limit needs maxFailures ≥ 1 and windowMs ≥ 1");
    }
    expect(() => createAccessPolicy({ maxFailures: 1, windowMs: 1 })).not.toThrow();
  });

  test("the default: 10 failures a minute; the 10th limits, Retry-After counts down from the first", () => {
    let now = 5_000_000;
    const p = createAccessPolicy({ now: () => now });
    for (let i = 0; i < 9; i++) p.recordFailure("192.0.2.1");
    expect(p.retryAfter("192.0.2.1")).toBe(0);
    p.recordFailure("192.0.2.1");
    expect(p.retryAfter("192.0.2.1")).toBe(60);
    now += 59_999;
    expect(p.retryAfter("192.0.2.1")).toBe(1);
    now += 1;
    expect(p.retryAfter("192.0.2.1")).toBe(0); // exactly one window later the failures are forgotten
  });

  test("more failures than the limit: Retry-After follows the oldest failure that still counts", () => {
    let now = 0;
    const p = createAccessPolicy({ maxFailures: 3, windowMs: 60_000, now: () => now });
    for (let i = 0; i < 5; i++) {
      p.recordFailure("192.0.2.1");
      now += 10_000;
    }
    // failures at 0, 10, 20, 30, 40 s; now 50 s; the third-latest (20 s) frees a guess at 80 s
    expect(p.retryAfter("192.0.2.1")).toBe(30);
    now = 79_000;
    expect(p.retryAfter("192.0.2.1")).toBe(1);
    now = 80_000;
    expect(p.retryAfter("192.0.2.1")).toBe(0);
  });

  test("clients are counted apart: IPv4 per address, IPv6 per /64, unparseable per text", () => {
    const p = createAccessPolicy({ maxFailures: 1, now: () => 0 });
    p.recordFailure("192.0.2.1");
    p.recordFailure("2001:db8:1:2::1");
    p.recordFailure("weird");
    expect(p.retryAfter("192.0.2.1")).toBe(60);
    expect(p.retryAfter("::ffff:192.0.2.1")).toBe(60); // the same client on a dual-stack socket
    expect(p.retryAfter("192.0.2.2")).toBe(0);
    expect(p.retryAfter("0.0.0.0")).toBe(0);
    expect(p.retryAfter("2001:db8:1:2:ffff::9")).toBe(60);
    expect(p.retryAfter("2001:db8:1:3::1")).toBe(0);
    expect(p.retryAfter("::")).toBe(0);
    expect(p.retryAfter("weird")).toBe(60);
    expect(p.retryAfter("other")).toBe(0);
  });

  test("memory is bounded: past maxTracked the client that failed least recently is forgotten", () => {
    let now = 0;
    const p = createAccessPolicy({ maxFailures: 1, windowMs: 600_000, maxTracked: 2, now: () => now });
    p.recordFailure("192.0.2.1"); // A
    now += 1000;
    p.recordFailure("192.0.2.2"); // B
    expect([p.retryAfter("192.0.2.1") > 0, p.retryAfter("192.0.2.2") > 0]).toEqual([true, true]); // two fit
    now += 1000;
    p.recordFailure("192.0.2.1"); // A again: now the most recent
    now += 1000;
    p.recordFailure("192.0.2.3"); // C pushes out B, not A
    expect([p.retryAfter("192.0.2.1") > 0, p.retryAfter("192.0.2.2"), p.retryAfter("192.0.2.3") > 0]).toEqual([true, 0, true]);
  });
});
