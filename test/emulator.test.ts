/**
 * Relay emulator: listener control channels (auth, limits, renewToken, expiry, bad messages) and
 * WebSocket senders (accept / reject / relay / close codes). Real sockets on 127.0.0.1:0.
 */
import { describe, expect, test } from "bun:test";
import { createHmac, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeControlMessage, type AcceptMessage } from "../src/hc/messages.ts";
import { createSasToken } from "../src/hc/sas.ts";
import { signTestJwt } from "../src/emulator/entra.ts";
import type { EmulatorHandle } from "../src/emulator/server.ts";
import { emulatorFixture, ROOT, ruleKey, sasFor } from "./support/emulator-fixture.ts";
import { handshakeStatus } from "./support/relay-probe.ts";

const { sockets, start } = emulatorFixture({ hybridConnections: [{ path: "hc" }] });
const token = sasFor;
const key = ruleKey;

/** A WebSocket with its messages and close queued for awaiting. */
class Peer {
  readonly messages: Array<string | ArrayBuffer> = [];
  private waiters: Array<() => void> = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  constructor(readonly ws: WebSocket) {
    ws.binaryType = "arraybuffer";
    sockets.push(ws);
    ws.addEventListener("message", (e) => {
      this.messages.push(e.data as string | ArrayBuffer);
      for (const w of this.waiters.splice(0)) w();
    });
    this.closed = new Promise((resolve) => ws.addEventListener("close", (e) => resolve({ code: e.code, reason: e.reason })));
  }
  async next(timeoutMs = 5000): Promise<string | ArrayBuffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.messages.length === 0) {
      if (Date.now() > deadline) throw new Error("timed out waiting for a message");
      await Promise.race([new Promise<void>((r) => this.waiters.push(r)), Bun.sleep(50)]);
    }
    return this.messages.shift() as string | ArrayBuffer;
  }
  async nextAccept(): Promise<AcceptMessage> {
    const m = decodeControlMessage((await this.next()) as string);
    if (!("accept" in m)) throw new Error(`expected accept, got ${JSON.stringify(m)}`);
    return m.accept;
  }
}

function open(url: string, o: { headers?: Record<string, string>; protocols?: string[] } = {}): Promise<Peer> {
  const ws = new WebSocket(url, { headers: o.headers, protocols: o.protocols } as unknown as string[]);
  const peer = new Peer(ws);
  return new Promise((resolve, reject) => {
    ws.addEventListener("open", () => resolve(peer), { once: true });
    ws.addEventListener("error", (e) => reject(new Error((e as ErrorEvent).message ?? "websocket error")), { once: true });
  });
}

function listen(e: EmulatorHandle, path = "hc", tok = token(e, path), extra = ""): Promise<Peer> {
  return open(`${e.url}/$hc/${path}?sb-hc-action=listen${extra}`, { headers: { ServiceBusAuthorization: tok } });
}

/** A raw WebSocket handshake, to read the status and the description body of a refusal. */
async function handshake(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const r = await handshakeStatus(url, headers);
  return { status: r.status, body: r.text };
}

