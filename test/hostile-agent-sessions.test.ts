/**
 * Hostile agents against the gateway's session pool (issue 12 items 7 and 8), each built from the
 * project's own listener and Session on a second tunnel of the same gateway, next to a good tunnel
 * served by the real agent:
 *  - an agent that answers every session with GOAWAY at once: the pool holds at most its cap of
 *    sessions for that tunnel (the pool's gauge in /metrics, the process's open fds), dials at a
 *    bounded rate, requests fail with stable codes, and the good tunnel keeps serving;
 *  - an agent that accepts the rendezvous and never says hello: the request ends within the
 *    first-byte limit (504 `tunnel_timeout`), or at the hello deadline (502
 *    `tunnel_handshake_timeout`, the session closed), and nothing is left open.
 */
import { afterEach, expect, test } from "bun:test";
import { Session } from "../src/tunnel/session.ts";
import type { WsConnection } from "../src/ws/client.ts";
import { openFds, startHostileStack, type HostileStack } from "./support/hostile-stack.ts";

let h: HostileStack | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

/** An agent session that says hello and then GOAWAY at once, and never closes the connection. */
function goAwayAgent(conn: WsConnection): void {
  const session = new Session(conn, { role: "agent", onStream: (s) => s.sendResponse({ status: 200, headers: [] }) });
  conn.on("message", (d) => session.handleMessage(d as Uint8Array));
  conn.on("close", () => session.handleClose("closed"));
  session.goAway();
}

test("an agent that answers every session with GOAWAY: sessions for its tunnel stay under the cap, dials are rate-limited, stable codes, the other tunnel keeps serving", async () => {
  const cap = 4;
  const burst = 4;
  const rate = 4;
  h = await startHostileStack(goAwayAgent, { ttfbMs: 3000, pool: { maxSessions: cap, dialBurst: burst, dialsPerSecond: rate } });
  const stack = h;
  // warm up the good tunnel so its sessions and fds are counted in the baseline
  expect(await (await fetch(`${stack.goodUrl}/warm`)).text()).toBe("good /warm");
  const fds0 = openFds();
  const started = Date.now();
  let maxSessions = 0;
  let maxFds = 0;
  const codes = new Map<string, number>();
  let goodOk = 0;
  const sample = () => {
    maxSessions = Math.max(maxSessions, stack.badSessions());
    maxFds = Math.max(maxFds, openFds());
  };
  const sampler = setInterval(sample, 20);
  // 6 clients hammering the hostile tunnel for a bounded number of rounds, a client on the good one
  const bad = Array.from({ length: 6 }, async () => {
    for (let i = 0; i < 10; i++) {
      const r = await fetch(`${stack.badUrl}/x${i}`);
      await r.arrayBuffer();
      const code = `${r.status} ${r.headers.get("x-azhexgate-error")}`;
      codes.set(code, (codes.get(code) ?? 0) + 1);
    }
  });
  const good = (async () => {
    for (let i = 0; i < 40; i++) {
      const r = await fetch(`${stack.goodUrl}/p${i}`);
      if (r.status === 200 && (await r.text()) === `good /p${i}`) goodOk++;
      await Bun.sleep(10);
    }
  })();
  await Promise.all([...bad, good]);
  clearInterval(sampler);
  sample();
  const elapsed = (Date.now() - started) / 1000;
  // every hostile request failed with a stable code: refused by the agent, or no slot in time
  for (const code of codes.keys()) expect(["502 tunnel_offline", "503 tunnel_session_limit", "504 tunnel_timeout"]).toContain(code);
  expect([...codes.values()].reduce((a, b) => a + b, 0)).toBe(60);
  // the pool never held more than its cap for that tunnel; fds grew by at most a few per session
  expect(maxSessions).toBeLessThanOrEqual(cap);
  expect(maxFds - fds0).toBeLessThan(cap * 6 + 20);
  // the dial rate: at most the burst, then `rate` a second (+1 for rounding) — not one per request
  expect(stack.accepted).toBeLessThanOrEqual(burst + Math.ceil(elapsed * rate) + 1);
  // the good tunnel served every request meanwhile
  expect(goodOk).toBe(40);
  // the hostile sessions are closed by the gateway once drained: at most the cap stay open
  // (until the next request or liveness tick sweeps them), never one per request
  expect(stack.accepted - stack.closed).toBeLessThanOrEqual(cap);
  console.log(`GOAWAY agent: ${[...codes].map(([c, n]) => `${n}× ${c}`).join(", ")}; ${stack.accepted} rendezvous in ${elapsed.toFixed(1)} s, at most ${maxSessions} sessions, fds +${maxFds - fds0}`);
}, 90_000);

