/**
 * The scenarios. Each measures one row once (one sample) and returns named numbers; the runner
 * interleaves rows across rounds and takes medians. Load comes from separate processes: wrk (HTTP),
 * bench/drivers/ws.ts (WebSocket), bench/drivers/big.ts (one large upload / download).
 */
import { join } from "node:path";
import { cpuWindow, run, sampleRss, spawn, treeRss } from "./proc.ts";
import type { RowHandle } from "./rows.ts";

export interface Metric {
  key: string;
  unit: string;
  better: "higher" | "lower";
  /** Shown and compared as a ratio to the direct row (false for memory figures). */
  ratio?: boolean;
}

export interface Ctx {
  short: boolean;
  originPid: number;
  /** seconds per wrk / ws sample */
  secs: number;
  bigBytes: number;
  idleConns: number;
  idleHoldMs: number;
}

export interface Scenario {
  key: string;
  title: string;
  metrics: Metric[];
  /** Restart the rows before this scenario (memory figures start from a fresh process). */
  fresh?: boolean;
  rounds?: (ctx: Ctx, rounds: number) => number;
  /**
   * CPU time of the row's own processes (origin and load generator excluded) per unit of work:
   * the measure returns `cpu_<group>`, `cpu_total` (and `cpu_total_norelay` for azhexgate) in this unit.
   */
  cpu?: { unit: "µs/req" | "µs/msg" | "ms/MiB" };
  measure(row: RowHandle, ctx: Ctx, round: number): Promise<Record<string, number>>;
}

const BENCH = join(import.meta.dir, "..");
const MB = 1e6;

interface WrkOut {
  requests: number;
  bytes: number;
  duration_us: number;
  errors: number;
  status_errors: number;
  p50_us: number;
  p90_us: number;
  p99_us: number;
}

export async function wrk(row: RowHandle, path: string, conns: number, secs: number): Promise<WrkOut> {
  const args = ["wrk", "-t1", `-c${conns}`, `-d${secs}s`, "--timeout", "10s", "-s", join(BENCH, "lua/report.lua")];
  if (row.host) args.push("-H", `Host: ${row.host}`);
  args.push(`${row.base}${path}`);
  const out = await run(args, (secs + 30) * 1000);
  const line = out.split("\n").find((l) => l.startsWith("WRK "));
  if (!line) throw new Error(`wrk printed no summary: ${out.slice(-400)}`);
  const r = JSON.parse(line.slice(4)) as WrkOut;
  if (r.requests === 0) throw new Error("wrk completed no request");
  if (r.status_errors + r.errors > Math.max(5, r.requests * 0.01))
    throw new Error(`wrk: ${r.status_errors} non-2xx and ${r.errors} socket errors in ${r.requests} requests`);
  return r;
}

const smallGet = (conns: number): Scenario => ({
  key: `get${conns}`,
  title: `small GET (13 B), ${conns} connection${conns > 1 ? "s" : ""}`,
  metrics: [
    { key: "req_s", unit: "req/s", better: "higher", ratio: true },
    { key: "p50_ms", unit: "ms", better: "lower", ratio: true },
    { key: "p99_ms", unit: "ms", better: "lower", ratio: true },
  ],
  cpu: { unit: "µs/req" },
  // bench:ci sets its CPU-per-request floors on get50: seven samples there, for a steadier median
  ...(conns === 50 ? { rounds: (ctx: Ctx, rounds: number) => (ctx.short ? Math.max(rounds, 7) : rounds) } : {}),
  async measure(row, ctx) {
    const cpu = cpuWindow(row.procs);
    const r = await wrk(row, "/small", conns, ctx.secs);
    return { req_s: r.requests / (r.duration_us / 1e6), p50_ms: r.p50_us / 1000, p99_ms: r.p99_us / 1000, ...cpu.per(r.requests, 1e6) };
  },
});

interface DriverOut {
  [k: string]: number | Record<string, number> | undefined;
  /** CPU seconds per process group during the measuring window (ws echo, with BENCH_CPU_GROUPS). */
  cpu?: Record<string, number>;
}
async function driver(args: string[], timeoutMs: number, env?: Record<string, string>): Promise<Record<string, number> & DriverOut> {
  const out = await run(["bun", ...args], timeoutMs, env);
  const line = out.split("\n").find((l) => l.startsWith("RESULT "));
  if (!line) throw new Error(`driver printed no result: ${out.slice(-300)}`);
  return JSON.parse(line.slice(7));
}

const wsUrl = (row: RowHandle) => row.base.replace(/^http/, "ws") + "/ws";