describe("listener control channel", () => {
  test("opens with a ServiceBusAuthorization header and with sb-hc-token", async () => {
    const e = await start();
    await listen(e);
    expect(e.listenerCount("hc")).toBe(1);
    await open(`${e.url}/$hc/hc?sb-hc-action=listen&sb-hc-token=${encodeURIComponent(token(e))}`);
    expect(e.listenerCount("HC")).toBe(2);
  });

  test("401 for a bad signature, an expired token, a base64-decoded key and no token", async () => {
    const e = await start();
    const url = `${e.url}/$hc/hc?sb-hc-action=listen`;
    const bad = await handshake(url, { ServiceBusAuthorization: token(e, "hc", { key: "wrong" }) });
    expect(bad.status).toBe(401);
    expect(bad.body).toContain("invalid signature");
    expect(bad.body).toMatch(/TrackingId:[0-9a-f-]{36}, SystemTracker:127\.0\.0\.1:hc, Timestamp:/);
    const expired = await handshake(url, { ServiceBusAuthorization: token(e, "hc", { ttl: -5 }) });
    expect(expired.status).toBe(401);
    expect(expired.body).toContain("ExpiredToken");
    // Signed with the base64-DECODED key bytes (the negative vector of hybrid-connections.md §2.2).
    const sr = encodeURIComponent(`http://127.0.0.1:${e.port}/hc`);
    const se = Math.floor(Date.now() / 1000) + 60;
    const sig = createHmac("sha256", Buffer.from(key(e), "base64")).update(`${sr}\n${se}`).digest("base64");
    const decoded = `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${se}&skn=${ROOT}`;
    expect((await handshake(url, { ServiceBusAuthorization: decoded })).status).toBe(401);
    expect((await handshake(url)).status).toBe(401);
    expect(e.listenerCount("hc")).toBe(0);
  });

  test("403 for a missing right or another entity's scope; 404 for an unknown hybrid connection", async () => {
    const e = await start({ hybridConnections: [{ path: "hc", rules: [{ name: "sendonly", rights: ["Send"] }] }, { path: "other" }] });
    const url = `${e.url}/$hc/hc?sb-hc-action=listen`;
    const noListen = await handshake(url, { ServiceBusAuthorization: token(e, "hc", { rule: "sendonly" }) });
    expect(noListen.status).toBe(403);
    expect(noListen.body).toContain("'Listen' claim(s) are required");
    expect((await handshake(url, { ServiceBusAuthorization: token(e, "other") })).status).toBe(403);
    const missing = await handshake(`${e.url}/$hc/nope?sb-hc-action=listen`, { ServiceBusAuthorization: token(e, "nope") });
    expect(missing.status).toBe(404);
    expect(missing.body).toStartWith("Endpoint does not exist.");
    // A namespace-wide token covers every entity.
    await listen(e, "hc", createSasToken(`http://127.0.0.1/`, ROOT, key(e), Date.now() / 1000 + 60));
  });

  test("the 26th listener is refused with 403 and a quota description (Service Bus convention; 429 selectable)", async () => {
    const e = await start();
    for (let i = 0; i < 25; i++) await listen(e);
    const r = await handshake(`${e.url}/$hc/hc?sb-hc-action=listen`, { ServiceBusAuthorization: token(e) });
    expect(r.status).toBe(403);
    expect(r.body).toContain("QuotaExceeded");
    e.faults.listenerQuotaStatus(429);
    const r429 = await handshake(`${e.url}/$hc/hc?sb-hc-action=listen`, { ServiceBusAuthorization: token(e) });
    expect(r429.status).toBe(429);
    expect(r.body).toContain("QuotaExceeded");
    expect(e.listenerCount("hc")).toBe(25);
  });

  test("autoCreate makes the entity for a namespace-scope Listen token", async () => {
    const e = await start({ autoCreate: true });
    expect((await handshake(`${e.url}/$hc/fresh?sb-hc-action=listen`, { ServiceBusAuthorization: token(e, "fresh") })).status).toBe(404);
    await listen(e, "fresh", createSasToken(`http://127.0.0.1/`, ROOT, key(e), Date.now() / 1000 + 60));
    expect(e.entities.get("fresh")).toBeDefined();
  });

  test("token expiry closes with 1008; a renewToken keeps the channel past the first expiry", async () => {
    const e = await start();
    const expiring = await listen(e, "hc", token(e, "hc", { ttl: 2 }));
    const renewed = await listen(e, "hc", token(e, "hc", { ttl: 2 }));
    renewed.ws.send(JSON.stringify({ renewToken: { token: token(e, "hc", { ttl: 60 }) } }));
    const closed = await expiring.closed;
    expect(closed.code).toBe(1008);
    expect(closed.reason).toContain("ExpiredToken");
    const still = await Promise.race([renewed.closed, Bun.sleep(1500).then(() => "open")]);
    expect(still).toBe("open");
    expect(e.listenerCount("hc")).toBe(1);
  });

  test("a bad renewToken closes with 1008", async () => {
    const e = await start();
    const l = await listen(e);
    l.ws.send(JSON.stringify({ renewToken: { token: token(e, "hc", { key: "wrong" }) } }));
    const c = await l.closed;
    expect(c.code).toBe(1008);
    expect(c.reason).toContain("invalid signature");
  });

  test("garbage and unknown actions close with 1008, oversize with 1009; other listeners keep working", async () => {
    const e = await start();
    const good = await listen(e);
    const garbage = await listen(e);
    const unknown = await listen(e);
    const big = await listen(e);
    garbage.ws.send("{not json");
    unknown.ws.send(JSON.stringify({ frobnicate: {} }));
    big.ws.send(JSON.stringify({ renewToken: { token: "x".repeat(70_000) } }));
    expect((await garbage.closed).code).toBe(1008);
    expect((await unknown.closed).code).toBe(1008);
    expect((await big.closed).code).toBe(1009);
    // Unsolicited pong and ping frames are fine.
    const frames = good.ws as unknown as { ping(): void; pong(): void };
    frames.pong();
    frames.ping();
    good.ws.send(new Uint8Array(0)); // stray empty binary: ignored
    const sender = open(`${e.url}/$hc/hc?sb-hc-action=connect`, { headers: { ServiceBusAuthorization: token(e) } });
    const acc = await good.nextAccept();
    await open(acc.address);
    await sender;
    expect(e.listenerCount("hc")).toBe(1);
  });

  test("Entra test-mode JWTs: Listener role listens, cannot send; without `entra` they are 401", async () => {
    const e = await start({ entra: { secret: "test-secret" } });
    const jwt = signTestJwt({ aud: "https://relay.azure.net", exp: Math.floor(Date.now() / 1000) + 60, roles: ["Azure Relay Listener"] }, "test-secret");
    await listen(e, "hc", jwt);
    expect((await handshake(`${e.url}/$hc/hc`, { ServiceBusAuthorization: jwt })).status).toBe(403);
    expect((await handshake(`${e.url}/$hc/hc?sb-hc-action=listen`, { ServiceBusAuthorization: signTestJwt({ aud: "https://relay.azure.net", exp: 1, roles: ["Listen"] }, "test-secret") })).status).toBe(401);
    await e.stop();
    const plain = await start();
    expect((await handshake(`${plain.url}/$hc/hc?sb-hc-action=listen`, { ServiceBusAuthorization: jwt })).status).toBe(401);
  });

  test("deleting the hybrid connection closes its listeners with 1001", async () => {
    const e = await start();
    const l = await listen(e);
    expect(e.entities.delete("hc")).toBe(true);
    expect((await l.closed).code).toBe(1001);
  });
});

