/**
 * What every doctor check produces, and the options one run of `azhexgate doctor` takes.
 * A check ends as pass, fail, warn (worth fixing, does not fail the run) or skip (not run, with
 * the reason: an earlier check failed, or it needs something not given, like an API key).
 */
export type CheckStatus = "pass" | "fail" | "warn" | "skip";

export interface CheckResult {
  /** Stable id, e.g. `dns.wildcard`, `tls.api`, `ready`, `tunnel.roundtrip`. */
  name: string;
  status: CheckStatus;
  /** What was checked and what was found, one sentence. */
  detail: string;
  /** For fail and warn: what to do about it. */
  fix?: string;
  /** Time the check took. */
  ms: number;
}

export interface DoctorOptions {
  /** The management API URL as the user gave it, e.g. `https://api.example.com`. */
  apiUrl: string;
  apiKey?: string;
  /** PEM text of extra trusted CA certificates (`--ca FILE`). */
  ca?: string;
  /** Per network step (default 10 s). */
  timeoutMs: number;
}

/** What a check function returns; `ms` only when it timed the check itself (one of several run together). */
export type Outcome = Omit<CheckResult, "ms"> & { ms?: number };

export const pass = (name: string, detail: string): Outcome => ({ name, status: "pass", detail });
export const fail = (name: string, detail: string, fix: string): Outcome => ({ name, status: "fail", detail, fix });
export const warn = (name: string, detail: string, fix: string): Outcome => ({ name, status: "warn", detail, fix });
export const skip = (name: string, detail: string): Outcome => ({ name, status: "skip", detail });
