/**
 * The agent's HTTP/1.1 response parser (`Exchange` in src/agent/origin-exchange.ts) fed bytes
 * directly, whole and one byte at a time (issue 18: test/origin-http-*.test.ts drive it through
 * real sockets, ~10 s a run, too slow to run per mutant). What the app's answer becomes: status,
 * headers, body bytes, whether the connection may be reused, and the sentence when the app breaks
 * HTTP/1.1 (RFC 9112). The connection's socket is a recorder of pause / resume / terminate: the
 * parser does no other I/O.
 */
import { describe, expect, test } from "bun:test";
import { chunkFrame, Exchange, OriginConn, OriginProtocolError, type OriginResponse } from "../src/agent/origin-conn.ts";

function setup(noBody = false) {
  const sock = { paused: 0, resumed: 0, terminated: 0, pause() { this.paused++; }, resume() { this.resumed++; }, terminate() { this.terminated++; } };
  const conn = new OriginConn("test");
  conn.socket = sock as unknown as OriginConn["socket"];
  const ex = new Exchange(conn, noBody);
  conn.active = ex;
  const done: boolean[] = [];
  ex.onDone = (reusable) => done.push(reusable);
  return { sock, conn, ex, done };
}

const enc = (s: string) => new Uint8Array(Buffer.from(s, "latin1"));
const text = (b: Uint8Array) => Buffer.from(b).toString("latin1");

type Outcome = {
  status?: number;
  headers?: Array<[string, string]>;
  body?: string;
  error?: string;
  done: boolean[];
  keepAlive: boolean;
  destroyed: boolean;
};

/** Feeds `wire` whole or byte by byte; `close`: then the app closes the socket. */
async function parse(wire: string, o: { bytewise?: boolean; noBody?: boolean; close?: boolean } = {}): Promise<Outcome> {
  const { sock, conn, ex, done } = setup(o.noBody);
  const bytes = enc(wire);
  if (o.bytewise) for (let i = 0; i < bytes.length; i++) ex.onData(bytes.subarray(i, i + 1));
  else ex.onData(bytes);
  if (o.close) conn.onClose();
  const out: Outcome = { done, keepAlive: ex.keepAlive, destroyed: sock.terminated > 0 };
  let head: OriginResponse;
  try {
    head = await ex.head;
  } catch (e) {
    return { ...out, error: (e as Error).message };
  }
  out.status = head.status;
  out.headers = head.headers as Array<[string, string]>;
  if (!ex.isDone() && done.length === 0) return out; // still waiting for body bytes
  const parts: string[] = [];
  try {
    for await (const c of head.body) parts.push(text(c));
  } catch (e) {
    out.error = (e as Error).message;
  }
  out.body = parts.join("");
  out.keepAlive = ex.keepAlive;
  out.destroyed = sock.terminated > 0;
  return out;
}

/** The same wire parsed whole and byte by byte must give the same outcome. */
async function both(wire: string, o: { noBody?: boolean; close?: boolean } = {}): Promise<Outcome> {
  const whole = await parse(wire, o);
  const bytewise = await parse(wire, { ...o, bytewise: true });
  expect(bytewise).toEqual(whole);
  return whole;
}

