/**
 * The performance targets (issue 13), computed from one run's results: each line says what the
 * run measured for azhexgate and whether the target is met. `bun run bench` prints the table at
 * the end of table.md and stores the lines in the run's JSON.
 */
import { fmt, type ScenarioResult } from "./report.ts";

export interface Target {
  target: string;
  value: string;
  status: "met" | "missed" | "not measured";
}

const MiB = 1 << 20;

export function targets(results: Record<string, ScenarioResult>, bigBytes: number): Target[] {
  const rowv = (s: string, row: string, k: string) => (results[s]?.rows[row]?.status === "ok" ? results[s]!.rows[row]!.median[k] : undefined);
  const az = (s: string, k: string) => rowv(s, "azhexgate", k);
  const t = (target: string, v: number | undefined, ok: (v: number) => boolean, show: (v: number) => string): Target => ({
    target,
    value: v === undefined || !Number.isFinite(v) ? "–" : show(v),
    status: v === undefined || !Number.isFinite(v) ? "not measured" : ok(v) ? "met" : "missed",
  });
  /** One target over several figures (all must hold); value lists each. */
  const all = (target: string, vs: Array<[string, number | undefined]>, ok: (v: number) => boolean, unit: string): Target => {
    const got = vs.filter((x): x is [string, number] => x[1] !== undefined && Number.isFinite(x[1]));
    return {
      target,
      value: got.length ? got.map(([k, v]) => `${k} ${fmt(v)}`).join(", ") + ` ${unit}` : "–",
      status: !got.length ? "not measured" : got.every(([, v]) => ok(v)) ? "met" : "missed",
    };
  };
  const size = bigBytes === 1024 * MiB ? "1 GiB" : `${bigBytes / MiB} MiB (this run's size)`;
  const transfers = [["1 MiB", "mib"], ["up", "bigup"], ["down", "bigdown"]] as const;
  const tunnel = (s: string) => az(s, "cpu_total_norelay");
  const sshTotal = rowv("get50", "ssh -R", "cpu_total");
  // ahead of ssh -R and wstunnel on every small-request and WebSocket scenario (throughput)
  const races: string[] = [];
  let raced = 0;
  for (const [s, k] of [["get1", "req_s"], ["get50", "req_s"], ["get256", "req_s"], ["ws64B", "msg_s"], ["ws64KiB", "msg_s"]] as const) {
    const ours = az(s, k);
    if (ours === undefined) continue;
    for (const p of ["ssh -R", "wstunnel"]) {
      const theirs = rowv(s, p, k);
      if (theirs === undefined) continue;
      raced++;
      if (ours <= theirs) races.push(`${s} (${(ours / theirs).toFixed(2)} × ${p})`);
    }
  }
  return [
    t("small GET, 50 conns: gateway ≤ 15 µs CPU per request", az("get50", "cpu_gateway"), (v) => v <= 15, (v) => `${fmt(v)} µs`),
    t("small GET, 50 conns: agent ≤ 12 µs CPU per request", az("get50", "cpu_agent"), (v) => v <= 12, (v) => `${fmt(v)} µs`),
    t(
      "moonshot: gateway + agent ≤ ssh -R (sshd + ssh) per small GET, same run",
      tunnel("get50") !== undefined && sshTotal ? tunnel("get50")! / sshTotal : undefined,
      (v) => v <= 1,
      (v) => `${fmt(tunnel("get50"))} vs ${fmt(sshTotal)} µs (${v.toFixed(2)} ×)`,
    ),
    all("gateway ≤ 0.5 ms CPU per MiB", transfers.map(([l, s]) => [l, az(s, "cpu_gateway")]), (v) => v <= 0.5, "ms/MiB"),
    all("agent ≤ 0.5 ms CPU per MiB", transfers.map(([l, s]) => [l, az(s, "cpu_agent")]), (v) => v <= 0.5, "ms/MiB"),
    t("1 MiB downloads ≥ 1 GB/s", az("mib", "MB_s"), (v) => v >= 1000, (v) => `${fmt(v)} MB/s`),
    t(`${size} upload ≥ 600 MB/s`, az("bigup", "MB_s"), (v) => v >= 600, (v) => `${fmt(v)} MB/s`),
    t("WebSocket 64 B echo ≥ 60,000 msg/s", az("ws64B", "msg_s"), (v) => v >= 60_000, (v) => `${fmt(v)} msg/s`),
    ...(["relay", "gateway", "agent"] as const).map((g) =>
      all(`${g}: RSS growth 10 MiB → ${size} < 32 MB`, [["up", az("bigup", `growth_${g}_MB`)], ["down", az("bigdown", `growth_${g}_MB`)]], (v) => v < 32, "MB"),
    ),
    t(
      "latency at 1 conn ≤ +0.3 ms p50 over direct",
      az("get1", "p50_ms") !== undefined && rowv("get1", "direct", "p50_ms") !== undefined ? az("get1", "p50_ms")! - rowv("get1", "direct", "p50_ms")! : undefined,
      (v) => v <= 0.3,
      (v) => `+${v.toFixed(3)} ms`,
    ),
    {
      target: "ahead of ssh -R and wstunnel on every small-GET and WebSocket scenario (req/s, msg/s)",
      value: !raced ? "–" : races.length ? `behind on ${races.join(", ")}` : `ahead in all ${raced} comparisons`,
      status: !raced ? "not measured" : races.length ? "missed" : "met",
    },
    // earlier targets (the first benchmark issue), still reported
    t("cold first byte ≤ 20 ms", az("cold", "first_byte_ms"), (v) => v <= 20, (v) => `${fmt(v)} ms`),
    t("idle WebSocket < 20 KB each at the gateway", az("idle", "kb_per_conn_gateway"), (v) => v < 20, (v) => `${fmt(v)} KB`),
  ];
}

export function targetsMarkdown(ts: Target[]): string {
  return ["| target | azhexgate (this run) | met / missed |", "|---|---|---|", ...ts.map((x) => `| ${x.target} | ${x.value} | ${x.status} |`)].join("\n");
}
