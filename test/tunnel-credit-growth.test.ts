/**
 * Session credit (src/tunnel/credit.ts) as tables: returns batched and held while the process is
 * over its budget, the session window growing with its streams (up to `max` and the budget),
 * shrinking (later returns are smaller by as much), and growth given back on close. Each test uses
 * its own ProcessBudget. Written for mutation testing (issue 18, the `credit` group).
 */
import { describe, expect, test } from "bun:test";
import { SessionCredit } from "../src/tunnel/credit.ts";
import { DEFAULT_MAX_SESSION_WINDOW, ProcessBudget } from "../src/tunnel/window.ts";

const mk = (window = 800, max?: number, limit = 1 << 20) => {
  const budget = new ProcessBudget(limit);
  const c = new SessionCredit(window, max ?? Math.max(window, DEFAULT_MAX_SESSION_WINDOW), budget);
  return { c, budget };
};

describe("SessionCredit", () => {
  test("max defaults to 64 MiB, or the window when larger", () => {
    expect(new SessionCredit(800).max).toBe(DEFAULT_MAX_SESSION_WINDOW);
    expect(new SessionCredit(100 << 20).max).toBe(100 << 20);
  });

  test("a v1 peer (never started): no returns, no growth, nothing held", () => {
    const { c, budget } = mk();
    expect(c.release(10_000)).toBe(0);
    expect(c.flushHeld()).toBe(0);
    expect(c.grow(100)).toBe(false);
    expect(budget.grown).toBe(0);
    c.shrink(100);
    expect(c.size).toBe(800);
    budget.takeGrowth(500); // another session's
    c.close();
    expect(budget.grown).toBe(500);
  });

  test("returns batched by an eighth of the window", () => {
    const { c } = mk();
    c.start(1000);
    expect(c.release(99)).toBe(0);
    expect(c.release(1)).toBe(100);
    expect(c.flushHeld()).toBe(0); // nothing left
  });

  test("over the process budget, returns are held; flushHeld gives them once there is room", () => {
    const { c, budget } = mk(800, undefined, 100);
    c.start(1000);
    budget.hold(100);
    expect(c.release(200)).toBe(0);
    expect(c.flushHeld()).toBe(0);
    budget.free(1);
    expect(c.flushHeld()).toBe(200);
    expect(c.flushHeld()).toBe(0);
  });

  test("growth raises the window the peer may use, up to max (exactly max is allowed) and within the budget", () => {
    const { c, budget } = mk(800, 1000, 250);
    c.start(1000);
    expect(c.grow(201)).toBe(false); // 1001 > max
    expect(c.grow(200)).toBe(true);
    expect(c.size).toBe(1000);
    expect(budget.grown).toBe(200);
    expect(c.receive(1000)).toBe(true); // 800 + 200 granted
    expect(c.receive(1)).toBe(false);

    const b = mk(800, 10_000, 250);
    b.c.start(1000);
    expect(b.c.grow(251)).toBe(false); // the process budget refuses
    expect(b.c.size).toBe(800);
    expect(b.c.receive(801)).toBe(false);
  });

  test("shrinking: the window and the budget give back at once; later returns are cut by as much", () => {
    const { c, budget } = mk();
    c.start(1000);
    expect(c.grow(1000)).toBe(true); // 1800
    c.shrink(300);
    expect(c.size).toBe(1500);
    expect(budget.grown).toBe(700);
    expect(c.release(250)).toBe(0); // ≥ 1500 / 8: flushed, but the 300 owed takes it all
    expect(c.release(200)).toBe(150); // the last 50 owed
    expect(c.release(200)).toBe(200);
    c.shrink(0);
    c.shrink(-5);
    expect(c.size).toBe(1500);
    expect(budget.grown).toBe(700);
  });

  test("close gives the session's growth back to the process, and only it", () => {
    const { c, budget } = mk();
    budget.takeGrowth(500); // another session's
    c.start(1000);
    c.grow(100);
    expect(budget.grown).toBe(600);
    c.close();
    expect(budget.grown).toBe(500);
    expect(c.size).toBe(800);
  });
});
