/**
 * Tunnel protocol (v1 and v2 share this frame layer) — the frames that flow inside one Hybrid Connections WebSocket session
 * between the gateway and the agent (see docs/protocol.md). Pure encode / decode.
 *
 * A session message (one binary WebSocket message) holds one or more frames back to back:
 *
 *   frame  = type:u8  stream:varint  length:varint  payload[length]
 *
 * `varint` is the QUIC variable-length integer (RFC 9000 §16): the top two bits of the first byte
 * give the size (1, 2, 4 or 8 bytes). Payloads are views into the message: decoding never copies
 * a body and never allocates more than the input.
 */

/** The lowest version this implementation speaks (the hello's legacy `azhexgate` field). */
export const PROTOCOL_VERSION = 1;
/** Every version this implementation speaks, ascending (docs/protocol.md, "Compatibility rule"). */
export const PROTOCOL_VERSIONS: readonly number[] = [1, 2];
/** Largest payload of one frame. Bodies are split into DATA frames of at most this size. */
export const MAX_FRAME_PAYLOAD = 1 << 20;
/** v1: largest JSON head (OPEN / RESPONSE); over it the stream is refused (REQUEST_ / RESPONSE_HEAD_TOO_LARGE). */
export const MAX_HEAD_PAYLOAD = 256 * 1024;
/** v2: largest binary head (a 64 KiB header value fits); over it the stream (never the session) is refused (REQUEST_ / RESPONSE_HEAD_TOO_LARGE). */
export const MAX_HEAD_BYTES = 128 * 1024;
/** PING / PONG payloads are exactly this long. */
export const PING_PAYLOAD = 8;
/** Largest stream id (2^62 - 1 fits a varint; we keep ids in safe-integer range). */
export const MAX_STREAM_ID = Number.MAX_SAFE_INTEGER;

export const FrameType = {
  /** gateway → agent: open a stream; payload = request head (JSON). */
  OPEN: 0x01,
  /** agent → gateway: response head (JSON), or the WebSocket handshake answer. */
  RESPONSE: 0x02,
  /** body bytes, either direction. */
  DATA: 0x03,
  /** the sender's direction of the stream is finished (half-close). */
  END: 0x04,
  /** abort the stream; payload = code:varint reason:utf8. */
  RESET: 0x05,
  /** grant more credit to the peer for this stream; payload = increment:varint. Stream 0 = session. */
  WINDOW: 0x06,
  /** one WebSocket message fragment; payload = flags:u8 (bit0 binary, bit1 fin) data. */
  WS_MESSAGE: 0x07,
  /** WebSocket close; payload = code:u16 reason:utf8. */
  WS_CLOSE: 0x08,
  /** session keep-alive (stream 0); payload = 8 opaque bytes echoed by PONG. */
  PING: 0x09,
  PONG: 0x0a,
  /** the sender opens no more streams; payload = last stream id:varint code:varint. */
  GOAWAY: 0x0b,
} as const;
export type FrameTypeValue = (typeof FrameType)[keyof typeof FrameType];

export const ResetCode = {
  CANCEL: 0, // the client went away
  REFUSED: 1, // not accepted (draining, over a limit)
  ORIGIN_UNREACHABLE: 2, // the local app refused the connection
  ORIGIN_TIMEOUT: 3, // the local app did not answer in time
  PROTOCOL: 4, // a peer broke the protocol
  FLOW_CONTROL: 5, // more data than credit
  INTERNAL: 6,
  REQUEST_HEAD_TOO_LARGE: 7, // v2: the OPEN's head is over the limit (431 at the gateway)
  CONNECTION_RESET: 8, // v2: the TCP peer reset its connection
  RESPONSE_HEAD_TOO_LARGE: 9, // v2: the RESPONSE's head is over the limit (502 at the gateway)
  ORIGIN_INVALID_RESPONSE: 10, // the local app answered, but not with valid HTTP/1.1 (502 origin_invalid_response); older peers treat it as INTERNAL
} as const;

export const WsFlags = { BINARY: 1, FIN: 2 } as const;

export interface Frame {
  type: FrameTypeValue;
  stream: number;
  payload: Uint8Array;
}

export type DecodeResult = { frames: Frame[] } | { error: string };

