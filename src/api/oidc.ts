/**
 * OIDC bearer tokens for the management API (Entra ID or any OpenID provider), validated with
 * `jose`: the signature against the issuer's JWKS (found through its discovery document, cached,
 * refetched when a token names an unknown `kid` — key rollover), `iss`, `aud`, `exp` / `nbf` with
 * a small clock skew, an asymmetric algorithm only (`alg: none` and HMAC refused), then the
 * tenant (`tid`) and group allow-lists. The owner of a user's tunnels is `user:{tid}:{oid}`
 * (`sub` when the provider has no `oid`); members of the admin group may see and delete all.
 *
 * Entra's multi-tenant discovery documents name the issuer `https://login.microsoftonline.com/{tenantid}/v2.0`
 * (https://learn.microsoft.com/en-us/entra/identity-platform/access-tokens#validate-the-issuer):
 * the placeholder is replaced by the token's `tid` before comparing.
 */
import { createRemoteJWKSet, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload } from "jose";

export interface OidcSettings {
  /** The issuer URL; its discovery document is `{issuer}/.well-known/openid-configuration`. */
  issuer: string;
  /** Accepted `aud` values (e.g. `api://azhexgate` and the application's client id). */
  audience: string[];
  /** Accepted `tid` values; empty = any tenant (with a tenant-specific issuer, only that one can sign anyway). */
  tenants: string[];
  /** A token must carry one of these in its `groups` claim; empty = any group. */
  groups: string[];
  /** Members of this group may list and delete every tunnel. */
  adminGroup?: string;
}

export interface Principal {
  /** Tunnel owner id: `user:{tid}:{oid}` or `user:-:{sub}`. */
  owner: string;
  admin: boolean;
  tenant?: string;
  objectId: string;
  name?: string;
  email?: string;
}

export interface Discovery {
  issuer: string;
  jwks_uri: string;
  authorization_endpoint?: string;
  token_endpoint?: string;
  device_authorization_endpoint?: string;
  end_session_endpoint?: string;
}

/** Why a token was refused: 401 (not a valid token), 403 (valid, but not allowed here), 503 (the provider cannot be reached: retry). */
export class TokenRejected extends Error {
  override readonly name = "TokenRejected";
  constructor(readonly status: 401 | 403 | 503, message: string) {
    super(message);
  }
}

export const CLOCK_SKEW_SECONDS = 60;
const ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"];

/** True when `s` has the shape of a JWS compact serialization (`alg: none` tokens included). */
export function looksLikeJwt(s: string): boolean {
  return /^eyJ[\w-]*\.[\w-]*\.[\w-]*$/.test(s);
}

/** Fetches and caches a discovery document (a failure is retried on the next call). */
export function discoveryLoader(issuer: string, fetchImpl: typeof fetch = fetch): () => Promise<Discovery> {
  let cached: Promise<Discovery> | undefined;
  return () => {
    cached ??= (async () => {
      const url = `${issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`;
      const res = await fetchImpl(url, { signal: AbortSignal.timeout(10_000) });
      if (!res.ok) throw new Error(`the OIDC discovery document ${url} answered ${res.status}`);
      const doc = (await res.json()) as Discovery;
      if (typeof doc.issuer !== "string" || typeof doc.jwks_uri !== "string") throw new Error(`the OIDC discovery document ${url} has no issuer / jwks_uri`);
      return doc;
    })();
    cached.catch(() => {
      cached = undefined;
    });
    return cached;
  };
}

export interface OidcVerifier {
  verify(token: string): Promise<Principal>;
  readonly settings: OidcSettings;
  discovery(): Promise<Discovery>;
}

