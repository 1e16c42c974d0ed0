/**
 * A session's in-band liveness and round-trip measurement (docs/protocol.md, "Liveness"): PINGs
 * on stream 0 cross the relay as ordinary messages, so their PONGs prove the far end is there.
 * No timer of its own beyond one per explicit `ping()`: the session's owner calls `check()` on
 * its timer.
 */

/** Payload of liveness PINGs (never registered: their PONG only needs to arrive). */
const LIVENESS_PING = new Uint8Array([0x61, 0x6c, 0x69, 0x76, 0x65, 0x3f, 0x00, 0x00]);

export class Liveness {
  private readonly pings = new Map<string, { resolve: (rtt: number) => void; reject: (e: Error) => void; timer: Timer }>();
  /** Messages received so far (a counter: the cheapest "something arrived" a timer can compare). */
  rx = 0;
  /**
   * The smallest round trip measured (ms; 0 until one was): explicit pings and liveness PINGs.
   * The smallest, not the latest (QUIC's min_rtt, RFC 9002 §5.2): a PONG that came back behind a
   * window of our own bulk data measures that queue, not the path — taken as the round trip, it
   * made windows grow on loopback (bench/results/README.md, "Memory on large uploads (agent)").
   */
  rtt = 0;
  private checkSentAt = 0;
  private rxAtCheck = 0;
  private missed = 0;
  private pingSent = false;

  constructor(private readonly sendPing: (payload: Uint8Array) => void) {}

  /** A round trip with a PING of random payload; rejects after `timeoutMs` without a PONG. */
  ping(timeoutMs: number): Promise<number> {
    const id = crypto.getRandomValues(new Uint8Array(8));
    const key = Buffer.from(id).toString("hex");
    const t0 = performance.now();
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pings.delete(key);
        reject(new Error(`no answer to a tunnel ping within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref?.();
      this.pings.set(key, {
        resolve: () => {
          const ms = performance.now() - t0;
          this.note(ms);
          resolve(ms);
        },
        reject,
        timer,
      });
      this.sendPing(id);
    });
  }

  /** See Session.checkAlive. */
  check(maxMissed: number): boolean {
    if (this.rx !== this.rxAtCheck) {
      this.rxAtCheck = this.rx;
      this.missed = 0;
      this.pingSent = false;
      return true;
    }
    if (this.pingSent) this.missed++;
    if (this.missed >= maxMissed) return false;
    this.pingSent = true;
    this.checkSentAt = performance.now();
    this.sendPing(LIVENESS_PING);
    return true;
  }

  pong(payload: Uint8Array): void {
    if (this.checkSentAt && payload.every((b, i) => b === LIVENESS_PING[i])) {
      this.note(performance.now() - this.checkSentAt);
      this.checkSentAt = 0;
      return;
    }
    if (this.pings.size === 0) return;
    const key = Buffer.from(payload).toString("hex");
    const p = this.pings.get(key);
    if (!p) return;
    clearTimeout(p.timer);
    this.pings.delete(key);
    p.resolve(0);
  }

  private note(ms: number): void {
    const v = ms > 0 ? ms : 0.001; // under the clock's resolution (0 here means "none measured")
    if (this.rtt === 0 || v < this.rtt) this.rtt = v;
  }

  /** The session closed: every pending ping rejects now. */
  close(reason: string): void {
    const lost = new Error(`session closed: ${reason}`);
    for (const p of this.pings.values()) {
      clearTimeout(p.timer);
      p.reject(lost);
    }
    this.pings.clear();
  }
}

/**
 * A few round trips in a row on a new session, while nothing flows yet: the session keeps the
 * smallest (`Liveness.rtt`), which sizes its receive windows (window.ts). Without it the first
 * sample was taken behind a window of bulk data (6–14 ms on loopback instead of < 1 ms) and windows
 * grew to 32 MiB where they should not grow at all (bench/results/README.md, "Memory on large
 * uploads (agent)"). More than one because the first crosses code that has not run yet in every
 * process on the way (2–6 ms on loopback where a warm one takes well under 1 ms).
 */
export async function probeRtt(session: { ping(timeoutMs: number): Promise<number>; readonly isClosed: boolean; readonly ready: Promise<unknown> }, n = 3): Promise<void> {
  if (!(await session.ready.then(() => true, () => false))) return; // no PING before the hellos
  for (let i = 0; i < n && !session.isClosed; i++) await session.ping(10_000).catch(() => {});
}
