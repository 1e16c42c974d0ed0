/**
 * What the inspector keeps: a bounded ring of captured requests and WebSocket sessions (oldest
 * dropped first), each with the first bytes of its bodies, plus the listeners of the live list.
 * Nothing here touches the network; `capture.ts` fills it, `server.ts` serves it.
 */
import type { HeaderList } from "../../tunnel/head.ts";

/** How many bytes beyond a kept chunk its backing buffer may hold before the tap copies instead. */
const PIN_SLACK = 4096;

/** The first `limit` bytes of a body; the rest is counted, never held. */
export class BodyTap {
  /** The first part kept, then any further ones (most bodies arrive in one chunk: no array). */
  private first: Uint8Array | null = null;
  private more: Uint8Array[] | null = null;
  /** Bytes held (≤ limit). */
  captured = 0;
  /** Bytes seen in all. */
  size = 0;
  constructor(private readonly limit: number) {}
  push(chunk: Uint8Array): void {
    this.size += chunk.length;
    const room = this.limit - this.captured;
    if (room <= 0) return;
    const n = room < chunk.length ? room : chunk.length;
    let part: Uint8Array;
    if (n === chunk.length && chunk.buffer.byteLength - n <= PIN_SLACK) {
      // Kept by reference, not copied: chunks reaching here are never written to again (the origin
      // client and the tunnel hand out fresh socket reads and views of them), and the buffer
      // behind this view is at most PIN_SLACK bytes larger than what we keep.
      part = chunk;
    } else {
      // A copy into a plain Uint8Array: a view would pin the reader's whole (larger) buffer, and
      // slice / subarray on a Buffer go through its species constructor (slow).
      part = new Uint8Array(n);
      part.set(n === chunk.length ? chunk : new Uint8Array(chunk.buffer, chunk.byteOffset, n));
    }
    if (this.first === null) this.first = part;
    else (this.more ??= []).push(part);
    this.captured += n;
  }
  get truncated(): boolean {
    return this.size > this.captured;
  }
  bytes(): Uint8Array {
    if (this.first === null) return new Uint8Array(0);
    if (this.more === null) return this.first;
    const out = new Uint8Array(this.captured);
    out.set(this.first);
    let off = this.first.length;
    for (const p of this.more) {
      out.set(p, off);
      off += p.length;
    }
    this.first = out;
    this.more = null;
    return out;
  }
}

/** The request body of a GET / HEAD (never read: forward.ts discards it). */
export const NO_BODY = new BodyTap(0);

