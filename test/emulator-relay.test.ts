/**
 * The emulator's message relay between the two legs of a WebSocket connection (src/emulator/pair.ts):
 * bursts of small messages written together at the end of a turn, large ones at once, both in
 * order with text / binary kept; a close after a burst arrives after every message of it; a reader
 * that stops reading stops the sender instead of filling the emulator. Real sockets on 127.0.0.1:0.
 */
import { describe, expect, test } from "bun:test";
import { decodeControlMessage } from "../src/hc/messages.ts";
import type { EmulatorHandle } from "../src/emulator/server.ts";
import { emulatorFixture, sasFor } from "./support/emulator-fixture.ts";

const { sockets, start } = emulatorFixture({ hybridConnections: [{ path: "hc" }] });

type Msg = string | Uint8Array;

/** A WebSocket whose messages and close are collected. */
class Peer {
  readonly got: Msg[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  constructor(readonly ws: WebSocket) {
    ws.binaryType = "arraybuffer";
    sockets.push(ws);
    ws.addEventListener("message", (e) => this.got.push(typeof e.data === "string" ? e.data : new Uint8Array(e.data as ArrayBuffer)));
    this.closed = new Promise((resolve) => ws.addEventListener("close", (e) => resolve({ code: e.code, reason: e.reason })));
  }
  async waitFor(n: number, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.got.length < n) {
      if (Date.now() > deadline) throw new Error(`timed out: ${this.got.length} of ${n} messages`);
      await Bun.sleep(10);
    }
  }
}

function open(url: string, headers?: Record<string, string>): Promise<Peer> {
  const ws = new WebSocket(url, { headers } as unknown as string[]);
  const peer = new Peer(ws);
  return new Promise((resolve, reject) => {
    ws.addEventListener("open", () => resolve(peer), { once: true });
    ws.addEventListener("error", () => reject(new Error("websocket error")), { once: true });
  });
}

/** One relayed connection: the sender's leg and the listener's rendezvous leg. */
async function connection(e: EmulatorHandle): Promise<{ sender: Peer; leg: Peer }> {
  const control = await open(`${e.url}/$hc/hc?sb-hc-action=listen`, { ServiceBusAuthorization: sasFor(e) });
  const accepted = new Promise<string>((resolve) =>
    control.ws.addEventListener("message", (ev) => {
      const m = decodeControlMessage(String(ev.data));
      if ("accept" in m) resolve(m.accept.address);
    }),
  );
  const senderP = open(`${e.url}/$hc/hc?sb-hc-action=connect`, { ServiceBusAuthorization: sasFor(e) });
  const leg = await open(await accepted);
  return { sender: await senderP, leg };
}

/** Message i of a burst: text for every third, binary otherwise, each distinct. */
function burstMessage(i: number): Msg {
  if (i % 3 === 0) return `text ${i} ${"é".repeat(i % 40)}`;
  const b = new Uint8Array(1 + (i % 300));
  b.fill(i & 0xff);
  new DataView(b.buffer).setUint8(0, i % 251);
  return b;
}

function expectSame(got: Msg, want: Msg, i: number): void {
  if (typeof want === "string") {
    expect({ i, type: typeof got, got }).toEqual({ i, type: "string", got: want });
  } else {
    expect(got instanceof Uint8Array).toBe(true);
    expect({ i, len: (got as Uint8Array).length }).toEqual({ i, len: want.length });
    expect(Buffer.from(got as Uint8Array).equals(Buffer.from(want))).toBe(true);
  }
}

describe("relayed WebSocket messages", () => {
  test("a burst of small text and binary messages both ways arrives in order, types kept, then the close code", async () => {
    const e = await start();
    const { sender, leg } = await connection(e);
    const N = 2000;
    for (let i = 0; i < N; i++) {
      sender.ws.send(burstMessage(i));
      leg.ws.send(burstMessage(N - i));
    }
    await leg.waitFor(N);
    await sender.waitFor(N);
    for (let i = 0; i < N; i++) {
      expectSame(leg.got[i]!, burstMessage(i), i);
      expectSame(sender.got[i]!, burstMessage(N - i), i);
    }
    // a close right behind a burst reaches the other side after all of it
    for (let i = 0; i < 50; i++) sender.ws.send(burstMessage(i));
    sender.ws.close(4001, "done here");
    expect(await leg.closed).toEqual({ code: 4001, reason: "done here" });
    expect(leg.got.length).toBe(N + 50);
    for (let i = 0; i < 50; i++) expectSame(leg.got[N + i]!, burstMessage(i), i);
  });

  test("a large binary message between small ones keeps its place and its bytes; a large text message too", async () => {
    const e = await start();
    const { sender, leg } = await connection(e);
    const big = new Uint8Array(3 * 1024 * 1024 + 7);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) & 0xff;
    const bigText = "ü".repeat(200_000); // 400,000 UTF-8 bytes
    const plan: Msg[] = [burstMessage(1), burstMessage(3), big, burstMessage(2), bigText, burstMessage(6), big, burstMessage(4)];
    for (const m of plan) leg.ws.send(m);
    await sender.waitFor(plan.length);
    plan.forEach((m, i) => expectSame(sender.got[i]!, m, i));
  });

  test("a reader that stops reading stops the sender: the emulator does not take the rest, and everything arrives once it reads again", async () => {
    const e = await start();
    const { sender, leg } = await connection(e);
    const reader = leg.ws as unknown as { pause(): void; resume(): void };
    reader.pause();
    const MiB = 1024 * 1024;
    const chunk = new Uint8Array(MiB);
    const total = 128;
    for (let i = 0; i < total; i++) {
      chunk[0] = i;
      sender.ws.send(chunk);
    }
    // Let the relay take what it will: kernel buffers on both legs and one message in flight, a
    // few tens of MiB at most. If it read on regardless it would take all 128 MiB (or drop and close).
    let last = -1;
    for (let i = 0; i < 50 && sender.ws.bufferedAmount !== last; i++) {
      last = sender.ws.bufferedAmount;
      await Bun.sleep(100);
    }
    expect(sender.ws.bufferedAmount).toBeGreaterThan(64 * MiB);
    expect(sender.ws.readyState).toBe(WebSocket.OPEN);
    reader.resume();
    await leg.waitFor(total, 60_000);
    for (let i = 0; i < total; i++) {
      const m = leg.got[i] as Uint8Array;
      expect(m.length).toBe(MiB);
      expect(m[0]).toBe(i);
    }
  });
});
