/**
 * The gateway's admission check for a tunnel request, run after the tunnel is resolved and before
 * any stream is opened (so a refused request — HTTP or WebSocket upgrade — never reaches the relay
 * or the agent): client-sent identity headers removed; IP deny / allow; request rate (429 +
 * Retry-After); concurrent streams (429); basic auth (401 + WWW-Authenticate); visitor sign-in.
 * Each refusal is counted in `azhexgate_access_refusals_total{tunnel,reason}`.
 */
import { parseCidr, parseIp } from "../../net/cidr.ts";
import type { LimitsConfig } from "../../identity-settings.ts";
import { errorResponse, type GatewayError, publicError } from "../errors.ts";
import { BasicAuthChecker } from "./basic-auth.ts";
import { RateLimiter } from "./limits.ts";
import type { TunnelPolicy } from "./types.ts";

export const IDENTITY_HEADERS = ["x-azhexgate-user-email", "x-azhexgate-user-oid", "x-azhexgate-user-name", "x-azhexgate-user-tenant"];

export interface AdmitContext {
  id: string;
  host: string;
  kind: "http" | "ws";
  /** The public client's address (trusted-proxy aware). */
  client: string;
  /** The scheme the public client used. */
  proto: "http" | "https";
  policy?: TunnelPolicy;
  /** Streams of this tunnel in flight on this gateway instance. */
  activeStreams: number;
}

/** Visitor sign-in (src/gateway/visitor-auth.ts): a response (redirect / refusal) or the identity headers to add. */
export interface VisitorGate {
  admit(req: Request, ctx: AdmitContext, entra: NonNullable<TunnelPolicy["entra"]>): Promise<Response | Record<string, string>>;
}

export interface PolicyGateOptions {
  limits: LimitsConfig;
  refusals: { inc(labels: Record<string, string>): void };
  visitor?: VisitorGate;
  now?: () => number;
}

/**
 * Admission of one request: a Response refuses it, undefined lets it through. Synchronous unless
 * the tunnel needs visitor sign-in (no promise per request on the common path).
 */
export type Admit = (req: Request, ctx: AdmitContext) => Response | undefined | Promise<Response | undefined>;

function refuse(req: Request, err: GatewayError, headers: Record<string, string> = {}): Response {
  const res = errorResponse(err, req.headers.get("accept"), req.method);
  for (const [k, v] of Object.entries(headers)) res.headers.set(k, v);
  return res;
}

/** Parsed CIDR lists, memoised per policy list (policies come from the registry on every request). */
const cidrCache = new Map<string, ReturnType<typeof parseCidr>[]>();
function cidrs(list: string[]): ReturnType<typeof parseCidr>[] {
  const k = list.join(",");
  let c = cidrCache.get(k);
  if (!c) {
    if (cidrCache.size > 10_000) cidrCache.clear();
    cidrCache.set(k, (c = list.map(parseCidr)));
  }
  return c;
}
function inAny(ip: string, list: string[]): boolean {
  const p = parseIp(ip);
  if (!p) return false;
  const width = p.v === 4 ? 32 : 128;
  return cidrs(list).some((c) => c.v === p.v && p.n >> BigInt(width - c.bits) === c.base >> BigInt(width - c.bits));
}

export function createPolicyGate(o: PolicyGateOptions): Admit {
  const rate = new RateLimiter(o.now);
  const basic = new BasicAuthChecker();
  const L = o.limits;
  const cap = (v: number | undefined, dflt: number, max: number): number => {
    const n = v ?? dflt;
    return max > 0 && (n === 0 || n > max) ? max : n;
  };
  return (req, ctx) => {
    for (const h of IDENTITY_HEADERS) req.headers.delete(h);
    const p = ctx.policy;
    const count = (reason: string) => o.refusals.inc({ tunnel: ctx.id, reason });
    if (p?.denyIps?.length && inAny(ctx.client, p.denyIps)) {
      count("ip_denied");
      return refuse(req, publicError("ip_denied"));
    }
    if (p?.allowIps?.length && !inAny(ctx.client, p.allowIps)) {
      count("ip_denied");
      return refuse(req, publicError("ip_denied"));
    }
    const perSecond = p?.rateLimit ? cap(p.rateLimit.perSecond, 0, L.rateMax) : cap(undefined, L.rate, L.rateMax);
    if (perSecond > 0) {
      const burst = p?.rateLimit?.burst ?? Math.max(1, Math.ceil(perSecond));
      const wait = rate.take(ctx.id, perSecond, burst);
      if (wait > 0) {
        count("rate_limited");
        return refuse(req, publicError("rate_limited", wait), { "retry-after": String(wait) });
      }
    }
    const maxStreams = cap(p?.maxStreams, L.streams, L.streamsMax);
    if (maxStreams > 0 && ctx.activeStreams >= maxStreams) {
      count("streams_limited");
      return refuse(req, publicError("streams_limited", maxStreams), { "retry-after": "1" });
    }
    if (p?.basicAuth?.length) {
      if (!basic.check(ctx.id, p.basicAuth, req.headers.get("authorization"))) {
        count("basic_auth");
        return refuse(req, publicError("basic_auth"), { "www-authenticate": `Basic realm="${ctx.host.replace(/"/g, "")}", charset="UTF-8"` });
      }
    }
    if (p?.entra) {
      if (!o.visitor) {
        count("entra");
        return refuse(req, publicError("signin_unconfigured"));
      }
      return o.visitor.admit(req, ctx, p.entra).then((r) => {
        if (r instanceof Response) {
          if (r.status >= 400) count("entra");
          return r;
        }
        for (const [k, v] of Object.entries(r)) req.headers.set(k, v);
        return undefined;
      });
    }
    return undefined;
  };
}
