/**
 * Receive-window tuning (src/tunnel/window.ts) as pure tables: a stream window's grants (growth ×2
 * and ×4, the cap, shrinking under a queue or memory pressure, when an epoch ends) and the process
 * budget. Clocks are numbers the test passes in; no timers. Written for mutation testing (issue 18:
 * the `window` group); the stream and WAN tests (test/tunnel-stream-mutants.test.ts,
 * test/tunnel-wan-windows.test.ts) show the same through a real stream.
 */
import { describe, expect, test } from "bun:test";
import { DEFAULT_MAX_SESSION_WINDOW, DEFAULT_MAX_STREAM_WINDOW, type GrowthHost, MIN_EPOCH_MS, ProcessBudget, StreamWindow, processBudget } from "../src/tunnel/window.ts";

/** A session side that records what it was asked to grow and shrink. */
function host(rtt = 100, o: { limit?: number; allow?: boolean } = {}) {
  const grew: number[] = [];
  const shrank: number[] = [];
  const h: GrowthHost & { grew: number[]; shrank: number[] } = {
    rtt,
    budget: new ProcessBudget(o.limit ?? 1 << 30),
    growSession: (extra) => {
      grew.push(extra);
      return o.allow ?? true;
    },
    shrinkSession: (n) => {
      shrank.push(n);
    },
    grew,
    shrank,
  };
  return h;
}

