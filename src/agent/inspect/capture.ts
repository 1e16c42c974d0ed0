/**
 * The capture side of the inspector: what `forward.ts` calls while a request or WebSocket
 * session passes through (only when the inspector is on — with `--no-inspect` the forwarder holds
 * no `Inspector` and skips all of this). Bodies are tapped, not buffered: the first
 * `bodyLimit` bytes are copied, the rest is only counted. One object per request is both the
 * stored entry and its capture handle (fixed shape, nothing else allocated for a GET).
 */
import type { HeaderList, RequestHead } from "../../tunnel/head.ts";
import { BodyTap, NO_BODY, type Entry, type InspectStore, type WsMessage } from "./store.ts";

export class HttpCapture implements Entry {
  id = 0;
  kind: "http" | "ws";
  time = Date.now();
  t0 = performance.now();
  method: string;
  target: string;
  client: string | undefined;
  reqBody: BodyTap;
  resBody: BodyTap;
  status: number | undefined = undefined;
  resHeaders: HeaderList | undefined = undefined;
  ttfbMs: number | undefined = undefined;
  ms: number | undefined = undefined;
  error: string | undefined = undefined;
  done = false;
  closeCode: number | undefined = undefined;
  counts: { in: number; out: number } | undefined;
  messages: WsMessage[] | undefined;

  constructor(
    private readonly store: InspectStore,
    head: RequestHead,
    readonly reqHeaders: HeaderList,
    readonly origin: string,
  ) {
    const limit = store.limits.bodyLimit;
    this.kind = head.kind;
    this.method = head.method;
    this.target = head.target;
    this.client = head.remote?.address;
    this.reqBody = head.kind === "http" && (head.method === "GET" || head.method === "HEAD") ? NO_BODY : new BodyTap(limit);
    this.resBody = new BodyTap(limit);
    const ws = head.kind === "ws";
    this.counts = ws ? { in: 0, out: 0 } : undefined;
    this.messages = ws ? [] : undefined;
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

  response(status: number, headers: HeaderList): void {
    this.status = status;
    this.resHeaders = headers;
    this.ttfbMs = performance.now() - this.t0;
    this.store.changed(this);
  }

  chunk(c: Uint8Array): void {
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

  /** Starts capturing one request; `headers` are those sent to the local app at `origin`. */
  begin(head: RequestHead, headers: HeaderList, origin: string): HttpCapture {
    return this.store.add(new HttpCapture(this.store, head, headers, origin));
  }
}
