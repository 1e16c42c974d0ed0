/**
 * Shared Access Signature tokens, exactly as Azure Relay clients produce them:
 *   SharedAccessSignature sr={enc(uri)}&sig={enc(b64(HMAC-SHA256(key, enc(uri) + "\n" + se)))}&se={s}&skn={rule}
 * The key is used as UTF-8 text (never base64-decoded); the signature covers the raw `sr` text.
 * Pure: strings in, strings out.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

export interface SasToken {
  /** `sr` exactly as it appears in the token (still URL-encoded). */
  readonly srRaw: string;
  /** `sr` decoded. */
  readonly resource: string;
  readonly sig: string;
  /** Expiry, Unix seconds. */
  readonly se: number;
  readonly skn: string;
}

const PREFIX = "SharedAccessSignature ";

export function sign(key: string, stringToSign: string): string {
  return createHmac("sha256", Buffer.from(key, "utf8")).update(stringToSign, "utf8").digest("base64");
}

/** Creates a token for `resourceUri` (e.g. `http://ns.servicebus.windows.net/hc`) valid until `expiresAt` (Unix s). */
export function createSasToken(resourceUri: string, keyName: string, key: string, expiresAt: number): string {
  const sr = encodeURIComponent(resourceUri);
  const se = Math.floor(expiresAt);
  const sig = sign(key, `${sr}\n${se}`);
  return `${PREFIX}sr=${sr}&sig=${encodeURIComponent(sig)}&se=${se}&skn=${encodeURIComponent(keyName)}`;
}

/** Parses a SAS token (fields in any order). Returns null when it is not a well-formed SAS token. */
export function parseSasToken(token: string): SasToken | null {
  if (!token.startsWith(PREFIX)) return null;
  const fields = new Map<string, string>();
  for (const part of token.slice(PREFIX.length).trim().split("&")) {
    const eq = part.indexOf("=");
    if (eq <= 0) return null;
    const name = part.slice(0, eq);
    if (fields.has(name)) return null;
    fields.set(name, part.slice(eq + 1));
  }
  const srRaw = fields.get("sr");
  const sig = fields.get("sig");
  const se = fields.get("se");
  const skn = fields.get("skn");
  if (!srRaw || !sig || !se || !skn || !/^\d{1,12}$/.test(se)) return null;
  try {
    return { srRaw, resource: decodeURIComponent(srRaw), sig: decodeURIComponent(sig), se: Number(se), skn: decodeURIComponent(skn) };
  } catch {
    return null;
  }
}

/** True when `token`'s signature was made with `key` (constant-time compare over the raw `sr` text). */
export function verifySasSignature(token: SasToken, key: string): boolean {
  const expected = Buffer.from(sign(key, `${token.srRaw}\n${token.se}`));
  const given = Buffer.from(token.sig);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

/**
 * The scope a token's resource names, normalised the way the service accepts every client form:
 * scheme and port ignored, host lower-cased, a leading `$hc/` and trailing `/` stripped.
 * Returns null for a resource that is not a URL.
 */
export function sasScope(resource: string): { host: string; path: string } | null {
  let url: URL;
  try {
    url = new URL(resource);
  } catch {
    return null;
  }
  let path = decodeURIComponent(url.pathname).replace(/^\/+/, "").replace(/\/+$/, "");
  if (path.toLowerCase().startsWith("$hc/") || path.toLowerCase() === "$hc") path = path.slice(4);
  return { host: url.hostname.toLowerCase(), path };
}

/** True when a token scoped to `scopePath` covers `entityPath` (namespace-wide, equal, or a segment prefix). */
export function scopeCovers(scopePath: string, entityPath: string): boolean {
  const s = scopePath.toLowerCase();
  const e = entityPath.toLowerCase();
  return s === "" || s === e || e.startsWith(`${s}/`);
}

/** A token with its signature replaced, for logs: never log a signature. */
export function redactToken(token: string): string {
  return token
    .replace(/sig=[^&\s]*/g, "sig=REDACTED")
    .replace(/sig%3D.*?(?=%26|&|\s|$)/gi, "sig%3DREDACTED") // a token URL-encoded in `sb-hc-token=`
    .replace(/(eyJ[\w-]*\.eyJ[\w-]*\.)[\w-]+/g, "$1REDACTED");
}