/** Frame types are 0x01 … MAX_TYPE (0x0b) with no gaps. */
const MAX_TYPE = Math.max(...Object.values(FrameType));

/** Bytes a varint of `v` takes. */
export function varintSize(v: number): 1 | 2 | 4 | 8 {
  if (v < 0x40) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x40000000) return 4;
  return 8;
}

/** Writes `v` at `off`; returns the new offset. `v` must be a safe non-negative integer. */
export function writeVarint(buf: Uint8Array, off: number, v: number): number {
  if (v < 0x40) {
    buf[off] = v;
    return off + 1;
  }
  if (v < 0x4000) {
    buf[off] = 0x40 | (v >>> 8);
    buf[off + 1] = v & 0xff;
    return off + 2;
  }
  if (v < 0x40000000) {
    buf[off] = 0x80 | (v >>> 24);
    buf[off + 1] = (v >>> 16) & 0xff;
    buf[off + 2] = (v >>> 8) & 0xff;
    buf[off + 3] = v & 0xff;
    return off + 4;
  }
  const hi = Math.floor(v / 0x100000000);
  const lo = v >>> 0;
  buf[off] = 0xc0 | (hi >>> 24);
  buf[off + 1] = (hi >>> 16) & 0xff;
  buf[off + 2] = (hi >>> 8) & 0xff;
  buf[off + 3] = hi & 0xff;
  buf[off + 4] = lo >>> 24;
  buf[off + 5] = (lo >>> 16) & 0xff;
  buf[off + 6] = (lo >>> 8) & 0xff;
  buf[off + 7] = lo & 0xff;
  return off + 8;
}

/** Reads a varint at `off`: `[value, newOffset]`, or null when truncated or beyond safe integers. */
export function readVarint(buf: Uint8Array, off: number): [number, number] | null {
  if (off >= buf.length) return null;
  const first = buf[off]!;
  const size = 1 << (first >>> 6);
  if (off + size > buf.length) return null;
  let v = first & 0x3f;
  if (size === 8) {
    if (v !== 0 || buf[off + 1]! > 0x1f) return null; // would exceed 2^53 - 1
    let hi = 0;
    for (let i = 1; i < 4; i++) hi = hi * 256 + buf[off + i]!;
    let lo = 0;
    for (let i = 4; i < 8; i++) lo = lo * 256 + buf[off + i]!;
    return [hi * 0x100000000 + lo, off + 8];
  }
  for (let i = 1; i < size; i++) v = v * 256 + buf[off + i]!;
  return [v, off + size];
}

/** Bytes one frame with a payload of `payloadLength` takes on the wire. */
export function frameSize(stream: number, payloadLength: number): number {
  return 1 + varintSize(stream) + varintSize(payloadLength) + payloadLength;
}

/** Writes one frame into `buf` at `off` (the caller sized it with frameSize); returns the new offset. */
export function writeFrame(buf: Uint8Array, off: number, type: FrameTypeValue, stream: number, payload: Uint8Array): number {
  if (payload.length > MAX_FRAME_PAYLOAD) throw new RangeError(`frame payload ${payload.length} exceeds ${MAX_FRAME_PAYLOAD}`);
  buf[off] = type;
  off = writeVarint(buf, off + 1, stream);
  off = writeVarint(buf, off, payload.length);
  buf.set(payload, off);
  return off + payload.length;
}

/** Encodes frames into one session message (one copy of each payload). */
export function encodeFrames(frames: readonly Frame[]): Uint8Array {
  let size = 0;
  for (const f of frames) size += frameSize(f.stream, f.payload.length);
  const out = new Uint8Array(size);
  let off = 0;
  for (const f of frames) off = writeFrame(out, off, f.type, f.stream, f.payload);
  return out;
}

/**
 * The frames as a gather list — [header, payload, header, payload, …] — with every header in one
 * small buffer and payloads not copied, for a transport that writes parts into its own frame.
 */
export function frameParts(frames: readonly Frame[]): Uint8Array[] {
  let hsize = 0;
  for (const f of frames) hsize += 1 + varintSize(f.stream) + varintSize(f.payload.length);
  const headers = new Uint8Array(hsize);
  const parts: Uint8Array[] = [];
  let off = 0;
  for (const f of frames) {
    const start = off;
    headers[off] = f.type;
    off = writeVarint(headers, off + 1, f.stream);
    off = writeVarint(headers, off, f.payload.length);
    parts.push(headers.subarray(start, off));
    if (f.payload.length) parts.push(f.payload);
  }
  return parts;
}

