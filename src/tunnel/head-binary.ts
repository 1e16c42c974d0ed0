/**
 * Tunnel protocol v2 heads, binary (docs/protocol.md, "Heads (v2, binary)"): the request head
 * carried by OPEN (kinds http / ws / tcp) and the response head carried by RESPONSE. Pure encode
 * and decode: no I/O, no JSON, no object per header beyond the [name, value] pair the gateway and
 * the agent then use. Hostile input becomes `{ error }` (stable text), never a throw, and the
 * decoder allocates nothing past the limits below.
 *
 *   str      = len:varint bytes
 *   request  = kind:u8(0 http, 1 ws) method:str target:str address:str port:varint
 *              nprotocols:varint str*  nheaders:varint (name:str value:str)*
 *   tcp open = kind:u8(2) target:str
 *   response = status:u16 protocol:str nheaders:varint (name:str value:str)*
 */
import { MAX_HEAD_BYTES, readVarint, varintSize, writeVarint } from "./frame.ts";
import { MAX_HEADERS, type HeaderList, type RequestHead, type ResponseHead } from "./head.ts";

/** A TCP stream's open (issue 16): a label for logs, not an address the agent dials. */
export interface TcpHead {
  kind: "tcp";
  target: string;
}
export type OpenHead = RequestHead | TcpHead;

/** `tooLarge`: the head broke a size / count limit (RESET REQUEST_ / RESPONSE_HEAD_TOO_LARGE → 431 / 502). */
export type HeadError = { error: string; tooLarge?: true };

export const MAX_PROTOCOLS = 16;
export const MAX_NAME_BYTES = 256;
export const MAX_METHOD_BYTES = 32;
export const MAX_ADDRESS_BYTES = 64;

export const HeadKind = { HTTP: 0, WS: 1, TCP: 2 } as const;

// ---- encode (one reused scratch, one copy out) ----

const te = new TextEncoder();
const buf = new Uint8Array(MAX_HEAD_BYTES);
let off = 0;

/** Writes `len:varint bytes`; false when the head would pass MAX_HEAD_BYTES. */
function putStr(s: string): boolean {
  const n = s.length; // UTF-8 bytes ≥ UTF-16 units, so this bound is safe
  const vs = varintSize(n);
  if (off + vs + n > MAX_HEAD_BYTES) return false;
  const start = off;
  const base = off + vs;
  if (n <= 128) {
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) return putUtf8(s, start);
      buf[base + i] = c;
    }
    writeVarint(buf, start, n);
    off = base + n;
    return true;
  }
  const r = te.encodeInto(s, buf.subarray(base));
  if (r.read < n) return false;
  const w = r.written;
  if (varintSize(w) !== vs) {
    if (start + varintSize(w) + w > MAX_HEAD_BYTES) return false;
    buf.copyWithin(start + varintSize(w), base, base + w);
  }
  off = writeVarint(buf, start, w) + w;
  return true;
}

function putUtf8(s: string, start: number): boolean {
  const b = te.encode(s);
  if (start + varintSize(b.length) + b.length > MAX_HEAD_BYTES) return false;
  off = writeVarint(buf, start, b.length);
  buf.set(b, off);
  off += b.length;
  return true;
}

/** A copy of the encoded head (allocate + set is cheaper than `slice` on a large scratch). */
function out(): Uint8Array {
  const o = new Uint8Array(off);
  o.set(buf.subarray(0, off));
  return o;
}

function putVarint(v: number): boolean {
  if (off + 8 > MAX_HEAD_BYTES) return false;
  off = writeVarint(buf, off, v);
  return true;
}

function putHeaders(h: HeaderList): boolean {
  if (h.length > MAX_HEADERS || !putVarint(h.length)) return false;
  for (let i = 0; i < h.length; i++) {
    const pair = h[i]!;
    if (pair[0].length > MAX_NAME_BYTES || !putStr(pair[0]) || !putStr(pair[1])) return false;
  }
  return true;
}

