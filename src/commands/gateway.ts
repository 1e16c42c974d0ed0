/**
 * `azhexgate gateway` — public ingress + management API. Relay settings come from the
 * environment (AZHEXGATE_RELAY_NAMESPACE …); without them it runs the local relay emulator.
 * SIGTERM / Ctrl+C: stop accepting, drain in-flight streams, exit 0.
 */
import { defineCommand, type ArgsDef } from "citty";
import { strictFlags } from "./_args.ts";

const flags = {
  port: { type: "string", description: "Port to listen on [AZHEXGATE_PORT, default 8080]", valueHint: "n" },
  host: { type: "string", description: "Address to bind [AZHEXGATE_HOST, default 127.0.0.1]", valueHint: "addr" },
  "base-domain": { type: "string", description: "Tunnels are {id}.{base-domain}; the management API answers on it and api.{base-domain} only [AZHEXGATE_BASE_DOMAIN; unset on loopback: localhost, tunnels at {id}.localhost:PORT and the API on any loopback or IP host]", valueHint: "domain" },
  "public-scheme": { type: "string", description: "Scheme of public URLs: https or http [AZHEXGATE_PUBLIC_SCHEME, default http for localhost, else https]", valueHint: "scheme" },
  registry: { type: "string", description: "Tunnel registry: sqlite:PATH, :memory: or redis://HOST:PORT [AZHEXGATE_REGISTRY]", valueHint: "spec" },
  "api-keys-file": { type: "string", description: "File with management API keys, one per line [AZHEXGATE_API_KEYS_FILE]; keys may also come from AZHEXGATE_API_KEYS", valueHint: "file" },
  "allow-cidr": { type: "string", description: "Comma-separated CIDRs allowed to call the management API [AZHEXGATE_API_ALLOW_CIDRS]", valueHint: "cidrs" },
  "trusted-proxies": { type: "string", description: "CIDRs whose X-Forwarded-For is trusted [AZHEXGATE_TRUSTED_PROXIES]", valueHint: "cidrs" },
  ttfb: { type: "string", description: "Seconds to wait for the local app's first byte [AZHEXGATE_TTFB_SECONDS, default 120]", valueHint: "s" },
  drain: { type: "string", description: "Seconds to drain in-flight requests on SIGTERM [AZHEXGATE_DRAIN_SECONDS, default 30]", valueHint: "s" },
  "token-ttl": { type: "string", description: "Lifetime of the listener tokens handed to agents, seconds [AZHEXGATE_TOKEN_TTL_SECONDS, default 3600]", valueHint: "s" },
  "idle-ttl": { type: "string", description: "Idle tunnels are removed after this many seconds [AZHEXGATE_IDLE_TTL_SECONDS, default 7200]", valueHint: "s" },
  "log-level": { type: "string", description: "silent, error, warn, info or debug [AZHEXGATE_LOG_LEVEL]", valueHint: "level" },
  "log-format": { type: "string", description: "pretty or json (default: json when not a terminal) [AZHEXGATE_LOG_FORMAT]", valueHint: "format" },
} as const satisfies ArgsDef;

export default defineCommand({
  meta: { name: "gateway", description: "Run the gateway: public HTTP/WebSocket ingress and the management API" },
  args: flags,
  async run({ args, rawArgs }) {
    strictFlags("gateway", rawArgs, flags);
    const { resolveGatewayConfig, ConfigError } = await import("../config.ts");
    const { createLogger } = await import("../log.ts");
    let config;
    try {
      config = resolveGatewayConfig(args as Record<string, string | undefined>, process.env);
    } catch (err) {
      if (err instanceof ConfigError || (err as Error)?.name === "RelaySettingsError") {
        console.error(`azhexgate gateway: ${(err as Error).message}`);
        process.exit(2);
      }
      throw err;
    }
    const log = createLogger({ level: config.logLevel, format: config.logFormat }).child("gateway");
    if (!config.localHosts && args["base-domain"] === undefined && process.env.AZHEXGATE_BASE_DOMAIN === undefined) {
      log.warn("AZHEXGATE_BASE_DOMAIN is not set: tunnels are served at {id}.azhexgate.com; set it to the wildcard domain that points at this gateway", { host: config.host });
    }
    // Azure mode: the sender's relay WebSockets follow HTTPS_PROXY / NO_PROXY like the Azure SDK's
    // own calls (ARM, managed identity) and Key Vault's fetch do. Local mode's emulator is in-process.
    if (process.env.AZHEXGATE_RELAY_NAMESPACE?.trim()) {
      const { proxyRouting, setProcessProxy } = await import("../net/proxy.ts");
      try {
        const routing = proxyRouting({ env: process.env });
        setProcessProxy(routing);
        const described = routing.describe();
        if (described) log.info("relay proxy", { proxy: described });
      } catch (err) {
        console.error(`azhexgate gateway: ${(err as Error).message}`);
        process.exit(2);
      }
    }
    const { startGatewayApp } = await import("../gateway/app.ts");
    let app;
    try {
      app = await startGatewayApp({ config, env: process.env, log });
    } catch (err) {
      log.error("gateway failed to start", { error: err as Error });
      console.error(`azhexgate gateway: ${(err as Error).message}`);
      process.exit((err as Error)?.name === "RelaySettingsError" || (err as Error)?.name === "TypeError" ? 2 : 1);
    }
    let signals = 0;
    const onSignal = async (sig: string) => {
      if (++signals > 1) process.exit(1);
      log.info("draining", { signal: sig, grace_s: config.drainSeconds });
      const cut = await app.drain(config.drainSeconds * 1000);
      log.info("stopped", { streams_cut: cut });
      process.exit(0);
    };
    process.on("SIGTERM", () => void onSignal("SIGTERM"));
    process.on("SIGINT", () => void onSignal("SIGINT"));
  },
});
