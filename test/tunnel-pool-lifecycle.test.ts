/**
 * The session pool's timed paths, with the in-process dial (test/support/pool-dial.ts): retiring a
 * session before its sender token expires (the dialer records an expiry per connection, as
 * `connectSender` does for a real relay socket) and re-warming (the agent goes away while the
 * tunnel is in use: background dials with back-off). The timed tests run concurrently so the file
 * takes about two seconds; bounds are lower bounds (a timer never fires early) or orders.
 * Written for mutation testing (issue 18, the `pool` group); test/liveness.test.ts and
 * test/pool-rewarm.test.ts show the same end to end over the relay emulator.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { Dialer, echo, poolGet, poolKit, until } from "./support/pool-dial.ts";

const { mkPool, closeAll } = poolKit();

/** A pool holding one session whose agent then restarts and stays offline (its dials are refused). */
async function agentGoneOffline() {
  const d = new Dialer(echo);
  const { pool } = mkPool(d, { min: 1 });
  const s = await pool.acquire();
  d.offline = true;
  d.agents[0]!.close(1001, "agent restarting");
  expect(await until(() => s.isClosed)).toBe(true);
  return { d, pool };
}
afterAll(closeAll);
const get = poolGet;

describe("retirement before the token expires (token lifetime 1.25 s: retired after 1 s)", () => {
  test.concurrent("an idle session: GOAWAY, closed 'session retired', a replacement dialed at once; no re-warm for it", async () => {
    const d = new Dialer(echo, { tokenMs: 1250 });
    const { pool, events } = mkPool(d, { min: 1 });
    const s = await pool.acquire();
    const dialed = d.dialedAt[0]!;
    expect(await until(() => events.includes("retired"))).toBe(true);
    expect(Date.now() - dialed).toBeGreaterThanOrEqual(950);
    expect(s.isClosed).toBe(true);
    expect(d.closes).toContainEqual([1000, "session retired"]);
    expect(await until(() => !d.agents[0]!.acceptsStreams)).toBe(true); // the agent got the GOAWAY (or the close)
    expect(await until(() => pool.size === 1)).toBe(true);
    expect(d.dials).toBe(2);
    expect(pool.rewarmDials).toBe(0);
    const s2 = await pool.acquire();
    expect(s2).not.toBe(s);
    expect(s2.acceptsStreams).toBe(true);
    expect(events).toEqual(["retired"]);
  });

  test.concurrent("a stream in flight finishes on the retired session, which closes when the stream ends", async () => {
    const d = new Dialer(() => {}, { tokenMs: 1250 }); // the agent takes streams and never answers
    const { pool, events } = mkPool(d, { min: 1 });
    const s = await pool.acquire();
    const st = await s.open({ kind: "http", method: "GET", target: "/", headers: [] });
    expect(await until(() => events.includes("retired"))).toBe(true);
    expect(s.acceptsStreams).toBe(false);
    expect(s.isClosed).toBe(false);
    expect(await until(() => pool.size === 2)).toBe(true); // the old one (draining) and its replacement
    const s2 = await pool.acquire();
    expect(s2).not.toBe(s);
    st.reset(0, "done");
    expect(s.isClosed).toBe(true);
    expect(d.closes).toContainEqual([1000, "session retired"]);
    expect(pool.size).toBe(1);
  });

  test.concurrent("no retirement when turned off, after close, after the relay closed the session, or with the expiry beyond setTimeout's range", async () => {
    const off = new Dialer(echo, { tokenMs: 1250 });
    const a = mkPool(off, { min: 1, retireBeforeExpiry: false });
    const sa = await a.pool.acquire();
    const closed = new Dialer(echo, { tokenMs: 1250 });
    const b = mkPool(closed, { min: 1 });
    await b.pool.acquire();
    b.pool.close();
    const gone = new Dialer(echo, { tokenMs: 1250 });
    const c = mkPool(gone, { min: 1, rewarmMs: 0 });
    const sc = await c.pool.acquire();
    gone.agents[0]!.close(1001, "agent stopping");
    expect(await until(() => sc.isClosed)).toBe(true);
    const far = new Dialer(echo, { tokenMs: 30 * 24 * 3600_000 }); // 30 days: over 2^31 - 1 ms
    const e = mkPool(far, { min: 1 });
    const se = await e.pool.acquire();
    // a control pool that does retire, to know the moment has passed
    const on = new Dialer(echo, { tokenMs: 1250 });
    const ctl = mkPool(on, { min: 1 });
    await ctl.pool.acquire();
    expect(await until(() => ctl.events.includes("retired"))).toBe(true);
    await Bun.sleep(100);
    expect(a.events).toEqual([]);
    expect(sa.acceptsStreams).toBe(true);
    expect(off.closes).toEqual([]);
    expect(b.events).toEqual([]);
    expect(c.events).toEqual([]);
    expect(gone.dials).toBe(1);
    expect(e.events).toEqual([]);
    expect(se.acceptsStreams).toBe(true);
  });

  test.concurrent("at the dial rate the replacement waits for a request; without an event hook the session is still retired", async () => {
    const d = new Dialer(echo, { tokenMs: 1250 });
    const { pool } = mkPool(d, { min: 1, dialBurst: 1, dialsPerSecond: 0.01 }, false);
    const s = await pool.acquire();
    expect(await until(() => s.isClosed)).toBe(true);
    expect(d.closes).toContainEqual([1000, "session retired"]);
    await Bun.sleep(300);
    expect(d.dials).toBe(1);
    expect(pool.size).toBe(0);
    expect(pool.rewarmDials).toBe(0);
  });
});

