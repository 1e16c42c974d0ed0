import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Server, ServerWebSocket } from "bun";
import { createHash } from "node:crypto";
import { type WsConnection, WsConnectError, WsHandshakeError, WsProtocolError } from "../src/ws/client.ts";
import { connectWebSocket } from "../src/ws/connect.ts";
import { selfSignedCert } from "./support/relay-probe.ts";

type Data = { path: string };
let server: Server<Data>;
let base: string;
const serverCloses: { code: number; reason: string }[] = [];
const serverPongs: string[] = [];
const serverHeaders: Record<string, string>[] = [];
let sinkBytes = 0;

beforeAll(() => {
  server = Bun.serve<Data>({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req, srv) {
      const url = new URL(req.url);
      if (url.pathname === "/fail") return new Response("no listener here", { status: 410, statusText: "Gone" });
      if (url.pathname === "/empty-fail") return new Response(null, { status: 403 });
      serverHeaders.push(Object.fromEntries(req.headers));
      const offered = (req.headers.get("sec-websocket-protocol") ?? "").split(",").map((s) => s.trim()).filter(Boolean);
      const headers: Record<string, string> = {};
      if (offered.includes("second")) headers["Sec-WebSocket-Protocol"] = "second";
      if (srv.upgrade(req, { data: { path: url.pathname }, headers })) return;
      return new Response("upgrade required", { status: 426 });
    },
    websocket: {
      maxPayloadLength: 64 * 1024 * 1024,
      backpressureLimit: 64 * 1024 * 1024,
      message(ws: ServerWebSocket<Data>, msg) {
        if (ws.data.path === "/sink") {
          if (typeof msg === "string") ws.send(String(sinkBytes));
          else sinkBytes += msg.length;
          return;
        }
        if (msg === "close-me") return ws.close(4001, "server says bye");
        if (msg === "ping-me") return void ws.ping("hello-ping");
        ws.send(msg);
      },
      pong(_ws, data) {
        serverPongs.push(data.toString());
      },
      close(_ws, code, reason) {
        serverCloses.push({ code, reason });
      },
    },
  });
  base = `ws://127.0.0.1:${server.port}`;
});
afterAll(() => server.stop(true));

function nextMessage(ws: WsConnection): Promise<{ data: string | Uint8Array; binary: boolean }> {
  return new Promise((resolve) => ws.once("message", (data, binary) => resolve({ data, binary })));
}
function closed(ws: WsConnection): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once("close", (code, reason) => resolve({ code, reason })));
}
async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await Bun.sleep(5);
  }
}

