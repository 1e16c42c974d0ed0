/**
 * The tunnel data path end to end: public client → gateway → relay emulator → agent → origin,
 * all real servers on loopback (see tes./support/stack.ts).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { rawTarget } from "../src/gateway/server.ts";
import { startStack, type Stack } from "./support/stack.ts";

const MiB = 1 << 20;

/** Yields `total` bytes of a deterministic pattern in chunks, hashing as it goes. */
function patterned(total: number, chunk = MiB) {
  const hash = createHash("sha256");
  const block = new Uint8Array(chunk);
  for (let i = 0; i < block.length; i++) block[i] = (i * 31 + 7) & 0xff;
  let sent = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      if (sent >= total) return c.close();
      const n = Math.min(chunk, total - sent);
      const part = block.slice(0, n);
      part[0] = sent / chunk & 0xff; // vary content per chunk
      hash.update(part);
      sent += n;
      c.enqueue(part);
    },
  }, { highWaterMark: 0 });
  return { stream, digest: () => hash.digest("hex") };
}

async function sha256Of(body: ReadableStream<Uint8Array>): Promise<{ hex: string; bytes: number }> {
  const h = createHash("sha256");
  let bytes = 0;
  for await (const c of body) {
    h.update(c);
    bytes += c.length;
  }
  return { hex: h.digest("hex"), bytes };
}

let stack: Stack;
const seen: Array<{ method: string; target: string; headers: Record<string, string>; bodyHash: string }> = [];

beforeAll(async () => {
  stack = await startStack({
    async fetch(req: Request, server: any) {
      const url = new URL(req.url);
      if (url.pathname === "/ws") {
        const offered = req.headers.get("sec-websocket-protocol");
        const protocol = offered?.split(",").map((s) => s.trim()).find((p) => p === "chat.v2");
        return server.upgrade(req, protocol ? { headers: { "Sec-WebSocket-Protocol": protocol } } : {}) ? undefined : new Response("no", { status: 400 });
      }
      if (url.pathname === "/upload-hash") return new Response(JSON.stringify(await sha256Of(req.body!)));
      if (url.pathname.startsWith("/download/")) {
        const n = Number(url.pathname.split("/")[2]);
        const p = patterned(n);
        return new Response(p.stream, { headers: { "content-type": "application/octet-stream" } });
      }
      if (url.pathname === "/cookies") {
        const h = new Headers();
        h.append("set-cookie", "a=1; Path=/");
        h.append("set-cookie", "b=2; HttpOnly");
        h.append("set-cookie", "c=3, with comma");
        return new Response("ok", { headers: h });
      }
      if (url.pathname === "/big-header") return new Response("ok", { headers: { "x-big": "v".repeat(64 * 1024) } });
      if (url.pathname === "/204") return new Response(null, { status: 204, headers: { "x-kind": "no-content" } });
      if (url.pathname === "/304") return new Response(null, { status: 304, headers: { etag: '"abc"' } });
      if (url.pathname === "/500") return new Response("boom, origin error", { status: 500 });
      if (url.pathname === "/sse") {
        let i = 0;
        return new Response(new ReadableStream({
          async pull(c) {
            if (i === 5) return c.close();
            if (i > 0) await Bun.sleep(200);
            c.enqueue(new TextEncoder().encode(`data: ${i++} ${Date.now()}\n\n`));
          },
        }), { headers: { "content-type": "text/event-stream", "cache-control": "no-cache" } });
      }
      const body = req.body ? await sha256Of(req.body) : { hex: "", bytes: 0 };
      seen.push({ method: req.method, target: rawTarget(req.url), headers: Object.fromEntries(req.headers), bodyHash: body.hex });
      return new Response(JSON.stringify({ method: req.method, target: rawTarget(req.url), host: req.headers.get("host"), body }), {
        headers: { "content-type": "application/json", "x-origin": "yes" },
      });
    },
    websocket: {
      message(ws: any, m: string | Buffer) {
        if (m === "close-me") return ws.close(4001, "origin says bye");
        ws.send(m);
      },
      close(ws: any, code: number, reason: string) {
        closesAtOrigin.push([code, reason]);
      },
    },
  });
});
const closesAtOrigin: Array<[number, string]> = [];

