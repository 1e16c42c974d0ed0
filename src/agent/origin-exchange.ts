/**
 * One request/response on a connection to the local app (`Exchange`): the incremental RFC 9112
 * response parser — status line and headers (src/agent/origin-head.ts), Content-Length / chunked /
 * close-delimited bodies, interim 1xx skipped — and the body queue that pauses the socket above
 * 256 KiB. It touches its connection only through `destroy()` and the socket's pause / resume.
 */
import { hasConnectionOption, latin1Slice, OriginProtocolError, parseResponseHead } from "./origin-head.ts";
import type { OriginConn, OriginResponse } from "./origin-conn.ts";
import type { HeaderList } from "../tunnel/head.ts";
import { concatBytes } from "../net/bytes.ts";

const MAX_HEAD = 256 * 1024;
/** Response bytes buffered ahead of the tunnel before the socket is paused. */
const READ_HWM = 256 * 1024;
/** Queued response pieces up to this size are handed on joined into one. */
const COALESCE_MAX = 64 * 1024;
const CRLF = 0x0a;

type Mode = "head" | "length" | "chunk-size" | "chunk-data" | "chunk-crlf" | "trailers" | "close" | "done";

/** One request/response on one connection: the incremental response parser and body queue. */
export class Exchange implements AsyncIterableIterator<Uint8Array> {
  mode: Mode = "head";
  private buf: Uint8Array | null = null;
  private remaining = 0;
  status = 0;
  headers: HeaderList = [];
  keepAlive = true;
  /** The origin's announced keep-alive timeout (`Keep-Alive: timeout=N`), in ms; null = none. */
  keepAliveMs: number | null = null;
  /** Bytes of the answer received (any at all rules out a retry). */
  received = 0;
  private queue: Uint8Array[] = [];
  private queued = 0;
  private waiter: (() => void) | null = null;
  private failure: Error | null = null;
  private paused = false;
  headResolve!: (r: OriginResponse) => void;
  headReject!: (e: Error) => void;
  readonly head: Promise<OriginResponse>;
  /** Called once the response is complete (or failed), with whether the socket can be reused. */
  onDone: (reusable: boolean) => void = () => {};

  constructor(readonly conn: OriginConn, private readonly noBody: boolean) {
    this.head = new Promise<OriginResponse>((res, rej) => {
      this.headResolve = res;
      this.headReject = rej;
    });
    this.head.catch(() => {});
  }

  onData(chunk: Uint8Array): void {
    if (this.mode === "done" || this.failure) return this.conn.destroy(); // bytes after the answer
    this.received += chunk.length;
    let data = this.buf ? concat(this.buf, chunk) : chunk;
    this.buf = null;
    try {
      while (data.length > 0 && !this.isDone()) data = this.step(data);
    } catch (e) {
      this.fail(e as Error);
      this.conn.destroy();
      return;
    }
    if (this.isDone() && data.length > 0) this.conn.destroy(); // bytes after the answer: never reuse
  }

  isDone(): boolean {
    return this.mode === "done";
  }

