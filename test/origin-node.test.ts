/**
 * The agent's HTTP/1.1 client against a real Node.js `http` server — what most dev servers (Vite,
 * Next, Express) run on — through the whole stack (emulator, gateway, agent). Node frames answers
 * its own way (Content-Length for `end(data)`, chunked for streamed writes, `Keep-Alive: timeout=N`)
 * and closes idle keep-alive sockets on its own timer; the public client must never notice.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { startStack, type Stack } from "./support/stack.ts";

const NODE_APP = `
const http = require("http");
const server = http.createServer((req, res) => {
  const u = new URL(req.url, "http://x");
  if (u.pathname === "/hello") return res.end("hello from node");
  if (u.pathname === "/conn") return res.end(String(req.socket.remotePort));
  if (u.pathname === "/chunked") {
    res.write("one,");
    setTimeout(() => { res.write("two,"); setTimeout(() => res.end("three"), 20); }, 20);
    return;
  }
  if (u.pathname === "/sse") {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    let n = 0;
    const t = setInterval(() => {
      res.write("data: " + (++n) + "\\n\\n");
      if (n === 5) { clearInterval(t); res.end(); }
    }, 100);
    return;
  }
  if (u.pathname === "/echo") {
    res.writeHead(200, { "content-type": "application/octet-stream" });
    return req.pipe(res);
  }
  if (u.pathname === "/close") { res.setHeader("connection", "close"); return res.end("bye"); }
  res.statusCode = 404; res.end("no");
});
server.keepAliveTimeout = 1000; // Node announces "Keep-Alive: timeout=1" and closes idle sockets after 1 s
server.listen(0, "127.0.0.1", () => console.log("PORT " + server.address().port));
`;

let node: ReturnType<typeof Bun.spawn>;
let stack: Stack;

beforeAll(async () => {
  node = Bun.spawn(["node", "-e", NODE_APP], { stdout: "pipe", stderr: "inherit" });
  const reader = (node.stdout as ReadableStream<Uint8Array>).getReader();
  let text = "";
  const deadline = Date.now() + 10_000;
  while (!/PORT \d+/.test(text) && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  const port = Number(/PORT (\d+)/.exec(text)?.[1]);
  if (!port) throw new Error(`node app did not start: ${text}`);
  stack = await startStack({ fetch: () => new Response("unused") }, { originPort: port });
});

afterAll(async () => {
  await stack?.stop();
  node?.kill();
});

describe("a Node.js http origin through the tunnel", () => {
  test("Content-Length and chunked answers arrive whole; HEAD has no body", async () => {
    const a = await fetch(`${stack.url}/hello`);
    expect(a.status).toBe(200);
    expect(await a.text()).toBe("hello from node");
    const b = await fetch(`${stack.url}/chunked`);
    expect(await b.text()).toBe("one,two,three");
    const h = await fetch(`${stack.url}/hello`, { method: "HEAD" });
    expect(h.status).toBe(200);
    expect(await h.text()).toBe("");
    expect(await (await fetch(`${stack.url}/hello`)).text()).toBe("hello from node");
  });

  test("sequential requests reuse one keep-alive connection to the app", async () => {
    const ports = new Set<string>();
    for (let i = 0; i < 10; i++) ports.add(await (await fetch(`${stack.url}/conn`)).text());
    expect(ports.size).toBe(1);
  });

  test("Connection: close from the app is honoured (next request gets a fresh socket and succeeds)", async () => {
    expect(await (await fetch(`${stack.url}/close`)).text()).toBe("bye");
    expect(await (await fetch(`${stack.url}/hello`)).text()).toBe("hello from node");
  });

  test("server-sent events stream through as they are written, not at the end", async () => {
    const t0 = performance.now();
    const res = await fetch(`${stack.url}/sse`);
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const reader = res.body!.getReader();
    const first = await reader.read();
    const tFirst = performance.now() - t0;
    let text = new TextDecoder().decode(first.value);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    const tAll = performance.now() - t0;
    expect(text).toBe([1, 2, 3, 4, 5].map((n) => `data: ${n}\n\n`).join(""));
    // the app spaces events 100 ms apart: the first must arrive long before the last
    expect(tAll - tFirst).toBeGreaterThan(250);
  });

  test("a 5 MiB streamed upload is echoed back byte for byte (chunked both ways)", async () => {
    const data = crypto.getRandomValues(new Uint8Array(5 << 20).subarray(0, 65536));
    const big = new Uint8Array(5 << 20);
    for (let off = 0; off < big.length; off += data.length) big.set(data, off);
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent >= big.length) return c.close();
        const n = Math.min(256 * 1024, big.length - sent);
        c.enqueue(big.slice(sent, sent + n));
        sent += n;
      },
    });
    const res = await fetch(`${stack.url}/echo`, { method: "POST", body, duplex: "half" } as RequestInit);
    expect(res.status).toBe(200);
    const got = new Uint8Array(await res.arrayBuffer());
    expect(got.length).toBe(big.length);
    expect(createHash("sha256").update(got).digest("hex")).toBe(createHash("sha256").update(big).digest("hex"));
  });

  test("requests right around Node's 1 s keep-alive timeout never fail (stale sockets are not a user's problem)", async () => {
    for (const idle of [950, 990, 1000, 1010, 1050]) {
      await Bun.sleep(idle);
      const get = await fetch(`${stack.url}/hello`);
      expect(get.status).toBe(200);
      expect(await get.text()).toBe("hello from node");
      await Bun.sleep(idle);
      const post = await fetch(`${stack.url}/echo`, { method: "POST", body: "ping" });
      expect(post.status).toBe(200);
      expect(await post.text()).toBe("ping");
    }
  }, 30_000);
});