export function encodeFrame(type: FrameTypeValue, stream: number, payload: Uint8Array = EMPTY): Uint8Array {
  return encodeFrames([{ type, stream, payload }]);
}

const EMPTY = new Uint8Array(0);

/**
 * Decodes one session message into frames (payloads are views, not copies). Any malformed input
 * — unknown type, truncated varint, a length past the end or past the 1 MiB frame limit — is an error
 * value; this function never throws on input bytes.
 */
export function decodeFrames(msg: Uint8Array): DecodeResult {
  const frames: Frame[] = [];
  let off = 0;
  const end = msg.length;
  while (off < end) {
    const type = msg[off]!;
    if (type === 0 || type > MAX_TYPE) return { error: `unknown frame type 0x${type.toString(16)}` };
    // one-byte varints (stream ids < 64, payloads < 64 bytes) read inline: no pair allocated
    let stream: number;
    let at = off + 1;
    if (at < end && msg[at]! < 0x40) stream = msg[at++]!;
    else {
      const s = readVarint(msg, at);
      if (!s) return { error: "truncated stream id" };
      stream = s[0];
      at = s[1];
    }
    let len: number;
    let start: number;
    if (at < end && msg[at]! < 0x40) {
      len = msg[at]!;
      start = at + 1;
    } else {
      const l = readVarint(msg, at);
      if (!l) return { error: "truncated length" };
      len = l[0];
      start = l[1];
    }
    // Heads too: one over its own limit fails its stream (…_HEAD_TOO_LARGE), not the session.
    if (len > MAX_FRAME_PAYLOAD) return { error: `frame payload ${len} exceeds the limit ${MAX_FRAME_PAYLOAD}` };
    if (start + len > end) return { error: "frame runs past the end of the message" };
    frames.push({ type: type as FrameTypeValue, stream, payload: len === 0 ? EMPTY : msg.subarray(start, start + len) });
    off = start + len;
  }
  return { frames };
}

// ---- payload helpers (pure) ----

const te = new TextEncoder();
const td = new TextDecoder("utf-8", { fatal: true });

export function varintPayload(...values: number[]): Uint8Array {
  const out = new Uint8Array(values.reduce((n, v) => n + varintSize(v), 0));
  let off = 0;
  for (const v of values) off = writeVarint(out, off, v);
  return out;
}

export function resetPayload(code: number, reason = ""): Uint8Array {
  const r = te.encode(reason.slice(0, 256));
  const out = new Uint8Array(varintSize(code) + r.length);
  out.set(r, writeVarint(out, 0, code));
  return out;
}

export function parseReset(p: Uint8Array): { code: number; reason: string } | null {
  const v = readVarint(p, 0);
  if (!v) return null;
  try {
    return { code: v[0], reason: td.decode(p.subarray(v[1])) };
  } catch {
    return null;
  }
}

export function parseVarints(p: Uint8Array, count: number): number[] | null {
  const out: number[] = [];
  let off = 0;
  for (let i = 0; i < count; i++) {
    const v = readVarint(p, off);
    if (!v) return null;
    out.push(v[0]);
    off = v[1];
  }
  return off === p.length ? out : null;
}

export function wsClosePayload(code: number, reason = ""): Uint8Array {
  const r = te.encode(reason);
  const out = new Uint8Array(2 + r.length);
  out[0] = code >>> 8;
  out[1] = code & 0xff;
  out.set(r, 2);
  return out;
}

export function parseWsClose(p: Uint8Array): { code: number; reason: string } | null {
  if (p.length < 2 || p.length > 125) return null;
  try {
    return { code: (p[0]! << 8) | p[1]!, reason: td.decode(p.subarray(2)) };
  } catch {
    return null;
  }
}

/** A JSON head payload (OPEN / RESPONSE). */
export function jsonPayload(value: unknown): Uint8Array {
  return te.encode(JSON.stringify(value));
}

export function parseJsonPayload(p: Uint8Array): unknown {
  try {
    return JSON.parse(td.decode(p));
  } catch {
    return undefined;
  }
}
