/**
 * The management API as a fetch handler: routing, network checks, key authentication, JSON
 * bodies, and the one boundary that turns errors into `{ "error": { "code", "message" } }`.
 * Paths live under `/api/` (unversioned v1: changes are additive; a breaking change would get
 * `/api/v2/`). The gateway mounts `fetch` on its apex host; tests serve it with Bun.serve.
 */
import { redactToken } from "../hc/sas.ts";
import type { Logger } from "../log.ts";
import type { TunnelRecord } from "../registry/types.ts";
import type { AccessPolicy } from "./access.ts";
import { ApiError, errorResponse, invalid, notFound, UNAUTHORIZED_MESSAGE, UNAUTHORIZED_MESSAGE_OIDC } from "./errors.ts";
import type { ApiKeyStore } from "./keys.ts";
import { looksLikeJwt, type OidcVerifier, TokenRejected } from "./oidc.ts";
import { openApiDocument } from "./openapi.ts";
import { hashBasicAuth } from "../gateway/policy/basic-auth.ts";
import { parseAccess, PolicyError } from "../policy/spec.ts";
import { policyView } from "../gateway/policy/types.ts";
import type { LimitsConfig } from "../identity-settings.ts";
import type { TunnelService } from "./tunnels.ts";

export interface ManagementApiDeps {
  service: TunnelService;
  keys: ApiKeyStore;
  /** OIDC bearer tokens (Entra ID): users own their tunnels; absent = API keys only. */
  oidc?: OidcVerifier;
  /** What `azhexgate login` needs to sign in (served without a credential at GET /api/auth). */
  authInfo?: { issuer: string; cliClientId?: string; cliScopes: string; audience: string[] };
  access: AccessPolicy;
  /** Operator limits and whether visitor sign-in exists, for tunnel access policies (default: no limits, no sign-in). */
  policy?: { limits: LimitsConfig; entraAvailable: boolean };
  log?: Logger;
  /** The public URL of tunnel `id`, e.g. `https://{id}.azhexgate.com`. */
  publicUrl(id: string): string;
  /** What agents dial, e.g. `wss://ns.servicebus.windows.net` or `ws://127.0.0.1:9000`. */
  relayEndpoint: string;
  /** How often idle tunnels are swept (default 60 s; 0 = never, call `service.sweep` yourself). */
  sweepIntervalMs?: number;
}

export interface ManagementApi {
  fetch(req: Request, peer: { address: string }): Promise<Response>;
  stop(): void;
}

/** Every route and its methods; the OpenAPI document must list exactly these (a test checks). */
export const API_ROUTES: ReadonlyArray<{ path: string; methods: readonly string[] }> = [
  { path: "/api/openapi.json", methods: ["GET"] },
  { path: "/api/auth", methods: ["GET"] },
  { path: "/api/tunnels", methods: ["GET", "POST"] },
  { path: "/api/tunnels/{id}", methods: ["GET", "DELETE"] },
  { path: "/api/tunnels/{id}/token", methods: ["POST"] },
  { path: "/api/names/{name}", methods: ["DELETE"] },
  { path: "/api/tunnels/{id}/connect", methods: ["POST"] },
];

export const MAX_BODY_BYTES = 16 * 1024;
const ID = /^[a-z0-9-]{1,40}$/;

function match(pathname: string): { route: string; id?: string } | undefined {
  if (pathname === "/api/openapi.json" || pathname === "/api/tunnels" || pathname === "/api/auth") return { route: pathname };
  const n = /^\/api\/names\/([^/]+)$/.exec(pathname);
  if (n?.[1]) return { route: "/api/names/{name}", id: n[1] };
  const m = /^\/api\/tunnels\/([^/]+)(\/token|\/connect)?$/.exec(pathname);
  if (!m?.[1]) return undefined;
  return { route: m[2] ? `/api/tunnels/{id}${m[2]}` : "/api/tunnels/{id}", id: m[1] };
}

function presentedKey(req: Request): string | undefined {
  const header = req.headers.get("x-azhexgate-apikey")?.trim();
  if (header) return header;
  const auth = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.get("authorization") ?? "");
  return auth?.[1];
}

