/**
 * The local app's response head (status line and header lines) parsed in one pass: indexOf per
 * line and a byte table for names, no split array and no regular expression per line (this runs
 * for every response the agent forwards). Pure: text in, fields or OriginProtocolError out.
 */
import type { HeaderList } from "../tunnel/head.ts";

/** The origin broke HTTP/1.1 (bad status line, header, chunk size …): not a connection problem. */
export class OriginProtocolError extends Error {
  override readonly name = "OriginProtocolError";
}

/** RFC 9110 token characters (header names). */
const TOKEN_CHARS = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TOKEN_CHARS[c.charCodeAt(0)] = 1;
/** Bun's native Latin-1 slice works on any Uint8Array (no Buffer view). */
export const latin1Slice = (Buffer.prototype as unknown as { latin1Slice: (this: Uint8Array, s: number, e: number) => string }).latin1Slice;

/** `HTTP/1.x NNN[ reason]` → x (0 or 1), else -1: what `/^HTTP\/1\.([01]) (\d{3})(?: .*)?$/` accepted. */
function statusLine(l: string): number {
  if (l.length < 12 || !l.startsWith("HTTP/1.") || l.charCodeAt(8) !== 32) return -1;
  const minor = l.charCodeAt(7) - 48;
  if (minor !== 0 && minor !== 1) return -1;
  for (let i = 9; i < 12; i++) {
    const d = l.charCodeAt(i);
    if (d < 48 || d > 57) return -1;
  }
  if (l.length > 12 && l.charCodeAt(12) !== 32) return -1;
  // `.` in the old pattern did not match line terminators
  for (let i = 13; i < l.length; i++) {
    const c = l.charCodeAt(i);
    if (c === 13 || c === 10 || c === 0x2028 || c === 0x2029) return -1;
  }
  return minor;
}
export interface ParsedHead {
  status: number;
  /** HTTP/1.x minor version (0 or 1). */
  minor: number;
  /** Header lines (names lower-cased, repeats kept). */
  headers: HeaderList;
  /** The framing fields, repeats joined with "," (each with a leading ","), lower-cased. */
  connection: string;
  teList: string;
  clList: string[] | null;
  /** `Keep-Alive: timeout=N` in ms, else null. */
  keepAliveMs: number | null;
}

/** Parses a whole response head (`text` ends with its blank line). */
export function parseResponseHead(text: string): ParsedHead {
  let nl = text.indexOf("\n");
  if (nl < 0) nl = text.length;
  const first = text.charCodeAt(nl - 1) === 13 ? text.slice(0, nl - 1) : text.slice(0, nl);
  const minor = statusLine(first);
  if (minor < 0) throw new OriginProtocolError(`the local app did not answer with HTTP/1.x (${JSON.stringify(first.slice(0, 40))})`);
  const status = (first.charCodeAt(9) - 48) * 100 + (first.charCodeAt(10) - 48) * 10 + (first.charCodeAt(11) - 48);
  const headers: HeaderList = [];
  // the framing fields, gathered in the same pass (repeats joined with ",")
  let connection = "";
  let teList = "";
  let clList: string[] | null = null;
  let keepAliveMs: number | null = null;
  const len = text.length;
  for (let pos = nl + 1; pos < len; ) {
    let end = text.indexOf("\n", pos);
    if (end < 0) end = len;
    const next = end + 1;
    if (end > pos && text.charCodeAt(end - 1) === 13) end--;
    if (end === pos) {
      pos = next;
      continue;
    }
    let c = pos;
    while (c < end && TOKEN_CHARS[text.charCodeAt(c)] === 1) c++;
    if (c === pos || c === end || text.charCodeAt(c) !== 58) {
      const line = text.slice(pos, end);
      throw new OriginProtocolError(`the local app sent a malformed header line (${JSON.stringify(line.slice(0, 40))})`);
    }
    const raw = text.slice(pos, c);
    const value = text.slice(c + 1, end).trim();
    if (value.includes("\0")) throw new OriginProtocolError(`the local app sent a NUL byte in header ${raw}`);
    const name = raw.toLowerCase();
    headers.push([name, value]);
    pos = next;
    if (name.length < 10 || name.length > 17) continue; // none of the framing names below
    if (name === "connection") connection += `,${value.toLowerCase()}`;
    else if (name === "transfer-encoding") teList += `,${value.toLowerCase()}`;
    else if (name === "content-length") (clList ??= []).push(value);
    else if (name === "keep-alive") {
      const t = /(?:^|[,\s])timeout\s*=\s*(\d{1,6})/i.exec(value);
      if (t) keepAliveMs = Number(t[1]) * 1000;
    }
  }
  return { status, minor, headers, connection, teList, clList, keepAliveMs };
}

/**
 * True when the joined Connection options (`,opt1,opt2` as parseResponseHead collects them,
 * lower-cased) hold `token` as a whole option: options are comma-separated tokens (RFC 9110
 * §7.6.1), so `x-keep-alive-y` is not `keep-alive` and `close-later` is not `close`.
 */
export function hasConnectionOption(connection: string, token: string): boolean {
  for (const opt of connection.split(",")) if (opt.trim() === token) return true;
  return false;
}
