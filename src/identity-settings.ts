/**
 * Gateway settings for identity and limits (issue 14), parsed from the environment by
 * `resolveGatewayConfig`: OIDC for the management API, the gateway's confidential client for
 * `--entra` visitor sign-in, and operator-wide per-tunnel limits (defaults and maxima).
 * Secrets (client secret, cookie key) are non-enumerable so a config object can be logged.
 */

export const IDENTITY_SETTING_NAMES = [
  "AZHEXGATE_OIDC_ISSUER",
  "AZHEXGATE_OIDC_AUDIENCE",
  "AZHEXGATE_OIDC_TENANTS",
  "AZHEXGATE_OIDC_GROUPS",
  "AZHEXGATE_OIDC_ADMIN_GROUP",
  "AZHEXGATE_OIDC_CLI_CLIENT_ID",
  "AZHEXGATE_OIDC_CLI_SCOPES",
  "AZHEXGATE_VISITOR_CLIENT_ID",
  "AZHEXGATE_VISITOR_CLIENT_SECRET",
  "AZHEXGATE_VISITOR_COOKIE_KEY",
  "AZHEXGATE_VISITOR_SESSION_SECONDS",
  "AZHEXGATE_LIMIT_RATE",
  "AZHEXGATE_LIMIT_RATE_MAX",
  "AZHEXGATE_LIMIT_STREAMS",
  "AZHEXGATE_LIMIT_STREAMS_MAX",
  "AZHEXGATE_LIMIT_BANDWIDTH",
  "AZHEXGATE_LIMIT_BANDWIDTH_MAX",
] as const;

export interface OidcConfig {
  issuer: string;
  audience: string[];
  tenants: string[];
  groups: string[];
  adminGroup?: string;
  /** Public client `azhexgate login` uses (device code); advertised at GET /api/auth. */
  cliClientId?: string;
  /** Scopes `azhexgate login` asks for (default: `openid offline_access {audience}/.default`). */
  cliScopes: string;
}

export interface VisitorConfig {
  clientId: string;
  readonly clientSecret: string;
  readonly cookieKey: Uint8Array;
  sessionSeconds: number;
}

export interface LimitsConfig {
  /** Requests per second per tunnel (0 = none); a tunnel may ask for less, never more than `rateMax`. */
  rate: number;
  rateMax: number;
  /** Concurrent streams per tunnel (0 = none). */
  streams: number;
  streamsMax: number;
  /** Bytes per second per tunnel and direction (0 = none). */
  bandwidth: number;
  bandwidthMax: number;
}

export interface IdentityConfig {
  oidc?: OidcConfig;
  visitor?: VisitorConfig;
  limits: LimitsConfig;
}

const list = (v: string | undefined) => (v ?? "").split(/[,\s]+/).map((s) => s.trim()).filter(Boolean);

function httpsUrl(v: string, what: string): string {
  try {
    const u = new URL(v);
    if (u.protocol === "https:" || (u.protocol === "http:" && /^(127\.0\.0\.1|localhost|\[::1\])$/.test(u.hostname))) return v.replace(/\/+$/, "");
  } catch {
    /* below */
  }
  throw new TypeError(`${what} must be an https URL (http only on loopback), got "${v}"`);
}

/** `100`, `100/s`, `6000/m` → per second; `10mb/s`-style sizes for bandwidth (k, m, g = 1024^n). */
export function parseRate(v: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?:\/\s*(s|m|h))?\s*$/i.exec(v);
  if (!m) throw new TypeError(`${what} must be a rate like 100/s or 6000/m (got "${v}")`);
  const per = { s: 1, m: 60, h: 3600 }[(m[2] ?? "s").toLowerCase() as "s" | "m" | "h"];
  return Number(m[1]) / per;
}

export function parseBandwidth(v: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?\s*(?:\/\s*s)?\s*$/i.exec(v);
  if (!m) throw new TypeError(`${what} must be bytes per second like 500k, 10m or 1g (got "${v}")`);
  const mult = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(m[2] ?? "").toLowerCase() as "" | "k" | "m" | "g"];
  return Math.round(Number(m[1]) * mult);
}

function count(v: string, what: string): number {
  if (!/^\d+$/.test(v.trim())) throw new TypeError(`${what} must be a whole number, 0 or more (got "${v}")`);
  return Number(v.trim());
}

