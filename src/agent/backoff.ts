/**
 * Reconnect delays: exponential backoff with full jitter (AWS architecture blog, cloudflared):
 * delay = random(0, min(cap, base · 2^attempt)). The sequence starts over once a connection has
 * stayed up for `resetAfterMs`. Pure: time comes in as arguments, randomness is injectable.
 */

export interface BackoffOptions {
  /** First ceiling, ms (default 1 s). */
  baseMs?: number;
  /** Largest ceiling, ms (default 30 s). */
  capMs?: number;
  /** A connection up this long resets the sequence (default 60 s). */
  resetAfterMs?: number;
  /** Uniform in [0, 1) (default Math.random). */
  random?: () => number;
}

/** The jittered delay for `attempt` (0-based): uniform in [0, min(cap, base · 2^attempt)]. */
export function fullJitter(attempt: number, baseMs: number, capMs: number, random: () => number): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 52));
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.round(r * ceiling);
}

export class Backoff {
  readonly baseMs: number;
  readonly capMs: number;
  readonly resetAfterMs: number;
  private readonly random: () => number;
  private attempts = 0;
  private upSince: number | undefined;

  constructor(o: BackoffOptions = {}) {
    this.baseMs = o.baseMs ?? 1000;
    this.capMs = o.capMs ?? 30_000;
    this.resetAfterMs = o.resetAfterMs ?? 60_000;
    this.random = o.random ?? Math.random;
    if (!(this.baseMs > 0) || !(this.capMs >= this.baseMs)) throw new RangeError("backoff needs 0 < baseMs <= capMs");
  }

  /** Failures since the last reset. */
  get attempt(): number {
    return this.attempts;
  }

  /** The connection came up at `now` (ms). */
  succeeded(now: number): void {
    this.upSince = now;
  }

  /**
   * The connection failed (or an attempt failed) at `now`: returns how long to wait before the
   * next attempt. A connection that had been up for `resetAfterMs` starts the sequence over.
   */
  next(now: number): number {
    if (this.upSince !== undefined && now - this.upSince >= this.resetAfterMs) this.attempts = 0;
    this.upSince = undefined;
    return fullJitter(this.attempts++, this.baseMs, this.capMs, this.random);
  }

  reset(): void {
    this.attempts = 0;
    this.upSince = undefined;
  }
}
