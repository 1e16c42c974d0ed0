/**
 * `OriginPool` (src/agent/origin-http.ts), the agent's HTTP/1.1 keep-alive client to the local
 * app — keep-alive reuse, the app's Keep-Alive timeout, and stale keep-alive sockets (retry of idempotent requests) — against real servers on 127.0.0.1 port 0 (test/support/origin-kit.ts).
 * Every wait is bounded in time and every loop in count.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { OriginProtocolError, type OriginEndpoint } from "../src/agent/origin-http.ts";
import { answering, bytes, cleanupOrigins, enc, get, latin1, newPool, ok, origins, rawOrigin, rejection, serve, streamOf, text, waitFor, within } from "./support/origin-kit.ts";
import { selfSignedCert } from "./support/relay-probe.ts";

afterEach(cleanupOrigins);

describe("keep-alive", () => {
  test("N sequential requests use one TCP connection (raw origin counts accepts)", async () => {
    const o = answering((req) => ok(`answer ${req.target}`));
    const pool = newPool();
    for (let i = 0; i < 50; i++) {
      const res = await within(pool.request(o.ep, get(`/${i}`)), 5000, `request ${i}`);
      expect(await text(res)).toBe(`answer /${i}`);
      expect(pool.idleCount).toBe(1);
    }
    expect(o.accepted).toBe(1);
    expect(o.conns[0]!.requests.length).toBe(50);
  });

  test("Bun.serve origin: sequential requests come from one client port; headers and bodies pass", async () => {
    const { server, ep } = serve({
      fetch(req, srv) {
        const url = new URL(req.url);
        const headers = new Headers({ "x-port": String(srv.requestIP(req)?.port), "x-host": req.headers.get("host") ?? "" });
        headers.append("set-cookie", "a=1");
        headers.append("set-cookie", "b=2");
        return new Response(`hello ${url.pathname}`, { headers });
      },
    });
    const pool = newPool();
    const ports = new Set<string>();
    for (let i = 0; i < 25; i++) {
      const res = await within(pool.request(ep, get(`/n${i}`, "GET", [["host", "app.local:3000"]])), 5000, `request ${i}`);
      expect(res.status).toBe(200);
      expect(res.headers.filter(([n]) => n === "set-cookie")).toEqual([
        ["set-cookie", "a=1"],
        ["set-cookie", "b=2"],
      ]);
      expect(res.headers).toContainEqual(["x-host", "app.local:3000"]);
      ports.add(res.headers.find(([n]) => n === "x-port")![1]);
      expect(await text(res)).toBe(`hello /n${i}`);
    }
    expect(ports.size).toBe(1);
    expect(server.pendingRequests).toBe(0);
  });

  test("Bun.serve origin: a streamed (chunked) response body arrives whole", async () => {
    const { ep } = serve({
      fetch() {
        let i = 0;
        return new Response(
          new ReadableStream({
            async pull(c) {
              if (i === 20) return c.close();
              await Bun.sleep(1);
              c.enqueue(enc.encode(`part ${i++};`));
            },
          }),
        );
      },
    });
    const pool = newPool();
    const res = await pool.request(ep, get());
    expect(res.headers).toContainEqual(["transfer-encoding", "chunked"]);
    expect(await text(res)).toBe(Array.from({ length: 20 }, (_, i) => `part ${i};`).join(""));
    expect(pool.idleCount).toBe(1);
  });

  test("concurrent requests get separate sockets and the right answers; all return to the pool", async () => {
    const o = rawOrigin({
      onRequest: async (c, req) => {
        await Bun.sleep(30 + Number(req.target.slice(1)) * 3);
        await c.send(ok(`for ${req.target}`));
      },
    });
    const pool = newPool();
    const results = await within(Promise.all(Array.from({ length: 10 }, async (_, i) => text(await pool.request(o.ep, get(`/${i}`))))), 10_000, "10 concurrent requests");
    expect(results).toEqual(Array.from({ length: 10 }, (_, i) => `for /${i}`));
    expect(o.accepted).toBe(10);
    expect(pool.idleCount).toBe(10);
  });

  test("maxIdle bounds the sockets kept; the rest are closed", async () => {
    const o = rawOrigin({
      onRequest: async (c) => {
        await Bun.sleep(40);
        await c.send(ok("ok"));
      },
    });
    const pool = newPool({ maxIdle: 1 });
    await within(Promise.all([0, 1, 2].map(async () => text(await pool.request(o.ep, get())))), 5000, "3 concurrent");
    expect(o.accepted).toBe(3);
    expect(pool.idleCount).toBe(1);
    await waitFor(() => o.closedCount === 2, 2000, "the two surplus sockets closed");
  });

  /** An answer carrying `header` is not kept: the client closes the socket, the next request connects again. */
  async function expectNotReused(header: string): Promise<void> {
    const o = answering(() => ok("bye", header));
    const pool = newPool();
    expect(await text(await pool.request(o.ep, get()))).toBe("bye");
    expect(pool.idleCount).toBe(0);
    await waitFor(() => o.closedCount === 1, 3000, "origin sees the close");
    expect(await text(await pool.request(o.ep, get()))).toBe("bye");
    expect(o.accepted).toBe(2);
  }

  test("`Connection: close` answers are not reused; the client closes the socket", () => expectNotReused("Connection: close\r\n"));

  test("HTTP/1.0 answers are not reused unless they say keep-alive", async () => {
    const o = answering((req) =>
      req.target === "/ka" ? "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nka" : "HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\nhttp",
    );
    const pool = newPool();
    expect(await text(await pool.request(o.ep, get("/plain")))).toBe("http");
    expect(pool.idleCount).toBe(0);
    expect(await text(await pool.request(o.ep, get("/plain")))).toBe("http");
    expect(o.accepted).toBe(2);
    expect(await text(await pool.request(o.ep, get("/ka")))).toBe("ka");
    expect(pool.idleCount).toBe(1);
    expect(await text(await pool.request(o.ep, get("/ka")))).toBe("ka");
    expect(o.accepted).toBe(3);
  });

  test("idle sockets are closed after idleMs; idleCount follows; the next request connects again", async () => {
    const o = answering(() => ok("ok"));
    const pool = newPool({ idleMs: 200 });
    expect(await text(await pool.request(o.ep, get()))).toBe("ok");
    const idleSince = performance.now();
    expect(pool.idleCount).toBe(1);
    await Bun.sleep(100);
    expect(pool.idleCount).toBe(1);
    expect(o.closedCount).toBe(0);
    await waitFor(() => o.closedCount === 1, 3000, "the idle socket is closed");
    const after = o.conns[0]!.closedAt - idleSince;
    expect(after).toBeGreaterThanOrEqual(180);
    expect(after).toBeLessThan(2000);
    expect(pool.idleCount).toBe(0);
    expect(await text(await pool.request(o.ep, get()))).toBe("ok");
    expect(o.accepted).toBe(2);
  });

  test("`Keep-Alive: timeout=1` from the origin: the idle socket is closed ~0.5 s before the origin would", async () => {
    const o = answering(() => ok("ok", "Keep-Alive: timeout=1\r\n"));
    const pool = newPool(); // default idleMs 4 s
    expect(await text(await pool.request(o.ep, get()))).toBe("ok");
    const idleSince = performance.now();
    expect(pool.idleCount).toBe(1);
    await waitFor(() => o.closedCount === 1, 3000, "the idle socket is closed");
    const after = o.conns[0]!.closedAt - idleSince;
    expect(after).toBeGreaterThanOrEqual(400);
    // The origin's hint is used, not the default 4 s idle (generous bound: the box may be loaded;
    // the test origin never closes on its own, so the close came from the pool).
    expect(after).toBeLessThan(3000);
    expect(await text(await pool.request(o.ep, get()))).toBe("ok");
    expect(o.accepted).toBe(2);
  });

  test("`Keep-Alive: timeout=0`: the socket is not kept at all", () => expectNotReused("Keep-Alive: timeout=0\r\n"));

  test("a request with a body never reuses a socket idle for over 1 s; a bodiless one does", async () => {
    const o = answering((req) => ok(`got ${latin1(req.body)}`));
    const pool = newPool();
    const post = () => pool.request(o.ep, { method: "POST", target: "/p", headers: [["host", "x"]], body: streamOf([bytes("abc")]), contentLength: 3 });
    expect(await text(await post())).toBe("got abc");
    expect(await text(await post())).toBe("got abc"); // just idle: reused
    expect(o.accepted).toBe(1);
    await Bun.sleep(1100);
    expect(await text(await pool.request(o.ep, get()))).toBe("got "); // GET after 1.1 s: reused
    expect(o.accepted).toBe(1);
    await Bun.sleep(1100);
    expect(await text(await post())).toBe("got abc"); // POST after 1.1 s: a fresh socket
    expect(o.accepted).toBe(2);
    await waitFor(() => o.closedCount === 1, 3000, "the long-idle socket is closed, not kept");
  });

  test("a response received whole but not yet consumed (socket paused at the read limit): the next request on that socket does not hang", async () => {
    const big = "b".repeat(300 * 1024);
    const o = answering((req) => (req.target === "/big" ? ok(big) : ok("small")));
    const pool = newPool();
    const first = await within(pool.request(o.ep, get("/big")), 5000, "big head");
    await Bun.sleep(100); // the whole answer arrives while nobody reads the body
    const second = await within(pool.request(o.ep, get("/small")), 3000, "a request after an unconsumed large answer");
    expect(await text(second)).toBe("small");
    expect(await text(first)).toBe(big);
  });

  test("a response abandoned mid-body (the consumer breaks out of the loop) closes the socket", async () => {
    const o = rawOrigin({
      onRequest: async (c) => {
        await c.send(`HTTP/1.1 200 OK\r\nContent-Length: ${1024 * 1024}\r\n\r\n${"x".repeat(1000)}`);
      },
    });
    const pool = newPool();
    const res = await pool.request(o.ep, get());
    for await (const chunk of res.body) {
      expect(chunk.length).toBeGreaterThan(0);
      break;
    }
    await waitFor(() => o.closedCount === 1, 3000, "origin sees the abandoned socket close");
    expect(pool.idleCount).toBe(0);
  });

  test("pool.close() closes idle sockets", async () => {
    const o = answering(() => ok("ok"));
    const pool = newPool();
    await Promise.all([0, 1, 2].map(async () => text(await pool.request(o.ep, get()))));
    expect(pool.idleCount).toBeGreaterThan(0);
    pool.close();
    expect(pool.idleCount).toBe(0);
    await waitFor(() => o.closedCount === o.accepted, 2000, "all sockets closed");
  });

  test("TLS origin (secure endpoint, self-signed): keep-alive works", async () => {
    const tls = selfSignedCert();
    const server = Bun.serve({ hostname: "127.0.0.1", port: 0, tls, fetch: (req, srv) => new Response(`tls ${srv.requestIP(req)?.port}`) });
    origins.push({ stop: () => server.stop(true) });
    const ep: OriginEndpoint = { hostname: "127.0.0.1", port: server.port!, secure: true };
    const pool = newPool();
    const a = await text(await within(pool.request(ep, get()), 5000, "tls 1"));
    const b = await text(await within(pool.request(ep, get()), 5000, "tls 2"));
    expect(a).toMatch(/^tls \d+$/);
    expect(b).toBe(a);
  });
});

