/**
 * `start` on a terminal: the live status view, run under a real pseudo-terminal (`script` from
 * util-linux) against a local app — the screen shows the request counts, redraws in place, and
 * Ctrl+C (a real ^C through the terminal) stops it. NO_COLOR and a non-terminal stdout have no
 * colour codes (non-terminal: no escape codes at all). And `--open` with a fake opener / none.
 */
import { afterEach, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { CLI, get, killAll, spawnCli, startGatewayChild, until } from "./support/cli-proc.ts";

const procs: Subprocess[] = [];
afterEach(async () => {
  for (const p of procs.splice(0)) if (p.exitCode === null) p.kill("SIGKILL");
  await killAll();
});

const tmp = () => mkdtempSync(join(tmpdir(), "azhexgate-view-"));
const SGR = /\x1b\[[0-9;]*m/;

function app() {
  return Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => new Response(`hello ${new URL(req.url).pathname}`) });
}

/** Env for children: no AZHEXGATE_*, no colour overrides unless given. */
function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("AZHEXGATE_") && k !== "NO_COLOR" && k !== "FORCE_COLOR") env[k] = v;
  return { ...env, TERM: "xterm-256color", ...extra };
}

/** `azhexgate start ...args` under a pseudo-terminal; `screen()` is everything written so far. */
function underPty(args: string[], env: Record<string, string>) {
  const cmd = ["bun", "--max-http-header-size=262144", CLI, ...args].map((a) => `'${a}'`).join(" ");
  const proc = Bun.spawn(["script", "-qefc", `stty cols 100 rows 40; exec ${cmd}`, "/dev/null"], { env, stdin: "pipe", stdout: "pipe", stderr: "pipe", cwd: tmp() });
  procs.push(proc);
  let raw = "";
  void (async () => {
    const td = new TextDecoder();
    for await (const c of proc.stdout) raw += td.decode(c, { stream: true });
  })();
  return {
    proc,
    raw: () => raw,
    /** The last complete frame of the panel, plain text. */
    frame: () => {
      const frames = raw.split("\x1b[J");
      return frames[frames.length - 1]!.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "").replace(/\r/g, "");
    },
    /** Number of in-place redraws so far. */
    redraws: () => raw.split("\x1b[J").length - 1,
  };
}

