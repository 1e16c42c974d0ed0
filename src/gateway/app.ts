/**
 * The whole gateway process, assembled from its parts: tunnel registry, relay binding (Azure or
 * the local emulator), API keys, access policy, tunnel service, management API, and the public
 * ingress. Used by `azhexgate gateway`, by the embedded default of `azhexgate start`, and by tests.
 */
import type { TokenCredential } from "@azure/core-auth";
import type { GatewayConfig } from "../config.ts";
import { createAccessPolicy } from "../api/access.ts";
import { loadApiKeys, type ApiKeyStore } from "../api/keys.ts";
import { createOidcVerifier } from "../api/oidc.ts";
import { createManagementApi, type ManagementApi } from "../api/routes.ts";
import { TunnelService } from "../api/tunnels.ts";
import { createRelayBinding } from "../control/mode.ts";
import { createLocalBinding } from "../control/local.ts";
import { rolePropagation } from "../control/propagation.ts";
import { type Reconciler, startReconciler } from "../control/reconciler.ts";
import type { RelayBinding } from "../control/types.ts";
import { startEmulator } from "../emulator/server.ts";
import { openRegistry } from "../registry/index.ts";
import type { TunnelRegistry } from "../registry/types.ts";
import type { Logger } from "../log.ts";
import { createAccessLog } from "./access-log.ts";
import { createConsole, type GatewayConsole } from "./console/routes.ts";
import { senderDialer } from "./credential.ts";
import { createVisitorAuth, type VisitorAuth } from "./visitor-auth.ts";
import { gatewayMetrics } from "./metrics.ts";
import { createPolicyGate } from "./policy/gate.ts";
import { BandwidthLimiter } from "./policy/bandwidth.ts";
import { metricsAccessPolicy } from "./metrics-access.ts";
import { routeHost, startGateway, type GatewayHandle } from "./server.ts";

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
  /** Credential for Key Vault (default: DefaultAzureCredential, loaded only when a vault is configured). */
  keyVaultCredential?: TokenCredential;
  /** Backoff of the key loader while the keys are unavailable (default 1 s → 60 s). */
  keysRetry?: { firstMs?: number; maxMs?: number };
}