/** Reads a JSON object body of at most MAX_BODY_BYTES; `optional` bodies may be empty. */
async function readJson(req: Request, optional: boolean): Promise<Record<string, unknown>> {
  const length = req.headers.get("content-length");
  if (length !== null && Number(length) > MAX_BODY_BYTES) {
    throw new ApiError(413, "payload_too_large", `The request body is larger than ${MAX_BODY_BYTES} bytes.`);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (req.body) {
    for await (const chunk of req.body) {
      size += chunk.byteLength;
      if (size > MAX_BODY_BYTES) throw new ApiError(413, "payload_too_large", `The request body is larger than ${MAX_BODY_BYTES} bytes.`);
      chunks.push(chunk);
    }
  }
  if (size === 0) {
    if (optional) return {};
    throw invalid("body", "A JSON object body is required.");
  }
  const type = (req.headers.get("content-type") ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  if (type !== "application/json" && !/^application\/[\w.-]+\+json$/.test(type)) {
    throw new ApiError(415, "unsupported_media_type", "Send the body as JSON with Content-Type: application/json.");
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks, size).toString("utf8"));
  } catch {
    throw invalid("body", "The request body is not valid JSON.");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw invalid("body", "The request body must be a JSON object.");
  return value as Record<string, unknown>;
}

function onlyFields(body: Record<string, unknown>, allowed: string[]): void {
  for (const k of Object.keys(body)) if (!allowed.includes(k)) throw invalid(k, `Unknown field "${k}"; allowed: ${allowed.join(", ")}.`);
}

interface Ctx {
  keyId?: string;
  admin?: boolean;
  route?: string;
  client?: string;
}

/** `kind` / `allow` of a create request → the TCP settings (undefined for an HTTP tunnel). */
function tcpSettings(body: Record<string, unknown>): { allow: string[] } | undefined {
  const { kind, allow } = body;
  if (kind !== undefined && kind !== "http" && kind !== "tcp") throw invalid("kind", 'kind must be "http" or "tcp".');
  if (kind !== "tcp") {
    if (allow !== undefined) throw invalid("allow", 'allow is for TCP tunnels only (kind "tcp").');
    return undefined;
  }
  if (allow !== undefined && !(Array.isArray(allow) && allow.length <= 64 && allow.every((a) => typeof a === "string" && a.length >= 1 && a.length <= 200))) {
    throw invalid("allow", "allow must be a list of at most 64 key ids or user ids (strings of 1-200 characters).");
  }
  return { allow: [...new Set((allow as string[] | undefined) ?? [])] };
}

const iso = (ms: number): string => new Date(ms).toISOString();

export function createManagementApi(deps: ManagementApiDeps): ManagementApi {
  const { service, keys, access, log } = deps;

  const view = (t: TunnelRecord) => ({
    id: t.id,
    public_url: deps.publicUrl(t.id),
    relay_endpoint: deps.relayEndpoint,
    hybrid_connection_name: t.hcPath,
    reserved: t.reserved,
    local_port: t.localPort ?? null,
    kind: t.tcp ? "tcp" : "http",
    allow: t.tcp ? t.tcp.allow : null,
    access: policyView(t.policy),
    created_at: iso(t.createdAt),
    last_seen_at: iso(t.lastSeenAt),
    idle_expires_at: iso(t.expiresAt),
  });
  const json = (value: unknown, status = 200): Response => Response.json(value, { status, headers: { "cache-control": "no-store" } });

  async function createTunnel(req: Request, keyId: string): Promise<Response> {
    const body = await readJson(req, true);
    onlyFields(body, ["subdomain", "local_port", "access", "kind", "allow"]);
    const { subdomain, local_port } = body;
    const tcp = tcpSettings(body);
    let policy;
    try {
      policy = parseAccess(body.access, {
        limits: deps.policy?.limits ?? { rate: 0, rateMax: 0, streams: 0, streamsMax: 0, bandwidth: 0, bandwidthMax: 0 },
        entraAvailable: deps.policy?.entraAvailable ?? false,
        hash: hashBasicAuth,
      });
    } catch (e) {
      if (e instanceof PolicyError) throw invalid(e.field, e.message);
      throw e;
    }
    if (subdomain !== undefined && subdomain !== null && typeof subdomain !== "string") throw invalid("subdomain", "subdomain must be a string.");
    if (local_port !== undefined && local_port !== null && !(Number.isInteger(local_port) && (local_port as number) >= 1 && (local_port as number) <= 65535)) {
      throw invalid("local_port", "local_port must be an integer from 1 to 65535.");
    }
    const r = await service.create(keyId, { subdomain: subdomain ?? undefined, localPort: (local_port as number | null) ?? undefined, policy, tcp });
    return json(
      {
        ...view(r.tunnel),
        listener_token: r.token,
        expires_at: iso(r.tokenExpiresAt),
        session_id: r.tunnel.sessionId,
      },
      201,
    );
  }

  async function renew(req: Request, keyId: string, id: string): Promise<Response> {
    const body = await readJson(req, false);
    onlyFields(body, ["session_id", "rejected"]);
    if (typeof body.session_id !== "string" || body.session_id.length === 0 || body.session_id.length > 100) {
      throw invalid("session_id", "session_id is required: the session_id returned when the tunnel was created.");
    }
    if (body.rejected !== undefined && typeof body.rejected !== "boolean") throw invalid("rejected", "rejected must be true or false.");
    const r = await service.renewToken(keyId, id, { sessionId: body.session_id, rejected: body.rejected === true });
    // The whole view, so an agent re-claiming after a gateway restart also learns a moved relay endpoint.
    return json({ ...view(r.tunnel), listener_token: r.token, expires_at: iso(r.tokenExpiresAt) });
  }

  async function handle(req: Request, url: URL, peer: string, ctx: Ctx): Promise<Response> {
    const m = match(url.pathname);
    ctx.route = m?.route;
    if (m?.route === "/api/openapi.json" && (req.method === "GET" || req.method === "HEAD")) {
      return Response.json(openApiDocument(), { headers: { "cache-control": "public, max-age=300" } });
    }
    if (m?.route === "/api/auth" && (req.method === "GET" || req.method === "HEAD")) {
      const a = deps.authInfo;
      return json(
        a?.cliClientId
          ? { oidc: { issuer: a.issuer, client_id: a.cliClientId, scopes: a.cliScopes, audience: a.audience[0] } }
          : { oidc: null },
      );
    }
    const ip = access.clientIp(peer, req.headers.get("x-forwarded-for"));
    ctx.client = ip;
    if (ip === undefined || !access.allowed(ip)) {
      throw new ApiError(403, "forbidden_network", "Your network address is not allowed to use the management API; ask the operator to add it to the allow-list.");
    }
    if (!m) throw new ApiError(404, "not_found", `No API route ${url.pathname}; see /api/openapi.json.`);
    const methods = API_ROUTES.find((r) => r.path === m.route)?.methods ?? [];
    if (!methods.includes(req.method)) {
      throw new ApiError(405, "method_not_allowed", `${req.method} is not allowed on ${m.route}; use ${methods.join(" or ")}.`, {
        headers: { allow: methods.join(", ") },
      });
    }
    const presented = presentedKey(req);
    let keyId = presented === undefined ? undefined : keys.identify(presented);
    let admin = false;
    let rejected: TokenRejected | undefined;
    if (!keyId && presented !== undefined && deps.oidc && looksLikeJwt(presented)) {
      try {
        const who = await deps.oidc.verify(presented);
        keyId = who.owner;
        admin = who.admin;
      } catch (e) {
        if (!(e instanceof TokenRejected)) throw e;
        rejected = e;
      }
    }
    if (rejected?.status === 403) throw new ApiError(403, "forbidden", rejected.message);
    if (rejected?.status === 503) throw new ApiError(503, "identity_provider_unavailable", rejected.message, { headers: { "retry-after": "30" } });
    if (!keyId) {
      // Keys still loading (first deploy, role not yet effective): the caller's key may be fine.
      if (keys.unavailable !== undefined && rejected === undefined) {
        throw new ApiError(503, "api_keys_unavailable", "The gateway has not loaded its API keys yet; retry in a minute (operators: GET /readyz says why).", {
          headers: { "retry-after": "30" },
        });
      }
      // The limiter counts failures only, so a valid key from a limited address keeps working.
      const wait = access.retryAfter(ip);
      if (wait > 0) {
        throw new ApiError(429, "rate_limited", `Too many failed authentications from your address; retry in ${wait} s.`, { headers: { "retry-after": String(wait) } });
      }
      access.recordFailure(ip);
      if (rejected) {
        throw new ApiError(401, "invalid_token", rejected.message, {
          headers: { "www-authenticate": `Bearer realm="azhexgate", error="invalid_token", error_description="${rejected.message.replace(/["\\]/g, "")}"` },
        });
      }
      throw new ApiError(401, "unauthorized", deps.oidc ? UNAUTHORIZED_MESSAGE_OIDC : UNAUTHORIZED_MESSAGE, { headers: { "www-authenticate": 'Bearer realm="azhexgate"' } });
    }
    ctx.admin = admin;
    ctx.keyId = keyId;
    const id = m.id?.toLowerCase();
    if (id !== undefined && !ID.test(id)) throw notFound();
    switch (`${req.method} ${m.route}`) {
      case "POST /api/tunnels":
        return createTunnel(req, keyId);
      case "GET /api/tunnels": {
        const all = admin && url.searchParams.get("all") === "true";
        return json({ tunnels: (await service.list(keyId, all)).map((t) => (admin ? { ...view(t), owner: t.keyId } : view(t))) });
      }
      case "GET /api/tunnels/{id}": {
        const t = await service.get(keyId, id as string, admin);
        return json(admin ? { ...view(t), owner: t.keyId } : view(t));
      }
      case "DELETE /api/tunnels/{id}":
        await service.delete(keyId, id as string, admin);
        return new Response(null, { status: 204 });
      case "POST /api/tunnels/{id}/token":
        return renew(req, keyId, id as string);
      case "DELETE /api/names/{name}":
        await service.releaseName(keyId, id as string, admin);
        return new Response(null, { status: 204 });
      case "POST /api/tunnels/{id}/connect": {
        const r = await service.connectToken(keyId, id as string, admin);
        return json({ endpoint: deps.relayEndpoint, hcPath: r.tunnel.hcPath, token: r.token, expiresAt: iso(r.tokenExpiresAt) });
      }
    }
    throw new Error(`route ${req.method} ${m.route} has no handler`);
  }

  const sweepEvery = deps.sweepIntervalMs ?? 60_000;
  const timer =
    sweepEvery > 0
      ? setInterval(() => {
          service.sweep().catch((e) => log?.error("sweep failed", { error: e as Error }));
        }, sweepEvery)
      : undefined;
  timer?.unref?.();

  return {
    async fetch(req, peer) {
      const started = performance.now();
      const ctx: Ctx = {};
      let res: Response;
      let url: URL;
      try {
        url = new URL(req.url);
      } catch {
        return errorResponse(invalid("url", "The request URL is malformed."));
      }
      try {
        res = await handle(req, url, peer.address, ctx);
      } catch (e) {
        if (e instanceof ApiError) {
          res = errorResponse(e);
          if (e.status >= 500) log?.error("api relay error", { code: e.code, route: ctx.route, cause: redactToken(String((e.cause as Error | undefined)?.message ?? e.cause)) });
        } else {
          log?.error("api internal error", { route: ctx.route, error: e as Error, stack: redactToken(String((e as Error)?.stack ?? e)) });
          res = errorResponse(new ApiError(500, "internal", "Internal error in the management API; retry, and report it if it persists."));
        }
      }
      log?.info("api request", {
        method: req.method,
        route: ctx.route ?? "unmatched",
        status: res.status,
        key_id: ctx.keyId,
        admin: ctx.admin || undefined,
        peer: peer.address,
        client: ctx.client,
        ms: Math.round(performance.now() - started),
      });
      return res;
    },
    stop() {
      if (timer) clearInterval(timer);
    },
  };
}
