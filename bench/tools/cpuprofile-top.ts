/**
 * Summarises a Chrome-format .cpuprofile (as written by `bun --cpu-prof`): top functions by self
 * time and by inclusive time, with file:line, as percentages of all samples.
 *   bun bench/tools/cpuprofile-top.ts FILE.cpuprofile [N]
 * Profile a role: BENCH_BUN_FLAGS_GATEWAY="--cpu-prof --cpu-prof-dir=/tmp/prof" bun bench/run.ts --rows direct,azhexgate --only get50
 * (likewise BENCH_BUN_FLAGS_AGENT / BENCH_BUN_FLAGS_RELAY).
 */
interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
const [file, nS] = process.argv.slice(2);
const top = Number(nS ?? 25);
const prof = (await Bun.file(file!).json()) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const name = (n: Node) => {
  const u = n.callFrame.url.replace(/^.*\/work\/main\//, "").replace(/^file:\/\//, "");
  return `${n.callFrame.functionName || "(anonymous)"} ${u ? `${u}:${n.callFrame.lineNumber + 1}` : ""}`.trim();
};
const self = new Map<string, number>();
const incl = new Map<string, number>();
let total = 0;
prof.samples.forEach((id, i) => {
  const dt = prof.timeDeltas[i] ?? 0;
  total += dt;
  const n = byId.get(id)!;
  self.set(name(n), (self.get(name(n)) ?? 0) + dt);
  const seen = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const k = name(byId.get(cur)!);
    if (seen.has(k)) continue;
    seen.add(k);
    incl.set(k, (incl.get(k) ?? 0) + dt);
  }
});
const show = (title: string, m: Map<string, number>) => {
  console.log(`\n${title} (${(total / 1e6).toFixed(2)} s sampled)`);
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}`);
};
show("self time", self);
show("inclusive time", incl);
export {};
