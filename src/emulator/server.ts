/**
 * The local Azure Relay Hybrid Connections emulator: one `Bun.serve` that routes
 *   /$hc/{path}?sb-hc-action=listen            → control.ts (listener control channel)
 *   /$hc/{path}[/sfx]?sb-hc-action=connect     → connect.ts (WebSocket sender; also no action)
 *   /$hc/{path}[/sfx]?sb-hc-action=accept|request → rendezvous.ts (listener rendezvous / reject)
 *   /{path}[/sfx]                              → http.ts (HTTP request mode)
 *   /subscriptions/…                           → arm.ts (ARM subset, when `arm` is configured)
 *   /$emulator/faults, /$emulator/status       → fault switches and status (loopback clients only)
 */
import type { Server } from "bun";
import type { RelayEndpoint } from "../hc/address.ts";
import { handleArm } from "./arm.ts";
import { type AuthContext, failureResponse, isLenientHostname, notFound } from "./auth.ts";
import { handleConnect } from "./connect.ts";
import { ListenerRegistry } from "./control.ts";
import { EntityStore, type HcSpec, type RuleSpec } from "./entities.ts";
import type { EntraConfig } from "./entra.ts";
import { FaultState, type Faults, applyFaultAction, createFaults } from "./faults.ts";
import { HttpMode } from "./http.ts";
import { LivenessFaultState } from "./liveness-faults.ts";
import { RendezvousTable, handleRendezvous } from "./rendezvous.ts";
import type { Core, ResolvedOptions, SocketData } from "./types.ts";

export type { Faults } from "./faults.ts";

export interface EmulatorOptions {
  hostname?: string;
  port?: number;
  tls?: { cert: string; key: string };
  publicHost?: string;
  namespaceRules?: RuleSpec[];
  hybridConnections?: HcSpec[];
  autoCreate?: boolean;
  maxListeners?: number;
  acceptTimeoutMs?: number;
  responseTimeoutMs?: number;
  noListenerStatus?: number;
  tokenSkewSeconds?: number;
  idleDropMs?: number;
  entra?: EntraConfig;
  arm?: { subscriptionId: string; resourceGroup: string; namespace: string };
}

export interface EmulatorHandle {
  readonly url: string;
  readonly httpUrl: string;
  readonly port: number;
  readonly endpoint: RelayEndpoint;
  readonly entities: EntityStore;
  readonly faults: Faults;
  connectionString(ruleName?: string, hcPath?: string): string;
  listenerCount(hcPath: string): number;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Largest WebSocket message / HTTP request body the emulator takes (bodies are relayed as one message). */
export const MAX_PAYLOAD = 64 * 1024 * 1024;

function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.replace(/^::ffff:/, "");
  return a === "::1" || a.startsWith("127.");
}

function json(value: unknown, status = 200): Response {
  return Response.json(value, { status });
}

