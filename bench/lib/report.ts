/** Markdown table and one hand-written SVG bar chart per scenario (ratio to direct). */
import type { Metric } from "./scenarios.ts";

export interface RowResult {
  status: "ok" | "skipped";
  reason?: string;
  median: Record<string, number>;
  ratio: Record<string, number>;
  samples: Array<Record<string, number>>;
}
export interface ScenarioResult {
  title: string;
  metrics: Metric[];
  /** Unit of the CPU figures (`cpu_<group>`, `cpu_total`, `cpu_total_norelay`), when measured. */
  cpu?: { unit: string };
  rows: Record<string, RowResult>;
}

/** The row's own processes' CPU per unit of work, summed ("0 (none)" for direct; azhexgate also without its relay). */
export function cpuTotalCell(r: RowResult): string {
  const t = r.median.cpu_total;
  if (t === undefined) return "–";
  const groups = cpuGroups(r);
  if (!groups.length) return "0 (none)";
  return r.median.cpu_total_norelay !== undefined ? `${fmt(t)} (${fmt(r.median.cpu_total_norelay)} w/o relay)` : fmt(t);
}
/** Group names with a CPU figure, in the row's order. */
export function cpuGroups(r: RowResult): string[] {
  return Object.keys(r.median).filter((k) => k.startsWith("cpu_") && k !== "cpu_total" && k !== "cpu_total_norelay").map((k) => k.slice(4));
}
function cpuByProcess(r: RowResult): string {
  const gs = cpuGroups(r);
  return gs.length ? gs.map((g) => `${g} ${fmt(r.median[`cpu_${g}`])}`).join(" + ") : "none";
}

export function fmt(v: number | undefined, unit = ""): string {
  if (v === undefined || !Number.isFinite(v)) return "–";
  const a = Math.abs(v);
  const s = a >= 1000 ? Math.round(v).toLocaleString("en-US") : a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : a >= 1 ? v.toFixed(2) : v.toFixed(3);
  return unit ? `${s} ${unit}` : s;
}

