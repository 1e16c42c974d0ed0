/**
 * A tunnel session: many streams multiplexed over one message transport (an HC WebSocket).
 * Frames queued in one event-loop turn go out as one WebSocket message; writers wait when the
 * transport reports backpressure. The gateway opens streams; the agent receives them.
 *
 * Liveness: whether the relay forwards WebSocket pings between the two legs of a rendezvous is
 * undocumented (each leg is terminated by the relay, which answers pings itself), so a leg that
 * a middlebox silently dropped looks healthy at the WebSocket level. `checkAlive()` uses the
 * protocol's in-band PING instead, which crosses the relay as an ordinary message: the owner
 * calls it on a timer, and a session that heard nothing at all for `maxMissed` calls in a row
 * is dead (see docs/protocol.md, "Liveness").
 */
import {
  FrameType, PROTOCOL_VERSION, ResetCode, decodeFrames, encodeFrames, frameParts, jsonPayload, parseJsonPayload,
  parseReset, parseVarints, parseWsClose, varintPayload, type Frame,
} from "./frame.ts";
import { helloMessage, parseHello, parseRequestHead, parseResponseHead, type Hello, type RequestHead } from "./head.ts";
import { StreamResetError, TunnelStream, type StreamHost } from "./stream.ts";

/** The message transport under a session (our WebSocket client or a Bun server socket). */
export interface Transport {
  /** Sends one message; false when the transport is over its high-water mark. */
  send(data: Uint8Array | string): boolean;
  /** Optional gather-send of one binary message (saves a copy of every payload). */
  sendParts?(parts: readonly Uint8Array[]): boolean;
  /** Resolves when the transport can take more. */
  drained(): Promise<void>;
  close(code?: number, reason?: string): void;
}

export interface SessionOptions {
  role: "gateway" | "agent";
  /** Per-stream window we grant the peer (bytes). Default 2 MiB. */
  window?: number;
  features?: string[];
  /** Agent side: a stream the gateway opened. */
  onStream?: (stream: TunnelStream) => void;
  /** The session ended (transport closed or protocol error). */
  onClose?: (reason: string) => void;
  /** A stream finished (ended both ways, reset, or lost with the session). */
  onStreamEnd?: (stream: TunnelStream) => void;
  /** Flush queued frames once this many payload bytes are waiting, without waiting for the turn to end. */
  flushBytes?: number;
}

export const DEFAULT_WINDOW = 2 << 20;

/** Payload of liveness PINGs (never registered: their PONG only needs to arrive). */
const LIVENESS_PING = new Uint8Array([0x61, 0x6c, 0x69, 0x76, 0x65, 0x3f, 0x00, 0x00]);

export class Session implements StreamHost {
  readonly window: number;
  readonly ready: Promise<Hello>;
  private peer: Hello | null = null;
  private readyResolve!: (h: Hello) => void;
  private readyReject!: (e: Error) => void;
  private readonly streams = new Map<number, TunnelStream>();
  private out: Frame[] = [];
  private outBytes = 0;
  private flushScheduled = false;
  private congested: Promise<void> | null = null;
  private nextId = 1;
  private closed: string | null = null;
  private goneAway = false;
  private readonly pings = new Map<string, { resolve: (rtt: number) => void; reject: (e: Error) => void; timer: Timer }>();
  /** Messages received so far (a counter: the cheapest "something arrived" a timer can compare). */
  private rx = 0;
  private rxAtCheck = 0;
  private missed = 0;
  private pingSent = false;

