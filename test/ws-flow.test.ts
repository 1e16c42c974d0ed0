/**
 * WebSocket flow control and edges through real processes (relay emulator, gateway, agent, a
 * local app — each its own process, memory read from /proc): issue 12, High 1–3 and the abnormal
 * close. Budgets: 384 MiB offered at an origin that never reads; up to 1 GiB offered by an origin
 * at a public client that never reads, for 12 s. Bounds are generous (250 MB per process).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { sampleRss } from "../bench/lib/proc.ts";
import { type WsConnection } from "../src/ws/client.ts";
import { connectWebSocket } from "../src/ws/connect.ts";
import { startProcStack, until, type ProcStack } from "./support/proc-stack.ts";

const MiB = 1 << 20;
let s: ProcStack;

beforeAll(async () => {
  s = await startProcStack();
}, 60_000);
afterAll(async () => {
  await s?.stop();
});

const open = (path: string, o: { highWaterMark?: number } = {}) =>
  connectWebSocket(s.wsUrl + path, { headers: { host: s.host }, proxy: null, closeTimeoutMs: 2000, ...o });

function closed(c: WsConnection): Promise<{ code: number; reason: string }> {
  return new Promise((r) => c.on("close", (code, reason) => r({ code, reason })));
}

async function released(): Promise<void> {
  // close and reset release the stream on both ends
  expect(await until(async () => (await s.gatewayStreams()) === 0, 20_000)).toBe(true);
  expect(await until(async () => (await s.agentStreams()) === 0, 20_000)).toBe(true);
}

test("a public client pushing at an origin that never reads is paused: gateway and agent stay bounded, the stream is released", async () => {
  const conn = await open("/deaf", { highWaterMark: 8 * MiB });
  conn.on("error", () => {});
  const block = new Uint8Array(MiB).fill(7);
  const target = 384 * MiB;
  const sampler = sampleRss({ gateway: s.gateway.pid, agent: s.agent.pid, relay: s.relay.pid });
  let offered = 0;
  const end = Date.now() + 30_000;
  let stalledSince = Date.now();
  let last = 0;
  while (offered - conn.bufferedAmount < target && Date.now() < end && conn.readyState === "open") {
    offered += MiB;
    if (!conn.send(block)) await Promise.race([conn.drained(), Bun.sleep(500)]);
    const now = offered - conn.bufferedAmount;
    if (now > last) [last, stalledSince] = [now, Date.now()];
    else if (Date.now() - stalledSince > 6000) break; // paused for good: the bound held
  }
  await Bun.sleep(1000);
  const peak = sampler.stop();
  const accepted = offered - conn.bufferedAmount;
  console.log(`slow origin: accepted ${(accepted / MiB).toFixed(0)} MiB of ${target / MiB}; peak RSS MB`, Object.fromEntries(Object.entries(peak).map(([k, v]) => [k, Math.round(v / MiB)])));
  expect(peak.gateway! / MiB).toBeLessThan(250);
  expect(peak.agent! / MiB).toBeLessThan(250);
  expect(peak.relay! / MiB).toBeLessThan(250);
  expect(accepted).toBeLessThan(target); // backpressure reached the client
  conn.terminate();
  await released();
}, 90_000);

test("an origin flooding a public client that never reads is paused: agent and gateway stay bounded, the stream is released", async () => {
  const conn = await open("/flood?n=" + 1024 * MiB);
  conn.on("error", () => {});
  conn.pause(); // never read
  const sampler = sampleRss({ gateway: s.gateway.pid, agent: s.agent.pid, relay: s.relay.pid });
  await Bun.sleep(12_000);
  const peak = sampler.stop();
  console.log(`slow public reader: peak RSS MB`, Object.fromEntries(Object.entries(peak).map(([k, v]) => [k, Math.round(v / MiB)])));
  expect(peak.agent! / MiB).toBeLessThan(250);
  expect(peak.gateway! / MiB).toBeLessThan(250);
  expect(peak.relay! / MiB).toBeLessThan(250);
  conn.terminate();
  await released();
}, 90_000);

test("server speaks first: messages the origin sends right after accepting arrive, in order", async () => {
  for (let i = 0; i < 3; i++) {
    const conn = await open("/hello");
    const got: string[] = [];
    const two = new Promise<void>((r) =>
      conn.on("message", (d) => {
        got.push(typeof d === "string" ? d : new TextDecoder().decode(d));
        if (got.length === 3) r();
      }),
    );
    conn.send("ping-" + i);
    await Promise.race([two, Bun.sleep(10_000)]);
    expect(got).toEqual(['0{"sid":"abc","upgrades":[],"pingInterval":25000}', "40", "ping-" + i]);
    const c = closed(conn);
    conn.close(1000, "bye");
    expect((await c).code).toBe(1000);
  }
  await released();
}, 60_000);

test("an origin that accepts then closes with 4401: the public client sees 4401 and the socket closes", async () => {
  const conn = await open("/reject4401");
  const c = await Promise.race([closed(conn), Bun.sleep(10_000).then(() => null)]);
  expect(c).toEqual({ code: 4401, reason: "unauthorized" });
  await released();
}, 30_000);

test("an origin whose connection drops without a close frame (1006) reaches the client as 1011, not 1000", async () => {
  const conn = await open("/crash");
  const c = closed(conn);
  conn.send("crash");
  const r = await Promise.race([c, Bun.sleep(10_000).then(() => null)]);
  expect(r?.code).toBe(1011);
  await released();
}, 30_000);
