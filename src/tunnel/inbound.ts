import { concatBytes } from "../net/bytes.ts";

/**
 * A value that arrives once (a response head) or fails, whose promise is built only when someone
 * asks (the agent side never does, and a promise per stream is not free). The first outcome stands.
 */
export class Answer<T> {
  private value: T | undefined;
  private error: Error | null = null;
  private p: Promise<T> | null = null;
  private res: ((v: T) => void) | null = null;
  private rej: ((e: Error) => void) | null = null;

  get promise(): Promise<T> {
    if (!this.p) {
      if (this.value !== undefined) this.p = Promise.resolve(this.value);
      else if (this.error) this.p = Promise.reject(this.error);
      else this.p = new Promise<T>((res, rej) => ((this.res = res), (this.rej = rej)));
      this.p.catch(() => {}); // a failure before anyone awaits must not be an unhandled rejection
    }
    return this.p;
  }

  resolve(v: T): void {
    if (this.value !== undefined || this.error) return;
    this.value = v;
    this.res?.(v);
  }

  reject(e: Error): void {
    if (this.value !== undefined || this.error) return;
    this.error = e;
    this.rej?.(e);
  }
}

/** WebSocket message fragments, joined when the last one (FIN) arrives. */
export class Fragments {
  private parts: Uint8Array[] = [];
  size = 0;

  /** Adds a fragment; returns the whole message on FIN, else null. */
  add(data: Uint8Array, fin: boolean): Uint8Array | null {
    if (!fin) {
      this.parts.push(data);
      this.size += data.length;
      return null;
    }
    if (this.parts.length === 0) return data;
    const msg = new Uint8Array(this.size + data.length);
    let off = 0;
    for (const p of this.parts) {
      msg.set(p, off);
      off += p.length;
    }
    msg.set(data, off);
    this.parts = [];
    this.size = 0;
    return msg;
  }
}

/**
 * A stream's inbound body bytes (HTTP bodies, TCP bytes): queued as they arrive, handed out by a
 * pull-based ReadableStream, and reported through `consumed(n)` as the consumer takes them (or as
 * they are dropped) so the stream can return credit. Memory is bounded by the window the stream
 * grants; this class only keeps the queue.
 */
export class InboundBody {
  private queue: Uint8Array[] = [];
  /** Bytes queued and not yet handed out. */
  queued = 0;
  private pullWaiter: (() => void) | null = null;
  private done = false;
  private error: Error | null = null;
  /** The consumer cancelled the body: bytes are dropped (and reported consumed) from now on. */
  discarding = false;
  private stream: ReadableStream<Uint8Array> | null = null;

  constructor(private readonly consumed: (n: number) => void) {}

  /** The web stream, created on first use (most small responses are taken whole). */
  get body(): ReadableStream<Uint8Array> {
    return (this.stream ??= new ReadableStream<Uint8Array>(
      {
        pull: (controller) => this.pull(controller),
        cancel: () => this.discard(),
      },
      { highWaterMark: 0 },
    ));
  }

  push(chunk: Uint8Array): void {
    if (this.discarding) return this.consumed(chunk.length);
    this.queue.push(chunk);
    this.queued += chunk.length;
    this.wake();
  }

  /** No more bytes will come (the peer's END). */
  end(): void {
    this.done = true;
    this.wake();
  }

  /** The stream failed: readers get `err`. */
  fail(err: Error): void {
    this.error = err;
    this.wake();
  }

  /** The body is not wanted: drop what is queued and what comes. */
  cancel(): void {
    if (this.stream) void this.stream.cancel().catch(() => {});
    else this.discard();
  }

  /** Everything queued, when the whole body is here (see TunnelStream.takeCompleteBody), else null. */
  takeAll(maxBytes: number): Uint8Array | null {
    if (!this.done || this.error || this.discarding || this.queued > maxBytes) return null;
    const parts = this.queue;
    const n = this.queued;
    this.queue = [];
    this.queued = 0;
    this.discarding = true; // the ReadableStream is never read now
    if (n) this.consumed(n);
    return concatBytes(parts, n);
  }

  private discard(): void {
    this.discarding = true;
    const n = this.queued;
    this.queue = [];
    this.queued = 0;
    if (n) this.consumed(n);
  }

  private wake(): void {
    const w = this.pullWaiter;
    this.pullWaiter = null;
    w?.();
  }

  private async pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    while (this.queue.length === 0 && !this.done && !this.error) {
      await new Promise<void>((r) => (this.pullWaiter = r));
    }
    if (this.queue.length > 0) {
      const chunk = this.queue.shift()!;
      this.queued -= chunk.length;
      controller.enqueue(chunk);
      this.consumed(chunk.length);
      return;
    }
    if (this.error) controller.error(this.error);
    else controller.close();
  }
}