describe("WebSocket client against Bun.serve", () => {
  test("text and binary echo; no extensions offered", async () => {
    const ws = await connectWebSocket(`${base}/echo?x=1`, { headers: { "X-Test": "yes" } });
    const h = serverHeaders[serverHeaders.length - 1]!;
    expect(h["x-test"]).toBe("yes");
    expect(h["sec-websocket-extensions"]).toBeUndefined();
    expect(ws.protocol).toBe("");
    let m = nextMessage(ws);
    ws.send("héllo");
    expect(await m).toEqual({ data: "héllo", binary: false });
    m = nextMessage(ws);
    ws.send(new Uint8Array([1, 2, 3, 0, 255]));
    expect(await m).toEqual({ data: new Uint8Array([1, 2, 3, 0, 255]), binary: true });
    const c = closed(ws);
    ws.close();
    expect(await c).toEqual({ code: 1000, reason: "" });
  });

  test("many small messages in one turn arrive in order", async () => {
    const ws = await connectWebSocket(`${base}/echo`);
    const got: string[] = [];
    ws.on("message", (d) => got.push(d as string));
    for (let i = 0; i < 1000; i++) ws.send(`m${i}`);
    await until(() => got.length === 1000);
    expect(got).toEqual(Array.from({ length: 1000 }, (_, i) => `m${i}`));
    ws.close();
  });

  test("16 MiB binary message round trip", async () => {
    const ws = await connectWebSocket(`${base}/echo`);
    const big = new Uint8Array(16 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4096) big[i] = i & 0xff;
    crypto.getRandomValues(big.subarray(0, 65536));
    const m = nextMessage(ws);
    ws.send(big);
    const { data, binary } = await m;
    expect(binary).toBe(true);
    expect((data as Uint8Array).length).toBe(big.length);
    expect(Buffer.compare(data as Uint8Array, big)).toBe(0);
    ws.close();
  });

  test("subprotocol negotiation", async () => {
    const ws = await connectWebSocket(`${base}/echo`, { protocols: ["first", "second"] });
    expect(ws.protocol).toBe("second");
    ws.close();
  });

  test("close 4001 with a reason, client → server", async () => {
    const ws = await connectWebSocket(`${base}/echo`);
    const c = closed(ws);
    const before = serverCloses.length;
    ws.close(4001, "client says bye");
    expect(await c).toEqual({ code: 4001, reason: "client says bye" });
    await until(() => serverCloses.length > before);
    expect(serverCloses[before]).toEqual({ code: 4001, reason: "client says bye" });
    expect(ws.send("late")).toBe(false);
  });

  test("close 4001 with a reason, server → client", async () => {
    const ws = await connectWebSocket(`${base}/echo`);
    const c = closed(ws);
    ws.send("close-me");
    expect(await c).toEqual({ code: 4001, reason: "server says bye" });
  });

  test("failed handshake exposes status, reason, headers and body", async () => {
    const err = await connectWebSocket(`${base}/fail`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WsHandshakeError);
    const e = err as WsHandshakeError;
    expect(e.status).toBe(410);
    expect(e.body).toBe("no listener here");
    expect(e.description).toBe("no listener here");
    expect(e.headers["content-type"]).toContain("text/plain");
    const e2 = (await connectWebSocket(`${base}/empty-fail`).catch((x: unknown) => x)) as WsHandshakeError;
    expect(e2.status).toBe(403);
    expect(e2.body).toBe("");
    expect(e2.description).toBe(e2.statusText);
  });

  test("connection refused and timeout are WsConnectErrors", async () => {
    const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = probe.port;
    const silent = await connectWebSocket(`ws://127.0.0.1:${port}/`, { timeoutMs: 200 }).catch((e: unknown) => e);
    expect(silent).toBeInstanceOf(WsConnectError);
    expect((silent as WsConnectError).kind).toBe("timeout");
    probe.stop(true);
    const refused = await connectWebSocket(`ws://127.0.0.1:${port}/`).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(WsConnectError);
    expect((refused as WsConnectError).kind).toBe("network");
  });

  test("ping/pong both ways", async () => {
    const ws = await connectWebSocket(`${base}/echo`);
    const pong = new Promise<Uint8Array>((r) => ws.once("pong", r));
    ws.ping("abc");
    expect(Buffer.from(await pong).toString()).toBe("abc");
    const ping = new Promise<Uint8Array>((r) => ws.once("ping", r));
    ws.send("ping-me");
    expect(Buffer.from(await ping).toString()).toBe("hello-ping");
    await until(() => serverPongs.includes("hello-ping"));
    ws.close();
  });

  test("backpressure: 256 MiB in 1 MiB chunks keeps RSS bounded", async () => {
    const ws = await connectWebSocket(`${base}/sink`);
    const chunk = new Uint8Array(1024 * 1024);
    Bun.gc(true);
    const rss0 = process.memoryUsage.rss();
    let peak = rss0;
    let waits = 0;
    sinkBytes = 0;
    for (let i = 0; i < 256; i++) {
      if (!ws.send(chunk)) {
        waits++;
        await ws.drained();
      }
      if (ws.bufferedAmount > 8 * 1024 * 1024) throw new Error(`queue grew to ${ws.bufferedAmount}`);
      if ((i & 15) === 0) peak = Math.max(peak, process.memoryUsage.rss());
    }
    const m = nextMessage(ws);
    ws.send("count");
    expect((await m).data).toBe(String(256 * 1024 * 1024));
    peak = Math.max(peak, process.memoryUsage.rss());
    if (process.env.WS_TEST_VERBOSE) console.log({ waits, rssGrowthMiB: (peak - rss0) / 2 ** 20 });
    expect(waits).toBeGreaterThan(0);
    expect(peak - rss0).toBeLessThan(150 * 1024 * 1024);
    ws.close();
  });

  test("pause stops message delivery until resume", async () => {
    const ws = await connectWebSocket(`${base}/echo`);
    const got: string[] = [];
    ws.on("message", (d) => got.push(d as string));
    ws.send("a");
    await until(() => got.length === 1);
    ws.pause();
    ws.send("b");
    await Bun.sleep(50);
    expect(got).toEqual(["a"]);
    ws.resume();
    await until(() => got.length === 2);
    ws.close();
  });

  test("terminate reports 1006", async () => {
    const ws = await connectWebSocket(`${base}/echo`);
    const c = closed(ws);
    ws.terminate();
    expect((await c).code).toBe(1006);
  });
});