test("an agent that keeps one response open per session and sends GOAWAY: the pool stops at its cap, a request past it waits, then 503 tunnel_session_limit; the other tunnel keeps serving", async () => {
  const cap = 3;
  h = await startHostileStack(
    (conn) => {
      // answers the head, never ends the body (the stream stays open), then goes away
      const session: Session = new Session(conn, {
        role: "agent",
        onStream: (s) => {
          s.discardBody();
          s.sendResponse({ status: 200, headers: [["content-type", "text/plain"]] });
          void s.write(new TextEncoder().encode("x"));
          session.goAway();
        },
      });
      conn.on("message", (d) => session.handleMessage(d as Uint8Array));
      conn.on("close", () => session.handleClose("closed"));
    },
    { ttfbMs: 2000, pool: { maxSessions: cap, dialBurst: 10, dialsPerSecond: 10 } },
  );
  const stack = h;
  const held: AbortController[] = [];
  const open: Response[] = []; // kept referenced: a collected Response cancels its body
  for (let i = 0; i < cap; i++) {
    const ac = new AbortController();
    held.push(ac);
    const r = await fetch(`${stack.badUrl}/held${i}`, { signal: ac.signal });
    expect(r.status).toBe(200); // its body never ends while the session drains
    open.push(r);
  }
  expect(stack.badSessions()).toBe(cap);
  const t0 = Date.now();
  const over = await fetch(`${stack.badUrl}/over`);
  const waited = Date.now() - t0;
  const code = `${over.status} ${over.headers.get("x-azhexgate-error")}`;
  expect(code).toBe("503 tunnel_session_limit");
  expect(((await over.json()) as { error: { message: string } }).error.message).toContain("at most 3 sessions");
  expect(waited).toBeGreaterThanOrEqual(1500); // it waited for a slot (the limit is 2 s), it did not dial
  expect(stack.accepted).toBe(cap);
  expect(stack.badSessions()).toBeLessThanOrEqual(cap);
  expect(await (await fetch(`${stack.goodUrl}/meanwhile`)).text()).toBe("good /meanwhile");
  console.log(`holding agent: ${cap} sessions held, the next request ${code} after ${waited} ms`);
  // the clients go away: the streams end, the drained sessions are closed, a slot is free again
  for (const ac of held) ac.abort();
  open.length = 0;
  for (let i = 0; i < 50 && stack.closed < cap; i++) await Bun.sleep(100);
  expect(stack.closed).toBe(cap);
  expect(stack.gateway.activeStreams).toBe(0);
  const again = new AbortController();
  const r = await fetch(`${stack.badUrl}/again`, { signal: again.signal });
  expect(r.status).toBe(200);
  again.abort();
}, 30_000);

test("an agent that never sends its hello: the request ends 504 tunnel_timeout within the first-byte limit, and the session is closed", async () => {
  h = await startHostileStack(() => {}, { ttfbMs: 1500, pool: { helloMs: 4000 } });
  const t0 = Date.now();
  const r = await fetch(`${h.badUrl}/hang`);
  const took = Date.now() - t0;
  expect(r.status).toBe(504);
  expect(r.headers.get("x-azhexgate-error")).toBe("tunnel_timeout");
  expect(took).toBeLessThan(15_000); // before: never answered
  // the hello deadline closes the silent session: nothing stays open
  for (let i = 0; i < 100 && h.closed < h.accepted; i++) await Bun.sleep(100);
  expect(h.accepted).toBe(1);
  expect(h.closed).toBe(1);
  expect(h.gateway.activeStreams).toBe(0);
  expect(h.badSessions()).toBe(0);
  // the good tunnel on the same gateway is unaffected
  expect(await (await fetch(`${h.goodUrl}/ok`)).text()).toBe("good /ok");
}, 60_000);

test("an agent that never sends its hello, hello deadline shorter than the limit: 502 tunnel_handshake_timeout, the session closed; the next request dials again", async () => {
  h = await startHostileStack(() => {}, { ttfbMs: 30_000, pool: { helloMs: 1000 } });
  for (let i = 0; i < 2; i++) {
    const r = await fetch(`${h.badUrl}/hang`, { headers: { accept: "application/json" } });
    expect(r.status).toBe(502);
    expect(r.headers.get("x-azhexgate-error")).toBe("tunnel_handshake_timeout");
    expect(((await r.json()) as { error: { message: string } }).error.message).toContain("handshake");
  }
  for (let i = 0; i < 100 && h.closed < h.accepted; i++) await Bun.sleep(100);
  expect(h.accepted).toBe(2);
  expect(h.closed).toBe(2);
  expect(h.gateway.activeStreams).toBe(0);
  expect(h.badSessions()).toBe(0);
}, 60_000);
