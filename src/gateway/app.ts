/**
 * The whole gateway process, assembled from its parts: tunnel registry, relay binding (Azure or
 * the local emulator), API keys, access policy, tunnel service, management API, and the public
 * ingress. Used by `azhexgate gateway`, by the embedded default of `azhexgate start`, and by tests.
 */
import type { GatewayConfig } from "../config.ts";
import { createAccessPolicy } from "../api/access.ts";
import { loadApiKeys, type ApiKeyStore } from "../api/keys.ts";
import { createManagementApi, type ManagementApi } from "../api/routes.ts";
import { TunnelService } from "../api/tunnels.ts";
import { createRelayBinding } from "../control/mode.ts";
import { createLocalBinding } from "../control/local.ts";
import type { RelayBinding } from "../control/types.ts";
import { startEmulator } from "../emulator/server.ts";
import { openRegistry } from "../registry/index.ts";
import type { TunnelRegistry } from "../registry/types.ts";
import type { Logger } from "../log.ts";
import { createConsole, type GatewayConsole } from "./console/routes.ts";
import { senderDialer } from "./credential.ts";
import { startGateway, type GatewayHandle } from "./server.ts";

export interface GatewayAppOptions {
  config: Readonly<GatewayConfig>;
  /** The environment the relay settings are read from (AZHEXGATE_RELAY_*, AZURE_*). */
  env: Record<string, string | undefined>;
  log: Logger;
  /** Extra API keys (the embedded default mints one for its own agent). */
  extraApiKeys?: string[];
  /** Listener token lifetime handed to agents (default: config.tokenTtlSeconds). */
  tokenTtlSeconds?: number;
  /** A relay binding shared with other gateway instances (tests, embedding); not closed by stop(). */
  binding?: RelayBinding;
}

export interface GatewayApp {
  readonly gateway: GatewayHandle;
  readonly binding: RelayBinding;
  readonly registry: TunnelRegistry;
  /** Base URL of the management API, e.g. `http://localhost:8080` (routes under /api/). */
  readonly apiUrl: string;
  /** SIGTERM path: stop accepting, drain in-flight streams, close everything. */
  drain(graceMs: number): Promise<number>;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export async function startGatewayApp(o: GatewayAppOptions): Promise<GatewayApp> {
  const { config, log } = o;
  const cleanups: Array<() => unknown> = [];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => {});
  };
  try {
    const registry = await openRegistry(config.registry);
    cleanups.push(() => registry.close());
    const relayLog = log.child("relay");
    const binding =
      o.binding ??
      (await createRelayBinding(o.env, {
        log: (event, fields) => relayLog.info(event, fields),
        startLocalEmulator: () => startEmulator({ hostname: "127.0.0.1", port: 0 }),
        createLocal: (emu) => createLocalBinding(emu),
      }));
    if (!o.binding) cleanups.push(() => binding.close());
    const keys: ApiKeyStore = await loadApiKeys({
      env: [config.apiKeys.join(","), ...(o.extraApiKeys ?? [])].filter(Boolean).join(","),
      file: config.apiKeysFile,
      keyVault: config.keyVault
        ? {
            vaultUrl: config.keyVault.url,
            secretName: config.keyVault.secret,
            credential: new (await import("@azure/identity")).DefaultAzureCredential(),
          }
        : undefined,
      log: log.child("keys"),
    });
    cleanups.push(() => keys.stop());
    const service = new TunnelService({
      registry,
      provisioner: binding.provisioner,
      issuer: binding.issuer,
      tokenTtlSeconds: o.tokenTtlSeconds ?? config.tokenTtlSeconds,
      idleTtlMs: config.idleTtlSeconds === undefined ? undefined : config.idleTtlSeconds * 1000,
      log: log.child("tunnels"),
    });
    let api: ManagementApi | undefined;
    let web: GatewayConsole | undefined;
    const gateway = await startGateway({
      hostname: config.host,
      port: config.port,
      baseDomain: config.baseDomain,
      localHosts: config.localHosts,
      publicScheme: config.publicScheme,
      ttfbMs: config.ttfbSeconds * 1000,
      resolveTunnel: async (id) => {
        const rec = await registry.get(id);
        return rec ? { hcPath: rec.hcPath } : undefined;
      },
      dial: senderDialer(binding),
      apex: (req, server) => {
        if (!api) return new Response("starting", { status: 503 });
        const peer = { address: server.requestIP(req)?.address ?? "" };
        if (web?.owns(new URL(req.url).pathname)) return web.fetch(req, peer); // the console: /console (src/gateway/console/)
        return api.fetch(req, peer);
      },
      ready: async () => {
        await registry.list({ keyId: "readiness-probe" });
        return true;
      },
    });
    cleanups.push(() => gateway.stop());
    api = createManagementApi({
      service,
      keys,
      access: createAccessPolicy({ allow: config.allowCidrs, trustedProxies: config.trustedProxies }),
      log: log.child("api"),
      publicUrl: (id) => gateway.tunnelUrl(id),
      relayEndpoint: `${binding.endpoint.scheme}://${binding.endpoint.host}`,
    });
    cleanups.push(() => api?.stop());
    web = createConsole({ api, metrics: gateway.metrics });
    const apiUrl = `${config.publicScheme === "https" ? "https" : "http"}://${config.baseDomain}${config.publicScheme === "http" && gateway.port !== 80 ? `:${gateway.port}` : ""}`;
    log.info("gateway ready", { url: gateway.url, api_url: apiUrl, base_domain: config.baseDomain, relay_mode: binding.mode, registry: config.registry.replace(/\/\/[^@/]*@/, "//***@") });
    let stopping: Promise<void> | undefined;
    const app: GatewayApp = {
      gateway,
      binding,
      registry,
      apiUrl,
      async drain(graceMs) {
        const cut = await gateway.drain(graceMs);
        await app.stop();
        return cut;
      },
      stop() {
        stopping ??= cleanup();
        return stopping;
      },
      [Symbol.asyncDispose]: () => app.stop(),
    };
    return app;
  } catch (err) {
    await cleanup();
    throw err;
  }
}
