/**
 * Errors the gateway shows the public: a status, a stable code (also in `X-AzHexGate-Error`) and
 * a sentence a user can act on, as JSON or a small HTML page depending on `Accept`.
 */

/**
 * THE public error table (issue 18): every typed failure kind the gateway answers — routing,
 * access, pool / session state, tunnel reset codes, origin failures — with its status, its stable
 * code and the sentence a user can act on. Every place that answers an error builds it with
 * `publicError(kind, …)`; docs/troubleshooting.md ("What public clients see") lists the same
 * codes, and test/error-table.test.ts reaches each kind end to end (a new kind without a test fails).
 * Several kinds may share a code (they differ in the sentence).
 */
export const PUBLIC_ERRORS = {
  // routing (src/gateway/routing.ts, server.ts)
  bad_host: { status: 400, code: "bad_host", message: () => "The request's Host header is missing or malformed." },
  method_not_allowed: { status: 405, code: "method_not_allowed", message: () => "CONNECT is not supported." },
  apex_not_tunnel: { status: 404, code: "tunnel_not_found", message: (base: string) => `This is an azhexgate gateway; tunnels live at {id}.${base}.` },
  host_not_served: { status: 404, code: "tunnel_not_found", message: (name: string) => `No tunnel is served at ${name}.` },
  tunnel_unknown: { status: 404, code: "tunnel_not_found", message: (id: string) => `Tunnel ${id} does not exist or has expired.` },
  bad_websocket_upgrade: {
    status: 400,
    code: "bad_websocket_upgrade",
    message: () => "The WebSocket upgrade request was invalid: it needs Connection: Upgrade, Sec-WebSocket-Version: 13 and a Sec-WebSocket-Key.",
  },
  // service paths (src/gateway/metrics-access.ts)
  metrics_off: { status: 404, code: "metrics_off", message: () => "Metrics are turned off on this gateway (AZHEXGATE_METRICS=off)." },
  metrics_forbidden: {
    status: 403,
    code: "metrics_forbidden",
    message: () => "/metrics is private: scrape it from loopback or an address in AZHEXGATE_API_ALLOW_CIDRS, or send Authorization: Bearer with AZHEXGATE_METRICS_TOKEN.",
  },
  // access (src/gateway/policy/gate.ts, visitor-auth.ts)
  ip_denied: { status: 403, code: "access_denied", message: () => "Your network address is not allowed to open this tunnel." },
  signin_unconfigured: { status: 503, code: "access_denied", message: () => "This tunnel needs sign-in, but the gateway has no visitor sign-in configured." },
  rate_limited: { status: 429, code: "rate_limited", message: (wait: number) => `This tunnel gets more requests than it allows; retry in ${wait} s.` },
  streams_limited: { status: 429, code: "rate_limited", message: (max: number) => `This tunnel already has ${max} requests in flight, its limit; retry in a moment.` },
  basic_auth: { status: 401, code: "unauthorized", message: () => "This tunnel needs a user name and password." },
  visitor_signin: { status: 401, code: "unauthorized", message: (url: string) => `This tunnel needs sign-in; open ${url} in a browser.` },
  // gateway / pool / session state (src/tunnel/pool.ts, session.ts)
  gateway_draining: { status: 502, code: "tunnel_offline", message: () => "The gateway is restarting; retry in a moment." },
  agent_offline: { status: 502, code: "tunnel_offline", message: (id: string) => `The agent of tunnel ${id} is not connected. Start it with "azhexgate start" and retry.` },
  pool_closed: { status: 502, code: "tunnel_offline", message: (id: string) => `Tunnel ${id} was closed on this gateway (deleted, or the gateway is stopping); retry in a moment.` },
  session_lost: { status: 502, code: "tunnel_offline", message: (id: string) => `The agent of tunnel ${id} disconnected before answering. Retry; if it persists, restart "azhexgate start".` },
  agent_refused: { status: 502, code: "tunnel_offline", message: (id: string, reason: string) => `The agent of tunnel ${id} is not accepting requests (${reason}).` },
  tunnel_version_mismatch: { status: 502, code: "tunnel_version_mismatch", message: (why: string) => why },
  tunnel_timeout: { status: 504, code: "tunnel_timeout", message: (why: string) => why },
  tunnel_handshake_timeout: { status: 502, code: "tunnel_handshake_timeout", message: (why: string) => why },
  tunnel_session_limit: { status: 503, code: "tunnel_session_limit", message: (why: string) => why },
  // RESET codes of a stream (src/tunnel/frame.ts ResetCode) and the agent's answer
  request_headers_too_large: {
    status: 431,
    code: "request_headers_too_large",
    message: () => "The request's headers are larger than the tunnel carries (128 KiB in all, at most 256 headers).",
  },
  response_headers_too_large: {
    status: 502,
    code: "response_headers_too_large",
    message: () => "The local app's response headers are larger than the tunnel carries (128 KiB in all, at most 256 headers).",
  },
  /** ORIGIN_UNREACHABLE: the agent's sentence says what to do (start the app, check the port). */
  origin_unreachable: { status: 502, code: "origin_unreachable", message: (why: string) => why },
  /** ORIGIN_INVALID_RESPONSE: the app answered, but not with valid HTTP/1.1. */
  origin_invalid_response: { status: 502, code: "origin_invalid_response", message: (why: string) => why },
  origin_timeout: { status: 504, code: "origin_timeout", message: (why: string) => why },
  tunnel_reset: { status: 502, code: "tunnel_error", message: (why: string) => `The tunnel failed: ${why}` },
  informational_status: { status: 502, code: "tunnel_error", message: (status: number) => `The local app answered with status ${status}.` },
  invalid_response_header: {
    status: 502,
    code: "invalid_response_header",
    message: () => "The tunnel's agent sent a response header that is not valid HTTP; the request was not answered.",
  },
  internal: { status: 500, code: "internal", message: () => "The gateway failed to handle the request." },
} as const satisfies Record<string, { status: number; code: string; message: (...args: never[]) => string }>;