export function createOidcVerifier(settings: OidcSettings, opts: { cooldownMs?: number; fetch?: typeof fetch } = {}): OidcVerifier {
  const discovery = discoveryLoader(settings.issuer, opts.fetch);
  let jwks: ReturnType<typeof createRemoteJWKSet> | undefined;
  const keys = async () => {
    if (jwks) return jwks;
    const doc = await discovery();
    // cooldown: at most one refetch per window when tokens name unknown kids (rollover, or garbage)
    jwks = createRemoteJWKSet(new URL(doc.jwks_uri), { cooldownDuration: opts.cooldownMs ?? 30_000, cacheMaxAge: 3600_000, timeoutDuration: 10_000 });
    return jwks;
  };

  return {
    settings,
    discovery,
    async verify(token) {
      let header;
      try {
        header = decodeProtectedHeader(token);
      } catch {
        throw new TokenRejected(401, "The bearer token is not a well-formed JWT.");
      }
      if (typeof header.alg !== "string" || !ALGORITHMS.includes(header.alg)) {
        throw new TokenRejected(401, `The bearer token's algorithm "${String(header.alg)}" is not accepted; tokens must be signed by the identity provider.`);
      }
      let doc: Discovery;
      let set: Awaited<ReturnType<typeof keys>>;
      try {
        doc = await discovery();
        set = await keys();
      } catch {
        throw new TokenRejected(503, "The gateway cannot reach its identity provider to check the token; retry in a minute.");
      }
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, set, { audience: settings.audience, clockTolerance: CLOCK_SKEW_SECONDS, algorithms: ALGORITHMS }));
      } catch (e) {
        if (e instanceof joseErrors.JWKSTimeout || !(e instanceof joseErrors.JOSEError)) {
          throw new TokenRejected(503, "The gateway cannot reach its identity provider to check the token; retry in a minute.");
        }
        throw new TokenRejected(401, describe(e));
      }
      const tid = typeof payload.tid === "string" ? payload.tid : undefined;
      const expectedIss = doc.issuer.includes("{tenantid}") ? (tid ? doc.issuer.replace("{tenantid}", tid) : undefined) : doc.issuer;
      if (payload.iss !== expectedIss) throw new TokenRejected(401, "The bearer token was issued by another identity provider than the one this gateway trusts.");
      if (settings.tenants.length > 0 && (!tid || !settings.tenants.includes(tid))) {
        throw new TokenRejected(403, "Your tenant is not allowed to use this gateway; ask the operator to add it to AZHEXGATE_OIDC_TENANTS.");
      }
      const groups = Array.isArray(payload.groups) ? payload.groups.filter((g): g is string => typeof g === "string") : [];
      const admin = settings.adminGroup !== undefined && groups.includes(settings.adminGroup);
      if (!admin && settings.groups.length > 0 && !groups.some((g) => settings.groups.includes(g))) {
        throw new TokenRejected(403, "You are not in a group allowed to use this gateway; ask the operator (AZHEXGATE_OIDC_GROUPS).");
      }
      const oid = typeof payload.oid === "string" ? payload.oid : typeof payload.sub === "string" ? payload.sub : undefined;
      if (!oid) throw new TokenRejected(401, "The bearer token names no user (no oid or sub claim).");
      const str = (k: string) => (typeof payload[k] === "string" ? (payload[k] as string) : undefined);
      return {
        owner: `user:${tid ?? "-"}:${oid}`,
        admin,
        tenant: tid,
        objectId: oid,
        name: str("name"),
        email: str("email") ?? str("preferred_username") ?? str("upn"),
      };
    },
  };
}

function describe(e: unknown): string {
  if (e instanceof joseErrors.JWTExpired) return "The bearer token has expired; sign in again (azhexgate login).";
  if (e instanceof joseErrors.JWTClaimValidationFailed) {
    if (e.claim === "aud") return "The bearer token is for another audience than this gateway (AZHEXGATE_OIDC_AUDIENCE).";
    if (e.claim === "nbf") return "The bearer token is not valid yet.";
    return `The bearer token's "${e.claim}" claim is invalid.`;
  }
  if (e instanceof joseErrors.JWKSNoMatchingKey) return "The bearer token is signed with a key the identity provider does not publish.";
  if (e instanceof joseErrors.JWSSignatureVerificationFailed) return "The bearer token's signature is invalid.";
  return "The bearer token is invalid.";
}
