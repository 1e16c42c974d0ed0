/**
 * The supervisor's timing branches, one test each, on a manual clock (issue 18: mutation testing
 * left the renew scheduling and the wall-clock-jump check untested). A real relay emulator and
 * gateway answer on loopback; only time is faked. What a user sees: when the agent renews, what
 * it does when a renewal fails, when it decides the machine slept, the round trip it reports.
 */
import { afterEach, expect, test } from "bun:test";
import { ManualClock } from "../src/agent/clock.ts";
import { type SupervisorHandle, type SupervisorOptions, type TunnelGrant, superviseAgent } from "../src/agent/supervisor.ts";
import { startAgentRelay, type AgentRelay } from "./support/agent-relay.ts";
import { startRecorded } from "./support/supervisor-kit.ts";

let fx: AgentRelay | undefined;
let sup: SupervisorHandle | undefined;
afterEach(async () => {
  await sup?.stop({ graceMs: 0 });
  sup = undefined;
  await fx?.stop();
  fx = undefined;
});

function start(o: Partial<SupervisorOptions> & Pick<SupervisorOptions, "connect" | "renew">, clock: ManualClock) {
  const r = startRecorded(o, clock);
  sup = r.sup;
  return r;
}

async function relay(clock: ManualClock, ttlMs: number): Promise<AgentRelay> {
  fx = await startAgentRelay({ fetch: () => new Response("ok") }, { ttlMs, now: () => clock.now() });
  return fx;
}

