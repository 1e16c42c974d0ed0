/**
 * Network access: the client address (the direct peer, or — only when the peer is a trusted proxy
 * (AZHEXGATE_TRUSTED_PROXIES) — the right-most `X-Forwarded-For` entry that is not itself trusted,
 * the usual algorithm, e.g. https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/X-Forwarded-For#selecting_an_ip_address),
 * used for the management API, its access log and the X-Forwarded-For given to apps; a CIDR
 * allow-list (IPv4 and IPv6); and a limiter of failed authentications per client (IPv6 clients
 * per /64) that only ever holds back failures — a valid key keeps working from a limited address.
 * Time is injected so tests never sleep.
 */

import { type Cidr, contains, type Ip, parseCidr, parseIp } from "../net/cidr.ts";

export { type Cidr, parseCidr, parseIp } from "../net/cidr.ts";

/** `1.2.3.4`, `1.2.3.4:5678` (App Service adds ports), `[::1]:80`, `::1` → the address text, or undefined. */
function stripPort(entry: string): string {
  const e = entry.trim();
  const bracket = /^\[([^\]]+)\](?::\d+)?$/.exec(e);
  if (bracket?.[1]) return bracket[1];
  const v4port = /^(\d{1,3}(?:\.\d{1,3}){3}):\d+$/.exec(e);
  return v4port?.[1] ?? e;
}

export interface AccessOptions {
  /** Client CIDRs allowed to call the management API; empty / absent = any address. */
  allow?: string[];
  /** Proxies whose `X-Forwarded-For` is believed (e.g. Front Door / App Service front ends). */
  trustedProxies?: string[];
  /** Failed authentications allowed per client per window (default 10). */
  maxFailures?: number;
  /** Window of the failure limiter in ms (default 60 000). */
  windowMs?: number;
  /** Most clients tracked by the limiter; the oldest are forgotten past it (default 10 000). */
  maxTracked?: number;
  now?: () => number;
}

export interface AccessPolicy {
  /** The client's address, or undefined when a trusted proxy sent an unparseable X-Forwarded-For. */
  clientIp(peer: string, forwardedFor: string | null): string | undefined;
  /** True when the TCP peer `peer` is a trusted proxy (its X-Forwarded-* headers are believed). */
  trusts(peer: string): boolean;
  /** True when `ip` is inside the allow-list. */
  allowed(ip: string): boolean;
  /** Seconds until `ip` may try again, or 0 when it is not limited. */
  retryAfter(ip: string): number;
  /** Counts one failed authentication for `ip`. */
  recordFailure(ip: string): void;
}

export function createAccessPolicy(o: AccessOptions = {}): AccessPolicy {
  const allow = (o.allow ?? []).map(parseCidr);
  const trusted = (o.trustedProxies ?? []).map(parseCidr);
  const maxFailures = o.maxFailures ?? 10;
  const windowMs = o.windowMs ?? 60_000;
  const maxTracked = o.maxTracked ?? 10_000;
  const now = o.now ?? Date.now;
  if (!(maxFailures >= 1) || !(windowMs >= 1)) throw new TypeError("the failed-auth limit needs maxFailures ≥ 1 and windowMs ≥ 1");
  /** Client key → timestamps of recent failures (oldest first). Map order = insertion order. */
  const failures = new Map<string, number[]>();

  const isTrusted = (ip: Ip | undefined): boolean => ip !== undefined && trusted.some((c) => contains(c, ip));
  /** IPv6 clients usually own a whole /64: count them together. */
  const limiterKey = (ip: string): string => {
    const p = parseIp(ip);
    if (!p) return ip;
    return p.v === 4 ? `4:${p.n}` : `6:${p.n >> 64n}`;
  };
  const recent = (key: string, t: number): number[] => {
    const list = failures.get(key);
    if (!list) return [];
    while (list.length > 0 && (list[0] ?? 0) <= t - windowMs) list.shift();
    if (list.length === 0) failures.delete(key);
    return list;
  };

  return {
    clientIp(peer, forwardedFor) {
      const peerIp = parseIp(peer);
      if (!isTrusted(peerIp) || !forwardedFor) return peer;
      const hops = forwardedFor.split(",").map((h) => h.trim()).filter((h) => h !== "");
      let last: string | undefined;
      for (let i = hops.length - 1; i >= 0; i--) {
        const text = stripPort(hops[i] ?? "");
        const ip = parseIp(text);
        if (!ip) return undefined;
        last = text;
        if (!isTrusted(ip)) return text;
      }
      return last ?? peer;
    },
    trusts(peer) {
      return isTrusted(parseIp(peer));
    },
    allowed(ip) {
      if (allow.length === 0) return true;
      const p = parseIp(ip);
      return p !== undefined && allow.some((c) => contains(c, p));
    },
    retryAfter(ip) {
      const t = now();
      const list = recent(limiterKey(ip), t);
      if (list.length < maxFailures) return 0;
      const oldest = list[list.length - maxFailures] ?? t;
      return Math.max(1, Math.ceil((oldest + windowMs - t) / 1000));
    },
    recordFailure(ip) {
      const t = now();
      const key = limiterKey(ip);
      const list = recent(key, t);
      list.push(t);
      if (list.length > maxFailures) list.splice(0, list.length - maxFailures);
      failures.delete(key);
      failures.set(key, list);
      while (failures.size > maxTracked) {
        const first = failures.keys().next().value;
        if (first === undefined) break;
        failures.delete(first);
      }
    },
  };
}