/** A raw TCP "server" that answers the upgrade with `head(accept)` and then writes `after` bytes. */
function rawServer(head: (accept: string) => string, after: Uint8Array = new Uint8Array(0)) {
  const received: Uint8Array[] = [];
  const srv = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(s, d) {
        const k = /sec-websocket-key:\s*(\S+)/i.exec(d.toString())?.[1];
        if (!k) return void received.push(new Uint8Array(d));
        const accept = createHash("sha1").update(`${k}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest("base64");
        s.write(head(accept));
        if (after.length) s.write(after);
      },
    },
  });
  return { url: `ws://127.0.0.1:${srv.port}/`, received, stop: () => srv.stop(true) };
}
const ok101 = (accept: string, extra = "") =>
  `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n${extra}\r\n`;

describe("WebSocket client against misbehaving servers", () => {
  test("a frame with a reserved bit → error 1002, close frame 1002 sent back", async () => {
    const srv = rawServer((a) => ok101(a), new Uint8Array([0xc1, 0x00]));
    try {
      const ws = await connectWebSocket(srv.url);
      const errs: Error[] = [];
      ws.on("error", (e) => errs.push(e));
      const c = closed(ws);
      expect((await c).code).toBe(1002);
      expect(errs[0]).toBeInstanceOf(WsProtocolError);
      await until(() => srv.received.length > 0);
      const frame = srv.received[0]!;
      expect(frame[0]).toBe(0x88); // FIN + close
      const key = frame.subarray(2, 6);
      expect(((frame[6]! ^ key[0]!) << 8) | (frame[7]! ^ key[1]!)).toBe(1002);
    } finally {
      srv.stop();
    }
  });

  test("bad 101 answers are protocol WsConnectErrors", async () => {
    for (const head of [
      (_a: string) => ok101("bogus"),
      (a: string) => ok101(a, "Sec-WebSocket-Extensions: permessage-deflate\r\n"),
      (a: string) => ok101(a, "Sec-WebSocket-Protocol: never-offered\r\n"),
      (_a: string) => "SSH-2.0-OpenSSH\r\n\r\n",
    ]) {
      const srv = rawServer(head);
      try {
        const e = await connectWebSocket(srv.url).catch((x: unknown) => x);
        expect(e).toBeInstanceOf(WsConnectError);
        expect((e as WsConnectError).kind).toBe("protocol");
      } finally {
        srv.stop();
      }
    }
  });

  test("chunked error body and a body ended by close are read", async () => {
    let srv = rawServer(() => "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    let e = (await connectWebSocket(srv.url).catch((x: unknown) => x)) as WsHandshakeError;
    expect([e.status, e.statusText, e.body]).toEqual([404, "Not Found", "hello world"]);
    srv.stop();
    const close = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: { data: (s) => void s.end("HTTP/1.1 500 Oops\r\n\r\nuntil close") },
    });
    e = (await connectWebSocket(`ws://127.0.0.1:${close.port}/`).catch((x: unknown) => x)) as WsHandshakeError;
    expect([e.status, e.statusText, e.body]).toEqual([500, "Oops", "until close"]);
    close.stop(true);
  });

  test("wss with a custom CA", async () => {
    const { cert, key } = selfSignedCert();
    const tlsServer = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      tls: { cert, key },
      fetch: (req, srv) => (srv.upgrade(req, { data: undefined }) ? undefined : new Response("no", { status: 400 })),
      websocket: { message: (ws, m) => void ws.send(m) },
    });
    try {
      const ws = await connectWebSocket(`wss://localhost:${tlsServer.port}/`, { tls: { ca: cert } });
      const m = nextMessage(ws);
      ws.send(new Uint8Array(300_000).fill(7));
      expect(((await m).data as Uint8Array).length).toBe(300_000);
      ws.close();
      const untrusted = await connectWebSocket(`wss://localhost:${tlsServer.port}/`).catch((x: unknown) => x);
      expect(untrusted).toBeInstanceOf(WsConnectError);
      expect((untrusted as WsConnectError).kind).toBe("network");
    } finally {
      tlsServer.stop(true);
    }
  });
});
