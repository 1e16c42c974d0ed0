/**
 * Hybrid Connections addressing: namespace → host for each cloud, and the listen / connect /
 * HTTP / rendezvous URLs with their reserved `sb-hc-*` parameters. Pure.
 */

import { type Cloud, CLOUDS } from "./clouds.ts";

export type { Cloud };

/** Relay DNS suffix per cloud (from the clouds table, src/hc/clouds.ts). */
export const CLOUD_SUFFIXES: Readonly<Record<Cloud, string>> = Object.freeze({
  public: CLOUDS.public.relaySuffix,
  usgov: CLOUDS.usgov.relaySuffix,
  china: CLOUDS.china.relaySuffix,
});

/** Where a relay lives: `wss` + namespace host for Azure, `ws` + `127.0.0.1:port` for the emulator. */
export interface RelayEndpoint {
  readonly scheme: "ws" | "wss";
  /** Host, with `:port` when not the scheme's default. */
  readonly host: string;
}

const NAMESPACE_NAME = /^[a-zA-Z][a-zA-Z0-9-]{4,48}[a-zA-Z0-9]$/;

/**
 * Resolves what a user configured as the relay namespace:
 * - a short name (`contoso`) → `wss://contoso.servicebus.windows.net` (suffix by `cloud`);
 * - an FQDN (`contoso.servicebus.usgovcloudapi.net`) → used as is, over `wss`;
 * - a URL (`sb://…`, `wss://…`, `ws://127.0.0.1:9000`, `https://…`) → its scheme decides ws vs wss.
 * Throws a TypeError with a sentence a user can act on for anything else.
 */
export function resolveNamespace(namespace: string, cloud: Cloud = "public"): RelayEndpoint {
  const ns = namespace.trim();
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(ns)) {
    let url: URL;
    try {
      url = new URL(ns);
    } catch {
      throw new TypeError(`relay namespace URL "${namespace}" is not a valid URL`);
    }
    const scheme = url.protocol === "ws:" || url.protocol === "http:" ? "ws" : "wss";
    if (!url.hostname) throw new TypeError(`relay namespace URL "${namespace}" has no host`);
    return { scheme, host: url.host.toLowerCase() };
  }
  if (ns.includes(".")) {
    if (!/^[a-z0-9.-]+(:\d{1,5})?$/i.test(ns)) throw new TypeError(`relay namespace "${namespace}" is not a valid host name`);
    return { scheme: "wss", host: ns.toLowerCase() };
  }
  if (!NAMESPACE_NAME.test(ns)) {
    throw new TypeError(
      `relay namespace "${namespace}" is not a valid name (6-50 letters, digits and hyphens, starting with a letter) or FQDN`,
    );
  }
  return { scheme: "wss", host: `${ns.toLowerCase()}.${CLOUD_SUFFIXES[cloud]}` };
}

/** The cloud a namespace host belongs to, from its suffix (undefined for the emulator / unknown hosts). */
export function cloudOf(host: string): Cloud | undefined {
  const h = host.toLowerCase().replace(/:\d+$/, "");
  return (Object.keys(CLOUD_SUFFIXES) as Cloud[]).find((c) => h.endsWith(`.${CLOUD_SUFFIXES[c]}`));
}

export interface UrlOptions {
  /** Client tracking id, sent as `sb-hc-id`. */
  id?: string;
  /** Token to carry in the query as `sb-hc-token` (default: it travels in the `ServiceBusAuthorization` header). */
  token?: string;
  /** Extra path after the hybrid connection name (senders only). */
  suffix?: string;
  /** Application query parameters (senders only); must not use the `sb-hc-` prefix. */
  query?: Record<string, string> | URLSearchParams;
}

function hcPathOf(hcPath: string): string {
  return hcPath
    .replace(/^\/+|\/+$/g, "")
    .split("/")
    .map(encodeURIComponent)
    .join("/");
}

