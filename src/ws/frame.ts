/**
 * RFC 6455 frame codec. Pure: bytes in, values out; no sockets, timers or logs.
 * - `encodeFrame` builds one frame (client frames masked with a 4-byte key, random unless given).
 * - `FrameDecoder` is incremental: feed chunks split anywhere; it yields whole messages and control
 *   frames, enforces a message size limit (1009), protocol rules (1002) and UTF-8 for text (1007).
 *   No extensions are negotiated, so any RSV bit is an error.
 */
import { maskScratch, scratch } from "./mask.ts";
import { concatBytes } from "../net/bytes.ts";


export const Opcode = { CONTINUATION: 0, TEXT: 1, BINARY: 2, CLOSE: 8, PING: 9, PONG: 10 } as const;
export type OpcodeValue = (typeof Opcode)[keyof typeof Opcode];

export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  UNSUPPORTED: 1003,
  NO_STATUS: 1005,
  ABNORMAL: 1006,
  INVALID_DATA: 1007,
  POLICY: 1008,
  TOO_BIG: 1009,
  INTERNAL: 1011,
} as const;

const encoder = new TextEncoder();
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Decodes UTF-8 strictly; null when invalid. */
export function decodeUtf8(b: Uint8Array): string | null {
  try {
    return utf8.decode(b);
  } catch {
    return null;
  }
}

/** True for close codes that may appear on the wire (RFC 6455 §7.4 + IANA registry). */
export function isValidCloseCode(code: number): boolean {
  return (
    (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)
  );
}

const LE = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * XORs `buf[start, end)` in place with `key`, where byte `start` uses `key[phase % 4]`.
 * Aligned middle is processed 32 bits at a time.
 */
export function maskInPlace(buf: Uint8Array, start: number, end: number, key: Uint8Array, phase = 0): void {
  let i = start;
  let k = phase & 3;
  // bytes up to the first 4-byte aligned address
  while (i < end && ((buf.byteOffset + i) & 3) !== 0) {
    buf[i] = buf[i]! ^ key[k]!;
    i++;
    k = (k + 1) & 3;
  }
  const words = (end - i) >>> 2;
  if (words > 0) {
    const k0 = key[k]!, k1 = key[(k + 1) & 3]!, k2 = key[(k + 2) & 3]!, k3 = key[(k + 3) & 3]!;
    const w = LE ? (k0 | (k1 << 8) | (k2 << 16) | (k3 << 24)) >>> 0 : ((k0 << 24) | (k1 << 16) | (k2 << 8) | k3) >>> 0;
    const view = new Uint32Array(buf.buffer, buf.byteOffset + i, words);
    for (let j = 0; j < words; j++) view[j] = view[j]! ^ w;
    i += words << 2;
  }
  while (i < end) {
    buf[i] = buf[i]! ^ key[k]!;
    i++;
    k = (k + 1) & 3;
  }
}

let keyPool = new Uint8Array(0);
let keyPos = 0;
function randomKey(): Uint8Array {
  if (keyPos + 4 > keyPool.length) {
    keyPool = crypto.getRandomValues(new Uint8Array(4096));
    keyPos = 0;
  }
  const k = keyPool.subarray(keyPos, keyPos + 4);
  keyPos += 4;
  return k;
}

export interface EncodeOptions {
  /** Default true. */
  fin?: boolean;
  /** A fixed 4-byte masking key, `false` for an unmasked (server) frame; default: a random key. */
  mask?: Uint8Array | false;
}

type Payload = Uint8Array | string | readonly Uint8Array[];

function payloadLength(payload: Payload): number {
  if (typeof payload === "string") return Buffer.byteLength(payload, "utf8");
  if (payload instanceof Uint8Array) return payload.byteLength;
  let len = 0;
  for (const p of payload) len += p.byteLength;
  return len;
}

/** Writes the frame header for `len` payload bytes at out[0]; returns the header size. */
function writeHeader(out: Uint8Array, opcode: number, len: number, key: Uint8Array | null, fin: boolean): number {
  const ext = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const head = 2 + ext + (key ? 4 : 0);
  out[0] = (fin ? 0x80 : 0) | (opcode & 0x0f);
  if (ext === 0) out[1] = len;
  else if (ext === 2) {
    out[1] = 126;
    out[2] = len >>> 8;
    out[3] = len & 0xff;
  } else {
    out[1] = 127;
    const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
    dv.setUint32(2, Math.floor(len / 2 ** 32));
    dv.setUint32(6, len >>> 0);
  }
  if (key) {
    out[1] = out[1]! | 0x80;
    out.set(key, head - 4);
  }
  return head;
}

