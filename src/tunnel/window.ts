/**
 * Receive-window tuning (v2, docs/protocol.md "Window growth and memory budgets", issue 17): how
 * large a window a stream grants, and the process-wide budget that bounds what all sessions
 * together may hold. The grant size is the receiver's choice, so none of this changes the wire.
 *
 * A stream's window doubles, at most once per round trip (the session's PING RTT), when the peer
 * ran out of credit (it was waiting on us: the window, not the link, was the limit) while our
 * consumer kept up; it stops at a cap and shrinks back toward its base when the consumer falls
 * behind or the process is under memory pressure. Growth is paid for from the session's budget
 * (its window grows by the same amount) and from the process's. Pure: no timers, no I/O.
 */

const MiB = 1 << 20;
/** Largest window one stream grows to. */
export const DEFAULT_MAX_STREAM_WINDOW = 32 * MiB;
/** Largest session window (the base window plus the growth of its streams). */
export const DEFAULT_MAX_SESSION_WINDOW = 64 * MiB;
/**
 * Under this round trip (ms: loopback, a LAN) an epoch lasts this long instead, whole window or
 * not: the consumption rate is taken over at least this long. Over one sub-ms loopback round
 * trip, a reader that drained a backlog in one go looked like a link moving a whole window per
 * round trip (1 MiB in 0.46 ms), and the window doubled. Round trips this long or longer (any
 * WAN) are measured as before.
 */
export const MIN_EPOCH_MS = 10;

/**
 * What the whole process may hold: `limit` bytes received and not yet consumed by any stream
 * (over it, sessions hold back their session-level credit until readers catch up), and as much
 * window growth granted across all sessions (growth also stops at half the buffered limit).
 */
export class ProcessBudget {
  /** Inbound body bytes held by all streams (received, not yet consumed or dropped). */
  buffered = 0;
  /** Window growth granted beyond base windows, over all sessions. */
  grown = 0;
  /** Most `buffered` and most `grown` seen (for tests and metrics; `resetPeaks()` starts over). */
  peak = 0;
  peakGrown = 0;
  private readonly waiters = new Set<() => void>();

  constructor(public limit: number) {}

  hold(n: number): void {
    this.buffered += n;
    if (this.buffered > this.peak) this.peak = this.buffered;
  }

  free(n: number): void {
    const wasOver = this.over;
    this.buffered -= n;
    if (wasOver && !this.over) for (const w of [...this.waiters]) w();
  }

  /** Over the limit: session-level credit waits. */
  get over(): boolean {
    return this.buffered >= this.limit;
  }

  /** Over half the limit: windows shrink instead of growing. */
  get pressure(): boolean {
    return this.buffered >= this.limit / 2;
  }

  /** Takes `extra` bytes of growth from the budget when there is room. */
  takeGrowth(extra: number): boolean {
    if (this.pressure || this.grown + extra > this.limit) return false;
    this.grown += extra;
    if (this.grown > this.peakGrown) this.peakGrown = this.grown;
    return true;
  }

  giveGrowth(n: number): void {
    this.grown = Math.max(0, this.grown - n);
  }

  resetPeaks(): void {
    this.peak = this.buffered;
    this.peakGrown = this.grown;
  }

  /** Calls `f` each time the process drops back under its limit; returns the unsubscribe. */
  onRoom(f: () => void): () => void {
    this.waiters.add(f);
    return () => this.waiters.delete(f);
  }
}

/** The process's budget (one per process: gateway and agent each have theirs). Tests may change `limit`. */
export const processBudget = new ProcessBudget(64 * MiB);

/** The session's side of growth: the session window grows with its streams, within its cap and the process budget. */
export interface GrowthHost {
  /** Grants `extra` more session window to pay for a stream's growth; false when no room. */
  growSession(extra: number): boolean;
  /** A stream gave `n` bytes of growth back: the session window shrinks by as much. */
  shrinkSession(n: number): void;
  readonly rtt: number;
  readonly budget: ProcessBudget;
}

/** One stream's receive window. */
export class StreamWindow {
  size: number;
  /** Bytes consumed since the epoch began, and when it began. */
  private taken = 0;
  private epoch: number;
  /** The round trip the latest grant saw (0: none yet). */
  private rtt = 0;

  constructor(readonly base: number, readonly cap: number, now = performance.now()) {
    this.size = base;
    this.epoch = now;
  }

  /**
   * Consumed bytes collected before credit goes back: a quarter window; half of it under a
   * `MIN_EPOCH_MS` round trip, where credit is back long before the other half drains. Each
   * return is a WINDOW the peer's sender wakes for: at 2 MiB on loopback, quarter batches cost
   * the 1 GiB upload ~0.2 ms of CPU per MiB more, and the agent ~8 MB more RSS (bench/results/README.md).
   */
  get batch(): number {
    return this.rtt > 0 && this.rtt < MIN_EPOCH_MS ? this.size / 2 : this.size / 4;
  }

  /** Bytes above the base window (given back when the stream ends). */
  get grown(): number {
    return this.size - this.base;
  }

  /**
   * `inc` consumed bytes go back to the peer as credit: returns the increment to grant, with the
   * window's growth added or its shrinking taken off. `queued` is what our consumer has not taken.
   *
   * An epoch ends after one round trip or one whole window consumed, whichever comes first (under
   * a `MIN_EPOCH_MS` round trip: after `MIN_EPOCH_MS`); the
   * bytes consumed per round trip over it estimate the bandwidth-delay product. The window
   * doubles (quadruples when nearly a whole window went per round trip; up to `cap`) when it is
   * under twice that estimate and the consumer kept up (at most a quarter window queued): the
   * window, not the link or the reader, was the limit. It shrinks
   * toward `base` when the consumer falls behind (half the window queued) or the process is
   * under memory pressure.
   */
  grant(inc: number, queued: number, host: GrowthHost, now: number): number {
    this.taken += inc;
    if (this.size > this.base && (queued > this.size / 2 || host.budget.pressure)) {
      const s = Math.min(inc, this.size - this.base);
      this.size -= s;
      host.shrinkSession(s);
      this.restart(now);
      return inc - s;
    }
    if (this.size >= this.cap) return inc;
    const elapsed = now - this.epoch;
    const rtt = host.rtt; // asking measures it (one PING) when no round trip is known yet
    this.rtt = rtt;
    if (rtt <= 0 || (rtt < MIN_EPOCH_MS ? elapsed < MIN_EPOCH_MS : elapsed < rtt && this.taken < this.size)) return inc;
    const perRtt = (this.taken * rtt) / Math.max(elapsed, 0.001);
    this.restart(now);
    if (queued > this.size / 4 || 2 * perRtt <= this.size) return inc;
    // Clearly window-bound (most of a window per round trip): quadruple, so a long link reaches its
    // window in a couple of round trips rather than five; else double.
    const extra = Math.min(perRtt >= (3 * this.size) / 4 ? 3 * this.size : this.size, this.cap - this.size);
    if (!host.growSession(extra)) return inc;
    this.size += extra;
    return inc + extra;
  }

  private restart(now: number): void {
    this.taken = 0;
    this.epoch = now;
  }
}
