/**
 * A real tinyproxy (Debian package `tinyproxy`) on 127.0.0.1 for proxy tests: generated config,
 * its own log file, CONNECT allowed only to the ports given, optional BasicAuth. `connects()`
 * reads the CONNECT request lines from tinyproxy's own log.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Tinyproxy {
  port: number;
  url: string;
  logFile: string;
  /** `CONNECT host:port` targets the proxy was asked for, in order (from its log). */
  connects(): string[];
  /** Plain proxied requests (`GET http://…`), from its log. */
  requests(): string[];
  log(): string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface TinyproxyOptions {
  /** Ports CONNECT may reach; empty = no ConnectPort line, which tinyproxy reads as "every port". */
  connectPorts: number[];
  basicAuth?: { user: string; password: string };
}

/** Starts tinyproxy on a free loopback port (tries again, up to 3 times, if another process took the port first). */
export async function startTinyproxy(o: TinyproxyOptions): Promise<Tinyproxy> {
  let last: unknown;
  for (let i = 0; i < 3; i++) {
    try {
      return await startOnce(o);
    } catch (err) {
      last = err;
    }
  }
  throw last;
}

async function startOnce(o: TinyproxyOptions): Promise<Tinyproxy> {
  const dir = mkdtempSync(join(tmpdir(), "azhexgate-tinyproxy-"));
  const port = await freePort();
  const logFile = join(dir, "tinyproxy.log");
  const conf = [
    `Port ${port}`,
    "Listen 127.0.0.1",
    "Timeout 120",
    `LogFile "${logFile}"`,
    "LogLevel Connect",
    "MaxClients 100",
    "Allow 127.0.0.1",
    `PidFile "${join(dir, "tinyproxy.pid")}"`,
    ...o.connectPorts.map((p) => `ConnectPort ${p}`),
    ...(o.basicAuth ? [`BasicAuth ${o.basicAuth.user} ${o.basicAuth.password}`] : []),
  ];
  writeFileSync(join(dir, "tinyproxy.conf"), `${conf.join("\n")}\n`);
  const child: ChildProcess = spawn("tinyproxy", ["-d", "-c", join(dir, "tinyproxy.conf")], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (d) => (stderr += String(d)));
  child.stdout?.on("data", () => {});
  // ready when it accepts TCP (bounded)
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`tinyproxy exited ${child.exitCode}: ${stderr}`);
    }
    const ok = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } }).then(
      (s) => (s.end(), true),
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`tinyproxy did not listen on ${port} within 10 s: ${stderr}`);
    }
    await Bun.sleep(50);
  }
  const log = () => {
    try {
      return readFileSync(logFile, "utf8");
    } catch {
      return "";
    }
  };
  const lines = (re: RegExp) =>
    log()
      .split("\n")
      .map((l) => re.exec(l)?.[1])
      .filter((x): x is string => !!x);
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    logFile,
    log,
    connects: () => lines(/Request \(file descriptor \d+\): CONNECT (\S+) HTTP/),
    requests: () => lines(/Request \(file descriptor \d+\): ((?:GET|POST|PUT|DELETE|HEAD) http\S+)/),
    async stop() {
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        await Promise.race([new Promise((r) => child.once("exit", r)), Bun.sleep(3000)]);
        if (child.exitCode === null) child.kill("SIGKILL");
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
