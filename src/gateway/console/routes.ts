/**
 * The gateway console at `/console` on the management host: a static page (HTML, JS and CSS as
 * separate same-origin files under a strict Content-Security-Policy, no inline code) that signs in
 * with an API key, or with the gateway's OIDC provider (Entra ID: code + PKCE run by signin.js in
 * the browser, redirect URI `{api host}/console/`), and keeps the key or access token in
 * sessionStorage, sent as a bearer header on each call — no cookie carries authority, so
 * cross-site requests cannot act for the user. Its data comes from the management API itself
 * (same authorization, allow-list and rate limit) plus two views: `GET /console/api/auth` (public:
 * the provider's endpoints, client id and scopes) and `GET /console/api/tunnels` (the API's tunnel
 * list with this gateway's live counters). With sign-in on, the provider's token endpoint is the
 * one addition to the CSP (`connect-src`).
 */
import type { GatewayMetrics } from "../metrics.ts";
import { tunnelCounters } from "./stats.ts";

export const CONSOLE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** The console's CSP when it signs users in: the identity provider's token endpoint joins `connect-src` (nothing else). */
export function consoleCsp(tokenEndpoint?: string): string {
  return tokenEndpoint ? CONSOLE_CSP.replace("connect-src 'self'", `connect-src 'self' ${tokenEndpoint}`) : CONSOLE_CSP;
}

/** What the console needs to sign users in with the gateway's OIDC provider (a public client: code + PKCE). */
export interface ConsoleOidc {
  /** The public client (the CLI's: AZHEXGATE_OIDC_CLI_CLIENT_ID) whose redirect URIs include `{api host}/console/`. */
  clientId: string;
  scopes: string;
  discovery(): Promise<{ authorization_endpoint?: string; token_endpoint?: string }>;
}

const ASSETS: Record<string, { file: string; type: string }> = {
  "/console": { file: "index.html", type: "text/html; charset=utf-8" },
  "/console/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/console/console.js": { file: "console.js", type: "text/javascript; charset=utf-8" },
  "/console/console.css": { file: "console.css", type: "text/css; charset=utf-8" },
  "/console/signin.js": { file: "signin.js", type: "text/javascript; charset=utf-8" },
};

export interface ConsoleDeps {
  /** The management API's handler: every data call goes through its authorization. */
  api: { fetch(req: Request, peer: { address: string }): Promise<Response> };
  metrics: GatewayMetrics;
  /** Sign-in with the OIDC provider (Entra ID), when the gateway has OIDC and a public client id. */
  oidc?: ConsoleOidc;
}

export interface GatewayConsole {
  /** True for the paths the console serves. */
  owns(pathname: string): boolean;
  fetch(req: Request, peer: { address: string }): Promise<Response>;
}

const cache = new Map<string, string>();
async function asset(file: string): Promise<string> {
  let t = cache.get(file);
  if (t === undefined) cache.set(file, (t = await Bun.file(new URL(`./${file}`, import.meta.url)).text()));
  return t;
}

const SECURITY = {
  "content-security-policy": CONSOLE_CSP,
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
};

export function createConsole(deps: ConsoleDeps): GatewayConsole {
  /** The provider's endpoints for the browser, or why there are none (discovery is cached by the loader). */
  const signIn = async (): Promise<{ authorization_endpoint: string; token_endpoint: string; client_id: string; scopes: string } | { unavailable: string } | null> => {
    const o = deps.oidc;
    if (!o) return null;
    try {
      const d = await o.discovery();
      if (!d.authorization_endpoint || !d.token_endpoint) return { unavailable: "The identity provider's discovery document names no authorization or token endpoint." };
      return { authorization_endpoint: d.authorization_endpoint, token_endpoint: d.token_endpoint, client_id: o.clientId, scopes: o.scopes };
    } catch (e) {
      return { unavailable: `The identity provider cannot be reached (${(e as Error).message}); sign in with an API key or retry later.` };
    }
  };
  return {
    owns: (p) => p === "/console" || p.startsWith("/console/"),
    async fetch(req, peer) {
      const url = new URL(req.url);
      const a = ASSETS[url.pathname];
      if (a) {
        if (req.method !== "GET" && req.method !== "HEAD") return new Response("Use GET.", { status: 405, headers: { ...SECURITY, allow: "GET, HEAD" } });
        let csp = CONSOLE_CSP;
        if (a.file === "index.html" && deps.oidc) {
          const s = await signIn();
          if (s && "token_endpoint" in s) csp = consoleCsp(s.token_endpoint);
        }
        return new Response(await asset(a.file), { headers: { ...SECURITY, "content-security-policy": csp, "content-type": a.type } });
      }
      if (url.pathname === "/console/api/auth" && req.method === "GET") {
        // Public: only what a browser needs to start the sign-in (as GET /api/auth for the CLI).
        const s = await signIn();
        if (s && "unavailable" in s) return Response.json({ error: { code: "identity_provider_unavailable", message: s.unavailable } }, { status: 503, headers: { "cache-control": "no-store", "retry-after": "30" } });
        return Response.json({ oidc: s }, { headers: { "cache-control": "no-store" } });
      }
      if (url.pathname === "/console/api/tunnels" && req.method === "GET") {
        // The API answers first (key, network allow-list, rate limit): its refusals pass through unchanged.
        const sub = new Request(new URL("/api/tunnels", url), { headers: req.headers });
        const res = await deps.api.fetch(sub, peer);
        if (!res.ok) return res;
        const body = (await res.json()) as { tunnels: Array<Record<string, unknown> & { id: string }> };
        const counters = tunnelCounters(deps.metrics);
        const now = Date.now();
        const tunnels = body.tunnels.map((t) => {
          const c = counters.get(t.id);
          const sessions = c?.sessions ?? 0;
          const lastSeen = Date.parse(String(t.last_seen_at));
          return {
            ...t,
            state: sessions > 0 ? "online" : "idle",
            sessions,
            active_streams: c?.streams ?? 0,
            last_seen_seconds_ago: Number.isFinite(lastSeen) ? Math.max(0, Math.round((now - lastSeen) / 1000)) : null,
            requests: c?.requests ?? 0,
            requests_by_class: c?.byClass ?? {},
            bytes_in: c?.bytesIn ?? 0,
            bytes_out: c?.bytesOut ?? 0,
          };
        });
        return Response.json({ tunnels }, { headers: { "cache-control": "no-store" } });
      }
      return Response.json({ error: { code: "not_found", message: `No console route ${url.pathname}; open /console.` } }, { status: 404, headers: SECURITY });
    },
  };
}
