/**
 * A tunnel session: many streams multiplexed over one message transport (an HC WebSocket).
 * Frames queued in one event-loop turn go out as one WebSocket message; writers wait when the
 * transport reports backpressure. The gateway opens streams; the agent receives them.
 *
 * Liveness: each leg of a rendezvous is terminated by the relay, which answers WebSocket pings
 * itself, so `checkAlive()` uses the protocol's in-band PING (liveness.ts), which crosses the
 * relay as an ordinary message (docs/protocol.md, "Liveness").
 *
 * Version 2 (negotiated in the hello, v1 still spoken): binary heads, a session-level window,
 * TCP streams, and the rules in docs/protocol.md "Rules every end enforces" — each violation
 * either closes the session (1002, `protocol error: …`) or resets one stream.
 */
import { FrameType, PING_PAYLOAD, PROTOCOL_VERSIONS, ResetCode, decodeFrames, parseVarints, varintPayload, type Frame } from "./frame.ts";
import { decodeOpenHead, encodeOpenHead, encodeResponseHead, type HeadError, type OpenHead, type TcpHead } from "./head-binary.ts";
import {
  helloMessage, jsonHead, parseHello, parseJsonHead, parseRequestHead, pickVersion, versionMismatch, type Hello, type RequestHead, type ResponseHead,
} from "./head.ts";
import { SessionCredit } from "./credit.ts";
import { DEFAULT_MAX_STREAM_WINDOW, type ProcessBudget } from "./window.ts";
import { deliverToStream } from "./deliver.ts";
import { Liveness } from "./liveness.ts";
import { Outbox, type Transport } from "./outbox.ts";
import { SessionLostError, StreamResetError, TunnelStream, type StreamHost } from "./stream.ts";

export type { Transport } from "./outbox.ts";

export interface SessionOptions {
  role: "gateway" | "agent";
  /** Per-stream window we grant the peer (bytes). Default 2 MiB. */
  window?: number;
  /** v2: session-level window we grant the peer (bytes). Default 16 MiB. */
  sessionWindow?: number;
  /** v2: a stream's window may grow up to this (bytes; default 32 MiB; window.ts). */
  maxWindow?: number;
  /** v2: the session window may grow up to this with its streams' windows (bytes; default 64 MiB). */
  maxSessionWindow?: number;
  /** Protocol versions spoken (default: all this build speaks); `[1]` plays an old peer in tests. */
  versions?: readonly number[];
  features?: string[];
  /** Agent side: a stream the gateway opened. */
  onStream?: (stream: TunnelStream) => void;
  /** Agent side (v2): a TCP stream the gateway opened; without it such OPENs are refused. */
  onTcpStream?: (stream: TunnelStream, head: TcpHead) => void;
  /** The session ended (transport closed or protocol error). */
  onClose?: (reason: string) => void;
  /** A stream finished (ended both ways, reset, or lost with the session). */
  onStreamEnd?: (stream: TunnelStream) => void;
  /** Flush queued frames once this many payload bytes are waiting, without waiting for the turn to end. */
  flushBytes?: number;
}

export const DEFAULT_WINDOW = 2 << 20;
export const DEFAULT_SESSION_WINDOW = 16 << 20;

/** The session's hello failed: no common protocol version (the message says who must upgrade). */
export class ProtocolMismatchError extends Error {
  override readonly name = "ProtocolMismatchError";
}

export class Session implements StreamHost {
  readonly window: number;
  readonly sessionWindow: number;
  /** The negotiated protocol version (0 until the peer's hello arrived). */
  version = 0;
  /** How far a stream's window may grow (v2; with a v1 peer, `window`: no growth). */
  maxWindow: number;
  readonly ready: Promise<Hello>;
  private peer: Hello | null = null;
  private readyResolve!: (h: Hello) => void;
  private readyReject!: (e: Error) => void;
  private readonly streams = new Map<number, TunnelStream>();
  private readonly outbox: Outbox;
  private nextId = 1;
  /** Agent side: the highest stream id the peer opened (ids must increase). */
  private peerHighest = 0;
  private closed: string | null = null;
  private goneAway = false;
  private readonly versions: readonly number[];
  private readonly credit: SessionCredit;
  private readonly unsubscribeRoom: () => void;
  private readonly liveness = new Liveness((p) => this.enqueue(FrameType.PING, 0, p));
  private rttProbed = false;

