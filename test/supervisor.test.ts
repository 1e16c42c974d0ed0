/**
 * The supervisor with a manual clock (no test sleeps): backoff sequence, permanent failures,
 * renewal timing, the fix chosen for each relay close, wall-clock jumps, backoff reset after a
 * stable minute. A real relay emulator answers (real sockets on loopback); only time is faked.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { ManualClock } from "../src/agent/clock.ts";
import { newKey } from "../src/emulator/entities.ts";
import { resourceUri } from "../src/hc/address.ts";
import { createSasToken } from "../src/hc/sas.ts";
import { type SupervisorHandle, type SupervisorOptions, type TunnelGrant, superviseAgent } from "../src/agent/supervisor.ts";
import { startAgentRelay, type AgentRelay } from "./support/agent-relay.ts";
import { StateLog } from "./support/states.ts";

const TOP = 1 - Number.EPSILON;
let fx: AgentRelay | undefined;
let sup: SupervisorHandle | undefined;

afterEach(async () => {
  await sup?.stop({ graceMs: 0 });
  sup = undefined;
  await fx?.stop();
  fx = undefined;
});

function start(o: Partial<SupervisorOptions> & Pick<SupervisorOptions, "connect" | "renew">, clock: ManualClock, log = new StateLog()) {
  sup = superviseAgent({ origin: "http://127.0.0.1:9", hostHeader: "rewrite", clock, onState: log.push, backoff: { random: () => TOP }, ...o });
  return { sup, log };
}

async function relay(clock: ManualClock, ttlMs = 3_600_000): Promise<AgentRelay> {
  fx = await startAgentRelay({ fetch: () => new Response("ok") }, { ttlMs, now: () => clock.now() });
  return fx;
}

/** Resolves when `fn` has been called `n` times. */
function counted<A extends unknown[], R>(fn: (...a: A) => Promise<R>) {
  const calls: A[] = [];
  let wake: (() => void) | null = null;
  const wrapped = (...a: A) => {
    calls.push(a);
    wake?.();
    return fn(...a);
  };
  const until = async (n: number) => {
    const deadline = Date.now() + 10_000;
    while (calls.length < n) {
      if (Date.now() > deadline) throw new Error(`only ${calls.length} calls`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 100);
        wake = () => (clearTimeout(t), r());
      });
    }
  };
  return { fn: wrapped, calls, until };
}

const never = async (): Promise<never> => {
  throw new Error("renew must not be called");
};

