/**
 * A userspace TCP delay line (issue 17, the WAN scenario): every chunk is held `delayMs` before it
 * is written on, in each direction; no bandwidth limit. Backpressure is respected (a slow writer
 * pauses the reader once `maxQueued` bytes wait in one direction) so memory stays bounded.
 *
 *   bun bench/lib/delay-proxy.ts TARGET_PORT DELAY_MS [LISTEN_PORT]
 * prints `READY {"port"}`. Or in-process: `startDelayProxy({ target, delayMs })`.
 */
import type { Socket, TCPSocketListener } from "bun";

export interface DelayProxyOptions {
  /** Where to connect, 127.0.0.1 and a port. */
  targetPort: number;
  targetHost?: string;
  /** Held this long in each direction (ms; 0 = forward at once). */
  delayMs: number;
  port?: number;
  /** Bytes waiting in one direction before its reader is paused (default 64 MiB). */
  maxQueued?: number;
}

export interface DelayProxy {
  port: number;
  /** Most bytes waiting in all directions at any moment (memory proof). */
  readonly peakQueued: number;
  stop(): void;
  [Symbol.asyncDispose](): Promise<void>;
}

interface Item {
  due: number;
  buf: Uint8Array;
}

/** One direction: chunks read from `from`, held, written to `to`. */
class Line {
  private q: Item[] = [];
  private head = 0;
  queued = 0;
  private timer: Timer | null = null;
  to: Socket<unknown> | null = null;
  from: Socket<unknown> | null = null;
  private paused = false;
  private blocked = false;
  private endAfter = false;
  constructor(private readonly delay: number, private readonly max: number, private readonly track: (d: number) => void) {}

  push(data: Uint8Array): void {
    // Bun hands a fresh buffer to each data callback; keep it as is.
    this.q.push({ due: performance.now() + this.delay, buf: data });
    this.queued += data.length;
    this.track(data.length);
    if (this.queued >= this.max && !this.paused) {
      this.paused = true;
      this.from?.pause();
    }
    if (!this.timer && !this.blocked) this.flush();
  }

  /** The source closed: end the destination once everything held has been written. */
  end(): void {
    this.endAfter = true;
    if (!this.timer && !this.blocked) this.flush();
  }

  drain(): void {
    this.blocked = false;
    this.flush();
  }

  flush = (): void => {
    this.timer = null;
    if (!this.to) return; // not connected yet: flushed on open
    const now = performance.now();
    while (this.head < this.q.length) {
      const it = this.q[this.head]!;
      if (it.due > now + 0.5) {
        this.timer = setTimeout(this.flush, it.due - now);
        return;
      }
      const w = this.to.write(it.buf);
      const n = w > 0 ? w : 0;
      this.queued -= n;
      this.track(-n);
      if (n < it.buf.length) {
        it.buf = it.buf.subarray(n);
        this.blocked = true;
        return;
      }
      this.head++;
      if (this.head > 1024 && this.head * 2 > this.q.length) {
        this.q = this.q.slice(this.head);
        this.head = 0;
      }
    }
    this.q = [];
    this.head = 0;
    if (this.paused && this.queued < this.max / 2) {
      this.paused = false;
      this.from?.resume();
    }
    if (this.endAfter) this.to.end();
  };

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.track(-this.queued);
    this.queued = 0;
    this.q = [];
  }
}

interface Conn {
  up: Line; // client → target
  down: Line; // target → client
  client: Socket<Conn>;
  target?: Socket<Conn>;
}

export async function startDelayProxy(o: DelayProxyOptions): Promise<DelayProxy> {
  const max = o.maxQueued ?? 64 << 20;
  let queued = 0;
  let peak = 0;
  const track = (d: number) => {
    queued += d;
    if (queued > peak) peak = queued;
  };
  const conns = new Set<Conn>();
  const close = (c: Conn) => {
    if (!conns.delete(c)) return;
    c.up.stop();
    c.down.stop();
    c.client.end();
    c.target?.end();
  };
  const listener: TCPSocketListener<Conn> = Bun.listen<Conn>({
    hostname: "127.0.0.1",
    port: o.port ?? 0,
    socket: {
      binaryType: "uint8array",
      open(client) {
        const c: Conn = { up: new Line(o.delayMs, max, track), down: new Line(o.delayMs, max, track), client };
        c.up.from = client;
        c.down.to = client;
        client.data = c;
        conns.add(c);
        Bun.connect<Conn>({
          hostname: o.targetHost ?? "127.0.0.1",
          port: o.targetPort,
          data: c,
          socket: {
            binaryType: "uint8array",
            open(t) {
              c.target = t;
              c.up.to = t;
              c.down.from = t;
              c.up.flush();
            },
            data: (_t, d) => c.down.push(d),
            drain: () => c.up.drain(),
            end: () => c.down.end(),
            close: () => void setTimeout(() => close(c), o.delayMs + 5),
            error: () => close(c),
            connectError: () => close(c),
          },
        }).catch(() => close(c));
      },
      data: (client, d) => client.data.up.push(d),
      drain: (client) => client.data.down.drain(),
      end: (client) => client.data.up.end(),
      close: (client) => void setTimeout(() => close(client.data), o.delayMs + 5),
      error: (client) => close(client.data),
    },
  });
  const stop = () => {
    for (const c of [...conns]) close(c);
    listener.stop(true);
  };
  return {
    port: listener.port,
    get peakQueued() {
      return peak;
    },
    stop,
    async [Symbol.asyncDispose]() {
      stop();
    },
  };
}

if (import.meta.main) {
  const [target, delay, port] = process.argv.slice(2).map(Number);
  const p = await startDelayProxy({ targetPort: target!, delayMs: delay ?? 0, port: port ?? 0 });
  console.log(`READY ${JSON.stringify({ port: p.port })}`);
  const bye = () => {
    p.stop();
    process.exit(0);
  };
  process.on("SIGTERM", bye);
  process.on("SIGINT", bye);
}
