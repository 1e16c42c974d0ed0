/**
 * Test kit for the `OriginPool` tests (test/origin-http-*.test.ts): bounded waits, raw TCP
 * origins (`Bun.listen`) that write exact bytes so framing edge cases and races can be produced,
 * `Bun.serve` origins for the common path, and the pools a test made (closed by
 * `cleanupOrigins`).
 */
import type { Server, Socket, TCPSocketListener } from "bun";
import { OriginPool, type OriginEndpoint, type OriginRequest, type OriginResponse } from "../../src/agent/origin-http.ts";

export const enc = new TextEncoder();
export const latin1 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("latin1");
export const bytes = (s: string) => new Uint8Array(Buffer.from(s, "latin1"));

// ---------------------------------------------------------------------------------------------
// bounded waiting

/** `p`, or a rejection naming `what` after `ms`. */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `cond` every 5 ms for at most `ms`; throws naming `what` if it never holds. */
export async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = performance.now() + ms;
  for (let i = 0; i < 100_000 && performance.now() < deadline; i++) {
    if (cond()) return;
    await Bun.sleep(5);
  }
  if (!cond()) throw new Error(`timed out after ${ms} ms waiting for: ${what}`);
}

/** The whole body of `res`, bounded in time. */
export async function readAll(res: OriginResponse, ms = 10_000): Promise<Uint8Array> {
  return within(
    (async () => {
      const parts: Uint8Array[] = [];
      for await (const c of res.body) parts.push(c);
      return new Uint8Array(Buffer.concat(parts));
    })(),
    ms,
    "reading the response body",
  );
}

export const text = async (res: OriginResponse) => latin1(await readAll(res));

/** The error thrown while draining `res.body` (fails the test if the body completes). */
export async function bodyError(res: OriginResponse, ms = 10_000): Promise<Error> {
  try {
    await readAll(res, ms);
  } catch (e) {
    return e as Error;
  }
  throw new Error("the body completed, but an error was expected");
}

/** The rejection of `p` (fails the test if it resolves), bounded in time. */
export async function rejection(p: Promise<unknown>, ms = 10_000): Promise<Error> {
  try {
    await within(p, ms, "a request expected to fail");
  } catch (e) {
    if ((e as Error).message.startsWith("timed out after")) throw e;
    return e as Error;
  }
  throw new Error("resolved, but a rejection was expected");
}

export function get(target = "/", method = "GET", headers: [string, string][] = [["host", "origin.test"]]): OriginRequest {
  return { method, target, headers, body: null, contentLength: null };
}

export function streamOf(parts: Uint8Array[], onCancel?: () => void): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(c) {
      if (i < parts.length) c.enqueue(parts[i++]!);
      else c.close();
    },
    cancel() {
      onCancel?.();
    },
  });
}

// ---------------------------------------------------------------------------------------------
// raw TCP origins

export interface RawRequest {
  head: string;
  method: string;
  target: string;
  headers: [string, string][];
  body: Uint8Array;
}

export interface RawConn {
  id: number;
  socket: Socket<{ conn: RawConn }>;
  /** Requests completely received on this connection, in order. */
  requests: RawRequest[];
  closed: boolean;
  closedAt: number;
  /** Stops parsing (the origin "does not read" the rest). */
  ignoreInput: boolean;
  /** The current request's head was already reported to `onHead`. */
  headSeen: boolean;
  buf: Uint8Array;
  /** Every byte received. */
  received: Uint8Array[];
  /** Writes everything (waits for drain when the socket is full). */
  send(data: Uint8Array | string): Promise<void>;
  /** Writes `data` in pieces cut at `cuts`, sleeping `gapMs` between pieces. */
  sendSplit(data: Uint8Array | string, cuts: number[], gapMs: number): Promise<void>;
  queue: Uint8Array[];
  drainWaiters: (() => void)[];
}

export interface RawOrigin {
  port: number;
  ep: OriginEndpoint;
  conns: RawConn[];
  readonly accepted: number;
  readonly closedCount: number;
  stop(): void;
}

export interface RawHandlers {
  /** A complete request arrived (`n` counts requests on this connection from 0). */
  onRequest?(c: RawConn, req: RawRequest, n: number): void | Promise<void>;
  /** A request head arrived; return `"stop"` to stop reading the connection (body unread). */
  onHead?(c: RawConn, req: RawRequest): void | "stop";
  onOpen?(c: RawConn): void;
}

export const origins: { stop(): void }[] = [];
export const pools: OriginPool[] = [];
/** Closes the pools and origins a test made (each test file: `afterEach(cleanupOrigins)`). */
export function cleanupOrigins(): void {
  for (const p of pools.splice(0)) p.close();
  for (const o of origins.splice(0)) o.stop();
}

export function newPool(o?: ConstructorParameters<typeof OriginPool>[0]): OriginPool {
  const p = new OriginPool(o);
  pools.push(p);
  return p;
}

