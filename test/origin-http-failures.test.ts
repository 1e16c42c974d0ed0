/**
 * `OriginPool` (src/agent/origin-http.ts), the agent's HTTP/1.1 keep-alive client to the local
 * app — connection failures, abort, backpressure, hostnames (localhost on IPv4 / IPv6) — against real servers on 127.0.0.1 port 0 (test/support/origin-kit.ts).
 * Every wait is bounded in time and every loop in count.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { Socket, TCPSocketListener } from "bun";
import { OriginProtocolError } from "../src/agent/origin-http.ts";
import { answering, bodyError, cleanupOrigins, freePort, get, latin1, newPool, ok, origins, rawOrigin, rejection, serve, text, waitFor, within } from "./support/origin-kit.ts";
import { startStack } from "./support/stack.ts";

afterEach(cleanupOrigins);

describe("connection failures", () => {
  test("the origin closes mid-body (Content-Length): iterating the body throws", async () => {
    const o = rawOrigin({
      onRequest: async (c) => {
        await c.send("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..");
        await Bun.sleep(20);
        c.socket.end();
      },
    });
    const pool = newPool();
    const res = await pool.request(o.ep, get());
    const seen: string[] = [];
    const err = await within(
      (async () => {
        try {
          for await (const c of res.body) seen.push(latin1(c));
        } catch (e) {
          return e as Error;
        }
        throw new Error("completed");
      })(),
      5000,
      "body",
    );
    expect(seen.join("")).toBe("only ten..");
    expect(err.message).toMatch(/closed the connection in the middle of the response body/);
    expect(err).not.toBeInstanceOf(OriginProtocolError);
    expect(pool.idleCount).toBe(0);
  });

  test("the origin closes mid-body (chunked, RST): iterating the body throws", async () => {
    const o = rawOrigin({
      onRequest: async (c) => {
        await c.send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel");
        await Bun.sleep(20);
        c.socket.terminate();
      },
    });
    const pool = newPool();
    const res = await pool.request(o.ep, get());
    const err = await bodyError(res, 5000);
    expect(err).toBeInstanceOf(Error);
    expect(pool.idleCount).toBe(0);
  });

  test("the origin closes a fresh socket without answering: the request rejects (no retry on a fresh socket)", async () => {
    const o = rawOrigin({ onRequest: (c) => void c.socket.end() });
    const pool = newPool();
    const err = await rejection(pool.request(o.ep, get()), 5000);
    expect(err.message).toMatch(/closed the connection without answering/);
    expect(o.accepted).toBe(1);
  });

  test("connection refused: rejects with code ECONNREFUSED (what forward.ts's refused() checks)", async () => {
    const port = freePort();
    const pool = newPool();
    const err = (await rejection(pool.request({ hostname: "127.0.0.1", port, secure: false }, get()), 5000)) as Error & { code?: string };
    // Bun 1.4.4: Error { code: "ECONNREFUSED", errno: -111, syscall: "connect", message: "Failed to connect" }
    expect(err.code).toBe("ECONNREFUSED");
    expect(pool.idleCount).toBe(0);
  });

  test("connection refused end to end: forward.ts recognises it (502 origin_unreachable, 'Nothing is listening on …')", async () => {
    const port = freePort();
    const s = await startStack({ fetch: () => new Response("never") }, { originPort: port });
    try {
      const res = await within(fetch(s.url + "/"), 10_000, "tunnel request");
      expect(res.status).toBe(502);
      expect(res.headers.get("x-azhexgate-error")).toBe("origin_unreachable");
      expect((await res.json()).error.message).toContain(`Nothing is listening on localhost:${port}`);
    } finally {
      await s.stop();
    }
  });
});

describe("abort", () => {
  test("abort mid-body: iteration stops with an AbortError and the origin sees the socket close", async () => {
    const o = rawOrigin({ onRequest: (c) => void c.send(`HTTP/1.1 200 OK\r\nContent-Length: ${1024 * 1024}\r\n\r\n${"a".repeat(1024)}`) });
    const pool = newPool();
    const ac = new AbortController();
    const res = await pool.request(o.ep, get(), ac.signal);
    const it = res.body[Symbol.asyncIterator]();
    const first = await within(it.next(), 5000, "first chunk");
    expect(first.done).toBe(false);
    ac.abort();
    const err = await rejection(it.next(), 5000);
    expect(err.name).toBe("AbortError");
    await waitFor(() => o.closedCount === 1, 2000, "origin sees the close");
    expect(pool.idleCount).toBe(0);
  });

  test("abort before the answer: the request rejects with AbortError and the socket is dropped", async () => {
    const o = rawOrigin({});
    const pool = newPool();
    const ac = new AbortController();
    const p = pool.request(o.ep, get(), ac.signal);
    await waitFor(() => o.conns[0]?.requests.length === 1, 2000, "origin got the request");
    ac.abort();
    const err = await rejection(p, 5000);
    expect(err.name).toBe("AbortError");
    await waitFor(() => o.closedCount === 1, 2000, "origin sees the close");
  });

  test("an already-aborted signal rejects at once and leaks no socket", async () => {
    const o = answering(() => ok("ok"));
    const pool = newPool();
    expect(await text(await pool.request(o.ep, get()))).toBe("ok");
    expect(pool.idleCount).toBe(1);
    const err = await rejection(pool.request(o.ep, get(), AbortSignal.abort()), 2000);
    expect(err.name).toBe("AbortError");
    // the idle socket was not taken out of the pool and forgotten
    expect(pool.idleCount).toBe(1);
    expect(await text(await pool.request(o.ep, get()))).toBe("ok");
    expect(o.accepted).toBe(1);
    expect(o.conns[0]!.requests.length).toBe(2);
  });

  test("abort while the request head is stuck behind backpressure: the request still rejects and the socket is closed", async () => {
    const o = rawOrigin({ onOpen: (c) => c.socket.pause() }); // reads nothing
    const pool = newPool();
    const ac = new AbortController();
    const huge = "h".repeat(32 * 1024 * 1024);
    const p = pool.request(o.ep, get("/", "GET", [["host", "x"], ["x-huge", huge]]), ac.signal);
    await Bun.sleep(200);
    ac.abort();
    const err = await rejection(p, 5000);
    // Bun 1.4.4: the abort's socket.end() closes the socket synchronously, so the blocked head write
    // rejects first with "the connection to the local app closed" rather than the AbortError
    expect(["AbortError", "Error"]).toContain(err.name);
    o.conns[0]!.ignoreInput = true;
    o.conns[0]!.socket.resume();
    await waitFor(() => o.closedCount === 1, 5000, "origin sees the close once it reads again");
    expect(pool.idleCount).toBe(0);
  });
});

describe("backpressure", () => {
  test("a 64 MiB response consumed slowly: the client stops reading (origin's writes are held back), then every byte arrives", async () => {
    const TOTAL = 64 * 1024 * 1024;
    const CHUNK = 256 * 1024;
    const block = new Uint8Array(CHUNK);
    for (let i = 0; i < CHUNK; i++) block[i] = i & 0xff;
    let accepted = 0; // bytes the origin's socket took
    let shortWrites = 0;
    let drains = 0;
    let pending: Uint8Array | null = null;
    const pump = (s: Socket<undefined>) => {
      for (let guard = 0; guard < 100_000; guard++) {
        const data: Uint8Array = pending ?? block.subarray(0, Math.min(CHUNK, TOTAL - accepted));
        if (data.length === 0) return;
        const n = Math.max(0, s.write(data));
        accepted += n;
        if (n < data.length) {
          shortWrites++;
          pending = data.subarray(n);
          return; // wait for drain
        }
        pending = null;
      }
    };
    let served = false;
    const listener = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        data(s) {
          if (served) return;
          served = true;
          s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${TOTAL}\r\n\r\n`);
          pump(s);
        },
        drain(s) {
          drains++;
          pump(s);
        },
        error() {},
      },
    });
    origins.push({ stop: () => listener.stop(true) });
    const pool = newPool();
    const res = await within(pool.request({ hostname: "127.0.0.1", port: listener.port, secure: false }, get()), 5000, "head");
    const it = res.body[Symbol.asyncIterator]();
    const first = await within(it.next(), 5000, "first chunk");
    let received = first.done ? 0 : first.value.length;
    // the consumer stalls: the origin must soon be unable to write more
    await Bun.sleep(500);
    const atStall = accepted;
    await Bun.sleep(500);
    const afterStall = accepted;
    console.log(`backpressure: origin wrote ${(atStall / 1048576).toFixed(1)} MiB, then ${((afterStall - atStall) / 1048576).toFixed(2)} MiB more during a 500 ms stall; ${shortWrites} short writes`);
    expect(shortWrites).toBeGreaterThan(0);
    expect(afterStall - atStall).toBe(0);
    expect(atStall).toBeLessThan(TOTAL / 4); // bounded: client queue (256 KiB) + kernel buffers
    // slow consumption: a few more sleeps, each time the origin only moves a bounded amount
    for (let i = 0; i < 5; i++) {
      const r = await within(it.next(), 5000, "chunk");
      if (!r.done) received += r.value.length;
      await Bun.sleep(50);
    }
    expect(accepted).toBeLessThan(TOTAL / 2);
    const drainsBefore = drains;
    // then everything arrives, in order
    const deadline = performance.now() + 60_000;
    // every byte is checked against the origin's pattern (byte i of the body is i & 0xff)
    const pattern = Buffer.alloc(4 * 1024 * 1024 + 256);
    for (let i = 0; i < pattern.length; i++) pattern[i] = i & 0xff;
    const matches = (v: Uint8Array, at: number) => {
      for (let off = 0; off < v.length; off += 4 * 1024 * 1024) {
        const part = v.subarray(off, Math.min(v.length, off + 4 * 1024 * 1024));
        const p0 = (at + off) & 0xff;
        if (Buffer.compare(part, pattern.subarray(p0, p0 + part.length)) !== 0) return false;
      }
      return true;
    };
    let mismatch = -1;
    for (let k = 0; k < 1_000_000; k++) {
      if (performance.now() > deadline) throw new Error(`timed out at ${received} of ${TOTAL} bytes`);
      const r = await it.next();
      if (r.done) break;
      if (mismatch < 0 && !matches(r.value, received)) mismatch = received;
      received += r.value.length;
    }
    expect(mismatch).toBe(-1);
    expect(received).toBe(TOTAL);
    expect(drains).toBeGreaterThan(drainsBefore);
    expect(pool.idleCount).toBe(1);
  });
});

describe("hostnames", () => {
  test("`localhost` reaches an origin listening on 127.0.0.1", async () => {
    const { ep } = serve({ fetch: () => new Response("v4") });
    const pool = newPool();
    expect(await text(await within(pool.request({ ...ep, hostname: "localhost" }, get()), 5000, "localhost"))).toBe("v4");
  });

  let v6: TCPSocketListener<undefined> | null = null;
  try {
    v6 = Bun.listen({ hostname: "::1", port: 0, socket: { data() {} } });
    v6.stop(true);
  } catch {
    v6 = null;
  }
  // Bun 1.4.4 (here /etc/hosts maps localhost only to 127.0.0.1, and Bun.dns.lookup("localhost")
  // returns only 127.0.0.1): Bun.connect({ hostname: "localhost" }) still reaches a listener bound to
  // ::1 only — Bun tries both loopback families for "localhost" — so an app on [::1] works. When
  // both ::1 and 127.0.0.1 listen on the port, Bun connects to ::1; with neither, ECONNREFUSED.
  test.skipIf(v6 === null)(`\`localhost\` also reaches an origin listening on ::1 only (Bun.connect tries both loopbacks)${v6 === null ? " (skipped: this machine has no IPv6 loopback)" : ""}`, async () => {
    const o = Bun.listen<{ remote: string }>({
      hostname: "::1",
      port: 0,
      socket: {
        open(s) {
          s.data = { remote: s.remoteAddress };
        },
        data(s) {
          s.write(ok(`from ${s.data.remote}`));
        },
        error() {},
      },
    });
    origins.push({ stop: () => o.stop(true) });
    const pool = newPool();
    const res = await within(pool.request({ hostname: "localhost", port: o.port, secure: false }, get()), 5000, "localhost → ::1");
    expect(await text(res)).toBe("from ::1");
    const res6 = await within(pool.request({ hostname: "::1", port: o.port, secure: false }, get()), 5000, "::1");
    expect(await text(res6)).toBe("from ::1");
  });
});