export async function startEmulator(options: EmulatorOptions = {}): Promise<EmulatorHandle> {
  const hostname = options.hostname ?? "127.0.0.1";
  const tls = options.tls !== undefined;
  const opts: ResolvedOptions = {
    tls,
    publicHost: options.publicHost,
    autoCreate: options.autoCreate ?? false,
    maxListeners: options.maxListeners ?? 25,
    acceptTimeoutMs: options.acceptTimeoutMs ?? 30_000,
    responseTimeoutMs: options.responseTimeoutMs ?? 60_000,
    noListenerStatus: options.noListenerStatus ?? 502,
    idleDropMs: options.idleDropMs,
  };
  const entities = new EntityStore(options.namespaceRules ?? [{ name: "RootManageSharedAccessKey", rights: ["Listen", "Send", "Manage"] }]);
  for (const spec of options.hybridConnections ?? []) entities.upsert(spec);
  const auth: AuthContext = {
    entities,
    entra: options.entra,
    tokenSkewSeconds: options.tokenSkewSeconds ?? 0,
    publicHost: options.publicHost,
    lenientHost: isLenientHostname(hostname),
    now: () => Date.now(),
  };
  const faultState = new FaultState();
  const liveness = new LivenessFaultState(() => auth.now(), auth.tokenSkewSeconds);
  const rendezvous = new RendezvousTable();
  let server: Server<SocketData> | undefined;
  // biome-ignore lint/style/useConst: assigned after the registry that needs it
  let http: HttpMode;
  const listeners = new ListenerRegistry(opts, entities, auth, {
    response: (ws, msg) => http.response(ws, msg),
    binary: (ws, data) => http.binary(ws, data),
    closed: (l) => http.listenerClosed(l),
  }, liveness);
  const core: Core = {
    opts,
    entities,
    auth,
    listeners,
    rendezvous,
    faults: faultState,
    liveness,
    server: () => {
      if (!server) throw new Error("emulator not started");
      return server;
    },
    rendezvousBase: (requestHost) => `${tls ? "wss" : "ws"}://${opts.publicHost ?? requestHost}`,
  };
  http = new HttpMode(core);
  const faults = createFaults(faultState, listeners, entities, liveness);

  const admin = async (req: Request, url: URL, srv: Server<SocketData>): Promise<Response> => {
    if (!isLoopback(srv.requestIP(req)?.address)) return failureResponse(403, "The emulator admin API is only available to loopback clients.");
    if (url.pathname === "/$emulator/status" && req.method === "GET") {
      return json({ hybridConnections: listeners.counts() });
    }
    if (url.pathname === "/$emulator/faults" && req.method === "POST") {
      let body: unknown;
      try {
        body = await req.json();
      } catch {
        return json({ error: "body must be JSON" }, 400);
      }
      if (typeof body !== "object" || body === null) return json({ error: "body must be a JSON object" }, 400);
      try {
        return json({ ok: true, result: applyFaultAction(faults, body as Record<string, unknown>) });
      } catch (e) {
        return json({ error: (e as Error).message }, 400);
      }
    }
    return json({ error: "not found" }, 404);
  };

  const route = async (req: Request, srv: Server<SocketData>): Promise<Response | undefined> => {
    const url = new URL(req.url);
    const path = url.pathname;
    const host = req.headers.get("host") ?? "";
    if (path.startsWith("/$emulator/")) return admin(req, url, srv);
    if (path.startsWith("/subscriptions/")) {
      if (!options.arm) return json({ error: { code: "NotFound", message: "ARM emulation is not enabled" } }, 404);
      const arm = options.arm;
      const res = await handleArm(req, url, { entities, ...arm, listenerCount: (p) => listeners.count(p) });
      return res ?? json({ error: { code: "NotFound", message: `No ARM route for ${path}` } }, 404);
    }
    const isUpgrade = req.headers.get("upgrade")?.toLowerCase() === "websocket";
    let rest: string;
    const ws = /^\/\$hc(\/|$)/i.test(path);
    try {
      rest = decodeURIComponent(ws ? path.slice(5) : path.slice(1)).replace(/\/+$/, "");
    } catch {
      return failureResponse(400, "Malformed request path.");
    }
    if (ws) {
      if (!isUpgrade) return failureResponse(400, "A WebSocket upgrade is required on /$hc/ addresses.");
      const action = url.searchParams.get("sb-hc-action");
      if (action === "accept" || action === "request") return handleRendezvous(core, req, url, action, rest);
      if (action !== null && action !== "listen" && action !== "connect") return failureResponse(400, `Unknown sb-hc-action "${action}".`);
      const found = entities.resolve(rest);
      if (action === "listen") {
        if (found && found.suffix) return failureResponse(404, notFound(host, rest).description);
        return listeners.handleListen(req, url, srv, rest, found?.hc);
      }
      if (!found) return failureResponse(404, notFound(host, rest).description);
      return handleConnect(core, req, url, found.hc, found.suffix);
    }
    if (isUpgrade) return failureResponse(400, "WebSocket senders must use /$hc/ addresses.");
    const found = entities.resolve(rest);
    if (!found || rest === "") return failureResponse(404, notFound(host, rest).description);
    return http.handle(req, url, found.hc);
  };

  server = Bun.serve<SocketData>({
    hostname,
    port: options.port ?? 0,
    development: false,
    maxRequestBodySize: MAX_PAYLOAD,
    idleTimeout: 0,
    tls: options.tls ? { cert: options.tls.cert, key: options.tls.key } : undefined,
    async fetch(req, srv) {
      try {
        return await route(req, srv);
      } catch (e) {
        console.error("[emulator] internal error", e);
        return failureResponse(500, "Internal emulator error.");
      }
    },
    websocket: {
      maxPayloadLength: MAX_PAYLOAD,
      backpressureLimit: 32 * 1024 * 1024,
      idleTimeout: 0,
      sendPings: false,
      perMessageDeflate: false,
      open(ws) {
        ws.binaryType = "uint8array"; // binary messages arrive as plain Uint8Arrays (no Buffer, no extra view)
        const d = ws.data;
        if (d.kind === "control") listeners.open(ws, d.listener);
        else if (d.kind === "leg") d.pair.open(d.side, ws);
        else http.rendezvousOpen(ws, d.exchange);
      },
      message(ws, msg) {
        const d = ws.data;
        const m = msg as string | Uint8Array;
        if (d.kind === "control") listeners.message(ws, d.listener, m);
        else if (d.kind === "leg") d.pair.message(d.side, m);
        else http.rendezvousMessage(ws, d.exchange, m);
      },
      drain(ws) {
        const d = ws.data;
        if (d.kind === "leg") d.pair.drain(d.side);
      },
      ping(ws) {
        if (ws.data.kind === "control") listeners.pinged(ws.data.listener);
      },
      pong(ws) {
        if (ws.data.kind === "control") listeners.activity(ws.data.listener);
      },
      close(ws, code, reason) {
        const d = ws.data;
        if (d.kind === "control") listeners.closed(d.listener);
        else if (d.kind === "leg") d.pair.legClosed(d.side, code, reason);
        else http.rendezvousClosed(d.exchange);
      },
      error(error) {
        console.error("[emulator] websocket handler error", error);
      },
    },
  });

  const port = server.port ?? 0;
  const connectHost = hostname === "0.0.0.0" || hostname === "::" ? "127.0.0.1" : hostname.includes(":") ? `[${hostname}]` : hostname;
  const hostPort = `${connectHost}:${port}`;
  const endpoint: RelayEndpoint = { scheme: tls ? "wss" : "ws", host: hostPort };
  let stopped: Promise<void> | undefined;

  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      faultState.reset();
      liveness.reset();
      rendezvous.clear();
      http.stop();
      listeners.stop();
      await server?.stop(true);
    })();
    return stopped;
  };

  return {
    url: `${tls ? "wss" : "ws"}://${hostPort}`,
    httpUrl: `${tls ? "https" : "http"}://${hostPort}`,
    port,
    endpoint,
    entities,
    faults,
    connectionString(ruleName = "RootManageSharedAccessKey", hcPath?: string) {
      const hc = hcPath ? entities.get(hcPath) : undefined;
      const rule = entities.findRule(hc, ruleName);
      if (!rule) throw new TypeError(`no authorization rule named "${ruleName}"`);
      const entity = hcPath ? `;EntityPath=${hc?.path ?? hcPath}` : "";
      return `Endpoint=${tls ? "sb" : "ws"}://${hostPort}/;SharedAccessKeyName=${rule.name};SharedAccessKey=${rule.primaryKey}${entity}`;
    },
    listenerCount: (hcPath) => listeners.count(hcPath),
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
