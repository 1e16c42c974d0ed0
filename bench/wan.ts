/**
 * `bun run bench:wan` — throughput and latency at real distances (issue 17). Every row's legs go
 * through a userspace delay line (bench/lib/delay-proxy.ts, RTT/2 each way per leg, no bandwidth
 * limit): azhexgate's gateway↔relay and agent↔relay, and ssh -R's / wstunnel's client↔server
 * connection through two delay proxies in a chain (same path length; bench/wan-rows.ts).
 *
 *   bun run bench:wan                  RTT per leg 0, 20, 50, 100 ms; 256 MiB at 50 ms, 64 MiB elsewhere
 *   options: --rtt 0,20,50,100  --mib 64  --accept-rtt 50  --accept-mib 256  --rows azhexgate,ssh,wstunnel  --gets 20
 *
 * Per row and RTT: one download and one upload (MB/s), 8 parallel downloads (MB/s total), small
 * GETs on one keep-alive connection (p50 over the floor = the sum of the injected delays, 4 ×
 * RTT/2), time to first byte of a cold tunnel (the developer-side end restarted, curl's clock; and 2 s after a restart, when the gateway has re-dialed it),
 * and the peak RSS of the tunnel's two ends during the transfers.
 * Output: bench/results/wan-<timestamp>.json and bench/results/wan-<timestamp>/table.md.
 *
 * Driver mode (own process, used by the runner): bun bench/wan.ts --driver down|up|par|gets URL HOST N [K]
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { run, sampleRss, spawn, stopAll } from "./lib/proc.ts";
import { WAN_ROWS, type WanHandle } from "./wan-rows.ts";

const MiB = 1 << 20;
const args = process.argv.slice(2);

if (args[0] === "--driver") {
  const [, mode, base, hostArg, nS, kS] = args;
  const headers: Record<string, string> = hostArg && hostArg !== "-" ? { Host: hostArg } : {};
  const n = Number(nS);
  const BLOCK = new Uint8Array(MiB).fill(120);
  const down = async (bytes: number) => {
    const res = await fetch(`${base}/down?n=${bytes}`, { headers, signal: AbortSignal.timeout(600_000) });
    let got = 0;
    for await (const c of res.body!) got += c.length;
    if (got !== bytes) throw new Error(`download got ${got} of ${bytes}`);
  };
  const up = async (bytes: number) => {
    let left = bytes;
    const body = new ReadableStream({
      pull(c) {
        if (left <= 0) return c.close();
        const k = Math.min(MiB, left);
        left -= k;
        c.enqueue(BLOCK.slice(0, k));
      },
    }, { highWaterMark: 0 });
    const res = await fetch(`${base}/up`, { method: "POST", headers, body, duplex: "half", signal: AbortSignal.timeout(600_000) } as RequestInit);
    const got = Number(await res.text());
    if (got !== bytes) throw new Error(`upload delivered ${got} of ${bytes}`);
  };
  const t = performance.now();
  if (mode === "down") await down(n);
  else if (mode === "up") await up(n);
  else if (mode === "par") await Promise.all(Array.from({ length: Number(kS ?? 8) }, () => down(n)));
  else if (mode === "gets") {
    const times: number[] = [];
    for (let i = 0; i < n + 3; i++) {
      const t0 = performance.now();
      const r = await fetch(`${base}/small`, { headers, signal: AbortSignal.timeout(10_000) });
      await r.arrayBuffer();
      if (i >= 3) times.push(performance.now() - t0); // 3 warm-ups
    }
    times.sort((a, b) => a - b);
    console.log(`RESULT ${JSON.stringify({ p50: times[Math.floor(times.length / 2)], min: times[0] })}`);
    process.exit(0);
  }
  console.log(`RESULT ${JSON.stringify({ seconds: (performance.now() - t) / 1000 })}`);
  process.exit(0);
}

const opt = (name: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const rtts = (opt("rtt") ?? "0,20,50,100").split(",").map(Number);
const mib = Number(opt("mib") ?? 64);
const acceptRtt = Number(opt("accept-rtt") ?? 50);
const acceptMib = Number(opt("accept-mib") ?? 256);
const gets = Number(opt("gets") ?? 20);
const rowFilter = opt("rows")?.split(",");
const rows = WAN_ROWS.filter((r) => !rowFilter || rowFilter.some((f) => r.name.startsWith(f)));
const started = Date.now();
const log = (...a: unknown[]) => console.error(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s]`, ...a);

async function driver(h: WanHandle, mode: string, n: number, k = 8): Promise<Record<string, number>> {
  const out = await run(["bun", import.meta.path, "--driver", mode, h.base, h.host ?? "-", String(n), String(k)], 900_000);
  const line = out.split("\n").find((l) => l.startsWith("RESULT "));
  if (!line) throw new Error(`driver ${mode} failed: ${out.slice(-300)}`);
  return JSON.parse(line.slice(7));
}

async function ttfb(h: WanHandle): Promise<number> {
  const a = ["curl", "-s", "-o", "/dev/null", "-m", "20", "-w", "%{http_code} %{time_starttransfer}", `${h.base}/small`];
  if (h.host) a.push("-H", `Host: ${h.host}`);
  const [code, t] = (await run(a, 25_000)).trim().split(" ");
  if (code !== "200") throw new Error(`cold request answered ${code}`);
  return Number(t) * 1000;
}

type Res = Record<string, number | string>;
const origin = await spawn("origin", ["bun", join(import.meta.dir, "roles/origin.ts"), "0"]);
const originPort = Number(origin.ready.port);
const results: Array<{ rtt: number; row: string; r: Res }> = [];
process.on("SIGINT", () => void stopAll().then(() => process.exit(130)));

try {
  for (const rtt of rtts) {
    const d = rtt / 2;
    const bytes = (rtt === acceptRtt ? acceptMib : mib) * MiB;
    for (const row of rows) {
      const r: Res = { floor_ms: 4 * d, mib: bytes / MiB };
      let h: WanHandle | undefined;
      try {
        h = await row.start(originPort, d);
        const rss = sampleRss(h.ends, 25);
        r.down_MB_s = bytes / 1e6 / (await driver(h, "down", bytes)).seconds!;
        r.up_MB_s = bytes / 1e6 / (await driver(h, "up", bytes)).seconds!;
        for (const [g, v] of Object.entries(rss.stop())) r[`rss_${g}_MB`] = v / 1e6;
        r.par8_MB_s = bytes / 1e6 / (await driver(h, "par", bytes / 8, 8)).seconds!;
        const g = await driver(h, "gets", gets);
        r.get_p50_ms = g.p50!;
        r.get_over_floor_ms = g.p50! - 4 * d;
        await h.restartClient();
        r.cold_ttfb_ms = await ttfb(h);
        // the developer-side end back a moment before the first visitor (a restart, a laptop waking up)
        await h.restartClient();
        await Bun.sleep(2000);
        r.back_ttfb_ms = await ttfb(h);
      } catch (e) {
        r.error = (e as Error).message.split("\n")[0]!;
      } finally {
        await h?.stop().catch(() => {});
      }
      results.push({ rtt, row: row.name, r });
      log(`rtt ${rtt} ms ${row.name.padEnd(10)} ${Object.entries(r).map(([k, v]) => `${k}=${typeof v === "number" ? v.toFixed(1) : v}`).join(" ")}`);
    }
  }
} finally {
  await stopAll();
}

const f = (v: unknown, digits = 1) => (typeof v === "number" && Number.isFinite(v) ? v.toFixed(digits) : "–");
const rssOf = (r: Res) => Object.entries(r).filter(([k]) => k.startsWith("rss_")).map(([k, v]) => `${k.slice(4, -3)} ${f(v, 0)}`).join(", ");
const lines = [
  "| RTT per leg | row | MiB | download MB/s | upload MB/s | 8 parallel MB/s | small GET p50 (floor) | over floor | cold TTFB | TTFB 2 s after a restart | peak RSS MB (transfers) |",
  "|---|---|---|---|---|---|---|---|---|---|---|",
  ...results.map(({ rtt, row, r }) =>
    `| ${rtt} ms | ${row} | ${r.mib} | ${f(r.down_MB_s)} | ${f(r.up_MB_s)} | ${f(r.par8_MB_s)} | ${f(r.get_p50_ms)} ms (${f(r.floor_ms, 0)}) | ${f(r.get_over_floor_ms)} ms | ${f(r.cold_ttfb_ms)} ms | ${f(r.back_ttfb_ms)} ms | ${rssOf(r)}${r.error ? ` — error: ${r.error}` : ""} |`),
];
const acc = results.find((x) => x.rtt === acceptRtt && x.row === "azhexgate")?.r;
const num = (v: unknown) => (typeof v === "number" ? v : undefined);
const target = (name: string, v: number | undefined, ok: (v: number) => boolean, show: string) =>
  `| ${name} | ${v === undefined ? "–" : show} | ${v === undefined ? "not measured" : ok(v) ? "met" : "missed"} |`;
const targets = acc
  ? [
      "| target (azhexgate, RTT " + acceptRtt + " ms per leg) | value | status |",
      "|---|---|---|",
      target(`one ${acc.mib} MiB download ≥ 100 MB/s`, num(acc.down_MB_s), (v) => v >= 100, `${f(acc.down_MB_s)} MB/s`),
      target(`one ${acc.mib} MiB upload ≥ 100 MB/s`, num(acc.up_MB_s), (v) => v >= 100, `${f(acc.up_MB_s)} MB/s`),
      target("gateway RSS < 150 MB", num(acc.rss_gateway_MB), (v) => v < 150, `${f(acc.rss_gateway_MB, 0)} MB`),
      target("agent RSS < 150 MB", num(acc.rss_agent_MB), (v) => v < 150, `${f(acc.rss_agent_MB, 0)} MB`),
      target("small GET within 5 ms of the floor", num(acc.get_over_floor_ms), (v) => v <= 5, `+${f(acc.get_over_floor_ms)} ms`),
    ].join("\n")
  : "";
const date = new Date().toISOString();
const head = `Machine: ${cpus().length} cores, ${cpus()[0]?.model ?? "?"}, Bun ${Bun.version}; ${date}. Delay each way per leg = RTT/2; floor = 4 × RTT/2.`;
const table = `${head}\n\n${lines.join("\n")}\n\n${targets}\n`;
const stamp = `wan-${date.replace(/[:.]/g, "-")}`;
const dir = join(import.meta.dir, "results", stamp);
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, "table.md"), table);
writeFileSync(join(dir, "..", `${stamp}.json`), JSON.stringify({ date, rtts, mib, acceptRtt, acceptMib, results }, null, 2));
console.log(table);
console.log(`written bench/results/${stamp}.json and bench/results/${stamp}/`);
process.exit(0);
