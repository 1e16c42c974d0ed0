/**
 * The agent's tunnel sessions: each accepted rendezvous becomes a `Session` whose streams go to
 * the local origin. Outlives any one control channel (a rendezvous survives its listener), so a
 * reconnecting supervisor keeps serving in-flight streams. Graceful stop: GOAWAY every session
 * (the gateway routes nothing new there), wait for in-flight streams up to a grace period, close.
 *
 * Liveness, as the gateway's pool does it: every `pingMs` a session that received nothing since
 * the last check gets an in-band tunnel PING; one that misses `maxMissedPings` in a row is closed
 * (its streams fail, their origin requests are aborted). A rendezvous a middlebox dropped
 * silently would otherwise hold its streams, and the agent's memory, forever.
 */
import type { HybridConnectionListener } from "../hc/listener.ts";
import type { AcceptMessage } from "../hc/messages.ts";
import { Session } from "../tunnel/session.ts";
import { probeRtt } from "../tunnel/liveness.ts";
import type { TunnelStream } from "../tunnel/stream.ts";
import type { WsConnection } from "../ws/client.ts";
import { type Clock, realClock, type TimerHandle } from "./clock.ts";
import { forward, type ForwardOptions } from "./forward.ts";
import { forwardTcp, type TcpTarget } from "./forward-tcp.ts";
import { ResetCode } from "../tunnel/frame.ts";

export interface SessionsOptions extends ForwardOptions {
  /** Per-stream window granted to the gateway (default 2 MiB). */
  window?: number;
  clock?: Clock;
  /** Liveness check interval (real time; default 10 s; 0 = off). */
  pingMs?: number;
  /** Close a session after this many unanswered liveness PINGs in a row (default 2). */
  maxMissedPings?: number;
  /** A session was closed because it stopped answering. */
  onEvict?: (inFlight: number) => void;
  /** Tunnel protocol versions spoken (default: all this build speaks). */
  protocolVersions?: readonly number[];
  /** A TCP tunnel (`azhexgate tcp`): TCP streams go here, HTTP streams are refused. */
  tcpTarget?: TcpTarget;
}

/** How often a drain looks at the in-flight count. */
const DRAIN_POLL_MS = 25;

export class TunnelSessions {
  private readonly set = new Set<Session>();
  private readonly clock: Clock;
  private goneAway = false;
  private shut = false;
  private cutting = false;
  private cutDrain: (() => void) | null = null;
  private pinger: Timer | null = null;

  constructor(private readonly o: SessionsOptions) {
    this.clock = o.clock ?? realClock;
  }

  /** Open sessions (one per gateway pool connection). */
  get sessions(): ReadonlySet<Session> {
    return this.set;
  }

  /** Streams in flight over all sessions. */
  get inFlight(): number {
    let n = 0;
    for (const s of this.set) n += s.activeStreams;
    return n;
  }

  /** Accepts the rendezvous for `msg` and runs a session on it; a failed accept is dropped (the gateway retries). */
  async accept(listener: HybridConnectionListener, msg: AcceptMessage): Promise<Session | null> {
    let conn: WsConnection;
    try {
      conn = await listener.accept(msg);
    } catch {
      return null;
    }
    return this.adopt(conn);
  }

  /** Runs a tunnel session on an accepted connection. While stopping, it says GOAWAY at once. */
  adopt(conn: WsConnection): Session | null {
    if (this.shut) {
      conn.close(1001, "agent stopping"); // a rendezvous that completed after the stop
      return null;
    }
    const session = new Session(conn, {
      role: "agent",
      window: this.o.window,
      versions: this.o.protocolVersions,
      onStream: (stream) => {
        if (this.o.tcpTarget) return stream.reset(ResetCode.REFUSED, "this is a TCP tunnel: reach it with azhexgate connect");
        void forward(stream, this.o).catch(() => {});
      },
      ...(this.o.tcpTarget ? { onTcpStream: (stream: TunnelStream) => void forwardTcp(stream, this.o.tcpTarget!).catch(() => {}) } : {}),
      onClose: () => {
        this.set.delete(session);
        if (this.set.size === 0) this.stopPinger();
      },
    });
    this.set.add(session);
    this.startPinger();
    conn.on("message", (data) => session.handleMessage(data));
    conn.on("close", (code, reason) => session.handleClose(`relay connection closed (${code}${reason ? ` ${reason}` : ""})`));
    conn.on("error", () => {});
    if (this.goneAway) session.goAway();
    // round trips now, while nothing flows: they size the session's windows (liveness.ts probeRtt)
    if (!this.goneAway) void probeRtt(session);
    return session;
  }