function writePayload(out: Uint8Array, off: number, payload: Payload): void {
  if (typeof payload === "string") encoder.encodeInto(payload, out.subarray(off));
  else if (payload instanceof Uint8Array) out.set(payload, off);
  else {
    for (const p of payload) {
      out.set(p, off);
      off += p.byteLength;
    }
  }
}

const headerSize = (len: number, masked: boolean) => 2 + (len < 126 ? 0 : len < 65536 ? 2 : 8) + (masked ? 4 : 0);

/**
 * Encodes one frame; a string payload is UTF-8 encoded straight into the frame buffer, and a list
 * of parts is gathered into it (one copy in all, so callers need not concatenate first).
 */
export function encodeFrame(opcode: number, payload: Payload = EMPTY, opts: EncodeOptions = {}): Uint8Array {
  const len = payloadLength(payload);
  const key = opts.mask === false ? null : (opts.mask ?? randomKey());
  if (key && key.length !== 4) throw new RangeError("mask key must be 4 bytes");
  const out = new Uint8Array(headerSize(len, key !== null) + len);
  const head = writeHeader(out, opcode, len, key, opts.fin !== false);
  writePayload(out, head, payload);
  if (key) maskInPlace(out, head, head + len, key);
  return out;
}

/**
 * A masked client frame assembled in the shared scratch area (`mask.ts`) and masked there with
 * WebAssembly SIMD: no allocation, ~10x faster masking. The result is valid only until the next
 * call — write it to the socket at once and copy whatever the socket did not take. Null when the
 * frame is larger than the scratch area (use `encodeFrame`).
 */
export function encodeMaskedFrameScratch(opcode: number, payload: Payload): Uint8Array | null {
  const len = payloadLength(payload);
  const size = headerSize(len, true) + len;
  const buf = scratch(size);
  if (!buf) return null;
  const key = randomKey();
  const head = writeHeader(buf, opcode, len, key, true);
  writePayload(buf, head, payload);
  maskScratch(buf, head, head + len, key);
  return buf.subarray(0, size);
}

/** The payload of a close frame: 2-byte code + UTF-8 reason (truncated to fit 123 bytes). */
export function closePayload(code?: number, reason = ""): Uint8Array {
  if (code === undefined) return EMPTY;
  let r = encoder.encode(reason);
  if (r.length > 123) {
    r = r.subarray(0, 123);
    while (decodeUtf8(r) === null) r = r.subarray(0, r.length - 1);
  }
  const out = new Uint8Array(2 + r.length);
  out[0] = code >>> 8;
  out[1] = code & 0xff;
  out.set(r, 2);
  return out;
}

export type FrameEvent =
  | { type: "message"; data: string | Uint8Array; binary: boolean }
  | { type: "ping"; data: Uint8Array }
  | { type: "pong"; data: Uint8Array }
  /** code 1005 when the close frame carried no code. */
  | { type: "close"; code: number; reason: string }
  /** The decoder is dead after this; close the connection with `code`. */
  | { type: "error"; code: number; message: string };

export interface DecoderOptions {
  /** Largest message (sum of fragments) accepted; default 64 MiB. */
  maxMessageSize?: number;
  /** "client" decodes server frames (must be unmasked); "server" decodes client frames (must be masked). */
  role?: "client" | "server";
}

const EMPTY = new Uint8Array(0);

/**
 * Incremental frame decoder. Payload bytes are kept as views of the input chunks and copied once
 * when a message completes (no copy when it sits in one chunk). In the server role, masked input is
 * unmasked in place, so chunks passed in must not be reused by the caller.
 */
export class FrameDecoder {
  private readonly max: number;
  private readonly server: boolean;
  private readonly hdr = new Uint8Array(14);
  private hdrLen = 0;
  private inPayload = false;
  private done = false;
  // current frame
  private fin = false;
  private opcode = 0;
  private key: Uint8Array | null = null;
  private remaining = 0;
  private received = 0;
  // current data message
  private msgOpcode = 0;
  private msgParts: Uint8Array[] = [];
  private msgSize = 0;
  // current control frame
  private ctlParts: Uint8Array[] = [];

  constructor(opts: DecoderOptions = {}) {
    this.max = opts.maxMessageSize ?? 64 * 1024 * 1024;
    this.server = opts.role === "server";
  }

  /** Feeds bytes; returns the events they completed (possibly none). Never throws on bad input. */
  push(chunk: Uint8Array): FrameEvent[] {
    const out: FrameEvent[] = [];
    let pos = 0;
    while (!this.done && pos < chunk.length) {
      if (!this.inPayload) {
        pos = this.readHeader(chunk, pos, out);
        continue;
      }
      const take = Math.min(this.remaining, chunk.length - pos);
      const piece = chunk.subarray(pos, pos + take);
      if (this.key) maskInPlace(piece, 0, take, this.key, this.received);
      pos += take;
      this.received += take;
      this.remaining -= take;
      if (this.opcode >= 8) this.ctlParts.push(piece);
      else this.msgParts.push(piece);
      if (this.remaining === 0) this.endFrame(out);
    }
    return out;
  }

