/**
 * `azhexgate start` configuration, resolved once: flags > AZHEXGATE_* environment > config file
 * (azhexgate.json / azhexgate.toml, several tunnels) > defaults. Validated; errors are one
 * sentence naming the setting.
 */
import type { AccessInput } from "../policy/spec.ts";
import { accessFromFlags } from "./access-flags.ts";
import { readStartFile } from "./config-file.ts";
import { proxyRouting, type ProxyRouting } from "../net/proxy.ts";
import { bearerFor, getLogin } from "./identity-cache.ts";

/** A local app's port: 1-65535 (0 is "any port" for a server, never a place to forward to). */
function localPort(v: string, what: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || n < 1 || n > 65535) throw new Error(`${what} must be the port your local app listens on, a whole number from 1 to 65535 (got "${v}")`);
  return n;
}

/**
 * A positional target, as ngrok / cloudflared users type it: `3000`, `localhost:5173`,
 * `127.0.0.1:8000`, `[::1]:3000` or `http(s)://host:port`.
 */
export function parseTarget(v: string): { port: number; host?: string; https?: boolean } {
  const what = `"${v}" (the local app to expose: a port like 3000, or host:port like localhost:5173)`;
  if (/^\d+$/.test(v)) return { port: localPort(v, "the port") };
  let m = /^(https?):\/\/(\[[0-9a-fA-F:.]+\]|[^/:]+)(?::(\d+))?\/?$/.exec(v);
  if (m) {
    const https = m[1] === "https";
    return { port: localPort(m[3] ?? (https ? "443" : "80"), `the port of ${what}`), host: m[2]!.replace(/^\[|\]$/g, ""), https };
  }
  m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d+)$/.exec(v);
  if (m) return { port: localPort(m[2]!, `the port of ${what}`), host: m[1]!.replace(/^\[|\]$/g, "") };
  throw new Error(`cannot read ${what}`);
}

export interface TunnelSpec {
  port: number;
  subdomain?: string;
  hostHeader: "rewrite" | "preserve";
  localHost: string;
  localHttps: boolean;
}

export interface StartConfig {
  tunnels: TunnelSpec[];
  apiUrl?: string;
  /** Non-enumerable: never printed. */
  readonly apiKey?: string;
  json: boolean;
  logLevel: "silent" | "error" | "warn" | "info" | "debug";
  qr: boolean;
  /** Open each tunnel's public URL in the browser once it is online. */
  open: boolean;
  exitOnFail: boolean;
  /** A tunnel deleted on the gateway is created again (new URL) instead of stopping the agent. */
  recreate: boolean;
  graceMs: number;
  /**
   * Proxy routing for the relay connections and management API calls (--proxy > HTTPS_PROXY /
   * HTTP_PROXY / ALL_PROXY, with NO_PROXY); with the embedded default, a routing that proxies
   * nothing. Non-enumerable: it may hold proxy credentials.
   */
  readonly proxy?: ProxyRouting;
  /** The request inspector; undefined with --no-inspect (nothing captured). */
  inspect?: { port: number; entries: number; bodyLimit: number };
  /** Access policy and limits for every tunnel (`--basic-auth`, `--allow-ip`, `--entra`, `--rate-limit`...); non-enumerable (passwords). */
  readonly access?: AccessInput;
  /** With --api-url and no API key: the signed-in identity's access token (non-enumerable). */
  readonly bearer?: () => Promise<string>;
  /** `azhexgate tcp` (issue 16): a TCP tunnel; `allow` = key ids / user ids that may connect besides the owner and admins. */
  tcp?: { allow: string[] };
}

function flag(raw: readonly string[], name: string): string | undefined {
  for (let i = raw.length - 1; i >= 0; i--) {
    const a = raw[i]!;
    if (a === `--${name}` && i + 1 < raw.length) return raw[i + 1];
    if (a.startsWith(`--${name}=`)) return a.slice(name.length + 3);
  }
  return undefined;
}

function bool(raw: readonly string[], name: string): boolean | undefined {
  if (raw.includes(`--${name}`)) return true;
  if (raw.includes(`--no-${name}`)) return false;
  return undefined;
}

/** The inspector's settings (flags > file > defaults), or undefined when it is off. */
function resolveInspect(raw: readonly string[], file: Awaited<ReturnType<typeof readStartFile>>): StartConfig["inspect"] {
  if (!(bool(raw, "inspect") ?? file.inspect ?? true)) return undefined;
  const whole = (name: string, v: string | number | undefined, def: number, min: number, max: number): number => {
    if (v === undefined) return def;
    const n = Number(v);
    if (!/^\d+$/.test(String(v).trim()) || n < min || n > max) throw new Error(`--${name} (${name.replace(/-/g, "_")} in a config file) must be a whole number from ${min} to ${max} (got "${v}")`);
    return n;
  };
  return {
    port: whole("inspect-port", flag(raw, "inspect-port") ?? file.inspect_port, 4040, 0, 65535),
    entries: whole("inspect-entries", flag(raw, "inspect-entries") ?? file.inspect_entries, 500, 1, 100_000),
    bodyLimit: whole("inspect-body-limit", flag(raw, "inspect-body-limit") ?? file.inspect_body_limit, 64 * 1024, 0, 64 * 1024 * 1024),
  };
}

const SUBDOMAIN = /^[a-z0-9](?:[a-z0-9-]{1,38}[a-z0-9])$/;

