/**
 * The stored form of a tunnel's access policy and limits (the registry keeps it with the tunnel;
 * src/policy/spec.ts builds it from the API's `access` object). Pure data.
 */

/** A tunnel's access policy and limits (never a plain password: basic-auth entries are scrypt hashes). */
export interface BasicAuthEntry {
  user: string;
  /** base64url salt and scrypt(user:password) */
  salt: string;
  hash: string;
}

export interface TunnelPolicy {
  basicAuth?: BasicAuthEntry[];
  /** CIDRs; when set, only these clients (after denyIps) get through. */
  allowIps?: string[];
  denyIps?: string[];
  /** Visitors sign in at the identity provider; optionally restricted to tenants / groups. */
  entra?: { tenants: string[]; groups: string[] };
  /** Requests per second (token bucket, burst = max(1, rate) unless given). */
  rateLimit?: { perSecond: number; burst: number };
  /** Concurrent streams (HTTP requests in flight + open WebSockets). */
  maxStreams?: number;
  /** Bytes per second per direction. */
  bandwidth?: number;
}
