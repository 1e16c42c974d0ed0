/**
 * The supervisor's time primitives, pure: full-jitter backoff (bounds, cap, reset after a stable
 * period), the classification of failures, renewal timing, and the manual test clock.
 */
import { describe, expect, test } from "bun:test";
import { Backoff, fullJitter } from "../src/agent/backoff.ts";
import { ManualClock, realClock } from "../src/agent/clock.ts";
import { classify, renewDelay } from "../src/agent/policy.ts";
import { RelayError } from "../src/hc/errors.ts";

const TOP = 1 - Number.EPSILON;

describe("fullJitter", () => {
  test("ceiling doubles from base up to the cap", () => {
    const ceilings = Array.from({ length: 8 }, (_, a) => fullJitter(a, 1000, 30_000, () => TOP));
    expect(ceilings).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
    expect(fullJitter(0, 1000, 30_000, () => 0)).toBe(0);
    expect(fullJitter(1000, 1000, 30_000, () => TOP)).toBe(30_000); // no overflow for huge attempts
  });

  test("delays are uniform in [0, min(cap, base·2^attempt)] (full, not equal, jitter)", () => {
    for (let a = 0; a < 8; a++) {
      const ceiling = Math.min(30_000, 1000 * 2 ** a);
      const draws = Array.from({ length: 4000 }, () => fullJitter(a, 1000, 30_000, Math.random));
      expect(Math.min(...draws)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...draws)).toBeLessThanOrEqual(ceiling);
      // full jitter reaches the bottom quarter often and averages half the ceiling
      expect(draws.filter((d) => d < ceiling / 4).length).toBeGreaterThan(800);
      const mean = draws.reduce((x, y) => x + y, 0) / draws.length;
      expect(Math.abs(mean - ceiling / 2)).toBeLessThan(ceiling * 0.05);
    }
  });

  test("a misbehaving random source stays within bounds", () => {
    expect(fullJitter(2, 1000, 30_000, () => 7)).toBe(4000);
    expect(fullJitter(2, 1000, 30_000, () => -1)).toBe(0);
  });
});

describe("Backoff", () => {
  test("sequence grows per failure and is capped (defaults: base 1 s, cap 30 s)", () => {
    const b = new Backoff({ random: () => TOP });
    const seq = Array.from({ length: 7 }, (_, i) => b.next(i * 1000));
    expect(seq).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
    expect(b.attempt).toBe(7);
  });

  test("configurable base and cap", () => {
    const b = new Backoff({ baseMs: 100, capMs: 500, random: () => TOP });
    expect([b.next(0), b.next(0), b.next(0), b.next(0), b.next(0)]).toEqual([100, 200, 400, 500, 500]);
    expect(() => new Backoff({ baseMs: 0 })).toThrow(RangeError);
    expect(() => new Backoff({ baseMs: 10, capMs: 5 })).toThrow(RangeError);
  });

  test("a connection up for 60 s resets the sequence; a shorter one does not", () => {
    const b = new Backoff({ random: () => TOP });
    for (let i = 0; i < 4; i++) b.next(0);
    b.succeeded(100_000);
    expect(b.next(159_999)).toBe(16_000); // up 59.999 s: keeps climbing
    b.succeeded(200_000);
    expect(b.next(260_000)).toBe(1000); // up 60 s: starts over
    expect(b.next(260_500)).toBe(2000); // failed attempts in between never reset it
    expect(b.next(400_000)).toBe(4000); // time alone (no success) does not reset
  });

  test("reset() starts over", () => {
    const b = new Backoff({ random: () => TOP });
    b.next(0);
    b.next(0);
    b.reset();
    expect(b.next(0)).toBe(1000);
  });
});

