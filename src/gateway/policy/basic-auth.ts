/**
 * Basic auth for tunnels (RFC 7617): passwords are stored as scrypt hashes (salted per entry), the
 * presented `user:password` is checked against every entry with a constant-time comparison and no
 * early exit. Verified credentials are remembered (bounded) by a SHA-256 of tunnel + header so a
 * browser's repeated requests cost one scrypt, not one each.
 */
import { createHash, randomBytes, scryptSync, timingSafeEqual } from "node:crypto";
import type { BasicAuthEntry } from "./types.ts";

const SCRYPT = { N: 1 << 14, r: 8, p: 1, maxmem: 64 << 20 };

export function hashBasicAuth(user: string, password: string): BasicAuthEntry {
  const salt = randomBytes(16);
  const hash = scryptSync(`${user}:${password}`, salt, 32, SCRYPT);
  return { user, salt: salt.toString("base64url"), hash: hash.toString("base64url") };
}

/** `user:password` from an Authorization header, or undefined. */
export function presentedBasic(header: string | null): string | undefined {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? "");
  if (!m?.[1]) return undefined;
  const text = Buffer.from(m[1], "base64").toString("utf8");
  return text.includes(":") ? text : undefined;
}

export class BasicAuthChecker {
  private readonly ok = new Map<string, number>();
  constructor(private readonly maxRemembered = 10_000, private readonly rememberMs = 10 * 60_000) {}

  check(tunnel: string, entries: BasicAuthEntry[], header: string | null, now = Date.now()): boolean {
    const presented = presentedBasic(header);
    if (presented === undefined || presented.length > 1024) return false;
    const memo = createHash("sha256").update(tunnel).update("\0").update(presented).update("\0").update(entries.map((e) => e.hash).join(",")).digest("base64url");
    const until = this.ok.get(memo);
    if (until !== undefined && until > now) return true;
    let match = false;
    for (const e of entries) {
      const expected = Buffer.from(e.hash, "base64url");
      const got = scryptSync(presented, Buffer.from(e.salt, "base64url"), expected.length, SCRYPT);
      if (timingSafeEqual(got, expected)) match = true; // no early exit
    }
    if (match) {
      if (this.ok.size >= this.maxRemembered) this.ok.clear();
      this.ok.set(memo, now + this.rememberMs);
    }
    return match;
  }
}
