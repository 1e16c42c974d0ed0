/**
 * An in-process dial for SessionPool tests: each dial returns a message pipe shaped like the HC
 * sender WebSocket (`on('message' | 'close' | 'error')`, `send`, `drained`, `close`) whose far end
 * is a real agent Session. Delivery is asynchronous (one macrotask per message), like a socket.
 */
import { Emitter } from "../../src/ws/emitter.ts";
import type { WsConnection, WsEvents } from "../../src/ws/client.ts";
import { Session } from "../../src/tunnel/session.ts";
import { type PoolOptions, SessionPool } from "../../src/tunnel/pool.ts";
import type { TunnelStream } from "../../src/tunnel/stream.ts";

class Pipe extends Emitter<WsEvents> {
  closed = false;
  muted = false;
  agent!: Session;
  constructor(private readonly onClose: (code: number, reason: string) => void) {
    super();
  }
  /** gateway → agent */
  send(data: Uint8Array | string): boolean {
    if (this.closed) return false;
    const copy = typeof data === "string" ? data : data.slice();
    setImmediate(() => !this.closed && !this.muted && this.agent.handleMessage(copy));
    return true;
  }
  drained(): Promise<void> {
    return Promise.resolve();
  }
  /** The gateway closes its end. */
  close(code = 1000, reason = ""): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose(code, reason);
    setImmediate(() => {
      this.agent.handleClose(`peer closed (${code} ${reason})`);
      this.emit("close", code, reason);
    });
  }
  /** agent → gateway */
  deliver(data: Uint8Array | string): void {
    if (this.closed || this.muted) return;
    const copy = typeof data === "string" ? data : data.slice();
    setImmediate(() => !this.closed && this.emit("message", copy, typeof copy !== "string"));
  }
  /** The agent's end closed (the relay reports it to the gateway). */
  agentClosed(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    setImmediate(() => this.emit("close", code, reason));
  }
}

export interface DialerOptions {
  /** The agent never sends its hello. */
  silent?: boolean;
  /** Versions the agent speaks. */
  versions?: number[];
  /** The rendezvous takes this long. */
  delayMs?: number;
  /** The agent sends GOAWAY right after its hello. */
  goAwayAtOnce?: boolean;
  /** Each connection's token expires this many ms after its dial (see `tokenExpiry`). */
  tokenMs?: number;
}

export class Dialer {
  dials = 0;
  agents: Session[] = [];
  pipes: Pipe[] = [];
  /** Codes and reasons the gateway closed its ends with. */
  closes: Array<[number, string]> = [];
  /** The agent is offline: dials are refused (the relay's 404 "no listener"), as `connectSender` rejects. */
  offline = false;
  /** Refused dials, and when each dial began (ms since the epoch). */
  refused = 0;
  dialedAt: number[] = [];
  private readonly expiries = new WeakMap<object, number>();
  constructor(private readonly onStream: (s: TunnelStream) => void, private readonly o: DialerOptions = {}) {}

  async dial(): Promise<WsConnection> {
    this.dialedAt.push(Date.now());
    if (this.offline) {
      this.refused++;
      throw new Error("no listener for the hybrid connection (test: agent offline)");
    }
    this.dials++;
    if (this.o.delayMs) await Bun.sleep(this.o.delayMs);
    const pipe = new Pipe((code, reason) => this.closes.push([code, reason]));
    if (this.o.tokenMs !== undefined) this.expiries.set(pipe, Date.now() + this.o.tokenMs);
    let helloSent = false;
    const agent = new Session(
      {
        send: (d) => {
          if (this.o.silent && !helloSent) {
            helloSent = true;
            return true;
          }
          pipe.deliver(d);
          return true;
        },
        drained: () => Promise.resolve(),
        close: (code, reason) => pipe.agentClosed(code ?? 1005, reason ?? ""),
      },
      { role: "agent", onStream: this.onStream, ...(this.o.versions ? { versions: this.o.versions } : {}) },
    );
    pipe.agent = agent;
    if (this.o.goAwayAtOnce) agent.goAway();
    this.agents.push(agent);
    this.pipes.push(pipe);
    return pipe as unknown as WsConnection;
  }

  /**
   * The expiry recorded for a connection this dialer made, for `PoolOptions.tokenExpiry`: what
   * `senderTokenExpiry` answers for a real sender socket (the `se` of the SAS token it was opened with).
   */
  tokenExpiry(conn: WsConnection): number | undefined {
    return this.expiries.get(conn);
  }

  /** The i-th session's agent stops answering (nothing it sends arrives; nothing reaches it). */
  mute(i: number): void {
    this.pipes[i]!.muted = true;
  }
}

export const echo = (s: TunnelStream) => {
  s.sendResponse({ status: 200, headers: [] });
  void s.write(new TextEncoder().encode(`hello ${s.head!.target}`)).then(() => s.end(), () => {});
};

/**
 * Pools for one test file: `mkPool` makes one on `d` (session events recorded unless `hook` is
 * false; the dialer's recorded token expiries given to the pool), `closeAll` closes them (the file's
 * afterEach / afterAll).
 */
export function poolKit() {
  const pools: SessionPool[] = [];
  return {
    mkPool(d: Dialer, o: Partial<PoolOptions> = {}, hook = true) {
      const events: string[] = [];
      const pool = new SessionPool({ dial: () => d.dial(), tokenExpiry: (c) => d.tokenExpiry(c), ...(hook ? { onSessionEvent: (e) => events.push(e) } : {}), ...o });
      pools.push(pool);
      return { pool, events };
    },
    closeAll() {
      for (const p of pools.splice(0)) p.close();
    },
  };
}

/** One GET through a pool session: its status and body. */
export async function poolGet(pool: SessionPool, path = "/") {
  const s = await pool.acquire();
  const st = await s.open({ kind: "http", method: "GET", target: path, headers: [] });
  st.end();
  const head = await st.response;
  return { status: head.status, body: await new Response(st.body).text() };
}

/** Polls `cond` for up to `ms` (generous: the box is shared); its last answer. */
export async function until(cond: () => boolean, ms = 4000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await Bun.sleep(2);
  return cond();
}