  private fail(out: FrameEvent[], code: number, message: string): void {
    this.done = true;
    this.msgParts = [];
    this.ctlParts = [];
    out.push({ type: "error", code, message });
  }

  private readHeader(chunk: Uint8Array, pos: number, out: FrameEvent[]): number {
    const h = this.hdr;
    while (this.hdrLen < 2 && pos < chunk.length) h[this.hdrLen++] = chunk[pos++]!;
    if (this.hdrLen < 2) return pos;
    const len7 = h[1]! & 0x7f;
    const masked = (h[1]! & 0x80) !== 0;
    const need = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (masked ? 4 : 0);
    while (this.hdrLen < need && pos < chunk.length) h[this.hdrLen++] = chunk[pos++]!;
    if (this.hdrLen < need) return pos;
    this.hdrLen = 0;

    const b0 = h[0]!;
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    if (b0 & 0x70) return this.fail(out, 1002, "reserved bits set (no extension negotiated)"), pos;
    if ((opcode > 2 && opcode < 8) || opcode > 10) return this.fail(out, 1002, `unknown opcode ${opcode}`), pos;
    if (masked !== this.server) return this.fail(out, 1002, masked ? "masked frame from server" : "unmasked frame from client"), pos;
    let len = len7;
    if (len7 === 126) len = (h[2]! << 8) | h[3]!;
    else if (len7 === 127) {
      const hi = ((h[2]! << 24) | (h[3]! << 16) | (h[4]! << 8) | h[5]!) >>> 0;
      const lo = ((h[6]! << 24) | (h[7]! << 16) | (h[8]! << 8) | h[9]!) >>> 0;
      if (hi & 0x80000000) return this.fail(out, 1002, "64-bit length with the high bit set"), pos;
      len = hi * 2 ** 32 + lo;
    }
    if (opcode >= 8) {
      if (!fin) return this.fail(out, 1002, "fragmented control frame"), pos;
      if (len > 125) return this.fail(out, 1002, "control frame payload over 125 bytes"), pos;
    } else if (opcode === 0) {
      if (this.msgOpcode === 0) return this.fail(out, 1002, "continuation frame without a message"), pos;
    } else if (this.msgOpcode !== 0) {
      return this.fail(out, 1002, "new data frame inside a fragmented message"), pos;
    }
    if (opcode < 8) {
      if (opcode !== 0) this.msgOpcode = opcode;
      if (this.msgSize + len > this.max) return this.fail(out, 1009, `message larger than ${this.max} bytes`), pos;
      this.msgSize += len;
    }
    this.fin = fin;
    this.opcode = opcode;
    this.key = masked ? h.slice(need - 4, need) : null;
    this.remaining = len;
    this.received = 0;
    if (len === 0) this.endFrame(out);
    else this.inPayload = true;
    return pos;
  }

  private endFrame(out: FrameEvent[]): void {
    this.inPayload = false;
    if (this.opcode >= 8) {
      const parts = this.ctlParts;
      this.ctlParts = [];
      // control payloads are tiny: copy so they don't pin large input chunks
      const data = parts.length === 1 ? parts[0]!.slice() : concatBytes(parts, this.received);
      if (this.opcode === Opcode.PING) out.push({ type: "ping", data });
      else if (this.opcode === Opcode.PONG) out.push({ type: "pong", data });
      else this.onClose(data, out);
      return;
    }
    if (!this.fin) return;
    const data = concatBytes(this.msgParts, this.msgSize);
    const binary = this.msgOpcode === Opcode.BINARY;
    this.msgParts = [];
    this.msgSize = 0;
    this.msgOpcode = 0;
    if (binary) {
      out.push({ type: "message", data, binary: true });
      return;
    }
    const text = decodeUtf8(data);
    if (text === null) return this.fail(out, 1007, "invalid UTF-8 in a text message");
    out.push({ type: "message", data: text, binary: false });
  }

  private onClose(data: Uint8Array, out: FrameEvent[]): void {
    this.done = true;
    if (data.length === 0) return void out.push({ type: "close", code: 1005, reason: "" });
    if (data.length === 1) return this.fail(out, 1002, "close frame with a 1-byte payload");
    const code = (data[0]! << 8) | data[1]!;
    if (!isValidCloseCode(code)) return this.fail(out, 1002, `invalid close code ${code}`);
    const reason = decodeUtf8(data.subarray(2));
    if (reason === null) return this.fail(out, 1007, "invalid UTF-8 in a close reason");
    out.push({ type: "close", code, reason });
  }
}
