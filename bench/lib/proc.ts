/**
 * Child processes for the bench: spawn with a readiness line or a probe, bounded waits, stop by pid,
 * and memory from /proc (VmRSS of a process and its descendants).
 */
import type { Subprocess } from "bun";
import { readdirSync, readFileSync } from "node:fs";

export interface Child {
  name: string;
  proc: Subprocess;
  pid: number;
  /** Parsed JSON of the `READY {...}` line, when the child prints one. */
  ready: Record<string, unknown>;
  /** Last lines of stderr/stdout, for error messages. */
  tail(): string;
  stop(): Promise<void>;
}

const live = new Set<Child>();

export interface SpawnOptions {
  env?: Record<string, string>;
  /** Wait for a `READY {json}` line on stdout (default), or call this probe until it resolves true. */
  probe?: (tail: () => string) => Promise<boolean>;
  timeoutMs?: number;
  cwd?: string;
}

export async function spawn(name: string, cmd: string[], o: SpawnOptions = {}): Promise<Child> {
  const proc = Bun.spawn(cmd, {
    cwd: o.cwd,
    env: { ...process.env, ...o.env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const lines: string[] = [];
  const keep = (l: string) => {
    lines.push(l);
    if (lines.length > 40) lines.shift();
  };
  let readyLine: ((v: Record<string, unknown>) => void) | undefined;
  const readyP = new Promise<Record<string, unknown>>((r) => (readyLine = r));
  const pump = async (s: ReadableStream<Uint8Array>, watch: boolean) => {
    const dec = new TextDecoder();
    let buf = "";
    try {
      for await (const c of s) {
        buf += dec.decode(c, { stream: true });
        let i;
        while ((i = buf.indexOf("\n")) >= 0) {
          const l = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (watch && l.startsWith("READY ")) readyLine!(JSON.parse(l.slice(6)));
          else keep(l);
        }
      }
    } catch {}
  };
  void pump(proc.stdout as ReadableStream<Uint8Array>, !o.probe);
  void pump(proc.stderr as ReadableStream<Uint8Array>, false);
  const child: Child = {
    name,
    proc,
    pid: proc.pid,
    ready: {},
    tail: () => lines.slice(-15).join("\n"),
    async stop() {
      live.delete(child);
      if (proc.exitCode !== null || proc.signalCode) return;
      proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), 3000);
      await proc.exited;
      clearTimeout(t);
    },
  };
  live.add(child);
  const timeoutMs = o.timeoutMs ?? 15_000;
  const deadline = Date.now() + timeoutMs;
  const exited = proc.exited.then((c) => {
    throw new Error(`${name} exited with ${c} before it was ready:\n${child.tail()}`);
  });
  const ready = o.probe
    ? (async () => {
        while (Date.now() < deadline) {
          if (proc.exitCode !== null) break;
          if (await o.probe!(() => lines.join("\n")).catch(() => false)) return {};
          await Bun.sleep(50);
        }
        throw new Error(`${name} not ready within ${timeoutMs} ms:\n${child.tail()}`);
      })()
    : readyP;
  let timer: Timer | undefined;
  const timeout = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new Error(`${name} not ready within ${timeoutMs} ms:\n${child.tail()}`)), timeoutMs);
  });
  try {
    child.ready = await Promise.race([ready, exited, timeout]);
  } catch (e) {
    await child.stop();
    throw e;
  } finally {
    clearTimeout(timer);
  }
  exited.catch(() => {});
  return child;
}

/** Stops every child still running (on exit paths). */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((c) => c.stop()));
}

/** A TCP port free right now on 127.0.0.1. */
export function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = s.port;
  s.stop(true);
  return p;
}

export async function portOpen(port: number): Promise<boolean> {
  try {
    const s = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
    s.end();
    return true;
  } catch {
    return false;
  }
}

/** pid and all its descendants (from /proc/<pid>/stat ppid). */
export function tree(roots: number[]): number[] {
  const kids = new Map<number, number[]>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(st.slice(st.lastIndexOf(")") + 2).split(" ")[1]);
      const arr = kids.get(ppid) ?? [];
      arr.push(Number(d));
      kids.set(ppid, arr);
    } catch {}
  }
  const out: number[] = [];
  const walk = (p: number) => {
    out.push(p);
    for (const k of kids.get(p) ?? []) walk(k);
  };
  for (const r of roots) walk(r);
  return out;
}

