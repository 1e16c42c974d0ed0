/**
 * Which HTTP proxy (if any) carries a connection: `--proxy`, else `HTTPS_PROXY` / `HTTP_PROXY` /
 * `ALL_PROXY` with `NO_PROXY` exceptions. Pure decisions (no sockets); the process-wide choice is
 * set once by a command (`azhexgate start` with a gateway, `azhexgate gateway` in Azure mode) and
 * read by the relay WebSocket client and the management API client. Library callers and the
 * embedded default never get a proxy unless they ask.
 *
 * Rules, after Microsoft's own clients so that azhexgate goes where the Azure SDK next to it goes:
 * - each variable is read upper case first, then lower case, an empty value counting as unset —
 *   `getEnvironmentValue` in Azure/azure-sdk-for-js sdk/core/ts-http-runtime/src/policies/proxyPolicy.ts;
 * - secure targets (`wss:`, `https:`) use `HTTPS_PROXY`, else `ALL_PROXY`, else `HTTP_PROXY` — the
 *   SDK's `httpsProxy || allProxy || httpProxy` (every Azure endpoint is https);
 * - plain targets (`ws:`, `http:`: the emulator, a gateway on loopback) use `HTTP_PROXY`, else
 *   `ALL_PROXY`, as curl and Bun's fetch do (plain traffic never goes to a proxy named for TLS);
 * - `NO_PROXY`: entries separated by commas or white space; `*` matches every host; `example.com`,
 *   `.example.com` and `*.example.com` match the domain and its subdomains (curl; the SDK's
 *   `.example.com` rule is the same, its bare `example.com` matches only the host itself);
 *   IP addresses match exactly, `10.0.0.0/8` matches an IPv4 block; `host:port` only that port.
 * - `--proxy` beats the environment but still honours `NO_PROXY` (as Bun's fetch does).
 * Only `http://` proxies are supported (CONNECT over plain TCP); credentials in the URL become
 * `Proxy-Authorization: Basic …` and are redacted wherever the proxy is named.
 */

export class ProxyConfigError extends Error {
  override readonly name = "ProxyConfigError";
  readonly code = "invalid_proxy";
}

/** One proxy: where it is, how to authenticate, and how to name it in messages (no credentials). */
export interface ProxyConfig {
  readonly hostname: string;
  readonly port: number;
  /** `Basic …` when the URL had credentials (a getter over a private field: never printed). */
  readonly authorization?: string;
  /** `http://***@host:port` / `http://host:port`: safe for logs and errors. */
  readonly display: string;
  /** The proxy URL with credentials, for fetch's `proxy` option (a getter: never printed). */
  readonly href: string;
  /** Where it came from, e.g. `--proxy` or `HTTPS_PROXY`. */
  readonly source: string;
}

