/**
 * Client addresses behind the platform's proxy. The gateway listens dual-stack; a tiny Bun proxy on
 * 127.0.0.1 (in AZHEXGATE_TRUSTED_PROXIES) plays the platform front end: it appends the client's
 * address to X-Forwarded-For (after whatever the client sent) and sets X-Forwarded-Proto. Clients
 * reaching the gateway directly come from ::1, which is not trusted. The app behind a real tunnel,
 * the API allow-list, the failed-auth limiter and the access log must all see the real client.
 * With AZHEXGATE_TRUST_FORWARDED_HOST, a trusted proxy's X-Forwarded-Host routes (never an untrusted one's).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startAgent } from "../src/agent/agent.ts";
import { resolveGatewayConfig } from "../src/config.ts";
import { createLocalBinding } from "../src/control/local.ts";
import { startEmulator, type EmulatorHandle } from "../src/emulator/server.ts";
import { startGatewayApp, type GatewayApp } from "../src/gateway/app.ts";
import { resolveNamespace } from "../src/hc/address.ts";
import { createLogger } from "../src/log.ts";

const KEY = "client-address-key-0123456789abcdef";
const CLIENT_A = "203.0.113.7";
const CLIENT_B = "203.0.113.8";

let relay: EmulatorHandle;
let app: GatewayApp;
let origin: ReturnType<typeof Bun.serve>;
let agent: Awaited<ReturnType<typeof startAgent>>;
let tunnelHost: string;
const proxies: Array<ReturnType<typeof Bun.serve>> = [];
const seen: Array<Record<string, string>> = [];
const logs: string[] = [];

/** A proxy on 127.0.0.1 to the gateway on `port` that sets the request's headers with `edit`. */
function proxyTo(port: number, edit: (headers: Headers) => void): string {
  const p = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const url = new URL(req.url);
      const headers = new Headers(req.headers);
      edit(headers);
      const res = await fetch(`http://127.0.0.1:${port}${url.pathname}${url.search}`, { method: req.method, headers, body: req.body });
      return new Response(res.body, { status: res.status, headers: res.headers });
    },
  });
  proxies.push(p);
  return `http://127.0.0.1:${p.port}`;
}

/** A front end that knows its client as `clientIp` and forwards to the gateway. */
function frontEnd(clientIp: string): string {
  return proxyTo(app.gateway.port, (headers) => {
    const prior = headers.get("x-forwarded-for");
    headers.set("x-forwarded-for", prior ? `${prior}, ${clientIp}` : clientIp);
    headers.set("x-forwarded-proto", "https");
  });
}

/** The agent of a tunnel the API created, forwarding to the test's origin. */
const agentFor = (t: Record<string, string>) =>
  startAgent({
    endpoint: resolveNamespace(t.relay_endpoint!),
    hcPath: t.hybrid_connection_name!,
    token: t.listener_token!,
    origin: `http://127.0.0.1:${origin.port}`,
    hostHeader: "rewrite",
  });

beforeAll(async () => {
  relay = await startEmulator();
  const config = resolveGatewayConfig(
    {
      port: "0",
      host: "::",
      "base-domain": "localhost",
      "public-scheme": "http",
      registry: ":memory:",
      "trusted-proxies": "127.0.0.1/32",
      "allow-cidr": "203.0.113.0/24",
    },
    { AZHEXGATE_API_KEYS: KEY },
  );
  app = await startGatewayApp({
    config,
    env: {},
    log: createLogger({ format: "json", level: "info", sink: (l) => logs.push(l) }),
    binding: createLocalBinding(relay),
  });
  origin = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      seen.push(Object.fromEntries(req.headers));
      return new Response("ok");
    },
  });
  const viaA = frontEnd(CLIENT_A);
  const created = await fetch(`${viaA}/api/tunnels`, {
    method: "POST",
    headers: { host: `localhost:${app.gateway.port}`, "x-azhexgate-apikey": KEY, "content-type": "application/json" },
    body: "{}",
  });
  expect(created.status).toBe(201);
  const t = (await created.json()) as Record<string, string>;
  tunnelHost = `${t.id}.localhost:${app.gateway.port}`;
  agent = await agentFor(t);
});

afterAll(async () => {
  await agent?.stop();
  for (const p of proxies) p.stop(true);
  origin?.stop(true);
  await app?.stop();
  await relay?.stop();
});

const spoof = { "x-forwarded-for": "6.6.6.6", "x-real-ip": "6.6.6.6", forwarded: "for=6.6.6.6;proto=https", "x-forwarded-port": "1", "x-client-ip": "6.6.6.6" };
const direct = () => `http://[::1]:${app.gateway.port}`;

describe("the app behind the tunnel", () => {
  test("through the trusted proxy: X-Forwarded-For is the client the proxy saw, the client's spoof is gone", async () => {
    const res = await fetch(`${frontEnd(CLIENT_A)}/whoami`, { headers: { host: tunnelHost, ...spoof } });
    expect(res.status).toBe(200);
    const h = seen.at(-1)!;
    expect(h["x-forwarded-for"]).toBe(CLIENT_A);
    expect(h["x-forwarded-proto"]).toBe("https"); // the trusted proxy said so
    expect(h["x-forwarded-host"]).toBe(tunnelHost);
    for (const gone of ["x-real-ip", "forwarded", "x-forwarded-port", "x-client-ip"]) expect(h[gone]).toBeUndefined();
  });

  test("from an untrusted peer: forwarding headers are the gateway's own, nothing the client sent passes", async () => {
    const res = await fetch(`${direct()}/whoami`, { headers: { host: tunnelHost, ...spoof, "x-forwarded-for": CLIENT_A, "x-forwarded-proto": "https", "x-forwarded-host": "evil.example" } });
    expect(res.status).toBe(200);
    const h = seen.at(-1)!;
    expect(h["x-forwarded-for"]).toBe("::1");
    expect(h["x-forwarded-proto"]).toBe("http");
    expect(h["x-forwarded-host"]).toBe(tunnelHost);
    for (const gone of ["x-real-ip", "forwarded", "x-forwarded-port", "x-client-ip"]) expect(h[gone]).toBeUndefined();
  });
});

