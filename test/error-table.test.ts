/**
 * The public error table end to end (issue 18): every kind in PUBLIC_ERRORS (src/gateway/errors.ts)
 * is reached through a real gateway — with the relay emulator, the real agent and a local app where
 * the failure is theirs, a scripted agent (the project's own listener and Session) where it is a
 * broken agent's — and its status, `X-AzHexGate-Error` code and sentence are checked against the
 * table. The scenarios are a Record over the table's kinds, and a test checks both sets agree at
 * run time: a new kind without a scenario fails typecheck and this file. docs/troubleshooting.md's
 * table must list the same codes with the same statuses.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { startAgent, type AgentHandle } from "../src/agent/agent.ts";
import { startEmulator, type EmulatorHandle } from "../src/emulator/server.ts";
import { type ErrorKind, PUBLIC_ERRORS, publicError } from "../src/gateway/errors.ts";
import { metricsAccessPolicy } from "../src/gateway/metrics-access.ts";
import { hashBasicAuth } from "../src/gateway/policy/basic-auth.ts";
import { createPolicyGate } from "../src/gateway/policy/gate.ts";
import type { TunnelPolicy } from "../src/gateway/policy/types.ts";
import { startGateway, type GatewayHandle, type GatewayOptions, type TunnelRoute } from "../src/gateway/server.ts";
import { createVisitorAuth } from "../src/gateway/visitor-auth.ts";
import { HybridConnectionListener } from "../src/hc/listener.ts";
import { connectSender } from "../src/hc/sender.ts";
import { sasTokenProvider, type TokenProvider } from "../src/hc/tokens.ts";
import { ResetCode } from "../src/tunnel/frame.ts";
import { Session } from "../src/tunnel/session.ts";
import type { TunnelStream } from "../src/tunnel/stream.ts";
import type { WsConnection } from "../src/ws/client.ts";

const LIMITS = { rate: 0, rateMax: 0, streams: 0, streamsMax: 0, bandwidth: 0, bandwidthMax: 0 };
const TOKEN = "metrics-token-for-the-test";

/** What a scenario got: status, error header, the body's error sentence. */
interface Got {
  status: number;
  code: string | null;
  message: string;
}
async function got(res: Response): Promise<Got> {
  const body = (await res.json()) as { error: { message: string } };
  return { status: res.status, code: res.headers.get("x-azhexgate-error"), message: body.error.message };
}

/** A raw HTTP/1.1 exchange (hosts and methods fetch will not send), parsed. */
async function raw(port: number, head: string): Promise<Got> {
  const chunks: Buffer[] = [];
  // read until the answer is complete (its Content-Length) or the socket closes
  const complete = (t: string) => {
    const end = t.indexOf("\r\n\r\n");
    const cl = /\r\ncontent-length: *(\d+)/i.exec(t.slice(0, end));
    return end >= 0 && cl !== null && Buffer.byteLength(t.slice(end + 4)) >= Number(cl[1]);
  };
  const text = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("raw request: no answer within 10 s")), 10_000);
    const done = () => (clearTimeout(t), resolve(Buffer.concat(chunks).toString()));
    void Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        open: (s) => void s.write(head),
        data: (s, d) => {
          chunks.push(Buffer.from(d));
          if (complete(Buffer.concat(chunks).toString())) (s.end(), done());
        },
        close: done,
        error: (_s, e) => (clearTimeout(t), reject(e)),
      },
    }).catch(reject);
  });
  const [top, body = ""] = text.split("\r\n\r\n", 2);
  const lines = top!.split("\r\n");
  const status = Number(lines[0]!.split(" ")[1]);
  const header = lines.find((l) => l.toLowerCase().startsWith("x-azhexgate-error:"));
  let message = "";
  try {
    message = (JSON.parse(body) as { error: { message: string } }).error.message;
  } catch {
    message = body;
  }
  return { status, code: header ? header.slice(header.indexOf(":") + 1).trim() : null, message };
}