export async function resolveStartConfig(
  raw: readonly string[],
  allValues: (raw: readonly string[], name: string) => string[],
  env: Record<string, string | undefined>,
  cwd: string,
  positionals: readonly string[] = [],
  kind: "http" | "tcp" = "http",
): Promise<StartConfig> {
  const file = await readStartFile(flag(raw, "config"), cwd);
  const hostHeader = (flag(raw, "host-header") ?? file.host_header ?? "rewrite") as TunnelSpec["hostHeader"];
  if (hostHeader !== "rewrite" && hostHeader !== "preserve") throw new Error(`--host-header must be rewrite or preserve (got "${hostHeader}")`);
  // `tcp` says --name / --host for what `start` calls --subdomain / --local-host.
  const subdomain = flag(raw, kind === "tcp" ? "name" : "subdomain");
  if (subdomain !== undefined && !SUBDOMAIN.test(subdomain)) throw new Error(`--${kind === "tcp" ? "name" : "subdomain"} must be 3-40 lowercase letters, digits or hyphens (got "${subdomain}")`);
  const localHost = flag(raw, kind === "tcp" ? "host" : "local-host") ?? file.local_host ?? "localhost";
  const localHttps = bool(raw, "local-https") ?? file.local_https ?? false;
  const ports = allValues(raw, "port");
  let tunnels: TunnelSpec[];
  if (ports.length || positionals.length) {
    if (subdomain && ports.length + positionals.length > 1) throw new Error("--subdomain names one tunnel; use a config file to name several");
    tunnels = [
      ...positionals.map((p) => {
        const t = parseTarget(p);
        return { port: t.port, subdomain, hostHeader, localHost: t.host ?? localHost, localHttps: t.https ?? localHttps };
      }),
      ...ports.map((p) => ({ port: localPort(p, "--port"), subdomain, hostHeader, localHost, localHttps })),
    ];
  } else if (file.tunnels?.length) {
    // validated by config-file.ts: ports, names and host_header are already the right shape
    tunnels = file.tunnels.map((t) => ({
      port: t.port,
      subdomain: t.subdomain,
      hostHeader: t.host_header ?? hostHeader,
      localHost: t.local_host ?? localHost,
      localHttps: t.local_https ?? localHttps,
    }));
  } else {
    if (kind === "tcp") throw new Error("--port is required: the port of the TCP service to share, e.g. azhexgate tcp --port 5432");
    throw new Error(`--port is required: the port your local app listens on, e.g. azhexgate start 3000 (or --port 3000)${file.file ? `, or "port" / [[tunnels]] in ${file.file}` : ""}`);
  }
  const apiUrl = flag(raw, "api-url") ?? env.AZHEXGATE_API_URL ?? file.api_url;
  const apiKey = flag(raw, "api-key") ?? env.AZHEXGATE_API_KEY ?? file.api_key;
  if (apiUrl !== undefined) {
    try {
      const u = new URL(apiUrl);
      if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error();
    } catch {
      throw new Error(`--api-url / AZHEXGATE_API_URL must be an http(s) URL (got "${apiUrl}")`);
    }
    if (!apiKey && !getLogin(env, apiUrl)) throw new Error(`--api-url needs an API key or a sign-in: set AZHEXGATE_API_KEY (or --api-key), or run \`azhexgate login --api-url ${apiUrl}\``);
  }
  if (kind === "tcp" && apiUrl === undefined) {
    throw new Error("--api-url (or AZHEXGATE_API_URL) is required: a TCP tunnel is reached with azhexgate connect through a gateway's management API, which the embedded local gateway does not share");
  }
  const proxyFlag = flag(raw, "proxy");
  if (proxyFlag !== undefined && apiUrl === undefined) {
    throw new Error("--proxy applies to a deployed gateway (--api-url / AZHEXGATE_API_URL); the embedded default runs on loopback and never uses a proxy");
  }
  // the embedded default talks to itself on loopback: HTTPS_PROXY & co. are for deployed gateways
  // (an empty routing: even Bun's fetch must not send the embedded API calls to an env proxy)
  const proxy = apiUrl === undefined ? proxyRouting({ env: {} }) : proxyRouting({ env, flag: proxyFlag });
  const level = flag(raw, "log-level") ?? env.AZHEXGATE_LOG_LEVEL ?? file.log_level ?? "warn";
  if (!["silent", "error", "warn", "info", "debug"].includes(level)) throw new Error(`--log-level must be silent, error, warn, info or debug (got "${level}")`);
  const grace = Number(flag(raw, "grace") ?? file.grace ?? "10");
  if (!Number.isFinite(grace) || grace < 0) throw new Error(`--grace must be a number of seconds (got "${flag(raw, "grace")}")`);
  const inspect = kind === "tcp" ? undefined : resolveInspect(raw, file);
  if (kind === "tcp" && tunnels.length !== 1) throw new Error("azhexgate tcp shares one port: run it once per service");
  const out: StartConfig = {
    tunnels,
    apiUrl,
    json: bool(raw, "json") ?? file.json ?? false,
    logLevel: level as StartConfig["logLevel"],
    qr: bool(raw, "qr") ?? file.qr ?? false,
    open: bool(raw, "open") ?? file.open ?? false,
    exitOnFail: bool(raw, "exit-on-fail") ?? file.exit_on_fail ?? false,
    recreate: bool(raw, "recreate") ?? file.recreate ?? false,
    graceMs: grace * 1000,
    ...(inspect ? { inspect } : {}),
    ...(kind === "tcp" ? { tcp: { allow: allValues(raw, "allow") } } : {}),
  };
  Object.defineProperty(out, "apiKey", { value: apiKey, enumerable: false });
  Object.defineProperty(out, "proxy", { value: proxy, enumerable: false });
  // No key: the signed-in identity (refreshed silently) authenticates `start`.
  Object.defineProperty(out, "bearer", { value: apiUrl && !apiKey ? () => bearerFor(env, apiUrl) : undefined, enumerable: false });
  Object.defineProperty(out, "access", { value: accessFromFlags(raw, allValues), enumerable: false });
  return Object.freeze(out);
}
