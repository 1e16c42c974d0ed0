import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { type EmulatorHandle, startEmulator } from "../src/emulator/server.ts";
import { resourceUri } from "../src/hc/address.ts";
import { RelayError } from "../src/hc/errors.ts";
import { HybridConnectionListener, type ListenerOptions, type RelayRequest } from "../src/hc/listener.ts";
import type { AcceptMessage } from "../src/hc/messages.ts";
import { createSasToken } from "../src/hc/sas.ts";
import { connectSender } from "../src/hc/sender.ts";
import { sasTokenProvider } from "../src/hc/tokens.ts";
import type { WsConnection } from "../src/ws/client.ts";

const RULE = "RootManageSharedAccessKey";
let emu: EmulatorHandle;
let key: string;
const open: HybridConnectionListener[] = [];
const sockets: WsConnection[] = [];

beforeAll(async () => {
  emu = await startEmulator({
    hybridConnections: [
      { path: "echo" },
      { path: "many" },
      { path: "limited", rules: [{ name: "sendonly", rights: ["Send"], primaryKey: "send-only-key" }] },
      { path: "renew" },
      { path: "http" },
    ],
  });
  key = emu.entities.namespaceRules.get(RULE)!.primaryKey;
});
afterAll(() => emu.stop());
afterEach(async () => {
  for (const s of sockets.splice(0)) s.terminate();
  await Promise.all(open.splice(0).map((l) => l.close()));
});

const provider = (ttl = 3600) => sasTokenProvider(RULE, key, ttl);

function listener(hcPath: string, o: Partial<ListenerOptions> = {}): HybridConnectionListener {
  const l = new HybridConnectionListener({ endpoint: emu.endpoint, hcPath, token: provider(), ...o });
  open.push(l);
  return l;
}

/** The listener accepts every sender; resolves each accepted socket in order. */
function acceptAll(l: HybridConnectionListener): () => Promise<{ ws: WsConnection; msg: AcceptMessage }> {
  const queue: { ws: WsConnection; msg: AcceptMessage }[] = [];
  const waiters: ((v: { ws: WsConnection; msg: AcceptMessage }) => void)[] = [];
  l.on("accept", (msg) => {
    l.accept(msg).then((ws) => {
      sockets.push(ws);
      const w = waiters.shift();
      if (w) w({ ws, msg });
      else queue.push({ ws, msg });
    }, () => {});
  });
  return () => {
    const q = queue.shift();
    return q ? Promise.resolve(q) : new Promise((r) => waiters.push(r));
  };
}

function next(ws: WsConnection): Promise<string | Uint8Array> {
  return new Promise((r) => ws.once("message", (d) => r(d)));
}
function closed(ws: WsConnection): Promise<[number, string]> {
  return new Promise((r) => ws.once("close", (c, reason) => r([c, reason])));
}
function closeOf(l: HybridConnectionListener): Promise<RelayError | null> {
  return new Promise((r) => l.once("close", r));
}
async function sender(hcPath: string, o: Partial<Parameters<typeof connectSender>[0]> = {}): Promise<WsConnection> {
  const ws = await connectSender({ endpoint: emu.endpoint, hcPath, token: provider(), ...o });
  sockets.push(ws);
  return ws;
}
async function failure(p: Promise<unknown>): Promise<RelayError> {
  const e = await p.then(() => null, (x: unknown) => x);
  expect(e).toBeInstanceOf(RelayError);
  return e as RelayError;
}