afterAll(async () => {
  await stack?.stop();
});

describe("HTTP through the tunnel", () => {
  test("every method; targets with percent-encoding, +, UTF-8 and repeated keys arrive byte-identical", async () => {
    const targets = ["/plain", "/a%20b/c%2Fd?q=%E2%9C%93&x=1+2&x=3", "/ü/日本?name=Zoë&a=&a=b", "/p;m=1?%zz=%&&="];
    for (const method of ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]) {
      for (const target of targets) {
        const body = method === "GET" || method === "OPTIONS" ? undefined : `body for ${method}`;
        const res = await fetch(stack.url + target, { method, body });
        expect(res.status).toBe(200);
        const j = await res.json();
        expect(j.method).toBe(method);
        expect(j.target).toBe(new URL(target, "http://x").pathname + new URL(target, "http://x").search);
        if (body) expect(j.body.bytes).toBe(body.length);
      }
    }
    const head = await fetch(stack.url + "/plain", { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("x-origin")).toBe("yes");
    expect(head.headers.get("content-type")).toBe("application/json");
    expect(await head.text()).toBe("");
  });

  test("forwarding headers and Host rewrite", async () => {
    await fetch(stack.url + "/hdrs", { headers: { "x-forwarded-for": "203.0.113.9", connection: "keep-alive, x-hop", "x-hop": "secret", "x-app": "1" } });
    const last = seen.findLast((s) => s.target === "/hdrs")!;
    expect(last.headers.host).toBe(`localhost:${stack.origin.port}`);
    expect(last.headers["x-forwarded-for"]).toBe("127.0.0.1"); // a client-sent X-Forwarded-For is not believed (no trusted proxy)
    expect(last.headers["x-forwarded-proto"]).toBe("http");
    expect(last.headers["x-forwarded-host"]).toBe(new URL(stack.url).host);
    expect(last.headers["x-app"]).toBe("1");
    expect(last.headers["x-hop"]).toBeUndefined();
  });

  test("three Set-Cookie headers stay three; a 64 KB header value survives", async () => {
    const res = await fetch(stack.url + "/cookies");
    expect(res.headers.getSetCookie()).toEqual(["a=1; Path=/", "b=2; HttpOnly", "c=3, with comma"]);
    const big = await fetch(stack.url + "/big-header");
    expect(big.headers.get("x-big")?.length).toBe(64 * 1024);
    const up = await fetch(stack.url + "/echo-big", { headers: { "x-req-big": "r".repeat(64 * 1024) } });
    expect(up.status).toBe(200);
    expect(seen.findLast((s) => s.target === "/echo-big")!.headers["x-req-big"]?.length).toBe(64 * 1024);
  });

  test("204 and 304 have no body; origin 500s pass through untouched", async () => {
    const r204 = await fetch(stack.url + "/204");
    expect(r204.status).toBe(204);
    expect(r204.headers.get("x-kind")).toBe("no-content");
    expect(await r204.text()).toBe("");
    const r304 = await fetch(stack.url + "/304");
    expect(r304.status).toBe(304);
    expect(r304.headers.get("etag")).toBe('"abc"');
    expect(await r304.text()).toBe("");
    const r500 = await fetch(stack.url + "/500");
    expect(r500.status).toBe(500);
    expect(r500.headers.get("x-azhexgate-error")).toBeNull();
    expect(await r500.text()).toBe("boom, origin error");
  });

  test("SSE events arrive as they are written, not batched", async () => {
    const res = await fetch(stack.url + "/sse");
    const arrivals: number[] = [];
    const t0 = performance.now();
    const td = new TextDecoder();
    let buf = "";
    for await (const c of res.body!) {
      buf += td.decode(c, { stream: true });
      const events = buf.split("\n\n");
      buf = events.pop()!;
      for (const _ of events) arrivals.push(performance.now() - t0);
    }
    expect(arrivals.length).toBe(5);
    // Streamed, not batched: the events arrive spread out over the ~800 ms the app takes to write
    // them (batched, they would arrive together). No bound on absolute arrival times: the box may be loaded.
    expect(arrivals[4]! - arrivals[0]!).toBeGreaterThan(400);
    expect(arrivals.every((t, i) => i === 0 || t >= arrivals[i - 1]!)).toBe(true);
  });

  test("200 concurrent requests through one tunnel are all correct", async () => {
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => fetch(`${stack.url}/c/${i}?i=${i}`, { method: i % 2 ? "POST" : "GET", body: i % 2 ? `n${i}`.repeat(i) : undefined }).then((r) => r.json())),
    );
    results.forEach((j, i) => {
      expect(j.target).toBe(`/c/${i}?i=${i}`);
      expect(j.body.bytes).toBe(i % 2 ? `n${i}`.length * i : 0);
    });
  });
});

