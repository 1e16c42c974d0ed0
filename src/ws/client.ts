/**
 * A WebSocket client over `Bun.connect`, because Bun's built-in client hides failed-handshake
 * details, has no backpressure signal and cannot send pings. Gives: handshake status, headers and
 * body on failure (`WsHandshakeError`, connect.ts opens connections); `send()` returning false
 * over a high-water mark plus `drained()`; `ping()`; `pause()`/`resume()` of reading; no extensions.
 */
import type { Socket } from "bun";
import { Emitter } from "./emitter.ts";
import { closePayload, encodeFrame, encodeMaskedFrameScratch, FrameDecoder, isValidCloseCode, Opcode } from "./frame.ts";
import type { HandshakeResponse } from "./handshake.ts";

import { WsConnectError, WsHandshakeError, WsProtocolError } from "./errors.ts";
import type { ProxyConfig } from "../net/proxy.ts";

export { Emitter, WsConnectError, WsHandshakeError, WsProtocolError };
export type { HandshakeResponse };

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

/** What a connection's socket carries: the handlers its data, drain and close go to. */
export interface SocketCtx {
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