describe("listener + sender through the emulator", () => {
  test("text and binary both ways, 1 MiB messages, subprotocol, close 4001 each way", async () => {
    const l = listener("echo", { id: "listener-1" });
    await l.open();
    expect(emu.listenerCount("echo")).toBe(1);
    const accepted = acceptAll(l);

    const s = await sender("echo", { protocols: ["p1", "p2"], id: "sender-1", headers: { "X-App": "a" } });
    const { ws: r, msg } = await accepted();
    expect(msg.id).toBe("sender-1");
    expect(msg.connectHeaders["X-App"] ?? msg.connectHeaders["x-app"]).toBe("a");
    expect(s.protocol).toBe("p1");
    expect(r.protocol).toBe("p1");

    let m = next(r);
    s.send("hello listener");
    expect(await m).toBe("hello listener");
    m = next(s);
    r.send("hello sender");
    expect(await m).toBe("hello sender");
    const big = crypto.getRandomValues(new Uint8Array(65536));
    const mib = new Uint8Array(1024 * 1024);
    for (let i = 0; i < 16; i++) mib.set(big, i * 65536);
    m = next(r);
    s.send(mib);
    expect(Buffer.compare((await m) as Uint8Array, mib)).toBe(0);
    m = next(s);
    r.send(mib);
    expect(Buffer.compare((await m) as Uint8Array, mib)).toBe(0);

    const rc = closed(r);
    s.close(4001, "sender bye");
    expect(await rc).toEqual([4001, "sender bye"]);

    const s2 = await sender("echo");
    const { ws: r2 } = await accepted();
    const sc = closed(s2);
    r2.close(4001, "listener bye");
    expect(await sc).toEqual([4001, "listener bye"]);
  });

  test("token in the query for both roles", async () => {
    const l = listener("echo", { tokenInQuery: true });
    await l.open();
    const accepted = acceptAll(l);
    const s = await sender("echo", { tokenInQuery: true });
    const { ws: r } = await accepted();
    const m = next(s);
    r.send("via query");
    expect(await m).toBe("via query");
  });

  test("reject: the sender sees the listener's status and description", async () => {
    const l = listener("echo");
    await l.open();
    const rejected: Promise<void>[] = [];
    l.on("accept", (msg) => rejected.push(l.reject(msg, 418, "Not today, teapot")));
    const e = await failure(sender("echo"));
    expect(e.code).toBe("rejected");
    expect(e.status).toBe(418);
    expect(e.details.statusText).toBe("Not today, teapot");
    expect(e.retryable).toBe(false);
    await Promise.all(rejected); // the listener's reject handshake got its 410
  });

  test("sender to a hybrid connection without listeners: not_found, retryable", async () => {
    const e = await failure(sender("many"));
    expect(e.code).toBe("not_found");
    expect(e.retryable).toBe(true);
  });

  test("401 / 403 / 404 on the control channel are typed, not retryable", async () => {
    const bad = await failure(listener("echo", { token: sasTokenProvider(RULE, "wrong-key") }).open());
    expect([bad.code, bad.status, bad.retryable]).toEqual(["unauthorized", 401, false]);
    const forbidden = await failure(listener("limited", { token: sasTokenProvider("sendonly", "send-only-key") }).open());
    expect([forbidden.code, forbidden.status, forbidden.retryable]).toEqual(["forbidden", 403, false]);
    const missing = await failure(listener("no-such-hc").open());
    expect([missing.code, missing.status, missing.retryable]).toEqual(["not_found", 404, false]);
    expect(missing.message).toContain("404");
  });

  test("network failure to open is retryable", async () => {
    const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = probe.port;
    probe.stop(true);
    const e = await failure(listener("echo", { endpoint: { scheme: "ws", host: `127.0.0.1:${port}` } }).open());
    expect([e.code, e.retryable]).toEqual(["network", true]);
  });

  test("the 26th listener is refused (listener_limit, retryable)", async () => {
    const ls = Array.from({ length: 25 }, () => listener("many"));
    await Promise.all(ls.map((l) => l.open()));
    expect(emu.listenerCount("many")).toBe(25);
    const e = await failure(listener("many").open());
    expect(e.code).toBe("listener_limit");
    expect(e.status).toBe(403); // quota as 403 (Service Bus convention), not "forbidden"
    expect(e.retryable).toBe(true);
  });

  test("relay-side close codes: 1008 token_expired, 1001 entity_deleted, 1011 server_error", async () => {
    const l = listener("echo");
    await l.open();
    let c = closeOf(l);
    expect(emu.faults.expireTokens("echo")).toBe(1);
    let err = await c;
    expect([err?.code, err?.closeCode, err?.retryable]).toEqual(["token_expired", 1008, true]);

    await l.open();
    c = closeOf(l);
    emu.faults.dropControlChannels("echo");
    err = await c;
    expect([err?.code, err?.closeCode, err?.retryable]).toEqual(["server_error", 1011, true]);

    await l.open();
    c = closeOf(l);
    emu.faults.dropControlChannels("echo", "abrupt");
    err = await c;
    expect([err?.code, err?.retryable]).toEqual(["network", true]);

    emu.entities.upsert({ path: "doomed" });
    const d = listener("doomed");
    await d.open();
    c = closeOf(d);
    emu.faults.deleteHc("doomed");
    err = await c;
    expect([err?.code, err?.closeCode]).toEqual(["entity_deleted", 1001]);

    await l.open();
    c = closeOf(l);
    await l.close();
    expect(await c).toBeNull();
  });

  test("a 2 s token without renewal expires → 1008 token_expired", async () => {
    const l = listener("renew", { token: provider(2), autoRenew: false });
    const c = closeOf(l);
    await l.open();
    const t0 = Date.now();
    const err = await c;
    expect(err?.code).toBe("token_expired");
    expect(Date.now() - t0).toBeLessThan(4000);
  });

  test("renewToken keeps listeners alive past their first 3 s token (automatic and manual)", async () => {
    const auto = listener("renew", { token: provider(3) });
    const manual = listener("renew", { token: provider(3), autoRenew: false });
    let closes = 0;
    auto.on("close", () => closes++);
    manual.on("close", () => closes++);
    await Promise.all([auto.open(), manual.open()]);
    await Bun.sleep(1200);
    await manual.renewToken(createSasToken(resourceUri(emu.endpoint, "renew"), RULE, key, Math.floor(Date.now() / 1000) + 30));
    await Bun.sleep(4500);
    expect(closes).toBe(0);
    expect(auto.isOpen && manual.isOpen).toBe(true);
    expect(emu.listenerCount("renew")).toBe(2);
    // a bad renewal is answered with 1008
    const c = closeOf(manual);
    await manual.renewToken("SharedAccessSignature sr=x&sig=y&se=1&skn=z");
    expect((await c)?.code).toBe("token_expired");
  }, 20_000);
});