export function markdown(scenarios: Record<string, ScenarioResult>, rows: string[]): string {
  const out: string[] = [];
  for (const [key, sc] of Object.entries(scenarios)) {
    out.push(`### ${sc.title} (\`${key}\`)`, "");
    // metric columns: declared metrics, plus any extra numbers rows returned (memory)
    const extra = new Set<string>();
    for (const r of Object.values(sc.rows)) for (const k of Object.keys(r.median)) if (!sc.metrics.some((m) => m.key === k) && !k.startsWith("cpu_")) extra.add(k);
    const cpuHead = sc.cpu ? [`CPU own (${sc.cpu.unit})`, `CPU by process (${sc.cpu.unit})`] : [];
    const cpuCells = (r: RowResult) => (sc.cpu ? [cpuTotalCell(r), r.median.cpu_total === undefined ? "–" : cpuByProcess(r)] : []);
    const head = ["row", ...sc.metrics.map((m) => `${m.key.replace(/_.*/, "")} (${m.unit})`), ...cpuHead, ...sc.metrics.filter((m) => m.ratio).map((m) => `${m.key} × direct`)];
    out.push(`| ${head.join(" | ")} | notes |`, `|${head.map(() => "---").join("|")}|---|`);
    for (const name of rows) {
      const r = sc.rows[name];
      if (!r) continue;
      if (r.status === "skipped") {
        out.push(`| ${name} | ${[...sc.metrics, ...cpuHead].map(() => "skipped").join(" | ")} | ${sc.metrics.filter((m) => m.ratio).map(() => "–").join(" | ")} | ${(r.reason ?? "").replace(/\|/g, "/").replace(/\n/g, " ").slice(0, 160)} |`);
        continue;
      }
      const notes = [...extra].filter((k) => r.median[k] !== undefined).map((k) => `${k}=${fmt(r.median[k])}`).join(", ");
      out.push(`| ${name} | ${[...sc.metrics.map((m) => fmt(r.median[m.key])), ...cpuCells(r)].join(" | ")} | ${sc.metrics.filter((m) => m.ratio).map((m) => fmt(r.ratio[m.key])).join(" | ")} | ${notes} |`);
    }
    out.push("");
  }
  return out.join("\n");
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** Horizontal bars: one group per ratio metric, one bar per row, scale 0..max(1, largest ratio). */
export function svg(sc: ScenarioResult, rows: string[]): string {
  const ms = sc.metrics.filter((m) => m.ratio);
  const barH = 16, gap = 4, left = 150, width = 900, right = 160;
  const colors: Record<string, string> = { direct: "#888", nginx: "#2a9d8f", azhexgate: "#e76f51", "ssh -R": "#264653", wstunnel: "#8ab17d", localtunnel: "#e9c46a" };
  let y = 40;
  const parts: string[] = [];
  let max = 1;
  for (const m of ms) for (const n of rows) max = Math.max(max, sc.rows[n]?.ratio[m.key] ?? 0);
  const scale = (width - left - right) / max;
  for (const m of ms) {
    parts.push(`<text x="10" y="${y + 12}" font-weight="bold">${esc(`${m.key} (${m.unit}, ${m.better} is better) — ratio to direct`)}</text>`);
    y += 20;
    for (const n of rows) {
      const r = sc.rows[n];
      if (!r) continue;
      const v = r.ratio[m.key];
      parts.push(`<text x="${left - 6}" y="${y + barH - 4}" text-anchor="end">${esc(n)}</text>`);
      if (r.status !== "ok" || v === undefined || !Number.isFinite(v)) {
        parts.push(`<text x="${left + 4}" y="${y + barH - 4}" fill="#999">skipped</text>`);
      } else {
        const w = Math.max(1, v * scale);
        parts.push(`<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${colors[n] ?? "#555"}"/>`);
        parts.push(`<text x="${(left + w + 4).toFixed(1)}" y="${y + barH - 4}">${v.toFixed(3)} (${esc(fmt(r.median[m.key], m.unit))})</text>`);
      }
      y += barH + gap;
    }
    y += 10;
  }
  const x1 = left + scale;
  parts.push(`<line x1="${x1}" y1="30" x2="${x1}" y2="${y - 10}" stroke="#000" stroke-dasharray="4 3"/><text x="${x1}" y="${y + 2}" text-anchor="middle">1.0 = direct</text>`);
  if (sc.cpu) {
    // CPU of each row's own processes (absolute, lower is better), one segment per process.
    y += 24;
    parts.push(`<text x="10" y="${y + 12}" font-weight="bold">${esc(`CPU of the row's own processes (${sc.cpu.unit}, lower is better; origin and load generator excluded)`)}</text>`);
    y += 20;
    let cmax = 0;
    for (const n of rows) cmax = Math.max(cmax, sc.rows[n]?.status === "ok" ? sc.rows[n]!.median.cpu_total ?? 0 : 0);
    const cscale = cmax > 0 ? (width - left - 330) / cmax : 0;
    for (const n of rows) {
      const r = sc.rows[n];
      if (!r) continue;
      parts.push(`<text x="${left - 6}" y="${y + barH - 4}" text-anchor="end">${esc(n)}</text>`);
      if (r.status !== "ok" || r.median.cpu_total === undefined) {
        parts.push(`<text x="${left + 4}" y="${y + barH - 4}" fill="#999">skipped</text>`);
      } else {
        let x = left;
        const gs = cpuGroups(r);
        gs.forEach((g, i) => {
          const w = Math.max(0, (r.median[`cpu_${g}`] ?? 0) * cscale);
          const relay = g === "relay";
          parts.push(`<rect x="${x.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${colors[n] ?? "#555"}" fill-opacity="${relay ? 0.25 : i % 2 ? 0.6 : 1}" stroke="#fff"><title>${esc(`${g} ${fmt(r.median[`cpu_${g}`])} ${sc.cpu!.unit}`)}</title></rect>`);
          x += w;
        });
        const label = gs.length ? `${fmt(r.median.cpu_total)} = ${gs.map((g) => `${g} ${fmt(r.median[`cpu_${g}`])}`).join(" + ")}` : "0 (none of its own)";
        parts.push(`<text x="${(x + 4).toFixed(1)}" y="${y + barH - 4}">${esc(label)}</text>`);
      }
      y += barH + gap;
    }
    y += 16;
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y + 10}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="#fff"/>
<text x="10" y="20" font-size="14" font-weight="bold">${esc(sc.title)}</text>
${parts.join("\n")}
</svg>
`;
}