/** VmRSS in bytes (0 if gone). */
export function rss(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Sum of VmRSS over a process and its descendants. */
export function treeRss(pid: number): number {
  return tree([pid]).reduce((a, p) => a + rss(p), 0);
}

/**
 * Samples the RSS of named process groups every `everyMs` until stopped; returns each group's peak.
 */
export function sampleRss(groups: Record<string, number>, everyMs = 50): { stop(): Record<string, number> } {
  const peak: Record<string, number> = {};
  const tick = () => {
    for (const [k, pid] of Object.entries(groups)) peak[k] = Math.max(peak[k] ?? 0, treeRss(pid));
  };
  tick();
  const t = setInterval(tick, everyMs);
  return {
    stop() {
      clearInterval(t);
      tick();
      return peak;
    },
  };
}

/** Runs a command to completion with a time limit; returns stdout (throws with stderr on failure). */
export async function run(cmd: string[], timeoutMs: number, env?: Record<string, string>): Promise<string> {
  const p = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe", stdin: "ignore", env: { ...process.env, ...env } });
  const t = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(t);
  if (code !== 0) {
    const last = (err.split("\n").filter((l) => /error|ERROR/.test(l)).pop() ?? err.trim().split("\n").pop() ?? "").trim();
    throw new Error(`${cmd[0]} exited ${code}${p.signalCode ? ` (${p.signalCode})` : ""}: ${last.slice(0, 300)}`);
  }
  return out;
}

/** CPU time (ns) of every thread of one process, from schedstat: finer than stat's 10 ms ticks. */
export function threadCpuNs(pid: number): number {
  let sum = 0;
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    try {
      sum += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, "utf8").split(" ")[0]);
    } catch {
      /* thread gone */
    }
  }
  return sum;
}

/**
 * CPU seconds (utime + stime, all threads; USER_HZ = 100 so 10 ms ticks) used so far by each named
 * group: a root pid and all its descendants, from one pass over /proc. Children that already
 * exited are not counted (their time is in the parent's cutime, which we do not add).
 */
export function cpuOf(groups: Record<string, number>): Record<string, number> {
  const kids = new Map<number, number[]>();
  const ticks = new Map<number, number>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = readFileSync(`/proc/${d}/stat`, "utf8");
      const f = st.slice(st.lastIndexOf(")") + 2).split(" ");
      const pid = Number(d);
      const ppid = Number(f[1]);
      ticks.set(pid, Number(f[11]) + Number(f[12]));
      const arr = kids.get(ppid) ?? [];
      arr.push(pid);
      kids.set(ppid, arr);
    } catch {}
  }
  const out: Record<string, number> = {};
  for (const [g, root] of Object.entries(groups)) {
    let sum = 0;
    const walk = (p: number) => {
      sum += ticks.get(p) ?? 0;
      for (const k of kids.get(p) ?? []) walk(k);
    };
    walk(root);
    out[g] = sum / 100;
  }
  return out;
}

/**
 * CPU used by each group between `start` and the call to `per(count)`, per unit of work: returns
 * `cpu_<group>` for each group, `cpu_total` (all groups; 0 for a row with none, e.g. direct) and,
 * when a `relay` group is present, `cpu_total_norelay`. `scale` turns seconds per unit into the
 * figure's unit (1e6: µs per request or message; 1e3: ms per MiB).
 */
export function cpuWindow(groups: Record<string, number>): { per(count: number, scale: number): Record<string, number> } {
  const g = { ...groups };
  const before = cpuOf(g);
  return {
    per(count, scale) {
      const after = cpuOf(g);
      const out: Record<string, number> = {};
      let total = 0;
      for (const k of Object.keys(g)) {
        const v = ((after[k]! - before[k]!) * scale) / count;
        out[`cpu_${k}`] = v;
        total += v;
      }
      out.cpu_total = total;
      if ("relay" in g) out.cpu_total_norelay = total - out.cpu_relay!;
      return out;
    },
  };
}