  constructor(private readonly transport: Transport, private readonly opts: SessionOptions) {
    this.window = opts.window ?? DEFAULT_WINDOW;
    this.ready = new Promise<Hello>((res, rej) => {
      this.readyResolve = res;
      this.readyReject = rej;
    });
    this.ready.catch(() => {});
    transport.send(helloMessage({ azhexgate: PROTOCOL_VERSION, versions: [PROTOCOL_VERSION], role: opts.role, features: opts.features ?? ["ws"], window: this.window }));
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

  /** Gateway side: opens a stream carrying `head`. Waits for the peer's hello first. */
  async open(head: RequestHead): Promise<TunnelStream> {
    const peer = await this.ready;
    if (!this.acceptsStreams) throw new StreamResetError(ResetCode.REFUSED, "session is closing");
    const stream = new TunnelStream(this, this.nextId++, peer.window);
    this.streams.set(stream.id, stream);
    stream.sendOpen(jsonPayload(head));
    return stream;
  }

  /**
   * Measures a round trip with an in-band PING. Rejects when no PONG comes within `timeoutMs`
   * (default 10 s) or the session closes first; either way the pending entry is dropped.
   */
  ping(timeoutMs = 10_000): Promise<number> {
    if (this.closed) return Promise.reject(new Error(`session closed: ${this.closed}`));
    const id = crypto.getRandomValues(new Uint8Array(8));
    const key = Buffer.from(id).toString("hex");
    const t0 = performance.now();
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pings.delete(key);
        reject(new Error(`no answer to a tunnel ping within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref?.();
      this.pings.set(key, { resolve: () => resolve(performance.now() - t0), reject, timer });
      this.enqueue(FrameType.PING, 0, id);
    });
  }

  /**
   * One liveness check, called by the session's owner on a timer (no timer here, none per
   * request). When something arrived since the last check the session is alive; otherwise it
   * sends an in-band PING (whose PONG counts as "something" at the next check). Returns false
   * once `maxMissed` checks in a row found nothing at all: the owner should evict the session.
   */
  checkAlive(maxMissed = 2): boolean {
    if (this.closed) return false;
    if (this.rx !== this.rxAtCheck) {
      this.rxAtCheck = this.rx;
      this.missed = 0;
      this.pingSent = false;
      return true;
    }
    if (this.pingSent) this.missed++;
    if (this.missed >= maxMissed) return false;
    this.pingSent = true;
    this.enqueue(FrameType.PING, 0, LIVENESS_PING);
    return true;
  }

  /** No new streams from either side; existing streams finish. */
  goAway(code = 0): void {
    this.goneAway = true;
    this.enqueue(FrameType.GOAWAY, 0, varintPayload(this.nextId - 1, code));
  }

  // ---- StreamHost ----

  enqueue(type: number, stream: number, payload: Uint8Array): void {
    if (this.closed) return;
    this.out.push({ type: type as Frame["type"], stream, payload });
    this.outBytes += payload.length;
    if (this.outBytes >= (this.opts.flushBytes ?? 256 * 1024)) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  writable(): Promise<void> | null {
    return this.congested;
  }

  release(id: number): void {
    const s = this.streams.get(id);
    if (!s) return;
    this.streams.delete(id);
    this.opts.onStreamEnd?.(s);
  }

  // ---- transport events ----

  handleMessage(data: Uint8Array | string): void {
    if (this.closed) return;
    this.rx++;
    if (typeof data === "string") {
      if (this.peer) return this.fatal("unexpected text message after hello");
      const hello = parseHello(data);
      if ("error" in hello) return this.fatal(hello.error, 1002);
      this.peer = hello;
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
    const err = new StreamResetError(ResetCode.INTERNAL, `tunnel session lost: ${reason}`);
    for (const s of [...this.streams.values()]) s.fail(err);
    this.streams.clear();
    const lost = new Error(`session closed: ${reason}`);
    for (const p of this.pings.values()) {
      clearTimeout(p.timer);
      p.reject(lost);
    }
    this.pings.clear();
    this.opts.onClose?.(reason);
  }

  close(code = 1000, reason = "session closed"): void {
    this.flush();
    this.transport.close(code, reason);
    this.handleClose(reason);
  }

  private handleFrame(f: Frame): void {
    const s = this.streams.get(f.stream);
    switch (f.type) {
      case FrameType.OPEN: {
        if (this.opts.role !== "agent") return this.fatal("only the gateway opens streams");
        if (s || f.stream === 0) return this.fatal("stream id reused");
        const head = parseRequestHead(parseJsonPayload(f.payload));
        const stream = new TunnelStream(this, f.stream, this.peer!.window, "error" in head ? undefined : head);
        if ("error" in head || this.goneAway || !this.opts.onStream) {
          stream.reset(ResetCode.REFUSED, "error" in head ? head.error : "not accepting streams");
          return;
        }
        this.streams.set(f.stream, stream);
        this.opts.onStream(stream);
        return;
      }
      case FrameType.RESPONSE: {
        if (!s) return;
        const head = parseResponseHead(parseJsonPayload(f.payload));
        if ("error" in head) s.reset(ResetCode.PROTOCOL, head.error);
        else s.handleResponse(head);
        return;
      }
      case FrameType.DATA:
        return s?.handleData(f.payload);
      case FrameType.END:
        return s?.handleEnd();
      case FrameType.RESET: {
        const r = parseReset(f.payload) ?? { code: ResetCode.PROTOCOL, reason: "malformed reset" };
        return s?.handleReset(r.code, r.reason);
      }
      case FrameType.WINDOW: {
        const v = parseVarints(f.payload, 1);
        if (!v) return this.fatal("malformed window frame");
        return s?.handleWindow(v[0]!);
      }
      case FrameType.WS_MESSAGE:
        return s?.handleWsMessage(f.payload);
      case FrameType.WS_CLOSE: {
        const c = parseWsClose(f.payload) ?? { code: 1005, reason: "" };
        return s?.handleWsClose(c.code, c.reason);
      }
      case FrameType.PING:
        return this.enqueue(FrameType.PONG, 0, f.payload);
      case FrameType.PONG: {
        if (this.pings.size === 0) return;
        const key = Buffer.from(f.payload).toString("hex");
        const p = this.pings.get(key);
        if (!p) return;
        clearTimeout(p.timer);
        this.pings.delete(key);
        p.resolve(0);
        return;
      }
      case FrameType.GOAWAY:
        this.goneAway = true;
        return;
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.out.length === 0 || this.closed) return;
    const frames = this.out;
    this.out = [];
    this.outBytes = 0;
    const ok = this.transport.sendParts ? this.transport.sendParts(frameParts(frames)) : this.transport.send(encodeFrames(frames));
    if (!ok && !this.congested) {
      this.congested = this.transport.drained().then(() => {
        this.congested = null;
      });
    }
  }

  private fatal(reason: string, code = 1002): void {
    this.close(code, `protocol error: ${reason}`);
  }
}
