/**
 * The capture side of the inspector: what `forward.ts` calls while a request or WebSocket
 * session passes through (only when the inspector is on — with `--no-inspect` the forwarder holds
 * no `Inspector` and skips all of this). Bodies are tapped, not buffered: the first
 * `bodyLimit` bytes are copied, the rest is only counted.
 */
import type { HeaderList, RequestHead } from "../../tunnel/head.ts";
import { BodyTap, type Entry, type InspectStore, type WsMessage } from "./store.ts";

export class HttpCapture {
  constructor(
    private readonly store: InspectStore,
    readonly entry: Entry,
  ) {}

  /** The request body as the origin client reads it, its first bytes copied on the way. */
  tee(body: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
    const reader = body.getReader();
    const tap = this.entry.reqBody;
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
    const e = this.entry;
    e.status = status;
    e.resHeaders = headers;
    e.ttfbMs = performance.now() - e.t0;
    this.store.changed(e);
  }

  chunk(c: Uint8Array): void {
    this.entry.resBody.push(c);
  }

  finish(status: number, ms: number, error?: string, closeCode?: number): void {
    const e = this.entry;
    e.status = status;
    e.ms = ms;
    if (error) e.error = error;
    if (closeCode !== undefined) e.closeCode = closeCode;
    e.done = true;
    this.store.changed(e);
  }

  /** One WebSocket message (kind "ws"): counted; the last few kept, each cut at the body limit. */
  message(dir: "in" | "out", data: Uint8Array | string, binary: boolean): void {
    const e = this.entry;
    const counts = e.counts!;
    counts[dir]++;
    const bytes = typeof data === "string" ? Buffer.from(data) : data;
    const body = new BodyTap(this.store.limits.bodyLimit);
    body.push(bytes);
    const msgs = e.messages!;
    const m: WsMessage = { dir, binary, size: bytes.length, at: performance.now() - e.t0, body };
    if (msgs.length >= this.store.limits.wsMessages) msgs.shift();
    msgs.push(m);
    this.store.changed(e);
  }
}

export class Inspector {
  constructor(readonly store: InspectStore) {}

  /** Starts capturing one request; `headers` are those sent to the local app at `origin`. */
  begin(head: RequestHead, headers: HeaderList, origin: string): HttpCapture {
    const limit = this.store.limits.bodyLimit;
    const ws = head.kind === "ws";
    const entry = this.store.add({
      kind: head.kind,
      time: Date.now(),
      t0: performance.now(),
      method: head.method,
      target: head.target,
      origin,
      client: head.remote?.address,
      reqHeaders: headers,
      reqBody: new BodyTap(limit),
      resBody: new BodyTap(limit),
      done: false,
      ...(ws ? { counts: { in: 0, out: 0 }, messages: [] } : {}),
    });
    return new HttpCapture(this.store, entry);
  }
}