test("on a terminal: a live panel with state, URLs, counts, latency, connections and bytes; Ctrl+C stops it", async () => {
  const a = app();
  try {
    const t = underPty(["start", String(a.port)], childEnv());
    const url = await until("the panel with the loopback URL", async () => /Loopback URL\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(t.frame())?.[1], 30_000);
    expect(t.frame()).toMatch(/Status\s+online/);
    expect(t.frame()).toMatch(/Public URL\s+http:\/\/[a-z2-7]{13}\.localhost:\d+/);
    expect(t.frame()).toContain(`Forwarding    http://localhost:${a.port}`);
    expect(t.frame()).toMatch(/Requests\s+0 total/);

    const before = t.redraws();
    expect(await (await get(`${url}/post`, 5000, { method: "POST", body: "z".repeat(100) })).text()).toBe("hello /post");
    for (let i = 0; i < 39; i++) expect(await (await get(`${url}/r${i}`)).text()).toBe(`hello /r${i}`);
    await until("40 requests on the panel", async () => (/Requests\s+40 total, \d+\.\d\/s/.test(t.frame()) ? true : undefined), 15_000);
    const f = t.frame();
    expect(f).toMatch(/Latency\s+p50 [\d.]+ ms, p90 [\d.]+ ms/);
    expect(f).toMatch(/Connections\s+0 open/);
    expect(f).toMatch(/Bytes\s+in 100 B, out 391 B/); // the POST's body in; "hello /post" + "hello /rN" × 39 out
    // request lines scroll above the panel
    expect(t.raw()).toMatch(/GET\s+\/r38\s+200/);
    expect(t.raw()).toMatch(/POST\s+\/post\s+200/);
    // redrawn in place (cursor up + clear), and not once per request
    expect(t.raw()).toMatch(/\x1b\[\d+A\x1b\[J/);
    expect(t.redraws() - before).toBeLessThan(40);
    expect(t.raw()).toMatch(SGR); // colours on a terminal without NO_COLOR

    t.proc.stdin.write("\x03"); // Ctrl+C through the terminal's line discipline
    t.proc.stdin.flush();
    const code = await Promise.race([t.proc.exited, Bun.sleep(15_000).then(() => "timeout")]);
    expect(code).toBe(0);
  } finally {
    a.stop(true);
  }
}, 90_000);

test("on a terminal, a terminal error (rejected key) is shown in full above the panel, which says offline; exit code 3", async () => {
  const gw = await startGatewayChild();
  const t = underPty(["start", "3999", "--api-url", gw.apiUrl, "--api-key", "not-the-right-key-0123456789"], childEnv({ NO_COLOR: "1" }));
  const code = await Promise.race([t.proc.exited, Bun.sleep(30_000).then(() => "timeout")]);
  expect(code).toBe(3);
  const screen = t.raw().replace(/\r/g, "");
  expect(screen).toMatch(/^error: http:\/\/localhost:3999: .*API key/m);
  expect(t.frame()).toMatch(/Status\s+offline/);
}, 60_000);

test("NO_COLOR on a terminal: the panel without colour codes", async () => {
  const a = app();
  try {
    const t = underPty(["start", String(a.port)], childEnv({ NO_COLOR: "1" }));
    const url = await until("the panel", async () => /Loopback URL\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(t.frame())?.[1], 30_000);
    await get(`${url}/one`);
    await until("1 request on the panel", async () => (/Requests\s+1 total/.test(t.frame()) ? true : undefined), 15_000);
    expect(t.raw()).not.toMatch(SGR);
  } finally {
    a.stop(true);
  }
}, 60_000);

test("stdout not a terminal: plain lines, no escape codes at all (colours allowed by the environment or not)", async () => {
  const a = app();
  try {
    const p = Bun.spawn(["bun", CLI, "start", String(a.port)], { env: childEnv(), stdout: "pipe", stderr: "pipe", stdin: "ignore", cwd: tmp() });
    procs.push(p);
    let out = "";
    const reader = (async () => {
      for await (const c of p.stdout) out += new TextDecoder().decode(c);
    })();
    const url = await until("the banner", async () => /Loopback URL:\s+(\S+)/.exec(out)?.[1], 30_000);
    await get(`${url}/plain`);
    await until("the request line", async () => (/GET\s+\/plain\s+200/.test(out) ? true : undefined), 15_000);
    p.kill("SIGINT");
    await p.exited;
    await reader;
    const err = await new Response(p.stderr).text();
    expect(out).toStartWith("Tunnel established\n");
    expect(out + err).not.toContain("\x1b");
  } finally {
    a.stop(true);
  }
}, 60_000);

test("--open runs the platform's opener with the public URL; a missing or failing opener is a warning, never a failure", async () => {
  const a = app();
  const bin = tmp();
  const record = join(bin, "opened.txt");
  writeFileSync(join(bin, "xdg-open"), `#!/bin/sh\necho "$1" > '${record}'\n`);
  chmodSync(join(bin, "xdg-open"), 0o755);
  // PATH for the children: `bun` (as a symlink) and, in `bin`, a fake opener recording its argument
  const bunDir = tmp();
  symlinkSync(process.execPath, join(bunDir, "bun"));
  try {
    const ok = spawnCli(["start", String(a.port), "--open", "--json"], { env: { PATH: `${bin}:${bunDir}` }, cwd: tmp() });
    const ready = await ok.waitEvent((e) => e.event === "ready", 30_000);
    const opened = await until("the opener to run", async () => (existsSync(record) ? readFileSync(record, "utf8").trim() : undefined), 10_000);
    expect(opened).toBe(String(ready.public_url));
    expect(ok.events().filter((e) => e.event === "warning")).toEqual([]);

    // no opener on PATH: a warning naming the URL, and the tunnel works
    const none = spawnCli(["start", String(a.port), "--open"], { env: { PATH: bunDir }, cwd: tmp() });
    const warn = await none.waitErr(/^warning: --open: no xdg-open found/, 30_000);
    const pub = /open (http:\/\/\S+) yourself/.exec(warn)?.[1];
    expect(pub).toMatch(/^http:\/\/[a-z2-7]{13}\.localhost:\d+$/);
    expect(await (await get(`${pub}/still-up`)).text()).toBe("hello /still-up");

    // an opener that fails (no browser): a warning with its exit code
    writeFileSync(join(bin, "xdg-open"), "#!/bin/sh\nexit 3\n");
    const failing = spawnCli(["start", String(a.port), "--open"], { env: { PATH: `${bin}:${bunDir}` }, cwd: tmp() });
    await failing.waitErr(/^warning: --open: xdg-open exited with code 3; open http:\/\/\S+ yourself$/, 30_000);
    failing.kill("SIGINT");
    expect(await failing.exit()).toBe(0);
  } finally {
    a.stop(true);
  }
}, 90_000);