export type ErrorKind = keyof typeof PUBLIC_ERRORS;
export type GatewayErrorCode = (typeof PUBLIC_ERRORS)[ErrorKind]["code"];

export class GatewayError extends Error {
  override readonly name = "GatewayError";
  constructor(
    readonly status: number,
    readonly code: GatewayErrorCode,
    message: string,
    /** The table's kind, when built by `publicError`. */
    readonly kind?: ErrorKind,
  ) {
    super(message);
  }
}

/** The public error of `kind` (status, code and sentence from PUBLIC_ERRORS). */
export function publicError<K extends ErrorKind>(kind: K, ...args: Parameters<(typeof PUBLIC_ERRORS)[K]["message"]>): GatewayError {
  const e = PUBLIC_ERRORS[kind];
  return new GatewayError(e.status, e.code, (e.message as (...a: unknown[]) => string)(...args), kind);
}

export const ERROR_HEADER = "X-AzHexGate-Error";

const TITLES: Record<number, string> = {
  400: "Bad Request",
  401: "Sign-in Required",
  403: "Access Denied",
  429: "Too Many Requests",
  503: "Service Unavailable",
  404: "Tunnel Not Found",
  405: "Method Not Allowed",
  431: "Request Header Fields Too Large",
  500: "Internal Error",
  502: "Bad Gateway",
  504: "Gateway Timeout",
};

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Renders a GatewayError for a client that sent `accept`. Prefers HTML only when asked for it. */
export function errorResponse(err: GatewayError, accept: string | null, method = "GET"): Response {
  const wantsHtml = !!accept && /text\/html/i.test(accept) && !/application\/json/i.test(accept.split(",")[0] ?? "");
  const headers = new Headers({ [ERROR_HEADER]: err.code, "cache-control": "no-store" });
  let body: string;
  if (wantsHtml) {
    headers.set("content-type", "text/html; charset=utf-8");
    const title = TITLES[err.status] ?? "Error";
    body = `<!doctype html><html><head><meta charset="utf-8"><title>${err.status} ${title}</title></head><body><h1>${err.status} ${title}</h1><p>${escapeHtml(err.message)}</p><p><small>azhexgate error code: <code>${err.code}</code></small></p></body></html>\n`;
  } else {
    headers.set("content-type", "application/json");
    body = `${JSON.stringify({ error: { code: err.code, message: err.message } })}\n`;
  }
  return new Response(method === "HEAD" ? null : body, { status: err.status, headers });
}
