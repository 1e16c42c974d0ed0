/**
 * (Continued from origin-parse.test.ts: interim answers and connection reuse, head size, the
 * body queue, chunk framing.) The agent's HTTP/1.1 response parser (`Exchange` in src/agent/origin-exchange.ts) fed bytes
 * directly, whole and one byte at a time (issue 18: test/origin-http-*.test.ts drive it through
 * real sockets, ~10 s a run, too slow to run per mutant). What the app's answer becomes: status,
 * headers, body bytes, whether the connection may be reused, and the sentence when the app breaks
 * HTTP/1.1 (RFC 9112). The connection's socket is a recorder of pause / resume / terminate: the
 * parser does no other I/O.
 */
import { describe, expect, test } from "bun:test";
import { chunkFrame } from "../src/agent/origin-conn.ts";
import { both, enc, parse, setup, text } from "./support/origin-wire.ts";

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