/** The table's answer for `kind` with its sentence's arguments. */
function expected(kind: ErrorKind, ...args: unknown[]): Got {
  const e = (publicError as (k: ErrorKind, ...a: unknown[]) => ReturnType<typeof publicError>)(kind, ...args);
  return { status: e.status, code: e.code, message: e.message };
}

let relay: EmulatorHandle;
let tokens: TokenProvider;
let g1: GatewayHandle;
let g2: GatewayHandle;
const agents: AgentHandle[] = [];
const listeners: HybridConnectionListener[] = [];
const apps: Array<{ stop(force?: boolean): unknown }> = [];

const n = 10_000_000 + Math.floor(Math.random() * 80_000_000);
const ID = {
  good: String(n),
  down: String(n + 1),
  garbage: String(n + 2),
  scripted: String(n + 3),
  offline: String(n + 4),
  silent: String(n + 5),
  old: String(n + 6),
  vanish: String(n + 7),
  deny: String(n + 8),
  rate: String(n + 9),
  streams: String(n + 10),
  basic: String(n + 11),
  entra: String(n + 12),
  boom: String(n + 13),
  holder: String(n + 14),
  drain: String(n + 15),
} as const;
const POLICY: Partial<Record<string, TunnelPolicy>> = {
  [ID.deny]: { denyIps: ["203.0.113.0/24"] },
  [ID.rate]: { rateLimit: { perSecond: 0.001, burst: 1 } },
  [ID.streams]: { maxStreams: 1 },
  [ID.basic]: { basicAuth: [hashBasicAuth("ann", "secret")] },
  [ID.entra]: { entra: { tenants: [], groups: [] } },
};
/** Tunnels whose routes the test removes (deleted while a request waits) or holds (resolution in flight). */
let vanished = false;
let drainGate: { hold: Promise<void>; release: () => void; entered: Promise<void>; enter: () => void } | undefined;
/** Per-tunnel hello gates of the scripted `vanish` agent. */
let vanishAccepted: (() => void) | undefined;
let vanishHello: (() => void) | undefined;

const tunnelUrl = (g: GatewayHandle, id: string) => g.tunnelUrl(id);

/** A listener on `hc-{id}` whose rendezvous are given to `onAccept` (a hand-driven agent). */
async function scriptedAgent(id: string, onAccept: (conn: WsConnection) => void): Promise<void> {
  const l = new HybridConnectionListener({ endpoint: relay.endpoint, hcPath: `hc-${id}`, token: tokens });
  l.on("error", () => {});
  l.on("accept", async (msg) => {
    const conn = await l.accept(msg).catch(() => null);
    if (!conn) return;
    conn.on("error", () => {});
    onAccept(conn);
  });
  await l.open();
  listeners.push(l);
}
function serveSession(conn: WsConnection, onStream: (s: TunnelStream) => void, versions?: number[]): Session {
  const session = new Session(conn, { role: "agent", onStream, ...(versions ? { versions } : {}) });
  conn.on("message", (d) => session.handleMessage(d as Uint8Array));
  conn.on("close", () => session.handleClose("closed"));
  return session;
}

/** Answers of the scripted agent on the `scripted` tunnel, by path. */
function scripted(conn: WsConnection): void {
  serveSession(conn, (s) => {
    const path = s.head?.target ?? "/";
    s.discardBody();
    if (path === "/refused") s.reset(ResetCode.REFUSED, "draining");
    else if (path === "/protocol") s.reset(ResetCode.PROTOCOL, "the agent broke the protocol");
    else if (path === "/informational") s.sendResponse({ status: 103, headers: [] });
    else if (path === "/bad-header") (s.sendResponse({ status: 200, headers: [["x-name", "中文"]] }), s.end());
    else if (path === "/lose") conn.close(1011, "agent crashed");
    else if (path === "/hold") (s.sendResponse({ status: 200, headers: [["content-type", "text/plain"]] }), void s.write(new TextEncoder().encode("x")));
    else (s.sendResponse({ status: 200, headers: [] }), s.end());
  });
}

