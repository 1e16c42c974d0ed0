/**
 * The agent's HTTP/1.1 response parser (`Exchange` in src/agent/origin-exchange.ts) fed bytes
 * directly, whole and one byte at a time (issue 18: test/origin-http-*.test.ts drive it through
 * real sockets, ~10 s a run, too slow to run per mutant). What the app's answer becomes: status,
 * headers, body bytes, whether the connection may be reused, and the sentence when the app breaks
 * HTTP/1.1 (RFC 9112). The connection's socket is a recorder of pause / resume / terminate: the
 * parser does no other I/O.
 */
import { describe, expect, test } from "bun:test";
import { OriginProtocolError } from "../src/agent/origin-conn.ts";
import { both, enc, parse, setup, text } from "./support/origin-wire.ts";

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
