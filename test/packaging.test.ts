/**
 * The `azhexgate` command installs the way users install it: `bun add -g <clone>` and
 * `bun add -g <npm pack tarball>`, each into a throwaway global directory (BUN_INSTALL), then
 * `bunx azhexgate start --help` with that global bin on PATH. (Bun 1.4.4's `bun link` does not make
 * `bunx azhexgate` work; `bun add -g` does.) Needs the npm registry for the dependencies.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

async function run(cmd: string[], env: Record<string, string>, cwd = root): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn(cmd, { cwd, env: { ...process.env, ...env, NO_COLOR: "1" }, stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => p.kill(), 90_000);
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  return { code, out, err };
}

async function install(source: string): Promise<{ home: string; env: Record<string, string> }> {
  const home = mkdtempSync(join(tmpdir(), "azhexgate-global-"));
  const env = { BUN_INSTALL: home, PATH: `${home}/bin:${process.env.PATH}` };
  const add = await run(["bun", "add", "-g", source], env);
  expect(add.code).toBe(0);
  return { home, env };
}

async function installAndRun(source: string): Promise<string> {
  const { home, env } = await install(source);
  const help = await run(["bunx", "azhexgate", "start", "--help"], env, home);
  expect(help.code).toBe(0);
  return help.out + help.err;
}

describe("installing the azhexgate command", () => {
  test("bun add -g <clone>, then bunx azhexgate start --help", async () => {
    const help = await installAndRun(root);
    expect(help).toContain("Expose local ports through a tunnel");
    expect(help).toContain("--port");
  }, 120_000);

  test("bun add -g <npm pack tarball>, then bunx azhexgate start --help", async () => {
    const dir = mkdtempSync(join(tmpdir(), "azhexgate-pack-"));
    const pack = await run(["npm", "pack", "--silent", "--pack-destination", dir], {});
    expect(pack.code).toBe(0);
    const tarball = join(dir, pack.out.trim().split("\n").pop()!);
    const help = await installAndRun(tarball);
    expect(help).toContain("Expose local ports through a tunnel");
  }, 120_000);

  test("the installed command raises Bun's header limit: a 40 KB header passes the embedded gateway", async () => {
    const { home, env } = await install(root);
    const origin = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => new Response(`x-big ${req.headers.get("x-big")?.length}`) });
    const agent = Bun.spawn(["bunx", "azhexgate", "start", "--port", String(origin.port), "--json"], { cwd: home, env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
    try {
      const reader = agent.stdout.getReader();
      let text = "";
      const deadline = Date.now() + 20_000;
      while (!text.includes("\n") && Date.now() < deadline) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      const ready = JSON.parse(text.split("\n")[0]!) as { public_url: string };
      const res = await fetch(ready.public_url, { headers: { "x-big": "b".repeat(40_000) } });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("x-big 40000");
    } finally {
      agent.kill("SIGINT");
      await agent.exited;
      origin.stop(true);
    }
  }, 120_000);
});