describe("stale keep-alive sockets", () => {
  test("the origin closed an idle socket (close seen): the next GET succeeds on a new socket", async () => {
    const o = rawOrigin({
      onRequest: async (c) => {
        await c.send(ok("ok"));
        c.socket.end();
      },
    });
    const pool = newPool();
    expect(await text(await pool.request(o.ep, get()))).toBe("ok");
    await waitFor(() => o.closedCount === 1, 2000, "origin closed");
    await Bun.sleep(20);
    expect(await text(await within(pool.request(o.ep, get()), 5000, "second GET"))).toBe("ok");
    expect(o.accepted).toBe(2);
  });

  test("idleCount does not count sockets the origin has closed", async () => {
    const o = rawOrigin({
      onRequest: async (c) => {
        await c.send(ok("ok"));
        await Bun.sleep(20);
        c.socket.end();
      },
    });
    const pool = newPool();
    expect(await text(await pool.request(o.ep, get()))).toBe("ok");
    expect(pool.idleCount).toBe(1);
    await waitFor(() => o.closedCount === 1, 2000, "origin closed");
    await waitFor(() => pool.idleCount === 0, 2000, "the closed socket leaves the idle count");
  });

  test("the origin drops a reused socket without answering: a bodiless GET is retried once on a new socket", async () => {
    // every connection answers its first request only; a second request on it is met with a close
    const o = rawOrigin({ onRequest: (c, req, n) => void (n === 0 ? c.send(ok(`first on conn ${c.id} ${req.target}`)) : c.socket.end()) });
    const pool = newPool();
    expect(await text(await pool.request(o.ep, get("/a")))).toBe("first on conn 0 /a");
    expect(await text(await within(pool.request(o.ep, get("/b")), 5000, "retried GET"))).toBe("first on conn 1 /b");
    expect(o.accepted).toBe(2);
    expect(o.conns[0]!.requests.map((r) => r.target)).toEqual(["/a", "/b"]);
    // RST instead of FIN
    const o2 = rawOrigin({ onRequest: (c, _req, n) => void (n === 0 ? c.send(ok("ok")) : c.socket.terminate()) });
    expect(await text(await pool.request(o2.ep, get()))).toBe("ok");
    expect(await text(await within(pool.request(o2.ep, get()), 5000, "retried GET after RST"))).toBe("ok");
    expect(o2.accepted).toBe(2);
  });

  test("a reused socket that dies after part of the answer: the GET is not replayed (the origin had started answering)", async () => {
    const o = rawOrigin({
      onRequest: async (c, _req, n) => {
        if (n === 0) return void c.send(ok("ok"));
        await c.send("HTTP/1.1 200 OK\r\nContent-Le");
        await Bun.sleep(10);
        c.socket.end();
      },
    });
    const pool = newPool();
    expect(await text(await pool.request(o.ep, get()))).toBe("ok");
    const err = await rejection(pool.request(o.ep, get("/second")), 5000);
    expect(err.message).toMatch(/closed the connection/);
    expect(o.accepted).toBe(1);
    expect(o.conns.flatMap((c) => c.requests).filter((r) => r.target === "/second").length).toBe(1);
  });

  test("a request with a body is never replayed on a stale socket: it fails and the origin saw it once", async () => {
    const o = rawOrigin({ onRequest: (c, _req, n) => void (n === 0 ? c.send(ok("ok")) : c.socket.end()) });
    const pool = newPool();
    expect(await text(await pool.request(o.ep, get()))).toBe("ok");
    const body = enc.encode("payload");
    const err = await rejection(pool.request(o.ep, { method: "POST", target: "/p", headers: [["host", "x"]], body: streamOf([body]), contentLength: body.length }));
    expect(err).not.toBeInstanceOf(OriginProtocolError);
    expect(err.message).toMatch(/closed/);
    const posts = o.conns.flatMap((c) => c.requests).filter((r) => r.method === "POST");
    expect(posts.length).toBe(1);
    expect(o.accepted).toBe(1);
  });

  test("race: the origin closes just after answering while the next GET is fired (FIN and RST, many timings): every GET succeeds", async () => {
    let closeDelay = 0;
    let rst = false;
    const o = rawOrigin({
      onRequest: async (c, req) => {
        await c.send(ok(req.target));
        const d = closeDelay;
        const kill = () => (rst ? c.socket.terminate() : c.socket.end());
        if (d === 0) kill();
        else setTimeout(kill, d);
      },
    });
    const pool = newPool();
    let n = 0;
    for (const useRst of [false, true]) {
      rst = useRst;
      for (let i = 0; i < 60; i++) {
        closeDelay = i % 6; // 0..5 ms after the answer
        const fireDelay = Math.floor(i / 6) % 8; // 0..7 ms after the previous body ended
        const warm = await within(pool.request(o.ep, get(`/warm${n}`)), 5000, `warm ${n}`);
        expect(await text(warm)).toBe(`/warm${n}`);
        if (fireDelay > 0) await Bun.sleep(fireDelay);
        const t = `/race${n++}`;
        const res = await within(pool.request(o.ep, get(t)), 5000, `racing GET ${t} (close ${closeDelay} ms, fire ${fireDelay} ms, rst ${useRst})`);
        expect(await text(res)).toBe(t);
      }
    }
    // (with the bodiless retry disabled this test fails on its first iterations: the race is real)
    console.log(`race: ${2 * n} GETs over ${o.accepted} connections, all answered`);
    expect(o.accepted).toBeGreaterThan(1);
  });
});
