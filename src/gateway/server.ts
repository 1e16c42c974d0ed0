/**
 * The gateway: one Bun.serve taking public HTTP / WebSocket traffic, routing by Host
 * (`{id}.{baseDomain}`) to a tunnel, and streaming each request through a pooled, multiplexed
 * HC session to the agent. Nothing is buffered: request bodies are written against tunnel
 * credit, response bodies are pulled by the public client.
 */
import type { Server, ServerWebSocket } from "bun";
import { ResetCode } from "../tunnel/frame.ts";
import type { ResponseHead } from "../tunnel/head.ts";
import { methodHasNoBody, publicResponseHeaders, requestHeadFrom, statusHasNoBody } from "../tunnel/http.ts";
import { ProtocolMismatchError } from "../tunnel/session.ts";
import { StreamResetError, type TunnelStream } from "../tunnel/stream.ts";
import type { WsConnection } from "../ws/client.ts";
import { errorResponse, GatewayError } from "./errors.ts";
import { gatewayMetrics, type GatewayMetrics } from "./metrics.ts";
import { SessionPool, type PoolOptions } from "./pool.ts";
import { relayWsToPublic, sanitizeCloseCode, type PublicWsData } from "./websocket.ts";

export interface TunnelRoute {
  /** Hybrid connection the tunnel's agent listens on. */
  hcPath: string;
}

export interface GatewayOptions {
  hostname?: string;
  port?: number;
  /** Public base domain: tunnels are `{id}.{baseDomain}` (e.g. `azhexgate.com`, or `localhost`). */
  baseDomain: string;
  /**
   * A local gateway: any host that is not a tunnel's (`localhost`, an IP, another name) is the apex
   * and reaches the management API. Default false: only the base domain and `api.{base}`.
   */
  localHosts?: boolean;
  /** Scheme public clients use (for X-Forwarded-Proto and printed URLs). Default "http". */
  publicScheme?: "http" | "https";
  /** Looks a tunnel id up (the registry); undefined = no such tunnel. */
  resolveTunnel: (id: string) => TunnelRoute | undefined | Promise<TunnelRoute | undefined>;
  /** Opens an HC sender WebSocket to a hybrid connection. */
  dial: (hcPath: string) => Promise<WsConnection>;
  /** Time to the origin's response head (default 120 s). */
  ttfbMs?: number;
  pool?: Omit<PoolOptions, "dial">;
  /** Requests to the base domain itself (management API). Default: 404. */
  apex?: (req: Request, server: Server<PublicWsData>) => Response | Promise<Response>;
  /** Readiness beyond "the server is up" (registry and relay reachable). Default: ready. A reason is shown as JSON. */
  ready?: () => boolean | Readiness | Promise<boolean | Readiness>;
  /**
   * The public client of a request from TCP peer `peer`: its address (trusted-proxy X-Forwarded-For
   * aware) and, when a trusted proxy said so, the scheme it was reached with. Default: the peer.
   */
  client?: (req: Request, peer: { address: string; port: number }) => PublicClient;
  /** The public host a request was sent to (routing, X-Forwarded-Host to the app). Default: its Host header. */
  publicHost?: (req: Request, peer: string) => string | null;
  metrics?: GatewayMetrics;
}

export interface Readiness {
  ready: boolean;
  /** Why not ready, for operators (shown by /readyz). */
  reason?: string;
}

export interface PublicClient {
  address: string;
  port: number;
  /** The scheme a trusted proxy says the client used (else the gateway's public scheme). */
  proto?: "http" | "https";
}

/** Served on the apex and on hosts that are not tunnels (probes use an IP or localhost), never on a tunnel's host. */
const SERVICE_PATHS = new Set(["/healthz", "/readyz", "/metrics"]);

