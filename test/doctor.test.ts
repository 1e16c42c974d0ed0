/**
 * `azhexgate doctor` end to end against real local gateways (relay emulator, SQLite registry),
 * as a child process through src/cli.ts and in process: a healthy gateway passes every check;
 * TLS in front of the gateway (a TLS-terminating loopback front with openssl certificates) passes
 * with --ca, fails without it, and fails naming `*.{domain}` when the certificate lacks the
 * wildcard; a wrong key, a relay that is down, a gateway that is not ready and an API URL on an IP
 * address each fail at the step that is broken — and the key never appears in the output.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { resolveGatewayConfig } from "../src/config.ts";
import { createLocalBinding } from "../src/control/local.ts";
import { runDoctor } from "../src/doctor/run.ts";
import { parseTarget } from "../src/doctor/target.ts";
import { fetchCertificate, judgeCertificate } from "../src/doctor/tls.ts";
import type { CheckResult } from "../src/doctor/types.ts";
import { startEmulator, type EmulatorHandle, type EmulatorOptions } from "../src/emulator/server.ts";
import { startGatewayApp, type GatewayApp } from "../src/gateway/app.ts";
import { silentLogger } from "../src/log.ts";
import { API_KEY, killAll, spawnCli, startGatewayChild } from "./support/cli-proc.ts";
import { makeCert, startTlsFront, writeTemp, type TlsFront } from "./support/tls-front.ts";

const KEY = "doctor-test-key-0123456789abcdefghij";
const ALL = ["dns.apex", "dns.api", "dns.wildcard", "tls", "health", "ready", "api_key", "tunnel.create", "tunnel.listen", "tunnel.roundtrip", "tunnel.delete"];
const TUNNEL = ["tunnel.create", "tunnel.listen", "tunnel.roundtrip", "tunnel.delete"];

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  await killAll();
  for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => {});
});

interface Gw {
  app: GatewayApp;
  relay: EmulatorHandle;
  port: number;
}

/** A gateway app in this process on its own relay emulator (so a test can stop the relay). */
async function startGw(o: { baseDomain?: string; publicScheme?: "http" | "https"; relay?: EmulatorOptions; flags?: Record<string, string> } = {}): Promise<Gw> {
  const relay = await startEmulator(o.relay);
  const config = resolveGatewayConfig(
    { port: "0", host: "127.0.0.1", "base-domain": o.baseDomain ?? "localhost", "public-scheme": o.publicScheme ?? "http", registry: ":memory:", ...o.flags },
    { AZHEXGATE_API_KEYS: KEY },
  );
  const app = await startGatewayApp({ config, env: {}, log: silentLogger, binding: createLocalBinding(relay) });
  cleanups.push(() => relay.stop(), () => app.stop());
  return { app, relay, port: app.gateway.port };
}

/** Runs doctor in this process; returns the results and every output line. */
async function doctor(apiUrl: string, o: { apiKey?: string; ca?: string; timeoutMs?: number } = {}) {
  const lines: string[] = [];
  const { exitCode, results } = await runDoctor({ target: parseTarget(apiUrl), apiUrl, apiKey: o.apiKey, ca: o.ca, timeoutMs: o.timeoutMs ?? 10_000, json: false, write: (l) => lines.push(l) });
  const by = (name: string) => {
    const r = results.find((x) => x.name === name);
    if (!r) throw new Error(`no check ${name} in:\n${lines.join("\n")}`);
    return r;
  };
  return { exitCode, results, lines, text: lines.join("\n"), by };
}

const statuses = (results: CheckResult[]) => Object.fromEntries(results.map((r) => [r.name, r.status]));

async function tunnelsOf(apiBase: string, init: RequestInit = {}): Promise<unknown[]> {
  const res = await fetch(`${apiBase}/api/tunnels`, { headers: { "x-azhexgate-apikey": KEY }, ...init });
  return ((await res.json()) as { tunnels: unknown[] }).tunnels;
}

