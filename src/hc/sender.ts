/**
 * Hybrid Connections WebSocket sender (`sb-hc-action=connect`), plus the helpers the listener
 * shares: token resolution and the mapping of WebSocket failures to typed RelayErrors.
 */
import { type WsConnectOptions, type WsConnection, WsConnectError, WsHandshakeError } from "../ws/client.ts";
import { connectWebSocket } from "../ws/connect.ts";
import { ProxyError } from "../net/proxy-dial.ts";
import { connectUrl, type RelayEndpoint, resourceUri } from "./address.ts";
import { handshakeError, RelayError } from "./errors.ts";
import { parseSasToken } from "./sas.ts";
import { fixedTokenProvider, type TokenProvider } from "./tokens.ts";

export const AUTH_HEADER = "ServiceBusAuthorization";

/** Decodes the expiry (ms since epoch) of a SAS token (`se`) or a JWT (`exp`). */
export function tokenExpiry(token: string): number | undefined {
  const sas = parseSasToken(token);
  if (sas) return sas.se * 1000;
  const jwt = /^(?:Bearer\s+)?[\w-]+\.([\w-]+)\.[\w-]*$/.exec(token.trim());
  if (!jwt?.[1]) return undefined;
  try {
    const exp = (JSON.parse(Buffer.from(jwt[1], "base64url").toString("utf8")) as { exp?: unknown }).exp;
    return typeof exp === "number" ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** Expiry of the token each sender connection was opened with (never the token itself). */
const senderExpiries = new WeakMap<WsConnection, number>();

/**
 * When the token a sender connection was opened with expires (ms since epoch), if known. The
 * protocol guide lists close 1008 ("the security token has expired") for established rendezvous
 * sockets, so long-lived senders retire their connections before this moment
 * (MicrosoftDocs/azure-docs articles/azure-relay/relay-hybrid-connections-protocol.md, "Accept handshake").
 */
export function senderTokenExpiry(conn: WsConnection): number | undefined {
  return senderExpiries.get(conn);
}

export function toTokenProvider(token: TokenProvider | string): TokenProvider {
  return typeof token === "string" ? fixedTokenProvider(token) : token;
}

/** Turns whatever `connectWebSocket` rejected with into a RelayError (`role` shapes 404's `retryable`). */
export function toRelayError(err: unknown, role: "listener" | "sender" | "rendezvous"): RelayError {
  if (err instanceof RelayError) return err;
  if (err instanceof ProxyError) {
    const details = { status: err.status, statusText: err.statusText, cause: err };
    if (err.kind === "refused") return new RelayError("proxy_refused", err.message, err.retryable, details);
    if (err.kind === "unreachable") return new RelayError("proxy_unreachable", err.message, true, details);
    return new RelayError("network", err.message, true, details);
  }
  if (err instanceof WsHandshakeError) {
    const e = handshakeError(role, err.status, err.description);
    // keep the raw answer for callers that want it (never contains a token)
    Object.assign(e.details, { headers: err.headers, body: err.body });
    return e;
  }
  if (err instanceof WsConnectError) {
    if (err.kind === "timeout") return new RelayError("timeout", `relay handshake timed out (${err.message})`, true, { cause: err });
    if (err.kind === "protocol") return new RelayError("protocol", `relay handshake was invalid: ${err.message}`, true, { cause: err });
    return new RelayError("network", `cannot reach the relay: ${err.message}`, true, { cause: err });
  }
  return new RelayError("network", `cannot reach the relay: ${err instanceof Error ? err.message : String(err)}`, true, { cause: err });
}

export interface SenderOptions {
  endpoint: RelayEndpoint;
  hcPath: string;
  /** Omit for hybrid connections that do not require client authorization. */
  token?: TokenProvider | string;
  /** Send the token as `sb-hc-token` in the query instead of the `ServiceBusAuthorization` header. */
  tokenInQuery?: boolean;
  suffix?: string;
  query?: Record<string, string> | URLSearchParams;
  protocols?: string[];
  headers?: Record<string, string>;
  /** Client tracking id (`sb-hc-id`); the listener sees it as the accept `id`. */
  id?: string;
  /** Whole handshake including the listener's accept; default 30 s. */
  timeoutMs?: number;
  maxMessageSize?: number;
  highWaterMark?: number;
  /** Ask the token provider for a fresh token (after a 401). */
  forceRefresh?: boolean;
  /** HTTP proxy (`null` = direct); default: the process's routing (src/net/proxy.ts). */
  proxy?: WsConnectOptions["proxy"];
  /** TLS options for wss:// (e.g. a test CA). */
  tls?: WsConnectOptions["tls"];
}

/**
 * Connects a WebSocket sender through the relay. Resolves once a listener accepted; rejects with a
 * RelayError: `not_found` (no HC / no listener, retryable), `unauthorized`, `forbidden`,
 * `rejected` (the listener's status and description in `details.status` / `details.statusText`),
 * `timeout`, `server_error`, `network`.
 */
export async function connectSender(o: SenderOptions): Promise<WsConnection> {
  let token: string | undefined;
  if (o.token !== undefined) {
    try {
      token = await toTokenProvider(o.token).getToken(resourceUri(o.endpoint, o.hcPath), { forceRefresh: o.forceRefresh });
    } catch (e) {
      throw new RelayError("unauthorized", `cannot get a token: ${e instanceof Error ? e.message : String(e)}`, true, { cause: e });
    }
  }
  const url = connectUrl(o.endpoint, o.hcPath, {
    id: o.id,
    suffix: o.suffix,
    query: o.query,
    token: o.tokenInQuery ? token : undefined,
  });
  const headers: Record<string, string> = { ...o.headers };
  if (token !== undefined && !o.tokenInQuery) headers[AUTH_HEADER] = token;
  let conn: WsConnection;
  try {
    conn = await connectWebSocket(url, {
      headers,
      protocols: o.protocols,
      timeoutMs: o.timeoutMs,
      maxMessageSize: o.maxMessageSize,
      highWaterMark: o.highWaterMark,
      ...(o.proxy !== undefined ? { proxy: o.proxy } : {}),
      ...(o.tls ? { tls: o.tls } : {}),
    });
  } catch (e) {
    throw toRelayError(e, "sender");
  }
  const exp = token === undefined ? undefined : tokenExpiry(token);
  if (exp !== undefined) senderExpiries.set(conn, exp);
  return conn;
}
