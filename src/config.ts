/**
 * Configuration, resolved once at the edge: flags > AZHEXGATE_* environment > config file >
 * defaults; validated and frozen. Nothing below the CLI reads `process.env`. Secrets are kept
 * out of enumerable fields so a config object can be logged.
 */
import { type IdentityConfig, IDENTITY_SETTING_NAMES, resolveIdentitySettings } from "./identity-settings.ts";

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

export type Env = Record<string, string | undefined>;

/** Names of the gateway settings read from the environment (infra/ must use exactly these). */
export const GATEWAY_SETTING_NAMES = [
  "AZHEXGATE_PORT",
  "AZHEXGATE_HOST",
  "AZHEXGATE_BASE_DOMAIN",
  "AZHEXGATE_PUBLIC_SCHEME",
  "AZHEXGATE_REGISTRY",
  "AZHEXGATE_API_KEYS",
  "AZHEXGATE_API_KEYS_FILE",
  "AZHEXGATE_KEYVAULT_URL",
  "AZHEXGATE_KEYVAULT_SECRET",
  "AZHEXGATE_API_ALLOW_CIDRS",
  "AZHEXGATE_TRUSTED_PROXIES",
  "AZHEXGATE_TTFB_SECONDS",
  "AZHEXGATE_DRAIN_SECONDS",
  "AZHEXGATE_TOKEN_TTL_SECONDS",
  "AZHEXGATE_IDLE_TTL_SECONDS",
  "AZHEXGATE_LOG_LEVEL",
  "AZHEXGATE_LOG_FORMAT",
  "AZHEXGATE_ROLE_PROPAGATION_SECONDS",
  "AZHEXGATE_RECONCILE_INTERVAL_SECONDS",
  "AZHEXGATE_RECONCILE_GRACE_SECONDS",
  "AZHEXGATE_TRUST_FORWARDED_HOST",
  "AZHEXGATE_ACCESS_LOG",
  "AZHEXGATE_ACCESS_LOG_SAMPLE",
  ...IDENTITY_SETTING_NAMES,
  "AZHEXGATE_BODY_TIMEOUT_SECONDS",
  "AZHEXGATE_METRICS",
  "AZHEXGATE_METRICS_TOKEN",
  "AZHEXGATE_MAX_TUNNELS_PER_KEY",
] as const;

export interface GatewayConfig {
  port: number;
  host: string;
  baseDomain: string;
  publicScheme: "http" | "https";
  /**
   * True for a local gateway (no base domain set, bound to loopback): tunnels are
   * `{id}.localhost:{port}` over http and the management API answers on any host that is not a
   * tunnel's (`localhost`, `127.0.0.1`, `[::1]`, any IP). A deployed gateway (base domain set)
   * keeps the strict rule: the API only on the apex and `api.` hosts.
   */
  localHosts: boolean;
  /** `sqlite:path`, a path, `:memory:`, or `redis://…`. */
  registry: string;
  apiKeysFile?: string;
  keyVault?: { url: string; secret: string };
  allowCidrs: string[];
  trustedProxies: string[];
  ttfbSeconds: number;
  /** A request body idle this long is abandoned (default 60). */
  bodyTimeoutSeconds: number;
  drainSeconds: number;
  /** Listener token lifetime handed to agents (default 3600). */
  tokenTtlSeconds: number;
  /** Idle tunnels are removed after this (default 2 h, at least twice the token lifetime). */
  idleTtlSeconds?: number;
  logLevel: "silent" | "error" | "warn" | "info" | "debug";
  logFormat?: "pretty" | "json";
  /** After start, ARM / Key Vault 401/403 are retried this long as "role assignment not yet effective" (default 600; 0 = never). */
  rolePropagationSeconds: number;
  /** How often orphaned `hc-*` hybrid connections are looked for (default 300; 0 = never). */
  reconcileIntervalSeconds: number;
  /** An `hc-*` hybrid connection no tunnel owns is deleted once orphaned and untouched this long (default 600). */
  reconcileGraceSeconds: number;
  /**
   * Route on X-Forwarded-Host (its last value) when the peer is a trusted proxy — for a front end
   * that rewrites Host to the origin's own name (default false: always the Host header).
   */
  trustForwardedHost: boolean;
  /** Public access log: every request (`all`, default), failures only (`errors`) or none (`off`). */
  accessLog: "all" | "errors" | "off";
  /** Fraction of successful requests logged in `all` mode, 0 to 1 (default 1). */
  accessLogSample: number;
  /** OIDC for the API, visitor sign-in, per-tunnel limits (src/identity-settings.ts). */
  identity: IdentityConfig;
  /**
   * `/metrics` (it names every tunnel with its traffic): `private` (default) to loopback, the API
   * allow-list and bearers of AZHEXGATE_METRICS_TOKEN; `public` to anyone; `off` to nobody.
   */
  metrics: "off" | "private" | "public";
  /** Tunnels one API key may hold at once (default 100; 0 = no limit). */
  maxTunnelsPerKey: number;
  /** API keys from AZHEXGATE_API_KEYS (non-enumerable: never printed). */
  readonly apiKeys: string[];
  /** Bearer token that may read /metrics in `private` mode (non-enumerable: never printed). */
  readonly metricsToken?: string;
}

