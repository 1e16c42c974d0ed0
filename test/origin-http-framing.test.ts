/**
 * `OriginPool` (src/agent/origin-http.ts), the agent's HTTP/1.1 keep-alive client to the local
 * app — response framing: Content-Length, chunked (sizes, extensions, trailers), close-delimited, HEAD / 204 / 304, split at every byte — against real servers on 127.0.0.1 port 0 (test/support/origin-kit.ts).
 * Every wait is bounded in time and every loop in count.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { OriginProtocolError } from "../src/agent/origin-http.ts";
import { answering, cleanupOrigins, get, newPool, ok, prng, rawOrigin, readAll, rejection, text, waitFor, within } from "./support/origin-kit.ts";

afterEach(cleanupOrigins);

describe("response framing", () => {
  test("Content-Length response: status, headers (lower-cased, repeats kept), exact body; the request head is exact", async () => {
    const o = answering(() => "HTTP/1.1 201 Created\r\nContent-Length: 11\r\nX-Multi: a\r\nX-Multi: b\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nhello world");
    const pool = newPool();
    const res = await within(pool.request(o.ep, get("/path?q=1&r=%20", "GET", [["host", "example.test"], ["x-custom", "v"]])), 5000, "request");
    expect(res.status).toBe(201);
    expect(res.headers).toEqual([
      ["content-length", "11"],
      ["x-multi", "a"],
      ["x-multi", "b"],
      ["set-cookie", "a=1"],
      ["set-cookie", "b=2"],
    ]);
    expect(await text(res)).toBe("hello world");
    expect(o.conns[0]!.requests[0]!.head + "\r\n\r\n").toBe("GET /path?q=1&r=%20 HTTP/1.1\r\nhost: example.test\r\nx-custom: v\r\n\r\n");
  });

  const chunkedResponse =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n" +
    "4;name=value\r\nWiki\r\n" +
    '6 ;quoted="a;b"\r\npedia \r\n' +
    "E\r\nin \r\n\r\nchunks.\r\n" +
    "a\r\n0123456789\r\n" +
    "0;last=1\r\nExpires: Wed, 21 Oct 2015 07:28:00 GMT\r\nX-Trailer: yes\r\n\r\n";
  const chunkedBody = "Wikipedia in \r\n\r\nchunks.0123456789";

  test("chunked response split in two at every byte position (extensions, trailers): exact body, one connection throughout", async () => {
    const total = chunkedResponse.length;
    const o = rawOrigin({ onRequest: (c, req) => void c.sendSplit(chunkedResponse, [Number(req.target.slice(1))], 3) });
    const pool = newPool();
    for (let cut = 1; cut < total; cut++) {
      const res = await within(pool.request(o.ep, get(`/${cut}`)), 5000, `request split at ${cut}`);
      expect(res.status).toBe(200);
      expect(await text(res)).toBe(chunkedBody);
    }
    // the chunked body, its last-chunk and its trailers were consumed exactly: the socket was reused every time
    expect(o.accepted).toBe(1);
    expect(o.conns[0]!.requests.length).toBe(total - 1);
  });

  test("chunked response written one byte per write: exact body", async () => {
    const o = rawOrigin({ onRequest: (c) => void c.sendSplit(chunkedResponse, Array.from({ length: chunkedResponse.length }, (_, i) => i), 1) });
    const pool = newPool();
    const res = await within(pool.request(o.ep, get()), 10_000, "head");
    expect(await text(res)).toBe(chunkedBody);
    expect(pool.idleCount).toBe(1);
  });

  test("chunked response cut at 200 sets of random positions (seeded): exact body every time", async () => {
    const rnd = prng(0xc0ffee);
    const plans: number[][] = [];
    for (let i = 0; i < 200; i++) {
      const k = 1 + Math.floor(rnd() * 6);
      plans.push([...new Set(Array.from({ length: k }, () => 1 + Math.floor(rnd() * (chunkedResponse.length - 1))))].sort((a, b) => a - b));
    }
    const o = rawOrigin({ onRequest: (c, _req, n) => void c.sendSplit(chunkedResponse, plans[n]!, 1) });
    const pool = newPool();
    for (let i = 0; i < plans.length; i++) {
      const res = await within(pool.request(o.ep, get()), 5000, `plan ${i} ${JSON.stringify(plans[i])}`);
      expect(await text(res)).toBe(chunkedBody);
    }
    expect(o.accepted).toBe(1);
  });

  test("chunked response with upper-case hex, bare-LF line ends and a large chunk", async () => {
    const big = "x".repeat(0x1abc);
    const o = answering(() => `HTTP/1.1 200 OK\nTransfer-Encoding: Chunked\n\n1ABC\n${big}\n0\n\n`);
    const pool = newPool();
    const res = await pool.request(o.ep, get());
    expect(await text(res)).toBe(big);
    expect(pool.idleCount).toBe(1);
  });

  test("close-delimited response (no Content-Length, no Transfer-Encoding) ends when the origin closes; not reused", async () => {
    const o = rawOrigin({
      onRequest: async (c) => {
        await c.sendSplit("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst part, second part", [50, 60], 20);
        await Bun.sleep(20);
        c.socket.end();
      },
    });
    const pool = newPool();
    const res = await within(pool.request(o.ep, get()), 5000, "head");
    expect(res.status).toBe(200);
    expect(await text(res)).toBe("first part, second part");
    expect(pool.idleCount).toBe(0);
    expect(await text(await pool.request(o.ep, get()))).toBe("first part, second part");
    expect(o.accepted).toBe(2);
  });

  test("a transfer coding that does not end in chunked is read until close", async () => {
    const o = rawOrigin({
      onRequest: async (c) => {
        await c.send("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 3\r\n\r\nnot-three-bytes");
        c.socket.end();
      },
    });
    const pool = newPool();
    expect(await text(await pool.request(o.ep, get()))).toBe("not-three-bytes");
    expect(pool.idleCount).toBe(0);
  });

  test("only the last transfer coding counts (RFC 9112 §6.3): `chunked, gzip` is read until close, `gzip, chunked` is chunked", async () => {
    const notLast = rawOrigin({
      onRequest: async (c) => {
        await c.send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
        c.socket.end();
      },
    });
    const pool = newPool();
    expect(await text(await pool.request(notLast.ep, get()))).toBe("3\r\nabc\r\n0\r\n\r\n"); // the bytes as sent: not de-chunked
    expect(pool.idleCount).toBe(0);
    const last = answering(() => "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip,chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    expect(await text(await pool.request(last.ep, get()))).toBe("abc");
    expect(pool.idleCount).toBe(1); // framed: the socket is kept
  });

  test("HEAD, 204 and 304 responses have no body even with a Content-Length; the socket stays in use", async () => {
    const o = answering((req) => {
      if (req.method === "HEAD") return "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nContent-Type: text/html\r\n\r\n";
      if (req.target === "/204") return "HTTP/1.1 204 No Content\r\nContent-Length: 1000\r\n\r\n";
      if (req.target === "/304") return 'HTTP/1.1 304 Not Modified\r\nContent-Length: 1000\r\nETag: "x"\r\n\r\n';
      if (req.target === "/204-chunked") return "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n";
      return ok("after");
    });
    const pool = newPool();
    const head = await within(pool.request(o.ep, get("/", "HEAD")), 5000, "HEAD");
    expect(head.status).toBe(200);
    expect(head.headers).toContainEqual(["content-length", "1000"]);
    expect((await readAll(head, 2000)).length).toBe(0);
    for (const t of ["/204", "/304", "/204-chunked"]) {
      const res = await within(pool.request(o.ep, get(t)), 5000, t);
      expect(res.status).toBe(Number(t.slice(1, 4)));
      expect((await readAll(res, 2000)).length).toBe(0);
    }
    // the next answer on the same socket is read from the right place
    expect(await text(await pool.request(o.ep, get("/next")))).toBe("after");
    expect(o.accepted).toBe(1);
  });

  test("a status line without a reason phrase is accepted", async () => {
    const o = answering(() => "HTTP/1.1 418\r\nContent-Length: 2\r\n\r\nhi");
    const pool = newPool();
    const res = await pool.request(o.ep, get());
    expect(res.status).toBe(418);
    expect(await text(res)).toBe("hi");
  });

  test("Content-Length: 0 and repeated identical Content-Length values are accepted", async () => {
    const o = answering((req) => (req.target === "/zero" ? "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" : "HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\nabc"));
    const pool = newPool();
    expect((await readAll(await pool.request(o.ep, get("/zero")), 2000)).length).toBe(0);
    expect(await text(await pool.request(o.ep, get("/same")))).toBe("abc");
    expect(o.accepted).toBe(1);
  });

  test("100 Continue and 103 Early Hints before the final answer are skipped (in one write and spread out)", async () => {
    const interim = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n";
    const final = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Final: 1\r\n\r\nfinal";
    const o = rawOrigin({
      onRequest: (c, req) => void (req.target === "/spread" ? c.sendSplit(interim + final, [25, 30, 70, 90, interim.length, interim.length + 3], 10) : c.send(interim + final)),
    });
    const pool = newPool();
    for (const t of ["/one", "/spread"]) {
      const res = await within(pool.request(o.ep, get(t)), 5000, t);
      expect(res.status).toBe(200);
      expect(res.headers).toEqual([
        ["content-length", "5"],
        ["x-final", "1"],
      ]);
      expect(await text(res)).toBe("final");
    }
    expect(o.accepted).toBe(1);
  });

  test("a 101 Switching Protocols on a plain request fails with OriginProtocolError and drops the socket", async () => {
    const o = answering(() => "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
    const pool = newPool();
    const err = await rejection(pool.request(o.ep, get()));
    expect(err).toBeInstanceOf(OriginProtocolError);
    expect(err.message).toMatch(/switched protocols/);
    await waitFor(() => o.closedCount === 1, 2000, "origin sees the socket closed");
    expect(pool.idleCount).toBe(0);
  });

  test("extra bytes after a complete answer: the socket is not reused", async () => {
    const o = answering(() => ok("ok") + "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray");
    const pool = newPool();
    expect(await text(await pool.request(o.ep, get()))).toBe("ok");
    await waitFor(() => o.closedCount === 1, 2000, "origin sees the socket closed");
    expect(await text(await pool.request(o.ep, get()))).toBe("ok");
    expect(o.accepted).toBe(2);
  });

  test("bytes from the origin while the socket is idle: dropped, the next request uses a new socket", async () => {
    const o = rawOrigin({
      onRequest: async (c) => {
        await c.send(ok("ok"));
        await Bun.sleep(30);
        await c.send("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate");
      },
    });
    const pool = newPool();
    expect(await text(await pool.request(o.ep, get()))).toBe("ok");
    await waitFor(() => o.closedCount === 1, 2000, "origin sees the socket closed");
    const res = await pool.request(o.ep, get());
    expect(await text(res)).toBe("ok");
    expect(o.accepted).toBe(2);
  });
});