describe("supervisor (manual clock)", () => {
  test("retryable connect failures back off with full jitter, doubling to the cap, never giving up", async () => {
    const clock = new ManualClock(1_000_000);
    const connect = counted(async (): Promise<TunnelGrant> => {
      throw Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" });
    });
    const { log } = start({ connect: connect.fn, renew: never, backoff: { random: () => 0.5 } }, clock);
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      const r = await log.next("reconnecting");
      expect(r.code).toBe("ECONNREFUSED");
      expect(r.attempt).toBe(i + 1);
      delays.push(r.inMs);
      expect(connect.calls.length).toBe(i + 1);
      clock.advance(r.inMs - 1);
      expect(connect.calls.length).toBe(i + 1); // not a millisecond early
      clock.advance(1);
      await connect.until(i + 2);
    }
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 15_000, 15_000, 15_000]);
    await sup!.stop();
    expect(sup!.state).toEqual({ state: "offline", reason: "stopped" });
    expect(await sup!.closed).toBeNull();
  });

  test("exitOnFail: a permanent failure stops with the error; without it the supervisor keeps trying", async () => {
    const clock = new ManualClock(0);
    const bad = Object.assign(new Error("the API key was refused"), { code: "invalid_api_key", retryable: false });
    const connect = counted(async (): Promise<TunnelGrant> => {
      throw bad;
    });
    const { sup: s1, log } = start({ connect: connect.fn, renew: never, exitOnFail: true }, clock);
    expect(await s1.closed).toBe(bad);
    expect(s1.state).toEqual({ state: "offline", reason: bad.message, error: bad });
    expect(log.of("reconnecting")).toHaveLength(0);
    expect(connect.calls.length).toBe(1);

    const { log: log2 } = start({ connect: connect.fn, renew: never }, clock);
    const r = await log2.next("reconnecting");
    expect(r.code).toBe("invalid_api_key");
    clock.advance(r.inMs);
    await connect.until(3);
  });

  test("goes online and renews at 80% of each token's lifetime, in place", async () => {
    const clock = new ManualClock(Date.now());
    const f = await relay(clock, 100_000);
    const renew = counted(f.renew);
    const events: string[] = [];
    const { log } = start({ connect: f.connect, renew: renew.fn, log: (e) => events.push(e) }, clock);
    const online = await log.next("online");
    expect(online).toEqual({ state: "online", publicUrl: f.url, sessionId: "s-1" });
    expect(f.relay.listenerCount(f.hcPath)).toBe(1);
    for (let i = 1; i <= 3; i++) {
      clock.advance(79_999);
      expect(renew.calls.length).toBe(i - 1);
      clock.advance(1);
      expect(renew.calls.length).toBe(i);
      expect(renew.calls[i - 1]![1]).toEqual({ rejected: false });
      await waitFor(() => events.filter((e) => e === "token renewed").length === i);
    }
    expect(f.relay.listenerCount(f.hcPath)).toBe(1);
    expect(f.calls.connect).toBe(1);
    expect(log.of("reconnecting")).toHaveLength(0);
  });

  test("token expired (1008) → renew with rejected: true, then online again on the same claim", async () => {
    const clock = new ManualClock(Date.now());
    const f = await relay(clock);
    const { log } = start({ connect: f.connect, renew: f.renew, backoff: { random: () => 0 } }, clock);
    await log.next("online");
    expect(f.relay.faults.expireTokens(f.hcPath)).toBe(1);
    const r = await log.next("reconnecting");
    expect(r).toMatchObject({ code: "token_expired", inMs: 0 });
    await log.next("online");
    expect(f.calls.renew).toEqual([{ rejected: true }]);
    expect(f.calls.connect).toBe(1);
    expect(f.relay.listenerCount(f.hcPath)).toBe(1);
  });

  test("hybrid connection deleted (1001) → connect() again, then online", async () => {
    const clock = new ManualClock(Date.now());
    const f = await relay(clock);
    const { log } = start({ connect: f.connect, renew: f.renew }, clock);
    await log.next("online");
    expect(f.relay.faults.deleteHc(f.hcPath)).toBe(true);
    const r = await log.next("reconnecting");
    expect(r.code).toBe("entity_deleted");
    expect(r.inMs).toBeLessThanOrEqual(1000);
    clock.advance(r.inMs);
    expect(await log.next("online")).toMatchObject({ sessionId: "s-2" });
    expect(f.calls.connect).toBe(2);
    expect(f.relay.listenerCount(f.hcPath)).toBe(1);
  });

  test("a renewal that names another hybrid connection (tunnel moved) reconnects there at once", async () => {
    const clock = new ManualClock(Date.now());
    const f = await relay(clock, 100_000);
    const moved = `${f.hcPath}-b`;
    const key = newKey();
    f.relay.entities.upsert({ path: moved, rules: [{ name: "listen", rights: ["Listen"], primaryKey: key }] });
    const renew = async () => ({
      hcPath: moved,
      token: createSasToken(resourceUri(f.relay.endpoint, moved), "listen", key, Math.floor(Date.now() / 1000) + 3600),
      expiresAt: clock.now() + 100_000,
    });
    const { log } = start({ connect: f.connect, renew }, clock);
    await log.next("online");
    clock.advance(80_000);
    expect(await log.next("reconnecting")).toMatchObject({ inMs: 0, code: "closed" });
    await log.next("online");
    await waitFor(() => f.relay.listenerCount(moved) === 1 && f.relay.listenerCount(f.hcPath) === 0);
    expect(f.calls.connect).toBe(1);
  });

  test("a token the relay refuses (401) → renew rejected; refused again → permanent with exitOnFail", async () => {
    const clock = new ManualClock(Date.now());
    const f = await relay(clock);
    const forged = (t: string) => t.replace(/sig=[^&]+/, "sig=AAAA");
    const connect = async () => {
      const g = await f.connect();
      return { ...g, token: forged(g.token) };
    };
    const renew = async (g: TunnelGrant, o: { rejected: boolean }) => {
      const t = await f.renew(g, o);
      return { ...t, token: forged(t.token) };
    };
    const { sup: s, log } = start({ connect, renew, exitOnFail: true, backoff: { random: () => 0 } }, clock);
    const err = await s.closed;
    expect((err as { code?: string }).code).toBe("unauthorized");
    expect(f.calls.renew).toEqual([{ rejected: true }]);
    expect(log.of("reconnecting").map((r) => r.code)).toEqual(["unauthorized"]);
    expect(log.of("online")).toHaveLength(0);
  });

  test("a wall-clock jump (sleep / wake) reconnects at once, online or while backing off", async () => {
    const clock = new ManualClock(Date.now());
    const f = await relay(clock);
    const connect = counted(f.connect);
    const { log } = start({ connect: connect.fn, renew: f.renew, tickMs: 5000, backoff: { baseMs: 60_000, capMs: 60_000, random: () => TOP } }, clock);
    await log.next("online");
    clock.advance(5000); // a punctual tick is no jump
    expect(log.of("reconnecting")).toHaveLength(0);
    clock.jump(40_000);
    clock.advance(5000);
    expect(await log.next("reconnecting")).toMatchObject({ inMs: 0, code: "network" });
    await log.next("online");
    await waitFor(() => f.relay.listenerCount(f.hcPath) === 1);

    // while waiting 60 s to retry, a jump retries right away
    f.relay.faults.dropControlChannels(f.hcPath, "abrupt");
    expect(await log.next("reconnecting")).toMatchObject({ code: "network", inMs: 60_000 });
    const t0 = clock.now();
    clock.jump(30_000);
    clock.advance(5000);
    expect(await log.next("reconnecting")).toMatchObject({ inMs: 0 });
    await log.next("online");
    expect(clock.now() - t0).toBe(35_000); // well before the 60 s backoff ran out
    expect(connect.calls.length).toBe(1); // same claim throughout
  });

  test("a connection up for 60 s resets the backoff; quick drops keep climbing", async () => {
    const clock = new ManualClock(Date.now());
    const f = await relay(clock);
    const { log } = start({ connect: f.connect, renew: f.renew }, clock);
    const dropAndReconnect = async () => {
      f.relay.faults.dropControlChannels(f.hcPath);
      const r = await log.next("reconnecting");
      clock.advance(r.inMs);
      await log.next("online");
      return r.inMs;
    };
    await log.next("online");
    expect(await dropAndReconnect()).toBe(1000);
    expect(await dropAndReconnect()).toBe(2000);
    clock.advance(59_000);
    expect(await dropAndReconnect()).toBe(4000);
    clock.advance(60_000);
    expect(await dropAndReconnect()).toBe(1000);
  });

  test("stop() while backing off ends at once", async () => {
    const clock = new ManualClock(0);
    const { sup: s, log } = start({ connect: async () => Promise.reject(new Error("down")), renew: never }, clock);
    await log.next("reconnecting");
    await s.stop();
    expect(s.state.state).toBe("offline");
    expect(await s.closed).toBeNull();
    expect(clock.pending).toBe(0); // no timer left behind
  });
});

async function waitFor(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await Bun.sleep(5);
  }
}