  /** Consumes a prefix of `data`; returns the rest. */
  private step(data: Uint8Array): Uint8Array {
    switch (this.mode) {
      case "head": {
        const end = headEnd(data);
        if (end < 0) {
          if (data.length > MAX_HEAD) throw new OriginProtocolError(`the local app's response head is larger than ${MAX_HEAD / 1024} KiB`);
          this.buf = data;
          return EMPTY;
        }
        // fix: a complete head over the limit was accepted when its end arrived in the read that crossed it
        if (end > MAX_HEAD) throw new OriginProtocolError(`the local app's response head is larger than ${MAX_HEAD / 1024} KiB`);
        this.parseHead(latin1Slice.call(data, 0, end));
        return data.subarray(end);
      }
      case "length": {
        const n = Math.min(this.remaining, data.length);
        this.push(data.subarray(0, n));
        this.remaining -= n;
        if (this.remaining === 0) this.finish();
        return data.subarray(n);
      }
      case "close":
        this.push(data);
        return EMPTY;
      case "chunk-size": {
        const nl = data.indexOf(CRLF);
        if (nl < 0) {
          if (data.length > 4096) throw new OriginProtocolError("the local app sent a malformed chunk size line");
          this.buf = data;
          return EMPTY;
        }
        const line = Buffer.from(data.buffer, data.byteOffset, nl).toString("latin1").replace(/\r$/, "");
        const m = /^([0-9a-fA-F]{1,12})[ \t]*(;.*)?$/.exec(line);
        if (!m) throw new OriginProtocolError(`the local app sent a malformed chunk size line (${JSON.stringify(line.slice(0, 40))})`);
        const size = parseInt(m[1]!, 16);
        if (size === 0) this.mode = "trailers";
        else {
          this.remaining = size;
          this.mode = "chunk-data";
        }
        return data.subarray(nl + 1);
      }
      case "chunk-data": {
        const n = Math.min(this.remaining, data.length);
        this.push(data.subarray(0, n));
        this.remaining -= n;
        if (this.remaining === 0) this.mode = "chunk-crlf";
        return data.subarray(n);
      }
      case "chunk-crlf": {
        if (data[0] === 0x0d) {
          if (data.length < 2) {
            this.buf = data;
            return EMPTY;
          }
          if (data[1] !== CRLF) throw new OriginProtocolError("the local app sent a chunk without its CRLF");
          this.mode = "chunk-size";
          return data.subarray(2);
        }
        if (data[0] !== CRLF) throw new OriginProtocolError("the local app sent a chunk without its CRLF");
        this.mode = "chunk-size";
        return data.subarray(1);
      }
      case "trailers": {
        // trailer fields are dropped; the section ends with an empty line
        const nl = data.indexOf(CRLF);
        if (nl < 0) {
          if (data.length > MAX_HEAD) throw new OriginProtocolError("the local app's trailer section is too large");
          this.buf = data;
          return EMPTY;
        }
        const empty = nl === 0 || (nl === 1 && data[0] === 0x0d);
        if (empty) this.finish();
        return data.subarray(nl + 1);
      }
      default:
        return EMPTY;
    }
  }

  /**
   * The status line and header lines in one pass over the head text (indexOf per line, a byte
   * table for names): no split array, no regular expression per line (it ran per response).
   */
  private parseHead(text: string): void {
    const h = parseResponseHead(text);
    const { status, minor, headers, connection, teList, clList } = h;
    if (h.keepAliveMs !== null) this.keepAliveMs = h.keepAliveMs;
    if (status < 200) {
      if (status === 101) throw new OriginProtocolError("the local app switched protocols on a plain HTTP request");
      return; // 100 Continue, 103 Early Hints …: the final answer follows
    }
    this.status = status;
    this.headers = headers;
    if (minor === 0 ? !hasConnectionOption(connection, "keep-alive") : connection !== "" && hasConnectionOption(connection, "close")) this.keepAlive = false;
    const te = teList ? teList.split(",").map((s) => s.trim()).filter(Boolean) : [];
    if (this.noBody || status === 204 || status === 304) this.mode = "done";
    else if (te.length > 0) {
      if (te[te.length - 1] !== "chunked") {
        this.mode = "close";
        this.keepAlive = false;
      } else this.mode = "chunk-size";
    } else if (clList !== null) {
      const cl: string[] = clList;
      let v: string;
      // one field with one value (the common case) needs no set of values
      if (cl.length === 1 && !cl[0]!.includes(",")) v = cl[0]!;
      else {
        const values = new Set(cl.join(",").split(",").map((s) => s.trim()));
        v = [...values][0]!;
        if (values.size !== 1) v = "";
      }
      if (!/^\d{1,15}$/.test(v)) throw new OriginProtocolError(`the local app sent an invalid Content-Length (${JSON.stringify(cl.join(", ").slice(0, 40))})`);
      this.remaining = Number(v);
      this.mode = this.remaining === 0 ? "done" : "length";
    } else {
      this.mode = "close";
      this.keepAlive = false;
    }
    this.headResolve({ status, headers, rawHead: text, body: this, whole: () => this.whole() });
    if (this.mode === "done") this.finish();
  }

