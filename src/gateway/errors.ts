/**
 * Errors the gateway shows the public: a status, a stable code (also in `X-AzHexGate-Error`) and
 * a sentence a user can act on, as JSON or a small HTML page depending on `Accept`.
 */

export type GatewayErrorCode =
  | "bad_host"
  | "bad_websocket_upgrade"
  | "method_not_allowed"
  | "tunnel_not_found"
  | "tunnel_offline"
  | "origin_unreachable"
  | "origin_timeout"
  | "tunnel_error"
  | "unauthorized"
  | "access_denied"
  | "rate_limited"
  | "metrics_off"
  | "metrics_forbidden"
  | "invalid_response_header"
  | "tunnel_version_mismatch"
  | "tunnel_timeout"
  | "tunnel_handshake_timeout"
  | "tunnel_session_limit"
  | "request_headers_too_large"
  | "response_headers_too_large"
  | "internal";

export class GatewayError extends Error {
  override readonly name = "GatewayError";
  constructor(
    readonly status: number,
    readonly code: GatewayErrorCode,
    message: string,
  ) {
    super(message);
  }
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
