/**
 * The embedded default of `azhexgate start` (composition, next to the commands): with no gateway
 * configured, a gateway and a relay emulator run in this process on loopback, and the agent talks
 * to them exactly as it would to a deployed gateway (over the management API and the relay
 * protocol). The agent sees it only as a `LocalGateway` (src/agent/start.ts): it never imports the
 * gateway.
 */
import { randomBytes } from "node:crypto";
import type { LocalGateway } from "./agent/start.ts";
import { resolveGatewayConfig } from "./config.ts";
import { startGatewayApp, type GatewayApp } from "./gateway/app.ts";
import type { TunnelListener } from "./gateway/server.ts";
import type { Logger } from "./log.ts";

interface Embedded {
  app: GatewayApp;
  apiUrl: string;
  apiKey: string;
}

/** Starts on `port` (default 8080), or on any free port when that one is taken. */
export async function startEmbeddedGateway(log: Logger, port = 8080): Promise<LocalGateway> {
  const e = await startEmbedded(log, port);
  return {
    apiUrl: e.apiUrl,
    apiKey: e.apiKey,
    serveTunnelOnLoopback: (id) => serveTunnelOnLoopback(e, id),
    drain: (ms) => e.app.gateway.drain(ms),
    stop: () => e.app.stop(),
  };
}

async function startEmbedded(log: Logger, port: number): Promise<Embedded> {
  const apiKey = randomBytes(24).toString("base64url");
  const start = (p: number) =>
    startGatewayApp({
      // local defaults: {id}.localhost over http; no gateway access log (the agent prints every request)
      config: resolveGatewayConfig({ port: String(p), host: "127.0.0.1", registry: ":memory:", "access-log": "off" }, {}),
      env: {}, // always the local relay emulator, whatever AZHEXGATE_RELAY_* says
      log,
      extraApiKeys: [apiKey],
    });
  let app: GatewayApp;
  // The gateway binds without SO_REUSEPORT, so a second `azhexgate start` gets EADDRINUSE here.
  try {
    app = await start(port);
  } catch (err) {
    if (!addressInUse(err) || port === 0) throw err;
    log.info("port busy, using another", { port });
    app = await start(0);
  }
  return { app, apiUrl: `http://localhost:${app.gateway.port}`, apiKey };
}

/**
 * A loopback port for tunnel `id`: `http://127.0.0.1:PORT` reaches it whatever the Host, so
 * clients that cannot resolve `*.localhost` (Node's fetch, Python, wget) can use it too. The first
 * free port from just above the gateway's (8081, 8082, … when the gateway has 8080), else any.
 */
function serveTunnelOnLoopback(e: Embedded, id: string, tries = 10): TunnelListener {
  const gw = e.app.gateway;
  for (let p = gw.port + 1; p <= Math.min(gw.port + tries, 65535); p++) {
    try {
      return gw.serveTunnel(id, p);
    } catch {
      // taken: the next one
    }
  }
  return gw.serveTunnel(id, 0);
}

/** The port is taken: Bun.serve's error carries code EADDRINUSE (also as the cause of a wrapping error). */
function addressInUse(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, i = 0; e && i < 5; e = e.cause as typeof e, i++) if (e.code === "EADDRINUSE") return true;
  return false;
}
