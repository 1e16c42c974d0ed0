/**
 * Runs `azhexgate doctor`: the checks in order — DNS, TLS, /healthz, /readyz, API key, then one
 * tunnel created, listened on, round-tripped and deleted — each reported as it finishes. A failure
 * skips what depends on it (the skipped lines say why); a created tunnel is always deleted.
 * Resolves with the exit code: 1 when any check failed, else 0 (warnings and skips do not fail).
 */
import { checkApiKey } from "./api-key.ts";
import { checkDns } from "./dns.ts";
import { checkHealthz, checkReadyz } from "./health.ts";
import type { NetOptions } from "./net.ts";
import { createReporter, scrubber, type Summary } from "./report.ts";
import type { Target } from "./target.ts";
import { checkTls } from "./tls.ts";
import { TunnelProbe } from "./tunnel.ts";
import { type CheckResult, type DoctorOptions, type Outcome, skip } from "./types.ts";

/** The checks after the API key, in order (skipped together when an earlier step blocks them). */
const TUNNEL_STEPS = ["tunnel.create", "tunnel.listen", "tunnel.roundtrip", "tunnel.delete"] as const;

export interface RunOptions extends DoctorOptions {
  target: Target;
  json: boolean;
  /** Where lines go (default stdout). */
  write?: (line: string) => void;
}

export async function runDoctor(o: RunOptions): Promise<{ exitCode: number; results: CheckResult[] }> {
  const t = o.target;
  const started = Date.now();
  const net: NetOptions = { ca: o.ca, timeoutMs: o.timeoutMs };
  const results: CheckResult[] = [];
  let probe: TunnelProbe | undefined;
  const scrub = scrubber(() => [o.apiKey ?? "", ...(probe?.secrets ?? [])]);
  const out = createReporter(o.json, o.write ?? ((l) => process.stdout.write(`${l}\n`)), scrub);

  const record = (r: Outcome, ms: number) => {
    const full: CheckResult = { ...r, ms: r.ms ?? ms };
    results.push(full);
    out.check(full);
  };
  /** Runs one step (one or several outcomes), timing it. */
  const step = async <T>(fn: () => Promise<T>, outcomes: (v: T) => Outcome[]): Promise<T> => {
    const t0 = performance.now();
    const v = await fn();
    const list = outcomes(v);
    const ms = Math.round(performance.now() - t0);
    for (const r of list) record(r, ms);
    return v;
  };
  const skipAll = (names: readonly string[], why: string) => {
    for (const n of names) record(skip(n, `not checked: ${why}`), 0);
  };

  out.begin({ api_url: t.base, domain: t.domain });
  const rest = ["tls", "health", "ready", "api_key", ...TUNNEL_STEPS];
  try {
    const dns = await step(() => checkDns(t, o.timeoutMs), (r) => r.outcomes);
    if (!dns.apiHostOk) {
      skipAll(rest, `${t.host} does not resolve`);
      return finish();
    }
    const tls = await step(() => checkTls(t, { ca: o.ca, timeoutMs: o.timeoutMs, wildcardResolves: dns.wildcardOk }), (r) => r.outcomes);
    if (!tls.apiOk) {
      // The key is never sent over a connection whose certificate did not check out.
      skipAll(rest.slice(1), `the TLS check of ${t.host} failed`);
      return finish();
    }
    const health = await step(() => checkHealthz(t, net), (r) => [r]);
    if (health.status === "fail") {
      skipAll(rest.slice(2), "/healthz failed");
      return finish();
    }
    const ready = await step(() => checkReadyz(t, net), (r) => [r]);
    const key = await step(() => checkApiKey(t, o.apiKey, net), (r) => [r]);
    if (key.status === "skip") {
      skipAll(TUNNEL_STEPS, "no API key given");
      return finish();
    }
    if (ready.status === "fail") {
      skipAll(TUNNEL_STEPS, "the gateway is not ready");
      return finish();
    }
    if (key.status === "fail") {
      skipAll(TUNNEL_STEPS, "the API key check failed");
      return finish();
    }
    probe = new TunnelProbe(t, o.apiKey!, net);
    try {
      await step(() => probe!.create(), (r) => [r]);
      if (!probe.created) {
        skipAll(TUNNEL_STEPS.slice(1), "no tunnel was created");
        return finish();
      }
      const listen = await step(() => probe!.listen(), (r) => [r]);
      const blocked =
        listen.status === "fail" ? "the listener is not connected" : !dns.wildcardOk ? `*.${t.domain} does not resolve` : !tls.wildcardOk ? `the certificate for *.${t.domain} failed its check` : undefined;
      if (blocked) skipAll(["tunnel.roundtrip"], blocked);
      else await step(() => probe!.roundTrip(), (r) => [r]);
      await step(() => probe!.remove(), (r) => [r]);
    } finally {
      await probe.close();
    }
    return finish();
  } catch (err) {
    // A bug, not a finding: say so in one line and fail the run.
    record({ name: "doctor", status: "fail", detail: `doctor itself failed: ${(err as Error)?.message ?? String(err)}`, fix: "Please report this with the output above." }, 0);
    return finish();
  }

  function finish(): { exitCode: number; results: CheckResult[] } {
    const count = (s: CheckResult["status"]) => results.filter((r) => r.status === s).length;
    const failed = count("fail");
    const summary: Summary = {
      ok: failed === 0,
      passed: count("pass"),
      failed,
      warnings: count("warn"),
      skipped: count("skip"),
      exit_code: failed === 0 ? 0 : 1,
      ms: Date.now() - started,
    };
    out.end(summary);
    return { exitCode: summary.exit_code, results };
  }
}