  /** No new streams on any session, present or future. */
  goAway(): void {
    if (this.goneAway) return;
    this.goneAway = true;
    for (const s of this.set) s.goAway();
  }

  /**
   * GOAWAY, then waits until no stream is in flight, `graceMs` passes or `cut()` is called;
   * then closes every session. Resolves with the streams still in flight when it gave up.
   */
  async drain(graceMs: number): Promise<number> {
    this.goAway();
    const deadline = this.clock.now() + (this.cutting ? 0 : Math.max(0, graceMs));
    let timer: TimerHandle | undefined;
    const left = await new Promise<number>((resolve) => {
      const done = () => {
        this.clock.clearTimeout(timer);
        this.cutDrain = null;
        resolve(this.inFlight);
      };
      this.cutDrain = done;
      const check = () => {
        const ms = deadline - this.clock.now();
        if (this.inFlight === 0 || ms <= 0) return done();
        timer = this.clock.setTimeout(check, Math.min(DRAIN_POLL_MS, ms));
      };
      check();
    });
    this.closeAll(1001, "agent stopping");
    return left;
  }

  /** Ends a running (or the next) drain now (second Ctrl+C). */
  cut(): void {
    this.cutting = true;
    this.cutDrain?.();
  }

  /** Closes every session at once (their streams fail); later rendezvous are closed on arrival. */
  closeAll(code = 1001, reason = "agent stopping"): void {
    this.shut = true;
    this.stopPinger();
    for (const s of [...this.set]) s.close(code, reason);
    this.set.clear();
  }

  private startPinger(): void {
    const ms = this.o.pingMs ?? 10_000;
    if (this.pinger || ms <= 0) return;
    const maxMissed = this.o.maxMissedPings ?? 2;
    this.pinger = setInterval(() => {
      for (const s of [...this.set]) {
        if (s.checkAlive(maxMissed)) continue;
        const n = s.activeStreams;
        this.set.delete(s);
        s.close(1001, "no answer to tunnel pings");
        this.o.onEvict?.(n);
      }
      if (this.set.size === 0) this.stopPinger();
    }, ms);
    this.pinger.unref?.();
  }

  private stopPinger(): void {
    if (this.pinger) clearInterval(this.pinger);
    this.pinger = null;
  }

  /** Round trip of a tunnel PING on the least busy session, or undefined (no session, no answer in time). */
  async rtt(timeoutMs = 5000): Promise<number | undefined> {
    let best: Session | undefined;
    for (const s of this.set) if (!s.isClosed && (!best || s.activeStreams < best.activeStreams)) best = s;
    if (!best) return undefined;
    return best.ping(timeoutMs).catch(() => undefined);
  }

  /** After a clock jump (sleep / wake): pings every session and closes those that stay silent. */
  async pruneSilent(timeoutMs = 5000): Promise<number> {
    const results = await Promise.all(
      [...this.set].map(async (s) => {
        const rtt = await this.withTimeout(s.ping(timeoutMs + 1000), timeoutMs);
        if (rtt === undefined && !s.isClosed) s.close(1001, "no answer after sleep");
        return rtt === undefined;
      }),
    );
    return results.filter(Boolean).length;
  }

  private withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
    let timer: TimerHandle | undefined;
    return Promise.race([
      p.catch(() => undefined),
      new Promise<undefined>((r) => (timer = this.clock.setTimeout(() => r(undefined), ms))),
    ]).finally(() => this.clock.clearTimeout(timer));
  }
}
