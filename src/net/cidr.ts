/**
 * IP addresses and CIDR ranges (IPv4 and IPv6; IPv4-mapped IPv6 counts as IPv4): parse and test
 * membership. Pure. Used by the management API's allow-list and trusted proxies (src/api/access.ts),
 * the access-policy contract (src/policy/spec.ts) and the gateway's per-tunnel IP rules.
 */

export interface Cidr {
  readonly text: string;
  readonly v: 4 | 6;
  readonly base: bigint;
  readonly bits: number;
}

export interface Ip {
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

export function contains(c: Cidr, ip: Ip): boolean {
  if (c.v !== ip.v) return false;
  const width = c.v === 4 ? 32 : 128;
  return ip.n >> BigInt(width - c.bits) === c.base >> BigInt(width - c.bits);
}
