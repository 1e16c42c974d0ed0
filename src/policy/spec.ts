/**
 * A tunnel's requested access policy (the API's `access` object, which `start` builds from its
 * flags) → the stored `TunnelPolicy`, or a `PolicyError` naming the field and the fix. The same
 * checks run in the CLI (exit 2 before anything is sent) and in the API (400 invalid_request).
 */
import { parseCidr } from "../net/cidr.ts";
import { parseBandwidth, parseRate, type LimitsConfig } from "../identity-settings.ts";
import type { BasicAuthEntry, TunnelPolicy } from "./types.ts";

export class PolicyError extends Error {
  override readonly name = "PolicyError";
  constructor(readonly field: string, message: string) {
    super(message);
  }
}

export interface AccessInput {
  basic_auth?: string[];
  allow_ips?: string[];
  deny_ips?: string[];
  entra?: boolean | { tenants?: string[]; groups?: string[] };
  rate_limit?: string;
  rate_burst?: number;
  max_streams?: number;
  bandwidth?: string;
}

const KEYS = ["basic_auth", "allow_ips", "deny_ips", "entra", "rate_limit", "rate_burst", "max_streams", "bandwidth"];
export const MIN_PASSWORD = 8;

const strings = (v: unknown, field: string, max: number): string[] => {
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) throw new PolicyError(field, `${field} must be a list of strings.`);
  if (v.length > max) throw new PolicyError(field, `${field} has more than ${max} entries.`);
  return v as string[];
};

export interface PolicyContext {
  limits: LimitsConfig;
  /** The gateway can sign visitors in (AZHEXGATE_VISITOR_CLIENT_ID set). */
  entraAvailable: boolean;
  /** Turns `user`, `password` into a stored entry (the API hashes; the CLI only validates). */
  hash: (user: string, password: string) => BasicAuthEntry;
}

/** Checks `input` (unknown JSON) and returns the policy to store, or undefined for "no policy". */
export function parseAccess(input: unknown, ctx: PolicyContext): TunnelPolicy | undefined {
  if (input === undefined || input === null) return undefined;
  if (typeof input !== "object" || Array.isArray(input)) throw new PolicyError("access", "access must be an object.");
  const a = input as Record<string, unknown>;
  for (const k of Object.keys(a)) if (!KEYS.includes(k)) throw new PolicyError(`access.${k}`, `Unknown access field "${k}"; allowed: ${KEYS.join(", ")}.`);
  const p: TunnelPolicy = {};
  if (a.basic_auth !== undefined) {
    const seen = new Set<string>();
    p.basicAuth = strings(a.basic_auth, "access.basic_auth", 16).map((entry) => {
      const i = entry.indexOf(":");
      const user = entry.slice(0, i);
      const password = entry.slice(i + 1);
      if (i < 1 || /[\s:]/.test(user) || user.length > 64) throw new PolicyError("access.basic_auth", "basic auth must be USER:PASSWORD with a user name of 1-64 characters without spaces or ':'.");
      if (password.length < MIN_PASSWORD || password.length > 128) throw new PolicyError("access.basic_auth", `the password of basic-auth user "${user}" must be ${MIN_PASSWORD}-128 characters.`);
      if (seen.has(user)) throw new PolicyError("access.basic_auth", `basic-auth user "${user}" is given twice.`);
      seen.add(user);
      return ctx.hash(user, password);
    });
  }
  for (const [key, field] of [["allowIps", "allow_ips"], ["denyIps", "deny_ips"]] as const) {
    if (a[field] === undefined) continue;
    p[key] = strings(a[field], `access.${field}`, 64).map((c) => {
      try {
        return parseCidr(c).text;
      } catch (e) {
        throw new PolicyError(`access.${field}`, (e as Error).message);
      }
    });
  }
  if (a.entra !== undefined && a.entra !== false) {
    if (!ctx.entraAvailable) throw new PolicyError("access.entra", "This gateway has no visitor sign-in configured (AZHEXGATE_VISITOR_CLIENT_ID); ask the operator, or use basic auth / IP rules.");
    const e = a.entra === true ? {} : a.entra;
    if (typeof e !== "object" || e === null || Array.isArray(e)) throw new PolicyError("access.entra", "entra must be true or { tenants, groups }.");
    const o = e as Record<string, unknown>;
    for (const k of Object.keys(o)) if (k !== "tenants" && k !== "groups") throw new PolicyError(`access.entra.${k}`, `Unknown entra field "${k}"; allowed: tenants, groups.`);
    const id = /^[A-Za-z0-9._-]{1,100}$/;
    const tenants = o.tenants === undefined ? [] : strings(o.tenants, "access.entra.tenants", 16);
    const groups = o.groups === undefined ? [] : strings(o.groups, "access.entra.groups", 16);
    for (const t of [...tenants, ...groups]) if (!id.test(t)) throw new PolicyError("access.entra", `"${t}" is not a tenant or group id.`);
    p.entra = { tenants, groups };
  }
  const L = ctx.limits;
  if (a.rate_limit !== undefined) {
    if (typeof a.rate_limit !== "string") throw new PolicyError("access.rate_limit", "rate_limit must be a string like 100/s.");
    let perSecond: number;
    try {
      perSecond = parseRate(a.rate_limit, "rate_limit");
    } catch (e) {
      throw new PolicyError("access.rate_limit", (e as Error).message);
    }
    if (!(perSecond > 0)) throw new PolicyError("access.rate_limit", "rate_limit must be above 0.");
    if (L.rateMax > 0 && perSecond > L.rateMax) throw new PolicyError("access.rate_limit", `rate_limit may be at most ${L.rateMax}/s on this gateway.`);
    const burst = a.rate_burst ?? Math.max(1, Math.ceil(perSecond));
    if (!Number.isInteger(burst) || (burst as number) < 1 || (burst as number) > 100_000) throw new PolicyError("access.rate_burst", "rate_burst must be a whole number from 1 to 100000.");
    p.rateLimit = { perSecond, burst: burst as number };
  } else if (a.rate_burst !== undefined) {
    throw new PolicyError("access.rate_burst", "rate_burst needs rate_limit.");
  }
  if (a.max_streams !== undefined) {
    const n = a.max_streams;
    if (!Number.isInteger(n) || (n as number) < 1 || (n as number) > 100_000) throw new PolicyError("access.max_streams", "max_streams must be a whole number from 1 to 100000.");
    if (L.streamsMax > 0 && (n as number) > L.streamsMax) throw new PolicyError("access.max_streams", `max_streams may be at most ${L.streamsMax} on this gateway.`);
    p.maxStreams = n as number;
  }
  if (a.bandwidth !== undefined) {
    if (typeof a.bandwidth !== "string") throw new PolicyError("access.bandwidth", "bandwidth must be a string like 1m (bytes per second).");
    let bps: number;
    try {
      bps = parseBandwidth(a.bandwidth, "bandwidth");
    } catch (e) {
      throw new PolicyError("access.bandwidth", (e as Error).message);
    }
    if (bps < 1024) throw new PolicyError("access.bandwidth", "bandwidth must be at least 1k (1024 bytes per second).");
    if (L.bandwidthMax > 0 && bps > L.bandwidthMax) throw new PolicyError("access.bandwidth", `bandwidth may be at most ${L.bandwidthMax} bytes per second on this gateway.`);
    p.bandwidth = bps;
  }
  return Object.keys(p).length === 0 ? undefined : p;
}
