/**
 * Visitor sign-in for `--entra` tunnels: OIDC authorization code flow with PKCE, run by the
 * gateway as a confidential client, ending in a signed session cookie on the tunnel's own host.
 *
 * Entra does not accept wildcard redirect URIs
 * (https://learn.microsoft.com/en-us/entra/identity-platform/reply-url — "Restrictions on
 * wildcards in redirect URIs"), so one fixed callback on the management host receives every
 * tunnel's sign-in, and the tunnel host gets its cookie through a one-time code:
 *
 *   1. `{tunnel}/path` without a session → 302 `{api}/auth/start?s=STATE` (STATE: JWE holding the
 *      tunnel host, the path, the PKCE verifier and a nonce; 10 min).
 *   2. `/auth/start` sets a short login cookie with the nonce on the API host (binds the sign-in to
 *      this browser: no login CSRF) → 302 to the provider's authorize endpoint (code, S256).
 *   3. `/auth/callback?code&state` checks STATE and the nonce cookie, redeems the code with the
 *      client secret + verifier, verifies the ID token (jose, JWKS, iss / aud / nonce), applies the
 *      tunnel's tenant / group rule (a clear 403 page when outside) → 302
 *      `{tunnel}/.azhexgate/callback?code=ONE_TIME` (JWE, 60 s, single use on this instance).
 *   4. The tunnel host sets its session cookie (HS256 JWS bound to that host; HttpOnly,
 *      SameSite=Lax, Secure + `__Host-` over https; no Domain) → 302 back to the path.
 *
 * Every later request: the cookie's signature, expiry and host are checked and the tunnel's group
 * rule re-applied; the app gets X-AzHexGate-User-Email / -Oid / -Name / -Tenant (client-sent copies
 * are removed by the gate) and never sees the session cookie. `/.azhexgate/logout` clears it.
 */
import { createHash, randomBytes } from "node:crypto";
import { base64url, createRemoteJWKSet, EncryptJWT, jwtDecrypt, jwtVerify, SignJWT, type JWTPayload } from "jose";
import { discoveryLoader } from "../api/oidc.ts";
import type { OidcConfig, VisitorConfig } from "../identity-settings.ts";
import type { AdmitContext, VisitorGate } from "./policy/gate.ts";
import type { TunnelPolicy } from "./policy/types.ts";
import { publicError } from "./errors.ts";

export const RESERVED_PREFIX = "/.azhexgate/";
const STATE_TTL_S = 600;
const CODE_TTL_S = 60;

export interface VisitorAuthOptions {
  oidc: OidcConfig;
  visitor: VisitorConfig;
  /** `{scheme}://{api host}` — the callback is `{apiBase}/auth/callback` (register it at the provider). */
  apiBase: string;
  /** The policy of tunnel `id` now (the callback checks groups against it). */
  policyOf(id: string): Promise<TunnelPolicy | undefined>;
  /** Tunnel id of a host (`{id}.{base}`), or undefined. */
  tunnelOf(host: string): string | undefined;
  now?: () => number;
}

export interface VisitorAuth extends VisitorGate {
  /** Handles `/auth/start` and `/auth/callback` on the API host; undefined for other paths. */
  apex(req: Request): Promise<Response> | undefined;
  readonly redirectUri: string;
}

interface Session extends JWTPayload {
  host: string;
  email?: string;
  oid: string;
  tid?: string;
  name?: string;
  grp: string[];
}

