/**
 * One HTTP/1.1 connection to the local app (`OriginConn`: writes with backpressure, close) and the
 * chunked framing of request bodies. The response on it is parsed by `Exchange`
 * (src/agent/origin-exchange.ts); the pool that reuses connections is origin-http.ts.
 */
import type { Socket } from "bun";
import type { HeaderList } from "../tunnel/head.ts";
import type { Exchange } from "./origin-exchange.ts";

export { Exchange } from "./origin-exchange.ts";
export { OriginProtocolError } from "./origin-head.ts";

/** Where the local app listens. */
export interface OriginEndpoint {
  hostname: string;
  port: number;
  secure: boolean;
}

export interface OriginRequest {
  method: string;
  /** Origin-form target (`/path?q`). */
  target: string;
  /** Header lines to send (Host included); framing headers are written by the client. */
  headers: HeaderList;
  /** Request body; `null` sends none. */
  body: ReadableStream<Uint8Array> | null;
  /** Declared body length (Content-Length), else the body goes chunked. */
  contentLength: number | null;
}

export interface OriginResponse {
  status: number;
  /** Header lines as received (names lower-cased, repeats kept, framing headers included). */
  headers: HeaderList;
  /** The head as received (status line and header lines): one string, kept by the inspector instead of `headers`. */
  rawHead: string;
  /** Body bytes in order; empty when the response has none. Ends when the body is complete. */
  body: AsyncIterable<Uint8Array>;
  /** The whole body when it is complete and queued already (≤ 64 KiB, taken from `body`), else null. */
  whole(): Uint8Array | null;
}


export interface Ctx {
  conn: OriginConn | null;
}

export class OriginConn {
  socket!: Socket<Ctx>;
  closed = false;
  closeError: Error | null = null;
  idleTimer: ReturnType<typeof setTimeout> | undefined;
  /** When the socket went idle (performance.now()). */
  idleSince = 0;
  /** Set while a request is using the connection. */
  active: Exchange | null = null;
  reused = false;
  /** Bytes received on this socket so far (fix: a retry is only safe before any answer byte). */
  bytesIn = 0;
  private writeQueue: Uint8Array[] = [];
  private drainWaiters: Array<() => void> = [];

  constructor(readonly key: string) {}

  /** Drops the connection now (never reused). */
  destroy(): void {
    if (!this.closed) {
      this.closed = true;
      this.socket.terminate();
    }
  }

  /** Writes `data`, resolving when the socket has taken all of it. */
  write(data: Uint8Array | string): Promise<void> | undefined {
    if (this.closed) return Promise.reject(this.closeError ?? new Error("the connection to the local app closed"));
    if (this.writeQueue.length === 0) {
      const bytes = typeof data === "string" ? Buffer.from(data, "latin1") : data;
      const n = this.socket.write(bytes);
      if (n >= bytes.length) return undefined;
      this.writeQueue.push(bytes.subarray(Math.max(0, n)));
    } else this.writeQueue.push(typeof data === "string" ? Buffer.from(data, "latin1") : data);
    return new Promise<void>((res, rej) => this.drainWaiters.push(() => (this.closed ? rej(this.closeError ?? new Error("the connection to the local app closed")) : res())));
  }

  onDrain(): void {
    while (this.writeQueue.length > 0) {
      const head = this.writeQueue[0]!;
      const n = this.socket.write(head);
      if (n >= head.length) this.writeQueue.shift();
      else {
        this.writeQueue[0] = head.subarray(Math.max(0, n));
        return;
      }
    }
    this.wakeWriters();
  }

  onClose(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.closeError = err ?? null;
    clearTimeout(this.idleTimer);
    this.writeQueue = [];
    this.wakeWriters();
    this.active?.onClose(err);
  }

  private wakeWriters(): void {
    const w = this.drainWaiters;
    this.drainWaiters = [];
    for (const f of w) f();
  }
}

/** `size CRLF data CRLF` in one buffer. */
export function chunkFrame(value: Uint8Array): Uint8Array {
  const size = `${value.length.toString(16)}\r\n`;
  const out = new Uint8Array(size.length + value.length + 2);
  for (let i = 0; i < size.length; i++) out[i] = size.charCodeAt(i);
  out.set(value, size.length);
  out[out.length - 2] = 0x0d;
  out[out.length - 1] = 0x0a;
  return out;
}