/** The OPEN payload for `h`, or null when it is over a limit (size, header count, name length). */
export function encodeOpenHead(h: OpenHead): Uint8Array | null {
  off = 1;
  if (h.kind === "tcp") {
    buf[0] = HeadKind.TCP;
    return putStr(h.target) ? out() : null;
  }
  buf[0] = h.kind === "ws" ? HeadKind.WS : HeadKind.HTTP;
  if (!putStr(h.method) || !putStr(h.target) || !putStr(h.remote?.address ?? "") || !putVarint(h.remote?.port ?? 0)) return null;
  const p = h.protocols;
  if (p && p.length > MAX_PROTOCOLS) return null;
  if (!putVarint(p ? p.length : 0)) return null;
  if (p) for (const x of p) if (!putStr(x)) return null;
  return putHeaders(h.headers) ? out() : null;
}

/** The RESPONSE payload for `h`, or null when it is over a limit. */
export function encodeResponseHead(h: ResponseHead): Uint8Array | null {
  buf[0] = h.status >>> 8;
  buf[1] = h.status & 0xff;
  off = 2;
  if (!putStr(h.protocol ?? "") || !putHeaders(h.headers)) return null;
  return out();
}

// ---- decode ----

/** RFC 9110 token characters. */
const TOKEN = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TOKEN[c.charCodeAt(0)] = 1;

/** Checks per string: header value / address (no CR, LF, NUL), token, request target (nothing ≤ 0x20, no DEL). */
const VALUE = 0;
/** Per byte: 0 fine, 1 forbidden, 2 non-ASCII (decoded as UTF-8, else Latin-1). */
const VALUE_BYTES = new Uint8Array(256);
const TARGET_BYTES = new Uint8Array(256);
for (let c = 0; c < 256; c++) {
  VALUE_BYTES[c] = c === 0 || c === 10 || c === 13 ? 1 : c >= 0x80 ? 2 : 0;
  TARGET_BYTES[c] = c <= 0x20 || c === 0x7f ? 1 : c >= 0x80 ? 2 : 0;
}
const TOKEN_RULE = 1;
const TARGET = 2;

const td = new TextDecoder("utf-8", { fatal: true });
let p: Uint8Array = buf;
/**
 * The whole payload as one Latin-1 string, made lazily by one native call: ASCII fields are then
 * `substring`s of it (cheap in JSC), far cheaper than one decoder call per field.
 */
let whole: string | null = null;
let pos = 0;
let bad = "";

/** Bun's native Latin-1 slice works on any Uint8Array (no Buffer view, no `.buffer` materialised). */
const latin1Slice = (Buffer.prototype as unknown as { latin1Slice: (this: Uint8Array, s: number, e: number) => string }).latin1Slice;
function latin1(b: Uint8Array): string {
  return latin1Slice.call(b, 0, b.length);
}

/** Reads one `str` checked against `rule` and `max` bytes; null (with `bad` set) when invalid. */
function str(rule: number, max: number, what: string): string | null {
  const b = p; // a local: the byte loops below stay tight
  const len = b.length;
  let start = pos;
  if (start >= len) return ((bad = `truncated ${what}`), null);
  let n = b[start]!;
  if (n < 0x40) start += 1;
  else {
    const v = readVarint(b, start);
    if (!v) return ((bad = `truncated ${what}`), null);
    n = v[0];
    start = v[1];
  }
  if (n > max) return ((bad = `${what} longer than ${max} bytes`), null);
  const end = start + n;
  if (end > len) return ((bad = `truncated ${what}`), null);
  let high = 0;
  if (rule === TOKEN_RULE) {
    for (let i = start; i < end; i++) if (TOKEN[b[i]!] === 0) return ((bad = `invalid ${what}`), null);
  } else {
    const table = rule === VALUE ? VALUE_BYTES : TARGET_BYTES;
    for (let i = start; i < end; i++) {
      const f = table[b[i]!]!;
      if (f !== 0) {
        if (f === 1) return ((bad = `invalid ${what}`), null);
        high = 0x80;
      }
    }
  }
  pos = end;
  if (n === 0) return "";
  if (high < 0x80) return (whole ??= latin1(p)).substring(start, end);
  try {
    return td.decode(b.subarray(start, end));
  } catch {
    return (whole ??= latin1(p)).substring(start, end); // obs-text: one character per byte
  }
}

function count(max: number, what: string): number {
  const v = readVarint(p, pos);
  if (!v) return ((bad = `truncated ${what} count`), -1);
  // every entry takes at least one byte: a count past the remaining bytes is refused before any work
  if (v[0] > max || v[0] > p.length - v[1]) return ((bad = v[0] > max ? `more than ${max} ${what}` : `truncated ${what}`), -1);
  pos = v[1];
  return v[0];
}

