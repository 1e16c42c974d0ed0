/**
 * The agent's client of the management API: claim a tunnel, renew its listener token, delete it.
 * Every failure is an `ApiClientError` with a stable code, whether retrying can help, and a
 * sentence that names the cause and the fix. Keys and tokens never appear in messages.
 */
import { resolveNamespace } from "../hc/address.ts";
import { fetchProxyOption, processProxyFor, redactProxyUrl } from "../net/proxy.ts";
import type { TunnelGrant } from "./supervisor.ts";

export class ApiClientError extends Error {
  override readonly name = "ApiClientError";
  constructor(
    readonly code: string,
    message: string,
    readonly retryable: boolean,
    readonly status?: number,
  ) {
    super(message);
  }
}

export interface ApiClientOptions {
  /** e.g. `https://api.azhexgate.com` or `http://localhost:8080` (routes live under /api/). */
  apiUrl: string;
  /** An API key; without one, `bearer` (the signed-in identity) is sent instead. */
  apiKey?: string;
  /** A current OIDC access token (refreshed by the caller, src/agent/identity-cache.ts). */
  bearer?: () => Promise<string>;
  timeoutMs?: number;
}

/** What `connect` dials with: the relay, the tunnel's hybrid connection and a Send-only token (expiry in ms). */
export interface ConnectGrant {
  endpoint: import("../hc/address.ts").RelayEndpoint;
  hcPath: string;
  token: string;
  expiresAt: number;
}

/** A claimed tunnel: the supervisor's grant plus its id. */
export interface ClaimedTunnel extends TunnelGrant {
  id: string;
}

interface TunnelView {
  id: string;
  public_url: string;
  relay_endpoint: string;
  hybrid_connection_name: string;
  listener_token: string;
  expires_at: string;
  session_id?: string;
}