/** A body as the API shows it: UTF-8 text when it decodes as such, else base64. */
export interface BodyView {
  size: number;
  captured: number;
  truncated: boolean;
  encoding: "utf8" | "base64";
  data: string;
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

export function bodyView(tap: BodyTap): BodyView {
  const bytes = tap.bytes();
  let data: string | undefined;
  try {
    // a cut in the middle of a multi-byte character is not "binary": retry without the last 3 bytes
    data = strictUtf8.decode(bytes);
  } catch {
    if (tap.truncated) {
      for (let cut = 1; cut <= 3 && data === undefined; cut++) {
        try {
          data = strictUtf8.decode(bytes.subarray(0, Math.max(0, bytes.length - cut)));
        } catch {}
      }
    }
  }
  if (data !== undefined && !data.includes("\0")) return { size: tap.size, captured: tap.captured, truncated: tap.truncated, encoding: "utf8", data };
  return { size: tap.size, captured: tap.captured, truncated: tap.truncated, encoding: "base64", data: Buffer.from(bytes).toString("base64") };
}

export interface WsMessage {
  /** "in": from the public client to the app; "out": from the app to the client. */
  dir: "in" | "out";
  binary: boolean;
  size: number;
  /** Milliseconds since the session opened. */
  at: number;
  body: BodyTap;
}

export interface Entry {
  id: number;
  kind: "http" | "ws";
  /** Epoch milliseconds when the request arrived. */
  time: number;
  /** performance.now() at arrival (durations). */
  t0: number;
  method: string;
  target: string;
  /** The local app this request went to, e.g. http://localhost:3000 (replays go there). */
  origin: string;
  /** The public client's address, as the gateway saw it. */
  client?: string;
  /** Headers as sent to the local app (after Host rewrite and X-Forwarded-*). */
  reqHeaders: HeaderList;
  reqBody: BodyTap;
  status?: number;
  resHeaders?: HeaderList;
  resBody: BodyTap;
  /** Milliseconds until the app's response head. */
  ttfbMs?: number;
  ms?: number;
  error?: string;
  done: boolean;
  /** Set on a replay made by the inspector: the id of the entry it replays. */
  replayOf?: number;
  // WebSocket sessions
  closeCode?: number;
  counts?: { in: number; out: number };
  messages?: WsMessage[];
}

export interface InspectLimits {
  /** Entries kept (oldest dropped first). */
  entries: number;
  /** Bytes of each body (and each kept WebSocket message) captured. */
  bodyLimit: number;
  /** WebSocket messages kept per session (the most recent). */
  wsMessages: number;
}

export const DEFAULT_LIMITS: InspectLimits = { entries: 500, bodyLimit: 64 * 1024, wsMessages: 50 };

/** One line of the live list. */
export function summary(e: Entry) {
  return {
    id: e.id,
    kind: e.kind,
    time: new Date(e.time).toISOString(),
    method: e.method,
    path: e.target,
    status: e.status ?? null,
    ms: e.ms === undefined ? null : Math.round(e.ms * 10) / 10,
    req_bytes: e.reqBody.size,
    res_bytes: e.resBody.size,
    done: e.done,
    ...(e.error ? { error: e.error } : {}),
    ...(e.counts ? { messages: e.counts } : {}),
    ...(e.replayOf !== undefined ? { replay_of: e.replayOf } : {}),
  };
}

/** Everything about one entry. */
export function detail(e: Entry) {
  return {
    ...summary(e),
    origin: e.origin,
    client: e.client ?? null,
    ttfb_ms: e.ttfbMs === undefined ? null : Math.round(e.ttfbMs * 10) / 10,
    request: { headers: e.reqHeaders, body: bodyView(e.reqBody) },
    response: e.status === undefined ? null : { status: e.status, headers: e.resHeaders ?? [], body: bodyView(e.resBody) },
    ...(e.closeCode !== undefined ? { close_code: e.closeCode } : {}),
    ...(e.messages ? { ws_messages: e.messages.map((m) => ({ dir: m.dir, binary: m.binary, size: m.size, at_ms: Math.round(m.at), body: bodyView(m.body) })) } : {}),
  };
}

/** What changed since the last notification: entries added, and earlier entries updated. */
export interface Batch {
  added: Entry[];
  updated: Entry[];
}
export type Listener = (batch: Batch) => void;

export class InspectStore {
  private readonly ring: Array<Entry | undefined>;
  private next = 1;
  private readonly listeners = new Set<Listener>();
  /** Entries added / changed this event-loop turn, told to the listeners once, at its end. */
  private added: Entry[] = [];
  private readonly updated = new Set<Entry>();
  private scheduled = false;
  constructor(readonly limits: InspectLimits = DEFAULT_LIMITS) {
    this.ring = new Array(Math.max(1, limits.entries));
  }
  /** Takes `entry` in (its id is set here), dropping the oldest when full. */
  add<E extends Entry>(entry: E): E {
    entry.id = this.next++;
    this.ring[entry.id % this.ring.length] = entry;
    if (this.listeners.size) {
      this.added.push(entry);
      this.schedule();
    }
    return entry;
  }
  /** Tells the live list an entry changed (answered, finished); nothing when no one listens. */
  changed(e: Entry): void {
    if (this.listeners.size) {
      this.updated.add(e);
      this.schedule();
    }
  }
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }
  private flush(): void {
    this.scheduled = false;
    const added = this.added;
    this.added = [];
    const fresh = new Set(added);
    const updated: Entry[] = [];
    for (const e of this.updated) if (!fresh.has(e)) updated.push(e); // a new entry is sent as it is now
    this.updated.clear();
    if (!added.length && !updated.length) return;
    for (const l of this.listeners) l({ added, updated });
  }
  get(id: number): Entry | undefined {
    const e = this.ring[id % this.ring.length];
    return e?.id === id ? e : undefined;
  }
  /** Newest first. */
  list(): Entry[] {
    const out: Entry[] = [];
    for (let id = this.next - 1; id >= 1 && out.length < this.ring.length; id--) {
      const e = this.get(id);
      if (!e) break;
      out.push(e);
    }
    return out;
  }
  /** Live-list notifications, batched per event-loop turn; returns the unsubscribe. */
  subscribe(l: Listener): () => void {
    this.listeners.add(l);
    return () => {
      this.listeners.delete(l);
      if (!this.listeners.size) {
        this.added = [];
        this.updated.clear();
      }
    };
  }
  clear(): void {
    this.ring.fill(undefined);
  }
}
