/**
 * The gateway's session pools, one per tunnel (src/tunnel/pool.ts), with their gauges and byte
 * counters. A pool with no session, no stream and no request waiting for one is dropped by a
 * periodic sweep (issue 18: the map kept a pool for every tunnel ever requested) unless it is
 * re-dialing a returning agent (src/tunnel/pool.ts `rewarmMs`); the next request for that tunnel
 * makes a new one.
 */
import type { TunnelStream } from "../tunnel/stream.ts";
import { SessionPool, type PoolOptions } from "../tunnel/pool.ts";
import type { Session } from "../tunnel/session.ts";
import type { AccessLog } from "./access-log.ts";
import type { GatewayMetrics } from "./metrics.ts";
import type { WsConnection } from "../ws/client.ts";

export class TunnelPools {
  private readonly pools = new Map<string, SessionPool>();
  /** Requests waiting for a session, per tunnel (their pool is not idle). */
  private readonly acquiring = new Map<string, number>();
  private readonly sweeper: Timer;

  constructor(
    private readonly o: { dial: (hcPath: string) => Promise<WsConnection>; pool?: Omit<PoolOptions, "dial">; metrics: GatewayMetrics; accessLog?: AccessLog; sweepMs?: number },
  ) {
    o.metrics.registry.collect(() => {
      for (const [id, p] of this.pools) {
        o.metrics.sessions.set({ tunnel: id }, p.size);
        o.metrics.streams.set({ tunnel: id }, p.activeStreams);
      }
    });
    this.sweeper = setInterval(() => this.sweep(), o.sweepMs ?? 60_000);
    this.sweeper.unref?.();
  }

  /** A session to tunnel `id` (on hybrid connection `hcPath`) by `deadline`. */
  async acquire(id: string, hcPath: string, deadline: number): Promise<Session> {
    this.acquiring.set(id, (this.acquiring.get(id) ?? 0) + 1);
    try {
      return await this.poolFor(id, hcPath).acquire(deadline);
    } finally {
      const left = this.acquiring.get(id)! - 1;
      if (left) this.acquiring.set(id, left);
      else this.acquiring.delete(id);
    }
  }

  /** Streams in flight for tunnel `id`. */
  activeStreamsOf(id: string): number {
    return this.pools.get(id)?.activeStreams ?? 0;
  }

  get activeStreams(): number {
    let n = 0;
    for (const p of this.pools.values()) n += p.activeStreams;
    return n;
  }

  get size(): number {
    return this.pools.size;
  }

  /** Closes and forgets tunnel `id`'s pool (a deleted tunnel). */
  drop(id: string): void {
    this.pools.get(id)?.close();
    this.pools.delete(id);
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const p of this.pools.values()) p.close();
    this.pools.clear();
  }

  private sweep(): void {
    for (const [id, p] of this.pools) if (p.size === 0 && p.activeStreams === 0 && !p.rewarming && !this.acquiring.has(id)) this.drop(id);
  }

  private poolFor(id: string, hcPath: string): SessionPool {
    let p = this.pools.get(id);
    if (!p) {
      const bytesIn = this.o.metrics.bytes.counterFor({ tunnel: id, direction: "in" });
      const bytesOut = this.o.metrics.bytes.counterFor({ tunnel: id, direction: "out" });
      const access = this.o.accessLog;
      const onStreamEnd = (s: TunnelStream) => {
        if (s.bytesSent) bytesIn(s.bytesSent);
        if (s.bytesReceived) bytesOut(s.bytesReceived);
        access?.streamEnded(s);
      };
      this.pools.set(id, (p = new SessionPool({ ...this.o.pool, dial: () => this.o.dial(hcPath), onStreamEnd })));
    }
    return p;
  }
}