export interface GatewayApp {
  readonly gateway: GatewayHandle;
  readonly binding: RelayBinding;
  readonly registry: TunnelRegistry;
  /** The orphaned-HC reconciler (runs on its own interval; tests call runOnce). */
  readonly reconciler: Reconciler;
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
    // One window for ARM, Key Vault and the relay: all depend on role assignments made by the same deployment.
    const roles = rolePropagation({ windowMs: config.rolePropagationSeconds * 1000, log: (message, fields) => log.warn(message, fields) });
    const binding =
      o.binding ??
      (await createRelayBinding(o.env, {
        log: (event, fields) => relayLog.info(event, fields),
        startLocalEmulator: () => startEmulator({ hostname: "127.0.0.1", port: 0 }),
        createLocal: (emu) => createLocalBinding(emu),
        rolePropagation: roles,
      }));
    if (!o.binding) cleanups.push(() => binding.close());
    // With Key Vault, start without its keys rather than crash-loop on a fresh deploy (secret not
    // created yet, role not effective yet): /readyz says why, the API answers 503, retries fill it in.
    const keys: ApiKeyStore = await loadApiKeys({
      env: [config.apiKeys.join(","), ...(o.extraApiKeys ?? [])].filter(Boolean).join(","),
      file: config.apiKeysFile,
      keyVault: config.keyVault
        ? {
            vaultUrl: config.keyVault.url,
            secretName: config.keyVault.secret,
            credential:
              o.keyVaultCredential ??
              new (await import("@azure/identity")).DefaultAzureCredential(
                o.env.AZURE_CLIENT_ID ? { managedIdentityClientId: o.env.AZURE_CLIENT_ID } : {},
              ),
          }
        : undefined,
      waitForSources: config.keyVault !== undefined,
      retry: o.keysRetry,
      rolePropagation: roles,
      log: log.child("keys"),
    });
    cleanups.push(() => keys.stop());
    const access = createAccessPolicy({ allow: config.allowCidrs, trustedProxies: config.trustedProxies });
    const service = new TunnelService({
      registry,
      provisioner: binding.provisioner,
      issuer: binding.issuer,
      tokenTtlSeconds: o.tokenTtlSeconds ?? config.tokenTtlSeconds,
      idleTtlMs: config.idleTtlSeconds === undefined ? undefined : config.idleTtlSeconds * 1000,
      maxTunnelsPerKey: config.maxTunnelsPerKey,
      log: log.child("tunnels"),
    });
    let api: ManagementApi | undefined;
    let web: GatewayConsole | undefined;
    const metrics = gatewayMetrics();
    let visitor: VisitorAuth | undefined;
    const bandwidth = new BandwidthLimiter();
    const gateway = await startGateway({
      hostname: config.host,
      port: config.port,
      baseDomain: config.baseDomain,
      localHosts: config.localHosts,
      publicScheme: config.publicScheme,
      ttfbMs: config.ttfbSeconds * 1000,
      bodyIdleMs: config.bodyTimeoutSeconds * 1000,
      resolveTunnel: async (id) => {
        const rec = await registry.get(id);
        return rec ? { hcPath: rec.hcPath, policy: rec.policy } : undefined;
      },
      // the relay's data plane: the same propagation window and log line as ARM / Key Vault
      dial: senderDialer(binding, {
        ...(binding.mode === "azure" ? { rolePropagationMs: roles.windowMs } : {}),
        onPropagating: (hcPath, err) => roles.note(`Relay ${err.status} on a sender connection`, `${hcPath}: ${err.message}`),
      }),
      accessLog: (() => {
        const access = log.child("access");
        return createAccessLog(config.accessLog, config.accessLogSample, (line) => access.info("request", line as unknown as Record<string, unknown>));
      })(),
      throttle: (id, route) => {
        const L = config.identity.limits;
        const want = route.policy?.bandwidth ?? L.bandwidth;
        return bandwidth.throttle(id, L.bandwidthMax > 0 && (want === 0 || want > L.bandwidthMax) ? L.bandwidthMax : want);
      },
      admit: createPolicyGate({
        limits: config.identity.limits,
        refusals: metrics.refusals,
        visitor: config.identity.visitor ? { admit: (req, ctx, entra) => visitor!.admit(req, ctx, entra) } : undefined,
      }),
      metrics,
      metricsAccess: metricsAccessPolicy(config.metrics, config.metricsToken, access, config.allowCidrs.length > 0),
      apex: (req, server) => {
        if (!api) return new Response("starting", { status: 503 });
        const signIn = visitor?.apex(req);
        if (signIn) return signIn;
        const peer = { address: server.requestIP(req)?.address ?? "" };
        if (web?.owns(new URL(req.url).pathname)) return web.fetch(req, peer); // the console: /console (src/gateway/console/)
        return api.fetch(req, peer);
      },
      client: (req, peer) => {
        const trusted = access.trusts(peer.address);
        const address = (trusted && access.clientIp(peer.address, req.headers.get("x-forwarded-for"))) || peer.address;
        const fwdProto = trusted ? req.headers.get("x-forwarded-proto")?.split(",")[0]?.trim().toLowerCase() : undefined;
        return { address, port: address === peer.address ? peer.port : 0, proto: fwdProto === "http" || fwdProto === "https" ? fwdProto : undefined };
      },
      // Front Door keeps the public host in X-Forwarded-Host when it sends the origin's own name as
      // Host (https://learn.microsoft.com/en-us/azure/frontdoor/front-door-http-headers-protocol):
      // believed only from a trusted proxy, and only when the operator says so.
      publicHost: config.trustForwardedHost
        ? (req, peer) => {
            const fwd = access.trusts(peer) ? req.headers.get("x-forwarded-host")?.split(",").at(-1)?.trim() : undefined;
            return fwd || req.headers.get("host");
          }
        : undefined,
      ready: async () => {
        try {
          await registry.list({ keyId: "readiness-probe" });
        } catch {
          return { ready: false, reason: "the tunnel registry does not answer; check AZHEXGATE_REGISTRY and that the store is reachable" };
        }
        const missing = keys.unavailable;
        return missing === undefined ? { ready: true } : { ready: false, reason: missing };
      },
    });
    cleanups.push(() => gateway.stop());
    const oidcVerifier = config.identity.oidc ? createOidcVerifier(config.identity.oidc) : undefined;
    api = createManagementApi({
      service,
      keys,
      oidc: oidcVerifier,
      authInfo: config.identity.oidc,
      policy: { limits: config.identity.limits, entraAvailable: config.identity.visitor !== undefined },
      access,
      log: log.child("api"),
      publicUrl: (id) => gateway.tunnelUrl(id),
      relayEndpoint: `${binding.endpoint.scheme}://${binding.endpoint.host}`,
    });
    cleanups.push(() => api?.stop());
    if (config.identity.visitor && config.identity.oidc) {
      // The one callback registered at the provider: the API host (Entra allows no wildcard redirect URIs).
      const scheme = config.publicScheme;
      const port = scheme === "http" && gateway.port !== 80 ? `:${gateway.port}` : "";
      const apiHost = config.localHosts || config.baseDomain === "localhost" ? `localhost${port}` : `api.${config.baseDomain}${port}`;
      visitor = createVisitorAuth({
        oidc: config.identity.oidc,
        visitor: config.identity.visitor,
        apiBase: `${scheme}://${apiHost}`,
        policyOf: async (id) => (await registry.get(id))?.policy,
        tunnelOf: (host) => {
          try {
            return routeHost(host, config.baseDomain) || undefined;
          } catch {
            return undefined;
          }
        },
      });
      log.info("visitor sign-in ready", { redirect_uri: visitor.redirectUri });
    }
    const reconciler = startReconciler({
      provisioner: binding.provisioner,
      registry,
      intervalMs: config.reconcileIntervalSeconds * 1000,
      graceMs: config.reconcileGraceSeconds * 1000,
      log: log.child("reconciler"),
    });
    cleanups.push(() => reconciler.stop());
    const cliClientId = config.identity.oidc?.cliClientId;
    web = createConsole({ api, metrics: gateway.metrics, ...(oidcVerifier && cliClientId ? { oidc: { clientId: cliClientId, scopes: config.identity.oidc!.cliScopes, discovery: oidcVerifier.discovery } } : {}) });
    const apiUrl = `${config.publicScheme === "https" ? "https" : "http"}://${config.baseDomain}${config.publicScheme === "http" && gateway.port !== 80 ? `:${gateway.port}` : ""}`;
    log.info("gateway ready", { url: gateway.url, api_url: apiUrl, base_domain: config.baseDomain, relay_mode: binding.mode, registry: config.registry.replace(/\/\/[^@/]*@/, "//***@") });
    let stopping: Promise<void> | undefined;
    const app: GatewayApp = {
      gateway,
      binding,
      registry,
      reconciler,
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