async function waitFor(cond: () => boolean, what = "condition", timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not met in time`);
    await Bun.sleep(5);
  }
}
const flush = () => Bun.sleep(20); // lets a renewal's promise chain run (no clock involved)

test("a failed renewal is retried halfway to expiry, and not at all with a second or less left", async () => {
  const clock = new ManualClock(1_000_000);
  const f = await relay(clock, 10_000);
  const at: number[] = [];
  const renew = async () => {
    at.push(clock.now() - 1_000_000);
    throw new Error("management API down");
  };
  const { log, events } = start({ connect: f.connect, renew }, clock);
  await log.next("online");
  clock.advance(7999);
  expect(at).toEqual([]);
  clock.advance(1); // renewDelay: 80 % of 10 s
  expect(at).toEqual([8000]);
  await waitFor(() => events.some((e) => e.event === "token renewal failed"), "failure logged");
  expect(events.find((e) => e.event === "token renewal failed")?.fields).toEqual({ hcPath: f.hcPath, error: "management API down" });
  // 2 s left → retry in 1 s
  clock.advance(999);
  expect(at).toEqual([8000]);
  clock.advance(1);
  expect(at).toEqual([8000, 9000]);
  await waitFor(() => events.filter((e) => e.event === "token renewal failed").length === 2, "second failure logged");
  // exactly 1 s left: no retry — the relay closes at expiry and the loop renews then
  clock.advance(900);
  await flush();
  expect(at).toEqual([8000, 9000]);
  expect(clock.nextDue).not.toBe(9500);
  expect(sup!.state.state).toBe("online");
});

test("a failed renewal with more time left retries at half the time left, then renews in place", async () => {
  const clock = new ManualClock(1_000_000);
  const f = await relay(clock, 100_000);
  let failures = 1;
  const at: number[] = [];
  const renew = async (g: TunnelGrant, o: { rejected: boolean }) => {
    at.push(clock.now() - 1_000_000);
    if (failures-- > 0) throw new Error("try later");
    return f.renew(g, o);
  };
  const { log, events } = start({ connect: f.connect, renew }, clock);
  await log.next("online");
  clock.advance(80_000);
  await waitFor(() => events.some((e) => e.event === "token renewal failed"));
  clock.advance(9_999);
  expect(at).toEqual([80_000]);
  clock.advance(1);
  expect(at).toEqual([80_000, 90_000]);
  await waitFor(() => events.some((e) => e.event === "token renewed"), "renewed");
  const renewed = events.find((e) => e.event === "token renewed")!;
  expect(renewed.fields).toEqual({ hcPath: f.hcPath, expiresInMs: 100_000 });
  expect(f.calls.renew).toEqual([{ rejected: false }]);
  // the next renewal is due at 80 % of the new token's life
  clock.advance(79_999);
  expect(at).toHaveLength(2);
  clock.advance(1);
  expect(at).toHaveLength(3);
  expect(log.of("reconnecting")).toHaveLength(0);
  expect(f.relay.listenerCount(f.hcPath)).toBe(1);
});

test("a renewal naming the same endpoint stays online; another relay host or scheme reconnects at once", async () => {
  for (const change of ["none", "host", "scheme"] as const) {
    const clock = new ManualClock(1_000_000);
    const f = await relay(clock, 100_000);
    const renew = async (g: TunnelGrant, o: { rejected: boolean }) => {
      const t = await f.renew(g, o);
      const endpoint =
        change === "host" ? { ...g.endpoint, host: "127.0.0.1:1" } : change === "scheme" ? { ...g.endpoint, scheme: g.endpoint.scheme === "ws" ? ("wss" as const) : ("ws" as const) } : { ...g.endpoint };
      return { ...t, endpoint, hcPath: g.hcPath };
    };
    const { log, events } = start({ connect: f.connect, renew }, clock);
    await log.next("online");
    clock.advance(80_000);
    if (change === "none") {
      await waitFor(() => events.some((e) => e.event === "token renewed"), "renewed");
      expect(log.of("reconnecting")).toHaveLength(0);
    } else {
      const r = await log.next("reconnecting");
      expect(r).toMatchObject({ inMs: 0, code: "closed", reason: "the tunnel moved to another relay endpoint" });
      expect(events.find((e) => e.event === "tunnel moved")?.fields).toEqual({ hcPath: f.hcPath });
      await waitFor(() => f.relay.listenerCount(f.hcPath) === 0, "old listener closed");
    }
    await sup!.stop({ graceMs: 0 });
    sup = undefined;
    await f.stop();
    fx = undefined;
  }
});

test("the wall clock: a tick up to wakeDriftMs late is normal, one millisecond more is a wake", async () => {
  const clock = new ManualClock(1_000_000);
  const f = await relay(clock, 3_600_000);
  const { log, events } = start({ connect: f.connect, renew: f.renew, tickMs: 5000, wakeDriftMs: 20_000 }, clock);
  await log.next("online");
  // the tick due 5 s after start runs when the clock reads start + 25 s: 20 s late
  clock.jump(25_000);
  clock.advance(0);
  await flush();
  expect(log.of("reconnecting")).toHaveLength(0);
  expect(events.some((e) => e.event === "clock jump")).toBe(false);
  clock.advance(4999); // the next tick is due 5 s after the late one
  clock.advance(1); // …and is punctual
  await flush();
  expect(log.of("reconnecting")).toHaveLength(0);
  clock.jump(25_001);
  clock.advance(0);
  const r = await log.next("reconnecting");
  expect(r).toMatchObject({ inMs: 0, code: "network", reason: "the clock jumped 20 s (sleep / wake?)" });
  expect(events.find((e) => e.event === "clock jump")?.fields).toEqual({ driftMs: 20_001 });
  await log.next("online");
  await waitFor(() => f.relay.listenerCount(f.hcPath) === 1, "one listener after the wake");
  expect(f.calls.connect).toBe(1);
});

test("the default wake threshold is 15 s past a 5 s tick", async () => {
  const clock = new ManualClock(1_000_000);
  const f = await relay(clock, 3_600_000);
  const { log } = start({ connect: f.connect, renew: f.renew }, clock);
  await log.next("online");
  clock.jump(20_000);
  clock.advance(0); // 15 s late
  await flush();
  expect(log.of("reconnecting")).toHaveLength(0);
  clock.jump(20_001);
  clock.advance(0); // 15.001 s late
  expect(await log.next("reconnecting")).toMatchObject({ inMs: 0, reason: "the clock jumped 15 s (sleep / wake?)" });
});

test("the round trip is measured while online, every rttEveryMs, and never with 0", async () => {
  for (const rttEveryMs of [10_000, 0]) {
    const clock = new ManualClock(1_000_000);
    const f = await relay(clock, 3_600_000);
    const { log } = start({ connect: f.connect, renew: f.renew, tickMs: 5000, rttEveryMs, origin: `http://127.0.0.1:${f.origin.port}` }, clock);
    await log.next("online");
    expect((await fetch(f.url)).status).toBe(200); // the gateway opens a tunnel session
    expect(sup!.rttMs).toBeUndefined();
    clock.advance(5000); // 5 s since the last measure: not yet
    await flush();
    expect(sup!.rttMs).toBeUndefined();
    clock.advance(5000);
    if (rttEveryMs > 0) {
      await waitFor(() => sup!.rttMs !== undefined, "rtt measured");
      expect(sup!.rttMs).toBeGreaterThan(0);
      expect(Math.round(sup!.rttMs! * 10)).toBe(sup!.rttMs! * 10); // a tenth of a millisecond
    } else {
      clock.advance(60_000);
      await Bun.sleep(200);
      expect(sup!.rttMs).toBeUndefined();
    }
    await sup!.stop({ graceMs: 0 });
    sup = undefined;
    await f.stop();
    fx = undefined;
  }
});