beforeAll(async () => {
  relay = await startEmulator({ hybridConnections: Object.values(ID).map((id) => ({ path: `hc-${id}` })) });
  const key = relay.entities.namespaceRules.get("RootManageSharedAccessKey")!.primaryKey;
  tokens = sasTokenProvider("RootManageSharedAccessKey", key);
  const dial = (hc: string) => connectSender({ endpoint: relay.endpoint, hcPath: hc, token: tokens });

  // the local apps: a good one, one that answers garbage, and a port nothing listens on
  const good = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    development: false,
    websocket: { message() {} },
    async fetch(req, server) {
      const path = new URL(req.url).pathname;
      if (path === "/ws" && server.upgrade(req)) return undefined;
      if (path === "/slow") await Bun.sleep(6000);
      if (path === "/big-response") return new Response("x", { headers: { "x-big": "a".repeat(150_000) } });
      return new Response("ok");
    },
  });
  apps.push(good);
  const garbage = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: {
      // not HTTP at all, or HTTP with a malformed header line
      data: (s, d) => void (s.write(d.toString().startsWith("GET /bad-header ") ? "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n" : "hello, this is not HTTP\r\n\r\n"), s.end()),
    } });
  apps.push(garbage);
  const closed = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const downPort = closed.port!;
  closed.stop(true);

  const origin = (port: number | undefined) => `http://localhost:${port}`;
  const agent = (id: string, port: number | undefined, extra: object = {}) => startAgent({ endpoint: relay.endpoint, hcPath: `hc-${id}`, token: tokens, origin: origin(port), hostHeader: "rewrite", ...extra });
  agents.push(await agent(ID.good, good.port), await agent(ID.down, downPort), await agent(ID.garbage, garbage.port), await agent(ID.old, good.port, { protocolVersions: [1] }));
  for (const id of [ID.deny, ID.rate, ID.streams, ID.basic, ID.entra]) agents.push(await agent(id, good.port));
  await scriptedAgent(ID.scripted, scripted);
  await scriptedAgent(ID.silent, () => {}); // accepts, never says hello
  await scriptedAgent(ID.vanish, (conn) => {
    vanishAccepted?.();
    vanishHello = () => void serveSession(conn, (s) => (s.sendResponse({ status: 200, headers: [] }), s.end()));
  });
  await scriptedAgent(ID.holder, (conn) => {
    const session = serveSession(conn, (s) => {
      s.discardBody();
      s.sendResponse({ status: 200, headers: [["content-type", "text/plain"]] });
      void s.write(new TextEncoder().encode("x"));
      session.goAway();
    });
  });

  const resolveTunnel = (id: string): TunnelRoute | Promise<TunnelRoute | undefined> | undefined => {
    if (id === ID.boom) throw new Error("registry exploded");
    if (id === ID.vanish && vanished) return undefined;
    if (id === ID.drain && drainGate) {
      drainGate.enter();
      return drainGate.hold.then(() => ({ hcPath: `hc-${ID.good}` }));
    }
    return (Object.values(ID) as string[]).includes(id) ? { hcPath: `hc-${id}`, policy: POLICY[id] } : undefined;
  };
  // a trusted-proxy stand-in: the test names the public client's address (metrics, IP rules)
  const client: GatewayOptions["client"] = (req, peer) => ({ address: req.headers.get("x-test-client") ?? peer.address, port: peer.port });
  const visitor = createVisitorAuth({
    oidc: { issuer: "http://127.0.0.1:9/never-fetched", audience: ["api://x"], tenants: [], groups: [], cliScopes: "" },
    visitor: { clientId: "c", clientSecret: "s", cookieKey: new Uint8Array(32).fill(7), sessionSeconds: 3600 },
    apiBase: "http://localhost",
    policyOf: async (id) => POLICY[id],
    tunnelOf: () => undefined,
  });
  g1 = await startGateway({
    baseDomain: "localhost",
    resolveTunnel,
    dial,
    client,
    ttfbMs: 3000,
    pool: { helloMs: 1000, protocolVersions: [2] },
    metricsAccess: metricsAccessPolicy("private", TOKEN, { allowed: () => false }, false),
    admit: createPolicyGate({ limits: LIMITS, refusals: { inc() {} }, visitor: { admit: (req, ctx, entra) => visitor.admit(req, ctx, entra) } }),
  });
  g2 = await startGateway({
    baseDomain: "localhost",
    resolveTunnel,
    dial,
    ttfbMs: 1500,
    pool: { helloMs: 10_000, maxSessions: 1, dialBurst: 10, dialsPerSecond: 10 },
    metricsAccess: metricsAccessPolicy("off", undefined, { allowed: () => false }, false),
    admit: createPolicyGate({ limits: LIMITS, refusals: { inc() {} } }), // no visitor sign-in configured
  });
}, 60_000);

