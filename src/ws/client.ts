/**
 * A WebSocket client over `Bun.connect`, because Bun's built-in client hides failed-handshake
 * details, has no backpressure signal and cannot send pings. Gives: handshake status, headers and
 * body on failure (`WsHandshakeError`); `send()` returning false over a high-water mark plus
 * `drained()`; `ping()`; `pause()`/`resume()` of reading; no extensions.
 */
import type { Socket } from "bun";
import { createHash, randomBytes } from "node:crypto";
import { Emitter } from "./emitter.ts";
import { closePayload, encodeFrame, encodeMaskedFrameScratch, FrameDecoder, isValidCloseCode, Opcode } from "./frame.ts";
import { readHandshakeResponse, type HandshakeResponse } from "./handshake.ts";

import { WsConnectError, WsHandshakeError, WsProtocolError } from "./errors.ts";
import { type ProxyConfig, processProxyFor } from "../net/proxy.ts";
import { dialThroughProxy, ProxyError, type StreamHandlers } from "../net/proxy-dial.ts";

export { Emitter, WsConnectError, WsHandshakeError, WsProtocolError };
export type { HandshakeResponse };

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const SMALL = 16 * 1024;
const COALESCE_MAX = 64 * 1024;

export interface WsConnectOptions {
  headers?: Record<string, string>;
  protocols?: string[];
  /** Whole handshake (TCP + TLS + HTTP upgrade); default 30 s. */
  timeoutMs?: number;
  /** Largest incoming message; default 64 MiB (bigger → close 1009). */
  maxMessageSize?: number;
  /** `send()` returns false once this many bytes wait in our queue; default 1 MiB. */
  highWaterMark?: number;
  /** `drained()` resolves at or below this; default highWaterMark / 4. */
  lowWaterMark?: number;
  /** Largest body kept from a refused handshake (default 64 KiB); longer ones are marked truncated. */
  maxErrorBodyBytes?: number;
  /** How long `close()` waits for the peer's close frame before terminating; default 5 s. */
  closeTimeoutMs?: number;
  tls?: { rejectUnauthorized?: boolean; ca?: string | string[]; serverName?: string };
  /** HTTP proxy to CONNECT through, `null` = direct; default: the process's routing (src/net/proxy.ts). Refusals reject with `ProxyError`. */
  proxy?: ProxyConfig | null;
}

export interface WsEvents {
  message: (data: string | Uint8Array, isBinary: boolean) => void;
  ping: (data: Uint8Array) => void;
  pong: (data: Uint8Array) => void;
  /** Once, always last. 1006 when the connection dropped without a close frame, 1005 when it carried no code. */
  close: (code: number, reason: string) => void;
  error: (err: Error) => void;
  /** The outgoing queue fell to the low-water mark. */
  drain: () => void;
}

type State = "open" | "closing" | "closed";

interface SocketCtx {
  onData(d: Uint8Array): void;
  onDrain(): void;
  onClose(err?: Error): void;
}

export class WsConnection extends Emitter<WsEvents> {
  private readonly decoder: FrameDecoder;
  private readonly queue: Uint8Array[] = [];
  private queued = 0;
  private blocked = false;
  private flushScheduled = false;
  private endAfterFlush = false;
  private state: State = "open";
  private closeSent = false;
  private closeTimer: Timer | undefined;
  private drainWaiters: (() => void)[] = [];
  private ready = false;
  private paused = false;
  private pendingIn: Uint8Array[] = [];
  private socketGone: { err?: Error } | null = null;
  private readonly hwm: number;
  private readonly lwm: number;
  private readonly closeTimeoutMs: number;

