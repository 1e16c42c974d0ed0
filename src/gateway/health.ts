/**
 * The gateway's service paths — `/healthz` (up), `/readyz` (ready: registry and relay reachable,
 * not draining) and `/metrics` (Prometheus text, behind its access rule) — answered on hosts that
 * are not a tunnel's. The first step of the request handler (src/gateway/server.ts).
 */
import { errorResponse, type GatewayError } from "./errors.ts";
import { SERVICE_PATHS, serviceHost } from "./routing.ts";

export interface Readiness {
  ready: boolean;
  /** Why not ready, for operators (shown by /readyz). */
  reason?: string;
}

export interface HealthOptions {
  baseDomain: string;
  /** Renders /metrics. */
  metrics: () => string;
  /** Who may read /metrics: null to serve it, else the error (absent: anyone). */
  metricsAccess?: (req: Request, address: string) => GatewayError | null;
  ready?: () => boolean | Readiness | Promise<boolean | Readiness>;
  draining: () => boolean;
}

/** The answer to a service path on a non-tunnel host, or undefined when `target` is not one. */
export function healthAnswer(req: Request, target: string, host: string | null, address: () => string, o: HealthOptions): Promise<Response> | Response | undefined {
  const q = target.indexOf("?");
  const path = q < 0 ? target : target.slice(0, q);
  if (!SERVICE_PATHS.has(path) || !serviceHost(host, o.baseDomain)) return undefined;
  const denied = path === "/metrics" && o.metricsAccess ? o.metricsAccess(req, address()) : null;
  if (denied) return errorResponse(denied, req.headers.get("accept"), req.method);
  return service(path, o);
}

async function service(path: string, o: HealthOptions): Promise<Response> {
  const text = (body: string, status = 200, type = "text/plain; charset=utf-8", extra: Record<string, string> = {}) =>
    new Response(body, { status, headers: { "content-type": type, "cache-control": "no-store", ...extra } });
  if (path === "/healthz") return text("ok\n");
  if (path === "/metrics") return text(o.metrics(), 200, "text/plain; version=0.0.4; charset=utf-8");
  // The state is in a header too, so a client (doctor) tells draining apart without reading words.
  if (o.draining()) return text("draining\n", 503, undefined, { "x-azhexgate-error": "gateway_draining" });
  const r = await Promise.resolve(o.ready ? o.ready() : true).catch((): Readiness => ({ ready: false, reason: "the readiness check failed" }));
  if (typeof r === "boolean") return r ? text("ready\n") : text("not ready\n", 503);
  return Response.json(r.reason === undefined ? { ready: r.ready } : r, { status: r.ready ? 200 : 503, headers: { "cache-control": "no-store" } });
}