  constructor(private readonly transport: Transport, private readonly opts: SessionOptions) {
    this.outbox = new Outbox(transport, () => this.closed !== null, opts.flushBytes);
    this.window = opts.window ?? DEFAULT_WINDOW;
    this.sessionWindow = opts.sessionWindow ?? DEFAULT_SESSION_WINDOW;
    this.credit = new SessionCredit(this.sessionWindow, opts.maxSessionWindow);
    this.unsubscribeRoom = this.credit.budget.onRoom(() => this.returnSession(0));
    this.maxWindow = this.window;
    this.versions = opts.versions ?? PROTOCOL_VERSIONS;
    this.ready = new Promise<Hello>((res, rej) => {
      this.readyResolve = res;
      this.readyReject = rej;
    });
    this.ready.catch(() => {});
    const v2 = this.versions.includes(2);
    const hello: Hello = { azhexgate: Math.min(...this.versions), versions: [...this.versions], role: opts.role, features: opts.features ?? (v2 && opts.onTcpStream ? ["ws", "tcp"] : ["ws"]), window: this.window };
    if (v2) hello.sessionWindow = this.sessionWindow;
    transport.send(helloMessage(hello));
  }

  get activeStreams(): number {
    return this.streams.size;
  }

  get isClosed(): boolean {
    return this.closed !== null;
  }

  /** True when this session may take a new stream. */
  get acceptsStreams(): boolean {
    return !this.closed && !this.goneAway;
  }

