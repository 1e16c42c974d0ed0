/**
 * One TCP connection ⇄ one tunnel TCP stream (issue 16), used by both ends: `azhexgate tcp` (the
 * serving side's socket to the target) and `azhexgate connect` (the local client's socket or
 * stdin / stdout). Bytes are copied untouched; each direction's FIN travels on its own (stream
 * END ⇄ socket shutdown), so a client that shuts its write side still gets the whole answer; a
 * socket reset or error resets the stream (code 8, with `resetReason`) and a stream reset
 * terminates the socket. Memory stays bounded: the socket is paused while more than HWM bytes
 * wait for tunnel credit, and the stream is not read while the socket has unsent bytes. Bun
 * 1.4.4 does not call `end` for a FIN that arrives after we shut our write side: it calls `close`
 * without an error, which is therefore a FIN too; only a close with an error is a reset.
 */
import type { Socket } from "bun";
import { ResetCode } from "../tunnel/frame.ts";
import type { StreamResetError, TunnelStream } from "../tunnel/stream.ts";

/** The local end of a bridged connection: a socket or stdin / stdout. */
export interface ByteEnd {
  /** Queues bytes; false when the end's buffer is above its limit (wait for `drained`). */
  write(d: Uint8Array): boolean;
  /** Resolves when the end's write buffer is flushed. */
  drained(): Promise<void>;
  /** Our FIN: no more bytes from us (write side shut). */
  shutdown(): void;
  /** Abrupt end (the peer reset). */
  terminate(): void;
  /** Both directions done cleanly. */
  close(): void;
  pause(): void;
  resume(): void;
}

/** Bytes read from the local end and not yet sent on the tunnel before the end is paused. */
const READ_HWM = 1 << 20;

export interface Bridge {
  /** The local end sent bytes. */
  data(d: Uint8Array): void;
  /** The local end sent FIN. */
  end(): void;
  /** The local end closed or failed; `err` when it was not clean (a reset). */
  closed(err?: Error): void;
  /** Settles when both directions are done or either side reset. */
  readonly done: Promise<void>;
}

export interface BridgeOptions {
  /** The reset reason sent when the local end fails, e.g. "connection reset by localhost:5432 on the serving side". */
  resetReason: (err?: Error) => string;
  /** The peer reset the stream (for the connecting side's stderr). */
  onPeerReset?: (err: StreamResetError) => void;
}

export function bridge(stream: TunnelStream, local: ByteEnd, o: BridgeOptions): Bridge {
  const queue: Uint8Array[] = [];
  let queued = 0;
  let pumping = false;
  let paused = false;
  let localFin = false; // the local end's FIN came
  let sentEnd = false; // …and went on as END
  let gotEnd = false; // the stream's END came and went on as shutdown
  let finished = false;
  const { promise: done, resolve: settle } = Promise.withResolvers<void>();
  const finish = () => {
    if (finished) return;
    finished = true;
    settle();
  };
  const maybeClose = () => {
    if (sentEnd && gotEnd && !finished) {
      local.close();
      finish();
    }
  };
  stream.onReset = (err) => {
    if (finished) return;
    local.terminate();
    o.onPeerReset?.(err);
    finish();
  };

  const pump = async () => {
    if (pumping) return;
    pumping = true;
    try {
      while (queue.length > 0) {
        const c = queue.shift()!;
        queued -= c.length;
        await stream.write(c);
        if (paused && queued < READ_HWM / 2) {
          paused = false;
          local.resume();
        }
      }
      if (localFin && !sentEnd) {
        sentEnd = true;
        stream.end();
        maybeClose();
      }
    } catch {
      // the stream was reset: onReset terminated the local end
    } finally {
      pumping = false;
    }
  };

  // stream → local end
  void (async () => {
    const reader = stream.body.getReader();
    try {
      for (;;) {
        const { done: end, value } = await reader.read();
        if (end) break;
        if (!local.write(value)) await local.drained();
      }
      gotEnd = true;
      local.shutdown();
      maybeClose();
    } catch {
      // reset: handled by onReset
    }
  })();

  return {
    data(d) {
      if (finished || localFin) return;
      const copy = new Uint8Array(d); // the caller may reuse its buffer
      queue.push(copy);
      queued += copy.length;
      if (queued >= READ_HWM && !paused) {
        paused = true;
        local.pause();
      }
      void pump();
    },
    end() {
      localFin = true;
      void pump();
    },
    closed(err) {
      if (finished) return;
      if (err) {
        stream.reset(ResetCode.CONNECTION_RESET, o.resetReason(err));
        finish();
        return;
      }
      // A clean close is a FIN (see above): send what is queued, then END; finished once both ways are.
      localFin = true;
      void pump();
    },
    done,
  };
}

/** A Bun socket as a `ByteEnd`: partial writes queued and flushed on `drain` (call `onDrain` from the socket's drain handler). */
export class SocketEnd implements ByteEnd {
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private waiters: Array<() => void> = [];
  private shutdownWanted = false;
  private gone = false;

  constructor(private readonly sock: Socket<unknown>) {}

  write(d: Uint8Array): boolean {
    if (this.gone) return true;
    if (this.pending.length === 0) {
      const n = this.sock.write(d);
      if (n >= d.length) return true;
      d = d.subarray(Math.max(0, n));
    }
    this.pending.push(d);
    this.pendingBytes += d.length;
    return this.pendingBytes < 256 * 1024;
  }

  drained(): Promise<void> {
    if (this.pending.length === 0 || this.gone) return Promise.resolve();
    return new Promise((r) => this.waiters.push(r));
  }

  onDrain(): void {
    while (this.pending.length > 0 && !this.gone) {
      const d = this.pending[0]!;
      const n = this.sock.write(d);
      if (n < d.length) {
        this.pending[0] = d.subarray(Math.max(0, n));
        this.pendingBytes -= Math.max(0, n);
        return;
      }
      this.pending.shift();
      this.pendingBytes -= d.length;
    }
    if (this.shutdownWanted) this.sock.shutdown();
    this.wake();
  }

  /** The socket closed: wake writers so nothing waits forever. */
  onClose(): void {
    this.gone = true;
    this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const r of w) r();
  }

  shutdown(): void {
    if (this.pending.length > 0) this.shutdownWanted = true;
    else if (!this.gone) this.sock.shutdown();
  }

  terminate(): void {
    this.gone = true;
    this.sock.terminate();
    this.wake();
  }

  close(): void {
    if (this.pending.length > 0) return; // the shutdown after the flush and the peer's FIN close it
    this.sock.end();
  }

  pause(): void {
    this.sock.pause();
  }

  resume(): void {
    this.sock.resume();
  }
}