  /** @internal use `connectWebSocket` */
  constructor(
    private readonly socket: Socket<SocketCtx>,
    readonly url: string,
    readonly protocol: string,
    opts: WsConnectOptions,
  ) {
    super();
    this.decoder = new FrameDecoder({ role: "client", maxMessageSize: opts.maxMessageSize ?? 64 * 1024 * 1024 });
    this.hwm = opts.highWaterMark ?? 1024 * 1024;
    this.lwm = opts.lowWaterMark ?? Math.floor(this.hwm / 4);
    this.closeTimeoutMs = opts.closeTimeoutMs ?? 5000;
    socket.data.onData = (d) => (this.ready && !this.paused ? this.process(d) : this.pendingIn.push(d));
    socket.data.onDrain = () => {
      this.blocked = false;
      this.flush();
    };
    socket.data.onClose = (err) => {
      this.socketGone = { err };
      this.drainPending();
    };
  }

  get readyState(): State {
    return this.state;
  }
  /** Bytes queued by us and not yet accepted by the socket. */
  get bufferedAmount(): number {
    return this.queued;
  }

  /** @internal starts delivering events (called on the turn after the connect promise resolves). */
  start(): void {
    this.ready = true;
    this.drainPending();
  }

  /** Queues a text (string) or binary message. false = over the high-water mark (await `drained()`) or not open (dropped). */
  send(data: string | Uint8Array): boolean {
    if (this.state !== "open") return false;
    const opcode = typeof data === "string" ? Opcode.TEXT : Opcode.BINARY;
    if (!this.writeDirect(opcode, data, typeof data === "string" ? data.length : data.byteLength)) this.enqueue(encodeFrame(opcode, data));
    return this.queued < this.hwm;
  }

  /**
   * Queues one binary message gathered from `parts` (one copy into the frame). Same return as `send`.
   * Its caller (a tunnel session) already gathers a whole event-loop turn into one message, so
   * even a small one is written at once when nothing is queued: no frame allocated, no microtask.
   */
  sendParts(parts: readonly Uint8Array[]): boolean {
    if (this.state !== "open") return false;
    let len = 0;
    for (const p of parts) len += p.byteLength;
    if (!this.writeDirect(Opcode.BINARY, parts, len, true)) this.enqueue(encodeFrame(Opcode.BINARY, parts));
    return this.queued < this.hwm;
  }

  /**
   * A large frame with nothing queued ahead of it is built in the scratch area, masked there and
   * written at once; only what the socket did not take is copied into the queue. False: not
   * taken (small, queued frames ahead, or too big for the scratch area) — enqueue instead.
   */
  private writeDirect(opcode: number, payload: string | Uint8Array | readonly Uint8Array[], approxLen: number, small = false): boolean {
    if ((approxLen < SMALL && !small) || this.queue.length > 0 || this.blocked || this.flushScheduled) return false;
    const frame = encodeMaskedFrameScratch(opcode, payload);
    if (!frame) return false;
    const written = Math.max(0, this.socket.write(frame));
    if (written < frame.length) {
      const rest = frame.slice(written); // the scratch area is reused by the next frame
      this.queue.push(rest);
      this.queued += rest.length;
      this.blocked = true;
    }
    return true;
  }

  ping(data: string | Uint8Array = ""): boolean {
    if (this.state !== "open") return false;
    this.enqueue(encodeFrame(Opcode.PING, data));
    return true;
  }

  /** An unsolicited pong (RFC 6455 §5.5.3: a unidirectional heartbeat; no answer expected). */
  pong(data: string | Uint8Array = ""): boolean {
    if (this.state !== "open") return false;
    this.enqueue(encodeFrame(Opcode.PONG, data));
    return true;
  }

  /** Starts the closing handshake; `close` fires when the peer answers (or after closeTimeoutMs). */
  close(code = 1000, reason = ""): void {
    if (!isValidCloseCode(code)) throw new RangeError(`invalid close code ${code}`);
    if (this.state !== "open") return;
    this.state = "closing";
    this.closeSent = true;
    this.enqueue(encodeFrame(Opcode.CLOSE, closePayload(code, reason)));
    this.closeTimer = setTimeout(() => this.terminate(), this.closeTimeoutMs);
  }

  /** Drops the TCP connection at once; `close` fires with 1006. */
  terminate(): void {
    if (this.state === "closed") return;
    this.socket.terminate();
    this.finish(1006, "");
  }

