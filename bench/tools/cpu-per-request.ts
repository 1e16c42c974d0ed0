/**
 * CPU cost per request of each azhexgate process: starts the azhexgate row (origin, relay emulator,
 * gateway, agent — each its own process, as in `bun run bench`), runs wrk against the tunnel and
 * reads each process's CPU time from /proc before and after. Per-request CPU is steadier than
 * requests/s on a shared, noisy machine, so it is what to compare when changing the hot path.
 *
 *   bun bench/tools/cpu-per-request.ts [PATH=/small] [CONNS=50] [SECS=3] [REPS=3]
 *
 * Extra bun flags per role: BENCH_BUN_FLAGS_GATEWAY / _AGENT / _RELAY (e.g. "--cpu-prof").
 * The inspector's cost: run once with BENCH_INSPECT=1 (the agent captures every request, as
 * `azhexgate start` does by default) and once without (as with --no-inspect), and compare the
 * agent column.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { spawn, stopAll } from "../lib/proc.ts";
import { azhexgate } from "../lib/rows.ts";

const [path = "/small", conns = "50", secs = "3", reps = "3"] = process.argv.slice(2);
const cpuSeconds = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, USER_HZ = 100
};

try {
  const origin = await spawn("origin", ["bun", join(import.meta.dir, "../roles/origin.ts"), "0"]);
  const row = await azhexgate.start(Number(origin.ready.port)); // relay, gateway, agent: as in `bun run bench`
  const pids = { origin: origin.pid, ...row.procs };
  const url = `${row.base}${path}`;
  const wrk = (s: string) => Bun.spawnSync(["wrk", "-t1", `-c${conns}`, `-d${s}s`, "-H", `Host: ${row.host}`, url], { timeout: (Number(s) + 10) * 1000 }).stdout.toString();
  wrk("1"); // warm-up (sessions dialed, JIT warm)
  for (let r = 0; r < Number(reps); r++) {
    const before = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, cpuSeconds(p)]));
    const out = wrk(secs);
    const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
    const n = rps * Number(secs);
    if (!n) throw new Error(`wrk measured nothing:\n${out}`);
    const per = Object.entries(pids).map(([k, p]) => `${k} ${(((cpuSeconds(p) - before[k]!) * 1e6) / n).toFixed(1)}`);
    console.log(`${Math.round(rps).toLocaleString("en-US")} req/s | CPU µs per request: ${per.join("  ")}`);
  }
} finally {
  await stopAll();
}
