/**
 * One tunnel stream: a public HTTP request / WebSocket carried over a session. Outbound bytes
 * are sent only against the peer's credit; inbound bytes are handed out by a pull-based
 * ReadableStream and credit is returned as the consumer pulls — memory per stream stays
 * bounded by the window whatever the body size.
 */
import { FrameType, MAX_FRAME_PAYLOAD, ResetCode, WsFlags, resetPayload, varintPayload, wsClosePayload } from "./frame.ts";
import type { RequestHead, ResponseHead } from "./head.ts";

/** What a stream needs from its session (kept narrow so streams are testable alone). */
export interface StreamHost {
  enqueue(type: number, stream: number, payload: Uint8Array): void;
  /** Null when the transport takes more now, else a promise that resolves when it drains. */
  writable(): Promise<void> | null;
  release(id: number): void;
  readonly window: number;
}

export class StreamResetError extends Error {
  override readonly name = "StreamResetError";
  constructor(readonly code: number, readonly reason: string) {
    super(reason || `stream reset (code ${code})`);
  }
}

const EMPTY = new Uint8Array(0);
/** Largest WebSocket message a stream reassembles (Bun's server default is 16 MiB; we allow more). */
export const MAX_WS_MESSAGE = 64 << 20;

export class TunnelStream {
  /** Peer credit left for our DATA / WS_MESSAGE bytes. */
  private credit: number;
  private creditWaiters: Array<() => void> = [];
  /** Bytes handed to our consumer but not yet returned to the peer as credit. */
  private unacked = 0;
  /** Credit the peer still has from us; going below zero is a flow-control violation. */
  private granted: number;
  private queue: Uint8Array[] = [];
  private queued = 0;
  private pullWaiter: (() => void) | null = null;
  private ended = false; // peer sent END
  private sentEnd = false;
  private resetError: StreamResetError | null = null;
  private wsParts: Uint8Array[] = [];
  private wsChain: Promise<void> | null = null; // built on the first queued WebSocket send
  private wsPending = 0;
  /** Our reader cancelled the body: inbound bytes are dropped (and credited) from now on. */
  private discarding = false;
  private wsPartsSize = 0;
  private responseResolve: ((h: ResponseHead) => void) | null = null;
  private responseReject: ((e: Error) => void) | null = null;
  private responsePromise: Promise<ResponseHead> | null = null;
  private responseHead: ResponseHead | null = null;

  private bodyStream: ReadableStream<Uint8Array> | null = null;

  /**
   * A WebSocket message arrived. Return `false` when the consumer is congested (its socket is
   * over its high-water mark): credit for WebSocket bytes is then held back until `resumeWs()`,
   * so the peer stops sending after one window instead of piling messages up here.
   */
  onWsMessage: ((data: Uint8Array, binary: boolean) => boolean | void) | null = null;
  /** Body / WebSocket payload bytes sent and received on this stream (for metrics). */
  bytesSent = 0;
  bytesReceived = 0;
  /** Credit held back while the WebSocket consumer is congested. */
  private heldWsCredit = 0;
  private wsHeld = false;
  onWsClose: ((code: number, reason: string) => void) | null = null;
  onReset: ((err: StreamResetError) => void) | null = null;

  constructor(
    private readonly host: StreamHost,
    readonly id: number,
    peerWindow: number,
    /** The request head (set on the agent side, where the stream arrived with OPEN). */
    readonly head?: RequestHead,
  ) {
    this.credit = peerWindow;
    this.granted = host.window;
  }

  /**
   * Inbound body bytes (HTTP streams). Pull-based: credit flows back as it is read. Created on
   * first use: most small responses are taken whole (`takeCompleteBody`) and GETs have no body,
   * so the web stream is never built for them.
   */
  get body(): ReadableStream<Uint8Array> {
    return (this.bodyStream ??= new ReadableStream<Uint8Array>(
      {
        pull: (controller) => this.pull(controller),
        cancel: () => this.discardInbound(),
      },
      { highWaterMark: 0 },
    ));
  }