describe("re-warm: the agent goes away while the tunnel is in use", () => {
  test.concurrent("the pool re-dials in the background (not before 250 ms); the next request finds the session", async () => {
    const d = new Dialer(echo);
    const { pool } = mkPool(d, { min: 1 });
    expect(pool.rewarming).toBe(false);
    expect(await get(pool)).toEqual({ status: 200, body: "hello /" });
    expect(pool.rewarming).toBe(false);
    const s = await pool.acquire();
    d.agents[0]!.close(1001, "agent restarting");
    expect(await until(() => s.isClosed)).toBe(true);
    const lost = Date.now();
    expect(pool.size).toBe(0);
    expect(pool.rewarming).toBe(true);
    expect(await until(() => pool.size === 1)).toBe(true);
    expect(d.dialedAt[1]! - lost).toBeGreaterThanOrEqual(200);
    expect(pool.rewarmDials).toBe(1);
    expect(pool.rewarming).toBe(false);
    expect(await get(pool)).toEqual({ status: 200, body: "hello /" });
    expect(d.dials).toBe(2);
    await Bun.sleep(300);
    expect(d.dialedAt.length).toBe(2); // stopped on success
  });

  test.concurrent("while the agent is offline: refused dials back off (250, 500, 1000 ms); a dial that succeeds stops them", async () => {
    const { d, pool } = await agentGoneOffline();
    const lost = Date.now();
    expect(await until(() => d.refused === 2)).toBe(true);
    const [, t1, t2] = d.dialedAt as [number, number, number];
    expect(t1 - lost).toBeGreaterThanOrEqual(200);
    expect(t2 - t1).toBeGreaterThanOrEqual(450);
    expect(pool.rewarming).toBe(true);
    expect(pool.rewarmDials).toBe(2);
    d.offline = false; // the agent is back: the next background dial (≥ 1 s later) succeeds
    expect(await until(() => pool.size === 1)).toBe(true);
    expect(d.dialedAt[3]! - t2).toBeGreaterThanOrEqual(950);
    expect(pool.rewarming).toBe(false);
    expect(pool.rewarmDials).toBe(3);
    expect(d.dials).toBe(2);
  });

  test.concurrent("a request starts the back-off over: the dial after it comes sooner than the one before it", async () => {
    const { d, pool } = await agentGoneOffline();
    expect(await until(() => d.refused === 2)).toBe(true); // at 250 and 750 ms; the next is due 1000 ms later
    expect(await pool.acquire().catch((e) => e)).toBeInstanceOf(Error); // the request's own dial is refused
    expect(d.refused).toBe(3);
    expect(await until(() => d.refused === 5)).toBe(true); // the pending one, then one 250 ms after it
    const t = d.dialedAt; // [0] the first session, [1] [2] re-warm, [3] the request, [4] [5] re-warm
    expect(t[5]! - t[4]!).toBeLessThan(t[4]! - t[2]!);
    expect(pool.rewarmDials).toBe(4);
  });

  test.concurrent("close stops a pending re-warm; a re-warm waits for the dial rate", async () => {
    const d = new Dialer(echo);
    const { pool } = mkPool(d, { min: 1 });
    const s = await pool.acquire();
    d.agents[0]!.close(1001, "agent restarting");
    expect(await until(() => s.isClosed)).toBe(true);
    expect(pool.rewarming).toBe(true);
    pool.close();
    expect(pool.rewarming).toBe(false);

    const r = new Dialer(echo);
    const q = mkPool(r, { min: 1, dialBurst: 1, dialsPerSecond: 2 }).pool; // a token every 500 ms
    const sq = await q.acquire();
    r.agents[0]!.close(1001, "agent restarting");
    expect(await until(() => sq.isClosed)).toBe(true);
    expect(await until(() => q.size === 1)).toBe(true);
    expect(r.dialedAt[1]! - r.dialedAt[0]!).toBeGreaterThanOrEqual(450); // not at 250 ms: no token yet
    expect(q.rewarmDials).toBe(1);
    await Bun.sleep(200);
    expect(d.dialedAt.length).toBe(1);
  });

  test.concurrent("no re-warm when the last request is older than rewarmMs, nor with rewarmMs 0; the window also ends a back-off", async () => {
    const old = new Dialer(echo);
    const a = mkPool(old, { min: 1, rewarmMs: 150 });
    const sa = await a.pool.acquire();
    const zero = new Dialer(echo);
    const b = mkPool(zero, { min: 1, rewarmMs: 0 });
    const sb = await b.pool.acquire();
    const ends = new Dialer(echo);
    const c = mkPool(ends, { min: 1, rewarmMs: 600 });
    const sc = await c.pool.acquire();
    ends.offline = true;
    ends.agents[0]!.close(1001, "agent restarting");
    zero.agents[0]!.close(1001, "agent restarting");
    await Bun.sleep(250);
    old.agents[0]!.close(1001, "agent restarting");
    expect(await until(() => sa.isClosed && sb.isClosed && sc.isClosed)).toBe(true);
    expect(a.pool.rewarming).toBe(false);
    expect(b.pool.rewarming).toBe(false);
    expect(await until(() => ends.refused === 1)).toBe(true); // at 250 ms; the next (750 ms) is past the window
    await Bun.sleep(1000);
    expect(ends.refused).toBe(1);
    expect(c.pool.rewarming).toBe(false);
    expect(old.dialedAt.length).toBe(1);
    expect(zero.dialedAt.length).toBe(1);
  });

  test.concurrent("one of two sessions lost: the other still serves, no re-warm", async () => {
    const d = new Dialer(echo);
    const { pool } = mkPool(d, { min: 2 });
    await pool.acquire();
    await pool.acquire(); // one session, under min: a second is dialed behind it
    expect(await until(() => pool.size === 2)).toBe(true);
    d.agents[0]!.close(1001, "one session lost");
    expect(await until(() => pool.size === 1)).toBe(true);
    expect(pool.rewarming).toBe(false);
    await Bun.sleep(400);
    expect(pool.rewarmDials).toBe(0);
  });
});

