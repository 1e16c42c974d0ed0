/**
 * A tunnel for supervisor tests, without the management API: a relay emulator, a local origin,
 * a gateway (restartable: a fresh one has no warm sessions, so it must dial a new rendezvous),
 * and `connect` / `renew` callbacks that do what the API will do — upsert the hybrid connection
 * with a Listen-only rule and sign short-lived SAS tokens with it.
 */
import { startGateway, type GatewayHandle } from "../../src/gateway/server.ts";
import { resourceUri } from "../../src/hc/address.ts";
import { createSasToken } from "../../src/hc/sas.ts";
import { connectSender } from "../../src/hc/sender.ts";
import { sasTokenProvider } from "../../src/hc/tokens.ts";
import { startEmulator, type EmulatorHandle } from "../../src/emulator/server.ts";
import { newKey } from "../../src/emulator/entities.ts";
import type { TunnelGrant } from "../../src/agent/supervisor.ts";

export interface AgentRelay {
  relay: EmulatorHandle;
  origin: ReturnType<typeof Bun.serve>;
  gateway: GatewayHandle;
  id: string;
  hcPath: string;
  /** Public URL through the current gateway. */
  readonly url: string;
  /** Lifetime of the listener tokens handed out (ms); may be changed between calls. */
  ttlMs: number;
  calls: { connect: number; renew: Array<{ rejected: boolean }> };
  connect(): Promise<TunnelGrant>;
  renew(grant: TunnelGrant, o: { rejected: boolean }): Promise<{ token: string; expiresAt: number }>;
  /** Replaces the gateway with a fresh one (no warm sessions). */
  restartGateway(): Promise<void>;
  stop(): Promise<void>;
}

export interface AgentRelayOptions {
  ttlMs?: number;
  /**
   * Clock the grants' `expiresAt` are read on (a test's manual clock). When given, the SAS token
   * itself stays valid for an hour of real time, so only the supervisor's clock decides renewals.
   */
  now?: () => number;
}

export async function startAgentRelay(originOpts: Parameters<typeof Bun.serve>[0], o: AgentRelayOptions = {}): Promise<AgentRelay> {
  const id = String(10_000_000 + Math.floor(Math.random() * 89_999_999));
  const hcPath = `hc-${id}`;
  const listenKey = newKey();
  const origin = Bun.serve({ hostname: "127.0.0.1", port: 0, development: false, ...originOpts } as Parameters<typeof Bun.serve>[0]);
  const relay = await startEmulator();
  const root = relay.entities.namespaceRules.get("RootManageSharedAccessKey")!;
  const senderTokens = sasTokenProvider(root.name, root.primaryKey);
  const newGateway = () =>
    startGateway({
      baseDomain: "localhost",
      resolveTunnel: (t) => (t === id ? { hcPath } : undefined),
      dial: (hc) => connectSender({ endpoint: relay.endpoint, hcPath: hc, token: senderTokens }),
    });

  const sign = (): { token: string; expiresAt: number } => {
    const ttl = fixture.ttlMs;
    if (o.now) {
      const se = Math.floor(Date.now() / 1000) + 3600;
      return { token: createSasToken(resourceUri(relay.endpoint, hcPath), "listen", listenKey, se), expiresAt: o.now() + ttl };
    }
    const se = Math.floor((Date.now() + ttl) / 1000); // SAS expiry has whole seconds: report the real one
    return { token: createSasToken(resourceUri(relay.endpoint, hcPath), "listen", listenKey, se), expiresAt: se * 1000 };
  };

  const fixture: AgentRelay = {
    relay,
    origin,
    gateway: await newGateway(),
    id,
    hcPath,
    get url() {
      return fixture.gateway.tunnelUrl(id);
    },
    ttlMs: o.ttlMs ?? 3_600_000,
    calls: { connect: 0, renew: [] },
    async connect() {
      fixture.calls.connect++;
      relay.entities.upsert({ path: hcPath, rules: [{ name: "listen", rights: ["Listen"], primaryKey: listenKey }] });
      const t = sign();
      return { endpoint: relay.endpoint, hcPath, publicUrl: fixture.url, sessionId: `s-${fixture.calls.connect}`, ...t };
    },
    async renew(_grant, r) {
      fixture.calls.renew.push({ rejected: r.rejected });
      return sign();
    },
    async restartGateway() {
      await fixture.gateway.stop();
      fixture.gateway = await newGateway();
    },
    async stop() {
      await fixture.gateway.stop().catch(() => {});
      await relay.stop().catch(() => {});
      origin.stop(true);
    },
  };
  return fixture;
}