  /** The inbound body is not wanted: drop what is queued and what comes (credit still flows). */
  discardBody(): void {
    if (this.bodyStream) void this.bodyStream.cancel().catch(() => {});
    else this.discardInbound();
  }

  /**
   * The peer's response head (gateway side). Rejects if the stream is reset first. Built on first
   * use: the agent side never asks, and a promise per stream is not free.
   */
  get response(): Promise<ResponseHead> {
    if (!this.responsePromise) {
      if (this.responseHead) this.responsePromise = Promise.resolve(this.responseHead);
      else if (this.resetError) this.responsePromise = Promise.reject(this.resetError);
      else {
        this.responsePromise = new Promise<ResponseHead>((res, rej) => {
          this.responseResolve = res;
          this.responseReject = rej;
        });
      }
      this.responsePromise.catch(() => {}); // a reset before anyone awaits must not be an unhandled rejection
    }
    return this.responsePromise;
  }

  get isReset(): boolean {
    return this.resetError !== null;
  }

  /**
   * The whole inbound body when the peer already sent all of it (END received, nothing read yet),
   * else null. Small responses usually arrive with their head in one session message: answering
   * them with a plain body lets the server send Content-Length instead of streaming chunks.
   */
  takeCompleteBody(maxBytes = 64 * 1024): Uint8Array | null {
    if (!this.ended || this.resetError || this.discarding || this.queued > maxBytes) return null;
    const parts = this.queue;
    this.queue = [];
    this.queued = 0;
    this.discarding = true; // the ReadableStream is never read now
    if (parts.length === 1) return parts[0]!;
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let off = 0;
    for (const p of parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }

  // ---- outbound ----

  sendOpen(payload: Uint8Array): void {
    this.host.enqueue(FrameType.OPEN, this.id, payload);
  }

  sendResponse(payload: Uint8Array): void {
    this.host.enqueue(FrameType.RESPONSE, this.id, payload);
  }

  /** Sends body bytes, waiting for credit and for the session's transport to drain. */
  async write(chunk: Uint8Array): Promise<void> {
    await this.sendCredited(FrameType.DATA, chunk, null);
  }

  /** Half-closes our direction. */
  end(): void {
    if (this.sentEnd || this.resetError) return;
    this.sentEnd = true;
    this.host.enqueue(FrameType.END, this.id, EMPTY);
    this.maybeRelease();
  }

  /** Sends one WebSocket message (fragmented to the frame limit and to credit). */
  async wsSend(data: Uint8Array, binary: boolean): Promise<void> {
    if (data.length === 0) {
      await this.sendCredited(FrameType.WS_MESSAGE, data, binary ? WsFlags.BINARY | WsFlags.FIN : WsFlags.FIN);
      return;
    }
    await this.sendCredited(FrameType.WS_MESSAGE, data, binary ? WsFlags.BINARY : 0);
  }

  /**
   * Sends one WebSocket message after any still in flight, so fragments of different messages
   * never interleave; synchronously when nothing is queued and credit and the transport allow
   * (the common case: no promise per message). A failed send calls `onError`.
   */
  wsSendQueued(data: Uint8Array, binary: boolean, onError: () => void): void {
    if (this.wsPending === 0 && this.wsSendNow(data, binary)) return;
    if (this.resetError) return onError(); // nothing will ever send it: do not queue
    this.wsPending++;
    this.wsChain = (this.wsChain ?? Promise.resolve())
      .then(() => this.wsSend(data, binary))
      .catch(onError)
      .finally(() => {
        this.wsPending--;
      });
  }

  /**
   * True while WebSocket messages wait for credit or for the transport: the caller should stop
   * reading its socket (flow control) until `wsFlushed()` resolves.
   */
  get wsBusy(): boolean {
    return this.wsPending > 0;
  }

  /** Resolves once no WebSocket send is queued any more (sent, or failed on a reset). */
  async wsFlushed(): Promise<void> {
    while (this.wsPending > 0 && this.wsChain) await this.wsChain;
  }

  /** `wsClose` after the messages still in flight. */
  wsCloseQueued(code: number, reason: string): void {
    if (this.wsPending === 0) return this.wsClose(code, reason);
    this.wsChain = (this.wsChain ?? Promise.resolve()).then(() => this.wsClose(code, reason)).catch(() => {});
  }

  private wsSendNow(data: Uint8Array, binary: boolean): boolean {
    const n = data.length;
    if (this.resetError || this.sentEnd || n >= MAX_FRAME_PAYLOAD || this.credit < n || (n === 0 && this.credit <= 0) || this.host.writable()) return false;
    const p = new Uint8Array(n + 1);
    p[0] = (binary ? WsFlags.BINARY : 0) | WsFlags.FIN;
    p.set(data, 1);
    this.bytesSent += n;
    this.credit -= n;
    this.host.enqueue(FrameType.WS_MESSAGE, this.id, p);
    return true;
  }

  wsClose(code: number, reason: string): void {
    if (this.resetError || this.sentEnd) return;
    this.host.enqueue(FrameType.WS_CLOSE, this.id, wsClosePayload(code, reason));
    this.sentEnd = true;
    this.maybeRelease();
  }

  /** Aborts the stream in both directions. */
  reset(code: number, reason = ""): void {
    if (this.resetError) return;
    if (!(this.sentEnd && this.ended)) this.host.enqueue(FrameType.RESET, this.id, resetPayload(code, reason));
    this.fail(new StreamResetError(code, reason));
  }

  private async sendCredited(type: number, data: Uint8Array, wsFlags: number | null): Promise<void> {
    let off = 0;
    do {
      if (this.resetError) throw this.resetError;
      if (this.sentEnd) throw new StreamResetError(ResetCode.PROTOCOL, "stream already ended");
      while (this.credit <= 0 && data.length > 0) {
        await new Promise<void>((r) => this.creditWaiters.push(r));
        if (this.resetError) throw this.resetError;
      }
      const congested = this.host.writable();
      if (congested) {
        await congested;
        if (this.resetError) throw this.resetError;
      }
      const limit = wsFlags === null ? MAX_FRAME_PAYLOAD : MAX_FRAME_PAYLOAD - 1;
      const n = Math.min(data.length - off, this.credit, limit);
      const part = data.subarray(off, off + n);
      off += n;
      this.bytesSent += n;
      this.credit -= n;
      if (wsFlags === null) this.host.enqueue(type, this.id, part);
      else {
        const p = new Uint8Array(n + 1);
        p[0] = wsFlags | (off >= data.length ? WsFlags.FIN : 0);
        p.set(part, 1);
        this.host.enqueue(type, this.id, p);
      }
    } while (off < data.length);
  }

  // ---- inbound (called by the session) ----

  handleResponse(head: ResponseHead): void {
    if (this.responseHead || this.resetError) return; // the first answer (or the reset) stands
    this.responseHead = head;
    this.responseResolve?.(head);
  }

  handleData(payload: Uint8Array): void {
    if (this.resetError || this.ended) return;
    if (!this.consumeGrant(payload.length)) return;
    this.bytesReceived += payload.length;
    if (this.discarding) return this.giveCredit(payload.length);
    this.queue.push(payload);
    this.queued += payload.length;
    this.wakePull();
  }

  handleEnd(): void {
    this.ended = true;
    this.wakePull();
    this.maybeRelease();
  }

  handleWindow(increment: number): void {
    this.credit += increment;
    const waiters = this.creditWaiters;
    this.creditWaiters = [];
    for (const w of waiters) w();
  }

  handleWsMessage(payload: Uint8Array): void {
    if (this.resetError || payload.length === 0) return;
    const flags = payload[0]!;
    const data = payload.subarray(1);
    if (!this.consumeGrant(data.length)) return;
    this.bytesReceived += data.length;
    if (this.wsPartsSize + data.length > MAX_WS_MESSAGE) {
      this.reset(ResetCode.PROTOCOL, `WebSocket message larger than ${MAX_WS_MESSAGE} bytes`);
      return;
    }
    // Messages are handed on at once; credit returns at once too, unless the consumer said it
    // is congested (then it returns on resumeWs()).
    if (this.wsHeld) this.heldWsCredit += data.length;
    else this.giveCredit(data.length);
    if (!(flags & WsFlags.FIN)) {
      this.wsParts.push(data);
      this.wsPartsSize += data.length;
      return;
    }
    let msg = data;
    if (this.wsParts.length) {
      this.wsParts.push(data);
      msg = new Uint8Array(this.wsPartsSize + data.length);
      let off = 0;
      for (const p of this.wsParts) {
        msg.set(p, off);
        off += p.length;
      }
      this.wsParts = [];
      this.wsPartsSize = 0;
    }
    if (this.onWsMessage?.(msg, (flags & WsFlags.BINARY) !== 0) === false) this.wsHeld = true;
  }

  /** The WebSocket consumer drained: return the credit held back since it said it was congested. */
  resumeWs(): void {
    this.wsHeld = false;
    const n = this.heldWsCredit;
    this.heldWsCredit = 0;
    if (n) this.flushCredit(n);
  }

  handleWsClose(code: number, reason: string): void {
    this.ended = true;
    this.onWsClose?.(code, reason);
    this.maybeRelease();
  }

  handleReset(code: number, reason: string): void {
    this.fail(new StreamResetError(code, reason));
  }

  /** Marks the stream failed locally (session lost, reset) and wakes everyone waiting. */
  fail(err: StreamResetError): void {
    if (this.resetError) return;
    this.resetError = err;
    this.responseReject?.(err);
    this.handleWindow(0);
    this.wakePull();
    this.onReset?.(err);
    this.host.release(this.id);
  }

  /** The consumer no longer wants the inbound body: drop what is queued, keep the stream. */
  private discardInbound(): void {
    this.discarding = true;
    const n = this.queued;
    this.queue = [];
    this.queued = 0;
    if (n) this.giveCredit(n);
  }

  private consumeGrant(n: number): boolean {
    this.granted -= n;
    if (this.granted >= 0) return true;
    this.reset(ResetCode.FLOW_CONTROL, "peer sent past its credit");
    return false;
  }

  /** Returns `n` bytes of credit now (not batched). */
  private flushCredit(n: number): void {
    this.unacked += n;
    if (this.ended || this.resetError || this.unacked === 0) return;
    this.host.enqueue(FrameType.WINDOW, this.id, varintPayload(this.unacked));
    this.granted += this.unacked;
    this.unacked = 0;
  }

  private giveCredit(n: number): void {
    this.unacked += n;
    if (this.unacked >= this.host.window / 4 && !this.ended && !this.resetError) {
      this.host.enqueue(FrameType.WINDOW, this.id, varintPayload(this.unacked));
      this.granted += this.unacked;
      this.unacked = 0;
    }
  }

  private wakePull(): void {
    const w = this.pullWaiter;
    this.pullWaiter = null;
    w?.();
  }

  private async pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    while (this.queue.length === 0 && !this.ended && !this.resetError) {
      await new Promise<void>((r) => (this.pullWaiter = r));
    }
    if (this.queue.length > 0) {
      const chunk = this.queue.shift()!;
      this.queued -= chunk.length;
      controller.enqueue(chunk);
      this.giveCredit(chunk.length);
      return;
    }
    if (this.resetError) controller.error(this.resetError);
    else controller.close();
  }

  private maybeRelease(): void {
    if (this.sentEnd && this.ended) this.host.release(this.id);
  }
}
