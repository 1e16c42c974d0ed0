/**
 * Typed errors for the Hybrid Connections clients. Every failure carries a stable `code`,
 * the HTTP status or WebSocket close code it came from, and whether retrying can help.
 * Callers (the agent's supervisor, the gateway's pool) decide on `retryable`, never on text.
 */
export type RelayErrorCode =
  | "unauthorized" // 401: token missing, malformed, bad signature or expired
  | "forbidden" // 403: token valid but not for this entity / right, or rendezvous URL expired
  | "not_found" // 404: hybrid connection does not exist (or no listener, for senders)
  | "rejected" // the listener rejected the connection with its own status
  | "listener_limit" // too many listeners on one hybrid connection
  | "timeout" // no answer in time (handshake, rendezvous, pong)
  | "token_expired" // close 1008 on a control channel
  | "entity_deleted" // close 1001: hybrid connection deleted or disabled
  | "server_error" // 5xx or close 1011
  | "protocol" // the peer spoke something we could not understand
  | "network" // TCP / TLS failure, connection dropped without a close frame
  | "proxy_refused" // the HTTP proxy answered CONNECT with a non-2xx status (403 policy, 407 credentials)
  | "proxy_unreachable" // the HTTP proxy could not be reached or hung up before answering
  | "closed"; // closed on purpose (by us)

export class RelayError extends Error {
  override readonly name = "RelayError";
  constructor(
    readonly code: RelayErrorCode,
    message: string,
    readonly retryable: boolean,
    readonly details: { status?: number; statusText?: string; closeCode?: number; cause?: unknown } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
  }
  get status(): number | undefined {
    return this.details.status;
  }
  get closeCode(): number | undefined {
    return this.details.closeCode;
  }
}

/**
 * A 403 that is really a quota: Service Bus / Relay answer "quota exceeded" as 403 Forbidden with
 * the quota named in the description (Microsoft.Azure.Relay `QuotaExceededException`;
 * relay-exceptions.md "QuotaExceededException"; the listener cap is 25 per hybrid connection,
 * "MaximumListenersPerEndpoint", in relay quotas / `ManagementOperations.cs`). Matched on the
 * description because that is the only thing that tells it from a missing right.
 */
const QUOTA_DESCRIPTION = /quota|maximum\s*(?:number\s*of\s*)?listeners|maxlisteners|listeners?\s*per\s*endpoint|limit\s*(?:was\s*|has\s*been\s*)?(?:reached|exceeded)|\bexceeded\b/i;

/** True when a 403's description names a quota / listener limit rather than a missing right. */
export function isQuotaDescription(description: string): boolean {
  return QUOTA_DESCRIPTION.test(description);
}

/** Maps a failed WebSocket handshake (no 101) to a typed error. `role` shapes the advice. */
export function handshakeError(role: "listener" | "sender" | "rendezvous", status: number, description: string): RelayError {
  const d = description ? `: ${description}` : "";
  const details = { status, statusText: description };
  switch (status) {
    case 401:
      return new RelayError("unauthorized", `relay refused the token (401${d})`, false, details);
    case 403:
      if (isQuotaDescription(description)) {
        return new RelayError(
          "listener_limit",
          `relay quota reached: too many listeners on this hybrid connection (403${d}); retrying with backoff — stop another agent on this tunnel if it persists`,
          true,
          details,
        );
      }
      return new RelayError("forbidden", `relay says the token lacks the right for this hybrid connection (403${d})`, false, details);
    case 404:
      // A listener on a missing entity is terminal; a sender may be early (no listener yet).
      return new RelayError("not_found", `hybrid connection or listener not found (404${d})`, role === "sender", details);
    case 408:
    case 504:
      return new RelayError("timeout", `relay timed out (${status}${d})`, true, details);
    case 429:
      return new RelayError("listener_limit", `relay refused: limit reached (${status}${d}); retrying with backoff`, true, details);
    default:
      if (status >= 500) return new RelayError("server_error", `relay error (${status}${d})`, true, details);
      if (role === "sender") return new RelayError("rejected", `listener rejected the connection (${status}${d})`, false, details);
      return new RelayError("protocol", `unexpected handshake answer (${status}${d})`, false, details);
  }
}

/** Maps a close of a relay WebSocket (control channel or data) to a typed error, or null for a normal close. */
export function closeError(code: number, reason: string): RelayError | null {
  const r = reason ? `: ${reason}` : "";
  const details = { closeCode: code };
  switch (code) {
    case 1000:
      return null;
    case 1001:
      return new RelayError("entity_deleted", `relay closed the channel: hybrid connection deleted or going away (1001${r})`, true, details);
    case 1008:
      return new RelayError("token_expired", `relay closed the channel: token expired or invalid (1008${r})`, true, details);
    case 1011:
      return new RelayError("server_error", `relay closed the channel: internal error (1011${r})`, true, details);
    case 1006:
      return new RelayError("network", "connection to the relay dropped without a close frame (1006)", true, details);
    default:
      return new RelayError("protocol", `relay closed the channel (${code}${r})`, true, details);
  }
}