describe("the management API", () => {
  const list = (base: string, key: string, extra: Record<string, string> = {}) =>
    fetch(`${base}/api/tunnels`, { headers: { host: `localhost:${app.gateway.port}`, "x-azhexgate-apikey": key, ...extra } });

  test("the allow-list acts on the real client: allowed through the proxy, refused directly even with a spoofed X-Forwarded-For", async () => {
    expect((await list(frontEnd(CLIENT_A), KEY)).status).toBe(200);
    const refused = await list(direct(), KEY, { "x-forwarded-for": CLIENT_A });
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("forbidden_network");
    expect((await list(frontEnd("198.51.100.9"), KEY)).status).toBe(403); // a real client outside the list
    const line = logs.map((l) => JSON.parse(l) as Record<string, unknown>).findLast((l) => l.event === "api request");
    expect(line).toMatchObject({ status: 403, client: "198.51.100.9" });
    expect(String(line?.peer)).toMatch(/127\.0\.0\.1$/); // the TCP peer was the proxy
  });

  test("the limiter counts per real client, and a valid key keeps working from a limited client", async () => {
    const viaA = frontEnd(CLIENT_A);
    const viaB = frontEnd(CLIENT_B);
    for (let i = 0; i < 10; i++) expect((await list(viaA, `wrong-key-${i}-xxxxxxxxxxxxxxxx`)).status).toBe(401);
    expect((await list(viaA, "wrong-key-again-xxxxxxxxxxxxxx")).status).toBe(429);
    expect((await list(viaB, "wrong-key-from-b-xxxxxxxxxxxxx")).status).toBe(401); // another client behind the same proxy
    expect((await list(viaA, KEY)).status).toBe(200);
    const failures = logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.event === "api request" && l.status === 401);
    // (consola collapses identical lines repeated within a second, so not all ten are printed)
    expect(failures.filter((l) => l.client === CLIENT_A).length).toBeGreaterThan(0);
    expect(failures.filter((l) => l.client === CLIENT_B).length).toBe(1);
    expect(failures.every((l) => l.client === CLIENT_A || l.client === CLIENT_B)).toBe(true);
    for (const l of logs) expect(l).not.toContain(KEY);
  });
});

describe("routing on X-Forwarded-Host (AZHEXGATE_TRUST_FORWARDED_HOST)", () => {
  /** A front end that, like Front Door with an origin host header, sends its origin's own name as Host. */
  const rewritingFrontEnd = (port: number, publicHost: string): string =>
    proxyTo(port, (headers) => {
      headers.set("host", "gateway-origin.internal");
      headers.set("x-forwarded-host", publicHost);
      headers.set("x-forwarded-for", CLIENT_A);
    });

  test("off by default: the Host header routes, X-Forwarded-Host is ignored even from a trusted proxy", async () => {
    const res = await fetch(`${rewritingFrontEnd(app.gateway.port, tunnelHost)}/via-fwd-host`);
    expect(res.status).toBe(404);
    expect(res.headers.get("x-azhexgate-error")).toBe("tunnel_not_found");
  });

  test("on: a trusted proxy's X-Forwarded-Host routes (and reaches the app); an untrusted peer's does not", async () => {
    const second = await startGatewayApp({
      config: resolveGatewayConfig(
        { port: "0", host: "::", "base-domain": "localhost", "public-scheme": "http", registry: ":memory:", "trusted-proxies": "127.0.0.1/32" },
        { AZHEXGATE_API_KEYS: KEY, AZHEXGATE_TRUST_FORWARDED_HOST: "true" },
      ),
      env: {},
      log: createLogger({ format: "json", level: "silent", sink: () => {} }),
      binding: createLocalBinding(relay),
    });
    let agent2: Awaited<ReturnType<typeof startAgent>> | undefined;
    try {
      const t = (await (await fetch(`http://localhost:${second.gateway.port}/api/tunnels`, { method: "POST", headers: { "x-azhexgate-apikey": KEY } })).json()) as Record<string, string>;
      agent2 = await agentFor(t);
      const publicHost = `${t.id}.localhost:${second.gateway.port}`;
      const res = await fetch(`${rewritingFrontEnd(second.gateway.port, publicHost)}/via-fwd-host`);
      expect(res.status).toBe(200);
      const h = seen.at(-1)!;
      expect(h["x-forwarded-host"]).toBe(publicHost);
      expect(h["x-forwarded-for"]).toBe(CLIENT_A);
      // the same header straight from an untrusted peer is not believed
      const spoofed = await fetch(`http://[::1]:${second.gateway.port}/x`, { headers: { host: "gateway-origin.internal", "x-forwarded-host": publicHost } });
      expect(spoofed.status).toBe(404);
      expect(spoofed.headers.get("x-azhexgate-error")).toBe("tunnel_not_found");
    } finally {
      await agent2?.stop();
      await second.stop();
    }
  });
});
