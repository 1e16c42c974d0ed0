/**
 * Public host routing: which tunnel (or the apex) a Host header names, and the raw request target.
 * Pure: no I/O. Used by the gateway's request handler (src/gateway/server.ts).
 */
import { publicError } from "./errors.ts";

/** Served on the apex and on hosts that are not tunnels (probes use an IP or localhost), never on a tunnel's host. */
export const SERVICE_PATHS = new Set(["/healthz", "/readyz", "/metrics"]);

// A fully qualified name may end in one dot (RFC 3986 reg-name; `curl https://demo.example.com./`).
const HOST_RE = /^([a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?\.?|\[[0-9a-f:.]+\])(?::(\d{1,5}))?$/i;
const LABEL_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** The raw origin-form target of a request (path and query as the client sent them). */
export function rawTarget(url: string): string {
  const i = url.indexOf("/", url.indexOf("//") + 2);
  return i < 0 ? "/" : url.slice(i);
}

/** True for the apex, `api.{base}` and hosts outside the base domain (IPs, localhost): never a tunnel. */
export function serviceHost(host: string | null, baseDomain: string): boolean {
  try {
    const id = routeHost(host, baseDomain, true);
    return id === "" || id === "api";
  } catch {
    return true;
  }
}

/**
 * Splits a Host header into a tunnel id (or "" for the apex) — or throws a 400 / 404.
 * `localHosts`: a host outside the base domain is the apex too (a local gateway), not a 404.
 */
export function routeHost(host: string | null, baseDomain: string, localHosts = false): string {
  // Every request routes its Host: the answers for hosts seen lately are kept (successes only,
  // bounded), one memo per mode (the service check asks with localHosts, the request without),
  // for one base domain at a time.
  if (baseDomain !== memoBase) {
    memos[0].clear();
    memos[1].clear();
    memoBase = baseDomain;
  }
  const memo = memos[localHosts ? 1 : 0];
  if (host !== null) {
    const hit = memo.get(host);
    if (hit !== undefined) return hit;
  }
  const id = route(host, baseDomain, localHosts);
  if (memo.size >= MEMO_MAX) memo.clear();
  memo.set(host as string, id);
  return id;
}

const MEMO_MAX = 1024;
const memos: [Map<string, string>, Map<string, string>] = [new Map(), new Map()];
let memoBase = "";

function route(host: string | null, baseDomain: string, localHosts: boolean): string {
  if (!host || host.includes(",") || !HOST_RE.test(host)) {
    throw publicError("bad_host");
  }
  const name = host.replace(/:\d+$/, "").toLowerCase().replace(/\.$/, "");
  const base = baseDomain.toLowerCase();
  if (name === base) return "";
  if (!name.endsWith(`.${base}`)) {
    if (localHosts) return "";
    throw publicError("host_not_served", name);
  }
  const label = name.slice(0, -(base.length + 1));
  if (!LABEL_RE.test(label)) throw publicError("host_not_served", name);
  return label;
}
