/**
 * CPU cost per request of each azhexgate process: starts the azhexgate row (origin, relay emulator,
 * gateway, agent — each its own process, as in `bun run bench`), runs wrk against the tunnel and
 * reads each process's CPU time from /proc before and after. Per-request CPU is steadier than
 * requests/s on a shared, noisy machine, so it is what to compare when changing the hot path.
 *
 *   bun bench/tools/cpu-per-request.ts [PATH=/small] [CONNS=50] [SECS=3] [REPS=3]
 *
 * Extra bun flags per role: BENCH_BUN_FLAGS_GATEWAY / _AGENT / _RELAY (e.g. "--cpu-prof").
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { spawn, stopAll } from "../lib/proc.ts";

const [path = "/small", conns = "50", secs = "3", reps = "3"] = process.argv.slice(2);
const ROLES = join(import.meta.dir, "../roles");
const flags = (role: string) => (process.env[`BENCH_BUN_FLAGS_${role.toUpperCase()}`] ?? "").split(" ").filter(Boolean);
const cpuSeconds = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, USER_HZ = 100
};

try {
  const origin = await spawn("origin", ["bun", join(ROLES, "origin.ts"), "0"]);
  const id = "12345678";
  const hc = `hc-${id}`;
  const relay = await spawn("relay", ["bun", ...flags("relay"), join(ROLES, "relay.ts"), "0", hc]);
  const env = {
    BENCH_RELAY: String(relay.ready.endpoint),
    BENCH_KEY_NAME: String(relay.ready.keyName),
    BENCH_KEY: String(relay.ready.key),
    BENCH_TUNNEL: id,
    BENCH_HC: hc,
    BENCH_ORIGIN: `http://127.0.0.1:${origin.ready.port}`,
  };
  const gateway = await spawn("gateway", ["bun", "--max-http-header-size=262144", ...flags("gateway"), join(ROLES, "gateway.ts"), "0"], { env });
  const agent = await spawn("agent", ["bun", ...flags("agent"), join(ROLES, "agent.ts")], { env });
  const pids = { origin: origin.pid, relay: relay.pid, gateway: gateway.pid, agent: agent.pid };
  const url = `http://127.0.0.1:${gateway.ready.port}${path}`;
  const wrk = (s: string) => Bun.spawnSync(["wrk", "-t1", `-c${conns}`, `-d${s}s`, "-H", `Host: ${id}.localhost`, url], { timeout: (Number(s) + 10) * 1000 }).stdout.toString();
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
