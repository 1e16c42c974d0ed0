/**
 * Issue 12 item 5 through the gateway: a hostile agent (the project's own listener and Session,
 * plus forged frames) sends PINGs with large payloads, or floods PINGs while it does not read the
 * PONGs. The in-memory rules are in test/tunnel-v2-session.test.ts (PING / PONG); here the real
 * gateway, relay emulator and a second, good tunnel on the same gateway take part.
 */
import { afterEach, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { encodeFrames, FrameType } from "../src/tunnel/frame.ts";
import { Session } from "../src/tunnel/session.ts";
import type { WsConnection } from "../src/ws/client.ts";
import { startHostileStack, type HostileStack } from "./support/hostile-stack.ts";

let h: HostileStack | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

const rssMb = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"))![1]) / 1024;

/** An agent session that answers "ok"; `then` runs on the connection once the hello exchange is done. */
function pingAgent(then: (conn: WsConnection) => void, closes: Array<[number, string]>) {
  return (conn: WsConnection) => {
    const session = new Session(conn, {
      role: "agent",
      onStream: (s) => {
        s.discardBody();
        s.sendResponse({ status: 200, headers: [] });
        void s.write(new TextEncoder().encode("ok")).then(() => s.end());
      },
    });
    conn.on("message", (d) => session.handleMessage(d as Uint8Array));
    conn.on("close", (code, reason) => {
      closes.push([code, String(reason)]);
      session.handleClose("closed");
    });
    void session.ready.then(() => setTimeout(() => then(conn), 200));
  };
}

test("a PING with a 1 MiB payload: the gateway closes that session as a protocol error (1002); the next request dials a new one", async () => {
  const closes: Array<[number, string]> = [];
  let first = true;
  h = await startHostileStack(
    pingAgent((conn) => {
      if (!first) return;
      first = false;
      conn.send(encodeFrames([{ type: FrameType.PING, stream: 0, payload: new Uint8Array(1 << 20) }]));
    }, closes),
    { pool: { min: 1 } },
  );
  expect(await (await fetch(`${h.badUrl}/a`)).text()).toBe("ok");
  for (let i = 0; i < 50 && closes.length === 0; i++) await Bun.sleep(100);
  expect(closes[0]?.[0]).toBe(1002);
  expect(closes[0]?.[1]).toContain("PING payload of 1048576 bytes");
  expect(await (await fetch(`${h.badUrl}/b`)).text()).toBe("ok");
  expect(await (await fetch(`${h.goodUrl}/c`)).text()).toBe("good /c");
}, 60_000);

test("a PING flood (200,000 PINGs) from an agent that does not read the PONGs: gateway memory stays bounded, the other tunnel serves", async () => {
  const closes: Array<[number, string]> = [];
  let sent = 0;
  let done!: () => void;
  const flooded = new Promise<void>((r) => (done = r));
  h = await startHostileStack(
    pingAgent(async (conn) => {
      if (sent) return;
      conn.pause(); // never read the PONGs
      const batch = encodeFrames(Array.from({ length: 1000 }, (_, i) => ({ type: FrameType.PING, stream: 0, payload: new Uint8Array(8).fill(i & 255) })));
      for (let i = 0; i < 200 && closes.length === 0; i++) {
        conn.send(batch);
        sent += 1000;
        if (i % 10 === 9) await conn.drained().catch(() => {});
      }
      done();
    }, closes),
    { pool: { min: 1 } },
  );
  expect(await (await fetch(`${h.goodUrl}/warm`)).text()).toBe("good /warm");
  const before = rssMb();
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, rssMb())), 50);
  expect(await (await fetch(`${h.badUrl}/a`)).text()).toBe("ok");
  await Promise.race([flooded, Bun.sleep(30_000)]);
  await Bun.sleep(500);
  const good = await fetch(`${h.goodUrl}/during`);
  clearInterval(sampler);
  expect(await good.text()).toBe("good /during");
  expect(sent).toBe(200_000);
  console.log(`PING flood: ${sent} PINGs, test process RSS ${before.toFixed(0)} MB → peak ${peak.toFixed(0)} MB`);
  // 200,000 PINGs answered in full would queue 200,000 PONGs (≥ 3.4 MB of frames plus their
  // objects); the bound is generous: the whole test process (relay, gateway, both agents)
  expect(peak - before).toBeLessThan(150);
}, 90_000);
