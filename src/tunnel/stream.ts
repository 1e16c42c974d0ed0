/**
 * One tunnel stream: a public HTTP request / WebSocket / TCP connection carried over a session.
 * Outbound bytes are sent only against the peer's credit for the stream and for the session;
 * inbound bytes are handed out by a pull-based ReadableStream (inbound.ts) and credit is returned
 * as the consumer pulls — memory per stream stays bounded by the window whatever the body size.
 */
import { FrameType, MAX_FRAME_PAYLOAD, ResetCode, WsFlags, resetPayload, varintPayload, wsClosePayload } from "./frame.ts";
import type { TcpHead } from "./head-binary.ts";
import type { RequestHead, ResponseHead } from "./head.ts";
import { Answer, Fragments, InboundBody } from "./inbound.ts";
import { MAX_WS_MESSAGE, SessionLostError, StreamResetError, type StreamHost } from "./stream-host.ts";
import { StreamWindow } from "./window.ts";

export { MAX_WS_MESSAGE, SessionLostError, StreamResetError, type StreamHost } from "./stream-host.ts";

const EMPTY = new Uint8Array(0);

export class TunnelStream {
  /** Peer credit left for our DATA / WS_MESSAGE bytes. */
  private credit: number;
  private creditWaiters: Array<() => void> | null = null; // made when a writer first waits for credit
  /** Bytes handed to our consumer but not yet returned to the peer as credit. */
  private unacked = 0;
  /** The window we grant this stream (starts at the session's, may grow: window.ts). */
  readonly recv: StreamWindow;
  /** Inbound body bytes counted in the process budget (received, not yet consumed). */
  private held = 0;
  /** Credit the peer still has from us; going below zero is a flow-control violation. */
  private granted: number;
  /** Inbound bytes not yet returned to the session window (returned when consumed, or all at END). */
  private sessionHeld = 0;
  private readonly inbound = new InboundBody((n) => {
    this.unhold(n);
    this.giveCredit(n);
  });
  private ended = false; // peer sent END / WS_CLOSE
  private sentEnd = false;
  private resetError: StreamResetError | null = null;
  private wsParts: Fragments | null = null; // WebSocket streams only, made on the first message
  private wsChain: Promise<void> | null = null; // built on the first queued WebSocket send
  private wsPending = 0;
  private readonly answer = new Answer<ResponseHead>();
  /** Set on TCP streams (v2): no RESPONSE, bytes both ways with FIN each way. */
  tcp?: TcpHead;

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
    this.recv = new StreamWindow(host.window, host.maxWindow);
  }

  /**
   * Inbound body bytes (HTTP streams). Pull-based: credit flows back as it is read. Created on
   * first use: most small responses are taken whole (`takeCompleteBody`) and GETs have no body,
   * so the web stream is never built for them.
   */
  get body(): ReadableStream<Uint8Array> {
    return this.inbound.body;
  }

  /** The inbound body is not wanted: drop what is queued and what comes (credit still flows). */
  discardBody(): void {
    this.inbound.cancel();
  }

  /**
   * The peer's response head (gateway side). Rejects if the stream is reset first. Built on first
   * use: the agent side never asks, and a promise per stream is not free.
   */
  get response(): Promise<ResponseHead> {
    return this.answer.promise;
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
    if (this.resetError) return null;
    return this.inbound.takeAll(maxBytes);
  }

  // ---- outbound ----

  sendOpen(payload: Uint8Array): void {
    this.host.enqueue(FrameType.OPEN, this.id, payload);
  }

  /**
   * Sends the response head. A head over the protocol's limit resets this stream with
   * RESPONSE_HEAD_TOO_LARGE (the gateway answers 502) and returns false; the session is untouched.
   */
  sendResponse(head: ResponseHead): boolean {
    if (this.resetError) return false;
    const payload = this.host.encodeResponse(head);
    if (!payload) {
      this.reset(ResetCode.RESPONSE_HEAD_TOO_LARGE, "The local app's response headers are larger than the tunnel's head limit.");
      return false;
    }
    this.host.enqueue(FrameType.RESPONSE, this.id, payload);
    return true;
  }

  /** Sends body bytes, waiting for credit and for the session's transport to drain. */
  async write(chunk: Uint8Array): Promise<void> {
    await this.sendCredited(FrameType.DATA, chunk, null);
  }

  /**
   * Sends `chunk` as one DATA frame now when credit (stream and session) covers it and the
   * transport is not congested — the common case for a small body — and returns true; false
   * (nothing sent) otherwise: use `write`. No promise either way.
   */
  writeNow(chunk: Uint8Array): boolean {
    const n = chunk.length;
    const host = this.host;
    if (this.resetError || this.sentEnd || n === 0 || n > MAX_FRAME_PAYLOAD || this.credit < n || host.sessionCredit < n || host.writable()) return false;
    this.bytesSent += n;
    this.credit -= n;
    host.spendSession(n);
    host.enqueue(FrameType.DATA, this.id, chunk);
    return true;
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
    const host = this.host;
    if (this.resetError || this.sentEnd || n >= MAX_FRAME_PAYLOAD || this.credit < n || (n === 0 && this.credit <= 0) || host.sessionCredit < n || host.writable()) return false;
    const p = new Uint8Array(n + 1);
    p[0] = (binary ? WsFlags.BINARY : 0) | WsFlags.FIN;
    p.set(data, 1);
    this.bytesSent += n;
    this.credit -= n;
    host.spendSession(n);
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
      while (data.length > 0 && (this.credit <= 0 || this.host.sessionCredit <= 0)) {
        await (this.credit <= 0 ? new Promise<void>((r) => (this.creditWaiters ??= []).push(r)) : this.host.sessionCreditWaiter());
        if (this.resetError) throw this.resetError;
      }
      const congested = this.host.writable();
      if (congested) {
        await congested;
        if (this.resetError) throw this.resetError;
      }
      const limit = wsFlags === null ? MAX_FRAME_PAYLOAD : MAX_FRAME_PAYLOAD - 1;
      const n = Math.min(data.length - off, this.credit, this.host.sessionCredit, limit);
      const part = data.subarray(off, off + n);
      off += n;
      this.bytesSent += n;
      this.credit -= n;
      this.host.spendSession(n);
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
    if (!this.resetError) this.answer.resolve(head); // the first answer (or the reset) stands
  }

  handleData(payload: Uint8Array): void {
    const n = payload.length;
    this.sessionHeld += n;
    if (this.resetError) return this.settleSession(n);
    if (this.ended) return this.afterEnd("DATA");
    if (!this.consumeGrant(n)) return;
    this.bytesReceived += n;
    this.held += n;
    this.host.budget.hold(n);
    this.inbound.push(payload);
  }

  handleEnd(): void {
    if (this.ended) return this.afterEnd("END");
    this.ended = true;
    // Nothing more comes on this stream: what it holds no longer counts against the session
    // window (it is still bounded by the stream's window), so an unread body cannot pin it.
    this.settleSession(this.sessionHeld);
    this.inbound.end();
    this.maybeRelease();
  }

  handleWindow(increment: number): void {
    this.credit += increment;
    const waiters = this.creditWaiters;
    if (waiters === null) return;
    this.creditWaiters = null;
    for (const w of waiters) w();
  }

  handleWsMessage(payload: Uint8Array): void {
    if (payload.length === 0) return;
    const flags = payload[0]!;
    const data = payload.subarray(1);
    this.sessionHeld += data.length;
    if (this.resetError) return this.settleSession(data.length);
    if (this.ended) return this.afterEnd("WS_MESSAGE");
    if (!this.consumeGrant(data.length)) return;
    this.bytesReceived += data.length;
    const parts = (this.wsParts ??= new Fragments());
    if (parts.size + data.length > MAX_WS_MESSAGE) return this.reset(ResetCode.PROTOCOL, `WebSocket message larger than ${MAX_WS_MESSAGE} bytes`);
    // Messages are handed on at once; credit returns at once too, unless the consumer said it
    // is congested (then it returns on resumeWs()).
    if (this.wsHeld) this.heldWsCredit += data.length;
    else this.giveCredit(data.length);
    const msg = parts.add(data, (flags & WsFlags.FIN) !== 0);
    if (msg && this.onWsMessage?.(msg, (flags & WsFlags.BINARY) !== 0) === false) this.wsHeld = true;
  }

  /** The WebSocket consumer drained: return the credit held back since it said it was congested. */
  resumeWs(): void {
    this.wsHeld = false;
    const n = this.heldWsCredit;
    this.heldWsCredit = 0;
    if (n) this.flushCredit(n);
  }

  handleWsClose(code: number, reason: string): void {
    if (this.ended) return this.afterEnd("WS_CLOSE");
    this.ended = true;
    this.settleSession(this.sessionHeld);
    this.onWsClose?.(code, reason);
    this.maybeRelease();
  }

  /** The peer sent on a direction it had closed: a stream-level violation (the session goes on). */
  private afterEnd(what: string): void {
    this.settleSession(this.sessionHeld);
    this.reset(ResetCode.PROTOCOL, `${what} after the peer ended the stream`);
  }

  /** Returns up to `n` held inbound bytes to the session window. */
  private settleSession(n: number): void {
    const k = n < this.sessionHeld ? n : this.sessionHeld;
    if (k <= 0) return;
    this.sessionHeld -= k;
    this.host.returnSession(k);
  }

  handleReset(code: number, reason: string): void {
    this.fail(new StreamResetError(code, reason));
  }

  /** Marks the stream failed locally (session lost, reset) and wakes everyone waiting. */
  fail(err: StreamResetError): void {
    if (this.resetError) return;
    this.resetError = err;
    this.settleSession(this.sessionHeld);
    this.unhold(this.held); // what is still queued is dropped from the count (readers may still drain it)
    this.answer.reject(err);
    this.handleWindow(0);
    this.inbound.fail(err);
    this.onReset?.(err);
    this.host.release(this.id);
  }

  private consumeGrant(n: number): boolean {
    this.granted -= n;
    if (this.granted >= 0) return true;
    this.reset(ResetCode.FLOW_CONTROL, "peer sent past its credit");
    return false;
  }

  /** Returns `n` bytes of credit now (not batched). */
  private flushCredit(n: number): void {
    this.settleSession(n);
    this.unacked += n;
    if (this.ended || this.resetError || this.unacked === 0) return;
    this.host.enqueue(FrameType.WINDOW, this.id, varintPayload(this.unacked));
    this.granted += this.unacked;
    this.unacked = 0;
  }

  private unhold(n: number): void {
    const k = n < this.held ? n : this.held;
    if (k <= 0) return;
    this.held -= k;
    this.host.budget.free(k);
  }

  /** Returns credit in batches (a quarter window, half on a short link: window.ts `batch`); the window may grow or shrink (v2). */
  private giveCredit(n: number): void {
    this.settleSession(n);
    this.unacked += n;
    if (this.unacked < this.recv.batch || this.ended || this.resetError) return;
    const inc = this.recv.grant(this.unacked, this.inbound.queued, this.host, performance.now());
    this.unacked = 0;
    if (inc <= 0) return;
    this.host.enqueue(FrameType.WINDOW, this.id, varintPayload(inc));
    this.granted += inc;
  }

  private maybeRelease(): void {
    if (this.sentEnd && this.ended) this.host.release(this.id);
  }
}