function build(base: string, hcPath: string, action: string | undefined, o: UrlOptions): string {
  const suffix = o.suffix ? `/${o.suffix.replace(/^\/+/, "")}` : "";
  const params = new URLSearchParams(o.query instanceof URLSearchParams ? o.query : (o.query ?? {}));
  for (const k of params.keys()) {
    if (k.toLowerCase().startsWith("sb-hc-")) throw new TypeError(`query parameter "${k}" uses the reserved sb-hc- prefix`);
  }
  if (action) params.append("sb-hc-action", action);
  if (o.id) params.append("sb-hc-id", o.id);
  if (o.token) params.append("sb-hc-token", o.token);
  const q = [...params].map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join("&");
  return `${base}/${hcPathOf(hcPath)}${suffix}${q ? `?${q}` : ""}`;
}

/** `wss://{host}/$hc/{hc}?sb-hc-action=listen` — the listener's control channel. */
export function listenUrl(ep: RelayEndpoint, hcPath: string, o: Omit<UrlOptions, "suffix" | "query"> = {}): string {
  return build(`${ep.scheme}://${ep.host}/$hc`, hcPath, "listen", o);
}

/** `wss://{host}/$hc/{hc}[/{suffix}]?{query}&sb-hc-action=connect` — a WebSocket sender. */
export function connectUrl(ep: RelayEndpoint, hcPath: string, o: UrlOptions = {}): string {
  return build(`${ep.scheme}://${ep.host}/$hc`, hcPath, "connect", o);
}

/** `https://{host}/{hc}[/{suffix}][?query]` — an HTTP-mode sender request (no `$hc`). */
export function httpUrl(ep: RelayEndpoint, hcPath: string, o: UrlOptions = {}): string {
  return build(`${ep.scheme === "wss" ? "https" : "http"}://${ep.host}`, hcPath, undefined, o);
}

/** The resource URI a SAS token for this entity signs (`http://{host}/{hc}`), as the Node clients make it. */
export function resourceUri(ep: RelayEndpoint, hcPath?: string): string {
  const host = ep.host.replace(/:\d+$/, "");
  return hcPath ? `http://${host}/${hcPathOf(hcPath)}` : `http://${host}/`;
}

/** The rendezvous address with the reject parameters appended (the reject gesture). */
export function rejectUrl(address: string, statusCode: number, statusDescription: string): string {
  const sep = address.includes("?") ? "&" : "?";
  return `${address}${sep}sb-hc-statusCode=${statusCode}&sb-hc-statusDescription=${encodeURIComponent(statusDescription)}`;
}

/** Removes every `key=value` query pair whose key starts with `sb-hc-` (a bare `sb-hc-x` is kept). */
export function stripRelayQuery(search: string): string {
  const s = search.startsWith("?") ? search.slice(1) : search;
  if (!s) return "";
  const kept = s.split("&").filter((pair) => {
    const eq = pair.indexOf("=");
    return eq < 0 || !pair.slice(0, eq).toLowerCase().startsWith("sb-hc-");
  });
  return kept.length ? `?${kept.join("&")}` : "";
}

export interface ConnectionString {
  endpoint: RelayEndpoint;
  keyName?: string;
  key?: string;
  sharedAccessSignature?: string;
  entityPath?: string;
}

/** Parses `Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=…;SharedAccessKey=…[;EntityPath=…]`. */
export function parseConnectionString(cs: string): ConnectionString {
  const parts = new Map<string, string>();
  for (const seg of cs.split(";")) {
    const eq = seg.indexOf("=");
    if (eq > 0) parts.set(seg.slice(0, eq).trim().toLowerCase(), seg.slice(eq + 1).trim());
  }
  const endpoint = parts.get("endpoint");
  if (!endpoint) throw new TypeError("connection string has no Endpoint=");
  return {
    endpoint: resolveNamespace(endpoint),
    keyName: parts.get("sharedaccesskeyname"),
    key: parts.get("sharedaccesskey"),
    sharedAccessSignature: parts.get("sharedaccesssignature"),
    entityPath: parts.get("entitypath"),
  };
}
