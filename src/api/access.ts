/**
 * Network access: the client address (the direct peer, or — only when the peer is a trusted proxy
 * (AZHEXGATE_TRUSTED_PROXIES) — the right-most `X-Forwarded-For` entry that is not itself trusted,
 * the usual algorithm, e.g. https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/X-Forwarded-For#selecting_an_ip_address),
 * used for the management API, its access log and the X-Forwarded-For given to apps; a CIDR
 * allow-list (IPv4 and IPv6); and a limiter of failed authentications per client (IPv6 clients
 * per /64) that only ever holds back failures — a valid key keeps working from a limited address.
 * Time is injected so tests never sleep.
 */

export interface Cidr {
  readonly text: string;
  readonly v: 4 | 6;
  readonly base: bigint;
  readonly bits: number;
}

interface Ip {
  v: 4 | 6;
  n: bigint;
}

function parseV4(s: string): bigint | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  let n = 0n;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return undefined;
    n = (n << 8n) | BigInt(Number(p));
  }
  return n;
}

function parseV6(s: string): bigint | undefined {
  let text = s;
  let tail: bigint | undefined;
  const lastColon = text.lastIndexOf(":");
  if (text.includes(".")) {
    tail = parseV4(text.slice(lastColon + 1));
    if (tail === undefined) return undefined;
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (h: string): string[] => (h === "" ? [] : h.split(":"));
  const head = groups(halves[0] ?? "");
  const rest = halves.length === 2 ? groups(halves[1] ?? "") : [];
  const missing = 8 - head.length - rest.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill("0"), ...rest];
  let n = 0n;
  for (const g of all) {
    if (!/^[0-9a-f]{1,4}$/i.test(g)) return undefined;
    n = (n << 16n) | BigInt(Number.parseInt(g, 16));
  }
  if (tail !== undefined) n = (n & ~0xffffffffn) | tail;
  return n;
}

/** Parses an IP literal (IPv4, IPv6, `[v6]`, zone ids dropped); IPv4-mapped IPv6 becomes IPv4. */
export function parseIp(text: string): Ip | undefined {
  const s = text.trim().replace(/^\[(.*)\]$/, "$1").replace(/%.*$/, "");
  const v4 = parseV4(s);
  if (v4 !== undefined) return { v: 4, n: v4 };
  if (!s.includes(":")) return undefined;
  const v6 = parseV6(s);
  if (v6 === undefined) return undefined;
  if (v6 >> 32n === 0xffffn) return { v: 4, n: v6 & 0xffffffffn };
  return { v: 6, n: v6 };
}

/** Parses `a.b.c.d/n`, `x::/n` or a bare address (a /32 or /128); throws a TypeError naming the entry. */
export function parseCidr(text: string): Cidr {
  const [addr = "", len, ...extra] = text.trim().split("/");
  const ip = parseIp(addr);
  const width = ip?.v === 4 ? 32 : 128;
  const bits = len === undefined ? width : /^\d{1,3}$/.test(len) ? Number(len) : Number.NaN;
  if (!ip || extra.length > 0 || !(bits >= 0 && bits <= width) || (ip.v === 4 && addr.includes(":"))) {
    throw new TypeError(`"${text}" is not a CIDR range; write e.g. 203.0.113.0/24 or 2001:db8::/32`);
  }
  const mask = bits === 0 ? 0n : ((1n << BigInt(bits)) - 1n) << BigInt(width - bits);
  return { text: text.trim(), v: ip.v, base: ip.n & mask, bits };
}

function contains(c: Cidr, ip: Ip): boolean {
  if (c.v !== ip.v) return false;
  const width = c.v === 4 ? 32 : 128;
  return ip.n >> BigInt(width - c.bits) === c.base >> BigInt(width - c.bits);
}

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
