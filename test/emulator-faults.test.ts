/**
 * Relay emulator fault switches, in-process and over `POST /$emulator/faults`, plus idle drop.
 */
import { describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { type AcceptMessage, decodeControlMessage } from "../src/hc/messages.ts";
import type { EmulatorHandle } from "../src/emulator/server.ts";
import { emulatorFixture, sasFor } from "./support/emulator-fixture.ts";

const { sockets, start } = emulatorFixture({ hybridConnections: [{ path: "hc" }, { path: "other" }] });
const token = sasFor;

interface Peer {
  ws: WebSocket;
  closed: Promise<{ code: number; reason: string }>;
  accepts: AcceptMessage[];
  nextAccept(timeoutMs?: number): Promise<AcceptMessage>;
}

function open(url: string, headers?: Record<string, string>): Promise<Peer> {
  const ws = new WebSocket(url, { headers } as unknown as string[]);
  sockets.push(ws);
  const accepts: AcceptMessage[] = [];
  ws.addEventListener("message", (ev) => {
    if (typeof ev.data !== "string") return;
    const m = decodeControlMessage(ev.data);
    if ("accept" in m) accepts.push(m.accept);
  });
  const peer: Peer = {
    ws,
    accepts,
    closed: new Promise((resolve) => ws.addEventListener("close", (ev) => resolve({ code: ev.code, reason: ev.reason }))),
    async nextAccept(timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (accepts.length === 0) {
        if (Date.now() > deadline) throw new Error("no accept");
        await Bun.sleep(10);
      }
      return accepts.shift() as AcceptMessage;
    },
  };
  return new Promise((resolve, reject) => {
    ws.addEventListener("open", () => resolve(peer), { once: true });
    ws.addEventListener("error", (ev) => reject(new Error((ev as ErrorEvent).message)), { once: true });
  });
}

const listen = (e: EmulatorHandle, path = "hc") => open(`${e.url}/$hc/${path}?sb-hc-action=listen`, { ServiceBusAuthorization: token(e, path) });

/** Raw handshake → status (0 = no answer within timeoutMs). */
async function handshakeStatus(url: string, headers: Record<string, string> = {}, timeoutMs = 5000): Promise<number> {
  const u = new URL(url);
  const { promise, resolve } = Promise.withResolvers<number>();
  let text = "";
  const sock = await Bun.connect({
    hostname: u.hostname,
    port: Number(u.port),
    socket: {
      data(_s, d) {
        text += Buffer.from(d).toString("latin1");
        if (text.includes("\r\n")) resolve(Number(text.slice(9, 12)));
      },
      close: () => resolve(-1),
      error: () => resolve(-1),
    },
  });
  const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("");
  sock.write(
    `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
      `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\n${extra}\r\n`,
  );
  const timer = setTimeout(() => resolve(0), timeoutMs);
  try {
    return await promise;
  } finally {
    clearTimeout(timer);
    sock.end();
  }
}

describe("fault switches", () => {
  test("dropControlChannels: a chosen close code, the default 1011, and abrupt (1006)", async () => {
    const e = await start();
    const a = await listen(e);
    const b = await listen(e, "other");
    expect(e.faults.dropControlChannels("hc", { code: 4000, reason: "test drop" })).toBe(1);
    expect(await a.closed).toEqual({ code: 4000, reason: "test drop" });
    expect(e.listenerCount("other")).toBe(1);
    expect(e.faults.dropControlChannels(undefined, "abrupt")).toBe(1);
    expect((await b.closed).code).toBe(1006);
    const c = await listen(e);
    expect(e.faults.dropControlChannels()).toBe(1);
    expect((await c.closed).code).toBe(1011);
  });

  test("expireTokens closes with 1008; deleteHc with 1001", async () => {
    const e = await start();
    const a = await listen(e);
    const b = await listen(e, "other");
    expect(e.faults.expireTokens("hc")).toBe(1);
    expect((await a.closed).code).toBe(1008);
    expect(e.faults.deleteHc("other")).toBe(true);
    expect((await b.closed).code).toBe(1001);
    expect(e.faults.deleteHc("other")).toBe(false);
  });

  test("refuseAccepts answers rendezvous connects with the status until cleared", async () => {
    const e = await start({ acceptTimeoutMs: 2000 });
    const l = await listen(e);
    e.faults.refuseAccepts("hc", 403);
    const sender = handshakeStatus(`${e.url}/$hc/hc`, { ServiceBusAuthorization: token(e) });
    const acc = await l.nextAccept();
    expect(await handshakeStatus(acc.address)).toBe(403);
    e.faults.refuseAccepts("hc", false);
    expect(await handshakeStatus(acc.address)).toBe(101); // the entry survived the refused attempt
    expect(await sender).toBe(101);
  });

  test("delayAccepts holds the accept back", async () => {
    const e = await start();
    const l = await listen(e);
    e.faults.delayAccepts(300);
    const t0 = Date.now();
    const sender = handshakeStatus(`${e.url}/$hc/hc`, { ServiceBusAuthorization: token(e) });
    const acc = await l.nextAccept();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(await handshakeStatus(acc.address)).toBe(101);
    expect(await sender).toBe(101);
  });

  test("blackholeRendezvous holds rendezvous upgrades until switched off; reset clears everything", async () => {
    const e = await start();
    const l = await listen(e);
    e.faults.blackholeRendezvous(true);
    const sender = handshakeStatus(`${e.url}/$hc/hc`, { ServiceBusAuthorization: token(e) });
    const acc = await l.nextAccept();
    const rv = handshakeStatus(acc.address, {}, 8000);
    const early = await Promise.race([rv, Bun.sleep(300).then(() => "held")]);
    expect(early).toBe("held");
    e.faults.blackholeRendezvous(false);
    expect(await rv).toBe(101);
    expect(await sender).toBe(101);
    e.faults.refuseAccepts(undefined, 500);
    e.faults.delayAccepts(10_000);
    e.faults.reset();
    const s2 = handshakeStatus(`${e.url}/$hc/hc`, { ServiceBusAuthorization: token(e) });
    expect(await handshakeStatus((await l.nextAccept(2000)).address)).toBe(101);
    expect(await s2).toBe(101);
  });

  test("POST /$emulator/faults and GET /$emulator/status", async () => {
    const e = await start();
    const l = await listen(e);
    const status = (await (await fetch(`${e.httpUrl}/$emulator/status`)).json()) as { hybridConnections: Record<string, number> };
    expect(status.hybridConnections).toEqual({ hc: 1, other: 0 });
    const r = await fetch(`${e.httpUrl}/$emulator/faults`, {
      method: "POST",
      body: JSON.stringify({ action: "dropControlChannels", hcPath: "hc", code: 4002, reason: "remote" }),
    });
    expect(await r.json()).toEqual({ ok: true, result: 1 });
    expect(await l.closed).toEqual({ code: 4002, reason: "remote" });
    const bad = await fetch(`${e.httpUrl}/$emulator/faults`, { method: "POST", body: JSON.stringify({ action: "explode" }) });
    expect(bad.status).toBe(400);
    const del = await fetch(`${e.httpUrl}/$emulator/faults`, { method: "POST", body: JSON.stringify({ action: "deleteHc", hcPath: "other" }) });
    expect(await del.json()).toEqual({ ok: true, result: true });
    expect(e.entities.get("other")).toBeUndefined();
  });

  test("idleDropMs drops silent control channels abruptly; pings keep one alive", async () => {
    const e = await start({ idleDropMs: 400 });
    const idle = await listen(e);
    const busy = await listen(e);
    const pinger = setInterval(() => (busy.ws as unknown as { ping(): void }).ping(), 100);
    try {
      expect((await idle.closed).code).toBe(1006);
      expect(e.listenerCount("hc")).toBe(1);
      expect(busy.ws.readyState).toBe(WebSocket.OPEN);
    } finally {
      clearInterval(pinger);
    }
  });
});