export function parsePort(v: string, what: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isInteger(n) || n < 0 || n > 65535) throw new ConfigError(`${what} must be a whole number from 0 to 65535 (got "${v}")`);
  return n;
}

function positive(v: string, what: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new ConfigError(`${what} must be a positive number of seconds (got "${v}")`);
  return n;
}

function nonNegative(v: string, what: string): number {
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n) || n < 0) throw new ConfigError(`${what} must be a number of seconds, 0 or more (got "${v}")`);
  return n;
}

function flag(v: string | undefined, what: string): boolean {
  if (v === undefined || v.trim() === "") return false;
  const t = v.trim().toLowerCase();
  if (t === "true" || t === "1") return true;
  if (t === "false" || t === "0") return false;
  throw new ConfigError(`${what} must be true or false (got "${v}")`);
}

function list(v: string | undefined): string[] {
  return (v ?? "").split(/[,\s]+/).map((s) => s.trim()).filter(Boolean);
}

function oneOf<T extends string>(v: string, allowed: readonly T[], what: string): T {
  if (!(allowed as readonly string[]).includes(v)) throw new ConfigError(`${what} must be one of ${allowed.join(", ")} (got "${v}")`);
  return v as T;
}

/** 127.0.0.0/8, ::1 and localhost: addresses only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, "");
  return h === "localhost" || h === "::1" || /^127(?:\.\d{1,3}){3}$/.test(h) || /^::ffff:127(?:\.\d{1,3}){3}$/.test(h);
}

/** The base domain when none is set and the gateway is not on loopback (on loopback: `localhost`, which needs no DNS). */
export const DEFAULT_BASE_DOMAIN = "azhexgate.com";