describe("azhexgate doctor as a child process", () => {
  test("a healthy local gateway: every check listed in order, all pass, exit 0, the tunnel is gone afterwards", async () => {
    const gw = await startGatewayChild();
    const child = spawnCli(["doctor", "--api-url", gw.apiUrl], { env: { AZHEXGATE_API_KEY: API_KEY } });
    expect(await child.exit(60_000)).toBe(0);
    const out = child.text().out;
    const lines = child.out.filter((l) => /^[✓✗!-] /.test(l));
    expect(lines.map((l) => l.slice(2).split(/\s+/)[0])).toEqual(ALL);
    for (const l of lines) expect(l.startsWith("✓") || l.startsWith("- tls")).toBe(true);
    expect(out).toMatch(/tunnel\.roundtrip .*expected answer/);
    expect(out).toContain("No check failed: 10 passed, 0 failed, 1 skipped");
    expect(out + child.text().err).not.toContain(API_KEY);
    // the ephemeral tunnel doctor created was deleted
    const left = await fetch(`${gw.apiUrl}/api/tunnels`, { headers: { "x-azhexgate-apikey": API_KEY } }).then((r) => r.json());
    expect(left).toEqual({ tunnels: [] });
  }, 90_000);

  test("--json: one object per check with name, status, ok, detail, fix, ms, then a summary", async () => {
    const gw = await startGatewayChild();
    const child = spawnCli(["doctor", "--api-url", gw.apiUrl, "--api-key", API_KEY, "--json"]);
    expect(await child.exit(60_000)).toBe(0);
    const events = child.events();
    expect(events).toHaveLength(child.out.filter((l) => l.trim()).length); // every line is JSON
    const checks = events.filter((e) => e.event === "check");
    expect(checks.map((e) => e.name)).toEqual(ALL);
    for (const c of checks) {
      expect(Object.keys(c).sort()).toEqual(["detail", "event", "fix", "ms", "name", "ok", "status"]);
      expect(c.ok).toBe(true);
      expect(typeof c.ms).toBe("number");
    }
    expect(events.at(-1)).toMatchObject({ event: "summary", ok: true, failed: 0, passed: 10, skipped: 1, exit_code: 0 });
    expect(child.text().out).not.toContain(API_KEY);
    expect(child.text().out).not.toMatch(/sig=(?!REDACTED)/i); // no listener token either
  }, 90_000);

  test("a wrong key fails at the key step (exit 1), the tunnel steps are skipped, the key is not echoed", async () => {
    const gw = await startGatewayChild();
    const wrong = "wrong-key-do-not-print-0123456789";
    const child = spawnCli(["doctor", "--api-url", gw.apiUrl], { env: { AZHEXGATE_API_KEY: wrong } });
    expect(await child.exit(60_000)).toBe(1);
    const { out, err } = child.text();
    expect(out).toMatch(/^✗ api_key .*401: API key rejected$/m);
    expect(out).toMatch(/^ {2}fix: Check --api-key \/ AZHEXGATE_API_KEY/m);
    for (const n of TUNNEL) expect(out).toMatch(new RegExp(`^- ${n.replace(".", "\\.")} +not checked: the API key check failed`, "m"));
    expect(out).toMatch(/^✓ ready /m);
    expect(out + err).not.toContain(wrong);
    expect(out).toContain("Some checks failed");
  }, 90_000);

  test("bad flags exit 2 with one line on stderr", async () => {
    const cases: Array<[string[], RegExp]> = [
      [["doctor", "--api-url", "http://localhost:1", "--bogus"], /unknown option "--bogus"/],
      [["doctor"], /needs the gateway's management API/],
      [["doctor", "--api-url", "ftp://example.com"], /must start with https:\/\//],
      [["doctor", "--api-url", "http://localhost:1", "--timeout", "soon"], /--timeout must be a number/],
      [["doctor", "--api-url", "https://localhost:1", "--ca", "/nonexistent/ca.pem"], /cannot read the --ca file/],
    ];
    const children = cases.map(([args]) => spawnCli(args));
    for (const [i, c] of children.entries()) {
      expect(await c.exit(30_000)).toBe(2);
      const err = c.text().err.trim();
      expect(err.split("\n")).toHaveLength(1);
      expect(err).toMatch(cases[i]![1]);
      expect(c.text().out).toBe("");
    }
  }, 90_000);
});

describe("TLS in front of the gateway", () => {
  async function tlsSetup(names: string[]): Promise<{ gw: Gw; front: TlsFront; apiUrl: string; caFile: string; cert: string }> {
    const gw = await startGw({ baseDomain: "gw.localhost", publicScheme: "https" });
    const { cert, key } = makeCert(names);
    const front = startTlsFront({ cert, key, target: { hostname: "127.0.0.1", port: gw.port } });
    cleanups.push(() => front.stop());
    return { gw, front, apiUrl: `https://api.gw.localhost:${front.port}`, caFile: writeTemp("ca.pem", cert), cert };
  }

  test("a certificate for the API host and *.{domain}, trusted with --ca: every check passes (child process)", async () => {
    const { apiUrl, caFile, gw } = await tlsSetup(["gw.localhost", "*.gw.localhost", "api.gw.localhost"]);
    const child = spawnCli(["doctor", "--api-url", apiUrl, "--ca", caFile, "--json"], { env: { AZHEXGATE_API_KEY: KEY } });
    expect(await child.exit(60_000)).toBe(0);
    const checks = child.events().filter((e) => e.event === "check");
    expect(checks.map((c) => [c.name, c.status])).toEqual([
      ["dns.apex", "pass"],
      ["dns.api", "pass"],
      ["dns.wildcard", "pass"],
      ["tls.api", "pass"],
      ["tls.wildcard", "pass"],
      ["health", "pass"],
      ["ready", "pass"],
      ["api_key", "pass"],
      ["tunnel.create", "pass"],
      ["tunnel.listen", "pass"],
      ["tunnel.roundtrip", "pass"],
      ["tunnel.delete", "pass"],
    ]);
    expect(String(checks.find((c) => c.name === "tls.wildcard")!.detail)).toContain("*.gw.localhost");
    expect(String(checks.find((c) => c.name === "tunnel.roundtrip")!.detail)).toMatch(/^GET https:\/\/[a-z2-7]{13}\.gw\.localhost:\d+\//);
    expect(await tunnelsOf(`http://api.gw.localhost:${gw.port}`)).toEqual([]);
  }, 90_000);

  test("the same front without --ca: the certificate is not trusted, nothing is sent with the key, exit 1", async () => {
    const { apiUrl, gw } = await tlsSetup(["gw.localhost", "*.gw.localhost", "api.gw.localhost"]);
    const d = await doctor(apiUrl, { apiKey: KEY });
    expect(d.exitCode).toBe(1);
    expect(d.by("tls.api").status).toBe("fail");
    expect(d.by("tls.api").detail).toMatch(/not trusted: DEPTH_ZERO_SELF_SIGNED_CERT/);
    expect(d.by("tls.api").fix).toContain("--ca FILE");
    for (const n of ["health", "ready", "api_key", ...TUNNEL]) expect(d.by(n).status).toBe("skip");
    expect(await tunnelsOf(`http://api.gw.localhost:${gw.port}`)).toEqual([]);
  }, 60_000);

  test("a certificate without the wildcard: the TLS check names *.{domain}; no round trip; the tunnel is still deleted", async () => {
    const { apiUrl, cert, gw } = await tlsSetup(["gw.localhost", "api.gw.localhost"]);
    const d = await doctor(apiUrl, { apiKey: KEY, ca: cert });
    expect(d.exitCode).toBe(1);
    expect(d.by("tls.api").status).toBe("pass");
    const w = d.by("tls.wildcard");
    expect(w.status).toBe("fail");
    expect(w.detail).toMatch(/covers gw\.localhost, api\.gw\.localhost but not \*\.gw\.localhost/);
    expect(w.fix).toContain("*.gw.localhost");
    expect(statuses(d.results)).toMatchObject({ health: "pass", api_key: "pass", "tunnel.create": "pass", "tunnel.listen": "pass", "tunnel.roundtrip": "skip", "tunnel.delete": "pass" });
    expect(d.by("tunnel.roundtrip").detail).toContain("certificate for *.gw.localhost");
    expect(d.text).toMatch(/^✗ tls\.wildcard .*\*\.gw\.localhost/m);
    expect(await tunnelsOf(`http://api.gw.localhost:${gw.port}`)).toEqual([]);
  }, 60_000);
});

describe("broken gateways", () => {
  test("relay down: the listener step fails naming the relay, the round trip is skipped, the tunnel is deleted", async () => {
    const gw = await startGw();
    const relayUrl = `ws://${gw.relay.endpoint.host}`;
    await gw.relay.stop();
    const d = await doctor(`http://localhost:${gw.port}`, { apiKey: KEY });
    expect(d.exitCode).toBe(1);
    expect(statuses(d.results)).toMatchObject({ health: "pass", ready: "pass", api_key: "pass", "tunnel.create": "pass", "tunnel.listen": "fail", "tunnel.roundtrip": "skip", "tunnel.delete": "pass" });
    const l = d.by("tunnel.listen");
    expect(l.detail).toContain(`could not connect to the relay at ${relayUrl}`);
    expect(l.detail).toContain("connection refused");
    expect(l.fix).toContain(`outbound ws (TCP ${new URL(relayUrl.replace("ws", "http")).port}) to 127.0.0.1`);
    expect(d.by("tunnel.roundtrip").detail).toContain("the listener is not connected");
    expect(await tunnelsOf(`http://localhost:${gw.port}`)).toEqual([]);
    expect(d.text).not.toContain(KEY);
  }, 60_000);

  test("the relay refuses the rendezvous: the listener connects, the round trip fails naming tunnel_offline", async () => {
    const gw = await startGw({ relay: { acceptTimeoutMs: 1500 } });
    gw.relay.faults.refuseAccepts(undefined, 503);
    const d = await doctor(`http://localhost:${gw.port}`, { apiKey: KEY });
    expect(d.exitCode).toBe(1);
    expect(statuses(d.results)).toMatchObject({ "tunnel.create": "pass", "tunnel.listen": "pass", "tunnel.roundtrip": "fail", "tunnel.delete": "pass" });
    const r = d.by("tunnel.roundtrip");
    expect(r.detail).toMatch(/^GET http:\/\/[a-z2-7]{13}\.localhost:\d+\/… → 502 tunnel_offline/);
    expect(r.fix).toContain("sender credential");
    expect(d.text).toMatch(/^✗ tunnel\.roundtrip /m);
    expect(await tunnelsOf(`http://localhost:${gw.port}`)).toEqual([]);
  }, 60_000);

  test("not ready: /readyz 503 and its reason are shown, the tunnel steps are skipped", async () => {
    const gw = await startGw();
    await gw.app.registry.close(); // the registry is gone: the gateway runs but cannot serve
    const probe = await fetch(`http://localhost:${gw.port}/readyz`);
    expect(probe.status).toBe(503);
    const body = (await probe.text()).trim();
    // the gateway answers JSON {ready, reason}; doctor shows the reason itself
    const reason = body.startsWith("{") ? (JSON.parse(body) as { reason: string }).reason : body.split("\n")[0]!;
    const d = await doctor(`http://localhost:${gw.port}`, { apiKey: KEY });
    expect(d.exitCode).toBe(1);
    expect(d.by("health").status).toBe("pass");
    const r = d.by("ready");
    expect(r.status).toBe("fail");
    expect(r.detail).toBe(`GET /readyz → 503: ${reason}`);
    expect(r.fix).toContain("reason");
    for (const n of TUNNEL) expect(d.by(n).detail).toBe("not checked: the gateway is not ready");
    expect(d.text).toMatch(/^✗ ready +GET \/readyz → 503/m);
  }, 60_000);

  test("nothing listening: /healthz fails with a connection error and the rest is skipped", async () => {
    const gw = await startGw();
    const port = gw.port;
    await gw.app.stop();
    const d = await doctor(`http://localhost:${port}`, { apiKey: KEY, timeoutMs: 5000 });
    expect(d.exitCode).toBe(1);
    expect(d.by("health").detail).toContain("connection refused");
    for (const n of ["ready", "api_key", ...TUNNEL]) expect(d.by(n).status).toBe("skip");
  }, 60_000);

  test("an address outside the API allow-list: the key step says so (403) and names the setting", async () => {
    const gw = await startGw({ flags: { "allow-cidr": "203.0.113.0/24" } });
    const d = await doctor(`http://localhost:${gw.port}`, { apiKey: KEY });
    expect(d.exitCode).toBe(1);
    const k = d.by("api_key");
    expect(k.detail).toContain("403 forbidden_network: the management API does not accept calls from this address");
    expect(k.fix).toContain("AZHEXGATE_API_ALLOW_CIDRS");
    for (const n of TUNNEL) expect(d.by(n).status).toBe("skip");
  }, 60_000);

  test("an API URL on an IP address: DNS is skipped and the key step says to use the base domain", async () => {
    const gw = await startGw();
    const d = await doctor(`http://127.0.0.1:${gw.port}`, { apiKey: KEY });
    expect(d.exitCode).toBe(1);
    expect(d.by("dns").status).toBe("skip");
    expect(d.by("health").status).toBe("pass");
    const k = d.by("api_key");
    expect(k.status).toBe("fail");
    expect(k.detail).toContain("does not serve its management API on this host");
    expect(k.fix).toContain("base domain");
  }, 60_000);
});

describe("certificate dates (a real served certificate, judged at other times)", () => {
  test("expired, not yet valid, expiring within 14 days, and fine", async () => {
    const gw = await startGw({ baseDomain: "gw.localhost" });
    const { cert, key } = makeCert(["gw.localhost", "*.gw.localhost"]);
    const front = startTlsFront({ cert, key, target: { hostname: "127.0.0.1", port: gw.port } });
    cleanups.push(() => front.stop());
    const served = await fetchCertificate("gw.localhost", front.port, cert, 10_000);
    expect(served.trusted).toBe(true);
    const from = Date.parse(served.cert.valid_from);
    const until = Date.parse(served.cert.valid_to);
    const day = 86_400_000;
    const at = (now: number) => judgeCertificate("tls.api", "gw.localhost", "gw.localhost", served, true, now);
    expect(at(until + day)).toMatchObject({ status: "fail", detail: expect.stringContaining("expired on") });
    expect(at(from - day)).toMatchObject({ status: "fail", detail: expect.stringContaining("is not valid before") });
    expect(at(until - 3 * day)).toMatchObject({ status: "warn", detail: expect.stringContaining("expires in 3 day(s)") });
    expect(at(from + day).status).toBe("pass");
    const other = judgeCertificate("tls.wildcard", "x.other.localhost", "*.other.localhost", served, true, from + day);
    expect(other).toMatchObject({ status: "fail", detail: "the certificate served for x.other.localhost covers gw.localhost, *.gw.localhost but not *.other.localhost" });
  }, 60_000);
});

describe("API URL → where doctor looks", () => {
  test("api.{domain} and the apex give the same base domain; IPs have none", () => {
    const a = parseTarget("https://api.example.com/api/", "probe");
    expect(a).toMatchObject({ base: "https://api.example.com", domain: "example.com", apexHost: "example.com", apiHost: "api.example.com", probeHost: "probe.example.com", port: 443, local: false });
    expect(parseTarget("https://example.com:8443", "p")).toMatchObject({ domain: "example.com", port: 8443, portSuffix: ":8443" });
    expect(parseTarget("http://api.localhost:8080", "p")).toMatchObject({ domain: "localhost", local: true });
    expect(parseTarget("http://localhost:8080", "p")).toMatchObject({ domain: "localhost", apiHost: "api.localhost" });
    const ip = parseTarget("http://[::1]:8080", "p");
    expect(ip).toMatchObject({ isIp: true, host: "::1", local: true });
    expect(ip.domain).toBeUndefined();
    expect(() => parseTarget("https://user:pw@api.example.com")).toThrow(/user name or password/);
  });
});
