/**
 * The agent's HTTP/1.1 client to the local app: keep-alive sockets over `Bun.connect`, requests
 * and responses streamed both ways with backpressure. It replaces `fetch()` on the hot path:
 * fetch runs on Bun's HTTP thread and wraps every body in a web stream, which cost about twice
 * the CPU per small request on the agent (bench: `bench/results/README.md`).
 *
 * Response framing follows RFC 9112 §6.3: no body for HEAD / 1xx / 204 / 304, chunked when the
 * last transfer coding is chunked, Content-Length when given, else until the origin closes.
 * Interim 1xx answers (100 Continue, 103 Early Hints) are skipped.
 *
 * The origin may close an idle keep-alive socket just as we reuse it. Against that race: a
 * bodiless request that failed on a reused socket before any answer byte is retried once on a
 * fresh socket; a request with a body (which cannot be replayed) never goes on a socket idle for
 * more than 1 s; idle sockets are closed after 4 s, or 0.5 s before the `Keep-Alive: timeout=N`
 * the origin announced (Node's http server says `timeout=5`).
 */
import { chunkFrame, Exchange, OriginConn, OriginProtocolError, type Ctx, type OriginEndpoint, type OriginRequest, type OriginResponse } from "./origin-conn.ts";

export { OriginProtocolError, type OriginEndpoint, type OriginRequest, type OriginResponse } from "./origin-conn.ts";

/** What a request needs of an abort signal: an `AbortSignal` fits, and so does `AbortHook`. */
export interface AbortLike {
  readonly aborted: boolean;
  addEventListener(type: "abort", listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: "abort", listener: () => void): void;
}

/** A one-listener abort signal without the DOM event machinery (one per proxied request). */
export class AbortHook implements AbortLike {
  aborted = false;
  private listener: (() => void) | null = null;
  addEventListener(_type: "abort", listener: () => void): void {
    this.listener = listener;
  }
  removeEventListener(): void {
    this.listener = null;
  }
  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    const l = this.listener;
    this.listener = null;
    l?.();
  }
}

/** A request with a body (never replayed) is not sent on a socket idle for longer than this. */
const BODY_REUSE_MAX_IDLE_MS = 1000;

export interface OriginPoolOptions {
  /** Idle keep-alive sockets kept per origin (default 128). */
  maxIdle?: number;
  /** Close an idle socket after this long (default 4 s: under Node's 5 s keep-alive timeout). */
  idleMs?: number;
}

/** Keep-alive connections to local apps, reused across requests. */
export class OriginPool {
  private readonly idle = new Map<string, OriginConn[]>();
  private readonly maxIdle: number;
  private readonly idleMs: number;

  constructor(o: OriginPoolOptions = {}) {
    this.maxIdle = o.maxIdle ?? 128;
    this.idleMs = o.idleMs ?? 4000;
  }

  /** Idle sockets held now (all origins). */
  get idleCount(): number {
    let n = 0;
    // fix: a socket the origin closed while idle stays in its list until taken; do not count it
    for (const l of this.idle.values()) for (const c of l) if (!c.closed) n++;
    return n;
  }

  /** Closes every idle socket. */
  close(): void {
    for (const l of this.idle.values()) for (const c of l) c.socket.end();
    this.idle.clear();
  }

  /**
   * Sends `req` and resolves with the response head once it arrives; the body streams from
   * `response.body`. `signal` aborts the exchange (the socket is dropped).
   */
  async request(ep: OriginEndpoint, req: OriginRequest, signal?: AbortLike): Promise<OriginResponse> {
    const key = `${ep.secure ? "s" : ""}${ep.hostname}:${ep.port}`;
    for (let attempt = 0; ; attempt++) {
      const reusedConn = this.takeIdle(key, req.body !== null);
      const conn = reusedConn ?? (await this.connect(key, ep));
      const bytesBefore = conn.bytesIn;
      try {
        return await this.exchange(conn, req, signal);
      } catch (err) {
        // a stale keep-alive socket: nothing answered; only a bodiless request can be replayed
        // (fix: "nothing answered" was not checked — a request the origin had begun to answer was replayed)
        const answered = conn.bytesIn !== bytesBefore;
        if (reusedConn && attempt === 0 && !answered && req.body === null && !signal?.aborted && !(err instanceof OriginProtocolError)) continue;
        throw err;
      }
    }
  }

  /** The most recently idle open socket; for a request with a body only one idle for at most 1 s. */
  private takeIdle(key: string, withBody: boolean): OriginConn | null {
    const list = this.idle.get(key);
    while (list && list.length > 0) {
      const c = list.pop()!;
      clearTimeout(c.idleTimer);
      if (c.closed) continue;
      if (withBody && performance.now() - c.idleSince > BODY_REUSE_MAX_IDLE_MS) {
        // the list is newest-last: every socket left is older still
        c.socket.end();
        for (const old of list.splice(0)) {
          clearTimeout(old.idleTimer);
          if (!old.closed) old.socket.end();
        }
        return null;
      }
      c.reused = true;
      return c;
    }
    return null;
  }

