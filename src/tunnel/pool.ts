/**
 * Per-tunnel pool of HC sender sessions. The first request to a cold tunnel dials one session
 * (paying the rendezvous once); the pool then keeps `min` sessions warm, grows while every
 * session is busy, up to `max`.
 *
 * Liveness: one timer per pool checks every session each `pingMs`. A session that received
 * nothing since the last check gets the tunnel protocol's in-band PING (it crosses the relay as
 * an ordinary message; the relay terminates each leg and answers WebSocket pings itself, so a
 * WebSocket ping proves nothing about the agent's leg). A session that misses `maxMissedPings`
 * is evicted: its in-flight streams fail with a reset (the public client sees an error or a
 * truncated body, never a clean end) and new requests go to healthy or new sessions.
 *
 * Token expiry: a sender connection is opened with a token that expires (SAS `se`, Entra `exp`),
 * and the protocol guide lists close 1008 "the security token has expired" for established
 * rendezvous sockets (MicrosoftDocs/azure-docs articles/azure-relay/relay-hybrid-connections-protocol.md,
 * "Accept handshake"), while another passage says expiry does not affect ongoing connections.
 * Either way we retire a session before its token expires: GOAWAY (no new streams), a fresh
 * session dialed in its place, in-flight streams finish on the old one, which closes when idle.
 *
 * Hostile or broken agents (issue 12 items 7, 8): the pool holds at most `maxSessions` in any
 * state (open, draining after a GOAWAY, dialing), closes a draining session itself once it has
 * no streams, and dials at most `dialBurst` sessions at once then `dialsPerSecond` per tunnel, so
 * an agent answering every session with GOAWAY cannot make it spin. A request that finds no slot
 * waits (up to its deadline) and then fails 503 `tunnel_session_limit`. The agent's hello must
 * arrive within `helloMs`, else the session is closed and counted as a failed dial (502
 * `tunnel_handshake_timeout`).
 */
import { senderTokenExpiry } from "../hc/sender.ts";
import { probeRtt } from "./liveness.ts";
import type { WsConnection } from "../ws/client.ts";
import { Session } from "./session.ts";
import type { TunnelStream } from "./stream.ts";

/** Why the pool could not give a session, with the HTTP status and stable code the gateway answers with. */
export class PoolError extends Error {
  override readonly name = "PoolError";
  constructor(
    readonly status: 502 | 503 | 504,
    readonly code: "tunnel_timeout" | "tunnel_session_limit" | "tunnel_handshake_timeout",
    message: string,
  ) {
    super(message);
  }
}

export interface PoolOptions {
  /** Opens one HC sender WebSocket to the tunnel's hybrid connection. */
  dial: () => Promise<WsConnection>;
  /** Sessions kept open once the tunnel is in use (default 2). */
  min?: number;
  /** Most sessions (default 8). */
  max?: number;
  /** A session with this many open streams counts as busy (default 64). */
  busyStreams?: number;
  /** Per-stream window granted to the agent (default 2 MiB). */
  window?: number;
  /** A stream on one of the pool's sessions finished (metrics). */
  onStreamEnd?: (stream: TunnelStream) => void;
  /** Liveness check interval: silent sessions get an in-band PING (default 10 s). */
  pingMs?: number;
  /** Evict a session after this many unanswered liveness PINGs in a row (default 2). */
  maxMissedPings?: number;
  /** Retire sessions before their sender token expires (default true; false only to show what happens without). */
  retireBeforeExpiry?: boolean;
  /** When a dialed connection's token expires, ms since the epoch (default: what the HC sender recorded, `senderTokenExpiry`; tests with an in-process dial give their own). */
  tokenExpiry?: (conn: WsConnection) => number | undefined;
  /** A session left the pool early: `evicted` (no answer to PINGs), `retired` (token about to expire), `hello_timeout` (no hello in time). */
  onSessionEvent?: (e: "evicted" | "retired" | "hello_timeout") => void;
  /** Sessions held in any state: open, draining after GOAWAY, dialing (default 2 × max). */
  maxSessions?: number;
  /** Dials allowed back to back per tunnel (default 8) … */
  dialBurst?: number;
  /** … then at most this many per second (default 2). Dials the relay refuses (agent offline) are not counted. */
  dialsPerSecond?: number;
  /** The agent's hello must arrive within this many ms of the rendezvous (default 5000). */
  helloMs?: number;
  /** Tunnel protocol versions spoken (default: all this build speaks). */
  protocolVersions?: readonly number[];
  /**
   * Re-warm (default 60 000 ms; 0 turns it off): when the pool loses its last open session (the
   * agent restarted or its network dropped) within this long of its last request, it re-dials in
   * the background (after 250 ms, then doubling up to 8 s, for at most this long), so the first
   * request after the agent is back finds a session instead of paying the rendezvous and the
   * hello (issue 17: round trips to the first byte of a cold tunnel). Refused dials (agent still
   * offline) cost the relay one failed connect each and do not count against the dial rate.
   */
  rewarmMs?: number;
}

