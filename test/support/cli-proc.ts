/**
 * Drives the `azhexgate` CLI as real child processes: line-buffered stdout / stderr with bounded
 * waits on lines, a bounded exit wait, and a registry of every child so afterEach can kill them
 * all. Plus small helpers: a local origin app, a free port, a bounded poll, ANSI stripping, and a
 * `gateway` child that is ready once its "gateway ready" log line appears.
 */
import type { Subprocess } from "bun";

export const CLI = new URL("../../src/cli.ts", import.meta.url).pathname;
const ROOT = new URL("../..", import.meta.url).pathname;

export const stripAnsi = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, "");

export interface Child {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  /** Every complete line so far (ANSI stripped). */
  out: string[];
  err: string[];
  /** Resolves with the first stdout (or stderr) line matching, at or after index `from`. */
  waitOut(match: RegExp | ((line: string) => boolean), timeoutMs?: number, from?: number): Promise<string>;
  waitErr(match: RegExp | ((line: string) => boolean), timeoutMs?: number, from?: number): Promise<string>;
  /** stdout lines parsed as JSON (non-JSON lines skipped). */
  events(): Array<Record<string, unknown>>;
  waitEvent(pred: (e: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Exit code, or throws after `timeoutMs`. */
  exit(timeoutMs?: number): Promise<number>;
  kill(signal?: NodeJS.Signals): void;
  text(): { out: string; err: string };
}

const children = new Set<Child>();

/** Kills every child still running (SIGKILL) and waits, bounded, for them to go. */
export async function killAll(): Promise<void> {
  const all = [...children];
  children.clear();
  for (const c of all) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill("SIGKILL");
  await Promise.race([Promise.all(all.map((c) => c.proc.exited)), Bun.sleep(5000)]);
}

function pump(stream: ReadableStream<Uint8Array>, lines: string[], onLine: () => void): Promise<void> {
  return (async () => {
    const td = new TextDecoder();
    let buf = "";
    for await (const chunk of stream) {
      buf += td.decode(chunk, { stream: true });
      const parts = buf.split("\n");
      buf = parts.pop()!;
      for (const p of parts) lines.push(stripAnsi(p));
      if (parts.length) onLine();
    }
    if (buf) lines.push(stripAnsi(buf));
    onLine();
  })().catch(() => {});
}

/** `bun src/cli.ts ...args`; `env` is merged over a copy of process.env with AZHEXGATE_* removed. */
export function spawnCli(args: string[], o: { env?: Record<string, string | undefined>; cwd?: string } = {}): Child {
  const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0" };
  for (const k of Object.keys(env)) if (k.startsWith("AZHEXGATE_")) delete env[k];
  Object.assign(env, o.env);
  const proc = Bun.spawn(["bun", "--max-http-header-size=262144", CLI, ...args], {
    cwd: o.cwd ?? ROOT,
    env: env as Record<string, string>,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const out: string[] = [];
  const err: string[] = [];
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const w of [...waiters]) w();
  };
  const drained = Promise.all([pump(proc.stdout, out, notify), pump(proc.stderr, err, notify)]);
  void proc.exited.then(() => drained).then(notify);

  const wait = (lines: string[], which: string, match: RegExp | ((l: string) => boolean), timeoutMs = 15_000, from = 0) =>
    new Promise<string>((resolve, reject) => {
      const test = typeof match === "function" ? match : (l: string) => match.test(l);
      let timer: ReturnType<typeof setTimeout>;
      const check = () => {
        for (let i = from; i < lines.length; i++) {
          if (test(lines[i]!)) {
            waiters.delete(check);
            clearTimeout(timer);
            return resolve(lines[i]!);
          }
        }
        if (proc.exitCode !== null || proc.signalCode !== null) {
          // exited: give the pipes their last lines (check runs again from notify), then fail
          void drained.then(() => {
            if (!waiters.has(check)) return;
            for (let i = from; i < lines.length; i++) if (test(lines[i]!)) return check();
            waiters.delete(check);
            clearTimeout(timer);
            reject(new Error(`${which}: process exited (${proc.exitCode ?? proc.signalCode}) before a line matching ${match}\n${dump()}`));
          });
        }
      };
      timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`${which}: no line matching ${match} within ${timeoutMs} ms\n${dump()}`));
      }, timeoutMs);
      waiters.add(check);
      check();
    });

  const dump = () => `--- stdout\n${out.slice(-30).join("\n")}\n--- stderr\n${err.slice(-30).join("\n")}`;
  const events = () =>
    out.flatMap((l) => {
      try {
        const v = JSON.parse(l);
        return v && typeof v === "object" ? [v as Record<string, unknown>] : [];
      } catch {
        return [];
      }
    });

  const child: Child = {
    proc,
    out,
    err,
    waitOut: (m, t, f) => wait(out, "stdout", m, t, f),
    waitErr: (m, t, f) => wait(err, "stderr", m, t, f),
    events,
    async waitEvent(pred, timeoutMs) {
      const line = await wait(out, "stdout", (l) => {
        try {
          return pred(JSON.parse(l));
        } catch {
          return false;
        }
      }, timeoutMs);
      return JSON.parse(line);
    },
    async exit(timeoutMs = 15_000) {
      const code = await Promise.race([proc.exited, Bun.sleep(timeoutMs).then(() => "timeout" as const)]);
      if (code === "timeout") throw new Error(`process did not exit within ${timeoutMs} ms\n${dump()}`);
      await Promise.race([drained, Bun.sleep(2000)]);
      return code;
    },
    kill: (signal = "SIGTERM") => proc.kill(signal),
    text: () => ({ out: out.join("\n"), err: err.join("\n") }),
  };
  children.add(child);
  return child;
}