/** Throws TypeError with the setting's name for a bad value. */
export function resolveIdentitySettings(env: Record<string, string | undefined>): IdentityConfig {
  const out: IdentityConfig = { limits: { rate: 0, rateMax: 0, streams: 0, streamsMax: 0, bandwidth: 0, bandwidthMax: 0 } };
  const issuer = env.AZHEXGATE_OIDC_ISSUER?.trim();
  if (issuer) {
    const audience = list(env.AZHEXGATE_OIDC_AUDIENCE);
    if (audience.length === 0) throw new TypeError("AZHEXGATE_OIDC_AUDIENCE is required with AZHEXGATE_OIDC_ISSUER (e.g. api://azhexgate)");
    out.oidc = {
      issuer: httpsUrl(issuer, "AZHEXGATE_OIDC_ISSUER"),
      audience,
      tenants: list(env.AZHEXGATE_OIDC_TENANTS),
      groups: list(env.AZHEXGATE_OIDC_GROUPS),
      adminGroup: env.AZHEXGATE_OIDC_ADMIN_GROUP?.trim() || undefined,
      cliClientId: env.AZHEXGATE_OIDC_CLI_CLIENT_ID?.trim() || undefined,
      cliScopes: env.AZHEXGATE_OIDC_CLI_SCOPES?.trim() || `openid profile offline_access ${audience[0]!.replace(/\/+$/, "")}/.default`,
    };
  }
  const clientId = env.AZHEXGATE_VISITOR_CLIENT_ID?.trim();
  for (const name of ["AZHEXGATE_VISITOR_CLIENT_SECRET", "AZHEXGATE_VISITOR_COOKIE_KEY"]) {
    // App Service hands over an unresolved Key Vault reference as its literal text: never sign with that.
    if (env[name]?.trim().startsWith("@Microsoft.KeyVault(")) {
      throw new TypeError(`${name} is an unresolved Key Vault reference (App Service could not read the secret: check the secret exists and the identity's Key Vault Secrets User role)`);
    }
  }
  if (clientId) {
    if (!out.oidc) throw new TypeError("AZHEXGATE_VISITOR_CLIENT_ID needs AZHEXGATE_OIDC_ISSUER (visitors sign in at the same identity provider)");
    const secret = env.AZHEXGATE_VISITOR_CLIENT_SECRET ?? "";
    if (secret.length === 0) throw new TypeError("AZHEXGATE_VISITOR_CLIENT_SECRET is required with AZHEXGATE_VISITOR_CLIENT_ID");
    const keyText = env.AZHEXGATE_VISITOR_COOKIE_KEY ?? "";
    if (keyText.length < 32) throw new TypeError("AZHEXGATE_VISITOR_COOKIE_KEY must be at least 32 characters (e.g. `openssl rand -base64 48`)");
    const seconds = env.AZHEXGATE_VISITOR_SESSION_SECONDS === undefined ? 8 * 3600 : count(env.AZHEXGATE_VISITOR_SESSION_SECONDS, "AZHEXGATE_VISITOR_SESSION_SECONDS");
    if (seconds < 60) throw new TypeError("AZHEXGATE_VISITOR_SESSION_SECONDS must be at least 60");
    const visitor = { clientId, sessionSeconds: seconds } as VisitorConfig;
    Object.defineProperty(visitor, "clientSecret", { value: secret, enumerable: false });
    Object.defineProperty(visitor, "cookieKey", { value: new TextEncoder().encode(keyText), enumerable: false });
    out.visitor = Object.freeze(visitor);
  }
  const l = out.limits;
  const opt = <T>(name: string, parse: (v: string, what: string) => T, dflt: T): T => {
    const v = env[name];
    return v === undefined || v.trim() === "" ? dflt : parse(v, name);
  };
  l.rate = opt("AZHEXGATE_LIMIT_RATE", parseRate, 0);
  l.rateMax = opt("AZHEXGATE_LIMIT_RATE_MAX", parseRate, 0);
  l.streams = opt("AZHEXGATE_LIMIT_STREAMS", count, 0);
  l.streamsMax = opt("AZHEXGATE_LIMIT_STREAMS_MAX", count, 0);
  l.bandwidth = opt("AZHEXGATE_LIMIT_BANDWIDTH", parseBandwidth, 0);
  l.bandwidthMax = opt("AZHEXGATE_LIMIT_BANDWIDTH_MAX", parseBandwidth, 0);
  for (const [d, m, name] of [[l.rate, l.rateMax, "RATE"], [l.streams, l.streamsMax, "STREAMS"], [l.bandwidth, l.bandwidthMax, "BANDWIDTH"]] as const) {
    if (m > 0 && d > m) throw new TypeError(`AZHEXGATE_LIMIT_${name} (${d}) is above AZHEXGATE_LIMIT_${name}_MAX (${m})`);
  }
  return out;
}
