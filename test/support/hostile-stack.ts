/**
 * Two tunnels on one gateway for hostile-agent tests: `good` is served by the real agent and a
 * local app; `bad` by an agent built from the project's own listener whose sessions the test
 * drives by hand (`onAccept` gets each rendezvous connection). The gateway's metrics object is
 * the test's, so the pool's own gauges can be read as /metrics renders them.
 */
import { readdirSync } from "node:fs";
import { startAgent, type AgentHandle } from "../../src/agent/agent.ts";
import { startEmulator, type EmulatorHandle } from "../../src/emulator/server.ts";
import { HybridConnectionListener } from "../../src/hc/listener.ts";
import { connectSender } from "../../src/hc/sender.ts";
import { sasTokenProvider } from "../../src/hc/tokens.ts";
import { gatewayMetrics } from "../../src/gateway/metrics.ts";
import { startGateway, type GatewayHandle, type GatewayOptions } from "../../src/gateway/server.ts";
import type { WsConnection } from "../../src/ws/client.ts";

export interface HostileStack {
  relay: EmulatorHandle;
  gateway: GatewayHandle;
  agent: AgentHandle;
  listener: HybridConnectionListener;
  goodUrl: string;
  badUrl: string;
  badId: string;
  /** Rendezvous the hostile agent accepted, and how many of them have closed since. */
  accepted: number;
  closed: number;
  /** The `azhexgate_tunnel_sessions` value /metrics shows for the bad tunnel (0 when absent). */
  badSessions(): number;
  stop(): Promise<void>;
}

export async function startHostileStack(onAccept: (conn: WsConnection) => void, gw: Partial<GatewayOptions> = {}): Promise<HostileStack> {
  const n = 10_000_000 + Math.floor(Math.random() * 80_000_000);
  const goodId = String(n);
  const badId = String(n + 1);
  const origin = Bun.serve({ hostname: "127.0.0.1", port: 0, development: false, fetch: (req) => new Response(`good ${new URL(req.url).pathname}`) });
  const relay = await startEmulator({ hybridConnections: [{ path: `hc-${goodId}` }, { path: `hc-${badId}` }] });
  const key = relay.entities.namespaceRules.get("RootManageSharedAccessKey")!.primaryKey;
  const tokens = sasTokenProvider("RootManageSharedAccessKey", key);
  const metrics = gatewayMetrics();
  const gateway = await startGateway({
    baseDomain: "localhost",
    resolveTunnel: (t) => (t === goodId || t === badId ? { hcPath: `hc-${t}` } : undefined),
    dial: (hc) => connectSender({ endpoint: relay.endpoint, hcPath: hc, token: tokens }),
    metrics,
    ...gw,
  });
  const agent = await startAgent({ endpoint: relay.endpoint, hcPath: `hc-${goodId}`, token: tokens, origin: `http://localhost:${origin.port}`, hostHeader: "rewrite" });
  const listener = new HybridConnectionListener({ endpoint: relay.endpoint, hcPath: `hc-${badId}`, token: tokens });
  listener.on("error", () => {});
  const h: HostileStack = {
    relay,
    gateway,
    agent,
    listener,
    goodUrl: gateway.tunnelUrl(goodId),
    badUrl: gateway.tunnelUrl(badId),
    badId,
    accepted: 0,
    closed: 0,
    badSessions() {
      const line = metrics.registry.render().split("\n").find((l) => l.startsWith("azhexgate_tunnel_sessions{") && l.includes(`"${badId}"`));
      return line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : 0;
    },
    async stop() {
      await listener.close().catch(() => {});
      await agent.stop().catch(() => {});
      await gateway.stop().catch(() => {});
      await relay.stop().catch(() => {});
      origin.stop(true);
    },
  };
  listener.on("accept", async (msg) => {
    const conn = await listener.accept(msg).catch(() => null);
    if (!conn) return;
    h.accepted++;
    conn.on("close", () => void h.closed++);
    conn.on("error", () => {});
    onAccept(conn);
  });
  await listener.open();
  return h;
}

/** Open file descriptors of this process (the gateway, relay and both agents run in it). */
export function openFds(): number {
  return readdirSync("/proc/self/fd").length;
}