  private connect(key: string, ep: OriginEndpoint): Promise<OriginConn> {
    const conn = new OriginConn(key);
    return new Promise<OriginConn>((resolve, reject) => {
      Bun.connect<Ctx>({
        hostname: ep.hostname,
        port: ep.port,
        ...(ep.secure ? { tls: { rejectUnauthorized: false, serverName: ep.hostname } } : {}),
        data: { conn },
        socket: {
          binaryType: "uint8array",
          open(s) {
            conn.socket = s;
            s.setNoDelay?.(true);
            resolve(conn);
          },
          data(s, d) {
            const c = s.data.conn!;
            c.bytesIn += (d as Uint8Array).length;
            if (c.active) c.active.onData(d as Uint8Array);
            else c.destroy(); // bytes while idle: not HTTP we understand
          },
          drain: (s) => s.data.conn?.onDrain(),
          end: (s) => void s.end(),
          close: (s, err) => s.data.conn?.onClose(err),
          error: (s, err) => s.data.conn?.onClose(err),
          connectError: (_s, err) => reject(err),
        },
      }).catch(reject);
    });
  }

  private release(conn: OriginConn, reusable: boolean, keepAliveMs: number | null = null): void {
    conn.active = null;
    // close before the origin's announced keep-alive timeout, with a margin for the race
    const idleMs = keepAliveMs !== null ? Math.min(this.idleMs, keepAliveMs - 500) : this.idleMs;
    if (!reusable || conn.closed || idleMs < 100) {
      if (!conn.closed) conn.socket.end();
      return;
    }
    let list = this.idle.get(conn.key);
    if (!list) this.idle.set(conn.key, (list = []));
    // fix: drop sockets that closed while idle, so they neither count towards maxIdle nor linger
    for (let i = list.length - 1; i >= 0; i--) if (list[i]!.closed) list.splice(i, 1);
    if (list.length >= this.maxIdle) {
      conn.socket.end();
      return;
    }
    list.push(conn);
    conn.idleSince = performance.now();
    conn.idleTimer = setTimeout(() => {
      const i = list.indexOf(conn);
      if (i >= 0) list.splice(i, 1);
      conn.socket.end();
    }, idleMs);
    conn.idleTimer.unref?.();
  }

  private async exchange(conn: OriginConn, req: OriginRequest, signal?: AbortLike): Promise<OriginResponse> {
    const ex = new Exchange(conn, req.method === "HEAD");
    conn.active = ex;
    const reader = req.body?.getReader() ?? null;
    let bodySent = reader === null;
    ex.onDone = (reusable) => {
      if (!bodySent) {
        // the answer is complete (or failed) before the request body went: drop the rest of the
        // body (the tunnel gets its credit back) and never reuse the socket
        reusable = false;
        void reader!.cancel().catch(() => {});
      }
      this.release(conn, reusable, ex.keepAliveMs);
      signal?.removeEventListener("abort", onAbort);
    };
    const onAbort = () => {
      ex.fail(new DOMException("The operation was aborted.", "AbortError"));
      conn.destroy();
    };
    if (signal?.aborted) {
      // fix: the connection was taken (or opened) but nothing was written: give it back, not leak it
      this.release(conn, true);
      throw new DOMException("The operation was aborted.", "AbortError");
    }
    signal?.addEventListener("abort", onAbort, { once: true });

    let head = `${req.method} ${req.target} HTTP/1.1\r\n`;
    for (const [n, v] of req.headers) head += `${n}: ${v}\r\n`;
    if (req.body !== null) head += req.contentLength !== null ? `content-length: ${req.contentLength}\r\n` : "transfer-encoding: chunked\r\n";
    head += "\r\n";
    await conn.write(head);
    if (reader) {
      this.sendBody(conn, ex, reader, req.contentLength).then(
        () => {
          bodySent = true;
        },
        (err: Error) => {
          ex.fail(err);
          conn.destroy();
        },
      );
    }
    return ex.head;
  }

  private async sendBody(conn: OriginConn, ex: Exchange, reader: ReadableStreamDefaultReader<Uint8Array>, contentLength: number | null): Promise<void> {
    const chunked = contentLength === null;
    let sent = 0;
    try {
      for (;;) {
        if (ex.mode === "done" || conn.closed) return; // answered (or gone) already: stop sending
        const { value, done } = await reader.read();
        if (done) break;
        if (!value || value.length === 0) continue;
        sent += value.length;
        if (!chunked && sent > contentLength!) throw new Error("the request body is longer than its Content-Length");
        if (!chunked) await conn.write(value);
        else if (value.length <= 16 * 1024) await conn.write(chunkFrame(value)); // one write for small chunks
        else {
          await conn.write(`${value.length.toString(16)}\r\n`);
          await conn.write(value);
          await conn.write("\r\n");
        }
      }
      if (!chunked && sent !== contentLength) throw new Error("the request body ended before its Content-Length");
      if (chunked) await conn.write("0\r\n\r\n");
    } catch (err) {
      if (ex.mode === "done" || conn.closed) return; // the exchange is over; nothing to report
      throw err;
    }
  }
}