/** `http://user:pass@host:port` → `http://***@host:port` (also inside a longer text). */
export function redactProxyUrl(text: string): string {
  return text.replace(/(\b[a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/gi, "$1***@");
}

/** Parses a proxy URL (a bare `host:port` means `http://host:port`). Throws ProxyConfigError naming `source`. */
export function parseProxyUrl(text: string, source: string): ProxyConfig {
  const raw = text.trim();
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    throw new ProxyConfigError(`${source} is not a URL (got "${redactProxyUrl(raw)}"); use http://host:port or http://user:password@host:port`);
  }
  if (u.protocol !== "http:") {
    throw new ProxyConfigError(
      `${source} uses ${u.protocol}// (got "${redactProxyUrl(raw)}"); only http:// proxies are supported (the tunnel inside is still TLS for wss:// and https://)`,
    );
  }
  if (!u.hostname) throw new ProxyConfigError(`${source} has no host (got "${redactProxyUrl(raw)}")`);
  const port = u.port ? Number(u.port) : 80;
  const host = u.hostname;
  const display = `http://${u.username || u.password ? "***@" : ""}${u.host}`;
  const authorization = u.username || u.password ? `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString("base64")}` : undefined;
  return Object.freeze(new Proxy_(host.replace(/^\[|\]$/g, ""), port, display, source, authorization, u.href));
}

/** The secrets live in private fields behind getters: not in JSON, spreading, `Bun.inspect` or `toString`. */
class Proxy_ implements ProxyConfig {
  readonly #authorization: string | undefined;
  readonly #href: string;
  constructor(
    readonly hostname: string,
    readonly port: number,
    readonly display: string,
    readonly source: string,
    authorization: string | undefined,
    href: string,
  ) {
    this.#authorization = authorization;
    this.#href = href;
  }
  get authorization(): string | undefined {
    return this.#authorization;
  }
  get href(): string {
    return this.#href;
  }
  toString(): string {
    return this.display;
  }
}

type Rule = { kind: "all" } | { kind: "domain"; name: string; port?: number } | { kind: "ip"; ip: string; port?: number } | { kind: "cidr4"; net: number; mask: number };

function ipv4(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

function parseRule(entry: string): Rule | undefined {
  const e = entry.trim().toLowerCase();
  if (!e) return undefined;
  if (e === "*") return { kind: "all" };
  const cidr = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(e);
  if (cidr) {
    const net = ipv4(cidr[1]!);
    const bits = Number(cidr[2]);
    if (net === undefined || bits > 32) return undefined;
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    return { kind: "cidr4", net: (net & mask) >>> 0, mask };
  }
  // [v6]:port, [v6], v6, v4:port, name:port
  let host = e;
  let port: number | undefined;
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(e);
  if (bracket) {
    host = bracket[1]!;
    port = bracket[2] ? Number(bracket[2]) : undefined;
  } else if ((e.match(/:/g) ?? []).length === 1) {
    const [h, p] = e.split(":");
    if (/^\d+$/.test(p ?? "")) {
      host = h!;
      port = Number(p);
    }
  }
  if (host.includes(":") || ipv4(host) !== undefined) return { kind: "ip", ip: host, port };
  return { kind: "domain", name: host.replace(/^\*?\.+/, ""), port };
}

/** A NO_PROXY matcher: true when a connection to `hostname:port` goes direct. */
export function noProxyMatcher(list: string | undefined): (hostname: string, port: number) => boolean {
  const rules = (list ?? "")
    .split(/[\s,]+/)
    .map(parseRule)
    .filter((r): r is Rule => r !== undefined);
  return (hostname, port) => {
    const h = hostname.toLowerCase().replace(/^\[|\]$/g, "").replace(/\.$/, "");
    const v4 = ipv4(h);
    return rules.some((r) => {
      switch (r.kind) {
        case "all":
          return true;
        case "cidr4":
          return v4 !== undefined && ((v4 & r.mask) >>> 0) === r.net;
        case "ip":
          return h === r.ip && (r.port === undefined || r.port === port);
        case "domain":
          return (h === r.name || h.endsWith(`.${r.name}`)) && (r.port === undefined || r.port === port);
      }
    });
  };
}

export interface ProxyRouting {
  /** The proxy for a URL (`ws:`, `wss:`, `http:`, `https:`), or undefined to connect directly. */
  forUrl(url: string | URL): ProxyConfig | undefined;
  /** One line for a startup log: which proxies, from where, and the NO_PROXY list. Never credentials. */
  describe(): string | undefined;
}

function envValue(env: Record<string, string | undefined>, name: string): { value: string; name: string } | undefined {
  for (const n of [name, name.toLowerCase()]) {
    const v = env[n]?.trim();
    if (v) return { value: v, name: n };
  }
  return undefined;
}

/**
 * Builds the routing from `--proxy` (`flag`) and the environment. Invalid values throw a
 * ProxyConfigError naming the flag or variable (credentials redacted).
 */
export function proxyRouting(o: { env: Record<string, string | undefined>; flag?: string }): ProxyRouting {
  const pick = (name: string) => {
    const v = envValue(o.env, name);
    return v ? parseProxyUrl(v.value, v.name) : undefined;
  };
  const flag = o.flag?.trim() ? parseProxyUrl(o.flag, "--proxy") : undefined;
  const all = flag ? undefined : pick("ALL_PROXY");
  const http = flag ? undefined : pick("HTTP_PROXY");
  const https = flag ? undefined : pick("HTTPS_PROXY");
  const secure = flag ?? https ?? all ?? http;
  const plain = flag ?? http ?? all;
  const noProxyText = envValue(o.env, "NO_PROXY")?.value;
  const bypass = noProxyMatcher(noProxyText);
  return {
    forUrl(url) {
      const u = typeof url === "string" ? new URL(url) : url;
      const isSecure = u.protocol === "wss:" || u.protocol === "https:";
      const proxy = isSecure ? secure : plain;
      if (!proxy) return undefined;
      const port = Number(u.port) || (isSecure ? 443 : 80);
      return bypass(u.hostname, port) ? undefined : proxy;
    },
    describe() {
      if (!secure && !plain) return undefined;
      const parts = secure === plain ? [`${secure!.display} (${secure!.source})`] : [];
      if (secure !== plain) {
        if (secure) parts.push(`wss/https via ${secure.display} (${secure.source})`);
        if (plain) parts.push(`ws/http via ${plain.display} (${plain.source})`);
      }
      return `${parts.join(", ")}${noProxyText ? `; NO_PROXY=${noProxyText}` : ""}`;
    },
  };
}

let processRouting: ProxyRouting | undefined;

/** Sets (or clears) the proxy routing of this process's relay connections and API calls. */
export function setProcessProxy(r: ProxyRouting | undefined): void {
  processRouting = r;
}

/** The process's proxy for `url` (undefined: direct). */
export function processProxyFor(url: string | URL): ProxyConfig | undefined {
  return processRouting?.forUrl(url);
}

/**
 * fetch's `proxy` option for `url`: the chosen proxy (NO_PROXY already applied, so Bun must not
 * apply it again), `false` for direct, or undefined when no routing was set (Bun's own env rules).
 */
export function fetchProxyOption(url: string | URL): { url: string; respectNoProxy: false } | false | undefined {
  if (!processRouting) return undefined;
  const p = processRouting.forUrl(url);
  return p ? { url: p.href, respectNoProxy: false } : false;
}
