/**
 * Agent side of one stream: forwards it to the local origin — `fetch` for HTTP (streaming both
 * ways, no redirects followed, no decompression), our WebSocket client for WebSockets — and
 * cancels the upstream when the public client goes away.
 */
import { jsonPayload, ResetCode } from "../tunnel/frame.ts";
import type { ResponseHead } from "../tunnel/head.ts";
import { methodHasNoBody, originRequestHeaders, responseHeadFrom, statusHasNoBody, type OriginOptions } from "../tunnel/http.ts";
import type { TunnelStream } from "../tunnel/stream.ts";
import { connectWebSocket, WsHandshakeError } from "../ws/client.ts";

export interface ForwardOptions extends OriginOptions {
  /** Called once per finished request (for the CLI's request log). */
  onRequest?: (e: { method: string; target: string; status: number; ms: number; bytes: number }) => void;
}

function refused(err: unknown): boolean {
  const code = (err as { code?: string })?.code ?? "";
  return code === "ConnectionRefused" || code === "ECONNREFUSED" || /refused|Unable to connect/i.test(String((err as Error)?.message));
}

function unreachable(stream: TunnelStream, origin: string, err: unknown): void {
  const host = new URL(origin).host;
  if (refused(err)) stream.reset(ResetCode.ORIGIN_UNREACHABLE, `Nothing is listening on ${host}: start the local app (or check --port).`);
  else stream.reset(ResetCode.ORIGIN_UNREACHABLE, `The local app at ${host} could not be reached: ${(err as Error)?.message ?? String(err)}`);
}

export async function forward(stream: TunnelStream, o: ForwardOptions): Promise<void> {
  const head = stream.head!;
  if (head.kind === "ws") return forwardWebSocket(stream, o);
  const t0 = performance.now();
  const ac = new AbortController();
  stream.onReset = () => ac.abort();
  const hasBody = !methodHasNoBody(head.method);
  let res: Response;
  try {
    res = await fetch(o.origin + head.target, {
      method: head.method,
      headers: originRequestHeaders(head, o),
      body: hasBody ? stream.body : undefined,
      redirect: "manual",
      decompress: false,
      signal: ac.signal,
      // A local app on https (--local-https) almost always has a self-signed development
      // certificate; the hop is on the developer's own machine, so it is not verified.
      ...(o.origin.startsWith("https:") ? { tls: { rejectUnauthorized: false } } : {}),
    } as RequestInit);
  } catch (err) {
    if (!stream.isReset) unreachable(stream, o.origin, err);
    return;
  }
  if (!hasBody) void stream.body.cancel().catch(() => {});
  const resHead = responseHeadFrom(res);
  stream.sendResponse(jsonPayload(resHead));
  let bytes = 0;
  try {
    if (res.body && !statusHasNoBody(res.status, head.method)) {
      for await (const chunk of res.body) {
        bytes += chunk.length;
        await stream.write(chunk);
      }
    }
    stream.end();
  } catch {
    if (!stream.isReset) stream.reset(ResetCode.INTERNAL, "the local app's response body failed");
    ac.abort();
  }
  o.onRequest?.({ method: head.method, target: head.target, status: res.status, ms: performance.now() - t0, bytes });
}

/** Request headers that must not be copied onto our own WebSocket handshake. */
const WS_SKIP = new Set(["host", "connection", "upgrade", "content-length", "transfer-encoding"]);

async function forwardWebSocket(stream: TunnelStream, o: ForwardOptions): Promise<void> {
  const head = stream.head!;
  const headers: Record<string, string> = {};
  for (const [n, v] of originRequestHeaders(head, o)) if (!WS_SKIP.has(n)) headers[n] = v;
  const wsOrigin = o.origin.replace(/^http/, "ws");
  let conn;
  try {
    conn = await connectWebSocket(wsOrigin + head.target, {
      headers,
      protocols: head.protocols,
      timeoutMs: 30_000,
      ...(wsOrigin.startsWith("wss:") ? { tls: { rejectUnauthorized: false } } : {}),
    });
  } catch (err) {
    if (err instanceof WsHandshakeError) {
      const h: ResponseHead = { status: err.status === 101 ? 502 : err.status, headers: Object.entries(err.headers).filter(([n]) => n !== "content-length" && n !== "transfer-encoding" && n !== "connection") };
      stream.sendResponse(jsonPayload(h));
      if (err.body) await stream.write(new TextEncoder().encode(err.body)).catch(() => {});
      stream.end();
      return;
    }
    unreachable(stream, o.origin, err);
    return;
  }
  const resHead: ResponseHead = { status: 101, headers: [] };
  if (conn.protocol) resHead.protocol = conn.protocol;
  stream.sendResponse(jsonPayload(resHead));
  const te = new TextEncoder();
  let chain = Promise.resolve();
  let originClosed = false;
  conn.on("message", (data, binary) => {
    const bytes = typeof data === "string" ? te.encode(data) : data;
    chain = chain.then(() => stream.wsSend(bytes, binary)).catch(() => conn.terminate());
  });
  conn.on("close", (code, reason) => {
    originClosed = true;
    chain = chain.then(() => stream.wsClose(code, reason)).catch(() => {});
  });
  conn.on("error", () => {});
  const td = new TextDecoder();
  // Over the client's high-water mark: hold the tunnel credit until it drains (bounded memory).
  stream.onWsMessage = (data, binary) => {
    if (conn.send(binary ? data : td.decode(data))) return true;
    void conn.drained().then(() => stream.resumeWs());
    return false;
  };
  stream.onWsClose = (code, reason) => {
    if (originClosed) return;
    const valid = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
    conn.close(valid ? code : 1000, valid ? reason : "");
  };
  stream.onReset = () => conn.terminate();
}
