/**
 * The container image, without a Docker engine: the test reads the Dockerfile, rebuilds the
 * image's /app on the host the way its steps do (package.json + bun.lock into a scratch dir,
 * `bun install --frozen-lockfile --production` there, node_modules / package.json / src copied
 * into the final dir), then runs ENTRYPOINT + CMD from it with the image's ENV as a non-root user
 * and checks what `docker run` would show: the gateway boots, the HEALTHCHECK command (taken
 * from the Dockerfile) fails before and passes after, every package the source imports resolves
 * and loads from the production install, and SIGTERM (the STOPSIGNAL) exits 0.
 *
 * Host adaptations, each stated: the image's port 8080 becomes a free port (shared machine) in
 * ENV and in the HEALTHCHECK command alike; AZHEXGATE_HOST 0.0.0.0 (needed in a container)
 * becomes 127.0.0.1 (tests bind loopback only); /data becomes a scratch dir owned by the run
 * user, as `chown bun:bun /data` does; the user is `nobody` (65534) through setpriv when the
 * test runs as root (the image's `bun` user does not exist on the host); AZHEXGATE_API_KEYS is
 * given as `docker run -e` would.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const RUN_UID = 65534;

interface Instr {
  op: string;
  args: string;
}
interface Stage {
  name: string;
  instrs: Instr[];
}

/** Dockerfile → stages of instructions (continuations joined, comments dropped). */
function parseDockerfile(text: string): Stage[] {
  const lines = text.replace(/\\\r?\n/g, " ").split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  const stages: Stage[] = [];
  for (const line of lines) {
    const [, op, args] = /^(\w+)\s+(.*)$/.exec(line) ?? [];
    if (!op) continue;
    if (op.toUpperCase() === "FROM") stages.push({ name: /\bAS\s+(\S+)/i.exec(args!)?.[1] ?? String(stages.length), instrs: [] });
    stages[stages.length - 1]!.instrs.push({ op: op.toUpperCase(), args: args!.trim() });
  }
  return stages;
}

const stages = parseDockerfile(readFileSync(join(root, "Dockerfile"), "utf8"));
const final = stages[stages.length - 1]!;
const all = (s: Stage, op: string) => s.instrs.filter((i) => i.op === op);
const jsonArgs = (s: string): string[] => JSON.parse(s.replace(/^CMD\s+/i, ""));

function imageEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const i of all(final, "ENV")) for (const m of i.args.matchAll(/(\w+)=("[^"]*"|\S+)/g)) env[m[1]!] = m[2]!.replace(/^"|"$/g, "");
  return env;
}

const healthcheck = all(final, "HEALTHCHECK")[0]!.args;
const hcTimeoutS = Number(/--timeout=(\d+)s/.exec(healthcheck)?.[1] ?? "30");
const hcCmd = jsonArgs(/\bCMD\s+(\[.*\])$/.exec(healthcheck)![1]!);

let scratch = "";
let app = "";
let data = "";
let home = "";
let port = 0;
let runAs: string[] = [];
let installMs = 0;

function freePort(): number {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = probe.port;
  probe.stop(true);
  return p;
}

/** The environment the container would have, adapted as the header says. */
function runEnv(): Record<string, string> {
  const env = imageEnv();
  for (const [k, v] of Object.entries(env)) env[k] = v.replace(/^\/data\//, `${data}/`).replace(/^sqlite:\/data\//, `sqlite:${data}/`);
  return { PATH: "/usr/local/bin:/usr/bin:/bin", HOME: home, ...env, AZHEXGATE_PORT: String(port), AZHEXGATE_HOST: "127.0.0.1", AZHEXGATE_API_KEYS: "image-test-key-0123456789abcdef" };
}

const argv = (cmd: string[]) => [...runAs, ...cmd.map((a, i) => (i === 0 && a === "bun" ? Bun.which("bun")! : a))];

/** Runs the HEALTHCHECK command as Docker would (its --timeout bounds it); returns the exit code. */
async function runHealthcheck(): Promise<number> {
  const cmd = hcCmd.map((a) => a.replace("127.0.0.1:8080", `127.0.0.1:${port}`));
  const p = Bun.spawn(argv(cmd), { cwd: app, env: runEnv(), stdout: "ignore", stderr: "ignore" });
  const timer = setTimeout(() => p.kill("SIGKILL"), hcTimeoutS * 1000);
  const code = await p.exited;
  clearTimeout(timer);
  return code;
}

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), "azhexgate-image-"));
  chmodSync(scratch, 0o755);
  const deps = join(scratch, "deps");
  app = join(scratch, "app");
  data = join(scratch, "data");
  home = join(scratch, "home");
  for (const d of [deps, app, data, home]) mkdirSync(d);
  // stage "deps": WORKDIR /app, COPY package.json bun.lock ./, RUN bun install …
  for (const i of all(stages[0]!, "COPY")) {
    const parts = i.args.split(/\s+/);
    for (const src of parts.slice(0, -1)) cpSync(join(root, src), join(deps, src));
  }
  for (const i of all(stages[0]!, "RUN")) {
    expect(i.args).toBe("bun install --frozen-lockfile --production"); // the only step this test knows how to replay
    const t0 = performance.now();
    const r = Bun.spawnSync(["bun", ...i.args.split(/\s+/).slice(1)], { cwd: deps, stdout: "pipe", stderr: "pipe", env: { ...process.env, CI: "1" } });
    installMs = performance.now() - t0;
    if (r.exitCode !== 0) throw new Error(`${i.args} failed: ${r.stderr.toString()}`);
  }
  // final stage: COPY --from=deps /app/node_modules ./node_modules, COPY package.json ./, COPY src ./src
  for (const i of all(final, "COPY")) {
    const from = /--from=(\S+)\s+/.exec(i.args);
    const [src, dest] = i.args.replace(/--from=\S+\s+/, "").split(/\s+/) as [string, string];
    const source = from ? join(from[1] === stages[0]!.name ? deps : root, src.replace(/^\/app\/?/, "")) : join(root, src);
    cpSync(source, join(app, dest.replace(/^\.\/?/, "") || relative(dirname(source), source)), { recursive: true });
  }
  if (process.getuid?.() === 0) {
    // setpriv execs the command, so signals reach the gateway itself
    runAs = ["setpriv", `--reuid=${RUN_UID}`, `--regid=${RUN_UID}`, "--clear-groups", "--"];
    chownSync(data, RUN_UID, RUN_UID);
    chownSync(home, RUN_UID, RUN_UID);
  }
  port = freePort();
}, 120_000);

afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe("the image, rebuilt on the host from the Dockerfile", () => {
  test("the Dockerfile is what this test replays: production install from the lockfile, src copied, non-root user, JSON ENTRYPOINT / CMD", () => {
    expect(stages.length).toBe(2);
    expect(all(final, "USER").map((i) => i.args)).toEqual(["bun"]);
    expect(all(final, "RUN").map((i) => i.args)).toEqual(["mkdir -p /data && chown bun:bun /data"]); // replayed as the scratch data dir
    expect(all(final, "STOPSIGNAL").map((i) => i.args)).toEqual(["SIGTERM"]);
    expect(jsonArgs(all(final, "CMD")[0]!.args)).toEqual(["gateway"]);
    expect(jsonArgs(all(final, "ENTRYPOINT")[0]!.args)).toEqual(["bun", "--max-http-header-size=262144", "src/cli.ts"]);
    expect(imageEnv()).toMatchObject({ NODE_ENV: "production", AZHEXGATE_HOST: "0.0.0.0", AZHEXGATE_PORT: "8080" });
    expect(hcCmd.join(" ")).toContain("http://127.0.0.1:8080/healthz");
    expect(readdirSync(app).sort()).toEqual(["node_modules", "package.json", "src"]);
    expect(statSync(join(app, "node_modules", "typescript"), { throwIfNoEntry: false })).toBeUndefined(); // dev dependencies stay out
    console.log(`production install from the lockfile: ${Math.round(installMs)} ms`);
  });

  test(".dockerignore keeps the context to what the COPY steps take", () => {
    const ignored = new Set(readFileSync(join(root, ".dockerignore"), "utf8").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#")));
    for (const p of ["node_modules", ".git", "test", "bench", "docs", "infra"]) expect(ignored.has(p) ? p : `${p} not ignored`).toBe(p);
    for (const p of ["package.json", "bun.lock", "src"]) expect(ignored.has(p) ? `${p} is ignored but COPY needs it` : p).toBe(p);
  });

  test("every package the source imports resolves and loads from the production install, as the run user", async () => {
    const specs = new Set<string>();
    const walk = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []));
    for (const file of walk(join(app, "src"))) {
      const text = readFileSync(file, "utf8");
      // runtime imports only: `import type …` and `import("…").Type` in type positions are erased
      for (const m of text.matchAll(/^\s*import\s+(?!type\b)[^;]*?from\s+"([^"]+)"|\bimport\(\s*"([^"]+)"\s*\)(?!\s*\.\s*[A-Z])/gm)) {
        const spec = m[1] ?? m[2]!;
        if (spec.startsWith(".") || spec.startsWith("node:") || spec === "bun" || spec.startsWith("bun:")) continue;
        expect(() => Bun.resolveSync(spec, dirname(file))).not.toThrow();
        expect(Bun.resolveSync(spec, dirname(file))).toStartWith(join(app, "node_modules"));
        specs.add(spec);
      }
    }
    expect([...specs].sort()).toEqual(["@azure/arm-relay", "@azure/identity", "citty", "consola", "jose", "uqr"]);
    // load them for real (transitive dependencies included), lazily loaded Azure SDK too
    const script = [...specs].map((s) => `await import(${JSON.stringify(s)});`).join(" ") + ` console.log("loaded");`;
    const p = Bun.spawn(argv(["bun", "-e", script]), { cwd: app, env: runEnv(), stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    expect({ code, out: out.trim(), err: err.trim() }).toEqual({ code: 0, out: "loaded", err: "" });
  }, 30_000);

  test("`gateway` boots as a non-root user with the image's ENV: HEALTHCHECK fails before and passes after, SIGTERM exits 0", async () => {
    expect(await runHealthcheck()).not.toBe(0); // nothing listening yet: the check can fail
    const gw = Bun.spawn(argv([...jsonArgs(all(final, "ENTRYPOINT")[0]!.args), ...jsonArgs(all(final, "CMD")[0]!.args)]), {
      cwd: app,
      env: runEnv(),
      stdout: "pipe",
      stderr: "pipe",
    });
    const out = new Response(gw.stdout).text();
    const err = new Response(gw.stderr).text();
    try {
      let healthy = false;
      const deadline = Date.now() + 30_000;
      while (!healthy && Date.now() < deadline && gw.exitCode === null) {
        healthy = (await runHealthcheck()) === 0;
        if (!healthy) await Bun.sleep(200);
      }
      expect(gw.exitCode).toBeNull();
      expect(healthy).toBe(true);
      if (runAs.length) {
        const status = readFileSync(`/proc/${gw.pid}/status`, "utf8");
        expect(/^Uid:\s+(\d+)/m.exec(status)![1]).toBe(String(RUN_UID));
      }
      // the gateway answers as itself: a tunnel host it does not know is its own 404 (bound to
      // loopback with no AZHEXGATE_BASE_DOMAIN, tunnels are {id}.localhost)
      const res = await fetch(`http://127.0.0.1:${port}/`, { headers: { host: "12345678.localhost" } });
      expect(res.status).toBe(404);
      expect(res.headers.get("x-azhexgate-error")).toBe("tunnel_not_found");
      expect(readdirSync(data)).toContain("registry.db"); // the image's sqlite:/data default, written by the run user
    } finally {
      gw.kill("SIGTERM");
      const code = await Promise.race([gw.exited, Bun.sleep(15_000).then(() => "timeout" as const)]);
      if (code === "timeout") gw.kill("SIGKILL");
      const logs = `${await out}\n${await err}`;
      expect(logs).not.toMatch(/Cannot find (module|package)|ERR_MODULE_NOT_FOUND|EACCES/);
      expect(code).toBe(0);
    }
  }, 60_000);
});
