/**
 * Public WebSocket ↔ tunnel stream. Close codes crossing the tunnel are sanitised: the other
 * end is never trusted to put an invalid code on the wire.
 */
import type { ServerWebSocket } from "bun";
import type { StreamResetError, TunnelStream } from "../tunnel/stream.ts";

/** What the tunnel sent before the public socket's `open` (an app may speak first, as Vite's HMR does). */
export interface EarlyWs {
  msgs: Array<[Uint8Array, boolean]>;
  close?: [number, string];
  reset?: StreamResetError;
}

export interface PublicWsData {
  stream: TunnelStream;
  publicClosed: boolean;
  early?: EarlyWs;
}

/**
 * Holds a WebSocket stream's traffic from the moment it is opened until the public socket is
 * open (`relayWsToPublic`): the app's first messages can arrive with its 101, before Bun calls
 * `open`. Their tunnel credit is held too, so what is held stays within one window.
 */
export function holdWs(stream: TunnelStream): EarlyWs {
  const early: EarlyWs = { msgs: [] };
  stream.onWsMessage = (data, binary) => {
    early.msgs.push([new Uint8Array(data), binary]);
    return false;
  };
  stream.onWsClose = (code, reason) => {
    early.close = [code, reason];
  };
  stream.onReset = (err) => {
    early.reset = err;
  };
  return early;
}

/** A close code that may be sent in a close frame (RFC 6455 §7.4), else 1000 / 1011. */
export function sanitizeCloseCode(code: number | undefined): number {
  if (code === undefined || code === 1005 || code === 1006) return 1000;
  if ((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)) return code;
  return 1011;
}

const td = new TextDecoder();

/** Wires a stream's inbound WebSocket traffic to the public socket. */
export function relayWsToPublic(ws: ServerWebSocket<PublicWsData>): void {
  const { stream } = ws.data;
  stream.onWsMessage = (data, binary) => {
    const r = binary ? ws.sendBinary(data) : ws.sendText(td.decode(data));
    if (r === 0) stream.reset(0, "public client too slow (backpressure limit)");
    // -1: queued under backpressure: hold the tunnel credit until the socket drains.
    return r !== -1;
  };
  stream.onWsClose = (code, reason) => {
    if (!ws.data.publicClosed) ws.close(sanitizeCloseCode(code), reason.slice(0, 123));
  };
  stream.onReset = (err) => {
    if (!ws.data.publicClosed) ws.close(err.code === 0 ? 1001 : 1011, "tunnel stream ended");
  };
  const early = ws.data.early;
  if (!early) return;
  ws.data.early = undefined;
  let held = false;
  for (const [data, binary] of early.msgs) if (stream.onWsMessage(data, binary) === false) held = true;
  if (early.msgs.length && !held) stream.resumeWs(); // the credit held while waiting for `open`
  if (early.close) stream.onWsClose(...early.close);
  if (early.reset) stream.onReset(early.reset);
}