  /**
   * Gateway side: opens a stream carrying `head`. Waits for the peer's hello first. A head over
   * the limit fails with REQUEST_HEAD_TOO_LARGE before any stream is opened (the gateway answers 431).
   */
  open(head: RequestHead): Promise<TunnelStream> {
    // Once the hello is in (every request but a new session's first), no async step is needed.
    if (this.peer) {
      try {
        return Promise.resolve(this.openNow(head, this.peer));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    return this.ready.then((peer) => this.openNow(head, peer));
  }

  private openNow(head: RequestHead, peer: Hello): TunnelStream {
    if (!this.acceptsStreams) throw new StreamResetError(ResetCode.REFUSED, "session is closing");
    const payload = this.encodeOpen(head);
    if (!payload) throw new StreamResetError(ResetCode.REQUEST_HEAD_TOO_LARGE, "The request's headers are larger than the tunnel's head limit.");
    const stream = new TunnelStream(this, this.nextId++, peer.window);
    this.streams.set(stream.id, stream);
    stream.sendOpen(payload);
    return stream;
  }

  /** Opens a TCP stream (v2, issue 16); `target` is a label for the agent's logs. */
  async openTcp(target = ""): Promise<TunnelStream> {
    const peer = await this.ready;
    if (this.version < 2) throw new StreamResetError(ResetCode.REFUSED, "The agent speaks tunnel protocol 1, which has no TCP streams: upgrade azhexgate on the agent.");
    if (!peer.features.includes("tcp")) throw new StreamResetError(ResetCode.REFUSED, "The agent does not serve TCP streams.");
    if (!this.acceptsStreams) throw new StreamResetError(ResetCode.REFUSED, "session is closing");
    const head: TcpHead = { kind: "tcp", target };
    const payload = encodeOpenHead(head);
    if (!payload) throw new StreamResetError(ResetCode.REQUEST_HEAD_TOO_LARGE, "TCP target label too long");
    const stream = new TunnelStream(this, this.nextId++, peer.window);
    stream.tcp = head;
    this.streams.set(stream.id, stream);
    stream.sendOpen(payload);
    return stream;
  }

  /**
   * Measures a round trip with an in-band PING. Rejects when no PONG comes within `timeoutMs`
   * (default 10 s) or the session closes first; either way the pending entry is dropped.
   */
  ping(timeoutMs = 10_000): Promise<number> {
    if (this.closed) return Promise.reject(new Error(`session closed: ${this.closed}`));
    return this.liveness.ping(timeoutMs);
  }

  /**
   * One liveness check, called by the session's owner on a timer (no timer here, none per
   * request). When something arrived since the last check the session is alive; otherwise it
   * sends an in-band PING (whose PONG counts as "something" at the next check). Returns false
   * once `maxMissed` checks in a row found nothing at all: the owner should evict the session.
   */
  checkAlive(maxMissed = 2): boolean {
    return !this.closed && this.liveness.check(maxMissed);
  }

  /**
   * No new streams from either side; existing streams finish. `lastStream` is the highest stream
   * the peer opened that we will process (the gateway: 0, the agent never opens streams).
   */
  goAway(code = 0): void {
    this.goneAway = true;
    this.enqueue(FrameType.GOAWAY, 0, varintPayload(this.peerHighest, code));
  }

  // ---- StreamHost ----

  enqueue(type: number, stream: number, payload: Uint8Array): void {
    if (!this.closed) this.outbox.push(type, stream, payload);
  }

  writable(): Promise<void> | null {
    return this.outbox.congested;
  }

  /** The latest round trip; the first ask (a stream moved a whole window) sends one PING to measure it. */
  get rtt(): number {
    if (this.liveness.rtt === 0 && !this.rttProbed && this.version >= 2 && !this.closed) {
      this.rttProbed = true;
      void this.liveness.ping(10_000).catch(() => {});
    }
    return this.liveness.rtt;
  }

  /** Session credit the peer granted us and we have not spent (Infinity with a v1 peer). */
  get sessionCredit(): number {
    return this.credit.send;
  }

  spendSession(n: number): void {
    this.credit.send -= n;
  }

  sessionCreditWaiter(): Promise<void> {
    return this.closed ? Promise.resolve() : this.credit.waiter();
  }

  returnSession(n: number): void {
    const k = n ? this.credit.release(n) : this.credit.flushHeld();
    if (k) this.enqueue(FrameType.WINDOW, 0, varintPayload(k));
  }

  get budget(): ProcessBudget {
    return this.credit.budget;
  }

  growSession(extra: number): boolean {
    if (this.closed || !this.credit.grow(extra)) return false;
    this.enqueue(FrameType.WINDOW, 0, varintPayload(extra));
    return true;
  }

  shrinkSession(n: number): void {
    this.credit.shrink(n);
  }

  encodeResponse(head: ResponseHead): Uint8Array | null {
    return this.version >= 2 ? encodeResponseHead(head) : jsonHead(head);
  }

  private encodeOpen(head: RequestHead): Uint8Array | null {
    return this.version >= 2 ? encodeOpenHead(head) : jsonHead(head);
  }

  release(id: number): void {
    const s = this.streams.get(id);
    if (!s) return;
    this.streams.delete(id);
    this.credit.shrink(s.recv.grown); // its growth goes back to the session and process budgets
    this.opts.onStreamEnd?.(s);
  }

  // ---- transport events ----

  handleMessage(data: Uint8Array | string): void {
    if (this.closed) return;
    this.liveness.rx++;
    if (typeof data === "string") {
      if (this.peer) return this.fatal("unexpected text message after hello");
      const hello = parseHello(data);
      if ("error" in hello) return this.fatal(hello.error, 1002);
      const version = pickVersion(this.versions, hello.versions);
      if (version === null) {
        const msg = versionMismatch(this.versions, this.opts.role, hello);
        this.readyReject(new ProtocolMismatchError(msg));
        return this.close(1002, msg);
      }
      this.version = version;
      this.peer = hello;
      if (version >= 2) {
        this.credit.start(hello.sessionWindow);
        this.maxWindow = Math.max(this.window, this.opts.maxWindow ?? DEFAULT_MAX_STREAM_WINDOW);
      }
      this.readyResolve(hello);
      return;
    }
    if (!this.peer) return this.fatal("binary message before hello");
    const r = decodeFrames(data);
    if ("error" in r) return this.fatal(r.error);
    for (const f of r.frames) {
      this.handleFrame(f);
      if (this.closed) return;
    }
  }

  handleClose(reason: string): void {
    if (this.closed) return;
    this.closed = reason;
    this.readyReject(new Error(reason));
    const err = new SessionLostError(reason);
    for (const s of [...this.streams.values()]) s.fail(err);
    this.streams.clear();
    this.credit.wake();
    this.credit.close();
    this.unsubscribeRoom();
    this.liveness.close(reason);
    this.opts.onClose?.(reason);
  }

  close(code = 1000, reason = "session closed"): void {
    this.outbox.flush();
    this.transport.close(code, reason);
    this.handleClose(reason);
  }

  private handleFrame(f: Frame): void {
    const id = f.stream;
    const t = f.type;
    if (t >= FrameType.PING) {
      if (id !== 0) return this.fatal(`frame type ${t} on stream ${id} (stream 0 only)`);
      return this.handleSessionFrame(f);
    }
    if (id === 0) {
      if (t !== FrameType.WINDOW) return this.fatal(`frame type ${t} on stream 0`);
      const v = parseVarints(f.payload, 1);
      if (!v || v[0] === 0) return this.fatal("malformed window frame");
      return this.credit.grant(v[0]!);
    }
    if (t === FrameType.OPEN) return this.handleOpen(f);
    // Body bytes count against the session window whether or not their stream is still open.
    const n = t === FrameType.DATA ? f.payload.length : t === FrameType.WS_MESSAGE && f.payload.length ? f.payload.length - 1 : 0;
    if (n && !this.credit.receive(n)) return this.fatal("peer sent past the session window");
    const s = this.streams.get(id);
    if (!s) {
      const highest = this.opts.role === "gateway" ? this.nextId - 1 : this.peerHighest;
      if (id > highest) return this.fatal(`frame for stream ${id}, which was never opened`);
      if (n) this.returnSession(n); // a closed stream: the bytes may have been in flight
      return;
    }
    const bad = deliverToStream(s, f, this.version);
    if (bad) this.fatal(bad);
  }

  private handleOpen(f: Frame): void {
    const id = f.stream;
    if (this.opts.role !== "agent") return this.fatal("only the gateway opens streams");
    if (id <= this.peerHighest) return this.fatal(`stream id ${id} reused or not increasing (highest so far ${this.peerHighest})`);
    this.peerHighest = id;
    const head: OpenHead | HeadError = this.version >= 2 ? decodeOpenHead(f.payload) : parseJsonHead(f.payload, parseRequestHead);
    const stream = new TunnelStream(this, id, this.peer!.window, "error" in head || head.kind === "tcp" ? undefined : head);
    if ("error" in head) return stream.reset(head.tooLarge ? ResetCode.REQUEST_HEAD_TOO_LARGE : ResetCode.REFUSED, head.error);
    if (this.goneAway) return stream.reset(ResetCode.REFUSED, "not accepting streams: the session is going away");
    if (head.kind === "tcp") {
      if (!this.opts.onTcpStream) return stream.reset(ResetCode.REFUSED, "this end does not serve TCP streams");
      stream.tcp = head;
      this.streams.set(id, stream);
      return this.opts.onTcpStream(stream, head);
    }
    if (!this.opts.onStream) return stream.reset(ResetCode.REFUSED, "not accepting streams");
    this.streams.set(id, stream);
    this.opts.onStream(stream);
  }

  private handleSessionFrame(f: Frame): void {
    switch (f.type) {
      case FrameType.PING:
        if (f.payload.length !== PING_PAYLOAD) return this.fatal(`PING payload of ${f.payload.length} bytes (must be ${PING_PAYLOAD})`);
        // Bounded answers (outbox.ts): a PING flood never grows the send queue.
        return this.outbox.pong(f.payload);
      case FrameType.PONG: {
        if (f.payload.length !== PING_PAYLOAD) return this.fatal(`PONG payload of ${f.payload.length} bytes (must be ${PING_PAYLOAD})`);
        return this.liveness.pong(f.payload);
      }
      case FrameType.GOAWAY: {
        const v = parseVarints(f.payload, 2);
        if (!v) return this.fatal("malformed goaway frame");
        this.goneAway = true;
        // v2: streams we opened above the peer's last stream were not processed → REFUSED (retry
        // elsewhere). A v1 peer's lastStream means something else: its streams all finish.
        if (this.version >= 2 && this.opts.role === "gateway") {
          const refused = new StreamResetError(ResetCode.REFUSED, "not processed: the agent is going away");
          for (const s of [...this.streams.values()]) if (s.id > v[0]!) s.fail(refused);
        }
        return;
      }
    }
  }

  private fatal(reason: string, code = 1002): void {
    this.close(code, `protocol error: ${reason}`);
  }
}
