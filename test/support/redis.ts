/**
 * A real, throwaway `redis-server` for tests (Debian package `redis-server`): bound to
 * 127.0.0.1 on a free port, no persistence, its own temp dir. `startRedis()` resolves once the
 * server logged "Ready to accept connections" and answered PING; `stop()` kills it and removes
 * the dir.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Path of `redis-server`, or null when it is not installed (tests skip with a reason). */
export const redisServerPath: string | null = Bun.which("redis-server");

export interface RedisServer {
  url: string;
  port: number;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const READY_TIMEOUT_MS = 10_000;
const PORT_ATTEMPTS = 5;

function freePort(): number {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = probe.port;
  probe.stop(true);
  return port;
}

type Outcome = "ready" | "in-use" | "exited" | "timeout";

/**
 * Reads the server's log to its end (so the child never blocks on a full pipe) and settles on
 * the first of: ready, port taken, exited, or time out.
 */
function waitReady(proc: Bun.Subprocess<"ignore", "pipe", "pipe">, log: string[]): Promise<Outcome> {
  const { promise, resolve } = Promise.withResolvers<Outcome>();
  const timer = setTimeout(() => resolve("timeout"), READY_TIMEOUT_MS);
  void promise.then(() => clearTimeout(timer));
  void (async () => {
    const decoder = new TextDecoder();
    let text = "";
    for await (const chunk of proc.stdout) {
      const piece = decoder.decode(chunk, { stream: true });
      log.push(piece);
      if (text.length < 64_000) text += piece;
      if (/already in use/i.test(text)) resolve("in-use");
      if (/ready to accept connections/i.test(text)) resolve("ready");
    }
    resolve(/already in use/i.test(text) ? "in-use" : "exited");
  })().catch(() => resolve("exited"));
  return promise;
}

/** One raw PING over TCP; resolves true on "+PONG" (bounded by `timeoutMs`). */
export async function pingRedis(port: number, timeoutMs = 2_000): Promise<boolean> {
  const { promise, resolve } = Promise.withResolvers<boolean>();
  const timer = setTimeout(() => resolve(false), timeoutMs);
  let sock: Bun.Socket | undefined;
  try {
    sock = await Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        open(s) {
          s.write("PING\r\n");
        },
        data(_s, data) {
          resolve(new TextDecoder().decode(data).startsWith("+PONG"));
        },
        close() {
          resolve(false);
        },
        error() {
          resolve(false);
        },
      },
    });
    return await promise;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    sock?.end();
  }
}

export async function startRedis(): Promise<RedisServer> {
  if (!redisServerPath) throw new Error("redis-server is not installed (apt-get install -y redis-server)");
  const failures: string[] = [];
  for (let attempt = 1; attempt <= PORT_ATTEMPTS; attempt++) {
    const port = freePort();
    const dir = mkdtempSync(join(tmpdir(), "azhexgate-redis-"));
    const proc = Bun.spawn(
      [
        redisServerPath,
        "--port", String(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--dir", dir,
        "--daemonize", "no",
        "--logfile", "",
        "--loglevel", "notice",
      ],
      { stdin: "ignore", stdout: "pipe", stderr: "pipe" },
    );
    const log: string[] = [];
    const outcome = await waitReady(proc, log);
    if (outcome === "ready" && (await pingRedis(port))) {
      let stopped: Promise<void> | undefined;
      const stop = () =>
        (stopped ??= (async () => {
          proc.kill("SIGTERM");
          await proc.exited;
          rmSync(dir, { recursive: true, force: true });
        })());
      return { url: `redis://127.0.0.1:${port}`, port, stop, [Symbol.asyncDispose]: stop };
    }
    proc.kill("SIGKILL");
    await proc.exited;
    rmSync(dir, { recursive: true, force: true });
    failures.push(`port ${port}: ${outcome}`);
    if (outcome !== "in-use") {
      const stderr = await new Response(proc.stderr).text();
      throw new Error(`redis-server did not start (${outcome}): ${(log.join("") + stderr).slice(-2000)}`);
    }
  }
  throw new Error(`redis-server found no free port after ${PORT_ATTEMPTS} attempts (${failures.join(", ")})`);
}