/** Gateway settings from flags (already parsed by the CLI) over the environment over defaults. */
export function resolveGatewayConfig(flags: Partial<Record<string, string | undefined>>, env: Env): Readonly<GatewayConfig> {
  const pick = (flag: string, name: string) => flags[flag] ?? env[name];
  const keyVaultUrl = pick("keyvault-url", "AZHEXGATE_KEYVAULT_URL");
  const host = pick("host", "AZHEXGATE_HOST") ?? "127.0.0.1";
  const baseDomainSet = pick("base-domain", "AZHEXGATE_BASE_DOMAIN");
  const localHosts = baseDomainSet === undefined && isLoopbackHost(host);
  const baseDomain = (baseDomainSet ?? (localHosts ? "localhost" : DEFAULT_BASE_DOMAIN)).toLowerCase();
  const cfg: GatewayConfig = {
    port: parsePort(pick("port", "AZHEXGATE_PORT") ?? "8080", "--port / AZHEXGATE_PORT"),
    host,
    baseDomain,
    publicScheme: oneOf(pick("public-scheme", "AZHEXGATE_PUBLIC_SCHEME") ?? (baseDomain === "localhost" ? "http" : "https"), ["http", "https"] as const, "--public-scheme / AZHEXGATE_PUBLIC_SCHEME"),
    localHosts,
    registry: pick("registry", "AZHEXGATE_REGISTRY") ?? "sqlite:.azhexgate/registry.db",
    apiKeysFile: pick("api-keys-file", "AZHEXGATE_API_KEYS_FILE"),
    keyVault: keyVaultUrl ? { url: keyVaultUrl, secret: pick("keyvault-secret", "AZHEXGATE_KEYVAULT_SECRET") ?? "azhexgate-api-keys" } : undefined,
    allowCidrs: list(pick("allow-cidr", "AZHEXGATE_API_ALLOW_CIDRS")),
    trustedProxies: list(pick("trusted-proxies", "AZHEXGATE_TRUSTED_PROXIES")),
    ttfbSeconds: positive(pick("ttfb", "AZHEXGATE_TTFB_SECONDS") ?? "120", "--ttfb / AZHEXGATE_TTFB_SECONDS"),
    bodyTimeoutSeconds: positive(env.AZHEXGATE_BODY_TIMEOUT_SECONDS ?? "60", "AZHEXGATE_BODY_TIMEOUT_SECONDS"),
    drainSeconds: positive(pick("drain", "AZHEXGATE_DRAIN_SECONDS") ?? "30", "--drain / AZHEXGATE_DRAIN_SECONDS"),
    tokenTtlSeconds: positive(pick("token-ttl", "AZHEXGATE_TOKEN_TTL_SECONDS") ?? "3600", "--token-ttl / AZHEXGATE_TOKEN_TTL_SECONDS"),
    idleTtlSeconds: (() => {
      const v = pick("idle-ttl", "AZHEXGATE_IDLE_TTL_SECONDS");
      return v === undefined ? undefined : positive(v, "--idle-ttl / AZHEXGATE_IDLE_TTL_SECONDS");
    })(),
    logLevel: oneOf(pick("log-level", "AZHEXGATE_LOG_LEVEL") ?? "info", ["silent", "error", "warn", "info", "debug"] as const, "--log-level / AZHEXGATE_LOG_LEVEL"),
    logFormat: (() => {
      const f = pick("log-format", "AZHEXGATE_LOG_FORMAT");
      return f === undefined ? undefined : oneOf(f, ["pretty", "json"] as const, "--log-format / AZHEXGATE_LOG_FORMAT");
    })(),
    rolePropagationSeconds: nonNegative(env.AZHEXGATE_ROLE_PROPAGATION_SECONDS ?? "600", "AZHEXGATE_ROLE_PROPAGATION_SECONDS"),
    reconcileIntervalSeconds: nonNegative(env.AZHEXGATE_RECONCILE_INTERVAL_SECONDS ?? "300", "AZHEXGATE_RECONCILE_INTERVAL_SECONDS"),
    reconcileGraceSeconds: nonNegative(env.AZHEXGATE_RECONCILE_GRACE_SECONDS ?? "600", "AZHEXGATE_RECONCILE_GRACE_SECONDS"),
    trustForwardedHost: flag(env.AZHEXGATE_TRUST_FORWARDED_HOST, "AZHEXGATE_TRUST_FORWARDED_HOST"),
    accessLog: oneOf(pick("access-log", "AZHEXGATE_ACCESS_LOG") ?? "all", ["all", "errors", "off"] as const, "--access-log / AZHEXGATE_ACCESS_LOG"),
    accessLogSample: (() => {
      const v = pick("access-log-sample", "AZHEXGATE_ACCESS_LOG_SAMPLE") ?? "1";
      const n = Number(v);
      if (v.trim() === "" || !Number.isFinite(n) || n < 0 || n > 1) throw new ConfigError(`AZHEXGATE_ACCESS_LOG_SAMPLE must be a fraction from 0 to 1, e.g. 0.1 for one successful request in ten (got "${v}")`);
      return n;
    })(),
    identity: (() => {
      try {
        return resolveIdentitySettings(env);
      } catch (e) {
        throw new ConfigError((e as Error).message);
      }
    })(),
    metrics: oneOf(pick("metrics", "AZHEXGATE_METRICS") ?? "private", ["off", "private", "public"] as const, "--metrics / AZHEXGATE_METRICS"),
    maxTunnelsPerKey: (() => {
      const v = env.AZHEXGATE_MAX_TUNNELS_PER_KEY ?? "100";
      if (!/^\d{1,9}$/.test(v.trim())) throw new ConfigError(`AZHEXGATE_MAX_TUNNELS_PER_KEY must be a whole number, 0 for no limit (got "${v}")`);
      return Number(v);
    })(),
    apiKeys: [],
  };
  if (!/^[a-z0-9.-]+$/.test(cfg.baseDomain)) throw new ConfigError(`--base-domain / AZHEXGATE_BASE_DOMAIN is not a valid domain (got "${cfg.baseDomain}")`);
  Object.defineProperty(cfg, "apiKeys", { value: Object.freeze(list(env.AZHEXGATE_API_KEYS)), enumerable: false });
  const metricsToken = env.AZHEXGATE_METRICS_TOKEN?.trim();
  if (metricsToken !== undefined && metricsToken !== "" && metricsToken.length < 16) throw new ConfigError("AZHEXGATE_METRICS_TOKEN must be at least 16 characters (use a random secret)");
  Object.defineProperty(cfg, "metricsToken", { value: metricsToken || undefined, enumerable: false });
  return Object.freeze(cfg);
}
