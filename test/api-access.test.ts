/**
 * Network access to the management API: CIDR parsing and matching (IPv4 / IPv6 / mapped),
 * X-Forwarded-For trusted only from trusted proxies, and the failed-auth limiter (429 + Retry-After),
 * both as pure functions and over a real socket.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { createAccessPolicy, parseCidr, parseIp } from "../src/api/access.ts";
import { assertNoSecrets, KEY_A, startApiStack, type ApiStack } from "./support/api-stack.ts";

describe("addresses and CIDRs", () => {
  test("parses IPv4, IPv6 (compressed, embedded IPv4, zone, brackets), maps ::ffff:a.b.c.d to IPv4", () => {
    expect(parseIp("10.1.2.3")).toEqual({ v: 4, n: 0x0a010203n });
    expect(parseIp("::1")).toEqual({ v: 6, n: 1n });
    expect(parseIp("[2001:db8::1]")).toEqual({ v: 6, n: 0x20010db8000000000000000000000001n });
    expect(parseIp("fe80::1%eth0")).toEqual({ v: 6, n: 0xfe800000000000000000000000000001n });
    expect(parseIp("::ffff:127.0.0.1")).toEqual({ v: 4, n: 0x7f000001n });
    expect(parseIp("64:ff9b::192.0.2.33")?.n).toBe(0x0064ff9b0000000000000000c0000221n);
    for (const bad of ["", "1.2.3", "1.2.3.256", "1.2.3.4.5", "::1::", "1:2:3:4:5:6:7:8:9", "g::1", "12345::", "abc", "1.2.3.-1"]) {
      expect(parseIp(bad)).toBeUndefined();
    }
  });

  test("CIDR matching, with actionable errors for bad entries", () => {
    const p = createAccessPolicy({ allow: ["10.0.0.0/8", "203.0.113.7", "2001:db8::/32", "::1/128"] });
    expect(p.allowed("10.255.1.1")).toBe(true);
    expect(p.allowed("11.0.0.1")).toBe(false);
    expect(p.allowed("203.0.113.7")).toBe(true);
    expect(p.allowed("203.0.113.8")).toBe(false);
    expect(p.allowed("2001:db8:ffff::1")).toBe(true);
    expect(p.allowed("2001:db9::1")).toBe(false);
    expect(p.allowed("::1")).toBe(true);
    expect(p.allowed("::ffff:10.0.0.1")).toBe(true);
    expect(p.allowed("not-an-ip")).toBe(false);
    expect(createAccessPolicy({ allow: ["0.0.0.0/0"] }).allowed("::1")).toBe(false);
    expect(createAccessPolicy({ allow: ["::/0"] }).allowed("2001:db8::5")).toBe(true);
    expect(createAccessPolicy().allowed("192.0.2.1")).toBe(true);
    expect(parseCidr("10.1.2.3/8").base).toBe(0x0a000000n);
    for (const bad of ["10.0.0.0/33", "2001:db8::/129", "10.0.0.0/x", "banana", "10.0.0.0/8/8", "::ffff:1.2.3.4/120"]) {
      expect(() => parseCidr(bad)).toThrow(/is not a CIDR range; write e\.g\./);
    }
  });

  test("X-Forwarded-For counts only from trusted proxies: the right-most untrusted hop wins", () => {
    const p = createAccessPolicy({ trustedProxies: ["127.0.0.0/8", "10.0.0.0/8"] });
    expect(p.clientIp("198.51.100.1", "203.0.113.5")).toBe("198.51.100.1"); // untrusted peer: header ignored
    expect(p.clientIp("127.0.0.1", null)).toBe("127.0.0.1");
    expect(p.clientIp("127.0.0.1", "203.0.113.5")).toBe("203.0.113.5");
    expect(p.clientIp("127.0.0.1", "6.6.6.6, 203.0.113.5, 10.1.1.1")).toBe("203.0.113.5"); // spoofed left entry ignored
    expect(p.clientIp("127.0.0.1", "203.0.113.5:51234")).toBe("203.0.113.5"); // App Service adds ports
    expect(p.clientIp("127.0.0.1", "[2001:db8::7]:443, 10.0.0.2")).toBe("2001:db8::7");
    expect(p.clientIp("::ffff:127.0.0.1", "2001:db8::9")).toBe("2001:db8::9");
    expect(p.clientIp("127.0.0.1", "10.0.0.3, 10.0.0.2")).toBe("10.0.0.3"); // all trusted: the left-most
    expect(p.clientIp("127.0.0.1", "203.0.113.5, garbage")).toBeUndefined();
  });

  test("the limiter: N failures per window, Retry-After from the oldest, IPv6 per /64, bounded memory", () => {
    let now = 1_000_000;
    const p = createAccessPolicy({ maxFailures: 3, windowMs: 60_000, maxTracked: 2, now: () => now });
    for (let i = 0; i < 3; i++) {
      expect(p.retryAfter("192.0.2.1")).toBe(0);
      p.recordFailure("192.0.2.1");
      now += 10_000;
    }
    expect(p.retryAfter("192.0.2.1")).toBe(30); // oldest at t0, now t0+30s → 30 s left
    expect(p.retryAfter("192.0.2.2")).toBe(0);
    now += 30_000;
    expect(p.retryAfter("192.0.2.1")).toBe(0);
    for (let i = 0; i < 3; i++) p.recordFailure(`2001:db8:1:2::${i + 1}`);
    expect(p.retryAfter("2001:db8:1:2::ffff")).toBeGreaterThan(0);
    expect(p.retryAfter("2001:db8:1:3::1")).toBe(0);
    for (let i = 0; i < 3; i++) p.recordFailure("198.51.100.1");
    for (let i = 0; i < 3; i++) p.recordFailure("198.51.100.2"); // evicts the oldest tracked client
    expect(p.retryAfter("2001:db8:1:2::1")).toBe(0);
    expect(p.retryAfter("198.51.100.2")).toBeGreaterThan(0);
    expect(() => createAccessPolicy({ maxFailures: 0 })).toThrow(/maxFailures/);
  });
});

describe("over HTTP", () => {
  let s: ApiStack | undefined;
  afterEach(async () => {
    if (s) {
      assertNoSecrets(s);
      await s.stop();
    }
    s = undefined;
  });

  test("403 forbidden_network outside the allow-list, even with a valid key; the doc stays public", async () => {
    s = await startApiStack({ access: { allow: ["10.0.0.0/8"] } });
    const r = await s.call("POST", "/api/tunnels", { key: KEY_A });
    expect(r.status).toBe(403);
    expect(r.json.error.code).toBe("forbidden_network");
    expect(r.json.error.message).toContain("allow-list");
    expect((await s.call("GET", "/api/tunnels")).status).toBe(403);
    expect((await s.call("GET", "/api/openapi.json")).status).toBe(200);
    expect(await s.registry.list()).toHaveLength(0);
  });

  test("loopback allowed by CIDR (IPv4 or mapped) passes", async () => {
    s = await startApiStack({ access: { allow: ["127.0.0.0/8", "::1/128"] } });
    expect((await s.call("GET", "/api/tunnels", { key: KEY_A })).status).toBe(200);
  });

  test("X-Forwarded-For: believed from a trusted proxy, ignored from anyone else", async () => {
    s = await startApiStack({ access: { allow: ["203.0.113.0/24"], trustedProxies: ["127.0.0.1/32"] } });
    const via = (xff: string) => s?.call("GET", "/api/tunnels", { key: KEY_A, headers: { "x-forwarded-for": xff } });
    expect((await via("203.0.113.9"))?.status).toBe(200);
    expect((await via("203.0.113.9, 198.51.100.4"))?.status).toBe(403); // the real client is the right-most untrusted hop
    expect((await via("not an address"))?.status).toBe(403);
    expect((await s.call("GET", "/api/tunnels", { key: KEY_A })).status).toBe(403); // no header: the proxy itself

    const direct = await startApiStack({ access: { allow: ["203.0.113.0/24"] } });
    try {
      const r = await direct.call("GET", "/api/tunnels", { key: KEY_A, headers: { "x-forwarded-for": "203.0.113.9" } });
      expect(r.status).toBe(403);
    } finally {
      await direct.stop();
    }
  });

  test("10 failed authentications in a minute → 429 rate_limited with Retry-After for more guesses; a valid key keeps working; clears with time", async () => {
    s = await startApiStack();
    for (let i = 0; i < 10; i++) {
      expect((await s.call("GET", "/api/tunnels", { key: `wrong-key-${i}-xxxxxxxxxxxxxxxx` })).status).toBe(401);
      s.clock.now += 1000;
    }
    const limited = await s.call("GET", "/api/tunnels", { key: "wrong-key-11-xxxxxxxxxxxxxxxx" });
    expect(limited.status).toBe(429);
    expect(limited.json.error.code).toBe("rate_limited");
    expect(limited.headers.get("retry-after")).toBe("50");
    expect(limited.json.error.message).toContain("50 s");
    expect((await s.call("GET", "/api/tunnels")).status).toBe(429); // no key is a failure too
    // the operator behind the same address (NAT, proxy) is not locked out by someone else's guesses
    expect((await s.call("GET", "/api/tunnels", { key: KEY_A })).status).toBe(200);
    s.clock.now += 50_000;
    expect((await s.call("GET", "/api/tunnels", { key: "wrong-key-12-xxxxxxxxxxxxxxxx" })).status).toBe(401);
  });

  test("per client behind a proxy: one client's failures do not limit another", async () => {
    s = await startApiStack({ access: { trustedProxies: ["127.0.0.1/32"], maxFailures: 2 } });
    const from = (ip: string, key: string) => s?.call("GET", "/api/tunnels", { key, headers: { "x-forwarded-for": ip } });
    await from("198.51.100.1", "bad-key-bad-key-bad-key");
    await from("198.51.100.1", "bad-key-bad-key-bad-key");
    expect((await from("198.51.100.1", "bad-key-bad-key-bad-key"))?.status).toBe(429);
    expect((await from("198.51.100.2", "bad-key-bad-key-bad-key"))?.status).toBe(401);
    expect((await from("198.51.100.1", KEY_A))?.status).toBe(200);
  });
});