  /**
   * The whole body, when the answer is complete and all of it is queued (small responses arrive
   * with their head in one read): one piece up to 64 KiB, taken from the queue — the same piece the
   * iterator would hand out first and last. Null otherwise (iterate the body instead).
   */
  whole(): Uint8Array | null {
    if (this.mode !== "done" || this.failure || this.queued > COALESCE_MAX) return null;
    if (this.queue.length === 0) return EMPTY;
    const chunk = concatBytes(this.queue, this.queued);
    this.queue = [];
    this.queued = 0;
    return chunk;
  }

  private push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.queue.push(chunk);
    this.queued += chunk.length;
    if (this.queued >= READ_HWM && !this.paused) {
      this.paused = true;
      this.conn.socket.pause();
    }
    this.wake();
  }

  private finish(): void {
    this.mode = "done";
    if (this.paused && !this.conn.closed) {
      // fix: the answer is complete and all of it is queued; a socket left paused here went back to
      // the pool unable to read the next request's answer until this body was consumed (forever if never)
      this.paused = false;
      this.conn.socket.resume();
    }
    this.wake();
    this.onDone(this.keepAlive);
  }

  fail(err: Error): void {
    if (this.failure || this.mode === "done") return;
    this.failure = err;
    this.headReject(err);
    this.wake();
    this.onDone(false);
  }

  onClose(err?: Error): void {
    if (this.mode === "close" && !err) return this.finish(); // close-delimited body: complete
    if (this.mode === "done") return;
    this.fail(err ?? new Error(this.status ? "the local app closed the connection in the middle of the response body" : "the local app closed the connection without answering"));
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  // ---- the body as an async iterator: the exchange itself (no object or closures per response) ----

  [Symbol.asyncIterator](): AsyncIterableIterator<Uint8Array> {
    return this;
  }

  next(): Promise<IteratorResult<Uint8Array>> {
    return this.nextChunk();
  }

  /** A consumer that stops early (break / throw) drops the socket, which could otherwise stay open, paused, outside the pool. */
  return(): Promise<IteratorResult<Uint8Array>> {
    if (this.mode !== "done" && !this.failure) {
      this.fail(new Error("the response body was abandoned"));
      this.conn.destroy();
    }
    return Promise.resolve({ value: undefined, done: true });
  }

  private nextChunk(): Promise<IteratorResult<Uint8Array>> {
    if (this.queue.length > 0) {
      let chunk: Uint8Array;
      if (this.queue.length === 1 || this.queued <= COALESCE_MAX) {
        // small pieces (e.g. tiny chunked writes) go on as one tunnel frame
        chunk = concatBytes(this.queue, this.queued);
        this.queue = [];
        this.queued = 0;
      } else {
        // large pieces go on one by one: copying them together would cost a copy of every byte
        chunk = this.queue.shift()!;
        this.queued -= chunk.length;
      }
      if (this.paused && this.queued < READ_HWM && !this.conn.closed) {
        this.paused = false;
        this.conn.socket.resume();
      }
      return Promise.resolve({ value: chunk, done: false });
    }
    if (this.failure) return Promise.reject(this.failure);
    if (this.mode === "done") return Promise.resolve({ value: undefined, done: true });
    return new Promise<void>((r) => (this.waiter = r)).then(() => this.nextChunk());
  }

}

const EMPTY = new Uint8Array(0);

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}


/** Index just past the blank line ending a head, or -1. Accepts bare LF line ends. */
function headEnd(d: Uint8Array): number {
  let i = d.indexOf(CRLF);
  while (i >= 0) {
    if (d[i + 1] === CRLF) return i + 2;
    if (d[i + 1] === 0x0d && d[i + 2] === CRLF) return i + 3;
    i = d.indexOf(CRLF, i + 1);
  }
  return -1;
}