test("reconnecting on the same claim: a token with under a second left is renewed first, one with a second or more is reused", async () => {
  for (const ttl of [999, 1000]) {
    const clock = new ManualClock(1_000_000);
    const f = await relay(clock, ttl);
    const { log } = start({ connect: f.connect, renew: f.renew }, clock);
    await log.next("online");
    f.relay.faults.dropControlChannels(f.hcPath);
    const r = await log.next("reconnecting");
    expect(r.inMs).toBe(0);
    await log.next("online");
    expect(f.calls.connect).toBe(1);
    expect(f.calls.renew).toEqual(ttl === 999 ? [{ rejected: false }] : []);
    await sup!.stop({ graceMs: 0 });
    sup = undefined;
    await f.stop();
    fx = undefined;
  }
});

test("stop() while the claim is in flight: no listener is opened, no timer left behind", async () => {
  const clock = new ManualClock(1_000_000);
  const f = await relay(clock, 3_600_000);
  const { promise: gate, resolve: open } = Promise.withResolvers<void>();
  const connect = async () => {
    await gate;
    return f.connect();
  };
  const { sup: s, log } = start({ connect, renew: f.renew }, clock);
  await log.next("connecting");
  const stopped = s.stop({ graceMs: 0 });
  open();
  await stopped;
  expect(await s.closed).toBeNull();
  expect(s.state).toEqual({ state: "offline", reason: "stopped" });
  await Bun.sleep(100);
  expect(f.relay.listenerCount(f.hcPath)).toBe(0);
  expect(log.of("online")).toHaveLength(0);
  expect(clock.pending).toBe(0);
});

test("an observer that throws does not stop supervision; stop reports stopping then offline", async () => {
  const clock = new ManualClock(1_000_000);
  const f = await relay(clock, 3_600_000);
  const seen: string[] = [];
  const { sup: s, events } = start(
    {
      connect: f.connect,
      renew: f.renew,
      onState: (st) => {
        seen.push(st.state);
        throw new Error("observer bug");
      },
    },
    clock,
  );
  await waitFor(() => seen.includes("online"), "online");
  expect(events.find((e) => e.event === "online")?.fields).toEqual({ hcPath: f.hcPath, publicUrl: f.url, relay: f.relay.endpoint.host });
  await s.stop({ graceMs: 1234 });
  expect(seen.slice(-2)).toEqual(["stopping", "offline"]);
  expect(events.find((e) => e.event === "stopped")?.fields).toEqual({ cutStreams: 0 });
  expect(s.inFlight).toBe(0);
  await s.stop(); // a second stop after the end is harmless
  expect(s.state).toEqual({ state: "offline", reason: "stopped" });
});

test("a renewed token goes to the relay on the open control channel: one the relay refuses closes it", async () => {
  const clock = new ManualClock(1_000_000);
  const f = await relay(clock, 100_000);
  const renew = async (g: TunnelGrant, o: { rejected: boolean }) => {
    const t = await f.renew(g, o);
    return o.rejected ? t : { ...t, token: t.token.replace(/sig=[^&]+/, "sig=AAAA") };
  };
  const { log } = start({ connect: f.connect, renew }, clock);
  await log.next("online");
  clock.advance(80_000);
  const r = await log.next("reconnecting"); // the relay closed the channel on the bad renewal
  expect(r.reason).toMatch(/Token renewal failed/);
  await log.next("online");
  expect(f.calls.connect).toBe(1);
});

test("stop waits for a stream in flight up to graceMs; a second stop cuts it at once", async () => {
  const clock = new ManualClock(1_000_000);
  const { promise: never } = Promise.withResolvers<Response>();
  fx = await startAgentRelay({ fetch: () => never }, { ttlMs: 3_600_000, now: () => clock.now() });
  const f = fx;
  const { sup: s, log, events } = start({ connect: f.connect, renew: f.renew, origin: `http://127.0.0.1:${f.origin.port}` }, clock);
  await log.next("online");
  const pending = fetch(f.url).catch((e: Error) => e);
  await waitFor(() => s.inFlight === 1, "a stream in flight");
  const first = s.stop({ graceMs: 60_000 });
  expect(await log.next("stopping")).toEqual({ state: "stopping", inFlight: 1, graceMs: 60_000 });
  await Bun.sleep(100);
  expect(s.state.state).toBe("stopping"); // still waiting for the stream (no clock time passed)
  const second = s.stop();
  expect(second).toBe(first);
  await second;
  expect(s.state).toEqual({ state: "offline", reason: "stopped" });
  expect(events.find((e) => e.event === "stopped")?.fields).toEqual({ cutStreams: 1 });
  expect(await s.closed).toBeNull();
  await pending;
});

