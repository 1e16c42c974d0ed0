/**
 * A real gateway app (registry, local relay, management API, public ingress) behind a loopback
 * "front end" it trusts (so tests choose the client address with X-Forwarded-For), an origin app
 * that counts every HTTP request and WebSocket upgrade it sees, and `tunnel(access)`: creates a
 * tunnel with that access policy through the API and starts an agent for it.
 */
import { startAgent, type AgentHandle } from "../../src/agent/agent.ts";
import { resolveGatewayConfig } from "../../src/config.ts";
import { createLocalBinding } from "../../src/control/local.ts";
import { startEmulator, type EmulatorHandle } from "../../src/emulator/server.ts";
import { startGatewayApp, type GatewayApp } from "../../src/gateway/app.ts";
import { resolveNamespace } from "../../src/hc/address.ts";
import { createLogger } from "../../src/log.ts";

export const ACCESS_KEY = "access-test-key-0123456789abcdef";

export interface OriginSeen {
  http: Array<{ path: string; headers: Record<string, string> }>;
  ws: number;
}

export interface AccessStack {
  app: GatewayApp;
  relay: EmulatorHandle;
  seen: OriginSeen;
  logs: string[];
  /** Creates a tunnel (API key owner) with `access`; resolves with its host (`{id}.localhost:PORT`). */
  tunnel(access?: unknown, o?: { bearer?: string }): Promise<{ id: string; host: string }>;
  /** POST /api/tunnels with a body, raw answer. */
  create(body: unknown, o?: { bearer?: string }): Promise<Response>;
  /** A request to a tunnel host as client `client` (via X-Forwarded-For from the trusted loopback peer). */
  get(host: string, path?: string, o?: { client?: string; headers?: Record<string, string>; method?: string }): Promise<Response>;
  /** A WebSocket to a tunnel host: resolves "open" (then closed again) or the failure. */
  ws(host: string, o?: { client?: string; headers?: Record<string, string> }): Promise<"open" | "refused">;
  stop(): Promise<void>;
}

export async function startAccessStack(env: Record<string, string> = {}): Promise<AccessStack> {
  const relay = await startEmulator();
  const logs: string[] = [];
  const config = resolveGatewayConfig(
    { port: "0", host: "127.0.0.1", "base-domain": "localhost", "public-scheme": "http", registry: ":memory:", "trusted-proxies": "127.0.0.1/32" },
    { AZHEXGATE_API_KEYS: ACCESS_KEY, ...env },
  );
  const app = await startGatewayApp({ config, env: {}, log: createLogger({ format: "json", level: "info", sink: (l) => logs.push(l) }), binding: createLocalBinding(relay) });
  const seen: OriginSeen = { http: [], ws: 0 };
  const origin = Bun.serve<undefined>({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req, server) {
      if (req.headers.get("upgrade")?.toLowerCase() === "websocket") {
        seen.ws++;
        return server.upgrade(req) ? undefined : new Response("no", { status: 400 });
      }
      const u = new URL(req.url);
      seen.http.push({ path: u.pathname, headers: Object.fromEntries(req.headers) });
      if (u.pathname === "/slow") return Bun.sleep(1500).then(() => new Response("slow"));
      if (u.pathname === "/big") return new Response(new Uint8Array(256 * 1024).fill(7));
      if (u.pathname === "/upload") return req.arrayBuffer().then((b) => Response.json({ bytes: b.byteLength }));
      return Response.json({ path: u.pathname, email: req.headers.get("x-azhexgate-user-email"), oid: req.headers.get("x-azhexgate-user-oid") });
    },
    websocket: { message(ws, m) { ws.send(m); } },
  });
  const agents: AgentHandle[] = [];
  const base = `http://127.0.0.1:${app.gateway.port}`;
  const apiHost = `localhost:${app.gateway.port}`;

  const create = (body: unknown, o: { bearer?: string } = {}) =>
    fetch(`${base}/api/tunnels`, {
      method: "POST",
      headers: { host: apiHost, "content-type": "application/json", ...(o.bearer ? { authorization: `Bearer ${o.bearer}` } : { "x-azhexgate-apikey": ACCESS_KEY }) },
      body: JSON.stringify(body),
    });

  return {
    app,
    relay,
    seen,
    logs,
    create,
    async tunnel(access, o) {
      const res = await create(access === undefined ? {} : { access }, o);
      if (res.status !== 201) throw new Error(`create: ${res.status} ${await res.text()}`);
      const t = (await res.json()) as Record<string, string>;
      agents.push(
        await startAgent({
          endpoint: resolveNamespace(t.relay_endpoint!),
          hcPath: t.hybrid_connection_name!,
          token: t.listener_token!,
          origin: `http://127.0.0.1:${origin.port}`,
          hostHeader: "rewrite",
        }),
      );
      return { id: t.id!, host: `${t.id}.localhost:${app.gateway.port}` };
    },
    get(host, path = "/", o = {}) {
      return fetch(`${base}${path}`, {
        method: o.method ?? "GET",
        redirect: "manual",
        headers: { host, ...(o.client ? { "x-forwarded-for": o.client } : {}), ...o.headers },
      });
    },
    ws(host, o = {}) {
      return new Promise((resolve) => {
        const ws = new WebSocket(`ws://127.0.0.1:${app.gateway.port}/socket`, {
          headers: { host, ...(o.client ? { "x-forwarded-for": o.client } : {}), ...o.headers },
        } as unknown as string[]);
        const timer = setTimeout(() => {
          ws.close();
          resolve("refused");
        }, 10_000);
        ws.onopen = () => {
          clearTimeout(timer);
          ws.close();
          resolve("open");
        };
        ws.onerror = () => {
          clearTimeout(timer);
          resolve("refused");
        };
      });
    },
    async stop() {
      for (const a of agents) await a.stop().catch(() => {});
      origin.stop(true);
      await app.stop();
      await relay.stop();
    },
  };
}
