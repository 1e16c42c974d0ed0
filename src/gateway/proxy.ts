/**
 * The proxying half of a public request once its stream is open: the request body pumped into
 * the stream, the app's answer turned into a Response or a public WebSocket upgrade, and every
 * tunnel-side failure mapped to the gateway's public error (one table).
 */
import type { Server } from "bun";
import { ResetCode } from "../tunnel/frame.ts";
import type { ResponseHead } from "../tunnel/head.ts";
import { publicResponseHeaders, statusHasNoBody } from "../tunnel/http.ts";
import { PoolClosedError, PoolError } from "../tunnel/pool.ts";
import { ProtocolMismatchError } from "../tunnel/session.ts";
import { SessionLostError, StreamResetError, type TunnelStream } from "../tunnel/stream.ts";
import { GatewayError, publicError } from "./errors.ts";
import { type Throttle, throttled } from "./policy/bandwidth.ts";
import { wsDataFor, type PublicWsData } from "./websocket.ts";

/**
 * A failure on the tunnel side of request `id` as the public error the client gets: by kind (the
 * error's class, a pool's code, a stream's RESET code), never by its text; the status, code and
 * sentence come from the one table (PUBLIC_ERRORS in errors.ts).
 */
export function tunnelError(err: unknown, id: string): GatewayError {
  if (err instanceof GatewayError) return err;
  if (err instanceof PoolError) return publicError(err.code, err.message);
  if (err instanceof ProtocolMismatchError) return publicError("tunnel_version_mismatch", err.message);
  if (err instanceof PoolClosedError) return publicError("pool_closed", id);
  if (err instanceof SessionLostError) return publicError("session_lost", id);
  if (err instanceof StreamResetError) {
    switch (err.code) {
      case ResetCode.REQUEST_HEAD_TOO_LARGE:
        return publicError("request_headers_too_large");
      case ResetCode.RESPONSE_HEAD_TOO_LARGE:
        return publicError("response_headers_too_large");
      case ResetCode.ORIGIN_UNREACHABLE:
        return publicError("origin_unreachable", err.reason);
      case ResetCode.ORIGIN_INVALID_RESPONSE:
        return publicError("origin_invalid_response", err.reason);
      case ResetCode.ORIGIN_TIMEOUT:
        return publicError("origin_timeout", err.reason);
      case ResetCode.REFUSED:
        return publicError("agent_refused", id, err.reason);
      default:
        return publicError("tunnel_reset", err.reason);
    }
  }
  return publicError("agent_offline", id);
}

/** The request body stalled (a kind, not a message to match). */
class BodyIdle extends Error {}

/** Request body → stream (through the tunnel's bandwidth cap, if any); a client that stops sending for `idleMs` has the stream reset (and the request fails). */
export async function pumpBody(req: Request, stream: TunnelStream, idleMs: number, throttle?: Throttle): Promise<void> {
  const reader = req.body?.getReader();
  let timer: Timer | undefined;
  try {
    if (reader) {
      for (;;) {
        const idle = new Promise<never>((_, rej) => {
          timer = setTimeout(() => rej(new BodyIdle()), idleMs);
        });
        const r = await Promise.race([reader.read(), idle]);
        clearTimeout(timer);
        if (r.done) break;
        if (throttle) await throttle.in(r.value.byteLength);
        await stream.write(r.value);
      }
    }
    stream.end();
  } catch (err) {
    clearTimeout(timer);
    const idle = err instanceof BodyIdle;
    if (idle) void reader?.cancel().catch(() => {});
    stream.reset(ResetCode.CANCEL, idle ? `the request body stalled for ${Math.round(idleMs / 1000)} s` : "request body failed");
  }
}

const LATIN1 = /^[\x00-\xff]*$/;
const NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;

export function httpResponse(req: Request, stream: TunnelStream, head: ResponseHead, throttle?: Throttle): Response {
  if (head.status < 200) {
    stream.reset(ResetCode.PROTOCOL, "unexpected informational status");
    throw publicError("informational_status", head.status);
  }
  const headers = publicResponseHeaders(head);
  // A header value outside Latin-1 cannot go on the wire (Response would throw): a broken or
  // hostile agent gets a 502 with a code, the stream is reset (released), no stack trace.
  let typed = false; // the app sent a Content-Type (found in the same pass)
  for (let i = 0; i < headers.length; i++) {
    const [n, v] = headers[i]!;
    if (n === "content-type") typed = true;
    if (!LATIN1.test(v) || !NAME.test(n)) {
      stream.reset(ResetCode.PROTOCOL, "invalid response header");
      throw publicError("invalid_response_header");
    }
  }
  if (statusHasNoBody(head.status, req.method)) {
    stream.discardBody();
    return new Response(null, { status: head.status, headers });
  }
  if (throttle) return new Response(throttled(stream.body, throttle.out), { status: head.status, headers });
  const whole = stream.takeCompleteBody();
  if (whole) {
    if (typed) return new Response(whole as Uint8Array<ArrayBuffer>, { status: head.status, headers });
    // Bun adds `application/octet-stream` to a byte body; the app sent no Content-Type, so neither
    // do we: a one-chunk stream with its length (Bun keeps an explicit Content-Length on a stream).
    return new Response(new ReadableStream({ start: (c) => (c.enqueue(whole), c.close()) }), { status: head.status, headers: [...headers, ["content-length", String(whole.length)]] });
  }
  return new Response(stream.body, { status: head.status, headers });
}

export function upgradePublic(req: Request, server: Server<PublicWsData>, stream: TunnelStream, head: ResponseHead): Response | undefined {
  if (head.status !== 101) {
    // The origin refused the WebSocket: show its answer as a plain HTTP response. There is no
    // request body to send: END our side so the stream is released once the answer is through.
    stream.end();
    return httpResponse(req, stream, head);
  }
  const headers: Record<string, string> = {};
  if (head.protocol) headers["Sec-WebSocket-Protocol"] = head.protocol;
  const data = wsDataFor(stream); // with what the origin said before `open` (holdEarlyWs)
  if (server.upgrade(req, { headers, data })) return undefined;
  stream.reset(ResetCode.CANCEL, "public upgrade failed");
  throw publicError("bad_websocket_upgrade");
}
