/**
 * The gateway: one Bun.serve taking public HTTP / WebSocket traffic, routing by Host
 * (`{id}.{baseDomain}`) to a tunnel, and streaming each request through a pooled, multiplexed
 * HC session to the agent. Nothing is buffered: request bodies are written against tunnel
 * credit, response bodies are pulled by the public client.
 */
import type { Server, ServerWebSocket } from "bun";
import { ResetCode } from "../tunnel/frame.ts";
import type { ResponseHead } from "../tunnel/head.ts";
import { methodHasNoBody, requestHeadFrom } from "../tunnel/http.ts";
import { StreamResetError, type TunnelStream } from "../tunnel/stream.ts";
import type { WsConnection } from "../ws/client.ts";
import type { AccessEntry, AccessLog } from "./access-log.ts";
import { errorResponse, GatewayError, publicError } from "./errors.ts";
import { gatewayMetrics, type GatewayMetrics } from "./metrics.ts";
import type { PoolOptions } from "../tunnel/pool.ts";
import { TunnelPools } from "./tunnel-pools.ts";
import { holdEarlyWs, publicWsClose, publicWsMessage, relayWsToPublic, type PublicWsData } from "./websocket.ts";
import type { Throttle } from "./policy/bandwidth.ts";
import { httpResponse, pumpBody, tunnelError, upgradePublic } from "./proxy.ts";
import { rawTarget, routeHost } from "./routing.ts";
import { healthAnswer, type HealthOptions, type Readiness } from "./health.ts";

export { rawTarget, routeHost } from "./routing.ts";
export type { Readiness } from "./health.ts";

export interface TunnelRoute {
  /** Hybrid connection the tunnel's agent listens on. */
  hcPath: string;
  /** Access policy and limits (src/gateway/policy/). */
  policy?: import("./policy/types.ts").TunnelPolicy;
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
  /** A request body that sends nothing for this long is abandoned (stream reset); default 60 s. */
  bodyIdleMs?: number;
  pool?: Omit<PoolOptions, "dial">;
  /** How often pools with no session, stream or waiting request are dropped (default 60 s). */
  poolSweepMs?: number;
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
  /** Admission (access policy, limits): a Response refuses the request before any stream opens. */
  admit?: import("./policy/gate.ts").Admit;
  /** Bandwidth cap of a tunnel as back-pressure on its HTTP bodies (src/gateway/policy/bandwidth.ts). */
  throttle?: (id: string, route: TunnelRoute) => import("./policy/bandwidth.ts").Throttle | undefined;
  /** Public access log (src/gateway/access-log.ts); undefined = off, no per-request work. */
  accessLog?: AccessLog;
  /**
   * Who may read `/metrics` (it names every tunnel with its traffic): given the request and the
   * client's address, null to serve it, else the error to answer. Absent: anyone (library use;
   * the `gateway` command sets AZHEXGATE_METRICS, private by default).
   */
  metricsAccess?: (req: Request, address: string) => GatewayError | null;
}

/**
 * The public client of `req` — the trusted-proxy aware `client` when given, else the peer — worked
 * out once per request and kept in `r` (the access log, the admission gate and the request head
 * all need it; `requestIP` and the X-Forwarded-For walk are not free).
 */
function clientOf(req: Request, server: Server<PublicWsData>, r: Routed, client?: GatewayOptions["client"]): PublicClient | undefined {
  if (r.client === undefined) {
    const peer = server.requestIP(req);
    r.client = peer ? (client ? client(req, peer) : { address: peer.address, port: peer.port }) : null;
  }
  return r.client ?? undefined;
}

export interface PublicClient {
  address: string;
  port: number;
  /** The scheme a trusted proxy says the client used (else the gateway's public scheme). */
  proto?: "http" | "https";
}

