/**
 * A tunnel at a distance for the issue-17 tests: relay emulator, gateway and agent on loopback,
 * each end dialing the relay through its own delay proxy (bench/lib/delay-proxy.ts), and an
 * origin with a streamed download and a counting upload.
 */
import { startAgent, type AgentHandle } from "../../src/agent/agent.ts";
import { startEmulator } from "../../src/emulator/server.ts";
import { startGateway, type GatewayHandle } from "../../src/gateway/server.ts";
import { resolveNamespace } from "../../src/hc/address.ts";
import { connectSender } from "../../src/hc/sender.ts";
import { sasTokenProvider } from "../../src/hc/tokens.ts";
import type { PoolOptions } from "../../src/tunnel/pool.ts";
import { startDelayProxy } from "../../bench/lib/delay-proxy.ts";

const BLOCK = new Uint8Array(64 * 1024).fill(7);

export async function startWanStack(o: { delayMs: number; window?: number; pool?: Omit<PoolOptions, "dial"> }) {
  const id = String(10_000_000 + Math.floor(Math.random() * 89_999_999));
  const hcPath = `hc-${id}`;
  const origin = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    development: false,
    maxRequestBodySize: Number.MAX_SAFE_INTEGER,
    async fetch(req) {
      const u = new URL(req.url);
      if (u.pathname === "/up") {
        let n = 0;
        for await (const c of req.body!) n += c.length;
        return new Response(String(n));
      }
      let left = Number(u.searchParams.get("n") ?? 0);
      return new Response(new ReadableStream({
        pull(c) {
          if (left <= 0) return c.close();
          const k = Math.min(BLOCK.length, left);
          left -= k;
          c.enqueue(BLOCK.subarray(0, k));
        },
      }, { highWaterMark: 0 }));
    },
  });
  const relay = await startEmulator({ hybridConnections: [{ path: hcPath }] });
  const token = sasTokenProvider("RootManageSharedAccessKey", relay.entities.namespaceRules.get("RootManageSharedAccessKey")!.primaryKey);
  const gp = await startDelayProxy({ targetPort: relay.port, delayMs: o.delayMs });
  const ap = await startDelayProxy({ targetPort: relay.port, delayMs: o.delayMs });
  const gEnd = resolveNamespace(`ws://127.0.0.1:${gp.port}`);
  const gateway: GatewayHandle = await startGateway({
    baseDomain: "localhost",
    resolveTunnel: (t) => (t === id ? { hcPath } : undefined),
    dial: (hc) => connectSender({ endpoint: gEnd, hcPath: hc, token }),
    pool: { ...(o.window ? { window: o.window } : {}), ...o.pool },
  });
  const agent: AgentHandle = await startAgent({
    endpoint: resolveNamespace(`ws://127.0.0.1:${ap.port}`),
    hcPath,
    token,
    origin: `http://127.0.0.1:${origin.port}`,
    hostHeader: "rewrite",
    ...(o.window ? { window: o.window } : {}),
  });
  return {
    url: gateway.tunnelUrl(id),
    proxies: [gp, ap],
    async stop() {
      await agent.stop().catch(() => {});
      await gateway.stop().catch(() => {});
      gp.stop();
      ap.stop();
      await relay.stop().catch(() => {});
      origin.stop(true);
    },
  };
}