export function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Parses complete requests off `c.buf` (Content-Length or chunked bodies). */
export function parseRequests(c: RawConn, h: RawHandlers): void {
  for (let guard = 0; guard < 10_000 && !c.ignoreInput; guard++) {
    const s = latin1(c.buf);
    const end = s.indexOf("\r\n\r\n");
    if (end < 0) return;
    const head = s.slice(0, end);
    const lines = head.split("\r\n");
    const [method = "", target = ""] = lines[0]!.split(" ");
    const headers = lines.slice(1).map((l): [string, string] => {
      const i = l.indexOf(":");
      return [l.slice(0, i).toLowerCase(), l.slice(i + 1).trim()];
    });
    const req: RawRequest = { head, method, target, headers, body: new Uint8Array(0) };
    let pos = end + 4;
    const cl = headers.find(([n]) => n === "content-length");
    const chunked = headers.some(([n, v]) => n === "transfer-encoding" && /chunked/i.test(v));
    if (!c.headSeen) {
      c.headSeen = true;
      if (h.onHead?.(c, req) === "stop") {
        c.ignoreInput = true;
        return;
      }
    }
    if (chunked) {
      const parts: Uint8Array[] = [];
      for (let k = 0; k < 100_000; k++) {
        const nl = s.indexOf("\r\n", pos);
        if (nl < 0) return;
        const size = parseInt(s.slice(pos, nl).split(";")[0]!, 16);
        if (Number.isNaN(size)) throw new Error(`test origin: bad chunk size line ${JSON.stringify(s.slice(pos, nl))}`);
        if (size === 0) {
          const tEnd = s.indexOf("\r\n\r\n", nl);
          if (tEnd < 0) return;
          pos = tEnd + 4;
          break;
        }
        if (s.length < nl + 2 + size + 2) return;
        parts.push(c.buf.slice(nl + 2, nl + 2 + size));
        if (s.slice(nl + 2 + size, nl + 4 + size) !== "\r\n") throw new Error("test origin: chunk without CRLF");
        pos = nl + 4 + size;
      }
      req.body = new Uint8Array(Buffer.concat(parts));
    } else if (cl) {
      const n = Number(cl[1]);
      if (c.buf.length < pos + n) return;
      req.body = c.buf.slice(pos, pos + n);
      pos += n;
    }
    c.buf = c.buf.slice(pos);
    c.headSeen = false;
    const n = c.requests.length;
    c.requests.push(req);
    void h.onRequest?.(c, req, n);
  }
}

export function rawOrigin(h: RawHandlers): RawOrigin {
  const conns: RawConn[] = [];
  const flush = (c: RawConn) => {
    while (c.queue.length > 0) {
      const head = c.queue[0]!;
      const n = c.socket.write(head);
      if (n >= head.length) c.queue.shift();
      else {
        c.queue[0] = head.subarray(Math.max(0, n));
        return;
      }
    }
    const w = c.drainWaiters.splice(0);
    for (const f of w) f();
  };
  const listener: TCPSocketListener<{ conn: RawConn }> = Bun.listen<{ conn: RawConn }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      binaryType: "uint8array",
      open(socket) {
        const c: RawConn = {
          id: conns.length,
          socket,
          requests: [],
          closed: false,
          closedAt: 0,
          ignoreInput: false,
          headSeen: false,
          buf: new Uint8Array(0),
          received: [],
          queue: [],
          drainWaiters: [],
          send(data) {
            if (c.closed) return Promise.resolve();
            c.queue.push(typeof data === "string" ? bytes(data) : data);
            flush(c);
            if (c.queue.length === 0) return Promise.resolve();
            return new Promise<void>((r) => c.drainWaiters.push(r));
          },
          async sendSplit(data, cuts, gapMs) {
            const b = typeof data === "string" ? bytes(data) : data;
            let from = 0;
            for (const cut of [...cuts, b.length]) {
              if (cut <= from) continue;
              await c.send(b.subarray(from, cut));
              from = cut;
              if (from < b.length) await Bun.sleep(gapMs);
            }
          },
        };
        socket.data = { conn: c };
        conns.push(c);
        h.onOpen?.(c);
      },
      data(socket, d) {
        const c = socket.data.conn;
        c.received.push(d);
        if (c.ignoreInput) return;
        c.buf = concatBytes(c.buf, d);
        parseRequests(c, h);
      },
      drain(socket) {
        flush(socket.data.conn);
      },
      end(socket) {
        socket.end();
      },
      close(socket) {
        const c = socket.data.conn;
        c.closed = true;
        c.closedAt = performance.now();
        for (const f of c.drainWaiters.splice(0)) f();
      },
      error() {},
    },
  });
  const o: RawOrigin = {
    port: listener.port,
    ep: { hostname: "127.0.0.1", port: listener.port, secure: false },
    conns,
    get accepted() {
      return conns.length;
    },
    get closedCount() {
      return conns.filter((c) => c.closed).length;
    },
    stop() {
      listener.stop(true);
      for (const c of conns) if (!c.closed) c.socket.terminate();
    },
  };
  origins.push(o);
  return o;
}

/** A raw origin answering every request with `answer(req, n)` (a string or bytes). */
export function answering(answer: (req: RawRequest, n: number, c: RawConn) => string | Uint8Array): RawOrigin {
  return rawOrigin({ onRequest: (c, req, n) => void c.send(answer(req, n, c)) });
}

export const ok = (body: string, extra = "") => `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n${extra}\r\n${body}`;

export function serve(opts: Omit<Parameters<typeof Bun.serve>[0], "hostname" | "port">): { server: Server<undefined>; ep: OriginEndpoint } {
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, development: false, ...opts } as Parameters<typeof Bun.serve>[0]) as Server<undefined>;
  origins.push({ stop: () => server.stop(true) });
  return { server, ep: { hostname: "127.0.0.1", port: server.port!, secure: false } };
}

/** A port nothing listens on (was just bound and released). */
export function freePort(): number {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

/** A small deterministic PRNG (mulberry32) so random splits are reproducible. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// =============================================================================================