test("a dropped control channel is logged with its classification and reason", async () => {
  const clock = new ManualClock(1_000_000);
  const f = await relay(clock, 3_600_000);
  const { log, events } = start({ connect: f.connect, renew: f.renew }, clock);
  await log.next("online");
  f.relay.faults.dropControlChannels(f.hcPath, { code: 1011, reason: "maintenance" });
  const r = await log.next("reconnecting");
  const d = events.find((e) => e.event === "disconnected")!;
  expect(d.fields).toEqual({ code: r.code, permanent: false, fix: "none", error: r.reason });
  expect(r.reason.length).toBeGreaterThan(0);
});

test("after a lost hybrid connection, a failed claim is followed by another claim, not the old grant", async () => {
  const clock = new ManualClock(1_000_000);
  const f = await relay(clock, 3_600_000);
  let failNext = false;
  const connect = async () => {
    if (failNext) {
      failNext = false;
      throw new Error("management API unavailable");
    }
    return f.connect();
  };
  const { log } = start({ connect, renew: f.renew }, clock);
  await log.next("online");
  failNext = true;
  f.relay.faults.deleteHc(f.hcPath);
  for (let i = 0; i < 2; i++) clock.advance((await log.next("reconnecting")).inMs);
  await log.next("online");
  const r = log.of("reconnecting");
  expect([r[0]?.code, r[1]?.reason]).toEqual(["entity_deleted", "management API unavailable"]);
  expect(r).toHaveLength(2); // no attempt on the deleted hybrid connection in between
  expect(f.calls.connect).toBe(2);
});

test("sleep / wake with healthy tunnel sessions prunes none (nothing logged); a wake while claiming is harmless", async () => {
  const clock = new ManualClock(1_000_000);
  const f = await relay(clock, 3_600_000);
  const { promise: gate, resolve: open } = Promise.withResolvers<void>();
  let first = true;
  const connect = async () => {
    if (first) {
      first = false;
      await gate;
    }
    return f.connect();
  };
  const { log, events } = start({ connect, renew: f.renew, origin: `http://127.0.0.1:${f.origin.port}` }, clock);
  await log.next("connecting");
  clock.jump(60_000);
  expect(() => clock.advance(0)).not.toThrow(); // the tick finds no phase to end
  open();
  await log.next("online");
  expect((await fetch(f.url)).status).toBe(200);
  clock.jump(60_000);
  clock.advance(0);
  await log.next("reconnecting");
  await log.next("online");
  await Bun.sleep(200);
  expect(events.filter((e) => e.event === "sessions pruned")).toEqual([]);
});

test("no round trip is measured without a session, nor while reconnecting", async () => {
  const clock = new ManualClock(1_000_000);
  const f = await relay(clock, 3_600_000);
  const { log } = start(
    { connect: f.connect, renew: f.renew, tickMs: 5000, rttEveryMs: 10_000, origin: `http://127.0.0.1:${f.origin.port}`, backoff: { baseMs: 600_000, capMs: 600_000, random: () => 1 - Number.EPSILON } },
    clock,
  );
  await log.next("online");
  clock.advance(10_000); // no session yet
  await flush();
  expect(sup!.rttMs).toBeUndefined();
  expect((await fetch(f.url)).status).toBe(200);
  f.relay.faults.dropControlChannels(f.hcPath);
  await log.next("reconnecting");
  clock.advance(20_000); // a session exists, but the agent is not online
  await Bun.sleep(200);
  expect(sup!.rttMs).toBeUndefined();
});

test("stop() while the control channel opens: the new listener is closed, not left listening", async () => {
  const clock = new ManualClock(1_000_000);
  const f = await relay(clock, 3_600_000);
  let s!: SupervisorHandle;
  let stopped: Promise<void> | undefined;
  const connect = async () => {
    const g = await f.connect();
    setTimeout(() => (stopped = s.stop({ graceMs: 0 })), 0); // lands while the WebSocket opens
    return g;
  };
  const started = start({ connect, renew: f.renew }, clock);
  s = started.sup;
  await waitFor(() => stopped !== undefined, "stop called");
  await stopped;
  // the open under way completes (or fails) on its own time: watch the relay for 0.8 s
  for (let i = 0; i < 20; i++) {
    await Bun.sleep(40);
    expect(f.relay.listenerCount(f.hcPath)).toBe(0);
  }
  expect(s.state).toEqual({ state: "offline", reason: "stopped" });
  expect(await s.closed).toBeNull();
  // (whether "online" was reported first depends on which lands first; the listener must go either way)
  expect(started.log.all.at(-1)).toEqual({ state: "offline", reason: "stopped" });
});

