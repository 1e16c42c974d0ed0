/**
 * Agent side of one stream: forwards it to the local origin — our keep-alive HTTP/1.1 client for
 * HTTP (`origin-http.ts`: streaming both ways, bytes untouched), our WebSocket client for WebSockets — and
 * cancels the upstream when the public client goes away.
 */
import { ResetCode } from "../tunnel/frame.ts";
import type { ResponseHead } from "../tunnel/head.ts";
import { methodHasNoBody, originRequestHeaderList, originRequestHeaders, responseHeadFromList, type OriginOptions } from "../tunnel/http.ts";
import { SessionLostError, type StreamResetError, type TunnelStream } from "../tunnel/stream.ts";
import { WsHandshakeError } from "../ws/client.ts";
import { connectWebSocket } from "../ws/connect.ts";
import { WsConnectError } from "../ws/errors.ts";
import type { Inspector } from "./inspect/capture.ts";
import { AbortHook, OriginPool, OriginProtocolError, type OriginEndpoint, type OriginResponse } from "./origin-http.ts";

/**
 * One finished HTTP request or WebSocket session, failures included. `status` is what the public
 * client got: the app's status, 502 (app down / invalid answer), 504 (the gateway's time limit),
 * 101 for a WebSocket session, or 499 (nginx's "client closed request") when the client went away
 * before any answer. `error` names what went wrong, when something did.
 */
export interface RequestEvent {
  kind: "http" | "ws";
  method: string;
  target: string;
  status: number;
  ms: number;
  /** Response body bytes (HTTP); message bytes both ways (WebSocket). */
  bytes: number;
  error?: string;
  /** WebSocket close code. */
  closeCode?: number;
  /** Bytes from the public client (request body / its WebSocket messages), for the status view. */
  bytesIn?: number;
}

export interface ForwardOptions extends OriginOptions {
  /** Called once per finished request or WebSocket session (for the CLI's request log). */
  onRequest?: (e: RequestEvent) => void;
  /** The request inspector (`--inspect`, the default); absent with `--no-inspect`: nothing is captured. */
  inspect?: Inspector;
}

/** What the public client got when the gateway reset the stream (or the session was lost) before an answer: by kind, not text. */
function peerReset(err: StreamResetError | undefined): { status: number; error: string } {
  if (err?.code === ResetCode.ORIGIN_TIMEOUT) return { status: 504, error: "origin_timeout" };
  if (err?.code === ResetCode.CANCEL) return { status: 499, error: "client_gone" };
  return { status: 502, error: err instanceof SessionLostError ? "tunnel_lost" : "reset" };
}

/** Nothing listens on the port: Bun sets `code` ECONNREFUSED on a failed Bun.connect (our WebSocket client keeps it as the cause). */
function refused(err: unknown): boolean {
  const code = (e: unknown) => (e as { code?: unknown } | undefined)?.code;
  const c = code(err) ?? (err instanceof WsConnectError ? code(err.cause) : undefined);
  return c === "ECONNREFUSED" || c === "ConnectionRefused";
}

/**
 * Resets the stream for an app that could not be reached (RESET ORIGIN_UNREACHABLE, 502
 * origin_unreachable at the gateway) or that answered something that is not HTTP (RESET
 * ORIGIN_INVALID_RESPONSE, 502 origin_invalid_response); returns the request event's error code.
 */
function unreachable(stream: TunnelStream, origin: string, err: unknown): string {
  const host = new URL(origin).host;
  if (err instanceof OriginProtocolError || (err instanceof WsConnectError && err.kind === "protocol")) {
    stream.reset(ResetCode.ORIGIN_INVALID_RESPONSE, `The local app at ${host} sent an invalid HTTP response: ${err.message}. Check that --port is the app's HTTP port.`);
    return "origin_invalid_response";
  }
  if (refused(err)) {
    stream.reset(ResetCode.ORIGIN_UNREACHABLE, `Nothing is listening on ${host}: start the local app (or check --port).`);
    return "origin_unreachable";
  }
  stream.reset(ResetCode.ORIGIN_UNREACHABLE, `The local app at ${host} could not be reached: ${(err as Error)?.message ?? String(err)}`);
  return "origin_error";
}

/** Keep-alive sockets to local apps, shared by every tunnel of this process. */
export const originPool = new OriginPool();

const endpoints = new Map<string, OriginEndpoint>();
function endpointOf(origin: string): OriginEndpoint {
  let ep = endpoints.get(origin);
  if (!ep) {
    const u = new URL(origin);
    const secure = u.protocol === "https:";
    ep = { hostname: u.hostname.replace(/^\[|\]$/g, ""), port: Number(u.port) || (secure ? 443 : 80), secure };
    endpoints.set(origin, ep);
  }
  return ep;
}

