/**
 * The OpenAPI 3.1 description of the management API, served at `GET /api/openapi.json`.
 * Kept in step with `API_ROUTES` in routes.ts by test/api-openapi.test.ts.
 */

const err = (description: string) => ({ description, content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } });
const ref = (name: string) => ({ $ref: `#/components/responses/${name}` });
/** What every keyed operation may answer. (405 method_not_allowed, with Allow, is for methods not listed here.) */
const guarded = { "401": ref("Unauthorized"), "403": ref("ForbiddenNetwork"), "429": ref("RateLimited"), "500": ref("Internal"), "503": ref("KeysUnavailable") };
const jsonBody = (schema: string, required: boolean) => ({
  required,
  content: { "application/json": { schema: { $ref: `#/components/schemas/${schema}` } } },
});
const ok = (description: string, schema: string) => ({ description, content: { "application/json": { schema: { $ref: `#/components/schemas/${schema}` } } } });
const idParam = { name: "id", in: "path", required: true, description: "The tunnel id (its subdomain label).", schema: { type: "string", pattern: "^[a-z0-9-]{1,40}$" } };
const isoTime = { type: "string", format: "date-time" };

const tunnelProps = {
  id: { type: "string", description: "Subdomain label: 13 random base32 characters (a-z, 2-7; ~65 bits), or a reserved name." },
  public_url: { type: "string", format: "uri" },
  relay_endpoint: { type: "string", description: "Relay namespace URL the agent listens on (wss://… in Azure, ws://… locally)." },
  hybrid_connection_name: { type: "string", description: "Always hc-{id}." },
  reserved: { type: "boolean", description: "True for a reserved name owned by the API key beyond this tunnel's life." },
  local_port: { type: ["integer", "null"] },
  kind: { type: "string", enum: ["http", "tcp"], description: "http: served on its public URL; tcp (`azhexgate tcp`): reached only with `azhexgate connect`." },
  allow: { type: ["array", "null"], items: { type: "string" }, description: "TCP tunnels: key ids / user ids (besides the owner and admins) that may connect." },
  access: {
    type: ["object", "null"],
    description: "The tunnel's access policy and limits as enforced at the gateway (null: anyone may open it; operator limits apply). Passwords are never shown.",
    properties: {
      basic_auth_users: { type: "array", items: { type: "string" } },
      allow_ips: { type: "array", items: { type: "string" } },
      deny_ips: { type: "array", items: { type: "string" } },
      entra: { type: ["object", "null"], properties: { tenants: { type: "array", items: { type: "string" } }, groups: { type: "array", items: { type: "string" } } } },
      rate_limit: { type: ["object", "null"], properties: { per_second: { type: "number" }, burst: { type: "integer" } } },
      max_streams: { type: ["integer", "null"] },
      bandwidth: { type: ["integer", "null"], description: "Bytes per second per direction." },
    },
  },
  created_at: isoTime,
  last_seen_at: isoTime,
  idle_expires_at: { ...isoTime, description: "The tunnel is removed after this unless a token is requested (each token request renews it)." },
};
/** Only in admin views (an admin reads another owner's tunnel). */
const ownerProp = { owner: { type: "string", description: "Admins only: the owner (an API key id, or user:{tid}:{oid})." } };

