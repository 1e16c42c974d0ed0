/**
 * Reads the HTTP answer to a WebSocket upgrade from a byte stream: status line, headers, and for
 * a failed handshake the body (Content-Length, chunked, or until close), bounded in size and time.
 */

export type HandshakeResponse =
  | {
      status: number;
      statusText: string;
      headers: Record<string, string>;
      body: string;
      rest: Uint8Array;
      /** The header lines as sent (names lower-cased, repeats such as Set-Cookie kept apart). */
      headerList: Array<[string, string]>;
      /** The body's bytes (decoded from chunked), at most `maxBodyBytes`. */
      bodyBytes: Uint8Array;
      /** True when the body was longer than `maxBodyBytes` (or ended early): what we have is cut. */
      truncated: boolean;
    }
  | { error: string };

export interface ResponseReaderOptions {
  /** Largest header section; default 16 KiB. */
  maxHeaderBytes?: number;
  /** Largest body kept from a failed handshake; default 64 KiB. */
  maxBodyBytes?: number;
  /** How long to wait for the body once the headers are in; default 2 s. */
  bodyTimeoutMs?: number;
}

const CRLFCRLF = Buffer.from("\r\n\r\n");

/** Feed it with `push`; call `end` when the socket closes. `done` is called exactly once. */
export function readHandshakeResponse(done: (r: HandshakeResponse) => void, opts: ResponseReaderOptions = {}) {
  const maxHeader = opts.maxHeaderBytes ?? 16 * 1024;
  const maxBody = opts.maxBodyBytes ?? 64 * 1024;
  let buf: Buffer = Buffer.alloc(0);
  let head: { status: number; statusText: string; headers: Record<string, string>; headerList: Array<[string, string]> } | null = null;
  let bodyStart = 0;
  let finished = false;
  let timer: Timer | undefined;

  const finish = (r: HandshakeResponse) => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    buf = Buffer.alloc(0);
    done(r);
  };
  const finishBody = (body: Uint8Array, complete: boolean) => {
    if (!head) return;
    const bytes = new Uint8Array(body.subarray(0, maxBody)); // copy: `buf` is dropped
    finish({ ...head, body: Buffer.from(bytes).toString("utf8"), rest: new Uint8Array(0), bodyBytes: bytes, truncated: !complete || body.length > maxBody });
  };

  const tryBody = (atEnd: boolean) => {
    if (!head) return;
    const body = buf.subarray(bodyStart);
    const cl = head.headers["content-length"];
    const te = (head.headers["transfer-encoding"] ?? "").toLowerCase();
    if (te.includes("chunked")) {
      const decoded = dechunk(body);
      if (decoded.complete || atEnd || decoded.data.length > maxBody) finishBody(decoded.data, decoded.complete);
    } else if (cl !== undefined && /^\d+$/.test(cl)) {
      const want = Number(cl);
      if (body.length >= want || body.length > maxBody || atEnd) finishBody(body.subarray(0, want), body.length >= want);
    } else if (atEnd || body.length > maxBody) finishBody(body, atEnd && body.length <= maxBody);
  };

  const parseHead = () => {
    const idx = buf.indexOf(CRLFCRLF);
    if (idx < 0) {
      if (buf.length > maxHeader) finish({ error: "handshake response headers too large" });
      return;
    }
    const lines = buf.subarray(0, idx).toString("latin1").split("\r\n");
    const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0] ?? "");
    if (!m) return finish({ error: `not an HTTP response: ${JSON.stringify((lines[0] ?? "").slice(0, 80))}` });
    const headers: Record<string, string> = {};
    const headerList: Array<[string, string]> = [];
    for (const line of lines.slice(1)) {
      const c = line.indexOf(":");
      if (c <= 0) return finish({ error: "malformed header line in handshake response" });
      const name = line.slice(0, c).trim().toLowerCase();
      const value = line.slice(c + 1).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
      headerList.push([name, value]);
    }
    const status = Number(m[1]);
    const statusText = m[2] ?? "";
    bodyStart = idx + 4;
    if (status === 101) {
      // copy: the leftover bytes outlive this reader's buffer
      return finish({ status, statusText, headers, body: "", rest: new Uint8Array(buf.subarray(bodyStart)), headerList, bodyBytes: new Uint8Array(0), truncated: false });
    }
    head = { status, statusText, headers, headerList };
    timer = setTimeout(() => tryBody(true), opts.bodyTimeoutMs ?? 2000);
    tryBody(false);
  };

  return {
    push(d: Uint8Array) {
      if (finished) return;
      buf = buf.length === 0 ? Buffer.from(d) : Buffer.concat([buf, d]);
      if (!head) parseHead();
      else tryBody(false);
    },
    end() {
      if (finished) return;
      if (head) tryBody(true);
      else finish({ error: "connection closed before the handshake response was complete" });
    },
  };
}

/** Decodes as much of a chunked body as is present. */
function dechunk(b: Uint8Array): { data: Uint8Array; complete: boolean } {
  const parts: Uint8Array[] = [];
  const s = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  let pos = 0;
  for (;;) {
    const eol = s.indexOf("\r\n", pos);
    if (eol < 0) break;
    const size = parseInt(s.subarray(pos, eol).toString("latin1").split(";")[0] ?? "", 16);
    if (!Number.isFinite(size)) break;
    if (size === 0) return { data: Buffer.concat(parts), complete: true };
    const start = eol + 2;
    if (s.length < start + size) {
      parts.push(s.subarray(start));
      break;
    }
    parts.push(s.subarray(start, start + size));
    pos = start + size + 2;
  }
  return { data: Buffer.concat(parts), complete: false };
}