interface Entry {
  session: Session;
  conn: WsConnection;
  retired: boolean;
  retireTimer?: Timer;
}

/** When to retire a session opened at `at` with a token expiring at `exp`: with 20 % of the lifetime left, at most 5 min early, never sooner than 1 s. */
export function retireDelay(at: number, exp: number): number {
  const left = exp - at;
  return Math.max(1000, left - Math.min(left * 0.2, 5 * 60_000));
}

/** The pool was closed (its tunnel deleted, or the gateway stopping) while a request waited for a session. */
export class PoolClosedError extends Error {
  override readonly name = "PoolClosedError";
  constructor() {
    super("pool closed");
  }
}

export class SessionPool {
  private entries: Entry[] = [];
  private dialing: Promise<Entry> | null = null;
  private pinger: Timer | null = null;
  private closed = false;
  private tokens: number;
  private refilledAt = Date.now();
  private readonly waiters = new Set<() => void>();
  /** Dials that reached the agent but failed before its hello (no hello in time, version mismatch, closed). */
  failedDials = 0;
  /** When a request last asked for a session (ms since the epoch). */
  private lastAcquire = 0;
  private rewarmTimer: Timer | null = null;
  private rewarmAttempt = 0;
  /** Background dials made to re-warm the pool (for tests and metrics). */
  rewarmDials = 0;

  /** A background re-dial is pending (the pool is not idle: keep it). */
  get rewarming(): boolean {
    return this.rewarmTimer !== null || this.dialing !== null;
  }

  constructor(private readonly o: PoolOptions) {
    this.tokens = o.dialBurst ?? 8;
  }

  /** Sessions held in any state (open, draining, dialing). */
  get held(): number {
    return this.entries.length + (this.dialing ? 1 : 0);
  }

  private get cap(): number {
    return this.o.maxSessions ?? 2 * (this.o.max ?? 8);
  }

  get size(): number {
    return this.entries.length;
  }

  /** Streams open across the pool's sessions. */
  get activeStreams(): number {
    let n = 0;
    for (const e of this.entries) n += e.session.activeStreams;
    return n;
  }

  /**
   * A session with room for one more stream, dialing one when there is none. When the pool is at
   * its cap or its dial rate, waits for a slot until `deadline` (ms since the epoch), then throws
   * 503 `tunnel_session_limit`.
   */
  async acquire(deadline = Number.POSITIVE_INFINITY): Promise<Session> {
    this.lastAcquire = Date.now();
    this.rewarmAttempt = 0;
    for (;;) {
      this.sweep();
      let best: Entry | undefined;
      let open = 0;
      for (const e of this.entries) {
        if (!e.session.acceptsStreams) continue;
        open++;
        if (!best || e.session.activeStreams < best.session.activeStreams) best = e;
      }
      const min = this.o.min ?? 2;
      const max = this.o.max ?? 8;
      if (best) {
        const busy = best.session.activeStreams >= (this.o.busyStreams ?? 64);
        if ((busy || open < min) && open < max && this.dialWait() === 0) this.dialOne().catch(() => {});
        return best.session;
      }
      if (this.dialing) return (await this.beforeDeadline(this.dialing, deadline)).session;
      const wait = this.dialWait();
      if (wait === 0) return (await this.beforeDeadline(this.dialOne(), deadline)).session;
      const left = deadline - Date.now();
      if (left <= 0 || this.closed) throw this.limitError();
      await this.waitSlot(Math.min(wait, left));
    }
  }

