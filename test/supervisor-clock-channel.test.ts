/**
 * The supervisor's control channel, stop and renewal ordering on a manual clock (the renew
 * scheduling and the wall-clock checks are in supervisor-clock.test.ts; issue 18). A real relay
 * emulator and gateway answer on loopback; only time is faked. What a user sees: a reconnect on the
 * same claim, stop at every stage, a renewal racing a dropped channel, the keep-alive fallback.
 */
import { afterEach, expect, test } from "bun:test";
import { ManualClock } from "../src/agent/clock.ts";
import { type SupervisorHandle, type TunnelGrant, superviseAgent } from "../src/agent/supervisor.ts";
import { startAgentRelay } from "./support/agent-relay.ts";
import { clockFixture, flush, waitFor } from "./support/supervisor-kit.ts";

const fix = clockFixture();
afterEach(() => fix.cleanup());
const { start, relay } = fix;

const f0 = async (): Promise<never> => {
  throw new Error("renew must not be called");
};

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
    await fix.cleanup(); // this round\'s agent and relay
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
  const f = await startAgentRelay({ fetch: () => never }, { ttlMs: 3_600_000, now: () => clock.now() });
  fix.fx = f;
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
  expect(fix.sup!.rttMs).toBeUndefined();
  expect((await fetch(f.url)).status).toBe(200);
  f.relay.faults.dropControlChannels(f.hcPath);
  await log.next("reconnecting");
  clock.advance(20_000); // a session exists, but the agent is not online
  await Bun.sleep(200);
  expect(fix.sup!.rttMs).toBeUndefined();
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
  fix.sup = undefined;

  const f = await relay(clock, 3_600_000);
  const states: string[] = [];
  {
    await using s2 = superviseAgent({ origin: "http://127.0.0.1:9", hostHeader: "rewrite", clock, connect: f.connect, renew: f.renew, onState: (x) => states.push(x.state) });
    await waitFor(() => states.includes("online"), "online");
    void s2;
  }
  expect(states.slice(-2)).toEqual(["stopping", "offline"]);
});

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
    await fix.cleanup(); // this round\'s agent and relay
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