  /** Resolves when the outgoing queue is at or below the low-water mark (or the connection is closed). */
  drained(): Promise<void> {
    if (this.queued <= this.lwm || this.state === "closed") return Promise.resolve();
    return new Promise((r) => this.drainWaiters.push(r));
  }

  pause(): void {
    this.paused = true;
    this.socket.pause();
  }
  resume(): void {
    this.paused = false;
    this.socket.resume();
    this.drainPending();
  }

  /** Delivers buffered input; once it is all delivered, a dropped socket becomes `close` 1006. */
  private drainPending(): void {
    if (!this.ready || this.paused) return;
    while (this.pendingIn.length > 0 && !this.paused) this.process(this.pendingIn.shift()!);
    if (this.socketGone && this.pendingIn.length === 0 && this.state !== "closed") {
      const { err } = this.socketGone;
      if (err) this.emit("error", new WsConnectError("network", err.message, err));
      this.finish(1006, "");
    }
  }

  private process(chunk: Uint8Array): void {
    for (const ev of this.decoder.push(chunk)) {
      switch (ev.type) {
        case "message":
          if (this.state !== "closed") this.emit("message", ev.data, ev.binary);
          break;
        case "ping":
          if (!this.closeSent) this.enqueue(encodeFrame(Opcode.PONG, ev.data));
          this.emit("ping", ev.data);
          break;
        case "pong":
          this.emit("pong", ev.data);
          break;
        case "close":
          if (!this.closeSent) {
            this.closeSent = true;
            this.enqueue(encodeFrame(Opcode.CLOSE, ev.code === 1005 ? undefined : closePayload(ev.code, ev.reason)));
          }
          this.finish(ev.code, ev.reason);
          this.endSocket();
          return;
        case "error":
          this.emit("error", new WsProtocolError(ev.code, ev.message));
          if (!this.closeSent) {
            this.closeSent = true;
            this.enqueue(encodeFrame(Opcode.CLOSE, closePayload(ev.code, ev.message)));
          }
          this.finish(ev.code, ev.message);
          this.endSocket();
          return;
      }
    }
  }

  /** Half-close once the queue is flushed; terminate if the peer keeps the socket open. */
  private endSocket(): void {
    this.endAfterFlush = true;
    this.flush();
    const t = setTimeout(() => this.socket.terminate(), this.closeTimeoutMs);
    t.unref?.();
  }

  private finish(code: number, reason: string): void {
    if (this.state === "closed") return;
    this.state = "closed";
    clearTimeout(this.closeTimer);
    if (code === 1006) {
      this.queue.length = 0;
      this.queued = 0;
    }
    this.resolveDrain();
    this.emit("close", code, reason);
  }

  private resolveDrain(): void {
    const w = this.drainWaiters;
    this.drainWaiters = [];
    for (const r of w) r();
  }

  private enqueue(frame: Uint8Array): void {
    this.queue.push(frame);
    this.queued += frame.length;
    if (this.blocked) return;
    if (frame.length >= SMALL) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    while (this.queue.length > 0 && !this.blocked) {
      let head = this.queue[0]!;
      if (head.length < SMALL && this.queue.length > 1) {
        let n = 0;
        let size = 0;
        while (n < this.queue.length && size + this.queue[n]!.length <= COALESCE_MAX) size += this.queue[n++]!.length;
        if (n > 1) {
          head = Buffer.concat(this.queue.slice(0, n), size);
          this.queue.splice(0, n, head);
        }
      }
      const written = Math.max(0, this.socket.write(head));
      this.queued -= written;
      if (written >= head.length) this.queue.shift();
      else {
        this.queue[0] = head.subarray(written);
        this.blocked = true;
      }
    }
    if (this.queue.length === 0 && this.endAfterFlush) this.socket.end();
    if (this.queued <= this.lwm && this.drainWaiters.length > 0) {
      this.resolveDrain();
      this.emit("drain");
    }
  }
}

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