describe("classify", () => {
  const relay = (code: ConstructorParameters<typeof RelayError>[0], retryable: boolean) => new RelayError(code, code, retryable);
  test("relay close codes map to their fix", () => {
    expect(classify(relay("token_expired", true), "none")).toEqual({ fix: "renew", permanent: false, code: "token_expired" });
    expect(classify(relay("entity_deleted", true), "none")).toEqual({ fix: "connect", permanent: false, code: "entity_deleted" });
    expect(classify(relay("network", true), "none")).toEqual({ fix: "none", permanent: false, code: "network" });
    expect(classify(relay("server_error", true), "renew").fix).toBe("none");
  });

  test("a refused token is permanent only when a fresh one is refused too; a 404 only after a fresh claim", () => {
    expect(classify(relay("unauthorized", false), "none")).toMatchObject({ fix: "renew", permanent: false });
    expect(classify(relay("unauthorized", false), "renew")).toMatchObject({ fix: "renew", permanent: true });
    expect(classify(relay("forbidden", false), "connect")).toMatchObject({ fix: "renew", permanent: false });
    expect(classify(relay("not_found", false), "none")).toMatchObject({ fix: "connect", permanent: false });
    expect(classify(relay("not_found", false), "connect")).toMatchObject({ fix: "connect", permanent: true });
    expect(classify(relay("protocol", false), "none")).toMatchObject({ fix: "connect", permanent: true });
  });

  test("management API errors: retryable flag and 404-like codes", () => {
    const apiErr = (props: Record<string, unknown>) => Object.assign(new Error("api"), props);
    expect(classify(new Error("ECONNREFUSED"), "connect")).toEqual({ fix: "connect", permanent: false, code: "error" });
    expect(classify(apiErr({ code: "invalid_api_key", retryable: false }), "connect")).toMatchObject({ fix: "connect", permanent: true });
    expect(classify(apiErr({ code: "tunnel_not_found" }), "renew")).toMatchObject({ fix: "connect", permanent: false });
    expect(classify(apiErr({ status: 404 }), "renew").fix).toBe("connect");
    expect(classify(apiErr({ code: "server_error" }), "renew")).toMatchObject({ fix: "renew", permanent: false });
  });
});

describe("renewDelay", () => {
  test("80% of the lifetime, at least 1 s before expiry, never below 100 ms", () => {
    expect(renewDelay(0, 3_600_000, 0)).toBe(2_880_000);
    expect(renewDelay(0, 5000, 0)).toBe(4000);
    expect(renewDelay(0, 3000, 0)).toBe(2000); // 80% = 2.4 s, but 1 s before expiry wins
    expect(renewDelay(0, 5000, 3000)).toBe(1000); // counted from issue, not from now
    expect(renewDelay(0, 1000, 0)).toBe(100);
    expect(renewDelay(0, 5000, 9000)).toBe(100); // already past: renew right away
  });
});

describe("ManualClock", () => {
  test("advance fires due timers in due order, ties in set order, and timers set by callbacks", () => {
    const c = new ManualClock(1000);
    const fired: string[] = [];
    c.setTimeout(() => fired.push(`b@${c.now()}`), 200);
    c.setTimeout(() => {
      fired.push(`a@${c.now()}`);
      c.setTimeout(() => fired.push(`nested@${c.now()}`), 50);
    }, 100);
    c.setTimeout(() => fired.push(`b2@${c.now()}`), 200);
    const late = c.setTimeout(() => fired.push("late"), 500);
    c.advance(199);
    expect(fired).toEqual(["a@1100", "nested@1150"]);
    expect(c.now()).toBe(1199);
    c.advance(1);
    expect(fired).toEqual(["a@1100", "nested@1150", "b@1200", "b2@1200"]);
    c.clearTimeout(late);
    c.advance(10_000);
    expect(fired).toHaveLength(4);
    expect(c.pending).toBe(0);
    expect(c.now()).toBe(11_200);
  });

  test("jump moves the wall clock without firing timers", () => {
    const c = new ManualClock(0);
    let fired = 0;
    c.setTimeout(() => fired++, 100);
    c.jump(60_000);
    expect(fired).toBe(0);
    expect(c.now()).toBe(60_000);
    expect(c.nextDue).toBe(100);
    c.advance(0);
    expect(fired).toBe(1);
  });

  test("realClock schedules and cancels", async () => {
    const t0 = realClock.now();
    const { promise, resolve } = Promise.withResolvers<number>();
    realClock.setTimeout(() => resolve(realClock.now()), 5);
    let cancelled = false;
    realClock.clearTimeout(realClock.setTimeout(() => (cancelled = true), 1));
    expect(await promise).toBeGreaterThanOrEqual(t0);
    expect(cancelled).toBe(false);
  });
});
