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
 */
import { senderTokenExpiry } from "../hc/sender.ts";
import type { WsConnection } from "../ws/client.ts";
import { Session } from "../tunnel/session.ts";
import type { TunnelStream } from "../tunnel/stream.ts";

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
  /** A session left the pool early: `evicted` (no answer to PINGs) or `retired` (token about to expire). */
  onSessionEvent?: (e: "evicted" | "retired") => void;
  /** Tunnel protocol versions spoken (default: all this build speaks). */
  protocolVersions?: readonly number[];
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

  constructor(private readonly o: PoolOptions) {}

  get size(): number {
    return this.entries.length;
  }

  /** Streams open across the pool's sessions. */
  get activeStreams(): number {
    let n = 0;
    for (const e of this.entries) n += e.session.activeStreams;
    return n;
  }

  /** A session with room for one more stream, dialing one when there is none. */
  async acquire(): Promise<Session> {
    let best: Entry | undefined;
    let open = 0;
    for (const e of this.entries) {
      if (!e.session.acceptsStreams) continue;
      open++;
      if (!best || e.session.activeStreams < best.session.activeStreams) best = e;
    }
    const min = this.o.min ?? 2;
    const max = this.o.max ?? 8;
    if (!best) return (await this.dialOne()).session;
    const busy = best.session.activeStreams >= (this.o.busyStreams ?? 64);
    if ((busy || open < min) && open < max) this.dialOne().catch(() => {});
    return best.session;
  }

  /** Dials one session (one dial at a time); resolves once the agent's hello arrived. */
  private dialOne(): Promise<Entry> {
    if (this.dialing) return this.dialing;
    this.dialing = (async () => {
      if (this.closed) throw new PoolClosedError();
      const conn = await this.o.dial();
      // biome-ignore lint/style/useConst: the session's stream-end hook needs the entry
      let entry: Entry;
      const session = new Session(conn, {
        role: "gateway",
        window: this.o.window,
        versions: this.o.protocolVersions,
        onStreamEnd: (s) => {
          this.o.onStreamEnd?.(s);
          if (entry.retired && entry.session.activeStreams === 0) entry.session.close(1000, "session retired");
        },
      });
      entry = { session, conn, retired: false };
      conn.on("message", (data) => session.handleMessage(data));
      conn.on("close", (code, reason) => {
        session.handleClose(`relay connection closed (${code}${reason ? ` ${reason}` : ""})`);
        this.remove(entry);
      });
      conn.on("error", () => {}); // close follows; the session reports it
      await session.ready;
      if (this.closed) {
        conn.close(1001, "gateway stopping");
        throw new PoolClosedError();
      }
      this.entries.push(entry);
      const exp = senderTokenExpiry(conn);
      if (exp !== undefined && this.o.retireBeforeExpiry !== false) {
        const now = Date.now();
        entry.retireTimer = setTimeout(() => this.retire(entry), Math.min(retireDelay(now, exp), 2 ** 31 - 1));
        entry.retireTimer.unref?.();
      }
      this.startPinger();
      return entry;
    })().finally(() => {
      this.dialing = null;
    });
    return this.dialing;
  }

  /** GOAWAY before the token expires; a replacement is dialed; the old session closes once idle. */
  private retire(e: Entry): void {
    if (e.retired || e.session.isClosed || this.closed) return;
    e.retired = true;
    this.o.onSessionEvent?.("retired");
    e.session.goAway();
    if (e.session.activeStreams === 0) e.session.close(1000, "session retired");
    this.dialOne().catch(() => {});
  }

  private remove(e: Entry): void {
    clearTimeout(e.retireTimer);
    this.entries = this.entries.filter((x) => x !== e);
    if (this.entries.length === 0 && this.pinger) {
      clearInterval(this.pinger);
      this.pinger = null;
    }
  }

  private startPinger(): void {
    if (this.pinger) return;
    const maxMissed = this.o.maxMissedPings ?? 2;
    this.pinger = setInterval(() => {
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
    if (this.pinger) clearInterval(this.pinger);
    this.pinger = null;
    for (const e of this.entries) {
      clearTimeout(e.retireTimer);
      e.session.close(1001, "gateway stopping");
    }
    this.entries = [];
  }
}
