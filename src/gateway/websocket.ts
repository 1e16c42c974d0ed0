/**
 * Public WebSocket ↔ tunnel stream, with flow control both ways and nothing lost at the edges.
 *
 * - Public → tunnel: while the stream cannot send (no credit, transport congested) the public
 *   socket is paused (`ws.pause()`: not read, so the client sees TCP backpressure); it resumes
 *   once the queued messages went out. Gateway memory per socket stays about one message.
 * - Tunnel → public: over the socket's buffer the tunnel credit is held back (see
 *   `TunnelStream.onWsMessage`) until Bun's `drain`.
 * - Messages and the close the origin sends before the public socket is open (server-speaks-
 *   first protocols) are queued, bounded by the held credit, and delivered in order on `open`.
 * - A public close whose close frame cannot reach the origin (it is not reading) resets the
 *   stream after a grace period, so the stream is always released.
 *
 * Close codes crossing the tunnel are sanitised: the other end is never trusted to put an
 * invalid code on the wire.
 */
import type { ServerWebSocket } from "bun";
import { ResetCode } from "../tunnel/frame.ts";
import type { TunnelStream } from "../tunnel/stream.ts";

export interface PublicWsData {
  stream: TunnelStream;
  publicClosed: boolean;
  /** Before `open`: messages from the origin, in order. Null once the socket is open. */
  early?: Array<[Uint8Array, boolean]> | null;
  /** Before `open`: the origin's close (or the stream's reset), applied after the messages. */
  earlyClose?: { code: number; reason: string } | null;
}

/** How long a public close may wait behind messages the origin is not reading. */
export const CLOSE_FLUSH_MS = 5_000;

/**
 * A close code that may be sent in a close frame (RFC 6455 §7.4). No code → 1000; an abnormal
 * end (1006: the origin's connection dropped without a close frame) → 1011, so the client can
 * tell a crash from a normal close; anything else not sendable → 1011.
 */
export function sanitizeCloseCode(code: number | undefined): number {
  if (code === undefined || code === 1005) return 1000;
  if ((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)) return code;
  return 1011;
}

const td = new TextDecoder();

const pending = new WeakMap<TunnelStream, PublicWsData>();

/**
 * Called as soon as a WebSocket stream is opened (before its response head is awaited: the
 * origin's first messages often arrive in the same session turn as the 101): what the origin says
 * before the public socket opens is kept. `wsDataFor` hands the holder to `server.upgrade`.
 */
export function holdEarlyWs(stream: TunnelStream): void {
  const data: PublicWsData = { stream, publicClosed: false };
  pending.set(stream, data);
  data.early = [];
  data.earlyClose = null;
  stream.onWsMessage = (msg, binary) => {
    data.early?.push([msg, binary]);
    return false; // hold the credit: the origin stops after one window
  };
  stream.onWsClose = (code, reason) => {
    data.earlyClose ??= { code, reason };
  };
  stream.onReset = (err) => {
    data.earlyClose ??= { code: err.code === 0 ? 1001 : 1011, reason: "tunnel stream ended" };
  };
}

/** The socket data prepared by `holdEarlyWs` (or fresh). */
export function wsDataFor(stream: TunnelStream): PublicWsData {
  const d = pending.get(stream) ?? { stream, publicClosed: false };
  pending.delete(stream);
  return d;
}

/** Wires a stream's inbound WebSocket traffic to the public socket (Bun's `open`). */
export function relayWsToPublic(ws: ServerWebSocket<PublicWsData>): void {
  const { stream } = ws.data;
  const early = ws.data.early ?? [];
  const earlyClose = ws.data.earlyClose;
  ws.data.early = null;
  ws.data.earlyClose = null;
  const send = (data: Uint8Array, binary: boolean): boolean => {
    if (ws.data.publicClosed) return true; // nobody to deliver to: drop, and let the credit flow
    const r = binary ? ws.sendBinary(data) : ws.sendText(td.decode(data));
    if (r === 0) stream.reset(ResetCode.CANCEL, "public client too slow (backpressure limit)");
    // -1: queued under backpressure: hold the tunnel credit until the socket drains.
    return r !== -1;
  };
  stream.onWsMessage = send;
  stream.onWsClose = (code, reason) => {
    if (!ws.data.publicClosed) ws.close(sanitizeCloseCode(code), reason.slice(0, 123));
  };
  stream.onReset = (err) => {
    if (!ws.data.publicClosed) ws.close(err.code === 0 ? 1001 : 1011, "tunnel stream ended");
  };
  let congested = false;
  for (const [m, b] of early) if (!send(m, b)) congested = true;
  if (earlyClose) {
    ws.close(sanitizeCloseCode(earlyClose.code), earlyClose.reason.slice(0, 123));
    return;
  }
  if (early.length && !congested) stream.resumeWs();
}

/** Bun's `message`: forward, and stop reading the public socket while the stream is backed up. */
export function publicWsMessage(ws: ServerWebSocket<PublicWsData>, bytes: Uint8Array, binary: boolean): void {
  const d = ws.data;
  d.stream.wsSendQueued(bytes, binary, () => ws.close(1011, "tunnel stream failed"));
  if (d.stream.wsBusy && !ws.isPaused) {
    ws.pause();
    void d.stream.wsFlushed().then(() => {
      if (!d.publicClosed) ws.resume();
    });
  }
}

/** Bun's `close`: pass the close on after the queued messages; never leave the stream behind. */
export function publicWsClose(ws: ServerWebSocket<PublicWsData>, code: number, reason: string | undefined): void {
  const d = ws.data;
  d.publicClosed = true;
  const { stream } = d;
  stream.wsCloseQueued(sanitizeCloseCode(code), reason ?? "");
  stream.resumeWs(); // credit held for a congested socket would block the origin's close forever
  if (stream.wsBusy) {
    const t = setTimeout(() => stream.reset(ResetCode.CANCEL, "public client closed; the local app is not reading"), CLOSE_FLUSH_MS);
    void stream.wsFlushed().then(() => clearTimeout(t));
  }
}