export async function forward(stream: TunnelStream, o: ForwardOptions): Promise<void> {
  const head = stream.head!;
  if (head.kind === "ws") return forwardWebSocket(stream, o);
  const t0 = performance.now();
  const abort = new AbortHook();
  let resetBy: StreamResetError | undefined;
  stream.onReset = (err) => {
    resetBy = err;
    abort.abort();
  };
  let headers = originRequestHeaderList(head, o);
  // OPTIONS carries a body only when the gateway passed its framing (CORS preflights have none)
  const hasBody = !methodHasNoBody(head.method) && (head.method !== "OPTIONS" || headers.some(([n]) => n === "content-length"));
  const cap = o.inspect ? o.inspect.beginHttp(head, o, t0) : undefined;
  const report = (status: number, bytes: number, error?: string) => {
    const ms = performance.now() - t0;
    cap?.finish(status, ms, error);
    o.onRequest?.({ kind: "http", method: head.method, target: head.target, status, ms, bytes, bytesIn: stream.bytesReceived, ...(error ? { error } : {}) });
  };
  let contentLength: number | null = null;
  if (hasBody) {
    const cl = headers.find(([n]) => n === "content-length");
    if (cl && /^\d{1,15}$/.test(cl[1])) contentLength = Number(cl[1]);
    headers = headers.filter(([n]) => n !== "content-length");
  } else stream.discardBody();
  let res: OriginResponse;
  try {
    res = await originPool.request(
      endpointOf(o.origin),
      { method: head.method, target: head.target, headers, body: hasBody ? (cap ? cap.tee(stream.body) : stream.body) : null, contentLength },
      abort,
    );
  } catch (err) {
    if (stream.isReset) {
      const r = peerReset(resetBy);
      return report(r.status, 0, r.error);
    }
    return report(502, 0, unreachable(stream, o.origin, err));
  }
  if (!stream.sendResponse(responseHeadFromList(res.status, res.headers))) {
    abort.abort(); // a head over the limit: that stream is reset (502 at the gateway), the session goes on
    return report(502, 0, "response_headers_too_large");
  }
  cap?.response(res.status, res.rawHead);
  // A small answer is usually complete already (head and body in one read from the app): sent
  // whole, synchronously, when credit allows — no iterator, no promise per request.
  const whole = res.whole();
  if (whole !== null) {
    if (cap && whole.length) cap.chunk(whole);
    if (whole.length === 0 || stream.writeNow(whole)) {
      stream.end();
      return report(res.status, whole.length);
    }
  }
  let bytes = 0;
  let error: string | undefined;
  try {
    if (whole !== null) {
      bytes = whole.length;
      await stream.write(whole);
    } else {
      for await (const chunk of res.body) {
        bytes += chunk.length;
        if (cap) cap.chunk(chunk);
        await stream.write(chunk);
      }
    }
    stream.end();
  } catch {
    // the client got the status, then a cut-off body
    error = resetBy ? (resetBy.code === ResetCode.CANCEL ? "client_gone" : "reset") : "origin_body_failed";
    if (!stream.isReset) stream.reset(ResetCode.INTERNAL, "the local app's response body failed");
    abort.abort();
  }
  report(res.status, bytes, error);
}

/** Headers of a refused upgrade's answer the gateway frames itself. */
const REFUSED_SKIP = new Set(["content-length", "transfer-encoding", "connection", "keep-alive", "upgrade"]);
/** Largest refused-upgrade body passed on whole (login pages, JSON errors); longer is cut visibly. */
const REFUSED_BODY_MAX = 8 * 1024 * 1024;

/** Request headers that must not be copied onto our own WebSocket handshake. */
const WS_SKIP = new Set(["host", "connection", "upgrade", "content-length", "transfer-encoding"]);

