/**
 * Opening a WebSocket client connection (ws: or wss:, directly or through an HTTP proxy): the
 * upgrade request, the handshake answer checked (status, Upgrade, Connection, Sec-WebSocket-Accept,
 * no extension or subprotocol we did not offer), then a WsConnection (client.ts) on the socket.
 */
import type { Socket } from "bun";
import { createHash, randomBytes } from "node:crypto";
import { dialThroughProxy, ProxyError, type StreamHandlers } from "../net/proxy-dial.ts";
import { processProxyFor } from "../net/proxy.ts";
import { type SocketCtx, type WsConnectOptions, WsConnection } from "./client.ts";
import { WsConnectError, WsHandshakeError } from "./errors.ts";
import { readHandshakeResponse } from "./handshake.ts";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

function checkHeader(name: string, value: string): void {
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name) || /[\r\n\0]/.test(value)) throw new TypeError(`invalid header "${name}"`);
}

const RESERVED = new Set(["upgrade", "connection", "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol"]);

/** Opens a WebSocket (ws: or wss:). Rejects with WsHandshakeError (non-101 answer), WsConnectError or ProxyError. */
export function connectWebSocket(url: string, opts: WsConnectOptions = {}): Promise<WsConnection> {
  return new Promise<WsConnection>((resolve, reject) => {
    let u: URL;
    const key = randomBytes(16).toString("base64");
    let request: string;
    try {
      u = new URL(url);
      if (u.protocol !== "ws:" && u.protocol !== "wss:") throw new TypeError(`not a WebSocket URL: ${u.protocol}`);
      const lines = [`GET ${u.pathname || "/"}${u.search} HTTP/1.1`];
      const extra = Object.entries(opts.headers ?? {}).filter(([k]) => !RESERVED.has(k.toLowerCase()));
      if (!extra.some(([k]) => k.toLowerCase() === "host")) lines.push(`Host: ${u.host}`);
      lines.push("Upgrade: websocket", "Connection: Upgrade", `Sec-WebSocket-Key: ${key}`, "Sec-WebSocket-Version: 13");
      if (opts.protocols?.length) lines.push(`Sec-WebSocket-Protocol: ${opts.protocols.join(", ")}`);
      for (const [k, v] of extra) {
        checkHeader(k, v);
        lines.push(`${k}: ${v}`);
      }
      request = `${lines.join("\r\n")}\r\n\r\n`;
    } catch (e) {
      reject(e);
      return;
    }
    const secure = u.protocol === "wss:";
    const hostname = u.hostname.replace(/^\[|\]$/g, "");
    const port = Number(u.port) || (secure ? 443 : 80);
    let settled = false;
    let socketRef: Socket<SocketCtx> | undefined;
    let abort = () => socketRef?.terminate();
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socketRef ? socketRef.terminate() : abort();
      reject(err);
    };
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const timer = setTimeout(() => fail(new WsConnectError("timeout", `WebSocket handshake timed out after ${timeoutMs} ms`)), timeoutMs);

    const response = readHandshakeResponse((r) => {
      if (settled) return;
      if ("error" in r) return fail(new WsConnectError("protocol", r.error));
      if (r.status !== 101) {
        fail(new WsHandshakeError(r.status, r.statusText, r.headers, r.body, { headerList: r.headerList, bodyBytes: r.bodyBytes, truncated: r.truncated }));
        return;
      }
      const h = r.headers;
      const expected = createHash("sha1").update(key + GUID).digest("base64");
      let problem = "";
      if ((h["upgrade"] ?? "").toLowerCase() !== "websocket") problem = "missing Upgrade: websocket";
      else if (!/(^|,)\s*upgrade\s*(,|$)/i.test(h["connection"] ?? "")) problem = "missing Connection: Upgrade";
      else if (h["sec-websocket-accept"] !== expected) problem = "bad Sec-WebSocket-Accept";
      else if (h["sec-websocket-extensions"]) problem = "server negotiated an extension we did not offer";
      else if (h["sec-websocket-protocol"] && !opts.protocols?.includes(h["sec-websocket-protocol"]))
        problem = `server chose a subprotocol we did not offer: ${h["sec-websocket-protocol"]}`;
      if (problem) return fail(new WsConnectError("protocol", problem));
      settled = true;
      clearTimeout(timer);
      // never keep a query token (sb-hc-token) where it could end up in a log line
      const safeUrl = url.replace(/([?&]sb-hc-token=)[^&#]*/gi, "$1REDACTED");
      const conn = new WsConnection(socketRef!, safeUrl, h["sec-websocket-protocol"] ?? "", opts);
      if (r.rest.length > 0) socketRef!.data.onData(r.rest);
      resolve(conn);
      setImmediate(() => conn.start());
    }, { maxBodyBytes: opts.maxErrorBodyBytes, bodyTimeoutMs: opts.maxErrorBodyBytes ? 10_000 : undefined });

    const ctx: SocketCtx = {
      onData: (d) => response.push(d),
      onDrain: () => {},
      onClose: (err) => {
        response.end();
        fail(new WsConnectError("network", err ? err.message : "connection closed during the WebSocket handshake", err));
      },
    };
    const tls = secure ? { serverName: opts.tls?.serverName ?? hostname, ...opts.tls } : undefined;
    const onOpen = (s: Socket<SocketCtx>) => {
      socketRef = s;
      if (settled) return void s.terminate();
      s.setNoDelay?.(true);
      // a handshake request is small: the first write takes it whole on a fresh socket
      const n = s.write(request);
      if (n < Buffer.byteLength(request)) fail(new WsConnectError("network", "could not write the handshake request"));
    };
    const handlers: StreamHandlers<SocketCtx> = {
      data: (s, d) => s.data.onData(d),
      drain: (s) => s.data.onDrain(),
      close: (s, err) => s.data.onClose(err),
      end: (s) => void s.end(),
      error: (s, err) => s.data.onClose(err),
    };
    const proxy = opts.proxy === undefined ? processProxyFor(u) : (opts.proxy ?? undefined);
    if (proxy) {
      const onFail = (err: Error) => fail(err instanceof ProxyError ? err : new WsConnectError("network", err.message, err));
      const dial = dialThroughProxy<SocketCtx>({ proxy, hostname, port, tls, data: ctx, socket: handlers, onReady: onOpen, onFail });
      abort = () => dial.terminate();
      return;
    }
    Bun.connect<SocketCtx>({
      hostname,
      port,
      tls,
      data: ctx,
      socket: {
        binaryType: "uint8array",
        open: onOpen,
        ...handlers,
        connectError: (_s, err) => fail(new WsConnectError("network", `cannot connect to ${u.host}: ${err.message}`, err)),
      },
    }).catch((err: unknown) => fail(new WsConnectError("network", `cannot connect to ${u.host}: ${String(err)}`, err)));
  });
}
