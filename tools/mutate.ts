#!/usr/bin/env bun
/**
 * `bun run mutate [group ...]` — mutation testing over the core modules (issue 18).
 * Runs Stryker (on Node; its command runner calls `bun test` on each group's fast test files)
 * once per group from tools/mutate-groups.mjs, then prints the score per file and every
 * surviving mutant from the JSON reports in reports/mutation/.
 * `--report-only`: just print the table from the last run's reports.
 */
import { groups } from "./mutate-groups.mjs";

const args = process.argv.slice(2);
const reportOnly = args.includes("--report-only");
const names = args.filter((a) => !a.startsWith("--"));
const chosen = names.length ? names : Object.keys(groups);
for (const n of chosen) if (!(n in groups)) throw new Error(`unknown group ${n}; one of ${Object.keys(groups).join(", ")}`);

let failed = false;
if (!reportOnly) {
  for (const name of chosen) {
    const t0 = Date.now();
    const p = Bun.spawn(["node", "node_modules/@stryker-mutator/core/bin/stryker.js", "run", "stryker.config.mjs"], {
      env: { ...process.env, MUTATE_GROUP: name },
      stdout: "ignore",
      stderr: "inherit",
    });
    const code = await p.exited;
    console.log(`group ${name}: ${((Date.now() - t0) / 1000).toFixed(0)} s, exit ${code}`);
    if (code !== 0) failed = true;
  }
}

type Mutant = { mutatorName: string; replacement?: string; status: string; location: { start: { line: number; column: number } } };
type Report = { files: Record<string, { mutants: Mutant[] }> };
const rows: string[] = ["| file | killed | timeout | survived | no cov | score |", "|---|---|---|---|---|---|"];
const survivors: string[] = [];
for (const name of chosen) {
  const f = Bun.file(`reports/mutation/${name}.json`);
  if (!(await f.exists())) continue;
  const rep = (await f.json()) as Report;
  for (const [file, { mutants }] of Object.entries(rep.files)) {
    const n = (s: string) => mutants.filter((m) => m.status === s).length;
    const killed = n("Killed"), timeout = n("Timeout"), survived = n("Survived"), nocov = n("NoCoverage");
    const valid = killed + timeout + survived + nocov;
    const score = valid ? ((100 * (killed + timeout)) / valid).toFixed(1) : "n/a";
    rows.push(`| ${file} | ${killed} | ${timeout} | ${survived} | ${nocov} | ${score} % |`);
    for (const m of mutants)
      if (m.status === "Survived" || m.status === "NoCoverage")
        survivors.push(`${file}:${m.location.start.line}:${m.location.start.column} ${m.mutatorName} → ${JSON.stringify(m.replacement ?? "").slice(0, 90)}`);
  }
}
console.log(rows.join("\n"));
if (args.includes("--survivors")) console.log(survivors.join("\n"));
process.exit(failed ? 1 : 0);