  /** `p`, or 504 `tunnel_timeout` at `deadline` (the dial goes on and joins the pool if it succeeds). */
  private beforeDeadline<T>(p: Promise<T>, deadline: number): Promise<T> {
    if (deadline === Number.POSITIVE_INFINITY) return p;
    let timer: Timer | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new PoolError(504, "tunnel_timeout", `The agent did not take a tunnel session within the first-byte limit. Retry; if it persists, restart "azhexgate start".`)), Math.max(0, deadline - Date.now()));
    });
    return Promise.race([p, late]).finally(() => clearTimeout(timer));
  }

  private limitError(): PoolError {
    const rate = this.o.dialsPerSecond ?? 2;
    return new PoolError(503, "tunnel_session_limit", `The agent keeps refusing or closing tunnel sessions; the gateway holds at most ${this.cap} sessions and opens at most ${rate} per second for one tunnel. Retry in a moment; if it persists, restart "azhexgate start".`);
  }

  /** 0 when a dial may start now; else ms until one may (Infinity: wait for a session to go). */
  private dialWait(): number {
    if (this.held >= this.cap) return Number.POSITIVE_INFINITY;
    const rate = this.o.dialsPerSecond ?? 2;
    const now = Date.now();
    this.tokens = Math.min(this.o.dialBurst ?? 8, this.tokens + ((now - this.refilledAt) / 1000) * rate);
    this.refilledAt = now;
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) / rate) * 1000);
  }

  private waitSlot(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.waiters.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.waiters.add(done);
    });
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Closes draining sessions (GOAWAY sent or received) that have no streams left. */
  private sweep(): void {
    for (const e of [...this.entries]) {
      if (!e.session.acceptsStreams && e.session.activeStreams === 0) {
        this.remove(e);
        e.session.close(1000, e.retired ? "session retired" : "session drained");
      }
    }
  }

  /** Dials one session (one dial at a time); resolves once the agent's hello arrived. */
  private dialOne(): Promise<Entry> {
    if (this.dialing) return this.dialing;
    this.dialing = (async () => {
      if (this.closed) throw new PoolClosedError();
      const conn = await this.o.dial();
      this.tokens--; // a rendezvous made: counts against the dial rate
      // biome-ignore lint/style/useConst: the session's stream-end hook needs the entry
      let entry: Entry;
      const session = new Session(conn, {
        role: "gateway",
        window: this.o.window,
        versions: this.o.protocolVersions,
        onStreamEnd: (s) => {
          this.o.onStreamEnd?.(s);
          if (!entry.session.acceptsStreams && entry.session.activeStreams === 0) {
            this.remove(entry);
            entry.session.close(1000, entry.retired ? "session retired" : "session drained");
          }
        },
      });
      entry = { session, conn, retired: false };
      void probeRtt(session); // round trips while nothing flows: they size the session's windows (issue 13)
      conn.on("message", (data) => session.handleMessage(data));
      conn.on("close", (code, reason) => {
        session.handleClose(`relay connection closed (${code}${reason ? ` ${reason}` : ""})`);
        this.remove(entry);
      });
      conn.on("error", () => {}); // close follows; the session reports it
      const helloMs = this.o.helloMs ?? 5000;
      let helloTimer: Timer | undefined;
      const noHello = new Promise<never>((_, reject) => {
        helloTimer = setTimeout(() => reject(new PoolError(502, "tunnel_handshake_timeout", `The agent accepted the tunnel session but did not complete the handshake within ${helloMs / 1000} s. Restart "azhexgate start"; if it persists, update the agent.`)), helloMs);
      });
      try {
        await Promise.race([session.ready, noHello]);
      } catch (err) {
        this.failedDials++;
        if (err instanceof PoolError) this.o.onSessionEvent?.("hello_timeout");
        session.close(1002, "no hello in time");
        throw err;
      } finally {
        clearTimeout(helloTimer);
      }
      if (this.closed) {
        conn.close(1001, "gateway stopping");
        throw new PoolClosedError();
      }
      this.entries.push(entry);
      const exp = (this.o.tokenExpiry ?? senderTokenExpiry)(conn);
      if (exp !== undefined && this.o.retireBeforeExpiry !== false) {
        const now = Date.now();
        entry.retireTimer = setTimeout(() => this.retire(entry), Math.min(retireDelay(now, exp), 2 ** 31 - 1));
        entry.retireTimer.unref?.();
      }
      this.startPinger();
      return entry;
    })().finally(() => {
      this.dialing = null;
      this.wake();
    });
    return this.dialing;
  }

  /** GOAWAY before the token expires; a replacement is dialed; the old session closes once idle. */
  private retire(e: Entry): void {
    if (e.retired || e.session.isClosed || this.closed) return;
    e.retired = true;
    this.o.onSessionEvent?.("retired");
    e.session.goAway();
    if (e.session.activeStreams === 0) {
      this.remove(e);
      e.session.close(1000, "session retired");
    }
    if (this.dialWait() === 0) this.dialOne().catch(() => {});
  }

  private remove(e: Entry): void {
    clearTimeout(e.retireTimer);
    const wasOpen = this.entries.includes(e); // a dial that failed before its hello never joined
    this.entries = this.entries.filter((x) => x !== e);
    this.wake();
    if (this.entries.length === 0 && this.pinger) {
      clearInterval(this.pinger);
      this.pinger = null;
    }
    if (wasOpen && !e.retired) this.startRewarm(); // an open session lost (the agent went away), not a failed dial
  }

  /**
   * The last open session is gone while the tunnel is in use: re-dial in the background (see
   * `rewarmMs`). The back-off (250 ms doubling to 8 s) only starts over when a request comes, so
   * an agent that drops every session it is given is dialed less and less often, not in a loop.
   */
  private startRewarm(): void {
    const window = this.o.rewarmMs ?? 60_000;
    if (this.closed || this.rewarmTimer || window <= 0 || Date.now() - this.lastAcquire > window) return;
    if (this.entries.some((x) => x.session.acceptsStreams)) return;
    const delay = Math.min(250 * 2 ** this.rewarmAttempt, 8000);
    this.rewarmAttempt++;
    this.rewarmTimer = setTimeout(() => {
      this.rewarmTimer = null;
      if (this.closed || Date.now() - this.lastAcquire > window || this.entries.some((x) => x.session.acceptsStreams)) return;
      if (this.dialing || this.dialWait() > 0) return this.startRewarm();
      this.rewarmDials++;
      this.dialOne().catch(() => this.startRewarm());
    }, delay);
    this.rewarmTimer.unref?.();
  }

  private startPinger(): void {
    if (this.pinger) return;
    const maxMissed = this.o.maxMissedPings ?? 2;
    this.pinger = setInterval(() => {
      this.sweep(); // draining sessions whose GOAWAY came while no request was asking
      for (const e of [...this.entries]) {
        if (e.session.checkAlive(maxMissed)) continue;
        this.remove(e);
        this.o.onSessionEvent?.("evicted");
        e.session.close(1001, "no answer to tunnel pings");
      }
    }, this.o.pingMs ?? 10_000);
    this.pinger.unref?.();
  }

  /** Closes every session (in-flight streams fail). */
  close(): void {
    this.closed = true;
    if (this.rewarmTimer) clearTimeout(this.rewarmTimer);
    this.rewarmTimer = null;
    if (this.pinger) clearInterval(this.pinger);
    this.pinger = null;
    for (const e of this.entries) {
      clearTimeout(e.retireTimer);
      e.session.close(1001, "gateway stopping");
    }
    this.entries = [];
    this.wake();
  }
}
