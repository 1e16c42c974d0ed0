/**
 * TCP tunnels with real peers (issue 16): redis-cli and redis-benchmark against a real
 * redis-server through `azhexgate tcp` + `azhexgate connect --port`, and Debian's OpenSSH client
 * against an sshd started on a loopback port through `connect --stdio` as its ProxyCommand
 * (a command, and a 64 MiB file both ways with matching SHA-256).
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { API_KEY, CLI, freePort, killAll, spawnCli, startGatewayChild, type Child, type GatewayChild } from "./support/cli-proc.ts";

afterEach(() => killAll());

const has = (tool: string) => Bun.which(tool) !== null || Bun.which(tool, { PATH: "/usr/sbin:/usr/bin" }) !== null;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "azhexgate-tcp-peers-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function serve(gw: GatewayChild, port: number): Promise<{ child: Child; name: string }> {
  const child = spawnCli(["tcp", "--port", String(port), "--host", "127.0.0.1", "--json"], { env: { AZHEXGATE_API_URL: gw.apiUrl, AZHEXGATE_API_KEY: API_KEY } });
  const ready = await child.waitEvent((e) => e.event === "ready", 20_000);
  return { child, name: ready.name as string };
}

async function run(cmd: string[], o: { stdin?: Blob; timeoutMs?: number; env?: Record<string, string> } = {}): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn(cmd, { stdin: o.stdin ?? "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, ...o.env } });
  const timer = setTimeout(() => p.kill("SIGKILL"), o.timeoutMs ?? 60_000);
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  return { code, out, err };
}

test.skipIf(!has("redis-server") || !has("redis-cli") || !has("redis-benchmark"))("redis-cli and redis-benchmark against redis-server through tcp + connect --port", async () => {
  const gw = await startGatewayChild();
  const redisPort = freePort();
  const redis = Bun.spawn(["redis-server", "--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdout: "ignore", stderr: "ignore" });
  try {
    for (let i = 0; i < 50 && (await run(["redis-cli", "-p", String(redisPort), "ping"])).out.trim() !== "PONG"; i++) await Bun.sleep(100);
    const s = await serve(gw, redisPort);
    const c = spawnCli(["connect", s.name, "--port", "0", "--json"], { env: { AZHEXGATE_API_URL: gw.apiUrl, AZHEXGATE_API_KEY: API_KEY } });
    const port = String((await c.waitEvent((e) => e.event === "ready", 20_000)).listen).split(":").pop()!;
    expect((await run(["redis-cli", "-p", port, "set", "greeting", "hello through the relay"])).out.trim()).toBe("OK");
    expect((await run(["redis-cli", "-p", port, "get", "greeting"])).out.trim()).toBe("hello through the relay");
    const big = "v".repeat(1 << 20);
    expect((await run(["redis-cli", "-p", port, "-x", "set", "big"], { stdin: new Blob([big]) })).out.trim()).toBe("OK");
    expect((await run(["redis-cli", "-p", port, "strlen", "big"])).out.trim()).toBe(String(big.length));
    const bench = await run(["redis-benchmark", "-p", port, "-n", "2000", "-c", "10", "-t", "set,get", "-q"], { timeoutMs: 90_000 });
    expect(bench.code).toBe(0);
    expect(bench.out).toMatch(/SET: [\d.]+ requests per second/);
    expect(bench.out).toMatch(/GET: [\d.]+ requests per second/);
  } finally {
    redis.kill("SIGKILL");
  }
}, 180_000);

test.skipIf(!has("sshd") || !has("ssh") || !has("ssh-keygen"))("ssh through connect --stdio as ProxyCommand: a command, and 64 MiB both ways with matching SHA-256", async () => {
  const gw = await startGatewayChild();
  const d = join(dir, "ssh");
  mkdirSync(d, { recursive: true });
  mkdirSync("/run/sshd", { recursive: true }); // sshd's privilege-separation directory
  for (const k of ["host", "user"]) expect((await run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", join(d, k)])).code).toBe(0);
  writeFileSync(join(d, "authorized_keys"), readFileSync(join(d, "user.pub")));
  const sshPort = freePort();
  writeFileSync(
    join(d, "sshd_config"),
    [`Port ${sshPort}`, "ListenAddress 127.0.0.1", `HostKey ${join(d, "host")}`, `AuthorizedKeysFile ${join(d, "authorized_keys")}`, "StrictModes no", "UsePAM no", "PasswordAuthentication no", "KbdInteractiveAuthentication no", `PidFile ${join(d, "sshd.pid")}`].join("\n") + "\n",
  );
  const sshd = Bun.spawn(["/usr/sbin/sshd", "-D", "-e", "-f", join(d, "sshd_config")], { stdout: "ignore", stderr: "pipe" });
  try {
    const s = await serve(gw, sshPort);
    const user = (await run(["id", "-un"])).out.trim();
    const ssh = (remote: string, stdin?: Blob) =>
      run(
        ["ssh", "-F", "/dev/null", "-i", join(d, "user"), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
          "-o", `ProxyCommand=bun --max-http-header-size=262144 ${CLI} connect ${s.name} --stdio`, `${user}@${s.name}`, remote],
        { stdin, timeoutMs: 120_000, env: { AZHEXGATE_API_URL: gw.apiUrl, AZHEXGATE_API_KEY: API_KEY } },
      );
    const hello = await ssh("echo hello from $(hostname)");
    expect(hello.err).toBe("");
    expect(hello.out).toStartWith("hello from ");

    const data = randomBytes(64 * 1024 * 1024);
    const sha = createHash("sha256").update(data).digest("hex");
    const up = await ssh(`cat > ${join(d, "up.bin")} && sha256sum ${join(d, "up.bin")}`, new Blob([data]));
    expect(up.code).toBe(0);
    expect(up.out.split(" ")[0]).toBe(sha);
    const down = Bun.spawn(
      ["ssh", "-F", "/dev/null", "-i", join(d, "user"), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
        "-o", `ProxyCommand=bun --max-http-header-size=262144 ${CLI} connect ${s.name} --stdio`, `${user}@${s.name}`, `cat ${join(d, "up.bin")}`],
      { stdout: "pipe", stderr: "pipe", env: { ...process.env, AZHEXGATE_API_URL: gw.apiUrl, AZHEXGATE_API_KEY: API_KEY } },
    );
    const h = createHash("sha256");
    let n = 0;
    for await (const chunk of down.stdout) {
      h.update(chunk);
      n += chunk.length;
    }
    expect(await down.exited).toBe(0);
    expect(n).toBe(data.length);
    expect(h.digest("hex")).toBe(sha);
  } finally {
    sshd.kill("SIGKILL");
  }
}, 300_000);
