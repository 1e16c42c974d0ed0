/**
 * `bun run bench:tcp` — TCP tunnels (issue 16): the same TCP targets reached directly, through
 * `azhexgate tcp` + `azhexgate connect --port`, and through `ssh -L` to an sshd on loopback.
 * Bulk throughput each way (a sink / source server in this process) and redis-benchmark against
 * one redis-server, with the CPU the tunnel's own processes spent (utime + stime from /proc of the
 * process trees: azhexgate tcp + connect + the gateway's relay emulator; ssh + sshd) per MiB and
 * per operation. One sample per path; short by default (`--mib N`, `--ops N`).
 *
 * Not part of `bun run bench`'s row matrix (its rows are HTTP paths); run it on its own.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, portOpen, run, spawn, stopAll, tree } from "./lib/proc.ts";

const args = process.argv.slice(2);
const opt = (n: string, d: number) => Number(args[args.indexOf(`--${n}`) + 1] ?? d) || d;
const MIB = opt("mib", 128);
const OPS = opt("ops", 20_000);
const ROOT = join(import.meta.dir, "..");
const CLI = join(ROOT, "src/cli.ts");
const KEY = "bench-tcp-key-0123456789abcdef";
const TICK = 100; // USER_HZ

/** CPU seconds (user + system) of a process and its descendants. */
function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const pid of tree(pids)) {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, "utf8");
      const rest = f.slice(f.lastIndexOf(")") + 2).split(" ");
      ticks += Number(rest[11]) + Number(rest[12]);
    } catch {
      // gone
    }
  }
  return ticks / TICK;
}

/** 'U': read to FIN, answer the count; 'D' + decimal size + '\n': send that many bytes, FIN. */
const sink = Bun.listen<{ mode?: string; n: number; head: string }>({
  hostname: "127.0.0.1",
  port: 0,
  allowHalfOpen: true,
  socket: {
    open: (s) => void (s.data = { n: 0, head: "" }),
    data(s, d) {
      if (!s.data.mode) {
        s.data.head += d.toString("latin1");
        if (s.data.head[0] === "U") {
          s.data.mode = "U";
          s.data.n += d.length - 1;
        } else if (s.data.head.includes("\n")) {
          s.data.mode = "D";
          const size = Number(s.data.head.slice(1, s.data.head.indexOf("\n")));
          const chunk = new Uint8Array(256 * 1024);
          let left = size;
          const pump = () => {
            while (left > 0) {
              const n = s.write(chunk.subarray(0, Math.min(chunk.length, left)));
              if (n <= 0) return;
              left -= n;
            }
            s.end();
          };
          (s as unknown as { pump: () => void }).pump = pump;
          pump();
        }
        return;
      }
      if (s.data.mode === "U") s.data.n += d.length;
    },
    drain: (s) => (s as unknown as { pump?: () => void }).pump?.(),
    end(s) {
      if (s.data.mode === "U") {
        s.write(`${s.data.n}\n`);
        s.end();
      }
    },
  },
});

/** One transfer of `bytes` through `port` ('U' up or 'D' down); MB/s. */
function transfer(port: number, dir: "U" | "D", bytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let got = 0;
    let sent = 0;
    const chunk = new Uint8Array(256 * 1024).fill(7);
    const pump = (s: import("bun").Socket) => {
      while (sent < bytes) {
        const n = s.write(chunk.subarray(0, Math.min(chunk.length, bytes - sent)));
        if (n <= 0) return;
        sent += n;
      }
      s.shutdown();
    };
    void Bun.connect({
      hostname: "127.0.0.1",
      port,
      allowHalfOpen: true,
      socket: {
        open(s) {
          if (dir === "U") {
            s.write("U");
            pump(s);
          } else s.write(`D${bytes}\n`);
        },
        drain: (s) => {
          if (dir === "U") pump(s);
        },
        data: (_s, d) => void (got += d.length),
        end: (s) => void s.end(),
        close() {
          const ok = dir === "D" ? got === bytes : got > 0;
          if (!ok) return reject(new Error(`${dir} transfer incomplete: ${got} bytes back`));
          resolve(bytes / 1e6 / ((performance.now() - t0) / 1000));
        },
        error: (_s, e) => reject(e),
      },
    }).catch(reject);
  });
}

async function redisBench(port: number): Promise<number> {
  const out = await run(["redis-benchmark", "-p", String(port), "-n", String(OPS), "-c", "20", "-t", "set,get", "--csv"], 300_000);
  const rps = [...out.matchAll(/"(SET|GET)","([\d.]+)"/g)].map((m) => Number(m[2]));
  if (rps.length !== 2) throw new Error(`redis-benchmark: ${out.slice(-300)}`);
  return (rps[0]! + rps[1]!) / 2;
}