/** A port nothing listens on (bound once on 127.0.0.1, then released). */
export function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

/** Calls `fn` until it returns a value other than undefined, or throws after `timeoutMs`. */
export async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 15_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await Bun.sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ""}`);
}

/** GET through a public URL `http://<id>.localhost:<port>/path` with a deadline; never follows redirects. */
export function get(url: string, timeoutMs = 5000, init: RequestInit = {}): Promise<Response> {
  return fetch(url, { redirect: "manual", signal: AbortSignal.timeout(timeoutMs), ...init });
}

export interface GatewayChild {
  child: Child;
  port: number;
  /** The management API base, e.g. http://localhost:PORT. */
  apiUrl: string;
}

export const API_KEY = "cli-test-key-0123456789abcdef";

/** `azhexgate gateway` on loopback (local relay emulator), ready when its JSON "gateway ready" line appears. */
export async function startGatewayChild(o: { port?: number; registry?: string; tokenTtl?: number; extra?: string[]; env?: Record<string, string> } = {}): Promise<GatewayChild> {
  const args = ["gateway", "--port", String(o.port ?? 0), "--base-domain", "localhost", "--public-scheme", "http", "--registry", o.registry ?? ":memory:", "--log-format", "json", "--log-level", "info", "--drain", "1"];
  if (o.tokenTtl) args.push("--token-ttl", String(o.tokenTtl));
  args.push(...(o.extra ?? []));
  const child = spawnCli(args, { env: { AZHEXGATE_API_KEYS: API_KEY, ...o.env } });
  const line = await child.waitErr(/"gateway ready"/, 15_000);
  const ready = JSON.parse(line) as { url: string; api_url: string };
  return { child, port: Number(new URL(ready.url).port), apiUrl: ready.api_url };
}

/** A local origin app on 127.0.0.1, port 0 unless given. */
export function startOrigin(fetch: (req: Request) => Response | Promise<Response>, port = 0): { port: number; stop(force?: boolean): void } {
  const server = Bun.serve({ hostname: "127.0.0.1", port, development: false, idleTimeout: 30, fetch });
  return { port: server.port!, stop: (force) => void server.stop(force) };
}
