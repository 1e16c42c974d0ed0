/**
 * The emulator's authorization decisions: which token a request carries, and whether it may
 * listen / send on an entity. Outcomes are the service's: 401 (missing, malformed, bad signature,
 * expired, unknown rule), 403 (valid but wrong entity or right), 404 (no such entity).
 * Descriptions mimic Azure's, with a `TrackingId:` tail (hybrid-connections.md §2, §3.1).
 */
import { randomUUID } from "node:crypto";
import { parseSasToken, sasScope, scopeCovers, verifySasSignature } from "../hc/sas.ts";
import { type EntityStore, type HybridConnection, type Right, grants } from "./entities.ts";
import { type EntraConfig, verifyEntraJwt } from "./entra.ts";

export interface AuthContext {
  readonly entities: EntityStore;
  readonly entra?: EntraConfig;
  /** Seconds of grace after a token's `se`. */
  readonly tokenSkewSeconds: number;
  /** `host[:port]` published in rendezvous addresses, also accepted as a token audience. */
  readonly publicHost?: string;
  /** True when the emulator is bound to a loopback name / IP address: any token host is accepted. */
  readonly lenientHost: boolean;
  readonly now: () => number;
}

// ---- issue 10 (relayerr): authorization-side fault switches: the quota answer and role propagation ----

/** Fault switches that shape authorization answers (one set per emulator, found by its EntityStore). */
export interface AuthFaults {
  /**
   * Status for a listener over the per-HC limit: 403 with a quota description (default: the
   * Service Bus convention — Microsoft.Azure.Relay maps it to QuotaExceededException;
   * relay-exceptions.md) or 429 (what this emulator answered before; kept testable).
   */
  listenerQuotaStatus: 403 | 429;
  /**
   * Until `until` (ms), tokens that would be accepted are refused with `status`, as while an Azure
   * role assignment propagates ("can take up to five minutes", relay authenticate-application.md).
   * `tokens` picks which carriers it hits; `refused` counts the refusals.
   */
  rolePropagation?: { until: number; status: 401 | 403; tokens: "entra" | "sas" | "all"; refused: number };
}

const authFaultsByStore = new WeakMap<EntityStore, AuthFaults>();

/** The authorization fault switches of the emulator that owns `entities` (created on first use). */
export function authFaults(entities: EntityStore): AuthFaults {
  let f = authFaultsByStore.get(entities);
  if (!f) {
    f = { listenerQuotaStatus: 403 };
    authFaultsByStore.set(entities, f);
  }
  return f;
}

/** Back to the defaults (quota as 403, no propagation window). */
export function resetAuthFaults(entities: EntityStore): void {
  authFaultsByStore.set(entities, { listenerQuotaStatus: 403 });
}

/** A refusal while roles "propagate", or undefined. The text is the service's missing-claim answer. */
function propagating(ctx: AuthContext, kind: "entra" | "sas", right: Right, entityPath: string, requestHost: string): AuthVerdict | undefined {
  const r = authFaults(ctx.entities).rolePropagation;
  if (!r || ctx.now() >= r.until || (r.tokens !== "all" && r.tokens !== kind)) return undefined;
  r.refused++;
  const text = `Unauthorized access. '${right}' claim(s) are required to perform this operation. Resource: '${entityPath}'.`;
  return { ok: false, status: r.status, description: describe(text, requestHost, entityPath) };
}

// ---- end issue 10 block ----

export type AuthVerdict =
  | { ok: true; rights: Right[]; scopePath: string; /** Unix seconds; undefined = never */ expiresAt?: number }
  | { ok: false; status: 401 | 403 | 404; description: string };

/** `<text> TrackingId:<uuid>, SystemTracker:<host>:<path>, Timestamp:<iso>` */
export function describe(text: string, host: string, path: string): string {
  const h = host.replace(/:\d+$/, "").toLowerCase();
  return `${text} TrackingId:${randomUUID()}, SystemTracker:${h}:${path}, Timestamp:${new Date().toISOString()}`;
}

function hostOnly(hostPort: string): string {
  return hostPort
    .replace(/^\[|\](:\d+)?$/g, "")
    .replace(/:\d+$/, "")
    .toLowerCase();
}

/** True for loopback names and IP literals: any token host is then accepted. */
export function isLenientHostname(hostname: string): boolean {
  const h = hostname.toLowerCase();
  return h === "localhost" || h.endsWith(".localhost") || /^[\d.]+$/.test(h) || h.includes(":");
}

/** Where a listener / WebSocket sender put its token: `ServiceBusAuthorization` header or `sb-hc-token` query. */
export function wsToken(req: Request, url: URL): string | undefined {
  // An empty header does not count as a token carrier (a valid query token still applies).
  return req.headers.get("servicebusauthorization") || url.searchParams.get("sb-hc-token") || undefined;
}

/**
 * An HTTP sender's token per §6.1: `sb-hc-token` query, `ServiceBusAuthorization` header, else (only
 * when neither is present) `Authorization`. `fromAuthorization` tells the caller to strip that header.
 */
export function httpToken(req: Request, url: URL): { token?: string; fromAuthorization: boolean } {
  const q = url.searchParams.get("sb-hc-token");
  const h = req.headers.get("servicebusauthorization");
  if (q !== null || h !== null) return { token: q ?? h ?? undefined, fromAuthorization: false };
  const a = req.headers.get("authorization");
  return a === null ? { fromAuthorization: false } : { token: a, fromAuthorization: true };
}

