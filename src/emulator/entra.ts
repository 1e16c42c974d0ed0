/**
 * The emulator's Microsoft Entra ID test mode. Real Entra tokens are RS256-signed by Microsoft and
 * cannot be checked offline, so the emulator instead trusts HS256 JWTs signed with a shared test
 * secret, and checks what the service checks: audience `https://relay.azure.net`(/), `exp`/`nbf`,
 * and a role claim mapped to rights (hybrid-connections.md §2.3).
 *
 * Claims understood:
 *   aud         string | string[]   must include one of `audiences`
 *   exp, nbf    Unix seconds        exp required and in the future; nbf (if present) not in the future
 *   roles       string | string[]   "Azure Relay Owner" → Listen+Send+Manage,
 *                                   "Azure Relay Listener" | "Listen" → Listen,
 *                                   "Azure Relay Sender" | "Send" → Send
 *   relay_scope string              entity path the role assignment is scoped to ("" / absent = namespace)
 *
 * Pure: strings in, values out.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import type { Right } from "./entities.ts";

export interface EntraConfig {
  /** HS256 secret the emulator trusts. */
  secret: string;
  /** Accepted `aud` values (default `https://relay.azure.net` with and without the trailing slash). */
  audiences?: string[];
}

export const DEFAULT_AUDIENCES: readonly string[] = Object.freeze(["https://relay.azure.net", "https://relay.azure.net/"]);

export type EntraVerdict =
  | { ok: true; rights: Right[]; scopePath: string }
  | { ok: false; status: 401 | 403; description: string };

const ROLE_RIGHTS: Readonly<Record<string, readonly Right[]>> = Object.freeze({
  "azure relay owner": ["Listen", "Send", "Manage"],
  "azure relay listener": ["Listen"],
  listen: ["Listen"],
  "azure relay sender": ["Send"],
  send: ["Send"],
});

const B64URL = /^[A-Za-z0-9_-]*$/;

function b64url(data: string | Buffer): string {
  return Buffer.from(data).toString("base64url");
}

function hs256(secret: string, input: string): Buffer {
  return createHmac("sha256", Buffer.from(secret, "utf8")).update(input, "utf8").digest();
}

function decodeJson(part: string): unknown {
  if (!B64URL.test(part)) return undefined;
  try {
    return JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
  } catch {
    return undefined;
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function strings(v: unknown): string[] | undefined {
  if (typeof v === "string") return [v];
  if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v as string[];
  return undefined;
}

/** Signs `claims` as an HS256 JWT (for tests and local token servers). */
export function signTestJwt(claims: Record<string, unknown>, secret: string): string {
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64url(JSON.stringify(claims));
  return `${head}.${body}.${hs256(secret, `${head}.${body}`).toString("base64url")}`;
}

/** True when `token` looks like a JWT (three base64url parts), optionally behind `Bearer `. */
export function looksLikeJwt(token: string): boolean {
  return /^(Bearer\s+)?[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/i.test(token.trim());
}

/**
 * Verifies a test-mode Entra token (bare JWT or `Bearer <jwt>`) at `nowSeconds`.
 * 401 for anything malformed, badly signed, expired, not yet valid or for another audience;
 * 403 for a valid token without a usable relay role.
 */
export function verifyEntraJwt(token: string, cfg: EntraConfig, nowSeconds: number): EntraVerdict {
  const fail = (status: 401 | 403, description: string): EntraVerdict => ({ ok: false, status, description });
  const jwt = token.trim().replace(/^Bearer\s+/i, "");
  const parts = jwt.split(".");
  if (parts.length !== 3) return fail(401, "malformed JWT");
  const [head, body, sig] = parts as [string, string, string];

  const header = decodeJson(head);
  if (!isRecord(header)) return fail(401, "malformed JWT header");
  if (header.alg !== "HS256") return fail(401, `unsupported JWT algorithm ${JSON.stringify(header.alg)}`);

  if (!B64URL.test(sig)) return fail(401, "malformed JWT signature");
  const expected = hs256(cfg.secret, `${head}.${body}`);
  const given = Buffer.from(sig, "base64url");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return fail(401, "invalid JWT signature");

  const claims = decodeJson(body);
  if (!isRecord(claims)) return fail(401, "malformed JWT claims");

  const audiences = cfg.audiences ?? DEFAULT_AUDIENCES;
  const aud = strings(claims.aud);
  if (!aud?.some((a) => audiences.includes(a))) return fail(401, "JWT audience is not the relay");

  if (typeof claims.exp !== "number" || !Number.isFinite(claims.exp)) return fail(401, "JWT has no expiry");
  if (claims.exp <= nowSeconds) return fail(401, "JWT expired");
  if (claims.nbf !== undefined) {
    if (typeof claims.nbf !== "number" || !Number.isFinite(claims.nbf)) return fail(401, "malformed JWT nbf");
    if (claims.nbf > nowSeconds) return fail(401, "JWT not yet valid");
  }

  let scopePath = "";
  if (claims.relay_scope !== undefined) {
    if (typeof claims.relay_scope !== "string") return fail(401, "malformed relay_scope claim");
    scopePath = claims.relay_scope.replace(/^\/+|\/+$/g, "");
  }

  const roles = claims.roles === undefined ? [] : strings(claims.roles);
  if (!roles) return fail(401, "malformed roles claim");
  const rights = new Set<Right>();
  for (const role of roles) for (const r of ROLE_RIGHTS[role.trim().toLowerCase()] ?? []) rights.add(r);
  if (rights.size === 0) return fail(403, "JWT carries no Azure Relay role");

  return { ok: true, rights: [...rights], scopePath };
}
