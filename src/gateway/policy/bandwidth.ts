/**
 * Per-tunnel bandwidth caps as back-pressure, not errors: one byte bucket per tunnel and direction
 * (shared by all its streams on this gateway instance), refilled at `bytesPerSecond` with one
 * second's worth of burst. `take(n)` resolves once `n` bytes may pass (a chunk larger than the
 * bucket runs it into debt and waits it off), so the reader of a body is simply slowed down and the
 * tunnel's flow control holds the agent back.
 */

export class ByteBucket {
  private tokens: number;
  private at: number;
  constructor(readonly bytesPerSecond: number, private readonly now: () => number = () => performance.now()) {
    this.tokens = bytesPerSecond;
    this.at = now();
  }

  async take(n: number): Promise<void> {
    const t = this.now();
    this.tokens = Math.min(this.bytesPerSecond, this.tokens + ((t - this.at) / 1000) * this.bytesPerSecond);
    this.at = t;
    this.tokens -= n;
    if (this.tokens < 0) await Bun.sleep(Math.ceil((-this.tokens / this.bytesPerSecond) * 1000));
  }
}

export interface Throttle {
  /** Bytes to the agent (request bodies). */
  in(n: number): Promise<void>;
  /** Bytes from the agent (response bodies). */
  out(n: number): Promise<void>;
}

/** Buckets per tunnel; `throttle(id, rate)` is undefined for rate 0 (no cap). */
export class BandwidthLimiter {
  private readonly buckets = new Map<string, { rate: number; in: ByteBucket; out: ByteBucket }>();

  throttle(id: string, bytesPerSecond: number): Throttle | undefined {
    if (!(bytesPerSecond > 0)) return undefined;
    let b = this.buckets.get(id);
    if (!b || b.rate !== bytesPerSecond) {
      if (this.buckets.size >= 100_000) this.buckets.clear();
      this.buckets.set(id, (b = { rate: bytesPerSecond, in: new ByteBucket(bytesPerSecond), out: new ByteBucket(bytesPerSecond) }));
    }
    const { in: i, out: o } = b;
    return { in: (n) => i.take(n), out: (n) => o.take(n) };
  }
}

/** `body` read through `take` (pull-driven: nothing is read ahead of the client). */
export function throttled(body: ReadableStream<Uint8Array>, take: (n: number) => Promise<void>): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>(
    {
      async pull(c) {
        const { done, value } = await reader.read();
        if (done) return c.close();
        await take(value.byteLength);
        c.enqueue(value);
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}