afterAll(async () => {
  for (const l of listeners) await l.close().catch(() => {});
  for (const a of agents) await a.stop().catch(() => {});
  await g1?.stop().catch(() => {});
  await g2?.stop().catch(() => {});
  await relay?.stop().catch(() => {});
  for (const a of apps) a.stop(true);
});

const J = { accept: "application/json" };
const host = (g: GatewayHandle, id: string) => new URL(tunnelUrl(g, id)).host;

/** One scenario per kind: what the test does, and the table arguments it expects. */
const SCENARIOS: Record<ErrorKind, () => Promise<{ got: Got; args?: unknown[] }>> = {
  bad_host: async () => ({ got: await raw(g1.port, "GET / HTTP/1.1\r\nHost: bad_host!\r\nAccept: application/json\r\nConnection: close\r\n\r\n") }),
  method_not_allowed: async () => ({
    got: await raw(g1.port, `CONNECT ${host(g1, ID.good)} HTTP/1.1\r\nHost: ${host(g1, ID.good)}\r\nAccept: application/json\r\nConnection: close\r\n\r\n`),
  }),
  apex_not_tunnel: async () => ({ got: await got(await fetch(`http://localhost:${g1.port}/`, { headers: J })), args: ["localhost"] }),
  host_not_served: async () => ({ got: await raw(g1.port, "GET / HTTP/1.1\r\nHost: app.example.com\r\nAccept: application/json\r\nConnection: close\r\n\r\n"), args: ["app.example.com"] }),
  tunnel_unknown: async () => ({ got: await got(await fetch(tunnelUrl(g1, "99999999"), { headers: J })), args: ["99999999"] }),
  bad_websocket_upgrade: async () => ({
    got: await raw(g1.port, `GET /ws HTTP/1.1\r\nHost: ${host(g1, ID.good)}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nAccept: application/json\r\n\r\n`),
  }),
  metrics_off: async () => ({ got: await got(await fetch(`http://localhost:${g2.port}/metrics`, { headers: J })) }),
  metrics_forbidden: async () => ({ got: await got(await fetch(`http://localhost:${g1.port}/metrics`, { headers: { ...J, "x-test-client": "198.51.100.7" } })) }),
  ip_denied: async () => ({ got: await got(await fetch(tunnelUrl(g1, ID.deny), { headers: { ...J, "x-test-client": "203.0.113.9" } })) }),
  signin_unconfigured: async () => ({ got: await got(await fetch(tunnelUrl(g2, ID.entra), { headers: J })) }),
  rate_limited: async () => {
    expect((await fetch(tunnelUrl(g1, ID.rate))).status).toBe(200); // the burst of one
    const res = await fetch(tunnelUrl(g1, ID.rate), { headers: J });
    return { got: await got(res), args: [Number(res.headers.get("retry-after"))] };
  },
  streams_limited: async () => {
    const ac = new AbortController();
    const held = fetch(`${tunnelUrl(g1, ID.streams)}/slow`, { signal: ac.signal }).catch(() => null); // in flight at the app
    for (let i = 0; i < 100 && g1.activeStreams === 0; i++) await Bun.sleep(20);
    expect(g1.activeStreams).toBe(1);
    const res = await got(await fetch(tunnelUrl(g1, ID.streams), { headers: J }));
    ac.abort();
    await held;
    return { got: res, args: [1] };
  },
  basic_auth: async () => ({ got: await got(await fetch(tunnelUrl(g1, ID.basic), { headers: J })) }),
  visitor_signin: async () => ({ got: await got(await fetch(tunnelUrl(g1, ID.entra), { headers: J })), args: [`http://${host(g1, ID.entra)}/`] }),
  gateway_draining: async () => {
    let release!: () => void;
    let enter!: () => void;
    const hold = new Promise<void>((r) => (release = r));
    const entered = new Promise<void>((r) => (enter = r));
    drainGate = { hold, release, entered, enter };
    const pending = fetch(tunnelUrl(g2, ID.drain), { headers: J });
    await entered; // the request is being routed
    const drained = g2.drain(10_000);
    release();
    const res = await got(await pending);
    await drained;
    return { got: res };
  },
  agent_offline: async () => ({ got: await got(await fetch(tunnelUrl(g1, ID.offline), { headers: J })), args: [ID.offline] }),
  pool_closed: async () => {
    const accepted = new Promise<void>((r) => (vanishAccepted = r));
    const pending = fetch(tunnelUrl(g1, ID.vanish), { headers: J });
    await accepted; // the gateway's session is dialed, the agent holds its hello
    vanished = true; // the tunnel is deleted: the next request drops its pool
    expect((await fetch(tunnelUrl(g1, ID.vanish))).status).toBe(404);
    vanishHello!();
    return { got: await got(await pending), args: [ID.vanish] };
  },
  session_lost: async () => ({ got: await got(await fetch(`${tunnelUrl(g1, ID.scripted)}/lose`, { headers: J })), args: [ID.scripted] }),
  agent_refused: async () => ({ got: await got(await fetch(`${tunnelUrl(g1, ID.scripted)}/refused`, { headers: J })), args: [ID.scripted, "draining"] }),
  tunnel_version_mismatch: async () => ({
    got: await got(await fetch(tunnelUrl(g1, ID.old), { headers: J })),
    args: ["tunnel protocol mismatch: this gateway speaks versions 2, the agent speaks 1; upgrade azhexgate on the agent"],
  }),
  tunnel_timeout: async () => ({
    got: await got(await fetch(tunnelUrl(g2, ID.silent), { headers: J })),
    args: ['The agent did not take a tunnel session within the first-byte limit. Retry; if it persists, restart "azhexgate start".'],
  }),
  tunnel_handshake_timeout: async () => ({
    got: await got(await fetch(tunnelUrl(g1, ID.silent), { headers: J })),
    args: ['The agent accepted the tunnel session but did not complete the handshake within 1 s. Restart "azhexgate start"; if it persists, update the agent.'],
  }),
  tunnel_session_limit: async () => {
    const first = await fetch(`${tunnelUrl(g2, ID.holder)}/held`); // its body never ends; the session drains (GOAWAY)
    expect(first.status).toBe(200);
    const res = await got(await fetch(`${tunnelUrl(g2, ID.holder)}/over`, { headers: J }));
    void first.body?.cancel().catch(() => {});
    return {
      got: res,
      args: ['The agent keeps refusing or closing tunnel sessions; the gateway holds at most 1 sessions and opens at most 10 per second for one tunnel. Retry in a moment; if it persists, restart "azhexgate start".'],
    };
  },
  request_headers_too_large: async () => ({ got: await got(await fetch(tunnelUrl(g1, ID.good), { headers: { ...J, "x-big": "b".repeat(150_000) } })) }),
  response_headers_too_large: async () => ({ got: await got(await fetch(`${tunnelUrl(g1, ID.good)}/big-response`, { headers: J })) }),
  origin_unreachable: async () => ({ got: await got(await fetch(tunnelUrl(g1, ID.down), { headers: J })), args: [expect.stringMatching(/^Nothing is listening on localhost:\d+: start the local app \(or check --port\)\.$/)] }),
  origin_invalid_response: async () => ({
    got: await got(await fetch(tunnelUrl(g1, ID.garbage), { headers: J })),
    args: [expect.stringMatching(/^The local app at localhost:\d+ sent an invalid HTTP response: the local app did not answer with HTTP\/1\.x \("hello, this is not HTTP"\)\. Check that --port is the app's HTTP port\.$/)],
  }),
  origin_timeout: async () => ({ got: await got(await fetch(`${tunnelUrl(g1, ID.good)}/slow`, { headers: J })), args: ["The local app did not start answering within 3 s."] }),
  tunnel_reset: async () => ({ got: await got(await fetch(`${tunnelUrl(g1, ID.scripted)}/protocol`, { headers: J })), args: ["the agent broke the protocol"] }),
  informational_status: async () => ({ got: await got(await fetch(`${tunnelUrl(g1, ID.scripted)}/informational`, { headers: J })), args: [103] }),
  invalid_response_header: async () => ({ got: await got(await fetch(`${tunnelUrl(g1, ID.scripted)}/bad-header`, { headers: J })) }),
  internal: async () => {
    const orig = console.error;
    console.error = () => {}; // the gateway logs the unexpected error; the client sees no stack
    try {
      return { got: await got(await fetch(tunnelUrl(g1, ID.boom), { headers: J })) };
    } finally {
      console.error = orig;
    }
  },
};

test("every kind of the table has a scenario here, and every scenario a kind", () => {
  expect(Object.keys(SCENARIOS).sort()).toEqual(Object.keys(PUBLIC_ERRORS).sort());
});

test("docs/troubleshooting.md lists every public code with its statuses, and nothing else", () => {
  const doc = readFileSync(new URL("../docs/troubleshooting.md", import.meta.url), "utf8");
  const section = doc.slice(doc.indexOf("## What public clients see"), doc.indexOf("## The management API"));
  const rows = new Set([...section.matchAll(/^\| (\d{3}) \| `([a-z_]+)` \|/gm)].map((m) => `${m[1]} ${m[2]}`));
  const table = new Set(Object.values(PUBLIC_ERRORS).map((e) => `${e.status} ${e.code}`));
  expect([...rows].sort()).toEqual([...table].sort());
});

describe("each public error end to end: status, code, sentence", () => {
  // ordered so that scenarios that stop a gateway (draining) run last
  const order = (Object.keys(SCENARIOS) as ErrorKind[]).sort((a, b) => Number(a === "gateway_draining") - Number(b === "gateway_draining"));
  for (const kind of order) {
    test(`${kind} → ${PUBLIC_ERRORS[kind].status} ${PUBLIC_ERRORS[kind].code}`, async () => {
      const { got: g, args = [] } = await SCENARIOS[kind]();
      const want = PUBLIC_ERRORS[kind];
      expect(g.status).toBe(want.status);
      expect(g.code).toBe(want.code);
      const matcher = args.some((a) => typeof a === "object") ? args[0] : undefined;
      if (matcher) expect(g.message).toEqual(matcher as string);
      else expect(g.message).toBe(expected(kind, ...args).message);
    }, 30_000);
  }
});

test("a malformed header line from the app is origin_invalid_response too (not origin_unreachable)", async () => {
  const g = await got(await fetch(`${tunnelUrl(g1, ID.garbage)}/bad-header`, { headers: J }));
  expect([g.status, g.code]).toEqual([502, "origin_invalid_response"]);
  expect(g.message).toMatch(/^The local app at localhost:\d+ sent an invalid HTTP response: the local app sent a malformed header line \("no colon here"\)\. Check that --port is the app's HTTP port\.$/);
});

test("a WebSocket to a local app that is not running: 502 origin_unreachable 'Nothing is listening' (the refusal is found by its code, also behind our WebSocket client's error)", async () => {
  const h = host(g1, ID.down);
  const key = Buffer.from("0123456789abcdef").toString("base64");
  const g = await raw(g1.port, `GET /ws HTTP/1.1\r\nHost: ${h}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\nAccept: application/json\r\n\r\n`);
  expect([g.status, g.code]).toEqual([502, "origin_unreachable"]);
  expect(g.message).toMatch(/^Nothing is listening on localhost:\d+: start the local app \(or check --port\)\.$/);
});