describe("status line and headers", () => {
  test("status, headers lower-cased in order with repeats, values trimmed, the raw head kept", async () => {
    const wire = "HTTP/1.1 201 Created\r\nX-One:  a  \r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nContent-Length: 2\r\n\r\nhi";
    const r = await both(wire);
    expect(r).toEqual({
      status: 201,
      headers: [
        ["x-one", "a"],
        ["set-cookie", "a=1"],
        ["set-cookie", "b=2"],
        ["content-length", "2"],
      ],
      body: "hi",
      done: [true],
      keepAlive: true,
      destroyed: false,
    });
    const { ex } = setup();
    ex.onData(enc(wire));
    expect((await ex.head).rawHead).toBe("HTTP/1.1 201 Created\r\nX-One:  a  \r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nContent-Length: 2\r\n\r\n");
  });

  test("bare LF line ends and a missing reason phrase are accepted", async () => {
    expect(await both("HTTP/1.1 200\nContent-Length: 1\n\nx")).toMatchObject({ status: 200, body: "x", headers: [["content-length", "1"]] });
    expect(await both("HTTP/1.1 200 OK\r\nContent-Length: 1\n\r\nx")).toMatchObject({ status: 200, body: "x" });
    expect(await both("HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n")).toMatchObject({ status: 404, body: "" });
  });

  const bad: Array<[string, string]> = [
    ["HTTP/2 200 OK\r\n\r\n", 'the local app did not answer with HTTP/1.x ("HTTP/2 200 OK")'],
    ["HTTP/1.2 200 OK\r\n\r\n", 'the local app did not answer with HTTP/1.x ("HTTP/1.2 200 OK")'],
    ["HTTP/1.1 20 OK\r\n\r\n", 'the local app did not answer with HTTP/1.x ("HTTP/1.1 20 OK")'],
    ["HTTP/1.1 2000 OK\r\n\r\n", 'the local app did not answer with HTTP/1.x ("HTTP/1.1 2000 OK")'],
    ["HTTP/1.1 200OK\r\n\r\n", 'the local app did not answer with HTTP/1.x ("HTTP/1.1 200OK")'],
    [" HTTP/1.1 200 OK\r\n\r\n", 'the local app did not answer with HTTP/1.x (" HTTP/1.1 200 OK")'],
    [`SSH-2.0-${"x".repeat(60)}\r\n\r\n`, `the local app did not answer with HTTP/1.x ("SSH-2.0-${"x".repeat(32)}")`],
    ["HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", 'the local app sent a malformed header line ("no colon here")'],
    ["HTTP/1.1 200 OK\r\nnocolon\r\n\r\n", 'the local app sent a malformed header line ("nocolon")'],
    [`HTTP/1.1 200 OK\r\n${"n".repeat(50)}\r\n\r\n`, `the local app sent a malformed header line ("${"n".repeat(40)}")`],
    ["\n\nHTTP/1.1 200 OK\r\n\r\n", 'the local app did not answer with HTTP/1.x ("")'],
    ["HTTP/1.1 200 OK\r\n: empty name\r\n\r\n", 'the local app sent a malformed header line (": empty name")'],
    ["HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", 'the local app sent a malformed header line ("Bad Name: x")'],
    ["HTTP/1.1 200 OK\r\n X-Folded: x\r\n\r\n", 'the local app sent a malformed header line (" X-Folded: x")'],
    ["HTTP/1.1 200 OK\r\nX-A: a\0b\r\n\r\n", "the local app sent a NUL byte in header X-A"],
    ["HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", "the local app switched protocols on a plain HTTP request"],
    ["HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello", 'the local app sent an invalid Content-Length ("5, 6")'],
    ["HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", 'the local app sent an invalid Content-Length ("5, 6")'],
    ["HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", 'the local app sent an invalid Content-Length ("abc")'],
    ["HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 'the local app sent an invalid Content-Length ("-1")'],
    ["HTTP/1.1 200 OK\r\nContent-Length: 1000000000000000\r\n\r\n", 'the local app sent an invalid Content-Length ("1000000000000000")'],
    ["HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n", 'the local app sent an invalid Content-Length ("")'],
    [`HTTP/1.1 200 OK\r\nContent-Length: ${"1".repeat(30)}, 2\r\n\r\n`, `the local app sent an invalid Content-Length ("${"1".repeat(30)}, 2")`],
    [`HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: ${"2".repeat(50)}\r\n\r\n`, `the local app sent an invalid Content-Length ("1, ${"2".repeat(37)}")`],
  ];
  for (const [wire, message] of bad) {
    test(`refused: ${message}`, async () => {
      const r = await both(wire);
      expect(r).toEqual({ error: message, done: [false], keepAlive: true, destroyed: true });
      const { ex, conn, done } = setup();
      ex.onData(enc(wire));
      conn.onClose(new Error("reset")); // a failure is reported once
      expect(done).toEqual([false]);
      expect(await ex.head.catch((e) => e)).toBeInstanceOf(OriginProtocolError);
    });
  }
});

describe("framing (RFC 9112 §6.3)", () => {
  test("Content-Length: exactly that many bytes; the same length repeated is one length", async () => {
    expect(await both("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")).toMatchObject({ body: "hello", done: [true], destroyed: false });
    expect(await both("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello")).toMatchObject({ body: "hello", done: [true] });
    expect(await both("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello")).toMatchObject({ body: "hello", done: [true] });
    expect(await both("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")).toMatchObject({ body: "", done: [true], keepAlive: true });
    expect(await both("HTTP/1.1 200 OK\r\nContent-Length: 005\r\n\r\nhello")).toMatchObject({ body: "hello", done: [true] });
  });

  test("a close after a complete answer changes nothing; a small answer never pauses or resumes the socket", async () => {
    const { ex, conn, sock, done } = setup();
    ex.onData(enc("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    conn.onClose(new Error("reset"));
    ex.fail(new Error("late"));
    expect(done).toEqual([true]);
    const parts: string[] = [];
    for await (const c of (await ex.head).body) parts.push(text(c));
    expect([parts.join(""), sock.paused, sock.resumed]).toEqual(["ok", 0, 0]);
  });

  test("bytes after the answer are never taken for the next answer: the connection is dropped", async () => {
    expect(await parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA")).toMatchObject({ body: "hello", done: [true], destroyed: true });
    expect(await parse("HTTP/1.1 204 No Content\r\n\r\nX")).toMatchObject({ body: "", destroyed: true });
    const { ex, sock } = setup();
    ex.onData(enc("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"));
    expect(sock.terminated).toBe(0);
    ex.onData(enc("late"));
    expect(sock.terminated).toBe(1);
  });

  test("a body shorter than its Content-Length, then a close: an error, not a short body", async () => {
    const r = await parse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", { close: true });
    expect(r).toMatchObject({ status: 200, body: "hello", error: "the local app closed the connection in the middle of the response body", done: [false] });
  });

  test("no framing: the body runs to the close, and the connection is not reused", async () => {
    const r = await both("HTTP/1.1 200 OK\r\nX: y\r\n\r\nall of it", { close: true });
    expect(r).toMatchObject({ body: "all of it", done: [false], keepAlive: false });
    expect(r.error).toBeUndefined();
    const broken = setup();
    broken.ex.onData(enc("HTTP/1.1 200 OK\r\n\r\npart"));
    broken.conn.onClose(new Error("ECONNRESET"));
    const body: string[] = [];
    const head = await broken.ex.head;
    const err = await (async () => {
      for await (const c of head.body) body.push(text(c));
    })().catch((e: Error) => e.message);
    expect([body.join(""), err]).toEqual(["part", "ECONNRESET"]);
  });

  test("no answer at all before the close", async () => {
    expect(await parse("", { close: true })).toMatchObject({ error: "the local app closed the connection without answering", done: [false] });
    expect(await parse("HTTP/1.1 200 OK\r\n", { close: true })).toMatchObject({ error: "the local app closed the connection without answering" });
  });

  test("HEAD, 204 and 304 have no body whatever they declare", async () => {
    expect(await both("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", { noBody: true })).toMatchObject({ body: "", done: [true], keepAlive: true });
    expect(await both("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", { noBody: true })).toMatchObject({ body: "", done: [true] });
    expect(await both("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n")).toMatchObject({ status: 204, body: "", done: [true] });
    expect(await both("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n")).toMatchObject({ status: 304, body: "", done: [true] });
    expect(await both("HTTP/1.1 205 Reset Content\r\nContent-Length: 0\r\n\r\n")).toMatchObject({ status: 205, body: "", done: [true] });
  });

  test("Transfer-Encoding: only a last `chunked` makes it chunked; it wins over Content-Length", async () => {
    const chunked = "5\r\nhello\r\n0\r\n\r\n";
    expect(await both(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${chunked}`)).toMatchObject({ body: "hello", done: [true], keepAlive: true });
    expect(await both(`HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\n${chunked}`)).toMatchObject({ body: "hello", done: [true] });
    expect(await both(`HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n${chunked}`)).toMatchObject({ body: "hello", done: [true] });
    expect(await both(`HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n${chunked}`)).toMatchObject({ body: "hello", done: [true] });
    expect(await both(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked,\r\n\r\n${chunked}`)).toMatchObject({ body: "hello", done: [true] });
    expect(await both(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n${chunked}`)).toMatchObject({ body: "hello", done: [true] });
    // chunked not last: the body is close-delimited, raw
    expect(await both(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n${chunked}`, { close: true })).toMatchObject({ body: chunked, keepAlive: false, done: [false] });
  });
});

describe("chunked bodies", () => {
  const head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  const good: Array<[string, string]> = [
    ["5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world"],
    ["A\r\n0123456789\r\n0\r\n\r\n", "0123456789"],
    ["a\r\n0123456789\r\n0\r\n\r\n", "0123456789"],
    ["5;name=value\r\nhello\r\n0\r\n\r\n", "hello"],
    ["5 ;x\r\nhello\r\n0\r\n\r\n", "hello"],
    ["5\t\r\nhello\r\n0\r\n\r\n", "hello"],
    ["5\nhello\n0\n\n", "hello"],
    ["00005\r\nhello\r\n000\r\n\r\n", "hello"],
    ["5\r\nhello\r\n0\r\nX-Trailer: 1\r\nX-Other: 2\r\n\r\n", "hello"],
    ["5\r\nhello\r\n0;ext\r\nX-T: 1\n\n", "hello"],
    ["5\r\nhello\r\n0\r\nX\n\r\n", "hello"], // a one-character trailer line is not the end
    ["0\r\n\r\n", ""],
  ];
  for (const [body, want] of good) {
    test(`${JSON.stringify(body)} → ${JSON.stringify(want)}`, async () => {
      const r = await both(head + body);
      expect(r).toMatchObject({ body: want, done: [true], keepAlive: true, destroyed: false });
      expect(r.headers).toEqual([["transfer-encoding", "chunked"]]); // trailer fields are dropped
    });
  }

  const bad: Array<[string, string]> = [
    ["zz\r\n", 'the local app sent a malformed chunk size line ("zz")'],
    ["\r\n", 'the local app sent a malformed chunk size line ("")'],
    ["\n5\r\nhello\r\n0\r\n\r\n", 'the local app sent a malformed chunk size line ("")'],
    ["-5\r\n", 'the local app sent a malformed chunk size line ("-5")'],
    ["0x5\r\n", 'the local app sent a malformed chunk size line ("0x5")'],
    ["1000000000000\r\n", 'the local app sent a malformed chunk size line ("1000000000000")'], // 13 hex digits
    [" 5\r\n", 'the local app sent a malformed chunk size line (" 5")'],
    ["5x\r\n", 'the local app sent a malformed chunk size line ("5x")'],
    [`${"5".repeat(50)}\r\n`, `the local app sent a malformed chunk size line ("${"5".repeat(40)}")`],
    ["5\r\nhelloX\r\n0\r\n\r\n", "the local app sent a chunk without its CRLF"],
    ["5\r\nhello\rX0\r\n\r\n", "the local app sent a chunk without its CRLF"],
    ["5\r\nhello\r\r\n0\r\n\r\n", "the local app sent a chunk without its CRLF"],
  ];
  for (const [body, message] of bad) {
    test(`refused: ${JSON.stringify(body)} → ${message}`, async () => {
      const r = await both(head + body);
      expect(r).toMatchObject({ status: 200, error: message, done: [false], destroyed: true });
    });
  }

  test("a chunk size line without its end, past 4 KiB, is refused; up to 4 KiB it waits", async () => {
    const waiting = setup();
    const ext = `5;${"e".repeat(4094)}`; // a long chunk extension: 4096 bytes without the line end
    waiting.ex.onData(enc(head + ext));
    await waiting.ex.head;
    expect([waiting.done, waiting.sock.terminated]).toEqual([[], 0]);
    waiting.ex.onData(enc("\r\nhello\r\n0\r\n\r\n"));
    expect(waiting.done).toEqual([true]);
    const over = await parse(head + "0".repeat(4097));
    expect(over).toMatchObject({ error: "the local app sent a malformed chunk size line", destroyed: true });
  });

  test("a trailer section without its end, past 256 KiB, is refused; up to it, it waits", async () => {
    const t = setup();
    t.ex.onData(enc(`${head}0\r\n`));
    t.ex.onData(enc("X".repeat(256 * 1024)));
    expect([t.done, t.sock.terminated]).toEqual([[], 0]);
    t.ex.onData(enc("X"));
    expect([t.done, t.sock.terminated]).toEqual([[false], 1]);
    const h = await t.ex.head;
    expect(await (async () => {
      for await (const _ of h.body);
    })().catch((e: Error) => e.message)).toBe("the local app's trailer section is too large");
  });
});

describe("interim answers and connection reuse", () => {
  test("100 Continue and 103 Early Hints are skipped: the final answer's head is the one given", async () => {
    const r = await both("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    expect(r).toMatchObject({ status: 200, headers: [["content-length", "2"]], body: "ok", done: [true] });
  });

  const reuse: Array<[string, string, boolean]> = [
    ["HTTP/1.1", "", true],
    ["HTTP/1.1", "Connection: close\r\n", false],
    ["HTTP/1.1", "Connection: Close\r\n", false],
    ["HTTP/1.1", "Connection: keep-alive, close\r\n", false],
    ["HTTP/1.1", "Connection: keep-alive\r\nConnection: close\r\n", false],
    ["HTTP/1.1", "Connection: closed\r\n", true], // not the `close` option
    ["HTTP/1.1", "Connection: upgrade\r\n", true],
    ["HTTP/1.0", "", false],
    ["HTTP/1.0", "Connection: keep-alive\r\n", true],
    ["HTTP/1.0", "Connection: Keep-Alive\r\n", true],
    // options are comma-separated tokens compared whole (RFC 9110 §7.6.1), not words inside one
    ["HTTP/1.0", "Connection: x-keep-alive-y\r\n", false],
    ["HTTP/1.0", "Connection: foo , keep-alive\r\n", true],
    ["HTTP/1.1", "Connection: x-close\r\n", true],
    ["HTTP/1.1", "Connection: close-later\r\n", true],
    ["HTTP/1.1", "Connection: upgrade ,close\r\n", false],
  ];
  for (const [version, header, reusable] of reuse) {
    test(`${version} ${JSON.stringify(header)} → ${reusable ? "reused" : "closed after the answer"}`, async () => {
      const r = await both(`${version} 200 OK\r\n${header}Content-Length: 1\r\n\r\nx`);
      expect([r.keepAlive, r.done]).toEqual([reusable, [reusable]]);
    });
  }

  const timeouts: Array<[string, number | null]> = [
    ["timeout=5", 5000],
    ["timeout=5, max=100", 5000],
    ["max=100, timeout=7", 7000],
    ["max=100,timeout=8", 8000],
    ["Timeout = 3", 3000],
    ["timeout=0", 0],
    ["timeout=15", 15_000],
    ["timeout=123456", 123_456_000],
    ["xtimeout=5", null],
    ["timeout=", null],
    ["max=100", null],
  ];
  for (const [value, ms] of timeouts) {
    test(`Keep-Alive: ${value} → ${ms} ms`, () => {
      const { ex } = setup();
      ex.onData(enc(`HTTP/1.1 200 OK\r\nKeep-Alive: ${value}\r\nContent-Length: 0\r\n\r\n`));
      expect(ex.keepAliveMs).toBe(ms);
      expect(ex.status).toBe(200);
    });
  }
  test("only the Keep-Alive header sets the timeout", () => {
    const { ex } = setup();
    ex.onData(enc("HTTP/1.1 200 OK\r\nX-Info: timeout=5\r\nContent-Length: 0\r\n\r\n"));
    expect([ex.status, ex.keepAliveMs]).toEqual([200, null]);
  });
});

describe("head size", () => {
  const LIMIT = 256 * 1024;
  const headOf = (size: number) => {
    const start = "HTTP/1.1 200 OK\r\nX-Pad: ";
    const end = "\r\nContent-Length: 0\r\n\r\n";
    return start + "p".repeat(size - start.length - end.length) + end;
  };
  test("a head of exactly 256 KiB is read; one byte more is refused, whole or in pieces", async () => {
    expect(headOf(LIMIT).length).toBe(LIMIT);
    expect(await parse(headOf(LIMIT))).toMatchObject({ status: 200, done: [true] });
    const message = "the local app's response head is larger than 256 KiB";
    expect(await parse(headOf(LIMIT + 1))).toMatchObject({ error: message, destroyed: true });
    const pieces = setup();
    const wire = enc(headOf(LIMIT + 1));
    pieces.ex.onData(wire.subarray(0, LIMIT));
    expect(pieces.sock.terminated).toBe(0); // an unfinished head up to the limit waits
    pieces.ex.onData(wire.subarray(LIMIT));
    expect(await pieces.ex.head.catch((e: Error) => e.message)).toBe(message);
    const endless = setup();
    endless.ex.onData(enc(`HTTP/1.1 200 OK\r\nX: ${"p".repeat(LIMIT)}`));
    expect(await endless.ex.head.catch((e: Error) => e.message)).toBe(message);
  });

  test("bytes received are counted, head and body", async () => {
    const { ex } = setup();
    ex.onData(enc("HTTP/1.1 200 OK\r\n"));
    ex.onData(enc("Content-Length: 3\r\n\r\nabc"));
    expect(ex.received).toBe(41);
  });
});

describe("the body queue", () => {
  test("small pieces are handed on joined; past 64 KiB queued, one by one", async () => {
    const { ex } = setup();
    ex.onData(enc("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"));
    const it = (await ex.head).body[Symbol.asyncIterator]();
    ex.onData(enc("3\r\nabc\r\n3\r\ndef\r\n"));
    expect(text((await it.next()).value)).toBe("abcdef");
    const big = "b".repeat(40 * 1024);
    ex.onData(enc(`${(big.length).toString(16)}\r\n${big}\r\n${(big.length).toString(16)}\r\n${big}\r\n0\r\n\r\n`));
    expect((await it.next()).value.length).toBe(40 * 1024);
    expect((await it.next()).value.length).toBe(40 * 1024);
    expect((await it.next()).done).toBe(true);
  });

  test("a read waiting for bytes gets them when they arrive, and the end after them", async () => {
    const { ex } = setup();
    ex.onData(enc("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n"));
    const it = (await ex.head).body[Symbol.asyncIterator]();
    const first = it.next();
    ex.onData(enc("abc"));
    expect(text((await first).value)).toBe("abc");
    const second = it.next();
    const end = second.then(() => it.next());
    ex.onData(enc("def"));
    expect(text((await second).value)).toBe("def");
    expect((await end).done).toBe(true);
  });

  test("256 KiB unread pauses the socket; reading resumes it; a complete answer never leaves it paused", async () => {
    const { ex, sock, done } = setup();
    const piece = "z".repeat(64 * 1024);
    ex.onData(enc(`HTTP/1.1 200 OK\r\nContent-Length: ${5 * piece.length}\r\n\r\n`));
    const it = (await ex.head).body[Symbol.asyncIterator]();
    for (let i = 0; i < 3; i++) ex.onData(enc(piece));
    expect(sock.paused).toBe(0);
    ex.onData(enc(piece)); // 256 KiB queued
    expect(sock.paused).toBe(1);
    ex.onData(enc(piece)); // the rest arrives anyway (already in flight): complete → resumed for the pool
    expect([done, sock.resumed]).toEqual([[true], 1]);
    let total = 0;
    for (let r = await it.next(); !r.done; r = await it.next()) total += r.value.length;
    expect(total).toBe(5 * piece.length);
    expect(sock.resumed).toBe(1); // not resumed again by the reads

    const reader = setup();
    reader.ex.onData(enc(`HTTP/1.1 200 OK\r\nContent-Length: ${8 * piece.length}\r\n\r\n`));
    const it2 = (await reader.ex.head).body[Symbol.asyncIterator]();
    for (let i = 0; i < 5; i++) reader.ex.onData(enc(piece));
    expect(reader.sock.paused).toBe(1);
    await it2.next(); // 256 KiB still queued: stays paused
    expect(reader.sock.resumed).toBe(0);
    await it2.next(); // below the mark again
    expect(reader.sock.resumed).toBe(1);
    await it2.next();
    expect([reader.sock.paused, reader.sock.resumed]).toEqual([1, 1]);
  });

  test("a consumer that stops early drops the connection; one that reads to the end does not", async () => {
    const { ex, sock, done } = setup();
    ex.onData(enc("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"));
    for await (const _ of (await ex.head).body) break;
    expect([sock.terminated, done]).toEqual([1, [false]]);
    const after = setup();
    after.ex.onData(enc("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"));
    for await (const _ of (await after.ex.head).body) break; // complete already: nothing to drop
    expect([after.sock.terminated, after.done]).toEqual([0, [true]]);
  });
});

test("chunkFrame: size in hex, CRLF, data, CRLF", () => {
  expect(text(chunkFrame(enc("hello")))).toBe("5\r\nhello\r\n");
  expect(text(chunkFrame(new Uint8Array(0)))).toBe("0\r\n\r\n");
  expect(text(chunkFrame(enc("x".repeat(255))))).toBe(`ff\r\n${"x".repeat(255)}\r\n`);
});
