/**
 * The supervisor's timing branches, one test each, on a manual clock (issue 18: mutation testing
 * left the renew scheduling and the wall-clock-jump check untested). A real relay emulator and
 * gateway answer on loopback; only time is faked. What a user sees: when the agent renews, what
 * it does when a renewal fails, when it decides the machine slept, the round trip it reports.
 */
import { afterEach, expect, test } from "bun:test";
import { ManualClock } from "../src/agent/clock.ts";
import type { TunnelGrant } from "../src/agent/supervisor.ts";
import { clockFixture, flush, waitFor } from "./support/supervisor-kit.ts";

const fix = clockFixture();
afterEach(() => fix.cleanup());
const { start, relay } = fix;

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
  expect(fix.sup!.state.state).toBe("online");
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
    await fix.cleanup(); // this round\'s agent and relay
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
    expect(fix.sup!.rttMs).toBeUndefined();
    clock.advance(5000); // 5 s since the last measure: not yet
    await flush();
    expect(fix.sup!.rttMs).toBeUndefined();
    clock.advance(5000);
    if (rttEveryMs > 0) {
      await waitFor(() => fix.sup!.rttMs !== undefined, "rtt measured");
      expect(fix.sup!.rttMs).toBeGreaterThan(0);
      expect(Math.round(fix.sup!.rttMs! * 10)).toBe(fix.sup!.rttMs! * 10); // a tenth of a millisecond
    } else {
      clock.advance(60_000);
      await Bun.sleep(200);
      expect(fix.sup!.rttMs).toBeUndefined();
    }
    await fix.cleanup(); // this round\'s agent and relay
  }
});
