/**
 * The supervisor's decisions, pure: what fixes a lost connection (from the error's stable code,
 * never its text) and when to renew a token.
 */
import { RelayError } from "../hc/errors.ts";

/** What the next attempt does first: nothing special, get a fresh token, or claim the tunnel again. */
export type Fix = "none" | "renew" | "connect";

export interface Decision {
  fix: Fix;
  /** Retrying cannot help (what `exitOnFail` stops on). */
  permanent: boolean;
  code: string;
}

function codeOf(err: unknown): string {
  const c = (err as { code?: unknown })?.code;
  return typeof c === "string" && c ? c : "error";
}

function statusOf(err: unknown): number | undefined {
  const s = (err as { status?: unknown })?.status;
  return typeof s === "number" ? s : undefined;
}

/**
 * Classifies why an attempt or a connection ended. `tried` is the fix the failed attempt had
 * applied: a fix that was just tried and failed the same way makes a non-retryable error permanent.
 *
 * - control channel `token_expired` (1008) → renew the token (rejected), reconnect;
 * - `unauthorized` / `forbidden` (401 / 403 on open) → renew (rejected); permanent if a fresh token fails too,
 *   unless `o.rolePropagating` (the caller is within the first minutes of a deployment, when Azure
 *   role assignments may not have taken effect yet — up to 5 min, relay authenticate-application.md);
 * - `listener_limit` (429, or 403 naming a quota) → retry as is with backoff, never permanent;
 * - `proxy_refused` / `proxy_unreachable` (the HTTP proxy) → retry as is; permanent when the proxy refused on purpose;
 * - `entity_deleted` (1001) / `not_found` (404): the hybrid connection is gone (gateway restarted,
 *   tunnel reclaimed or expired) → claim the tunnel again; permanent if a fresh claim 404s too;
 * - other relay errors: retry as is when `retryable`, else claim afresh (permanent);
 * - errors from `connect` / `renew` (the management API): 404-like → claim again; `retryable: false` is permanent.
 */
export function classify(err: unknown, tried: Fix, o: { rolePropagating?: boolean } = {}): Decision {
  const code = codeOf(err);
  const retryable = (err as { retryable?: unknown })?.retryable !== false;
  if (err instanceof RelayError) {
    switch (err.code) {
      case "token_expired":
        return { fix: "renew", permanent: false, code };
      case "unauthorized":
      case "forbidden":
        return { fix: "renew", permanent: tried === "renew" && !o.rolePropagating, code };
      case "listener_limit":
        return { fix: "none", permanent: false, code };
      case "proxy_refused":
      case "proxy_unreachable":
        // nothing is wrong with the tunnel or its token: try the same again (403 / 407 are permanent)
        return { fix: "none", permanent: !retryable, code };
      case "entity_deleted":
        return { fix: "connect", permanent: false, code };
      case "not_found":
        return { fix: "connect", permanent: tried === "connect", code };
      default:
        return { fix: retryable ? "none" : "connect", permanent: !retryable, code };
    }
  }
  if (code === "not_found" || code === "tunnel_not_found" || statusOf(err) === 404) {
    return { fix: "connect", permanent: tried === "connect" && !retryable, code };
  }
  return { fix: tried, permanent: !retryable, code };
}

/** Renew at 80% of the token's lifetime, and at least 1 s before it expires (never sooner than 100 ms from now). */
export function renewDelay(issuedAt: number, expiresAt: number, now: number): number {
  const life = Math.max(0, expiresAt - issuedAt);
  const at = Math.min(issuedAt + life * 0.8, expiresAt - 1000);
  return Math.max(100, Math.round(at - now));
}