export function openApiDocument(): Record<string, unknown> {
  return {
    openapi: "3.1.0",
    info: {
      title: "azhexgate management API",
      version: "1",
      description:
        "Creates tunnels and issues their relay listener tokens. Paths live under /api/ (version 1, unversioned paths): changes are additive; a breaking change would move to /api/v2/. " +
        "Every route but this document needs a credential and a client address inside the operator's allow-list. Credentials: an API key (X-AzHexGate-ApiKey header or Authorization: Bearer) — tunnels are owned by the key — " +
        "or, when the gateway is configured for it, an OIDC access token from its identity provider (Entra ID) as Authorization: Bearer <JWT> — tunnels are owned by the user (tenant + object id); members of the admin group may list (?all=true), read and delete every tunnel. " +
        "Errors are { error: { code, message } } with a stable code, also in the X-AzHexGate-Error header; " +
        "a method a path does not list is answered 405 method_not_allowed with an Allow header; an unknown path 404 not_found.",
    },
    security: [{ apiKeyHeader: [] }, { bearer: [] }, { oidcBearer: [] }],
    paths: {
      "/api/openapi.json": {
        get: { operationId: "getOpenApi", summary: "This document", security: [], responses: { "200": { description: "OpenAPI 3.1 document" } } },
      },
      "/api/auth": {
        get: {
          operationId: "getAuthInfo",
          summary: "How to sign in: the OIDC issuer, public client id and scopes `azhexgate login` uses (oidc: null when the gateway takes API keys only)",
          security: [],
          responses: { "200": { description: "{ oidc: { issuer, client_id, scopes, audience } | null }" } },
        },
      },
      "/api/tunnels": {
        post: {
          operationId: "createTunnel",
          summary: "Create a tunnel, or take back one of your reserved names from a stale session",
          requestBody: jsonBody("CreateTunnel", false),
          responses: {
            "201": ok("Tunnel created; the listener token is returned only here and by the token route", "CreatedTunnel"),
            "400": ref("InvalidRequest"),
            ...guarded,
            "409": err("subdomain_taken: the reserved name belongs to another API key"),
            "413": ref("PayloadTooLarge"),
            "415": ref("UnsupportedMediaType"),
            "502": ref("RelayUnavailable"),
          },
        },
        get: {
          operationId: "listTunnels",
          summary: "Your tunnels (no tokens)",
          parameters: [{ name: "all", in: "query", required: false, description: "Admins (OIDC admin group) only: every owner's tunnels, each with its owner.", schema: { type: "boolean" } }],
          responses: { "200": ok("Tunnels of the calling key", "TunnelList"), ...guarded },
        },
      },
      "/api/tunnels/{id}": {
        parameters: [idParam],
        get: { operationId: "getTunnel", summary: "One of your tunnels", responses: { "200": ok("The tunnel", "Tunnel"), "404": ref("NotFound"), ...guarded } },
        delete: {
          operationId: "deleteTunnel",
          summary: "Delete a tunnel and its hybrid connection (a reserved name stays yours)",
          responses: { "204": { description: "Deleted" }, "404": ref("NotFound"), ...guarded, "502": ref("RelayUnavailable") },
        },
      },
      "/api/names/{name}": {
        parameters: [{ name: "name", in: "path", required: true, description: "A reserved name (a tunnel id you chose).", schema: { type: "string", pattern: "^[a-z0-9-]{1,40}$" } }],
        delete: {
          operationId: "releaseName",
          summary: "Release one of your reserved names (any key may then take it)",
          responses: { "204": { description: "Released" }, "404": ref("NotFound"), "409": err("name_in_use: a tunnel still uses the name; delete it first"), ...guarded },
        },
      },
      "/api/tunnels/{id}/connect": {
        parameters: [idParam],
        post: {
          operationId: "connectTunnel",
          summary: "A short-lived Send-only relay token for a TCP tunnel (`azhexgate connect`): for its owner, the keys / users it allows, and admins",
          responses: {
            "200": ok("Where and how to dial the relay as a sender", "ConnectGrant"),
            "404": ref("NotFound"),
            ...guarded,
            "403": err("forbidden_network / forbidden (see ForbiddenNetwork); connect_forbidden: the tunnel's owner has not allowed your key or user (azhexgate tcp --allow)"),
            "409": err("not_tcp_tunnel: an HTTP tunnel; open its public URL instead"),
            "501": err("connect_unavailable: this gateway's relay binding cannot sign Send tokens"),
            "502": ref("RelayUnavailable"),
          },
        },
      },
      "/api/tunnels/{id}/token": {
        parameters: [idParam],
        post: {
          operationId: "renewToken",
          summary: "A fresh listener token for the current session (renews the tunnel's idle deadline)",
          requestBody: jsonBody("RenewToken", true),
          responses: {
            "200": ok("A fresh token", "Token"),
            "400": ref("InvalidRequest"),
            "404": ref("NotFound"),
            ...guarded,
            "409": err("session_superseded: a newer session of your key took the tunnel over"),
            "413": ref("PayloadTooLarge"),
            "415": ref("UnsupportedMediaType"),
            "502": ref("RelayUnavailable"),
          },
        },
      },
    },
    components: {
      securitySchemes: {
        apiKeyHeader: { type: "apiKey", in: "header", name: "X-AzHexGate-ApiKey" },
        bearer: { type: "http", scheme: "bearer", description: "The API key as a bearer token" },
        oidcBearer: {
          type: "http",
          scheme: "bearer",
          bearerFormat: "JWT",
          description:
            "An OIDC access token (RS256 / PS256 / ES256) from the gateway's issuer (AZHEXGATE_OIDC_ISSUER) for its audience (AZHEXGATE_OIDC_AUDIENCE), from an allowed tenant (tid) and group; `azhexgate login` gets one.",
        },
      },
      schemas: {
        Error: {
          type: "object",
          required: ["error"],
          properties: {
            error: {
              type: "object",
              required: ["code", "message"],
              properties: {
                code: {
                  type: "string",
                  enum: [
                    "invalid_request", "unauthorized", "forbidden_network", "not_found", "method_not_allowed", "subdomain_taken",
                    "session_superseded", "payload_too_large", "unsupported_media_type", "rate_limited", "internal", "relay_unavailable",
                    "api_keys_unavailable", "invalid_token", "forbidden", "identity_provider_unavailable", "connect_forbidden", "not_tcp_tunnel", "connect_unavailable",
                  ],
                },
                message: { type: "string" },
                field: { type: "string", description: "For invalid_request: the offending field." },
              },
            },
          },
        },
        CreateTunnel: {
          type: "object",
          additionalProperties: false,
          properties: {
            subdomain: { type: "string", pattern: "^[a-z0-9](?:[a-z0-9-]{1,38}[a-z0-9])$", description: "A reserved name (3-40 chars, not all digits, not a reserved word); omit for a random id." },
            local_port: { type: "integer", minimum: 1, maximum: 65535, description: "Informational." },
            kind: { type: "string", enum: ["http", "tcp"], description: "tcp: a TCP tunnel (no public URL; reached with azhexgate connect). Default http." },
            allow: { type: "array", maxItems: 64, items: { type: "string" }, description: "With kind tcp: key ids / user ids (besides you and admins) that may connect." },
            access: {
              type: "object",
              additionalProperties: false,
              description: "Who may open the tunnel and its limits, enforced at the gateway before the relay. A malformed policy is refused (400 invalid_request, error.field names it).",
              properties: {
                basic_auth: { type: "array", maxItems: 16, items: { type: "string" }, description: "USER:PASSWORD entries (password 8-128 characters); stored as scrypt hashes." },
                allow_ips: { type: "array", maxItems: 64, items: { type: "string" }, description: "CIDRs; only these clients get through." },
                deny_ips: { type: "array", maxItems: 64, items: { type: "string" }, description: "CIDRs refused (checked first)." },
                entra: { oneOf: [{ type: "boolean" }, { type: "object", properties: { tenants: { type: "array", items: { type: "string" } }, groups: { type: "array", items: { type: "string" } } } }], description: "Visitors sign in at the gateway's identity provider (needs AZHEXGATE_VISITOR_CLIENT_ID)." },
                rate_limit: { type: "string", description: "Requests per time, e.g. 100/s or 6000/m (at most the operator's maximum)." },
                rate_burst: { type: "integer", minimum: 1, description: "Bucket size (default: one second's worth)." },
                max_streams: { type: "integer", minimum: 1, description: "Concurrent requests / WebSockets." },
                bandwidth: { type: "string", description: "Bytes per second per direction, e.g. 500k, 10m." },
              },
            },
          },
        },
        RenewToken: {
          type: "object",
          additionalProperties: false,
          required: ["session_id"],
          properties: {
            session_id: { type: "string" },
            rejected: { type: "boolean", description: "True when the relay refused the last token: the signing key is re-read (rotation)." },
          },
        },
        Tunnel: { type: "object", properties: { ...tunnelProps, ...ownerProp }, required: Object.keys(tunnelProps) },
        TunnelList: { type: "object", required: ["tunnels"], properties: { tunnels: { type: "array", items: { $ref: "#/components/schemas/Tunnel" } } } },
        CreatedTunnel: {
          type: "object",
          properties: {
            ...tunnelProps,
            listener_token: { type: "string", description: "SAS token: Listen right on this hybrid connection only." },
            expires_at: { ...isoTime, description: "When listener_token expires; renew before with the token route." },
            session_id: { type: "string" },
          },
          required: [...Object.keys(tunnelProps), "listener_token", "expires_at", "session_id"],
        },
        ConnectGrant: {
          type: "object",
          required: ["endpoint", "hcPath", "token", "expiresAt"],
          properties: {
            endpoint: { type: "string", description: "Relay namespace URL to dial as a sender." },
            hcPath: { type: "string", description: "The tunnel's hybrid connection, hc-{id}." },
            token: { type: "string", description: "SAS token: Send right on this hybrid connection only." },
            expiresAt: { ...isoTime, description: "When token expires; ask again before." },
          },
        },
        Token: {
          type: "object",
          description: "A fresh listener token with the tunnel's current view (the relay endpoint may have moved after a gateway restart).",
          required: [...Object.keys(tunnelProps), "listener_token", "expires_at"],
          properties: { ...tunnelProps, listener_token: { type: "string" }, expires_at: isoTime },
        },
      },
      responses: {
        InvalidRequest: err("invalid_request: bad JSON or a bad field (named in error.field)"),
        Unauthorized: err("unauthorized: missing or unknown API key; invalid_token: a bearer JWT that is expired, for another audience or issuer, unsigned or signed by an unknown key (see WWW-Authenticate)"),
        ForbiddenNetwork: err("forbidden_network: the client address is outside the allow-list; forbidden: a valid token from a tenant or group this gateway does not allow"),
        NotFound: err("not_found: no such tunnel for this API key"),
        MethodNotAllowed: err("method_not_allowed (see the Allow header)"),
        PayloadTooLarge: err("payload_too_large: bodies are limited to 16 KiB"),
        UnsupportedMediaType: err("unsupported_media_type: bodies must be application/json"),
        RateLimited: err("rate_limited: too many failed authentications from this address (see Retry-After); a valid key is not limited"),
        KeysUnavailable: err("api_keys_unavailable: the gateway has not loaded its API keys yet (see Retry-After; /readyz says why); identity_provider_unavailable: a bearer JWT could not be checked because the identity provider is unreachable (see Retry-After)"),
        Internal: err("internal: unexpected error (logged)"),
        RelayUnavailable: err("relay_unavailable: the relay could not be reached to provision or sign"),
      },
    },
  };
}
