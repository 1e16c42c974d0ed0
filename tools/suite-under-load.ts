/**
 * The suite under load: runs the whole test suite N times in a row (default 5) while `bun run bench`
 * runs over and over in the background, and stops at the first failing run. It answers "does the
 * suite depend on the machine being idle?" (issue 18: flake-proof timing).
 *
 *   bun tools/suite-under-load.ts [RUNS=5] [--no-bench]
 *
 * Each run's output goes to reports/suite-under-load/run-<n>.log (git-ignored), the bench's to
 * bench.log; the summary line per run (pass / fail counts, minutes, load average) is printed.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";

const args = process.argv.slice(2);
const runs = Number(args.find((a) => /^\d+$/.test(a)) ?? 5);
const withBench = !args.includes("--no-bench");
const root = join(import.meta.dir, "..");
const outDir = join(root, "reports/suite-under-load");
mkdirSync(outDir, { recursive: true });

let stopping = false;
let bench: Bun.Subprocess | undefined;
let benchRuns = 0;
const benchLog: string[] = [];
const benchLoop = async () => {
  while (!stopping) {
    bench = Bun.spawn(["bun", "bench/run.ts"], { cwd: root, stdout: "pipe", stderr: "pipe" });
    const [out, err] = await Promise.all([new Response(bench.stdout).text(), new Response(bench.stderr).text()]);
    const code = await bench.exited;
    benchRuns++;
    benchLog.push(`--- bench run ${benchRuns} exit ${code}\n${out}\n${err}`);
    writeFileSync(join(outDir, "bench.log"), benchLog.join("\n"));
  }
};
const benchDone = withBench ? benchLoop() : Promise.resolve();

const results: string[] = [];
let failed = false;
try {
  for (let n = 1; n <= runs; n++) {
    const t0 = performance.now();
    const load0 = loadavg()[0]!;
    const p = Bun.spawn(["bun", "run", "test"], { cwd: root, stdout: "pipe", stderr: "pipe", env: { ...process.env, CI: "true" } });
    const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
    const code = await p.exited;
    const log = `${out}\n${err}`;
    writeFileSync(join(outDir, `run-${n}.log`), log);
    const pass = /^\s*(\d+) pass$/m.exec(log)?.[1] ?? "?";
    const fail = /^\s*(\d+) fail$/m.exec(log)?.[1] ?? "?";
    const min = ((performance.now() - t0) / 60000).toFixed(1);
    const line = `run ${n}/${runs}: exit ${code}, ${pass} pass, ${fail} fail, ${min} min, load ${load0.toFixed(1)} → ${loadavg()[0]!.toFixed(1)}${withBench ? `, bench runs so far ${benchRuns}` : ""}`;
    console.log(line);
    results.push(line);
    if (code !== 0) {
      failed = true;
      for (const l of log.split("\n").filter((l) => /\(fail\)|error:/.test(l)).slice(0, 30)) console.log(`  ${l}`);
      break;
    }
  }
} finally {
  stopping = true;
  bench?.kill("SIGINT");
  await Promise.race([benchDone, Bun.sleep(20_000)]);
  bench?.kill("SIGKILL");
}
writeFileSync(join(outDir, "summary.txt"), `${results.join("\n")}\n`);
console.log(failed ? "suite-under-load: FAILED" : `suite-under-load: ${runs} runs in a row passed${withBench ? " with bun run bench in the background" : ""}`);
process.exit(failed ? 1 : 0);