async function forwardWebSocket(stream: TunnelStream, o: ForwardOptions): Promise<void> {
  const head = stream.head!;
  const headers: Record<string, string> = {};
  for (const [n, v] of originRequestHeaders(head, o)) if (!WS_SKIP.has(n)) headers[n] = v;
  const cap = o.inspect ? o.inspect.begin(head, Object.entries(headers), o.origin) : undefined;
  const wsOrigin = o.origin.replace(/^http/, "ws");
  const t0 = performance.now();
  let resetBy: StreamResetError | undefined;
  stream.onReset = (err) => {
    resetBy = err;
  };
  let reported = false;
  const report = (status: number, error?: string, closeCode?: number) => {
    if (reported) return;
    reported = true;
    const bytes = status === 101 ? stream.bytesSent + stream.bytesReceived : 0;
    const ms = performance.now() - t0;
    cap?.finish(status, ms, error, closeCode);
    o.onRequest?.({ kind: "ws", method: "GET", target: head.target, status, ms, bytes, bytesIn: stream.bytesReceived, ...(error ? { error } : {}), ...(closeCode !== undefined ? { closeCode } : {}) });
  };
  let conn;
  try {
    conn = await connectWebSocket(wsOrigin + head.target, {
      headers,
      protocols: head.protocols,
      timeoutMs: 30_000,
      maxErrorBodyBytes: REFUSED_BODY_MAX,
      proxy: null, // the local app: never through the relay's proxy
      ...(wsOrigin.startsWith("wss:") ? { tls: { rejectUnauthorized: false } } : {}),
    });
  } catch (err) {
    if (err instanceof WsHandshakeError) {
      // The app refused the upgrade: its answer goes out as an ordinary response — header lines
      // as sent (Set-Cookie kept apart), body bytes untouched (up to REFUSED_BODY_MAX; a longer
      // one is cut visibly with a reset, never served as complete).
      const { headerList, bodyBytes, truncated } = err.raw;
      const h: ResponseHead = { status: err.status === 101 ? 502 : err.status, headers: headerList.filter(([n]) => !REFUSED_SKIP.has(n)) };
      if (!stream.sendResponse(h)) return report(502, "response_headers_too_large");
      cap?.response(h.status, h.headers);
      try {
        for (let off = 0; off < bodyBytes.length; off += 64 * 1024) await stream.write(bodyBytes.subarray(off, off + 64 * 1024));
        if (truncated) stream.reset(ResetCode.INTERNAL, `the local app's refusal body is longer than ${REFUSED_BODY_MAX} bytes`);
        else stream.end();
      } catch {
        // reset by the gateway (client gone): nothing more to send
      }
      return report(h.status, err.status === 101 ? "origin_invalid_response" : "upgrade_refused");
    }
    if (stream.isReset) {
      const r = peerReset(resetBy);
      return report(r.status, r.error);
    }
    return report(502, unreachable(stream, o.origin, err));
  }
  if (stream.isReset) {
    conn.terminate();
    const r = peerReset(resetBy);
    return report(r.status, r.error);
  }
  const resHead: ResponseHead = { status: 101, headers: [] };
  if (conn.protocol) resHead.protocol = conn.protocol;
  if (!stream.sendResponse(resHead)) {
    conn.terminate();
    return report(502, "response_headers_too_large");
  }
  cap?.response(101, conn.protocol ? [["sec-websocket-protocol", conn.protocol]] : []);
  const te = new TextEncoder();
  let originClosed = false;
  // Flow control: while the stream cannot send (no credit from the gateway, transport congested)
  // the origin socket is not read, so a fast origin meets TCP backpressure instead of our memory.
  let paused = false;
  conn.on("message", (data, binary) => {
    if (cap) cap.message("out", data, binary);
    stream.wsSendQueued(typeof data === "string" ? te.encode(data) : data, binary, () => conn.terminate());
    if (stream.wsBusy && !paused) {
      paused = true;
      conn.pause();
      void stream.wsFlushed().then(() => {
        paused = false;
        conn.resume();
      });
    }
  });
  conn.on("close", (code, reason) => {
    originClosed = true;
    stream.wsCloseQueued(code, reason);
    if (stream.wsBusy) {
      // the gateway takes nothing more (its client stopped reading): do not keep the stream forever
      const t = setTimeout(() => stream.reset(ResetCode.CANCEL, "the public client is not reading"), 5_000);
      void stream.wsFlushed().then(() => clearTimeout(t));
    }
    // one event per session, when it ends: 101, how long it lasted, bytes both ways, the close code
    report(101, resetBy ? (resetBy.code === ResetCode.CANCEL ? "client_gone" : "reset") : undefined, code);
  });
  conn.on("error", () => {});
  const td = new TextDecoder();
  // Over the client's high-water mark: hold the tunnel credit until it drains (bounded memory).
  stream.onWsMessage = (data, binary) => {
    if (cap) cap.message("in", data, binary);
    if (conn.send(binary ? data : td.decode(data))) return true;
    void conn.drained().then(() => stream.resumeWs());
    return false;
  };
  stream.onWsClose = (code, reason) => {
    if (originClosed) return;
    const valid = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
    conn.close(valid ? code : 1000, valid ? reason : "");
  };
  stream.onReset = (err) => {
    resetBy = err;
    conn.terminate();
  };
}