function headers(): HeaderList | null {
  const n = count(MAX_HEADERS, "headers");
  if (n < 0) return null;
  const out: HeaderList = [];
  for (let i = 0; i < n; i++) {
    const name = str(TOKEN_RULE, MAX_NAME_BYTES, "header name");
    if (name === null || name === "") return (bad ||= "empty header name"), null;
    const value = str(VALUE, MAX_HEAD_BYTES, "header value");
    if (value === null) return null;
    out.push([name, value]);
  }
  return out;
}

function begin(payload: Uint8Array, what: string): HeadError | null {
  if (payload.length > MAX_HEAD_BYTES) return { error: `${what} of ${payload.length} bytes is over the ${MAX_HEAD_BYTES}-byte limit`, tooLarge: true };
  p = payload;
  whole = null;
  pos = 0;
  bad = "";
  return null;
}

function fail(what: string): HeadError {
  const e: HeadError = { error: `${what}: ${bad || "trailing bytes"}` };
  if (/^more than|longer than/.test(bad)) e.tooLarge = true;
  p = buf;
  whole = null;
  return e;
}

function done<T>(v: T, what: string): T | HeadError {
  const trailing = pos !== p.length;
  p = buf; // drop the references to the caller's message
  whole = null;
  return trailing ? { error: `${what}: trailing bytes` } : v;
}

/** Decodes an OPEN payload (v2). */
export function decodeOpenHead(payload: Uint8Array): OpenHead | HeadError {
  const big = begin(payload, "request head");
  if (big) return big;
  if (payload.length < 1) return (bad = "truncated"), fail("request head");
  const kind = payload[0]!;
  pos = 1;
  if (kind === HeadKind.TCP) {
    const target = str(VALUE, 1024, "target label");
    return target === null ? fail("tcp open") : done<TcpHead>({ kind: "tcp", target }, "tcp open");
  }
  if (kind !== HeadKind.HTTP && kind !== HeadKind.WS) return (bad = `unknown kind ${kind}`), fail("request head");
  const method = str(TOKEN_RULE, MAX_METHOD_BYTES, "method");
  if (!method) return (bad ||= "empty method"), fail("request head");
  const target = str(TARGET, MAX_HEAD_BYTES, "target");
  if (target === null || !(target.charCodeAt(0) === 0x2f || (target === "*" && method === "OPTIONS"))) return (bad ||= "invalid target"), fail("request head");
  const address = str(VALUE, MAX_ADDRESS_BYTES, "address");
  if (address === null) return fail("request head");
  const port = readVarint(p, pos);
  if (!port || port[0] > 65535) return (bad = "invalid port"), fail("request head");
  pos = port[1];
  const np = count(MAX_PROTOCOLS, "protocols");
  if (np < 0) return fail("request head");
  let protocols: string[] | undefined;
  for (let i = 0; i < np; i++) {
    const x = str(TOKEN_RULE, 256, "protocol");
    if (!x) return (bad ||= "empty protocol"), fail("request head");
    (protocols ??= []).push(x);
  }
  const h = headers();
  if (!h) return fail("request head");
  const head: RequestHead = { kind: kind === HeadKind.WS ? "ws" : "http", method, target, headers: h };
  if (address) head.remote = { address, port: port[0] };
  if (protocols) head.protocols = protocols;
  return done(head, "request head");
}

/** Decodes a RESPONSE payload (v2). */
export function decodeResponseHead(payload: Uint8Array): ResponseHead | HeadError {
  const big = begin(payload, "response head");
  if (big) return big;
  if (payload.length < 2) return (bad = "truncated status"), fail("response head");
  const status = (payload[0]! << 8) | payload[1]!;
  if (status < 100 || status > 599) return (bad = `invalid status ${status}`), fail("response head");
  pos = 2;
  const protocol = str(TOKEN_RULE, 256, "protocol");
  if (protocol === null) return fail("response head");
  const h = headers();
  if (!h) return fail("response head");
  const head: ResponseHead = { status, headers: h };
  if (protocol) head.protocol = protocol;
  return done(head, "response head");
}
