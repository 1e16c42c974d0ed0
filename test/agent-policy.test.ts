/**
 * The supervisor's decision table (src/agent/policy.ts), row by row: what the agent does after each
 * kind of failure and whether it gives up (`--exit-on-fail`). Issue 18: rows for the proxy, the
 * listener quota and the management API's 404s were not asserted, so their mutants survived.
 */
import { describe, expect, test } from "bun:test";
import { classify, renewDelay } from "../src/agent/policy.ts";
import { RelayError } from "../src/hc/errors.ts";

const relay = (code: ConstructorParameters<typeof RelayError>[0], retryable: boolean) => new RelayError(code, code, retryable);
const api = (o: { code?: unknown; status?: unknown; retryable?: boolean }) => Object.assign(new Error("api"), o);

describe("classify: relay errors", () => {
  test("listener quota: retry as is with backoff, never permanent (even when not retryable)", () => {
    for (const r of [true, false]) for (const tried of ["none", "renew", "connect"] as const)
      expect(classify(relay("listener_limit", r), tried)).toStrictEqual({ fix: "none", permanent: false, code: "listener_limit" });
  });
  test("the HTTP proxy: retry as is; permanent only when it refused on purpose (not retryable)", () => {
    for (const code of ["proxy_refused", "proxy_unreachable"] as const) {
      expect(classify(relay(code, true), "renew")).toStrictEqual({ fix: "none", permanent: false, code });
      expect(classify(relay(code, false), "none")).toStrictEqual({ fix: "none", permanent: true, code });
    }
  });
  test("token expired → renew; unauthorized twice → permanent unless roles are still propagating", () => {
    expect(classify(relay("token_expired", false), "renew")).toStrictEqual({ fix: "renew", permanent: false, code: "token_expired" });
    expect(classify(relay("forbidden", false), "renew")).toStrictEqual({ fix: "renew", permanent: true, code: "forbidden" });
    expect(classify(relay("forbidden", false), "renew", { rolePropagating: true })).toStrictEqual({ fix: "renew", permanent: false, code: "forbidden" });
  });
  test("not found: claim again; permanent only after a fresh claim 404s too; deleted: claim again, never permanent", () => {
    expect(classify(relay("not_found", false), "connect")).toStrictEqual({ fix: "connect", permanent: true, code: "not_found" });
    expect(classify(relay("not_found", false), "renew")).toStrictEqual({ fix: "connect", permanent: false, code: "not_found" });
    expect(classify(relay("entity_deleted", false), "connect")).toStrictEqual({ fix: "connect", permanent: false, code: "entity_deleted" });
  });
  test("other relay errors: retry when retryable, else claim afresh and give up", () => {
    expect(classify(relay("server_error", true), "connect")).toStrictEqual({ fix: "none", permanent: false, code: "server_error" });
    expect(classify(relay("server_error", false), "none")).toStrictEqual({ fix: "connect", permanent: true, code: "server_error" });
  });
});

describe("classify: errors from the management API (connect / renew)", () => {
  test("404-like (code not_found / tunnel_not_found, or status 404): claim again; permanent after a failed claim that is not retryable", () => {
    for (const e of [api({ code: "not_found" }), api({ code: "tunnel_not_found" }), api({ status: 404 })]) {
      const code = (e as { code?: string }).code ?? "error";
      expect(classify(e, "renew")).toStrictEqual({ fix: "connect", permanent: false, code });
      expect(classify(Object.assign(e, { retryable: false }), "renew")).toStrictEqual({ fix: "connect", permanent: false, code });
      expect(classify(e, "connect")).toStrictEqual({ fix: "connect", permanent: true, code });
      expect(classify(Object.assign(e, { retryable: true }), "connect")).toStrictEqual({ fix: "connect", permanent: false, code });
    }
  });
  test("anything else repeats the fix it tried; permanent only when marked not retryable; odd codes and statuses are ignored", () => {
    expect(classify(api({ code: "rate_limited" }), "renew")).toStrictEqual({ fix: "renew", permanent: false, code: "rate_limited" });
    expect(classify(api({ code: "bad", retryable: false }), "none")).toStrictEqual({ fix: "none", permanent: true, code: "bad" });
    expect(classify(api({ code: "" }), "none")).toStrictEqual({ fix: "none", permanent: false, code: "error" });
    expect(classify(api({ code: 404 }), "none")).toStrictEqual({ fix: "none", permanent: false, code: "error" });
    expect(classify(api({ status: "404" }), "none")).toStrictEqual({ fix: "none", permanent: false, code: "error" });
    expect(classify("a string", "connect")).toStrictEqual({ fix: "connect", permanent: false, code: "error" });
    expect(classify(undefined, "none")).toStrictEqual({ fix: "none", permanent: false, code: "error" });
  });
});

describe("renewDelay", () => {
  test("80 % of the lifetime, at least 1 s before expiry, never sooner than 100 ms", () => {
    expect(renewDelay(0, 100_000, 0)).toBe(80_000);
    expect(renewDelay(0, 100_000, 30_000)).toBe(50_000);
    expect(renewDelay(0, 3_000, 0)).toBe(2_000); // 80 % = 2.4 s, but 1 s before expiry = 2 s
    expect(renewDelay(0, 100_000, 90_000)).toBe(100);
    expect(renewDelay(1_000, 500, 0)).toBe(100); // expired at issue: never negative
  });
});

describe("Backoff settings", () => {
  test("a base of 0 or a cap below the base is refused with a sentence saying the rule", async () => {
    const { Backoff } = await import("../src/agent/backoff.ts");
    expect(() => new Backoff({ baseMs: 0 })).toThrow(new RangeError("backoff needs 0 < baseMs <= capMs"));
    expect(() => new Backoff({ baseMs: 2000, capMs: 1000 })).toThrow(new RangeError("backoff needs 0 < baseMs <= capMs"));
    expect(() => new Backoff({ baseMs: 1000, capMs: 1000 })).not.toThrow();
  });
});