export interface GatewayHandle {
  readonly url: string;
  readonly port: number;
  /** The public URL of tunnel `id`. */
  tunnelUrl(id: string): string;
  readonly metrics: GatewayMetrics;
  /** Streams in flight across all tunnels. */
  readonly activeStreams: number;
  /** Tunnels with a session pool on this gateway (empty, idle pools are dropped every `poolSweepMs`). */
  readonly tunnelPools: number;
  /**
   * An extra listener on which every request goes to tunnel `id`, whatever its Host (clients that
   * cannot resolve `*.localhost`). Bound to 127.0.0.1 on `port` (0 = any); stopped with the gateway.
   */
  serveTunnel(id: string, port?: number): TunnelListener;
  /**
   * Graceful stop: refuse new connections, let in-flight streams finish for up to `graceMs`,
   * then close every session. Resolves with the number of streams cut at the deadline.
   */
  drain(graceMs: number): Promise<number>;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface TunnelListener {
  readonly url: string;
  readonly port: number;
  stop(): void;
}

const utf8 = new TextEncoder();

/** One public request as the handler's steps see it: tunnel id ("" until routed, or the apex), raw target, public host. */
interface Routed {
  id: string;
  kind: "http" | "ws";
  entry: AccessEntry | undefined;
  target: string;
  host: string | null;
  /** The public client (trusted-proxy aware), worked out once per request: `clientOf`. */
  client?: PublicClient | null;
}

export async function startGateway(o: GatewayOptions): Promise<GatewayHandle> {
  const metrics = o.metrics ?? gatewayMetrics();
  const pools = new TunnelPools({ dial: o.dial, pool: o.pool, metrics, accessLog: o.accessLog, sweepMs: o.poolSweepMs });
  let draining = false;
  const ttfbMs = o.ttfbMs ?? 120_000;
  const bodyIdleMs = o.bodyIdleMs ?? 60_000;
  const scheme = o.publicScheme ?? "http";

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
  const openStream = async (req: Request, client: PublicClient | undefined, id: string, route: TunnelRoute, kind: "http" | "ws", target: string, host: string, entry: AccessEntry | undefined, throttle?: Throttle, retried = false): Promise<{ stream: TunnelStream; resHead: ResponseHead }> => {
    // The first-byte limit covers acquiring a session too (issue 12 item 8): the pool gives up at
    // the deadline — 504 `tunnel_timeout` (a dial or hello still pending) or 503
    // `tunnel_session_limit` (no slot came free) — and the app gets what is left of it.
    const deadline = Date.now() + ttfbMs;
    let session;
    try {
      session = await pools.acquire(id, route.hcPath, deadline);
    } catch (err) {
      throw tunnelError(err, id);
    }
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
    if (entry) o.accessLog!.attach(stream, entry, kind);
    if (kind === "ws") holdEarlyWs(stream); // the origin may speak in the same turn as its 101
    const onAbort = () => stream.reset(ResetCode.CANCEL, "public client went away");
    req.signal.addEventListener("abort", onAbort, { once: true });
    if (kind === "http") {
      if (methodHasNoBody(req.method) || req.body === null) stream.end();
      else void pumpBody(req, stream, bodyIdleMs, throttle);
    }
    // the TTFB limit resets the stream, which rejects `stream.response` with ORIGIN_TIMEOUT → 504
    const timer = setTimeout(() => stream.reset(ResetCode.ORIGIN_TIMEOUT, `The local app did not start answering within ${Math.round(ttfbMs / 1000)} s.`), Math.max(0, deadline - Date.now()));
    try {
      const resHead = await stream.response;
      if (entry) o.accessLog!.answered(entry, resHead.status);
      // A WebSocket's lifetime is the socket's, not the upgrade request's.
      if (kind === "ws") req.signal.removeEventListener("abort", onAbort);
      return { stream, resHead };
    } catch (err) {
      // REFUSED = not processed (the agent's GOAWAY came first): a bodiless request is retried once on another session
      if (!retried && err instanceof StreamResetError && err.code === ResetCode.REFUSED && kind === "http" && methodHasNoBody(req.method) && !req.signal.aborted) {
        req.signal.removeEventListener("abort", onAbort);
        if (entry) entry.ended = undefined; // the refused stream's end is not this request's
        return openStream(req, client, id, route, kind, target, host, entry, throttle, true);
      }
      throw tunnelError(err, id);
    } finally {
      clearTimeout(timer);
    }
  };

  /** Extra listeners serving one fixed tunnel each (serveTunnel), by server. */
  const fixed = new Map<Server<PublicWsData>, string>();
  const serveOptions: Bun.Serve.Options<PublicWsData> = {
    hostname: o.hostname ?? "127.0.0.1",
    port: o.port ?? 0,
    development: false,
    // Never share the port with another process (Bun's production default sets SO_REUSEPORT,
    // which silently splits connections between two gateways bound to one port).
    reusePort: false,
    maxRequestBodySize: Number.MAX_SAFE_INTEGER,
    idleTimeout: 30,
    async fetch(req, server) {
      const r: Routed = { id: "", kind: "http", entry: undefined, target: rawTarget(req.url), host: null };
      try {
        const fixedId = fixed.size ? fixed.get(server) : undefined;
        r.host = o.publicHost ? o.publicHost(req, server.requestIP(req)?.address ?? "") : req.headers.get("host");
        const served = fixedId === undefined ? healthAnswer(req, r.target, r.host, () => clientOf(req, server, r, o.client)?.address ?? "", health) : undefined;
        if (served) return await served;
        const route = await routing(req, server, r, fixedId);
        if (route instanceof Response) return route;
        drainGuard();
        return await proxy(req, server, r, route);
      } catch (err) {
        return answerError(req, r.entry, err);
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
        const bytes = typeof msg === "string" ? utf8.encode(msg) : new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength);
        publicWsMessage(ws, bytes, typeof msg !== "string");
      },
      close(ws, code, reason) {
        publicWsClose(ws, code, reason);
      },
    },
  };
  const server = Bun.serve<PublicWsData>(serveOptions);

  /** 1. Health: `/healthz`, `/readyz`, `/metrics` on a host that is not a tunnel's (src/gateway/health.ts). */
  const health: HealthOptions = {
    baseDomain: o.baseDomain,
    metrics: () => metrics.registry.render(),
    metricsAccess: o.metricsAccess,
    ready: o.ready,
    draining: () => draining,
  };