export interface GatewayHandle {
  readonly url: string;
  readonly port: number;
  /** The public URL of tunnel `id`. */
  tunnelUrl(id: string): string;
  readonly metrics: GatewayMetrics;
  /** Streams in flight across all tunnels. */
  readonly activeStreams: number;
  /**
   * Graceful stop: refuse new connections, let in-flight streams finish for up to `graceMs`,
   * then close every session. Resolves with the number of streams cut at the deadline.
   */
  drain(graceMs: number): Promise<number>;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const utf8 = new TextEncoder();
const HOST_RE = /^([a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?|\[[0-9a-f:.]+\])(?::(\d{1,5}))?$/i;
const LABEL_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** The raw origin-form target of a request (path and query as the client sent them). */
export function rawTarget(url: string): string {
  const i = url.indexOf("/", url.indexOf("//") + 2);
  return i < 0 ? "/" : url.slice(i);
}

/** True for the apex, `api.{base}` and hosts outside the base domain (IPs, localhost): never a tunnel. */
function serviceHost(host: string | null, baseDomain: string): boolean {
  try {
    const id = routeHost(host, baseDomain, true);
    return id === "" || id === "api";
  } catch {
    return true;
  }
}

/**
 * Splits a Host header into a tunnel id (or "" for the apex) — or throws a 400 / 404.
 * `localHosts`: a host outside the base domain is the apex too (a local gateway), not a 404.
 */
export function routeHost(host: string | null, baseDomain: string, localHosts = false): string {
  if (!host || host.includes(",") || !HOST_RE.test(host)) {
    throw new GatewayError(400, "bad_host", "The request's Host header is missing or malformed.");
  }
  const name = host.replace(/:\d+$/, "").toLowerCase().replace(/\.$/, "");
  const base = baseDomain.toLowerCase();
  if (name === base) return "";
  if (!name.endsWith(`.${base}`)) {
    if (localHosts) return "";
    throw new GatewayError(404, "tunnel_not_found", `No tunnel is served at ${name}.`);
  }
  const label = name.slice(0, -(base.length + 1));
  if (!LABEL_RE.test(label)) throw new GatewayError(404, "tunnel_not_found", `No tunnel is served at ${name}.`);
  return label;
}

function tunnelError(err: unknown, id: string): GatewayError {
  if (err instanceof GatewayError) return err;
  if (err instanceof ProtocolMismatchError) return new GatewayError(502, "tunnel_version_mismatch", err.message);
  if (err instanceof StreamResetError) {
    if (err.code === ResetCode.REQUEST_HEAD_TOO_LARGE)
      return new GatewayError(431, "request_headers_too_large", "The request's headers are larger than the tunnel carries (128 KiB in all, at most 256 headers).");
    if (err.code === ResetCode.RESPONSE_HEAD_TOO_LARGE)
      return new GatewayError(502, "response_headers_too_large", "The local app's response headers are larger than the tunnel carries (128 KiB in all, at most 256 headers).");
    if (err.code === ResetCode.ORIGIN_UNREACHABLE) return new GatewayError(502, "origin_unreachable", err.reason);
    if (err.code === ResetCode.ORIGIN_TIMEOUT) return new GatewayError(504, "origin_timeout", err.reason);
    if (err.reason.startsWith("tunnel session lost"))
      return new GatewayError(502, "tunnel_offline", `The agent of tunnel ${id} disconnected before answering. Retry; if it persists, restart "azhexgate start".`);
    if (err.code === ResetCode.REFUSED) return new GatewayError(502, "tunnel_offline", `The agent of tunnel ${id} is not accepting requests (${err.reason}).`);
    return new GatewayError(502, "tunnel_error", `The tunnel failed: ${err.reason}`);
  }
  return new GatewayError(502, "tunnel_offline", `The agent of tunnel ${id} is not connected. Start it with "azhexgate start" and retry.`);
}

export async function startGateway(o: GatewayOptions): Promise<GatewayHandle> {
  const pools = new Map<string, SessionPool>();
  const metrics = o.metrics ?? gatewayMetrics();
  metrics.registry.collect(() => {
    for (const [id, p] of pools) {
      metrics.sessions.set({ tunnel: id }, p.size);
      metrics.streams.set({ tunnel: id }, p.activeStreams);
    }
  });
  let draining = false;
  const ttfbMs = o.ttfbMs ?? 120_000;
  const scheme = o.publicScheme ?? "http";

  const poolFor = (id: string, hcPath: string): SessionPool => {
    let p = pools.get(id);
    if (!p) {
      const bytesIn = metrics.bytes.counterFor({ tunnel: id, direction: "in" });
      const bytesOut = metrics.bytes.counterFor({ tunnel: id, direction: "out" });
      const onStreamEnd = (s: TunnelStream) => {
        if (s.bytesSent) bytesIn(s.bytesSent);
        if (s.bytesReceived) bytesOut(s.bytesReceived);
      };
      pools.set(id, (p = new SessionPool({ ...o.pool, dial: () => o.dial(hcPath), onStreamEnd })));
    }
    return p;
  };

  /** Per tunnel: request counters by kind and status class, label keys built once. */
  const requestCounters = new Map<string, Array<(by?: number) => void>>();
  const countRequest = (id: string, kind: "http" | "ws", status: number) => {
    let c = requestCounters.get(id);
    if (!c) {
      if (requestCounters.size >= 100_000) requestCounters.clear(); // bounded, like the series' key memo
      requestCounters.set(id, (c = []));
    }
    const cls = Math.floor(status / 100);
    const i = (kind === "ws" ? 6 : 0) + cls;
    (c[i] ??= metrics.requests.counterFor({ tunnel: id, kind, code: `${cls}xx` }))();
  };

  /** Opens a stream for `req` and waits for the response head, within the TTFB limit. */
  const openStream = async (req: Request, server: Server<PublicWsData>, id: string, route: TunnelRoute, kind: "http" | "ws", target: string, host: string, retried = false): Promise<{ stream: TunnelStream; resHead: ResponseHead }> => {
    let session;
    try {
      session = await poolFor(id, route.hcPath).acquire();
    } catch (err) {
      throw tunnelError(err, id);
    }
    const peer = server.requestIP(req);
    const client = peer ? (o.client ? o.client(req, peer) : { address: peer.address, port: peer.port }) : undefined;
    const head = requestHeadFrom(req, {
      kind,
      proto: client?.proto ?? scheme,
      host,
      target,
      remote: client ? { address: client.address, port: client.port } : undefined,
    });
    const stream = await session.open(head).catch((err) => {
      throw tunnelError(err, id);
    });
    const onAbort = () => stream.reset(ResetCode.CANCEL, "public client went away");
    req.signal.addEventListener("abort", onAbort, { once: true });
    if (kind === "http") {
      if (methodHasNoBody(req.method)) stream.end();
      else void pumpBody(req, stream);
    }
    // the TTFB limit resets the stream, which rejects `stream.response` with ORIGIN_TIMEOUT → 504
    const timer = setTimeout(() => stream.reset(ResetCode.ORIGIN_TIMEOUT, `The local app did not start answering within ${Math.round(ttfbMs / 1000)} s.`), ttfbMs);
    try {
      const resHead = await stream.response;
      // A WebSocket's lifetime is the socket's, not the upgrade request's.
      if (kind === "ws") req.signal.removeEventListener("abort", onAbort);
      return { stream, resHead };
    } catch (err) {
      // REFUSED = not processed (the agent's GOAWAY came first): a bodiless request is retried once on another session
      if (!retried && err instanceof StreamResetError && err.code === ResetCode.REFUSED && kind === "http" && methodHasNoBody(req.method) && !req.signal.aborted) {
        req.signal.removeEventListener("abort", onAbort);
        return openStream(req, server, id, route, kind, target, host, true);
      }
      throw tunnelError(err, id);
    } finally {
      clearTimeout(timer);
    }
  };

  const server = Bun.serve<PublicWsData>({
    hostname: o.hostname ?? "127.0.0.1",
    port: o.port ?? 0,
    development: false,
    // Never share the port with another process (Bun's production default sets SO_REUSEPORT,
    // which silently splits connections between two gateways bound to one port).
    reusePort: false,
    maxRequestBodySize: Number.MAX_SAFE_INTEGER,
    idleTimeout: 30,
    async fetch(req, server) {
      let id = "";
      let kind: "http" | "ws" = "http";
      try {
        const target = rawTarget(req.url);
        const q = target.indexOf("?");
        const path = q < 0 ? target : target.slice(0, q);
        const host = o.publicHost ? o.publicHost(req, server.requestIP(req)?.address ?? "") : req.headers.get("host");
        if (SERVICE_PATHS.has(path) && serviceHost(host, o.baseDomain)) return await service(path);
        if (req.method === "CONNECT") throw new GatewayError(405, "method_not_allowed", "CONNECT is not supported.");
        id = routeHost(host, o.baseDomain, o.localHosts);
        if (id === "" || id === "api") {
          if (o.apex) return await o.apex(req, server);
          throw new GatewayError(404, "tunnel_not_found", "This is an azhexgate gateway; tunnels live at {id}." + o.baseDomain + ".");
        }
        const route = await o.resolveTunnel(id);
        if (!route) {
          // A deleted or expired tunnel: drop its pool (sessions and warm connections) too.
          pools.get(id)?.close();
          pools.delete(id);
          throw new GatewayError(404, "tunnel_not_found", `Tunnel ${id} does not exist or has expired.`);
        }
        if (draining) throw new GatewayError(502, "tunnel_offline", "The gateway is restarting; retry in a moment.");
        server.timeout(req, 0); // our own TTFB limit applies; long responses and SSE must not be cut
        if (req.headers.get("upgrade")?.toLowerCase() === "websocket") kind = "ws";
        const { stream, resHead } = await openStream(req, server, id, route, kind, target, host as string);
        countRequest(id, kind, resHead.status);
        if (kind === "ws") return upgradePublic(req, server, stream, resHead);
        return httpResponse(req, stream, resHead);
      } catch (err) {
        const e = err instanceof GatewayError ? err : new GatewayError(500, "internal", "The gateway failed to handle the request.");
        if (!(err instanceof GatewayError)) console.error("gateway: unexpected error", err);
        metrics.errors.inc({ code: e.code });
        return errorResponse(e, req.headers.get("accept"), req.method);
      }
    },
    websocket: {
      maxPayloadLength: 64 << 20,
      backpressureLimit: 16 << 20,
      closeOnBackpressureLimit: true,
      idleTimeout: 0,
      sendPings: true,
      open(ws: ServerWebSocket<PublicWsData>) {
        relayWsToPublic(ws);
      },
      drain(ws) {
        ws.data.stream.resumeWs();
      },
      message(ws, msg) {
        const d = ws.data;
        const bytes = typeof msg === "string" ? utf8.encode(msg) : new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength);
        d.stream.wsSendQueued(bytes, typeof msg !== "string", () => ws.close(1011, "tunnel stream failed"));
      },
      close(ws, code, reason) {
        const d = ws.data;
        d.publicClosed = true;
        d.stream.wsCloseQueued(sanitizeCloseCode(code), reason ?? "");
      },
    },
  });

  async function service(path: string): Promise<Response> {
    const text = (body: string, status = 200, type = "text/plain; charset=utf-8") =>
      new Response(body, { status, headers: { "content-type": type, "cache-control": "no-store" } });
    if (path === "/healthz") return text("ok\n");
    if (path === "/metrics") return text(metrics.registry.render(), 200, "text/plain; version=0.0.4; charset=utf-8");
    if (draining) return text("draining\n", 503);
    const r = await Promise.resolve(o.ready ? o.ready() : true).catch((): Readiness => ({ ready: false, reason: "the readiness check failed" }));
    if (typeof r === "boolean") return r ? text("ready\n") : text("not ready\n", 503);
    return Response.json(r.reason === undefined ? { ready: r.ready } : r, { status: r.ready ? 200 : 503, headers: { "cache-control": "no-store" } });
  }

  const port = server.port!;
  const handle: GatewayHandle = {
    url: `http://${server.hostname}:${port}`,
    port,
    tunnelUrl: (id) => `${scheme}://${id}.${o.baseDomain}${scheme === "http" && port !== 80 ? `:${port}` : ""}`,
    metrics,
    get activeStreams() {
      let n = 0;
      for (const p of pools.values()) n += p.activeStreams;
      return n;
    },
    async drain(graceMs) {
      draining = true;
      void server.stop(false); // no new connections; in-flight requests continue
      const deadline = Date.now() + graceMs;
      while (handle.activeStreams > 0 && Date.now() < deadline) await Bun.sleep(50);
      const cut = handle.activeStreams;
      await handle.stop();
      return cut;
    },
    async stop() {
      for (const p of pools.values()) p.close();
      pools.clear();
      await server.stop(true);
    },
    [Symbol.asyncDispose]: () => handle.stop(),
  };
  return handle;
}

async function pumpBody(req: Request, stream: TunnelStream): Promise<void> {
  try {
    if (req.body) for await (const chunk of req.body) await stream.write(chunk);
    stream.end();
  } catch {
    stream.reset(ResetCode.CANCEL, "request body failed");
  }
}

function httpResponse(req: Request, stream: TunnelStream, head: ResponseHead): Response {
  if (head.status < 200) {
    stream.reset(ResetCode.PROTOCOL, "unexpected informational status");
    throw new GatewayError(502, "tunnel_error", `The local app answered with status ${head.status}.`);
  }
  const headers = publicResponseHeaders(head);
  if (statusHasNoBody(head.status, req.method)) {
    stream.discardBody();
    return new Response(null, { status: head.status, headers });
  }
  const whole = stream.takeCompleteBody();
  if (whole) return new Response(whole as Uint8Array<ArrayBuffer>, { status: head.status, headers });
  return new Response(stream.body, { status: head.status, headers });
}

function upgradePublic(req: Request, server: Server<PublicWsData>, stream: TunnelStream, head: ResponseHead): Response | undefined {
  if (head.status !== 101) {
    // The origin refused the WebSocket: show its answer as a plain HTTP response.
    return httpResponse(req, stream, head);
  }
  const headers: Record<string, string> = {};
  if (head.protocol) headers["Sec-WebSocket-Protocol"] = head.protocol;
  const data: PublicWsData = { stream, publicClosed: false };
  if (server.upgrade(req, { headers, data })) return undefined;
  stream.reset(ResetCode.CANCEL, "public upgrade failed");
  throw new GatewayError(400, "bad_host", "The WebSocket upgrade request was invalid.");
}
