/**
 * A local Entra-like token server for tests: `POST /token` with the shared secret in
 * `x-token-server-secret` mints an HS256 JWT (signTestJwt) for the requested scope, with the
 * roles / audience / lifetime the test configured. `HttpTokenCredential` is a real
 * `TokenCredential` that fetches from it over HTTP, the way a managed-identity endpoint works.
 */
import type { AccessToken, GetTokenOptions, TokenCredential } from "@azure/core-auth";
import { randomBytes } from "node:crypto";
import { signTestJwt } from "../../src/emulator/entra.ts";

export interface TokenServerConfig {
  /** Secret the emulator trusts (signs the JWTs). */
  jwtSecret: string;
  roles?: string[];
  aud?: string;
  /** Token lifetime in seconds (default 3600). */
  ttlSeconds?: number;
  relayScope?: string;
  /** Clock (ms) used for `iat` / `exp` (default Date.now). */
  now?: () => number;
  /** Delay each answer (ms), to make concurrent fetches overlap. */
  delayMs?: number;
}

export interface TokenServer {
  url: string;
  /** Shared secret a client must present. */
  clientSecret: string;
  /** Successful token requests served. */
  hits: number;
  /** Requests refused (wrong / missing secret). */
  refused: number;
  config: TokenServerConfig;
  stop(): Promise<void>;
}

export function startTokenServer(config: TokenServerConfig): TokenServer {
  const clientSecret = randomBytes(16).toString("hex");
  const state: TokenServer = {
    url: "",
    clientSecret,
    hits: 0,
    refused: 0,
    config,
    stop: async () => {
      await server.stop(true);
    },
  };
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const url = new URL(req.url);
      if (req.method !== "POST" || url.pathname !== "/token") return new Response("not found", { status: 404 });
      if (req.headers.get("x-token-server-secret") !== clientSecret) {
        state.refused++;
        return Response.json({ error: "unauthorized" }, { status: 401 });
      }
      const { scope } = (await req.json()) as { scope?: string };
      const c = state.config;
      if (c.delayMs) await Bun.sleep(c.delayMs);
      state.hits++;
      const nowMs = (c.now ?? Date.now)();
      const exp = Math.floor(nowMs / 1000) + (c.ttlSeconds ?? 3600);
      const claims: Record<string, unknown> = {
        aud: c.aud ?? "https://relay.azure.net",
        iss: "https://login.microsoftonline.com/test-tenant/v2.0",
        sub: "test-principal",
        iat: Math.floor(nowMs / 1000),
        exp,
        scp: scope,
        jti: `${state.hits}`,
      };
      if (c.roles) claims.roles = c.roles;
      if (c.relayScope !== undefined) claims.relay_scope = c.relayScope;
      return Response.json({ access_token: signTestJwt(claims, c.jwtSecret), expires_on: exp, token_type: "Bearer" });
    },
  });
  state.url = `http://127.0.0.1:${server.port}`;
  return state;
}

/** A TokenCredential that asks the local token server over HTTP. */
export class HttpTokenCredential implements TokenCredential {
  readonly scopesAsked: string[] = [];
  constructor(
    private readonly server: Pick<TokenServer, "url" | "clientSecret">,
    private readonly secret = server.clientSecret,
  ) {}

  async getToken(scopes: string | string[], _options?: GetTokenOptions): Promise<AccessToken | null> {
    const scope = Array.isArray(scopes) ? scopes.join(" ") : scopes;
    this.scopesAsked.push(scope);
    const res = await fetch(`${this.server.url}/token`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-token-server-secret": this.secret },
      body: JSON.stringify({ scope }),
    });
    if (!res.ok) throw new Error(`token server answered ${res.status}`);
    const body = (await res.json()) as { access_token: string; expires_on: number };
    return { token: body.access_token, expiresOnTimestamp: body.expires_on * 1000, tokenType: "Bearer" };
  }
}
