/**
 * `azhexgate start` configuration, resolved once: flags > AZHEXGATE_* environment > config file
 * (azhexgate.json / azhexgate.toml, several tunnels) > defaults. Validated; errors are one
 * sentence naming the setting.
 */
import { proxyRouting, type ProxyRouting } from "../net/proxy.ts";

/** A local app's port: 1-65535 (0 is "any port" for a server, never a place to forward to). */
function localPort(v: string, what: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || n < 1 || n > 65535) throw new Error(`${what} must be the port your local app listens on, a whole number from 1 to 65535 (got "${v}")`);
  return n;
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
  exitOnFail: boolean;
  graceMs: number;
  /**
   * Proxy routing for the relay connections and management API calls (--proxy > HTTPS_PROXY /
   * HTTP_PROXY / ALL_PROXY, with NO_PROXY); with the embedded default, a routing that proxies
   * nothing. Non-enumerable: it may hold proxy credentials.
   */
  readonly proxy?: ProxyRouting;
}

interface FileConfig {
  api_url?: string;
  api_key?: string;
  tunnels?: Array<{ port?: number; subdomain?: string; host_header?: string; local_host?: string; local_https?: boolean }>;
}

async function readConfigFile(path: string | undefined, cwd: string): Promise<{ file?: string; cfg: FileConfig }> {
  const candidates = path ? [path] : [`${cwd}/azhexgate.json`, `${cwd}/azhexgate.toml`];
  for (const file of candidates) {
    const f = Bun.file(file);
    if (!(await f.exists())) {
      if (path) throw new Error(`config file ${file} does not exist`);
      continue;
    }
    const text = await f.text();
    try {
      const cfg = (file.endsWith(".toml") ? Bun.TOML.parse(text) : JSON.parse(text)) as FileConfig;
      if (typeof cfg !== "object" || cfg === null) throw new Error("not an object");
      return { file, cfg };
    } catch (err) {
      throw new Error(`config file ${file} is not valid ${file.endsWith(".toml") ? "TOML" : "JSON"}: ${(err as Error).message}`);
    }
  }
  return { cfg: {} };
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

const SUBDOMAIN = /^[a-z0-9](?:[a-z0-9-]{1,38}[a-z0-9])$/;

export async function resolveStartConfig(
  raw: readonly string[],
  allValues: (raw: readonly string[], name: string) => string[],
  env: Record<string, string | undefined>,
  cwd: string,
): Promise<StartConfig> {
  const { cfg: file } = await readConfigFile(flag(raw, "config"), cwd);
  const hostHeader = flag(raw, "host-header") ?? "rewrite";
  if (hostHeader !== "rewrite" && hostHeader !== "preserve") throw new Error(`--host-header must be rewrite or preserve (got "${hostHeader}")`);
  const subdomain = flag(raw, "subdomain");
  if (subdomain !== undefined && !SUBDOMAIN.test(subdomain)) throw new Error(`--subdomain must be 3-40 lowercase letters, digits or hyphens (got "${subdomain}")`);
  const localHost = flag(raw, "local-host") ?? "localhost";
  const localHttps = bool(raw, "local-https") ?? false;
  const ports = allValues(raw, "port");
  let tunnels: TunnelSpec[];
  if (ports.length) {
    if (subdomain && ports.length > 1) throw new Error("--subdomain names one tunnel; use a config file to name several");
    tunnels = ports.map((p) => {
      const port = localPort(p, "--port");
      return { port, subdomain, hostHeader, localHost, localHttps };
    });
  } else if (file.tunnels?.length) {
    tunnels = file.tunnels.map((t, i) => {
      const port = localPort(String(t.port ?? ""), `tunnels[${i}].port in the config file`);
      const hh = t.host_header ?? hostHeader;
      if (hh !== "rewrite" && hh !== "preserve") throw new Error(`tunnels[${i}].host_header must be rewrite or preserve`);
      if (t.subdomain !== undefined && !SUBDOMAIN.test(t.subdomain)) throw new Error(`tunnels[${i}].subdomain is not a valid name`);
      return { port, subdomain: t.subdomain, hostHeader: hh, localHost: t.local_host ?? localHost, localHttps: t.local_https ?? localHttps };
    });
  } else {
    throw new Error("--port is required: the port your local app listens on, e.g. azhexgate start --port 3000");
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
    if (!apiKey) throw new Error("--api-url needs an API key: set AZHEXGATE_API_KEY (or --api-key)");
  }
  const proxyFlag = flag(raw, "proxy");
  if (proxyFlag !== undefined && apiUrl === undefined) {
    throw new Error("--proxy applies to a deployed gateway (--api-url / AZHEXGATE_API_URL); the embedded default runs on loopback and never uses a proxy");
  }
  // the embedded default talks to itself on loopback: HTTPS_PROXY & co. are for deployed gateways
  // (an empty routing: even Bun's fetch must not send the embedded API calls to an env proxy)
  const proxy = apiUrl === undefined ? proxyRouting({ env: {} }) : proxyRouting({ env, flag: proxyFlag });
  const level = flag(raw, "log-level") ?? env.AZHEXGATE_LOG_LEVEL ?? "warn";
  if (!["silent", "error", "warn", "info", "debug"].includes(level)) throw new Error(`--log-level must be silent, error, warn, info or debug (got "${level}")`);
  const grace = Number(flag(raw, "grace") ?? "10");
  if (!Number.isFinite(grace) || grace < 0) throw new Error(`--grace must be a number of seconds (got "${flag(raw, "grace")}")`);
  const out: StartConfig = {
    tunnels,
    apiUrl,
    json: bool(raw, "json") ?? false,
    logLevel: level as StartConfig["logLevel"],
    qr: bool(raw, "qr") ?? false,
    exitOnFail: bool(raw, "exit-on-fail") ?? false,
    graceMs: grace * 1000,
  };
  Object.defineProperty(out, "apiKey", { value: apiKey, enumerable: false });
  Object.defineProperty(out, "proxy", { value: proxy, enumerable: false });
  return Object.freeze(out);
}