const derive = (key: Uint8Array, label: string) => createHash("sha256").update(label).update("\0").update(key).digest();
const pkceChallenge = (verifier: string) => base64url.encode(createHash("sha256").update(verifier).digest());
const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(status: number, title: string, body: string, headers: Record<string, string> = {}): Response {
  return new Response(
    `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${esc(title)}</title></head>` +
      `<body style="font-family:system-ui,sans-serif;max-width:40em;margin:3em auto"><h1>${esc(title)}</h1>${body}<p><small>azhexgate</small></p></body></html>\n`,
    { status, headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store", ...headers } },
  );
}

function cookieOf(req: Request, name: string): string | undefined {
  for (const part of (req.headers.get("cookie") ?? "").split(";")) {
    const i = part.indexOf("=");
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

/** The Cookie header without `name` (the app never sees the session). */
function withoutCookie(header: string | null, name: string): string | undefined {
  if (!header) return undefined;
  const kept = header.split(";").filter((p) => p.split("=")[0]?.trim() !== name).map((p) => p.trim()).filter(Boolean);
  return kept.length ? kept.join("; ") : undefined;
}

export function createVisitorAuth(o: VisitorAuthOptions): VisitorAuth {
  const sessionKey = derive(o.visitor.cookieKey, "azhexgate visitor session");
  const sealKey = derive(o.visitor.cookieKey, "azhexgate visitor state");
  const now = () => Math.floor((o.now ?? Date.now)() / 1000);
  const discovery = discoveryLoader(o.oidc.issuer);
  let jwks: ReturnType<typeof createRemoteJWKSet> | undefined;
  const redirectUri = `${o.apiBase}/auth/callback`;
  const apiSecure = o.apiBase.startsWith("https:");
  const loginCookie = apiSecure ? "__Host-azhexgate_login" : "azhexgate_login";
  /** One-time codes already redeemed here (jti → expiry, seconds). */
  const used = new Map<string, number>();

  const seal = (claims: JWTPayload, ttl: number) =>
    new EncryptJWT(claims).setProtectedHeader({ alg: "dir", enc: "A256GCM" }).setIssuedAt().setExpirationTime(now() + ttl).encrypt(sealKey);
  const unseal = async (jwe: string | null): Promise<JWTPayload | undefined> => {
    if (!jwe || jwe.length > 8192) return undefined;
    try {
      return (await jwtDecrypt(jwe, sealKey, { clockTolerance: 5 })).payload;
    } catch {
      return undefined;
    }
  };
  const sessionName = (proto: string) => (proto === "https" ? "__Host-azhexgate_session" : "azhexgate_session");

  /** Tenant / group rule of a tunnel for an identity; undefined = allowed, else why not. */
  const refusal = (entra: NonNullable<TunnelPolicy["entra"]>, tid: string | undefined, groups: string[]): string | undefined => {
    const tenants = entra.tenants.length ? entra.tenants : o.oidc.tenants;
    if (tenants.length && (!tid || !tenants.includes(tid))) return "your organisation (tenant) is not one this tunnel admits";
    if (entra.groups.length && !groups.some((g) => entra.groups.includes(g))) return "you are not a member of a group this tunnel admits";
    return undefined;
  };

  async function verifySession(req: Request, ctx: AdmitContext): Promise<Session | undefined> {
    const raw = cookieOf(req, sessionName(ctx.proto));
    if (!raw || raw.length > 8192) return undefined;
    try {
      const { payload } = await jwtVerify<Session>(raw, sessionKey, { algorithms: ["HS256"], clockTolerance: 5 });
      return payload.host === ctx.host && typeof payload.oid === "string" && Array.isArray(payload.grp) ? payload : undefined;
    } catch {
      return undefined;
    }
  }

  async function tunnelCallback(req: Request, url: URL, ctx: AdmitContext): Promise<Response> {
    const c = await unseal(url.searchParams.get("code"));
    if (!c || c.kind !== "code" || c.host !== ctx.host || typeof c.jti !== "string" || used.has(c.jti)) {
      return page(400, "Sign-in link expired", `<p>This sign-in link is invalid, expired or already used. <a href="/">Start again</a>.</p>`);
    }
    for (const [k, exp] of used) if (exp < now()) used.delete(k);
    used.set(c.jti, (c.exp as number) ?? now() + CODE_TTL_S);
    const u = c.user as Omit<Session, "host">;
    const session = await new SignJWT({ host: ctx.host, email: u.email, oid: u.oid, tid: u.tid, name: u.name, grp: u.grp } satisfies Omit<Session, keyof JWTPayload> & JWTPayload)
      .setProtectedHeader({ alg: "HS256" })
      .setIssuedAt()
      .setExpirationTime(now() + o.visitor.sessionSeconds)
      .sign(sessionKey);
    // a path on this host only (never `//host` or `/\host`, which browsers read as another origin)
    const ret = typeof c.ret === "string" && /^\/(?![\/\\])/.test(c.ret) ? c.ret : "/";
    const secure = ctx.proto === "https" ? "; Secure" : "";
    return new Response(null, {
      status: 302,
      headers: {
        location: ret,
        "set-cookie": `${sessionName(ctx.proto)}=${session}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${o.visitor.sessionSeconds}${secure}`,
        "cache-control": "no-store",
      },
    });
  }

  return {
    redirectUri,
    async admit(req, ctx, entra) {
      const url = new URL(req.url);
      if (url.pathname === `${RESERVED_PREFIX}callback`) return tunnelCallback(req, url, ctx);
      if (url.pathname === `${RESERVED_PREFIX}logout`) {
        const secure = ctx.proto === "https" ? "; Secure" : "";
        return page(200, "Signed out", `<p>You are signed out of ${esc(ctx.host)}. <a href="/">Sign in again</a>.</p>`, {
          "set-cookie": `${sessionName(ctx.proto)}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0${secure}`,
        });
      }
      const s = await verifySession(req, ctx);
      if (s) {
        const why = refusal(entra, s.tid, s.grp);
        if (why) return page(403, "Access denied", `<p>You are signed in as ${esc(s.email ?? s.oid)}, but ${why}. Ask the tunnel's owner for access.</p><p><a href="${RESERVED_PREFIX}logout">Sign out</a></p>`);
        const cookie = withoutCookie(req.headers.get("cookie"), sessionName(ctx.proto));
        if (cookie === undefined) req.headers.delete("cookie");
        else req.headers.set("cookie", cookie);
        const h: Record<string, string> = { "x-azhexgate-user-oid": s.oid };
        if (s.email) h["x-azhexgate-user-email"] = s.email;
        if (s.name) h["x-azhexgate-user-name"] = encodeURIComponent(s.name);
        if (s.tid) h["x-azhexgate-user-tenant"] = s.tid;
        return h;
      }
      const navigational = ctx.kind === "http" && (req.method === "GET" || req.method === "HEAD") && /text\/html/i.test(req.headers.get("accept") ?? "");
      const verifier = base64url.encode(randomBytes(32));
      const state = await seal({ kind: "state", host: ctx.host, proto: ctx.proto, ret: `${url.pathname}${url.search}`.slice(0, 2000), v: verifier, n: base64url.encode(randomBytes(16)) }, STATE_TTL_S);
      const start = `${o.apiBase}/auth/start?s=${encodeURIComponent(state)}`;
      if (!navigational) {
        const e = publicError("visitor_signin", `${ctx.proto}://${ctx.host}/`);
        return Response.json({ error: { code: e.code, message: e.message } }, { status: e.status, headers: { "cache-control": "no-store", "x-azhexgate-error": e.code } });
      }
      return new Response(null, { status: 302, headers: { location: start, "cache-control": "no-store" } });
    },

    apex(req) {
      const url = new URL(req.url);
      if (url.pathname !== "/auth/start" && url.pathname !== "/auth/callback") return undefined;
      return (async () => {
        try {
          return await apexStep(req, url);
        } catch {
          return page(502, "Sign-in unavailable", "<p>The gateway could not reach the identity provider; retry in a moment.</p>");
        }
      })();
    },
  };

  async function apexStep(req: Request, url: URL): Promise<Response> {
        if (url.pathname === "/auth/start") {
          const s = await unseal(url.searchParams.get("s"));
          if (!s || s.kind !== "state") return page(400, "Sign-in link expired", "<p>This sign-in link is invalid or expired. Open the tunnel's address again.</p>");
          const doc = await discovery();
          if (!doc.authorization_endpoint) return page(502, "Sign-in unavailable", "<p>The identity provider has no authorization endpoint.</p>");
          const auth = new URL(doc.authorization_endpoint);
          auth.search = new URLSearchParams({
            client_id: o.visitor.clientId,
            response_type: "code",
            redirect_uri: redirectUri,
            scope: "openid profile email",
            state: url.searchParams.get("s")!,
            nonce: String(s.n),
            code_challenge: pkceChallenge(String(s.v)),
            code_challenge_method: "S256",
          }).toString();
          return new Response(null, {
            status: 302,
            headers: {
              location: auth.toString(),
              "set-cookie": `${loginCookie}=${String(s.n)}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${STATE_TTL_S}${apiSecure ? "; Secure" : ""}`,
              "cache-control": "no-store",
            },
          });
        }
        // /auth/callback
        const s = await unseal(url.searchParams.get("state"));
        if (!s || s.kind !== "state") return page(400, "Sign-in link expired", "<p>This sign-in is invalid or expired. Open the tunnel's address again.</p>");
        if (cookieOf(req, loginCookie) !== s.n) return page(400, "Sign-in not started here", "<p>This sign-in was not started in this browser. Open the tunnel's address again.</p>");
        if (url.searchParams.get("error")) return page(403, "Sign-in refused", `<p>The identity provider refused the sign-in: ${esc(url.searchParams.get("error_description") ?? url.searchParams.get("error")!)}</p>`);
        const doc = await discovery();
        const res = await fetch(doc.token_endpoint!, {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
          body: new URLSearchParams({
            grant_type: "authorization_code",
            code: url.searchParams.get("code") ?? "",
            redirect_uri: redirectUri,
            client_id: o.visitor.clientId,
            client_secret: o.visitor.clientSecret,
            code_verifier: String(s.v),
          }).toString(),
          signal: AbortSignal.timeout(15_000),
        }).catch(() => undefined);
        const tokens = res?.ok ? ((await res.json()) as { id_token?: string }) : undefined;
        if (!tokens?.id_token) return page(502, "Sign-in failed", "<p>The identity provider did not complete the sign-in. Open the tunnel's address again.</p>");
        jwks ??= createRemoteJWKSet(new URL(doc.jwks_uri));
        let claims: JWTPayload;
        try {
          ({ payload: claims } = await jwtVerify(tokens.id_token, jwks, { audience: o.visitor.clientId, clockTolerance: 60 }));
        } catch {
          return page(502, "Sign-in failed", "<p>The identity provider's answer could not be verified.</p>");
        }
        const tid = typeof claims.tid === "string" ? claims.tid : undefined;
        const iss = doc.issuer.includes("{tenantid}") && tid ? doc.issuer.replace("{tenantid}", tid) : doc.issuer;
        if (claims.iss !== iss || claims.nonce !== s.n) return page(502, "Sign-in failed", "<p>The identity provider's answer does not match this sign-in.</p>");
        const host = String(s.host);
        const id = o.tunnelOf(host);
        const entra = id ? (await o.policyOf(id))?.entra : undefined;
        if (!entra) return page(404, "Tunnel not found", `<p>${esc(host)} is not a tunnel that asks for sign-in.</p>`);
        const groups = Array.isArray(claims.groups) ? claims.groups.filter((g): g is string => typeof g === "string") : [];
        const str = (k: string) => (typeof claims[k] === "string" ? (claims[k] as string) : undefined);
        const email = str("email") ?? str("preferred_username") ?? str("upn");
        const oid = str("oid") ?? str("sub")!;
        const why = refusal(entra, tid, groups);
        if (why) {
          const overage = claims._claim_names !== undefined ? " (your account has too many groups for the token; ask the operator to limit the group claim to the groups assigned to the application)" : "";
          return page(403, "Access denied", `<p>You are signed in as ${esc(email ?? oid)}, but ${why}${overage}. Ask the owner of ${esc(host)} for access.</p>`);
        }
        const code = await seal(
          { kind: "code", host, ret: s.ret, jti: base64url.encode(randomBytes(16)), user: { email, oid, tid, name: str("name"), grp: groups.filter((g) => entra.groups.includes(g)) } },
          CODE_TTL_S,
        );
        return new Response(null, {
          status: 302,
          headers: {
            location: `${String(s.proto)}://${host}${RESERVED_PREFIX}callback?code=${encodeURIComponent(code)}`,
            "set-cookie": `${loginCookie}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0${apiSecure ? "; Secure" : ""}`,
            "cache-control": "no-store",
          },
        });
  }
}