const wsEcho = (size: number, label: string): Scenario => ({
  key: `ws${label}`,
  title: `WebSocket echo, ${label} messages, 50 connections`,
  metrics: [
    { key: "msg_s", unit: "msg/s", better: "higher", ratio: true },
    { key: "p50_ms", unit: "ms", better: "lower", ratio: true },
    { key: "p99_ms", unit: "ms", better: "lower", ratio: true },
  ],
  cpu: { unit: "µs/msg" },
  async measure(row, ctx) {
    const r = await driver([join(BENCH, "drivers/ws.ts"), "echo", wsUrl(row), row.host ?? "-", "50", String(size), String(ctx.secs * 1000)], (ctx.secs + 40) * 1000, {
      BENCH_CPU_GROUPS: JSON.stringify(row.procs),
    });
    if (!r.msgs) throw new Error("no echo came back");
    return { msg_s: r.msgs / r.seconds!, p50_ms: r.p50_ms!, p99_ms: r.p99_ms!, ...cpuPer(r.cpu ?? {}, r.msgs, 1e6, "relay" in row.procs) };
  },
});

/** The figures cpuWindow returns, from CPU seconds per group measured elsewhere (the ws driver). */
function cpuPer(secs: Record<string, number>, count: number, scale: number, relay: boolean): Record<string, number> {
  const out: Record<string, number> = {};
  let total = 0;
  for (const [k, v] of Object.entries(secs)) total += out[`cpu_${k}`] = (v * scale) / count;
  out.cpu_total = total;
  if (relay) out.cpu_total_norelay = total - (out.cpu_relay ?? 0);
  return out;
}

const MiB = 1 << 20;
const big = (dir: "up" | "down"): Scenario => ({
  key: `big${dir}`,
  title: `large ${dir === "up" ? "upload" : "download"} (one request), peak RSS`,
  fresh: true,
  metrics: [{ key: "MB_s", unit: "MB/s", better: "higher", ratio: true }],
  cpu: { unit: "ms/MiB" },
  async measure(row, ctx, round) {
    const groups = { ...row.procs, origin: ctx.originPid };
    const once = async (bytes: number) => {
      const s = sampleRss(groups, 25);
      const cpu = cpuWindow(row.procs);
      try {
        const r = await driver([join(BENCH, "drivers/big.ts"), dir, row.base, row.host ?? "-", String(bytes)], 300_000);
        return { mbs: r.bytes! / MB / r.seconds!, peak: s.stop(), cpu: cpu.per(r.bytes! / MiB, 1e3) };
      } catch (e) {
        s.stop();
        throw e;
      }
    };
    const out: Record<string, number> = {};
    // Round 0 on a fresh row: a 10 MiB transfer first, so growth 10 MiB → big is visible.
    const small = round === 0 ? await once(10 * MiB) : undefined;
    const r = await once(ctx.bigBytes);
    out.MB_s = r.mbs;
    Object.assign(out, r.cpu);
    for (const [g, v] of Object.entries(r.peak)) {
      out[`rss_${g}_MB`] = v / MB;
      if (small) out[`growth_${g}_MB`] = (v - small.peak[g]!) / MB;
    }
    return out;
  },
});

export const SCENARIOS: Scenario[] = [
  smallGet(1),
  smallGet(50),
  smallGet(256),
  {
    key: "mib",
    title: "1 MiB downloads, 8 connections",
    metrics: [{ key: "MB_s", unit: "MB/s", better: "higher", ratio: true }],
    cpu: { unit: "ms/MiB" },
    async measure(row, ctx) {
      const cpu = cpuWindow(row.procs);
      const r = await wrk(row, "/mib", 8, ctx.secs);
      return { MB_s: r.bytes / MB / (r.duration_us / 1e6), p50_ms: r.p50_us / 1000, ...cpu.per(r.bytes / MiB, 1e3) };
    },
  },
  big("up"),
  big("down"),
  wsEcho(64, "64B"),
  wsEcho(64 * 1024, "64KiB"),
  {
    key: "idle",
    title: "idle WebSockets held open, memory per connection",
    fresh: true,
    rounds: () => 1,
    metrics: [],
    async measure(row, ctx) {
      const groups = { ...row.procs, origin: ctx.originPid };
      await Bun.sleep(500);
      const before = Object.fromEntries(Object.entries(groups).map(([g, p]) => [g, treeRss(p)]));
      const d = await spawn("ws-idle", ["bun", join(BENCH, "drivers/ws.ts"), "idle", wsUrl(row), row.host ?? "-", String(ctx.idleConns), String(ctx.idleHoldMs)], {
        timeoutMs: 150_000,
      });
      const open = Number(d.ready.open);
      try {
        if (open < ctx.idleConns) throw new Error(`only ${open} of ${ctx.idleConns} WebSockets opened (${d.ready.failed} failed)`);
        await Bun.sleep(Math.min(2000, ctx.idleHoldMs / 2));
        const out: Record<string, number> = { open };
        for (const [g, p] of Object.entries(groups)) out[`kb_per_conn_${g}`] = (treeRss(p) - before[g]!) / 1000 / open;
        return out;
      } finally {
        await d.stop();
      }
    },
  },
  {
    key: "cold",
    title: "cold tunnel: first request after the agent side connects",
    metrics: [{ key: "first_byte_ms", unit: "ms", better: "lower", ratio: true }],
    async measure(row) {
      if (!row.coldStart) throw new Error("no agent side to restart");
      return { first_byte_ms: await row.coldStart() };
    },
  },
];
