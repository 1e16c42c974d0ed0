/**
 * Management API errors: an HTTP status, a stable code and a sentence safe to show. One boundary
 * (routes.ts) turns them into `{ "error": { "code", "message" } }`; anything else is a logged 500.
 */

export type ApiErrorCode =
  | "invalid_request" // 400
  | "unauthorized" // 401
  | "invalid_token" // 401
  | "forbidden" // 403
  | "forbidden_network" // 403
  | "connect_forbidden" // 403
  | "not_tcp_tunnel" // 409
  | "not_found" // 404
  | "method_not_allowed" // 405
  | "subdomain_taken" // 409
  | "session_superseded" // 409
  | "name_in_use" // 409
  | "payload_too_large" // 413
  | "unsupported_media_type" // 415
  | "rate_limited" // 429
  | "tunnel_quota" // 429
  | "internal" // 500
  | "connect_unavailable" // 501
  | "relay_unavailable" // 502
  | "api_keys_unavailable" // 503
  | "identity_provider_unavailable"; // 503

export class ApiError extends Error {
  override readonly name = "ApiError";
  constructor(
    readonly status: number,
    readonly code: ApiErrorCode,
    message: string,
    readonly extra: { field?: string; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
  }
}

/** The one message for a missing or unknown key: no hint which. */
export const UNAUTHORIZED_MESSAGE =
  "A valid API key is required: send it in the X-AzHexGate-ApiKey header or as Authorization: Bearer <key>.";

/** The same, when the gateway also accepts OIDC bearer tokens. */
export const UNAUTHORIZED_MESSAGE_OIDC =
  "A valid API key or sign-in is required: run `azhexgate login`, or send an API key in the X-AzHexGate-ApiKey header or as Authorization: Bearer <key>.";

export const notFound = (): ApiError => new ApiError(404, "not_found", "No tunnel with this id exists for your API key.");

export const invalid = (field: string, message: string): ApiError => new ApiError(400, "invalid_request", message, { field });

export function errorResponse(e: ApiError): Response {
  const body: { error: { code: string; message: string; field?: string } } = { error: { code: e.code, message: e.message } };
  if (e.extra.field) body.error.field = e.extra.field;
  return Response.json(body, {
    status: e.status,
    headers: { "cache-control": "no-store", "x-azhexgate-error": e.code, ...e.extra.headers },
  });
}