/** Expiry (`exp`) of a JWT, unverified; undefined when absent. */
function jwtExpiry(token: string): number | undefined {
  const part = token.replace(/^Bearer\s+/i, "").split(".")[1];
  if (!part) return undefined;
  try {
    const exp = (JSON.parse(Buffer.from(part, "base64url").toString("utf8")) as { exp?: unknown }).exp;
    return typeof exp === "number" ? exp : undefined;
  } catch {
    return undefined;
  }
}

/**
 * True when a SAS token whose `se` is `se` (Unix seconds) is expired at `nowMs` (the context's
 * injectable clock), with `skewSeconds` of grace: valid while `now < se + skew`, expired from the
 * exact second `se + skew` on. `se` is the token's absolute expiry (the HC protocol guide:
 * https://learn.microsoft.com/azure/azure-relay/relay-hybrid-connections-protocol, "Security
 * token"); the relay service's own comparison is not published. Microsoft's published SAS
 * validator for the same token format (Azure/iotedge,
 * edge-util/src/Microsoft.Azure.Devices.Edge.Util/SharedAccessSignature.cs, `IsExpired`:
 * `ExpiresOn + MaxClockSkew < UtcNow`) still accepts at the exact instant; this emulator takes
 * the stricter answer, so a client that renews only at `se` is caught, and it is the instant at
 * which the emulator closes a listener whose token ran out (control.ts). test/sas-expiry.test.ts.
 */
export function sasExpired(se: number, skewSeconds: number, nowMs: number): boolean {
  return (se + skewSeconds) * 1000 <= nowMs;
}

/**
 * Checks `token` for `right` on `entityPath` (`hc` = the entity, undefined when it does not exist
 * yet — then only namespace rules can sign). `requestHost` = the Host the client used.
 */
export function authorize(
  ctx: AuthContext,
  token: string | undefined,
  entityPath: string,
  hc: HybridConnection | undefined,
  right: Right,
  requestHost: string,
): AuthVerdict {
  const fail = (status: 401 | 403, text: string): AuthVerdict => ({ ok: false, status, description: describe(text, requestHost, entityPath) });
  if (!token) return fail(401, "MissingToken: The request contains no authorization token (TokenMissingOrInvalid).");
  const nowS = ctx.now() / 1000;

  const sas = parseSasToken(token.trim());
  if (!sas) {
    if (!ctx.entra) return fail(401, "InvalidSignature: The token is malformed or is not a Shared Access Signature (TokenMissingOrInvalid).");
    const v = verifyEntraJwt(token.trim().replace(/^Bearer\s+/i, ""), ctx.entra, Math.floor(nowS));
    if (!v.ok) return { ok: false, status: v.status, description: describe(v.description, requestHost, entityPath) };
    if (!scopeCovers(v.scopePath, entityPath)) return fail(403, `Unauthorized access. The token is not valid for '${entityPath}'.`);
    if (!v.rights.includes(right) && !v.rights.includes("Manage"))
      return fail(403, `Unauthorized access. '${right}' claim(s) are required to perform this operation. Resource: '${entityPath}'.`);
    return propagating(ctx, "entra", right, entityPath, requestHost) ?? { ok: true, rights: v.rights, scopePath: v.scopePath, expiresAt: jwtExpiry(token) };
  }

  const rule = ctx.entities.findRule(hc, sas.skn);
  if (!rule) return fail(401, `InvalidSignature: The token has an invalid signature (no authorization rule named '${sas.skn}').`);
  if (!verifySasSignature(sas, rule.primaryKey) && !verifySasSignature(sas, rule.secondaryKey))
    return fail(401, "InvalidSignature: The token has an invalid signature.");
  const scope = sasScope(sas.resource);
  if (!scope) return fail(401, "InvalidAudience: The token's resource is not a valid URI.");
  if (!ctx.lenientHost) {
    const allowed = [hostOnly(requestHost)];
    if (ctx.publicHost) allowed.push(hostOnly(ctx.publicHost));
    if (!allowed.includes(scope.host)) return fail(401, `InvalidAudience: The token audience '${scope.host}' does not match this namespace.`);
  }
  if (sasExpired(sas.se, ctx.tokenSkewSeconds, ctx.now()))
    return fail(401, `ExpiredToken: The token is expired. Expiration time: '${new Date(sas.se * 1000).toISOString()}'.`);
  if (!scopeCovers(scope.path, entityPath))
    return fail(403, `Unauthorized access. The token audience '${scope.path || "/"}' is not valid for '${entityPath}'.`);
  if (!grants(rule, right))
    return fail(403, `Unauthorized access. '${right}' claim(s) are required to perform this operation. Resource: '${entityPath}'.`);
  return propagating(ctx, "sas", right, entityPath, requestHost) ?? { ok: true, rights: [...rule.rights], scopePath: scope.path, expiresAt: sas.se };
}

/** The 404 for an entity that does not exist. */
export function notFound(requestHost: string, path: string): AuthVerdict & { ok: false } {
  return { ok: false, status: 404, description: describe("Endpoint does not exist.", requestHost, path) };
}

/** A handshake failure: status as the status, description as the text/plain body (Bun sends no custom reason phrase). */
export function failureResponse(status: number, description: string): Response {
  return new Response(description, { status, headers: { "content-type": "text/plain; charset=utf-8" } });
}