describe("WebSocket senders", () => {
  test("accept carries the sender's headers without the token; relays text, binary and 1 MiB both ways", async () => {
    const e = await start();
    const l = await listen(e);
    const senderP = open(`${e.url}/$hc/hc/sub/path?app=1&sb-hc-action=connect&sb-hc-id=conn1`, {
      headers: { ServiceBusAuthorization: token(e), "X-Custom": "value" },
      protocols: ["chat", "other"],
    });
    const acc = await l.nextAccept();
    expect(acc.id).toBe("conn1");
    expect(acc.connectHeaders["Sec-WebSocket-Key"]).toMatch(/^[A-Za-z0-9+/]{22}==$/);
    expect(acc.connectHeaders["X-Custom"]).toBe("value");
    expect(acc.connectHeaders["Sec-WebSocket-Protocol"]).toContain("chat");
    expect(Object.keys(acc.connectHeaders).map((k) => k.toLowerCase())).not.toContain("servicebusauthorization");
    expect(acc.address).toBe(`ws://127.0.0.1:${e.port}/$hc/hc/sub/path?app=1&sb-hc-action=accept&sb-hc-id=conn1`);
    expect(acc.remoteEndpoint?.address).toBe("127.0.0.1");
    const lp = await open(acc.address, { protocols: ["chat"] });
    const sp = await senderP;
    expect(sp.ws.protocol).toBe("chat");
    sp.ws.send("hello");
    expect(await lp.next()).toBe("hello");
    lp.ws.send("world");
    expect(await sp.next()).toBe("world");
    const big = randomBytes(1024 * 1024);
    sp.ws.send(big);
    const got = await lp.next();
    expect(got).toBeInstanceOf(ArrayBuffer);
    expect(Buffer.from(got as ArrayBuffer).equals(big)).toBe(true);
    lp.ws.send(big);
    expect(Buffer.from((await sp.next()) as ArrayBuffer).equals(big)).toBe(true);
  });

  test("close code and reason travel sender → listener and listener → sender", async () => {
    const e = await start();
    const l = await listen(e);
    for (const closer of ["sender", "listener"] as const) {
      const sP = open(`${e.url}/$hc/hc?sb-hc-action=connect`, { headers: { ServiceBusAuthorization: token(e) } });
      const lp = await open((await l.nextAccept()).address);
      const sp = await sP;
      const [a, b] = closer === "sender" ? [sp, lp] : [lp, sp];
      a.ws.close(4001, `bye from ${closer}`);
      expect(await b.closed).toEqual({ code: 4001, reason: `bye from ${closer}` });
    }
  });

  test("reject: the listener's handshake gets 410, the sender the status and description", async () => {
    const e = await start();
    const l = await listen(e);
    const sender = handshake(`${e.url}/$hc/hc?sb-hc-action=connect`, { ServiceBusAuthorization: token(e) });
    const acc = await l.nextAccept();
    const r = await handshake(`${acc.address}&sb-hc-statusCode=401&sb-hc-statusDescription=${encodeURIComponent("Status Description from test")}`);
    expect(r.status).toBe(410);
    expect(await sender).toEqual({ status: 401, body: "Status Description from test" });
  });

  test("the accept address is single-use and expires", async () => {
    const e = await start({ acceptTimeoutMs: 400 });
    const l = await listen(e);
    const sP = open(`${e.url}/$hc/hc?sb-hc-action=connect`, { headers: { ServiceBusAuthorization: token(e) } });
    const acc = await l.nextAccept();
    await open(acc.address);
    await sP;
    expect((await handshake(acc.address)).status).toBe(403);
    const late = handshake(`${e.url}/$hc/hc?sb-hc-action=connect`, { ServiceBusAuthorization: token(e) });
    const acc2 = await l.nextAccept();
    const lateResult = await late;
    expect(lateResult.status).toBe(504);
    expect((await handshake(acc2.address)).status).toBe(403);
  });

  test("senders: 404 without listeners, 401 without a token, anonymous when client auth is off", async () => {
    const e = await start({ hybridConnections: [{ path: "hc" }, { path: "open", requiresClientAuthorization: false }] });
    const none = await handshake(`${e.url}/$hc/hc?sb-hc-action=connect`, { ServiceBusAuthorization: token(e) });
    expect(none.status).toBe(404);
    expect(none.body).toContain("There are no listeners connected for the endpoint");
    await listen(e);
    expect((await handshake(`${e.url}/$hc/hc`)).status).toBe(401);
    const l = await listen(e, "open");
    const sP = open(`${e.url}/$hc/open`);
    await open((await l.nextAccept()).address);
    await sP;
    expect((await handshake(`${e.url}/$hc/missing?sb-hc-action=connect`)).status).toBe(404);
  });

  test("Microsoft-Relay-AllowedListeners / DisallowedListeners steer the choice", async () => {
    const e = await start();
    const a = await listen(e, "hc", token(e), "&sb-hc-id=listener-a");
    const b = await listen(e, "hc", token(e), "&sb-hc-id=listener-b");
    for (let i = 0; i < 4; i++) {
      const s = handshake(`${e.url}/$hc/hc`, { ServiceBusAuthorization: token(e), "Microsoft-Relay-AllowedListeners": "listener-b" });
      const acc = await b.nextAccept();
      await handshake(`${acc.address}&sb-hc-statusCode=400&sb-hc-statusDescription=no`);
      expect((await s).status).toBe(400);
    }
    const s = handshake(`${e.url}/$hc/hc`, { ServiceBusAuthorization: token(e), "Microsoft-Relay-DisallowedListeners": "listener-b" });
    const acc = await a.nextAccept();
    await handshake(`${acc.address}&sb-hc-statusCode=403&sb-hc-statusDescription=nope`);
    expect((await s).status).toBe(403);
    expect(b.messages.length).toBe(0);
    const none = await handshake(`${e.url}/$hc/hc`, { ServiceBusAuthorization: token(e), "Microsoft-Relay-AllowedListeners": "zzz" });
    expect(none.status).toBe(404);
    expect(none.body).toContain("AllowedListeners/DisallowedListeners");
  });

  test("backpressure: 48 MiB to a paused listener leg all arrives, in order", async () => {
    const e = await start();
    const l = await listen(e);
    const sP = open(`${e.url}/$hc/hc`, { headers: { ServiceBusAuthorization: token(e) } });
    const lp = await open((await l.nextAccept()).address);
    const sp = await sP;
    const leg = lp.ws as unknown as { pause(): boolean; resume(): boolean };
    leg.pause();
    const chunk = new Uint8Array(1024 * 1024);
    for (let i = 0; i < 48; i++) {
      chunk[0] = i;
      sp.ws.send(chunk);
    }
    await Bun.sleep(200);
    leg.resume();
    for (let i = 0; i < 48; i++) {
      const m = new Uint8Array((await lp.next(10_000)) as ArrayBuffer);
      expect(m.length).toBe(1024 * 1024);
      expect(m[0]).toBe(i);
    }
  });

  test("TLS: wss listener and sender, https HTTP mode", async () => {
    const dir = mkdtempSync(join(tmpdir(), "emu-tls-"));
    const gen = Bun.spawnSync(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
      "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")]);
    if (gen.exitCode !== 0) throw new Error(`openssl failed: ${gen.stderr.toString()}`);
    const cert = readFileSync(join(dir, "cert.pem"), "utf8");
    const pem = readFileSync(join(dir, "key.pem"), "utf8");
    rmSync(dir, { recursive: true, force: true });
    const e = await start({ tls: { cert, key: pem } });
    expect(e.url).toBe(`wss://127.0.0.1:${e.port}`);
    expect(e.connectionString()).toStartWith(`Endpoint=sb://127.0.0.1:${e.port}/;`);
    const tlsOpen = (url: string, headers?: Record<string, string>) => {
      const ws = new WebSocket(url, { headers, tls: { ca: cert } } as unknown as string[]);
      const peer = new Peer(ws);
      return new Promise<Peer>((resolve, reject) => {
        ws.addEventListener("open", () => resolve(peer), { once: true });
        ws.addEventListener("error", (ev) => reject(new Error((ev as ErrorEvent).message)), { once: true });
      });
    };
    const l = await tlsOpen(`${e.url}/$hc/hc?sb-hc-action=listen`, { ServiceBusAuthorization: token(e) });
    const sP = tlsOpen(`${e.url}/$hc/hc`, { ServiceBusAuthorization: token(e) });
    const acc = await l.nextAccept();
    expect(acc.address).toStartWith(`wss://127.0.0.1:${e.port}/$hc/hc?`);
    const lp = await tlsOpen(acc.address);
    const sp = await sP;
    sp.ws.send("over tls");
    expect(await lp.next()).toBe("over tls");
    const res = await fetch(`${e.httpUrl}/missing`, { tls: { ca: cert } } as RequestInit);
    expect(res.status).toBe(404);
  });

  test("connection string names the endpoint, rule and key", async () => {
    const e = await start();
    expect(e.connectionString()).toBe(`Endpoint=ws://127.0.0.1:${e.port}/;SharedAccessKeyName=${ROOT};SharedAccessKey=${key(e)}`);
    expect(e.connectionString(ROOT, "hc")).toEndWith(";EntityPath=hc");
    expect(e.endpoint).toEqual({ scheme: "ws", host: `127.0.0.1:${e.port}` });
  });
});
