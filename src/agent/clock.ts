/**
 * Time, injected: the supervisor reads the wall clock and schedules timers only through a
 * `Clock`, so its tests drive time by hand and never sleep. `realClock` is the platform;
 * `ManualClock` is the test double (`advance` fires due timers in order, `jump` moves the
 * wall clock alone, as a laptop waking from sleep does).
 */

/** An opaque timer handle. */
export type TimerHandle = object;

export interface Clock {
  /** Wall-clock time, ms since the epoch. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle | undefined): void;
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, Math.max(0, Math.min(ms, 2 ** 31 - 1))) as unknown as TimerHandle,
  clearTimeout: (h) => {
    if (h !== undefined) clearTimeout(h as unknown as Timer);
  },
};

interface ManualTimer {
  due: number;
  seq: number;
  fn: () => void;
}

export class ManualClock implements Clock {
  private time: number;
  private seq = 0;
  private readonly timers = new Set<ManualTimer>();

  constructor(start = 0) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const t: ManualTimer = { due: this.time + Math.max(0, ms), seq: this.seq++, fn };
    this.timers.add(t);
    return t;
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    if (handle) this.timers.delete(handle as ManualTimer);
  }

  /** Timers not yet fired. */
  get pending(): number {
    return this.timers.size;
  }

  /** Due time of the earliest pending timer, if any. */
  get nextDue(): number | undefined {
    return this.earliest()?.due;
  }

  /**
   * Moves time forward by `ms`, firing every timer that falls due, in due order (ties in the
   * order they were set); timers set by those callbacks fire too when they fall in the window.
   */
  advance(ms: number): void {
    const end = this.time + Math.max(0, ms);
    for (let guard = 0; guard < 100_000; guard++) {
      const t = this.earliest();
      if (!t || t.due > end) break;
      this.timers.delete(t);
      this.time = Math.max(this.time, t.due);
      t.fn();
    }
    this.time = end;
  }

  /** Moves the wall clock without firing anything (sleep / wake, NTP step). */
  jump(ms: number): void {
    this.time += ms;
  }

  private earliest(): ManualTimer | undefined {
    let best: ManualTimer | undefined;
    for (const t of this.timers) if (!best || t.due < best.due || (t.due === best.due && t.seq < best.seq)) best = t;
    return best;
  }
}