describe("re-warm: edges", () => {
  test.concurrent("rewarming stays true while the background dial is in flight; a request meanwhile makes it unneeded", async () => {
    const d = new Dialer(echo, { delayMs: 150 });
    const { pool } = mkPool(d, { min: 1 });
    const s = await pool.acquire();
    d.agents[0]!.close(1001, "agent restarting");
    expect(await until(() => s.isClosed)).toBe(true);
    expect(await until(() => pool.rewarmDials === 1)).toBe(true);
    expect(pool.rewarming).toBe(true); // the timer is gone; the dial is not done
    expect(await until(() => pool.size === 1)).toBe(true);
    expect(pool.rewarming).toBe(false);

    const r = new Dialer(echo);
    const q = mkPool(r, { min: 1 }).pool;
    const sq = await q.acquire();
    r.agents[0]!.close(1001, "agent restarting");
    expect(await until(() => sq.isClosed)).toBe(true);
    expect(q.rewarming).toBe(true);
    expect(await get(q)).toEqual({ status: 200, body: "hello /" }); // the request dials before the re-warm is due
    await Bun.sleep(400);
    expect(q.rewarmDials).toBe(0);
    expect(r.dials).toBe(2);
    expect(q.rewarming).toBe(false);
  });

  test.concurrent("closing a pool in use starts no re-warm when its sessions' sockets close", async () => {
    const d = new Dialer(echo);
    const { pool } = mkPool(d, { min: 1 });
    await get(pool);
    pool.close();
    await Bun.sleep(20); // the sockets' close events
    expect(pool.rewarming).toBe(false);
    await Bun.sleep(400);
    expect(d.dialedAt.length).toBe(1);
  });
});
