import { DEFAULT_MAX_SESSION_WINDOW, processBudget, type ProcessBudget } from "./window.ts";

/**
 * Session-level flow control (v2, docs/protocol.md "Flow control"): the credit the peer granted
 * us for all streams together, and the credit we granted it. DATA / WS_MESSAGE bytes count on
 * both; WINDOW frames on stream 0 return it. With a v1 peer both sides are unlimited.
 * The window we grant grows with the streams' windows (window.ts) up to `max`, and returns are
 * held while the process is over its buffered-bytes budget.
 */
export class SessionCredit {
  /** Credit the peer granted us and we have not spent. */
  send = Number.POSITIVE_INFINITY;
  private waiters: Array<() => void> = [];
  /** Credit we granted and the peer has not used yet; below zero is a violation. */
  private granted = Number.POSITIVE_INFINITY;
  private unacked = 0;
  /** The session window we grant now: `window` plus the growth of our streams. */
  size: number;
  /** Bytes of shrinking not yet taken off a return. */
  private debt = 0;

  constructor(readonly window: number, readonly max = Math.max(window, DEFAULT_MAX_SESSION_WINDOW), readonly budget: ProcessBudget = processBudget) {
    this.size = window;
  }

  /** v2 negotiated: our window starts counting; `peerWindow` is what the peer's hello granted. */
  start(peerWindow: number | undefined): void {
    this.granted = this.window;
    if (peerWindow) this.send = peerWindow;
  }

  /** A WINDOW on stream 0 arrived. */
  grant(increment: number): void {
    this.send += increment;
    this.wake();
  }

  waiter(): Promise<void> {
    if (this.send > 0) return Promise.resolve();
    return new Promise<void>((r) => this.waiters.push(r));
  }

  wake(): void {
    const w = this.waiters;
    if (!w.length) return;
    this.waiters = [];
    for (const f of w) f();
  }

  /** `n` body bytes arrived; false when the peer sent past the session window. */
  receive(n: number): boolean {
    this.granted -= n;
    return this.granted >= 0;
  }

  /**
   * `n` received bytes were consumed or dropped; returns the increment to send now in a WINDOW on
   * stream 0 (batched: at least an eighth of the window at a time), or 0.
   */
  release(n: number): number {
    if (this.granted === Number.POSITIVE_INFINITY) return 0;
    this.unacked += n;
    if (this.unacked < this.size / 8) return 0;
    return this.flushHeld();
  }

  /** Returns what `release` held back (batching, process budget), now that there is room; or 0. */
  flushHeld(): number {
    if (this.unacked === 0 || this.budget.over || this.granted === Number.POSITIVE_INFINITY) return 0;
    const d = Math.min(this.debt, this.unacked);
    this.debt -= d;
    const k = this.unacked - d;
    this.unacked = 0;
    this.granted += k;
    return k;
  }

  /** A stream's window grows by `extra`: the session window grows as much (returns false when over `max` or the process budget). */
  grow(extra: number): boolean {
    if (this.granted === Number.POSITIVE_INFINITY || this.size + extra > this.max || !this.budget.takeGrowth(extra)) return false;
    this.size += extra;
    this.granted += extra;
    return true;
  }

  /** A stream gave `n` bytes of growth back: later returns are smaller by as much. */
  shrink(n: number): void {
    if (n <= 0 || this.granted === Number.POSITIVE_INFINITY) return;
    this.size -= n;
    this.debt += n;
    this.budget.giveGrowth(n);
  }

  /** The session closed: its growth goes back to the process. */
  close(): void {
    if (this.granted !== Number.POSITIVE_INFINITY) this.budget.giveGrowth(this.size - this.window);
    this.size = this.window;
  }
}
