/**
 * Starts the whole data path on loopback for end-to-end tests: relay emulator, gateway, agent,
 * and a local origin app given as a Bun.serve options object.
 */
import { startAgent, type AgentHandle, type AgentOptions } from "../../src/agent/agent.ts";
import { startGateway, type GatewayHandle, type GatewayOptions } from "../../src/gateway/server.ts";
import { connectSender } from "../../src/hc/sender.ts";
import { sasTokenProvider } from "../../src/hc/tokens.ts";
import { startEmulator, type EmulatorHandle } from "../../src/emulator/server.ts";

export interface Stack {
  relay: EmulatorHandle;
  gateway: GatewayHandle;
  agent: AgentHandle;
  origin: ReturnType<typeof Bun.serve>;
  /** Public URL of the tunnel, e.g. http://12345678.localhost:PORT */
  url: string;
  id: string;
  stop(): Promise<void>;
}

export async function startStack(
  originOpts: Parameters<typeof Bun.serve>[0],
  opts: { gateway?: Partial<GatewayOptions>; agent?: Partial<AgentOptions>; hostHeader?: "rewrite" | "preserve"; originPort?: number; originScheme?: "http" | "https" } = {},
): Promise<Stack> {
  const id = String(10_000_000 + Math.floor(Math.random() * 89_999_999));
  const hcPath = `hc-${id}`;
  const origin = Bun.serve({ hostname: "127.0.0.1", port: 0, development: false, maxRequestBodySize: Number.MAX_SAFE_INTEGER, ...originOpts } as Parameters<typeof Bun.serve>[0]);
  const relay = await startEmulator({ hybridConnections: [{ path: hcPath }] });
  const key = relay.entities.namespaceRules.get("RootManageSharedAccessKey")!.primaryKey;
  const tokens = sasTokenProvider("RootManageSharedAccessKey", key);
  const gateway = await startGateway({
    baseDomain: "localhost",
    resolveTunnel: (t) => (t === id ? { hcPath } : undefined),
    dial: (hc) => connectSender({ endpoint: relay.endpoint, hcPath: hc, token: tokens }),
    ...opts.gateway,
  });
  const agent = await startAgent({
    endpoint: relay.endpoint,
    hcPath,
    token: tokens,
    origin: `${opts.originScheme ?? "http"}://localhost:${opts.originPort ?? origin.port}`,
    hostHeader: opts.hostHeader ?? "rewrite",
    ...opts.agent,
  });
  return {
    relay,
    gateway,
    agent,
    origin,
    id,
    url: gateway.tunnelUrl(id),
    async stop() {
      await agent.stop().catch(() => {});
      await gateway.stop().catch(() => {});
      await relay.stop().catch(() => {});
      origin.stop(true);
    },
  };
}