describe("StreamWindow.grant", () => {
  test("starts at its base; nothing grown", () => {
    const w = new StreamWindow(1000, 16_000, 0);
    expect(w.size).toBe(1000);
    expect(w.grown).toBe(0);
    expect(w.base).toBe(1000);
    expect(w.cap).toBe(16_000);
  });

  test("no round trip known (rtt 0): the grant is the increment, however fast the window goes", () => {
    const w = new StreamWindow(1000, 16_000, 0);
    const h = host(0);
    expect(w.grant(1000, 0, h, 1)).toBe(1000);
    expect(w.grant(1000, 0, h, 2)).toBe(1000);
    expect(w.size).toBe(1000);
    expect(h.grew).toEqual([]);
  });

  test("grants made before a round trip is known do not start the epoch over: the first known rtt sees them", () => {
    const w = new StreamWindow(1000, 16_000, 0);
    const h = host(0);
    expect(w.grant(999, 0, h, 5)).toBe(999);
    (h as { rtt: number }).rtt = 100;
    expect(w.grant(1, 0, h, 10)).toBe(1 + 3000); // a whole window since 0, in 10 ms
    // the same after more than MIN_EPOCH_MS without a round trip: still no new epoch
    const later = new StreamWindow(1000, 16_000, 0);
    const h2 = host(0);
    expect(later.grant(999, 0, h2, 50)).toBe(999);
    (h2 as { rtt: number }).rtt = 100;
    expect(later.grant(1, 0, h2, 60)).toBe(1 + 3000);
  });

  test("within an epoch (less than a round trip, less than a window): no growth yet", () => {
    const w = new StreamWindow(1000, 16_000, 0);
    const h = host();
    expect(w.grant(500, 0, h, 50)).toBe(500);
    expect(w.grant(499, 0, h, 99)).toBe(499);
    expect(h.grew).toEqual([]);
    // the 1000th byte ends the epoch: a whole window in 99.9 ms of a 100 ms round trip quadruples it
    expect(w.grant(1, 0, h, 99.9)).toBe(1 + 3000);
    expect(w.size).toBe(4000);
    expect(w.grown).toBe(3000);
    expect(h.grew).toEqual([3000]);
  });

  test("an epoch ends after exactly one round trip: over half a window per round trip doubles it", () => {
    const w = new StreamWindow(1000, 16_000, 0);
    const h = host();
    expect(w.grant(600, 0, h, 100)).toBe(600 + 1000);
    expect(w.size).toBe(2000);
    expect(h.grew).toEqual([1000]);
  });

  test("half a window per round trip exactly: the link, not the window, is the limit (no growth)", () => {
    const w = new StreamWindow(1000, 16_000, 0);
    const h = host();
    expect(w.grant(500, 0, h, 100)).toBe(500);
    expect(w.size).toBe(1000);
    // the epoch started over at 100: 501 more by 200 is a new estimate (501 per rtt): doubles
    expect(w.grant(501, 0, h, 200)).toBe(501 + 1000);
    expect(w.size).toBe(2000);
  });

  test("three quarters of a window per round trip exactly quadruples; just under doubles", () => {
    const a = new StreamWindow(1000, 16_000, 0);
    expect(a.grant(750, 0, host(), 100)).toBe(750 + 3000);
    const b = new StreamWindow(1000, 16_000, 0);
    expect(b.grant(749, 0, host(), 100)).toBe(749 + 1000);
  });

  test("the estimate is per round trip: a whole window over 1.5 round trips doubles (not ×4)", () => {
    const w = new StreamWindow(1000, 16_000, 0);
    const h = host();
    expect(w.grant(999, 0, h, 10)).toBe(999); // the epoch goes on (10 < 100, 999 < 1000)
    // 1000 bytes by 150 ms with a 100 ms rtt: 666 per round trip
    const w2 = new StreamWindow(1000, 16_000, 0);
    expect(w2.grant(1000, 0, host(), 150)).toBe(1000 + 1000);
    // at time 0 (no time passed) a whole window is clearly window-bound: ×4
    const w3 = new StreamWindow(1000, 16_000, 0);
    expect(w3.grant(1000, 0, host(), 0)).toBe(1000 + 3000);
  });

  test("a sub-millisecond round trip (loopback): a reader draining a backlog in one go does not grow the window", () => {
    // 1 MiB taken within one 0.46 ms round trip, the agent's 1 GiB upload on loopback before the
    // floor: read as "a whole window per round trip", it doubled a 2 MiB window, again and again
    const MiB = 1 << 20;
    const w = new StreamWindow(2 * MiB, 32 * MiB, 0);
    const h = host(0.46);
    // bursts: 2 MiB in four quarter-window grants within 0.47 ms, every 5 ms (400 MB/s on average)
    for (let t = 5; t <= 200; t += 5) for (const dt of [0, 0.15, 0.3, 0.47]) expect(w.grant(MiB / 2, 0, h, t + dt)).toBe(MiB / 2);
    expect(h.grew).toEqual([]);
    expect(w.size).toBe(2 * MiB);
  });

  test("a short round trip (5 ms, under MIN_EPOCH_MS): the rate is taken over 10 ms, and a window-bound stream still grows", () => {
    const MiB = 1 << 20;
    const w = new StreamWindow(2 * MiB, 32 * MiB, 0);
    const h = host(5);
    // a whole 2 MiB window per 5 ms round trip, a quarter window every 1.25 ms
    for (let i = 1; i < 8; i++) expect(w.grant(MiB / 2, 0, h, i * 1.25)).toBe(MiB / 2);
    expect(h.grew).toEqual([]); // 9.75 ms: the epoch goes on although a whole window went
    expect(MIN_EPOCH_MS).toBe(10);
    // at 10 ms: 4 MiB taken, 2 MiB per round trip (a whole window): ×4
    expect(w.grant(MiB / 2, 0, h, 10)).toBe(MiB / 2 + 6 * MiB);
    expect(w.size).toBe(8 * MiB);
  });

  test("a round trip of exactly MIN_EPOCH_MS is a long one: a whole window consumed ends the epoch early", () => {
    const MiB = 1 << 20;
    const w = new StreamWindow(2 * MiB, 32 * MiB, 0);
    const h = host(MIN_EPOCH_MS);
    // a whole 2 MiB window within 4 ms of a 10 ms round trip: the epoch ends at the window, not at
    // MIN_EPOCH_MS (that floor is for round trips under it), and the window-bound stream grows ×4
    for (let i = 1; i < 4; i++) expect(w.grant(MiB / 2, 0, h, i)).toBe(MiB / 2);
    expect(h.grew).toEqual([]);
    expect(w.grant(MiB / 2, 0, h, 4)).toBe(MiB / 2 + 6 * MiB);
    expect(h.grew).toEqual([6 * MiB]);
  });

  test("credit batch: a quarter window until a round trip is known and on long links; half of it under a MIN_EPOCH_MS round trip", () => {
    const w = new StreamWindow(1000, 16_000, 0);
    expect(w.batch).toBe(250); // no grant yet: no round trip seen
    w.grant(250, 0, host(0), 1);
    expect(w.batch).toBe(250); // asked, none measured yet
    w.grant(250, 0, host(0.5), 2);
    expect(w.batch).toBe(500); // loopback: credit is back long before the other half drains
    w.grant(250, 0, host(MIN_EPOCH_MS), 3);
    expect(w.batch).toBe(250); // 10 ms and more: as before
    const wan = new StreamWindow(1000, 16_000, 0);
    wan.grant(1000, 0, host(100), 10); // ×4 on a long link
    expect([wan.size, wan.batch]).toEqual([4000, 1000]);
  });

  test("the epoch starts over after each check: growth at most once per round trip", () => {
    const w = new StreamWindow(1000, 16_000, 0);
    const h = host();
    expect(w.grant(1000, 0, h, 10)).toBe(4000); // ×4 at 10 ms
    expect(w.grant(1000, 0, h, 20)).toBe(1000); // new epoch from 10: 1000 < 4000 and 10 ms < rtt
    expect(w.grant(3000, 0, h, 30)).toBe(3000 + 12_000); // a whole (4000) window since 10: ×4 → 16 000
    expect(w.size).toBe(16_000);
    expect(h.grew).toEqual([3000, 12_000]);
  });

  test("growth stops at the cap (the last step is cut to fit), then grants are the increment", () => {
    const w = new StreamWindow(1000, 2500, 0);
    const h = host();
    expect(w.grant(1000, 0, h, 10)).toBe(1000 + 1500);
    expect(w.size).toBe(2500);
    expect(w.grant(2500, 0, h, 11)).toBe(2500);
    expect(w.size).toBe(2500);
    expect(h.grew).toEqual([1500]);
    const d = new StreamWindow(1000, 1500, 0); // a doubling cut to the cap
    expect(d.grant(600, 0, host(), 100)).toBe(600 + 500);
    expect(d.size).toBe(1500);
  });

  test("a quarter window queued still grows; more than a quarter does not (the reader is the limit), and the epoch starts over", () => {
    const a = new StreamWindow(1000, 16_000, 0);
    expect(a.grant(1000, 250, host(), 10)).toBe(4000);
    const b = new StreamWindow(1000, 16_000, 0);
    const h = host();
    expect(b.grant(1000, 251, h, 10)).toBe(1000);
    expect(h.grew).toEqual([]);
    expect(b.grant(999, 0, h, 20)).toBe(999); // the epoch began again at 10: 999 < 1000, 10 ms < rtt
    expect(h.grew).toEqual([]);
  });

  test("the session refuses the growth (its cap or the process budget): the window stays, the epoch starts over", () => {
    const w = new StreamWindow(1000, 16_000, 0);
    const h = host(100, { allow: false });
    expect(w.grant(1000, 0, h, 10)).toBe(1000);
    expect(w.size).toBe(1000);
    expect(h.grew).toEqual([3000]);
    expect(w.grant(999, 0, h, 20)).toBe(999);
    expect(h.grew).toEqual([3000]);
  });

  test("shrinks toward its base when over half the window is queued: the grant is cut by what is given back", () => {
    const w = new StreamWindow(1000, 16_000, 0);
    const h = host();
    w.grant(1000, 0, h, 10); // 4000
    expect(w.grant(100, 2000, h, 11)).toBe(100); // exactly half queued: no shrink (and no growth: epoch goes on)
    expect(h.shrank).toEqual([]);
    expect(w.grant(100, 2001, h, 12)).toBe(0);
    expect(w.size).toBe(3900);
    expect(h.shrank).toEqual([100]);
    expect(w.grant(5000, 3000, h, 13)).toBe(5000 - 2900); // never below the base
    expect(w.size).toBe(1000);
    expect(h.shrank).toEqual([100, 2900]);
    expect(w.grant(100, 3000, h, 14)).toBe(100); // at the base: nothing to give back
    expect(h.shrank).toEqual([100, 2900]);
  });

  test("shrinking starts the epoch over", () => {
    const w = new StreamWindow(1000, 16_000, 0);
    const h = host();
    w.grant(1000, 0, h, 10); // 4000, epoch from 10
    w.grant(3000, 3000, h, 50); // shrink by 3000 → 1000, epoch from 50
    expect(w.size).toBe(1000);
    // had the epoch not restarted, 3000 + 999 taken since 10 would end it; from 50 it is 999 in 10 ms
    expect(w.grant(999, 0, h, 60)).toBe(999);
    expect(w.size).toBe(1000);
  });

  test("under memory pressure (half the process limit held) a grown window shrinks; at its base it is left alone", () => {
    const h = host(100, { limit: 10_000 });
    const w = new StreamWindow(1000, 16_000, 0);
    w.grant(1000, 0, h, 10); // 4000
    h.budget.hold(4999);
    expect(w.grant(100, 0, h, 11)).toBe(100); // under half: the epoch goes on
    expect(h.shrank).toEqual([]);
    h.budget.hold(1);
    expect(w.grant(100, 0, h, 12)).toBe(0);
    expect(h.shrank).toEqual([100]);
  });
});