export function createApiClient(o: ApiClientOptions) {
  const base = o.apiUrl.replace(/\/+$/, "").replace(/\/api$/, "");

  async function call(method: string, path: string, body?: unknown): Promise<unknown> {
    let res: Response;
    let auth: Record<string, string>;
    if (o.apiKey) auth = { "x-azhexgate-apikey": o.apiKey };
    else {
      try {
        auth = { authorization: `Bearer ${await o.bearer!()}` };
      } catch (err) {
        const e = err as { code?: string; message?: string };
        // no sign-in, or it cannot be refreshed: as terminal as a rejected key
        throw new ApiClientError("api_key_rejected", e.message ?? String(err), e.code === "idp_unreachable", e.code === "idp_unreachable" ? undefined : 401);
      }
    }
    try {
      res = await fetch(`${base}${path}`, {
        method,
        headers: { ...auth, ...(body === undefined ? {} : { "content-type": "application/json" }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(o.timeoutMs ?? 30_000),
        proxy: fetchProxyOption(base), // the same proxy choice as the relay connections (src/net/proxy.ts)
      });
    } catch (err) {
      const why = redactProxyUrl((err as Error)?.name === "TimeoutError" ? "it did not answer in time" : (err as Error)?.message ?? String(err));
      const proxy = processProxyFor(base);
      const tunnel = err as { code?: unknown; status?: unknown };
      if (proxy && tunnel.code === "ERR_PROXY_TUNNEL" && typeof tunnel.status === "number") {
        const s = tunnel.status;
        throw new ApiClientError("proxy_refused", `Proxy ${proxy.display} (${proxy.source}) refused to reach the management API at ${base}: ${s}. Check the proxy URL and its credentials, or list the host in NO_PROXY.`, !(s === 401 || s === 403 || s === 407), s);
      }
      const via = proxy ? ` through proxy ${proxy.display} (${proxy.source})` : "";
      throw new ApiClientError("api_unreachable", `Cannot reach the management API at ${base}${via} (${why}). Check --api-url / AZHEXGATE_API_URL and your network.`, true);
    }
    if (res.status === 204) return undefined;
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (res.ok) {
      if (parsed === undefined) throw new ApiClientError("api_bad_answer", `The management API at ${base} answered ${res.status} without JSON; is --api-url pointing at an azhexgate gateway?`, true, res.status);
      return parsed;
    }
    const e = (parsed as { error?: { code?: string; message?: string } })?.error;
    const code = e?.code ?? `http_${res.status}`;
    const detail = e?.message ?? (text.slice(0, 200) || res.statusText);
    switch (res.status) {
      case 401:
        throw new ApiClientError(
          "api_key_rejected",
          o.apiKey ? `The management API rejected the API key (401). Check --api-key / AZHEXGATE_API_KEY.` : `The management API rejected your sign-in (401: ${detail}) Run \`azhexgate login\` again.`,
          false,
          401,
        );
      case 403:
        if (code === "connect_forbidden") throw new ApiClientError(code, `Not authorized (403): ${detail}`, false, 403);
        throw new ApiClientError(code, `The management API refused this machine (403 ${code}): ${detail} Ask the operator to allow your address.`, false, 403);
      case 404:
        if (code === "tunnel_not_found") {
          // The gateway's host routing answered, not its management API: the URL's host is a tunnel's or unknown.
          const host = new URL(base).host;
          throw new ApiClientError(
            "api_wrong_host",
            `The gateway at ${base} does not serve its management API on the host ${host} (404 tunnel_not_found: ${detail}) ` +
              `Set --api-url / AZHEXGATE_API_URL to the gateway's API host (its base domain or api.{base domain}), ` +
              `or start the gateway with AZHEXGATE_BASE_DOMAIN (--base-domain) set to the host you use.`,
            false,
            404,
          );
        }
        throw new ApiClientError("not_found", `The tunnel no longer exists on the gateway (404): ${detail}`, true, 404);
      case 409:
        // "reserved by another API key" and "taken over by a newer session" stay true however often we retry;
        // a reclaim race does not: the gateway marks that one with Retry-After (src/api/tunnels.ts).
        throw new ApiClientError(code, `${detail}`, code === "subdomain_taken" && res.headers.has("retry-after"), 409);
      case 429: {
        // the per-key tunnel quota: retried (a tunnel may be deleted or expire), with the gateway's sentence
        if (code === "tunnel_quota") throw new ApiClientError(code, detail, true, 429);
        const after = res.headers.get("retry-after");
        throw new ApiClientError("rate_limited", `The management API is rate limiting this machine${after ? `; retry in ${after} s` : ""}.`, true, 429);
      }
      default:
        throw new ApiClientError(code, `The management API answered ${res.status} ${code}: ${detail}`, res.status >= 500 || res.status === 408, res.status);
    }
  }

  /** A 404 on the collection itself: no management API at this URL (a path, or not an azhexgate gateway). */
  function noApiHere(err: unknown): never {
    if (err instanceof ApiClientError && err.code === "not_found") {
      throw new ApiClientError("api_wrong_url", `There is no azhexgate management API at ${base}/api/tunnels (404). Check --api-url / AZHEXGATE_API_URL: it is the gateway's base URL, e.g. http://localhost:8080.`, false, 404);
    }
    throw err;
  }

  function grant(v: TunnelView, sessionId: string): ClaimedTunnel {
    if (typeof v?.listener_token !== "string" || typeof v.relay_endpoint !== "string") {
      throw new ApiClientError("api_bad_answer", `The management API at ${base} answered without a listener token; is it an azhexgate gateway of this version?`, false);
    }
    return {
      id: v.id,
      endpoint: resolveNamespace(v.relay_endpoint),
      hcPath: v.hybrid_connection_name,
      token: v.listener_token,
      expiresAt: Date.parse(v.expires_at),
      publicUrl: v.public_url,
      sessionId,
    };
  }

  return {
    /** Claims a tunnel: a random id, or `subdomain` (reserved for this key; the owner takes it back at once). */
    async create(opts: { subdomain?: string; localPort?: number; access?: unknown; tcp?: { allow: string[] } }): Promise<ClaimedTunnel> {
      const tcp = opts.tcp ? { kind: "tcp", allow: opts.tcp.allow } : {};
      const v = (await call("POST", "/api/tunnels", { subdomain: opts.subdomain, local_port: opts.localPort, access: opts.access, ...tcp }).catch(noApiHere)) as TunnelView;
      return grant(v, v.session_id ?? "");
    },
    /** A fresh listener token (and the tunnel's current endpoint). `rejected`: the relay refused the current one. */
    async renew(t: { id: string; sessionId: string }, rejected: boolean): Promise<ClaimedTunnel> {
      const v = (await call("POST", `/api/tunnels/${encodeURIComponent(t.id)}/token`, { session_id: t.sessionId, rejected })) as TunnelView;
      return grant(v, t.sessionId);
    },
    /** A short-lived Send-only relay token for TCP tunnel `name` (`azhexgate connect`). */
    async connect(name: string): Promise<ConnectGrant> {
      let v: { endpoint?: unknown; hcPath?: unknown; token?: unknown; expiresAt?: unknown };
      try {
        v = (await call("POST", `/api/tunnels/${encodeURIComponent(name)}/connect`)) as typeof v;
      } catch (err) {
        if (err instanceof ApiClientError && err.code === "not_found") {
          throw new ApiClientError("tunnel_unknown", `No tunnel named "${name}" (404): check the name (azhexgate tunnels list on the serving side) and that azhexgate tcp runs there.`, false, 404);
        }
        throw err;
      }
      if (typeof v?.token !== "string" || typeof v.endpoint !== "string" || typeof v.hcPath !== "string" || typeof v.expiresAt !== "string") {
        throw new ApiClientError("api_bad_answer", `The management API at ${base} answered the connect route without a token; is it an azhexgate gateway of this version?`, false);
      }
      return { endpoint: resolveNamespace(v.endpoint), hcPath: v.hcPath, token: v.token, expiresAt: Date.parse(v.expiresAt) };
    },
    async remove(id: string): Promise<void> {
      await call("DELETE", `/api/tunnels/${encodeURIComponent(id)}`);
    },
    /** The caller's tunnels; `all` (admins signed in with OIDC): every owner's, each with its `owner`. */
    async list(all = false): Promise<Array<Record<string, unknown>>> {
      return ((await call("GET", all ? "/api/tunnels?all=true" : "/api/tunnels").catch(noApiHere)) as { tunnels: Array<Record<string, unknown>> }).tunnels;
    },
  };
}

export type ApiClient = ReturnType<typeof createApiClient>;
