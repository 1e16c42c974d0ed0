/**
 * `start`'s access-policy flags → the API's `access` object, checked here with the gateway's own
 * rules (src/policy/spec.ts) so a malformed policy stops `start` with exit 2 before any
 * request; the gateway checks again (its maxima, whether it has visitor sign-in) and answers 400.
 */
import { type AccessInput, parseAccess } from "../policy/spec.ts";

type AllValues = (raw: readonly string[], name: string) => string[];

export const ACCESS_FLAGS = ["basic-auth", "allow-ip", "deny-ip", "entra", "entra-group", "entra-tenant", "rate-limit", "max-streams", "bandwidth"] as const;

/** The `access` object for the API, or undefined when no flag is given. Throws Error naming the flag. */
export function accessFromFlags(raw: readonly string[], allValues: AllValues): AccessInput | undefined {
  const last = (n: string) => allValues(raw, n).at(-1);
  const a: AccessInput = {};
  const basic = allValues(raw, "basic-auth");
  if (basic.length) a.basic_auth = basic;
  const allow = allValues(raw, "allow-ip").flatMap((v) => v.split(","));
  if (allow.length) a.allow_ips = allow;
  const deny = allValues(raw, "deny-ip").flatMap((v) => v.split(","));
  if (deny.length) a.deny_ips = deny;
  const groups = allValues(raw, "entra-group");
  const tenants = allValues(raw, "entra-tenant");
  if (raw.includes("--entra") || groups.length || tenants.length) a.entra = { tenants, groups };
  const rate = last("rate-limit");
  if (rate !== undefined) {
    const [r, burst] = rate.split(",");
    a.rate_limit = r;
    if (burst !== undefined) {
      if (!/^\d+$/.test(burst)) throw new Error(`--rate-limit: the burst after the comma must be a whole number (got "${burst}")`);
      a.rate_burst = Number(burst);
    }
  }
  const streams = last("max-streams");
  if (streams !== undefined) {
    if (!/^\d+$/.test(streams)) throw new Error(`--max-streams must be a whole number (got "${streams}")`);
    a.max_streams = Number(streams);
  }
  const bw = last("bandwidth");
  if (bw !== undefined) a.bandwidth = bw;
  if (Object.keys(a).length === 0) return undefined;
  const flagOf: Record<string, string> = {
    "access.basic_auth": "--basic-auth",
    "access.allow_ips": "--allow-ip",
    "access.deny_ips": "--deny-ip",
    "access.rate_limit": "--rate-limit",
    "access.rate_burst": "--rate-limit",
    "access.max_streams": "--max-streams",
    "access.bandwidth": "--bandwidth",
  };
  try {
    parseAccess(a, {
      limits: { rate: 0, rateMax: 0, streams: 0, streamsMax: 0, bandwidth: 0, bandwidthMax: 0 },
      entraAvailable: true,
      hash: (user) => ({ user, salt: "", hash: "" }),
    });
  } catch (e) {
    const field = (e as { field?: string }).field ?? "";
    throw new Error(`${flagOf[field] ?? (field.startsWith("access.entra") ? "--entra" : field)}: ${(e as Error).message}`);
  }
  return a;
}