describe("ProcessBudget", () => {
  test("hold / free count buffered bytes; the peak keeps the most", () => {
    const b = new ProcessBudget(100);
    b.hold(30);
    b.hold(20);
    expect(b.buffered).toBe(50);
    expect(b.peak).toBe(50);
    b.free(40);
    expect(b.buffered).toBe(10);
    expect(b.peak).toBe(50);
    b.hold(30);
    expect(b.peak).toBe(50);
    b.hold(30);
    expect(b.peak).toBe(70);
  });

  test("over at the limit, pressure at half of it", () => {
    const b = new ProcessBudget(100);
    b.hold(49);
    expect([b.over, b.pressure]).toEqual([false, false]);
    b.hold(1);
    expect([b.over, b.pressure]).toEqual([false, true]);
    b.hold(49);
    expect(b.over).toBe(false);
    b.hold(1);
    expect(b.over).toBe(true);
  });

  test("onRoom: called each time buffered drops back under the limit, not while still over or never over; unsubscribes", () => {
    const b = new ProcessBudget(100);
    let calls = 0;
    const off = b.onRoom(() => calls++);
    b.hold(50);
    b.free(10); // never over
    expect(calls).toBe(0);
    b.hold(70); // 110
    b.free(5); // 105: still over
    expect(calls).toBe(0);
    b.free(5); // 100: still over (at the limit)
    expect(calls).toBe(0);
    b.free(1); // 99
    expect(calls).toBe(1);
    b.hold(1);
    b.free(1);
    expect(calls).toBe(2);
    off();
    b.hold(1);
    b.free(1);
    expect(calls).toBe(2);
  });

  test("takeGrowth: up to the limit, refused under pressure or beyond it; the peak keeps the most; giveGrowth never below 0", () => {
    const b = new ProcessBudget(100);
    expect(b.takeGrowth(60)).toBe(true);
    expect(b.takeGrowth(41)).toBe(false);
    expect(b.grown).toBe(60);
    expect(b.takeGrowth(40)).toBe(true); // exactly the limit
    expect(b.grown).toBe(100);
    expect(b.peakGrown).toBe(100);
    b.giveGrowth(70);
    expect(b.grown).toBe(30);
    expect(b.peakGrown).toBe(100);
    expect(b.takeGrowth(10)).toBe(true);
    expect(b.peakGrown).toBe(100);
    b.giveGrowth(500);
    expect(b.grown).toBe(0);
    b.hold(50); // pressure
    expect(b.takeGrowth(1)).toBe(false);
    expect(b.grown).toBe(0);
    b.free(1);
    expect(b.takeGrowth(1)).toBe(true);
  });

  test("resetPeaks starts the peaks over from what is held now", () => {
    const b = new ProcessBudget(100);
    b.takeGrowth(10);
    b.takeGrowth(20);
    b.hold(80);
    b.free(70);
    b.giveGrowth(25);
    expect([b.peak, b.peakGrown]).toEqual([80, 30]);
    b.resetPeaks();
    expect([b.peak, b.peakGrown]).toEqual([10, 5]);
  });

  test("defaults: 32 MiB per stream, 64 MiB per session, 64 MiB per process", () => {
    expect(DEFAULT_MAX_STREAM_WINDOW).toBe(32 * 1024 * 1024);
    expect(DEFAULT_MAX_SESSION_WINDOW).toBe(64 * 1024 * 1024);
    expect(processBudget.limit).toBe(64 * 1024 * 1024);
  });
});