const redisPort = freePort();
const redis = await spawn("redis", ["redis-server", "--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { probe: () => portOpen(redisPort) });

// azhexgate: a gateway (API + relay emulator), tcp for each target, connect for each
const env = { ...process.env, AZHEXGATE_API_KEYS: KEY, AZHEXGATE_API_KEY: KEY } as Record<string, string>;
const gwPort = freePort();
const gw = await spawn("gateway", ["bun", CLI, "gateway", "--port", String(gwPort), "--base-domain", "localhost", "--public-scheme", "http", "--registry", ":memory:", "--log-level", "warn"], { env, probe: () => portOpen(gwPort) });
env.AZHEXGATE_API_URL = `http://localhost:${gwPort}`;
async function azhexgatePath(target: number) {
  const name = `bench-${target}`;
  const ready = async (tail: () => string) => tail().includes('"event":"ready"');
  const t = await spawn(`tcp-${target}`, ["bun", CLI, "tcp", "--port", String(target), "--host", "127.0.0.1", "--name", name, "--json"], { env, probe: ready });
  const c = await spawn(`connect-${target}`, ["bun", CLI, "connect", name, "--port", "0", "--json"], { env, probe: ready });
  const listen = /"listen":"[^"]*:(\d+)"/.exec(c.tail())![1];
  return { port: Number(listen), pids: [t.pid, c.pid, gw.pid] };
}

// ssh -L to the same targets
const dir = mkdtempSync(join(tmpdir(), "azhexgate-bench-tcp-"));
mkdirSync("/run/sshd", { recursive: true });
for (const k of ["host", "user"]) await run(["sh", "-c", `rm -f ${dir}/${k} ${dir}/${k}.pub; ssh-keygen -q -t ed25519 -N '' -f ${dir}/${k}`], 10_000);
await Bun.write(join(dir, "authorized_keys"), Bun.file(join(dir, "user.pub")));
const sshdPort = freePort();
await Bun.write(join(dir, "sshd_config"), [`Port ${sshdPort}`, "ListenAddress 127.0.0.1", `HostKey ${dir}/host`, `AuthorizedKeysFile ${dir}/authorized_keys`, "StrictModes no", "UsePAM no", `PidFile ${dir}/sshd.pid`].join("\n") + "\n");
const sshd = await spawn("sshd", ["/usr/sbin/sshd", "-D", "-e", "-f", join(dir, "sshd_config")], { probe: () => portOpen(sshdPort) });
const [sshSink, sshRedis] = [freePort(), freePort()];
const ssh = await spawn(
  "ssh",
  ["ssh", "-N", "-F", "/dev/null", "-i", `${dir}/user`, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", "-p", String(sshdPort),
    "-L", `${sshSink}:127.0.0.1:${sink.port}`, "-L", `${sshRedis}:127.0.0.1:${redisPort}`, "127.0.0.1"],
  { probe: () => portOpen(sshRedis) },
);

const azSink = await azhexgatePath(sink.port);
const azRedis = await azhexgatePath(redisPort);
const paths = [
  { name: "direct", sink: sink.port, redis: redisPort, pids: [] as number[] },
  { name: "azhexgate tcp/connect", sink: azSink.port, redis: azRedis.port, pids: [...azSink.pids, ...azRedis.pids] },
  { name: "ssh -L", sink: sshSink, redis: sshRedis, pids: [ssh.pid, sshd.pid] },
];
const rows: string[] = [];
const bytes = MIB * 2 ** 20;
for (const p of paths) {
  const pids = [...new Set(p.pids)];
  let c0 = cpuSeconds(pids);
  const up = await transfer(p.sink, "U", bytes);
  const down = await transfer(p.sink, "D", bytes);
  const bulkCpu = cpuSeconds(pids) - c0;
  c0 = cpuSeconds(pids);
  const ops = await redisBench(p.redis);
  const opsCpu = cpuSeconds(pids) - c0;
  const cpuMiB = pids.length ? `${((bulkCpu * 1000) / (2 * MIB)).toFixed(2)} ms` : "-";
  const cpuOp = pids.length ? `${((opsCpu * 1e6) / (2 * OPS)).toFixed(0)} µs` : "-";
  rows.push(`| ${p.name} | ${up.toFixed(0)} | ${down.toFixed(0)} | ${ops.toFixed(0)} | ${cpuMiB} | ${cpuOp} |`);
  console.error(rows.at(-1));
}
console.log(`TCP bench (${MIB} MiB each way, redis-benchmark -n ${OPS} -c 20 -t set,get; CPU of the tunnel's processes)\n`);
console.log("| path | upload MB/s | download MB/s | redis ops/s (SET/GET mean) | CPU per MiB | CPU per op |");
console.log("| --- | --- | --- | --- | --- | --- |");
for (const r of rows) console.log(r);
sink.stop(true);
void redis;
await stopAll();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
