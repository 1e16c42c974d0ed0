/**
 * A tunnel's access policy and limits as stored with the tunnel (registry field `policy`). Never
 * holds a plain password: basic-auth entries are scrypt hashes. Pure data.
 */

import type { TunnelPolicy } from "../../registry/types.ts";

export type { BasicAuthEntry, TunnelPolicy } from "../../registry/types.ts";

/** What the API shows of a policy (no hashes). */
export function policyView(p: TunnelPolicy | undefined): Record<string, unknown> | null {
  if (!p) return null;
  return {
    basic_auth_users: p.basicAuth?.map((e) => e.user) ?? [],
    allow_ips: p.allowIps ?? [],
    deny_ips: p.denyIps ?? [],
    entra: p.entra ? { tenants: p.entra.tenants, groups: p.entra.groups } : null,
    rate_limit: p.rateLimit ? { per_second: p.rateLimit.perSecond, burst: p.rateLimit.burst } : null,
    max_streams: p.maxStreams ?? null,
    bandwidth: p.bandwidth ?? null,
  };
}
