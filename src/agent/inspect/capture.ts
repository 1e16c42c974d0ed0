/**
 * The capture side of the inspector: what `forward.ts` calls while a request or WebSocket
 * session passes through (only when the inspector is on — with `--no-inspect` the forwarder holds
 * no `Inspector` and skips all of this). Bodies are tapped, not buffered: the first
 * `bodyLimit` bytes are copied, the rest is only counted. One object per request is both the
 * stored entry and its capture handle (fixed shape, nothing else allocated for a GET).
 */
import type { HeaderList, RequestHead } from "../../tunnel/head.ts";
import { originRequestHeaderList, type OriginOptions } from "../../tunnel/http.ts";
import { BodyTap, NO_BODY, type Entry, type InspectStore, type WsMessage } from "./store.ts";

export class HttpCapture implements Entry {
  id = 0;
  kind: "http" | "ws";
  time = Date.now();
  reqBody: BodyTap;
  /** Allocated at the first response byte (an empty body allocates nothing). */
  resBody: BodyTap = NO_BODY;
  status: number | undefined = undefined;
  /** The response head: the origin's raw head text (one string) or a header list (WebSocket). */
  private resHead: HeaderList | string | undefined = undefined;
  ttfbMs: number | undefined = undefined;
  ms: number | undefined = undefined;
  error: string | undefined = undefined;
  done = false;
  closeCode: number | undefined = undefined;
  counts: { in: number; out: number } | undefined;
  messages: WsMessage[] | undefined;

  constructor(
    private readonly store: InspectStore,
    private readonly head: RequestHead,
    /** The headers sent to the app, or the options that derive them from `head` when asked. */
    private readonly req: HeaderList | OriginOptions,
    readonly origin: string,
    /** performance.now() at arrival: the forwarder's own start time, not a second clock read. */
    readonly t0: number,
  ) {
    this.kind = head.kind;
    this.reqBody = head.kind === "http" && (head.method === "GET" || head.method === "HEAD") ? NO_BODY : new BodyTap(store.limits.bodyLimit);
    if (head.kind === "ws") {
      this.counts = { in: 0, out: 0 };
      this.messages = [];
    } else {
      this.counts = undefined;
      this.messages = undefined;
    }
  }

  // Read from the request head only when the page or API asks (nothing copied per request).
  get method(): string {
    return this.head.method;
  }
  get target(): string {
    return this.head.target;
  }
  get client(): string | undefined {
    return this.head.remote?.address;
  }
  // Header lists are rebuilt when asked: holding the parsed lists for every request in flight
  // and in the ring doubled the agent's garbage-collector work (bench/results/README.md).
  get reqHeaders(): HeaderList {
    return Array.isArray(this.req) ? this.req : originRequestHeaderList(this.head, this.req);
  }
  get resHeaders(): HeaderList | undefined {
    const h = this.resHead;
    return typeof h === "string" ? headerLines(h) : h;
  }

  /** The request body as the origin client reads it, its first bytes copied on the way. */
  tee(body: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
    const reader = body.getReader();
    const tap = this.reqBody;
    return new ReadableStream<Uint8Array>(
      {
        async pull(c) {
          const r = await reader.read();
          if (r.done) return c.close();
          tap.push(r.value);
          c.enqueue(r.value);
        },
        cancel: (reason) => reader.cancel(reason),
      },
      { highWaterMark: 0 },
    );
  }

  /** The app's answer: its raw head text (HTTP) or a header list. */
  response(status: number, headers: HeaderList | string): void {
    this.status = status;
    this.resHead = headers;
    this.ttfbMs = performance.now() - this.t0;
    this.store.changed(this);
  }

  chunk(c: Uint8Array): void {
    if (this.resBody === NO_BODY) this.resBody = new BodyTap(this.store.limits.bodyLimit);
    this.resBody.push(c);
  }

  finish(status: number, ms: number, error?: string, closeCode?: number): void {
    this.status = status;
    this.ms = ms;
    if (error) this.error = error;
    if (closeCode !== undefined) this.closeCode = closeCode;
    this.done = true;
    this.store.changed(this);
  }

  /** One WebSocket message (kind "ws"): counted; the last few kept, each cut at the body limit. */
  message(dir: "in" | "out", data: Uint8Array | string, binary: boolean): void {
    this.counts![dir]++;
    const bytes = typeof data === "string" ? Buffer.from(data) : data;
    const body = new BodyTap(this.store.limits.bodyLimit);
    body.push(bytes);
    const msgs = this.messages!;
    if (msgs.length >= this.store.limits.wsMessages) msgs.shift();
    msgs.push({ dir, binary, size: bytes.length, at: performance.now() - this.t0, body });
    this.store.changed(this);
  }
}

export class Inspector {
  constructor(readonly store: InspectStore) {}

  /** Starts capturing one HTTP request; the headers sent to the app are derived from `head` and `o` when asked. */
  beginHttp(head: RequestHead, o: OriginOptions, t0: number): HttpCapture {
    return this.store.add(new HttpCapture(this.store, head, o, o.origin, t0));
  }

  /**
   * Starts capturing one request; `headers` are those sent to the local app at `origin`, `t0` the
   * forwarder's performance.now() at arrival. Only references are kept: the JSON the page and the
   * API show is built when they ask.
   */
  begin(head: RequestHead, headers: HeaderList, origin: string, t0 = performance.now()): HttpCapture {
    return this.store.add(new HttpCapture(this.store, head, headers, origin, t0));
  }
}

/** Header lines of a raw HTTP/1.x head (after the status line): names lower-cased, values trimmed. */
export function headerLines(text: string): HeaderList {
  const out: HeaderList = [];
  const lines = text.split(/\r?\n/);
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const c = line.indexOf(":");
    if (c > 0) out.push([line.slice(0, c).toLowerCase(), line.slice(c + 1).trim()]);
  }
  return out;
}