  /**
   * 2. Routing: Host (or the fixed listener's tunnel) → the tunnel's route, or the apex's Response.
   * Throws the public error of a malformed Host, CONNECT, an unknown or deleted tunnel.
   */
  async function routing(req: Request, server: Server<PublicWsData>, r: Routed, fixedId: string | undefined): Promise<TunnelRoute | Response> {
    if (o.accessLog) r.entry = o.accessLog.begin("", req.method, r.target, clientOf(req, server, r, o.client)?.address ?? "");
    if (req.method === "CONNECT") throw publicError("method_not_allowed");
    const id = (r.id = fixedId ?? routeHost(r.host, o.baseDomain, o.localHosts));
    if (r.entry) r.entry.tunnel = id;
    if (id === "" || id === "api") {
      r.entry = undefined; // the management API keeps its own access log
      if (o.apex) return await o.apex(req, server);
      throw publicError("apex_not_tunnel", o.baseDomain);
    }
    const route = await o.resolveTunnel(id);
    if (!route) {
      // A deleted or expired tunnel: drop its pool (sessions and warm connections) too.
      pools.drop(id);
      throw publicError("tunnel_unknown", id);
    }
    return route;
  }

  /** 3. Drain guard: a draining gateway opens no new streams. */
  function drainGuard(): void {
    if (draining) throw publicError("gateway_draining");
  }

  /** 4. Proxy: admission, then a stream to the agent, answered as a Response or a WebSocket upgrade. */
  async function proxy(req: Request, server: Server<PublicWsData>, r: Routed, route: TunnelRoute): Promise<Response | undefined> {
    const { id, entry } = r;
    const host = r.host as string; // routing accepted it
    server.timeout(req, 0); // our own TTFB limit applies; long responses and SSE must not be cut
    if (req.headers.get("upgrade")?.toLowerCase() === "websocket") r.kind = "ws";
    const kind = r.kind;
    const client = clientOf(req, server, r, o.client);
    let refused = o.admit ? admit(req, client, id, route, kind, host) : undefined;
    if (refused instanceof Promise) refused = await refused; // only for visitor sign-in
    if (refused) {
      countRequest(id, kind, refused.status);
      return refused;
    }
    const throttle = kind === "http" ? o.throttle?.(id, route) : undefined;
    const { stream, resHead } = await openStream(req, client, id, route, kind, r.target, host, entry, throttle);
    countRequest(id, kind, resHead.status);
    if (kind === "ws") return upgradePublic(req, server, stream, resHead);
    return httpResponse(req, stream, resHead, throttle);
  }

  /** Any failure of the steps above as its public error (counted, access-logged). */
  function answerError(req: Request, entry: AccessEntry | undefined, err: unknown): Response {
    const e = err instanceof GatewayError ? err : publicError("internal");
    if (!(err instanceof GatewayError)) console.error("gateway: unexpected error", err);
    // a client that went away is not a gateway / tunnel error
    const gone = req.signal.aborted;
    metrics.errors.inc({ code: gone ? "client_gone" : e.code });
    if (entry) o.accessLog!.fail(entry, gone ? 499 : e.status, gone ? "client_gone" : e.code);
    return errorResponse(e, req.headers.get("accept"), req.method);
  }

  function admit(req: Request, client: PublicClient | undefined, id: string, route: TunnelRoute, kind: "http" | "ws", host: string) {
    const activeStreams = pools.activeStreamsOf(id);
    return o.admit!(req, { id, host, kind, client: client?.address ?? "", proto: client?.proto ?? scheme, policy: route.policy, activeStreams });
  }

  const port = server.port!;
  const handle: GatewayHandle = {
    url: `http://${server.hostname}:${port}`,
    port,
    tunnelUrl: (id) => `${scheme}://${id}.${o.baseDomain}${scheme === "http" && port !== 80 ? `:${port}` : ""}`,
    metrics,
    get activeStreams() {
      return pools.activeStreams;
    },
    serveTunnel(id, p = 0) {
      const extra = Bun.serve<PublicWsData>({ ...serveOptions, hostname: "127.0.0.1", port: p });
      fixed.set(extra, id);
      return {
        url: `http://127.0.0.1:${extra.port}`,
        port: extra.port!,
        stop() {
          fixed.delete(extra);
          void extra.stop(true);
        },
      };
    },
    async drain(graceMs) {
      draining = true;
      for (const extra of fixed.keys()) void extra.stop(false);
      // No new connections; in-flight requests continue. The promise settles once every
      // connection is done: a stream is released when its last frame arrived, but the tail of the
      // reply may still be on its way to the client — cutting then loses what was in flight.
      let served = false;
      void server.stop(false).then(() => (served = true), () => (served = true));
      const deadline = Date.now() + graceMs;
      while ((handle.activeStreams > 0 || !served) && Date.now() < deadline) await Bun.sleep(50);
      const cut = handle.activeStreams;
      await handle.stop();
      return cut;
    },
    get tunnelPools() {
      return pools.size;
    },
    async stop() {
      pools.close();
      for (const extra of fixed.keys()) void extra.stop(true);
      fixed.clear();
      await server.stop(true);
    },
    [Symbol.asyncDispose]: () => handle.stop(),
  };
  return handle;
}
