/**
 * Session-level flow control (v2, docs/protocol.md "Flow control"): the credit the peer granted
 * us for all streams together, and the credit we granted it. DATA / WS_MESSAGE bytes count on
 * both; WINDOW frames on stream 0 return it. With a v1 peer both sides are unlimited.
 */
export class SessionCredit {
  /** Credit the peer granted us and we have not spent. */
  send = Number.POSITIVE_INFINITY;
  private waiters: Array<() => void> = [];
  /** Credit we granted and the peer has not used yet; below zero is a violation. */
  private granted = Number.POSITIVE_INFINITY;
  private unacked = 0;

  constructor(readonly window: number) {}

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
    if (this.unacked < this.window / 8) return 0;
    const k = this.unacked;
    this.granted += k;
    this.unacked = 0;
    return k;
  }
}
