/**
 * Per-tunnel pool of HC sender sessions. The first request to a cold tunnel dials one session
 * (paying the rendezvous once); the pool then keeps `min` sessions warm, grows while every
 * session is busy, up to `max`, and pings idle sessions so middleboxes keep them open.
 */
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
  /** Keep-alive ping interval (default 20 s). */
  pingMs?: number;
}

interface Entry {
  session: Session;
  conn: WsConnection;
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
    const open = this.entries.filter((e) => e.session.acceptsStreams);
    let best: Entry | undefined;
    for (const e of open) if (!best || e.session.activeStreams < best.session.activeStreams) best = e;
    const min = this.o.min ?? 2;
    const max = this.o.max ?? 8;
    if (!best) return (await this.dialOne()).session;
    const busy = best.session.activeStreams >= (this.o.busyStreams ?? 64);
    if ((busy || open.length < min) && open.length < max) this.dialOne().catch(() => {});
    return best.session;
  }

  /** Dials one session (one dial at a time); resolves once the agent's hello arrived. */
  private dialOne(): Promise<Entry> {
    if (this.dialing) return this.dialing;
    this.dialing = (async () => {
      if (this.closed) throw new Error("pool closed");
      const conn = await this.o.dial();
      const session = new Session(conn, { role: "gateway", window: this.o.window, onStreamEnd: this.o.onStreamEnd });
      const entry: Entry = { session, conn };
      conn.on("message", (data) => session.handleMessage(data));
      conn.on("close", (code, reason) => {
        session.handleClose(`relay connection closed (${code}${reason ? ` ${reason}` : ""})`);
        this.entries = this.entries.filter((e) => e !== entry);
      });
      conn.on("error", () => {}); // close follows; the session reports it
      await session.ready;
      if (this.closed) {
        conn.close(1001, "gateway stopping");
        throw new Error("pool closed");
      }
      this.entries.push(entry);
      this.startPinger();
      return entry;
    })().finally(() => {
      this.dialing = null;
    });
    return this.dialing;
  }

  private startPinger(): void {
    if (this.pinger) return;
    this.pinger = setInterval(() => {
      for (const e of this.entries) e.conn.ping();
    }, this.o.pingMs ?? 20_000);
    this.pinger.unref?.();
  }

  /** Closes every session (in-flight streams fail). */
  close(): void {
    this.closed = true;
    if (this.pinger) clearInterval(this.pinger);
    for (const e of this.entries) e.session.close(1001, "gateway stopping");
    this.entries = [];
  }
}
