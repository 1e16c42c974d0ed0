/**
 * The gateway's session pool (src/tunnel/pool.ts) driven by an in-process dial: each dial makes a
 * message pipe whose far end is a real agent Session (test/support/pool-dial.ts), so the pool
 * warms, grows, evicts, drains and refuses as it does over the relay, in milliseconds. Written to
 * kill mutation survivors (issue 18); the end-to-end pool tests (test/liveness.test.ts, the
 * gateway tests) show the same over the emulator.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { PoolClosedError, PoolError, retireDelay } from "../src/tunnel/pool.ts";
import { Dialer, echo, poolGet, poolKit, until } from "./support/pool-dial.ts";
import { tick } from "./support/tunnel-peers.ts";

const { mkPool, closeAll } = poolKit();
afterEach(closeAll);
const get = poolGet;

describe("session pool", () => {
  test("a cold tunnel dials one session; the request is served; the pool then warms to min (2)", async () => {
    const d = new Dialer(echo);
    const { pool } = mkPool(d);
    expect(pool.size).toBe(0);
    expect(await get(pool, "/a")).toEqual({ status: 200, body: "hello /a" });
    expect(d.dials).toBe(1);
    await get(pool); // the next request finds one session (< min): a second is dialed behind it
    expect(await until(() => pool.size === 2)).toBe(true);
    expect(d.dials).toBe(2);
    await get(pool);
    await tick();
    expect(d.dials).toBe(2); // warm: no more dials
    expect(pool.held).toBe(2);
  });

  test("min 1: one session serves everything; requests go to the session with fewest streams", async () => {
    const d = new Dialer(() => {}); // the agent takes streams and never answers
    const { pool } = mkPool(d, { min: 2, max: 2 });
    const s1 = await pool.acquire();
    expect(await pool.acquire()).toBe(s1);
    expect(await until(() => pool.size === 2)).toBe(true);
    await s1.open({ kind: "http", method: "GET", target: "/", headers: [] });
    const s2 = await pool.acquire();
    expect(s2).not.toBe(s1);
    await s2.open({ kind: "http", method: "GET", target: "/", headers: [] });
    await s2.open({ kind: "http", method: "GET", target: "/", headers: [] });
    expect(await pool.acquire()).toBe(s1);
    expect(pool.activeStreams).toBe(3);
    const one = new Dialer(echo);
    const p1 = mkPool(one, { min: 1 }).pool;
    await get(p1);
    await get(p1);
    await tick();
    expect(one.dials).toBe(1);
  });

  test("grows while every session is busy (busyStreams), up to max", async () => {
    const d = new Dialer(() => {});
    const { pool } = mkPool(d, { min: 1, max: 2, busyStreams: 1 });
    const s1 = await pool.acquire();
    await s1.open({ kind: "http", method: "GET", target: "/", headers: [] });
    await tick();
    expect(d.dials).toBe(1); // one stream is not busy until a request finds it so
    expect(await pool.acquire()).toBe(s1); // busy: served here, a second session is dialed
    expect(await until(() => pool.size === 2)).toBe(true);
    const s2 = await pool.acquire();
    expect(s2).not.toBe(s1);
    await s2.open({ kind: "http", method: "GET", target: "/", headers: [] });
    await pool.acquire();
    await tick();
    expect(d.dials).toBe(2); // max reached
    const notBusy = new Dialer(() => {});
    const q = mkPool(notBusy, { min: 1, max: 2, busyStreams: 2 }).pool;
    const t1 = await q.acquire();
    await t1.open({ kind: "http", method: "GET", target: "/", headers: [] });
    expect(await q.acquire()).toBe(t1);
    await tick();
    expect(notBusy.dials).toBe(1); // 1 stream < busyStreams 2: no growth
  });

  test("an agent that never says hello: 502 tunnel_handshake_timeout naming the limit, counted as a failed dial", async () => {
    const d = new Dialer(echo, { silent: true });
    const { pool, events } = mkPool(d, { helloMs: 30 });
    const err = await pool.acquire().catch((e) => e);
    expect(err).toBeInstanceOf(PoolError);
    expect([err.status, err.code]).toEqual([502, "tunnel_handshake_timeout"]);
    expect(err.message).toBe(`The agent accepted the tunnel session but did not complete the handshake within 0.03 s. Restart "azhexgate start"; if it persists, update the agent.`);
    expect(events).toEqual(["hello_timeout"]);
    expect(pool.failedDials).toBe(1);
    expect(d.closes.at(-1)).toEqual([1002, "no hello in time"]);
    expect(pool.size).toBe(0);
  });

  test("a version mismatch is a failed dial too, but not a hello timeout", async () => {
    const d = new Dialer(echo, { versions: [99] });
    const { pool, events } = mkPool(d, { helloMs: 5000 });
    const err = await pool.acquire().catch((e) => e);
    expect(err).not.toBeInstanceOf(PoolError);
    expect(pool.failedDials).toBe(1);
    expect(events).toEqual([]);
  });

  test("a dial that does not finish before the request's deadline: 504 tunnel_timeout; the dial still joins the pool", async () => {
    const d = new Dialer(echo, { delayMs: 80 });
    const { pool } = mkPool(d, { min: 1 });
    const err = await pool.acquire(Date.now() + 10).catch((e) => e);
    expect([err.status, err.code]).toEqual([504, "tunnel_timeout"]);
    expect(err.message).toContain("first-byte limit");
    expect(await until(() => pool.size === 1)).toBe(true);
    // a request waiting on a dial in progress gets that dial's session
    const d2 = new Dialer(echo, { delayMs: 20 });
    const q = mkPool(d2, { min: 1 }).pool;
    const [a, b] = await Promise.all([q.acquire(), q.acquire(Date.now() + 5000)]);
    expect(a).toBe(b);
    expect(d2.dials).toBe(1);
  });

  test("a silent session is evicted after maxMissedPings checks; its streams fail; the next request dials anew", async () => {
    const d = new Dialer(() => {});
    const { pool, events } = mkPool(d, { min: 1, pingMs: 15, maxMissedPings: 2 });
    const s = await pool.acquire();
    const st = await s.open({ kind: "http", method: "GET", target: "/", headers: [] });
    const failed = st.response.catch((e) => e);
    d.mute(0); // the agent's side stops answering
    expect(await until(() => events.includes("evicted"))).toBe(true);
    expect(events).toEqual(["evicted"]);
    expect(s.isClosed).toBe(true);
    expect((await failed).message).toContain("no answer to tunnel pings");
    expect(pool.size).toBe(0);
    const s2 = await pool.acquire();
    expect(s2).not.toBe(s);
    expect(d.dials).toBe(2);
  });

  test("a session that answers is not evicted", async () => {
    const d = new Dialer(echo);
    const { pool, events } = mkPool(d, { min: 1, pingMs: 20, maxMissedPings: 3 });
    await pool.acquire();
    await Bun.sleep(150); // ~7 checks; each PING is answered within a few event-loop turns
    expect(events).toEqual([]);
    expect(pool.size).toBe(1);
  });

  test("the agent's GOAWAY: the session takes no new stream, finishes its stream, then closes; a new one is dialed", async () => {
    const d = new Dialer(() => {});
    const ended: number[] = [];
    const { pool } = mkPool(d, { min: 1, onStreamEnd: (s) => ended.push(s.id) });
    const s = await pool.acquire();
    const st = await s.open({ kind: "http", method: "GET", target: "/", headers: [] });
    await tick();
    d.agents[0]!.goAway();
    await tick();
    expect(s.acceptsStreams).toBe(false);
    const s2 = await pool.acquire();
    expect(s2).not.toBe(s);
    expect(s.isClosed).toBe(false); // its stream is still open
    st.reset(0, "done");
    expect(ended).toEqual([1]);
    expect(s.isClosed).toBe(true);
    expect(d.closes).toContainEqual([1000, "session drained"]);
    expect(pool.size).toBe(1);
  });

  test("a drained session with no stream is closed by the next request or by the pinger", async () => {
    const d = new Dialer(echo);
    const { pool } = mkPool(d, { min: 1, pingMs: 10 });
    const s = await pool.acquire();
    d.agents[0]!.goAway();
    expect(await until(() => s.isClosed)).toBe(true);
    expect(d.closes).toContainEqual([1000, "session drained"]);
    expect(pool.size).toBe(0);
  });

  test("at the cap of sessions held, a request waits for a slot, then 503 tunnel_session_limit", async () => {
    const d = new Dialer(() => {});
    const { pool } = mkPool(d, { min: 1, max: 1, maxSessions: 1 });
    const s = await pool.acquire();
    await s.open({ kind: "http", method: "GET", target: "/", headers: [] });
    await tick(); // the OPEN reached the agent
    d.agents[0]!.goAway(); // draining, one stream open: held, but takes nothing
    await tick();
    const t0 = Date.now();
    const err = await pool.acquire(Date.now() + 40).catch((e) => e);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(30);
    expect([err.status, err.code]).toEqual([503, "tunnel_session_limit"]);
    expect(err.message).toBe(`The agent keeps refusing or closing tunnel sessions; the gateway holds at most 1 sessions and opens at most 2 per second for one tunnel. Retry in a moment; if it persists, restart "azhexgate start".`);
    expect(d.dials).toBe(1);
  });

  test("the dial rate: after the burst, dials wait for tokens (dialsPerSecond)", async () => {
    const d = new Dialer(echo);
    const { pool } = mkPool(d, { min: 1, dialBurst: 2, dialsPerSecond: 5 });
    const dropAgent = async () => {
      const s = await pool.acquire(Date.now() + 30);
      d.agents.at(-1)!.close(1000, "bye"); // the agent closes every session at once
      expect(await until(() => s.isClosed)).toBe(true);
    };
    await dropAgent();
    await dropAgent();
    const err = await pool.acquire(Date.now() + 30).catch((e) => e);
    // two dials in the burst, then one per 200 ms: within 30 ms no third
    expect(d.dials).toBe(2);
    expect(err.code).toBe("tunnel_session_limit");
    await Bun.sleep(200);
    await pool.acquire(Date.now() + 500);
    expect(d.dials).toBe(3);
  });

  test("a waiting request is woken when a session frees a slot", async () => {
    const d = new Dialer(() => {});
    const { pool } = mkPool(d, { min: 1, max: 1, maxSessions: 1, dialsPerSecond: 1000 });
    const s = await pool.acquire();
    const st = await s.open({ kind: "http", method: "GET", target: "/", headers: [] });
    await tick();
    d.agents[0]!.goAway();
    await tick();
    const t0 = Date.now();
    const waiting = pool.acquire(Date.now() + 3000);
    await tick();
    st.reset(0, "done"); // the draining session closes: a slot is free
    const s2 = await waiting;
    expect(s2).not.toBe(s);
    expect(Date.now() - t0).toBeLessThan(2500);
  });

  test("close: sessions close 1001 'gateway stopping'; requests then fail PoolClosedError; a dial in flight is closed", async () => {
    const d = new Dialer(echo);
    const { pool } = mkPool(d, { min: 1 });
    const s = await pool.acquire();
    pool.close();
    expect(s.isClosed).toBe(true);
    expect(d.closes).toContainEqual([1001, "gateway stopping"]);
    expect(await pool.acquire().catch((e) => e)).toBeInstanceOf(PoolClosedError);
    expect(pool.size).toBe(0);

    const slow = new Dialer(echo, { delayMs: 20 });
    const q = mkPool(slow).pool;
    const pending = q.acquire().catch((e) => e);
    await tick();
    q.close();
    expect(await pending).toBeInstanceOf(PoolClosedError);
    expect(slow.closes).toContainEqual([1001, "gateway stopping"]);
  });

  test("the relay closing a session removes it; the next request dials", async () => {
    const d = new Dialer(echo);
    const { pool } = mkPool(d, { min: 1 });
    const s = await pool.acquire();
    d.agents[0]!.close(1001, "agent stopping");
    expect(await until(() => s.isClosed)).toBe(true);
    expect(pool.size).toBe(0);
    expect(await get(pool)).toEqual({ status: 200, body: "hello /" });
    expect(d.dials).toBe(2);
  });

  test("retire before the token expires: with 20 % of the lifetime left, at most 5 min early, never sooner than 1 s", () => {
    expect(retireDelay(0, 10_000)).toBe(8000);
    expect(retireDelay(1000, 3_601_000)).toBe(3_300_000);
    expect(retireDelay(0, 1_500_000)).toBe(1_200_000); // 20 % = exactly 5 min
    expect(retireDelay(0, 500)).toBe(1000);
    expect(retireDelay(0, 1250)).toBe(1000);
  });
});

describe("session pool: edges", () => {
  test("error kinds carry their names; a closed pool never dials", async () => {
    const d = new Dialer(echo, { silent: true });
    const { pool } = mkPool(d, { helloMs: 10 });
    const e = await pool.acquire().catch((x) => x);
    expect(e.name).toBe("PoolError");
    const c = new Dialer(echo);
    const q = mkPool(c).pool;
    q.close();
    const closed = await q.acquire().catch((x) => x);
    expect([closed.name, closed.message]).toEqual(["PoolClosedError", "pool closed"]);
    expect(c.dials).toBe(0);
  });

  test("without an event hook, a hello timeout is still a 502 and a silent session is still evicted", async () => {
    const d = new Dialer(echo, { silent: true });
    const { pool } = mkPool(d, { helloMs: 10 }, false);
    expect((await pool.acquire().catch((x) => x)).code).toBe("tunnel_handshake_timeout");
    const e = new Dialer(() => {});
    const { pool: q } = mkPool(e, { min: 1, pingMs: 15 }, false);
    const s = await q.acquire();
    e.mute(0);
    expect(await until(() => s.isClosed)).toBe(true);
  });

  test("a dial in progress counts as held, and is shared: warming to min never dials twice at once", async () => {
    const d = new Dialer(echo, { delayMs: 20 });
    const { pool } = mkPool(d, { min: 2 });
    const first = pool.acquire();
    await tick();
    expect([pool.size, pool.held]).toEqual([0, 1]);
    await first;
    await Promise.all([pool.acquire(), pool.acquire(), pool.acquire()]); // each finds 1 open < min 2
    expect(await until(() => pool.size === 2)).toBe(true);
    await tick();
    expect(d.dials).toBe(2);
  });

  test("warming to min stays within maxSessions", async () => {
    const d = new Dialer(echo);
    const { pool } = mkPool(d, { min: 2, maxSessions: 1 });
    await pool.acquire();
    await pool.acquire();
    await Bun.sleep(20);
    expect([d.dials, pool.size]).toEqual([1, 1]);
  });

  test("a burst of one: the first dial goes at once", async () => {
    const d = new Dialer(echo);
    const { pool } = mkPool(d, { dialBurst: 1 });
    expect(await get(pool)).toEqual({ status: 200, body: "hello /" });
  });

  test("after the burst, a request with time left waits for the next token and is served", async () => {
    const d = new Dialer(echo);
    const { pool } = mkPool(d, { min: 1, dialBurst: 1, dialsPerSecond: 5 });
    const s = await pool.acquire();
    d.agents[0]!.close(1000, "bye");
    expect(await until(() => s.isClosed)).toBe(true);
    const t0 = Date.now();
    const s2 = await pool.acquire(Date.now() + 5000); // the next token comes after ~200 ms
    expect(s2).not.toBe(s);
    // waited for the token, not for the deadline (bounds generous for a loaded machine)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(100);
    expect(Date.now() - t0).toBeLessThan(2500);
    expect(d.dials).toBe(2);
  });

  test("a draining session closes when its last stream ends, not its first", async () => {
    const d = new Dialer(() => {});
    const { pool } = mkPool(d, { min: 1 });
    const s = await pool.acquire();
    const a = await s.open({ kind: "http", method: "GET", target: "/", headers: [] });
    const b = await s.open({ kind: "http", method: "GET", target: "/", headers: [] });
    await tick();
    d.agents[0]!.goAway();
    await tick();
    a.reset(0, "done");
    expect(s.isClosed).toBe(false);
    b.reset(0, "done");
    expect(s.isClosed).toBe(true);
  });

  test("the relay closing a session fails its streams with the code and reason", async () => {
    const d = new Dialer(() => {});
    const { pool } = mkPool(d, { min: 1 });
    const s = await pool.acquire();
    const st = await s.open({ kind: "http", method: "GET", target: "/", headers: [] });
    const err = st.response.catch((e) => e);
    d.agents[0]!.close(1001, "agent stopping");
    expect((await err).message).toBe("tunnel session lost: relay connection closed (1001 agent stopping)");
  });

  test("liveness goes on for the sessions left after one is removed", async () => {
    const d = new Dialer(() => {});
    const { pool, events } = mkPool(d, { min: 2, pingMs: 15 });
    await pool.acquire();
    await pool.acquire();
    expect(await until(() => pool.size === 2)).toBe(true);
    d.agents[0]!.close(1000, "bye");
    expect(await until(() => pool.size === 1)).toBe(true);
    d.mute(1);
    expect(await until(() => events.includes("evicted"))).toBe(true);
    expect(pool.size).toBe(0);
  });
});

test("the session cap defaults to twice max", async () => {
  const d = new Dialer(() => {});
  const { pool } = mkPool(d, { min: 1, max: 1, dialsPerSecond: 1000 });
  for (let i = 0; i < 2; i++) {
    const s = await pool.acquire();
    await s.open({ kind: "http", method: "GET", target: "/", headers: [] });
    await tick();
    d.agents[i]!.goAway(); // draining with a stream open: held, takes nothing
    await tick();
  }
  const err = await pool.acquire(Date.now() + 40).catch((e) => e);
  expect(err.code).toBe("tunnel_session_limit");
  expect(err.message).toContain("holds at most 2 sessions");
  expect(d.dials).toBe(2);
});
