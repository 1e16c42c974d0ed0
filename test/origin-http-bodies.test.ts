/**
 * `OriginPool` (src/agent/origin-http.ts), the agent's HTTP/1.1 keep-alive client to the local
 * app — request bodies (Content-Length, chunked, streamed) and malformed responses → OriginProtocolError — against real servers on 127.0.0.1 port 0 (test/support/origin-kit.ts).
 * Every wait is bounded in time and every loop in count.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { OriginProtocolError } from "../src/agent/origin-http.ts";
import { answering, bodyError, cleanupOrigins, enc, get, latin1, newPool, ok, prng, rawOrigin, rejection, serve, streamOf, text, waitFor, within } from "./support/origin-kit.ts";

afterEach(cleanupOrigins);

describe("request bodies", () => {
  test("contentLength set: the origin receives exactly those bytes with that Content-Length, and the socket is reused", async () => {
    const o = answering((req) => ok(`got ${req.body.length}`));
    const pool = newPool();
    const parts = ["hello ", "brave ", "new ", "world"].map((s) => enc.encode(s));
    const res = await pool.request(o.ep, { method: "POST", target: "/upload", headers: [["host", "x"], ["content-type", "text/plain"]], body: streamOf(parts), contentLength: 21 });
    expect(await text(res)).toBe("got 21");
    const req = o.conns[0]!.requests[0]!;
    expect(req.headers.filter(([n]) => n === "content-length")).toEqual([["content-length", "21"]]);
    expect(req.headers.some(([n]) => n === "transfer-encoding")).toBe(false);
    expect(latin1(req.body)).toBe("hello brave new world");
    // nothing beyond the declared bytes was sent
    expect(Buffer.concat(o.conns[0]!.received).length).toBe(req.head.length + 4 + 21);
    expect(await text(await pool.request(o.ep, { method: "PUT", target: "/2", headers: [["host", "x"]], body: streamOf([enc.encode("ab")]), contentLength: 2 }))).toBe("got 2");
    expect(o.accepted).toBe(1);
  });

  test("contentLength null: the body goes chunked and decodes byte-exact at a Bun.serve origin (small, empty and >16 KiB chunks)", async () => {
    const { ep } = serve({
      maxRequestBodySize: 64 * 1024 * 1024,
      async fetch(req) {
        const body = new Uint8Array(await req.arrayBuffer());
        return Response.json({ te: req.headers.get("transfer-encoding"), cl: req.headers.get("content-length"), len: body.length, sha: createHash("sha256").update(body).digest("hex") });
      },
    });
    const rnd = prng(42);
    const parts: Uint8Array[] = [enc.encode("a"), new Uint8Array(0), enc.encode("0\r\n\r\n"), new Uint8Array(100_000), new Uint8Array(16 * 1024), new Uint8Array(16 * 1024 + 1), enc.encode("end")];
    for (const p of parts) for (let i = 0; i < p.length; i++) if (p.length > 100) p[i] = Math.floor(rnd() * 256);
    const all = Buffer.concat(parts);
    const pool = newPool();
    const res = await within(pool.request(ep, { method: "POST", target: "/", headers: [["host", "x"]], body: streamOf(parts), contentLength: null }), 10_000, "chunked upload");
    const j = JSON.parse(await text(res));
    expect(j).toEqual({ te: "chunked", cl: null, len: all.length, sha: createHash("sha256").update(all).digest("hex") });
    // and the socket is reusable after a chunked upload
    const res2 = await pool.request(ep, { method: "POST", target: "/", headers: [["host", "x"]], body: streamOf([enc.encode("xyz")]), contentLength: null });
    expect(JSON.parse(await text(res2)).len).toBe(3);
    expect(pool.idleCount).toBe(1);
  });

  test("contentLength null at a raw origin: `transfer-encoding: chunked` on the wire, no Content-Length, terminated by 0 CRLF CRLF", async () => {
    const o = answering((req) => ok(latin1(req.body)));
    const pool = newPool();
    const res = await pool.request(o.ep, { method: "POST", target: "/", headers: [["host", "x"]], body: streamOf([enc.encode("abc"), enc.encode("defgh")]), contentLength: null });
    expect(await text(res)).toBe("abcdefgh");
    const wire = latin1(new Uint8Array(Buffer.concat(o.conns[0]!.received)));
    expect(wire).toBe("POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n");
  });

  test("a body stream shorter than contentLength fails the request (no hang) and drops the socket", async () => {
    const o = rawOrigin({}); // waits for the declared body forever
    const pool = newPool();
    const err = await rejection(pool.request(o.ep, { method: "POST", target: "/", headers: [["host", "x"]], body: streamOf([enc.encode("short")]), contentLength: 100 }), 5000);
    expect(err.message).toMatch(/ended before its Content-Length/);
    await waitFor(() => o.closedCount === 1, 2000, "origin sees the close");
    expect(pool.idleCount).toBe(0);
  });

  test("a body stream longer than contentLength fails the request", async () => {
    const o = rawOrigin({ onHead: () => "stop" }); // never answers
    const pool = newPool();
    const err = await rejection(pool.request(o.ep, { method: "POST", target: "/", headers: [["host", "x"]], body: streamOf([enc.encode("12345"), enc.encode("6")]), contentLength: 5 }), 5000);
    expect(err.message).toMatch(/longer than its Content-Length/);
    await waitFor(() => o.closedCount === 1, 2000, "origin sees the close");
  });

  test("a body stream that errors fails the request with that error", async () => {
    const o = rawOrigin({ onHead: () => "stop" });
    const pool = newPool();
    let sent = false;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        if (!sent) {
          sent = true;
          c.enqueue(enc.encode("some"));
        } else c.error(new Error("client went away"));
      },
    });
    const err = await rejection(pool.request(o.ep, { method: "POST", target: "/", headers: [["host", "x"]], body, contentLength: null }), 5000);
    expect(err.message).toBe("client went away");
    await waitFor(() => o.closedCount === 1, 2000, "origin sees the close");
  });

  test("the origin answers 413 early without reading a large streamed body: answer delivered, body stream cancelled, socket not reused", async () => {
    const o = rawOrigin({
      onHead(c) {
        c.socket.pause(); // read nothing more of this connection
        void c.send("HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\n\r\ntoo large");
        return "stop";
      },
      onRequest: (c) => void c.send(ok("fine")),
    });
    const pool = newPool();
    const TOTAL = 64 * 1024 * 1024;
    let produced = 0;
    let cancelled = false;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        if (produced >= TOTAL) return c.close();
        produced += 64 * 1024;
        c.enqueue(new Uint8Array(64 * 1024));
      },
      cancel() {
        cancelled = true;
      },
    });
    const res = await within(pool.request(o.ep, { method: "POST", target: "/big", headers: [["host", "x"]], body, contentLength: TOTAL }), 5000, "the early answer");
    expect(res.status).toBe(413);
    expect(await text(res)).toBe("too large");
    await waitFor(() => cancelled, 2000, "the request body stream is cancelled");
    expect(produced).toBeLessThan(TOTAL);
    expect(pool.idleCount).toBe(0);
    // the next request does not use that socket
    const o2answer = await within(pool.request(o.ep, get()), 5000, "next request");
    expect(o2answer.status).toBe(413); // a fresh connection (same origin policy: answers heads early)
    expect(o.accepted).toBe(2);
  });

  test("the origin answers early while reading (and discarding) the body: same outcome", async () => {
    const o = rawOrigin({
      onHead(c) {
        void c.send("HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\n\r\nnope");
        c.ignoreInput = true;
        return "stop";
      },
    });
    const pool = newPool();
    let cancelled = false;
    let pullsAfterCancel = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(c) {
        if (cancelled) pullsAfterCancel++;
        await Bun.sleep(2);
        c.enqueue(new Uint8Array(1024));
      },
      cancel() {
        cancelled = true;
      },
    });
    const res = await within(pool.request(o.ep, { method: "POST", target: "/", headers: [["host", "x"]], body, contentLength: null }), 5000, "answer");
    expect(res.status).toBe(413);
    expect(await text(res)).toBe("nope");
    await waitFor(() => cancelled, 2000, "body cancelled");
    await Bun.sleep(100);
    expect(pullsAfterCancel).toBe(0); // nothing more is pulled
    expect(pool.idleCount).toBe(0);
  });
});

describe("malformed responses → OriginProtocolError", () => {
  const cases: [string, string, RegExp][] = [
    ["garbage status line", "FOO BAR BAZ\r\n\r\n", /did not answer with HTTP\/1\.x \("FOO BAR BAZ"\)/],
    ["HTTP/2 status line", "HTTP/2 200\r\n\r\n", /did not answer with HTTP\/1\.x/],
    ["non-numeric status", "HTTP/1.1 2xx OK\r\n\r\n", /did not answer with HTTP\/1\.x/],
    ["header line without a colon", "HTTP/1.1 200 OK\r\nNoColonHere\r\n\r\n", /malformed header line \("NoColonHere"\)/],
    ["header name with a space", "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", /malformed header line/],
    ["empty header name", "HTTP/1.1 200 OK\r\n: value\r\n\r\n", /malformed header line/],
    ["NUL in a header value", "HTTP/1.1 200 OK\r\nX-A: a\0b\r\n\r\n", /NUL byte in header X-A/],
    ["conflicting Content-Length headers", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", /invalid Content-Length \("5, 6"\)/],
    ["conflicting Content-Length list", "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello", /invalid Content-Length/],
    ["negative Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", /invalid Content-Length/],
    ["non-numeric Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\n", /invalid Content-Length/],
  ];
  for (const [name, answer, msg] of cases) {
    test(`${name}: the request rejects with a readable message; the socket is dropped`, async () => {
      const o = answering(() => answer);
      const pool = newPool();
      const err = await rejection(pool.request(o.ep, get()));
      expect(err).toBeInstanceOf(OriginProtocolError);
      expect(err.name).toBe("OriginProtocolError");
      expect(err.message).toMatch(msg);
      await waitFor(() => o.closedCount === 1, 2000, "origin sees the close");
      expect(pool.idleCount).toBe(0);
    });
  }

  const bodyCases: [string, string, RegExp][] = [
    ["bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", /malformed chunk size line \("zz"\)/],
    ["negative chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", /malformed chunk size line/],
    ["chunk data without its CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n", /chunk without its CRLF/],
    ["chunk size line longer than 4 KiB", `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;${"e".repeat(5000)}`, /malformed chunk size line/],
  ];
  for (const [name, answer, msg] of bodyCases) {
    test(`${name}: the head arrives, iterating the body throws OriginProtocolError`, async () => {
      const o = answering(() => answer);
      const pool = newPool();
      const res = await within(pool.request(o.ep, get()), 5000, "head");
      expect(res.status).toBe(200);
      const err = await bodyError(res);
      expect(err).toBeInstanceOf(OriginProtocolError);
      expect(err.message).toMatch(msg);
      await waitFor(() => o.closedCount === 1, 2000, "origin sees the close");
    });
  }

  test("a response head over 256 KiB that never ends is refused (no unbounded buffering)", async () => {
    const o = rawOrigin({
      onRequest: async (c) => {
        await c.send("HTTP/1.1 200 OK\r\n");
        for (let i = 0; i < 400 && !c.closed; i++) await c.send(`X-Filler-${i}: ${"v".repeat(1000)}\r\n`);
      },
    });
    const pool = newPool();
    const err = await rejection(pool.request(o.ep, get()), 10_000);
    expect(err).toBeInstanceOf(OriginProtocolError);
    expect(err.message).toMatch(/response head is larger than 256 KiB/);
    await waitFor(() => o.closedCount === 1, 2000, "origin sees the close");
  });

  test("a complete response head over 256 KiB written at once is refused too", async () => {
    const lines = Array.from({ length: 300 }, (_, i) => `X-Filler-${i}: ${"v".repeat(1000)}\r\n`).join("");
    const o = answering(() => `HTTP/1.1 200 OK\r\n${lines}Content-Length: 2\r\n\r\nok`);
    const pool = newPool();
    const err = await rejection(pool.request(o.ep, get()), 10_000);
    expect(err).toBeInstanceOf(OriginProtocolError);
    expect(err.message).toMatch(/larger than 256 KiB/);
  });

  test("a 200 KiB response head is accepted (the limit is 256 KiB)", async () => {
    const lines = Array.from({ length: 200 }, (_, i) => `X-Filler-${i}: ${"v".repeat(1000)}\r\n`).join("");
    const o = answering(() => `HTTP/1.1 200 OK\r\n${lines}Content-Length: 2\r\n\r\nok`);
    const pool = newPool();
    const res = await within(pool.request(o.ep, get()), 10_000, "big head");
    expect(res.headers.length).toBe(201);
    expect(await text(res)).toBe("ok");
  });
});
