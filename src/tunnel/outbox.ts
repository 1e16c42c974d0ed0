/**
 * A session's send side: frames queued in one event-loop turn go out as one transport message
 * (or sooner, once `flushBytes` of payload wait); when the transport reports backpressure,
 * `congested` is the promise writers wait on. PING answers are bounded: at most
 * MAX_PONGS_PER_TURN per turn, and under backpressure only the latest PING is remembered and
 * answered on drain, so a PING flood never grows the queue. No protocol logic beyond that.
 */
import { FrameType, encodeFrames, frameParts, type Frame } from "./frame.ts";

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

/** PONGs queued per event-loop turn at most (a PING flood cannot grow the send queue). */
const MAX_PONGS_PER_TURN = 16;

export class Outbox {
  private out: Frame[] = [];
  private outBytes = 0;
  private flushScheduled = false;
  /** Resolves when the transport drains; null while it takes more. */
  congested: Promise<void> | null = null;
  private pongsThisTurn = 0;
  /** The latest PING that arrived while the transport was congested: answered when it drains. */
  private pendingPong: Uint8Array | null = null;

  constructor(
    private readonly transport: Transport,
    /** True once the session closed: nothing more is sent. */
    private readonly closed: () => boolean,
    private readonly flushBytes = 256 * 1024,
  ) {}

  push(type: number, stream: number, payload: Uint8Array): void {
    this.out.push({ type: type as Frame["type"], stream, payload });
    this.outBytes += payload.length;
    if (this.outBytes >= this.flushBytes) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Answers a PING (its payload is copied only when it must wait for a drain). */
  pong(payload: Uint8Array): void {
    if (this.congested) this.pendingPong = payload.slice(); // a copy: the message is not kept
    else if (this.pongsThisTurn < MAX_PONGS_PER_TURN) {
      this.pongsThisTurn++;
      this.push(FrameType.PONG, 0, payload);
    }
  }

  flush(): void {
    this.flushScheduled = false;
    this.pongsThisTurn = 0;
    if (this.out.length === 0 || this.closed()) return;
    const frames = this.out;
    this.out = [];
    this.outBytes = 0;
    const ok = this.transport.sendParts ? this.transport.sendParts(frameParts(frames)) : this.transport.send(encodeFrames(frames));
    if (!ok && !this.congested) {
      this.congested = this.transport.drained().then(() => {
        this.congested = null;
        const pong = this.pendingPong;
        this.pendingPong = null;
        if (pong) this.push(FrameType.PONG, 0, pong);
      });
    }
  }
}