describe("large bodies stream with matching SHA-256", () => {
  const size = Number(process.env.AZHEXGATE_TEST_BIG_BYTES ?? 1024 * MiB);
  test(`upload of ${size / MiB} MiB`, async () => {
    const p = patterned(size);
    const res = await fetch(stack.url + "/upload-hash", { method: "POST", body: p.stream, duplex: "half" } as RequestInit);
    const j = await res.json();
    expect(j.bytes).toBe(size);
    expect(j.hex).toBe(p.digest());
  }, 300_000);
  test(`download of ${size / MiB} MiB`, async () => {
    const res = await fetch(`${stack.url}/download/${size}`);
    const got = await sha256Of(res.body!);
    const ref = patterned(size);
    const want = await sha256Of(ref.stream);
    expect(got.bytes).toBe(size);
    expect(got.hex).toBe(want.hex);
  }, 300_000);
});

describe("WebSocket through the tunnel", () => {
  const open = (protocols?: string[]) =>
    new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(stack.url.replace("http", "ws") + "/ws", protocols);
      ws.binaryType = "arraybuffer";
      ws.onopen = () => resolve(ws);
      ws.onerror = (e) => reject(new Error(String((e as ErrorEvent).message)));
    });
  const next = (ws: WebSocket) => new Promise<MessageEvent>((r) => ws.addEventListener("message", r, { once: true }));

  test("text and binary echo, a 4 MiB message, the origin's subprotocol", async () => {
    const ws = await open(["chat.v1", "chat.v2"]);
    expect(ws.protocol).toBe("chat.v2");
    ws.send("héllo");
    expect((await next(ws)).data).toBe("héllo");
    ws.send(new Uint8Array([1, 2, 3]));
    expect([...new Uint8Array((await next(ws)).data)]).toEqual([1, 2, 3]);
    const big = new Uint8Array(4 * MiB);
    for (let i = 0; i < big.length; i += 4096) big[i] = i / 4096 & 0xff;
    ws.send(big);
    const echoed = new Uint8Array((await next(ws)).data);
    expect(echoed.length).toBe(big.length);
    expect(createHash("sha256").update(echoed).digest("hex")).toBe(createHash("sha256").update(big).digest("hex"));
    ws.close(1000);
  });

  test("close code and reason from the origin reach the client, and the client's reach the origin", async () => {
    const ws = await open();
    const closed = new Promise<CloseEvent>((r) => (ws.onclose = r));
    ws.send("close-me");
    const ev = await closed;
    expect([ev.code, ev.reason]).toEqual([4001, "origin says bye"]);
    const ws2 = await open();
    ws2.close(4002, "client says bye");
    for (let i = 0; i < 100 && !closesAtOrigin.some(([c]) => c === 4002); i++) await Bun.sleep(20);
    expect(closesAtOrigin).toContainEqual([4002, "client says bye"]);
  });

  test("200 concurrent WebSockets are all correct", async () => {
    const sockets = await Promise.all(Array.from({ length: 200 }, () => open()));
    const replies = await Promise.all(sockets.map((ws, i) => { const p = next(ws); ws.send(`m${i}`); return p; }));
    replies.forEach((ev, i) => expect(ev.data).toBe(`m${i}`));
    for (const ws of sockets) ws.close();
  });
});