describe("keep-alive", () => {
  test("pings keep an idle control channel alive where the relay drops silent ones", async () => {
    const idle = await startEmulator({ hybridConnections: [{ path: "idle" }], idleDropMs: 600 });
    try {
      const k = idle.entities.namespaceRules.get(RULE)!.primaryKey;
      const mk = (keepAliveMs: number) => {
        const l = new HybridConnectionListener({ endpoint: idle.endpoint, hcPath: "idle", token: sasTokenProvider(RULE, k), keepAliveMs });
        open.push(l);
        return l;
      };
      const pinging = mk(150);
      const silent = mk(30_000);
      await Promise.all([pinging.open(), silent.open()]);
      const err = await closeOf(silent);
      expect([err?.code, err?.retryable]).toEqual(["network", true]);
      expect(pinging.isOpen).toBe(true);
      await Bun.sleep(700);
      expect(pinging.isOpen).toBe(true);
      expect(idle.listenerCount("idle")).toBe(1);
    } finally {
      await Promise.all(open.splice(0).map((l) => l.close()));
      await idle.stop();
    }
  });

  /** A peer that completes the WebSocket handshake, then answers pings only while `answering`; counts the frames it gets by opcode. */
  function rawPeer() {
    const st = { answering: true, got: new Map<number, number>() };
    const server = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        data(s, d) {
          const text = Buffer.from(d).toString("latin1");
          const k = /sec-websocket-key:\s*(\S+)/i.exec(text)?.[1];
          if (k) {
            const accept = createHash("sha1").update(`${k}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest("base64");
            s.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
            return;
          }
          // client frames here are tiny (empty pings / pongs): 2-byte header + 4-byte mask + payload
          for (let i = 0; i + 6 <= d.length; i += 6 + (d[i + 1]! & 0x7f)) {
            const op = d[i]! & 0x0f;
            st.got.set(op, (st.got.get(op) ?? 0) + 1);
            if (op === 0x9 && st.answering) s.write(new Uint8Array([0x8a, 0x00]));
          }
        },
      },
    });
    return { st, server, endpoint: { scheme: "ws" as const, host: `127.0.0.1:${server.port}` } };
  }

  test("a peer that answered pings and then went silent is torn down after 3 silent intervals", async () => {
    const p = rawPeer();
    try {
      const l = listener("x", { endpoint: p.endpoint, token: "t", keepAliveMs: 100 });
      const c = closeOf(l);
      await l.open();
      await Bun.sleep(450); // a few answered pings
      expect(l.isOpen).toBe(true);
      p.st.answering = false; // half-open from here on: nothing comes back
      const t0 = Date.now();
      const err = await c;
      expect([err?.code, err?.retryable]).toEqual(["timeout", true]);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(250); // not on the first missed pong
      expect(Date.now() - t0).toBeLessThan(3000);
    } finally {
      p.server.stop(true);
    }
  });

  test("a peer that never answers pings: the listener falls back to unsolicited pongs and stays up", async () => {
    const p = rawPeer();
    p.st.answering = false;
    try {
      const l = listener("x", { endpoint: p.endpoint, token: "t", keepAliveMs: 50 });
      const modes: string[] = [];
      l.on("keepAlive", (m) => modes.push(m));
      let closed = false;
      l.on("close", () => (closed = true));
      await l.open();
      await Bun.sleep(1200); // 24 intervals, far more than the 3 that tear down a channel that once answered
      expect(closed).toBe(false);
      expect(l.keepAliveMode).toBe("pong");
      expect(modes).toEqual(["pong"]);
      expect(p.st.got.get(0x9)).toBe(2); // two pings, then only pongs
      expect(p.st.got.get(0xa) ?? 0).toBeGreaterThan(10);
    } finally {
      p.server.stop(true);
    }
  });
});

describe("HTTP mode through the listener", () => {
  test("small inline, large response via rendezvous, large request via rendezvous", async () => {
    const l = listener("http");
    await l.open();
    const seen: RelayRequest[] = [];
    l.on("request", (req) => {
      seen.push(req);
      const n = Number(new URL(req.requestTarget ?? "/", "http://x").searchParams.get("n") ?? "0");
      const body = new Uint8Array(n).fill(0x61);
      const echo = req.bodyBytes ? `got ${req.bodyBytes.length}` : "";
      l.respond(req, {
        statusCode: 201,
        statusDescription: "Made",
        headers: { "content-type": "text/plain", "x-echo": echo },
        body: n > 0 ? body : new TextEncoder().encode(`${req.method} ${req.requestTarget}`),
      }).catch(() => {});
    });
    const token = createSasToken(resourceUri(emu.endpoint, "http"), RULE, key, Math.floor(Date.now() / 1000) + 60);
    const headers = { ServiceBusAuthorization: token };
    let res = await fetch(`${emu.httpUrl}/http/a?b=1`, { headers });
    expect(res.status).toBe(201);
    expect(await res.text()).toBe("GET /http/a?b=1");
    res = await fetch(`${emu.httpUrl}/http/big?n=200000`, { headers });
    expect(res.status).toBe(201);
    expect((await res.arrayBuffer()).byteLength).toBe(200_000);
    res = await fetch(`${emu.httpUrl}/http/up`, { method: "POST", headers, body: new Uint8Array(100_000) });
    expect(res.status).toBe(201);
    expect(res.headers.get("x-echo")).toBe("got 100000");
    expect(seen.map((r) => Boolean(r.rendezvous))).toEqual([false, false, true]);
  });
});
