/**
 * routeHost: which tunnel a public Host header reaches (issue 18: mutation survivors).
 * A table of hosts a visitor (or an attacker) can send, with the tunnel they must reach or the
 * status they must get. A wrong answer here serves one user's app on another user's name.
 */
import { describe, expect, test } from "bun:test";
import { routeHost } from "../src/gateway/server.ts";
import { GatewayError } from "../src/gateway/errors.ts";

const base = "azhexgate.com";

function outcome(host: string | null, b = base, local = false): string {
  try {
    return `tunnel:${local ? routeHost(host, b, true) : routeHost(host, b)}`; // the default is not local
  } catch (e) {
    if (!(e instanceof GatewayError)) throw e;
    return `${e.status} ${e.code}`;
  }
}

describe("routeHost", () => {
  const table: [string | null, string][] = [
    ["demo.azhexgate.com", "tunnel:demo"],
    ["DEMO.AzHexGate.COM", "tunnel:demo"], // host names are case-insensitive
    ["demo.azhexgate.com.", "tunnel:demo"], // a fully qualified name with its trailing dot
    ["demo.azhexgate.com:443", "tunnel:demo"],
    ["demo.azhexgate.com.:8443", "tunnel:demo"],
    ["azhexgate.com", "tunnel:"], // the apex
    ["AZHEXGATE.COM.", "tunnel:"],
    ["azhexgate.com:80", "tunnel:"],
    ["a.azhexgate.com", "tunnel:a"], // one-character label
    ["a", "404 tunnel_not_found"], // a one-character host is well formed, just not ours
    ["a1-b2.azhexgate.com", "tunnel:a1-b2"],
    [`${"x".repeat(63)}.azhexgate.com`, `tunnel:${"x".repeat(63)}`], // the longest DNS label
    [`${"x".repeat(64)}.azhexgate.com`, "404 tunnel_not_found"],
    ["evilazhexgate.com", "404 tunnel_not_found"], // the base as a suffix without the dot
    ["demo.evilazhexgate.com", "404 tunnel_not_found"],
    ["azhexgate.com.evil.net", "404 tunnel_not_found"],
    ["demo.azhexgate.com.evil.net", "404 tunnel_not_found"],
    ["a.b.azhexgate.com", "404 tunnel_not_found"], // two labels are no tunnel
    ["-demo.azhexgate.com", "400 bad_host"],
    ["demo-.azhexgate.com", "404 tunnel_not_found"],
    [".azhexgate.com", "400 bad_host"],
    ["demo.azhexgate.com..", "400 bad_host"],
    ["demo_x.azhexgate.com", "400 bad_host"],
    ["demo.azhexgate.com, other.azhexgate.com", "400 bad_host"],
    ["demo.azhexgate.com:", "400 bad_host"],
    ["demo.azhexgate.com:123456", "400 bad_host"],
    ["demo.azhexgate.com/x", "400 bad_host"],
    [" demo.azhexgate.com", "400 bad_host"],
    ["demo.azhexgate.com x", "400 bad_host"],
    ["", "400 bad_host"],
    [null, "400 bad_host"],
    ["[::1]:8080", "404 tunnel_not_found"],
    ["127.0.0.1", "404 tunnel_not_found"],
  ];
  for (const [host, want] of table) {
    test(`${JSON.stringify(host)} → ${want}`, () => expect(outcome(host)).toBe(want));
  }

  test("a base domain given in capitals routes the same", () => {
    expect(outcome("demo.azhexgate.com", "AzHexGate.COM")).toBe("tunnel:demo");
    expect(outcome("evilazhexgate.com", "AzHexGate.COM")).toBe("404 tunnel_not_found");
  });

  test("localHosts: a host outside the base is the apex, a bad one is still refused", () => {
    expect(outcome("localhost:3000", base, true)).toBe("tunnel:");
    expect(outcome("127.0.0.1:8080", base, true)).toBe("tunnel:");
    expect(outcome("[::1]", base, true)).toBe("tunnel:");
    expect(outcome("evilazhexgate.com", base, true)).toBe("tunnel:");
    expect(outcome("demo.azhexgate.com", base, true)).toBe("tunnel:demo");
    expect(outcome("a.b.azhexgate.com", base, true)).toBe("404 tunnel_not_found");
    expect(outcome("bad host", base, true)).toBe("400 bad_host");
  });

  test("each refusal says why", () => {
    expect(() => routeHost("bad host", base)).toThrow("The request's Host header is missing or malformed.");
    expect(() => routeHost("evilazhexgate.com", base)).toThrow("No tunnel is served at evilazhexgate.com.");
    expect(() => routeHost("[::1]:8080", base)).toThrow("No tunnel is served at [::1]."); // only the port is cut
  });

  test("the 404 names the host the visitor asked for, normalised", () => {
    expect(() => routeHost("A.B.AzHexGate.com.:80", base)).toThrow("No tunnel is served at a.b.azhexgate.com.");
  });

  test("remembered answers never cross modes or base domains, and stay right past the memo's size", () => {
    // the same host asked with and without localHosts, alternately (the service check and the request do)
    for (let i = 0; i < 3; i++) {
      expect(outcome("localhost:3000", base, true)).toBe("tunnel:");
      expect(outcome("localhost:3000", base, false)).toBe("404 tunnel_not_found");
    }
    expect(outcome("demo.azhexgate.com", base)).toBe("tunnel:demo");
    expect(outcome("demo.azhexgate.com", "other.example")).toBe("404 tunnel_not_found");
    expect(outcome("demo.other.example", "other.example")).toBe("tunnel:demo");
    expect(outcome("demo.azhexgate.com", base)).toBe("tunnel:demo");
    // more distinct hosts than the memo holds: every answer still right, the first ones included
    for (let i = 0; i < 1100; i++) expect(routeHost(`t${i}.azhexgate.com`, base)).toBe(`t${i}`);
    expect(routeHost("t0.azhexgate.com", base)).toBe("t0");
    expect(routeHost("t1099.azhexgate.com", base)).toBe("t1099");
    // a refusal is not remembered as an answer
    expect(outcome("bad host", base)).toBe("400 bad_host");
    expect(outcome("bad host", base)).toBe("400 bad_host");
  });
});