test("after a permanent failure (exitOnFail), stop() keeps the failure; `await using` stops a running agent", async () => {
  const clock = new ManualClock(1_000_000);
  const bad = Object.assign(new Error("the API key was refused"), { code: "invalid_api_key", retryable: false });
  const { sup: s } = start({ connect: async () => Promise.reject(bad), renew: f0, exitOnFail: true }, clock);
  expect(await s.closed).toBe(bad);
  await s.stop();
  expect(s.state).toEqual({ state: "offline", reason: bad.message, error: bad });
  sup = undefined;

  const f = await relay(clock, 3_600_000);
  const states: string[] = [];
  {
    await using s2 = superviseAgent({ origin: "http://127.0.0.1:9", hostHeader: "rewrite", clock, connect: f.connect, renew: f.renew, onState: (x) => states.push(x.state) });
    await waitFor(() => states.includes("online"), "online");
    void s2;
  }
  expect(states.slice(-2)).toEqual(["stopping", "offline"]);
});
const f0 = async (): Promise<never> => {
  throw new Error("renew must not be called");
};

test("a renewal that completes after the control channel dropped is kept for the next channel, not sent on the old one", async () => {
  for (const outcome of ["ok", "fail"] as const) {
    const clock = new ManualClock(1_000_000);
    const f = await relay(clock, 100_000);
    const { promise: gate, resolve: release } = Promise.withResolvers<void>();
    let calls = 0;
    const renew = async (g: TunnelGrant, o: { rejected: boolean }) => {
      calls++;
      if (calls === 1) {
        await gate;
        if (outcome === "fail") throw new Error("management API down");
      }
      return f.renew(g, o);
    };
    const { log, events } = start({ connect: f.connect, renew, backoff: { baseMs: 600_000, capMs: 600_000, random: () => 1 - Number.EPSILON } }, clock);
    await log.next("online");
    clock.advance(80_000); // the renewal starts…
    expect(calls).toBe(1);
    f.relay.faults.dropControlChannels(f.hcPath); // …the channel drops meanwhile
    await log.next("reconnecting");
    release();
    if (outcome === "ok") {
      await waitFor(() => events.some((e) => e.event === "token renewed"), "renewal adopted");
      expect(events.some((e) => e.event === "token renewal failed")).toBe(false);
    } else {
      await waitFor(() => events.some((e) => e.event === "token renewal failed"), "failure logged");
      clock.advance(20_000); // no retry is armed for a channel that is gone
      await flush();
      expect(calls).toBe(1);
    }
    await sup!.stop({ graceMs: 0 });
    sup = undefined;
    await f.stop();
    fx = undefined;
  }
});

test("keep-alive: a relay that never answers pings makes the listener fall back to pongs, and the agent says so", async () => {
  const clock = new ManualClock(1_000_000);
  const f = await relay(clock, 3_600_000);
  const { log, events } = start({ connect: f.connect, renew: f.renew, keepAlive: { keepAliveMs: 30, pingsBeforePong: 1, deadAfterIntervals: 1000 } }, clock);
  await log.next("online");
  f.relay.faults.pingsUnanswered(f.hcPath, true);
  await waitFor(() => events.some((e) => e.event === "keep-alive fallback"), "fallback logged");
  const e = events.find((x) => x.event === "keep-alive fallback")!;
  expect(e.fields?.mode).toBe("pong");
  expect(String(e.fields?.why).length).toBeGreaterThan(10);
  f.relay.faults.pingsUnanswered(f.hcPath, false); // lets the stop's close handshake through
});

test("a token the relay refuses after a near-expiry renewal is retried once with rejected: true before giving up", async () => {
  const clock = new ManualClock(1_000_000);
  const f = await relay(clock, 999);
  const forged = (t: string) => t.replace(/sig=[^&]+/, "sig=AAAA");
  const renew = async (g: TunnelGrant, o: { rejected: boolean }) => {
    const t = await f.renew(g, o);
    return { ...t, token: forged(t.token) };
  };
  const { sup: s, log } = start({ connect: f.connect, renew, exitOnFail: true }, clock);
  await log.next("online");
  f.relay.faults.dropControlChannels(f.hcPath);
  const err = await s.closed;
  expect((err as { code?: string }).code).toBe("unauthorized");
  expect(f.calls.renew).toEqual([{ rejected: false }, { rejected: true }]);
});
