/**
 * Every message `azhexgate start` / `azhexgate gateway` can greet a user with, produced for real:
 * management API unreachable, API key rejected (401, --exit-on-fail → exit 1), bad usage (one
 * line, exit 2), --help (complete, no secrets even when they are in the environment), --version.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pkg from "../package.json" with { type: "json" };
import gatewayCommand from "../src/commands/gateway.ts";
import startCommand from "../src/commands/start.ts";
import { API_KEY, freePort, killAll, spawnCli, startGatewayChild } from "./support/cli-proc.ts";

afterEach(killAll);

const cwd = () => mkdtempSync(join(tmpdir(), "azhexgate-cli-"));
const SECRET = "do-not-print-this-secret-0123456789";

describe("azhexgate start: failures read well", () => {
  test("management API unreachable: names the URL and the setting to check, keeps retrying", async () => {
    const port = freePort();
    const apiUrl = `http://127.0.0.1:${port}`;
    const cli = spawnCli(["start", "--port", "3000", "--api-url", apiUrl, "--json"], { env: { AZHEXGATE_API_KEY: SECRET }, cwd: cwd() });
    const first = await cli.waitEvent((e) => e.event === "state" && e.state === "reconnecting", 10_000);
    expect(first).toMatchObject({ code: "api_unreachable", attempt: 1 });
    expect(String(first.reason)).toMatch(new RegExp(`^Cannot reach the management API at ${apiUrl.replace(/\./g, "\\.")} \\(.+\\)\\. Check --api-url / AZHEXGATE_API_URL and your network\\.$`));
    await cli.waitEvent((e) => e.event === "state" && e.state === "reconnecting" && e.attempt === 2, 10_000);
    expect(cli.proc.exitCode).toBeNull(); // retryable: it keeps trying
    cli.kill("SIGINT");
    expect(await cli.exit()).toBe(0);
    expect(cli.text().out + cli.text().err).not.toContain(SECRET);
  });

  test("management API unreachable, human output: one readable line on stderr per attempt", async () => {
    const apiUrl = `http://127.0.0.1:${freePort()}`;
    const cli = spawnCli(["start", "--port", "3000", "--api-url", apiUrl], { env: { AZHEXGATE_API_KEY: SECRET }, cwd: cwd() });
    const line = await cli.waitErr(/reconnecting/, 10_000);
    expect(line).toMatch(new RegExp(`^http://localhost:3000: reconnecting in \\d+\\.\\d s \\(Cannot reach the management API at ${apiUrl.replace(/\./g, "\\.")} .*Check --api-url / AZHEXGATE_API_URL and your network\\.\\)$`));
    expect(cli.out.filter(Boolean)).toEqual([]); // no banner: never online
    expect(cli.text().err).not.toContain(SECRET);
  });

  test("a wrong API key (401) exits 3 at once naming AZHEXGATE_API_KEY (no --exit-on-fail needed, no retry loop)", async () => {
    const gw = await startGatewayChild();
    // A real local app, so the only line on stderr is the one about the key (with nothing on the
    // port, start would also warn that the app is not listening: true, but not this test's point).
    const origin = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("ok") });
    const port = String(origin.port);
    const wrong = "wrong-key-but-long-enough-0123456789";
    const cli = spawnCli(["start", "--port", port, "--api-url", gw.apiUrl], { env: { AZHEXGATE_API_KEY: wrong }, cwd: cwd() });
    expect(await cli.exit()).toBe(3);
    const { out, err } = cli.text();
    expect(out).toBe("");
    // said once, naming the tunnel, the cause and the fix
    expect(err.trim()).toBe(`error: http://localhost:${port}: The management API rejected the API key (401). Check --api-key / AZHEXGATE_API_KEY.`);
    expect(err).not.toContain(wrong);
    expect(err).not.toContain(API_KEY);

    const json = spawnCli(["start", "--port", port, "--api-url", gw.apiUrl, "--exit-on-fail", "--json"], { env: { AZHEXGATE_API_KEY: wrong }, cwd: cwd() });
    expect(await json.exit()).toBe(3);
    const events = json.events();
    expect(events.find((e) => e.event === "error")).toMatchObject({ code: "api_key_rejected", exit_code: 3, message: expect.stringContaining("AZHEXGATE_API_KEY") });
    expect(events.find((e) => e.event === "state")).toMatchObject({ state: "offline" });
    expect(events.some((e) => e.event === "ready" || (e.event === "state" && e.state === "reconnecting"))).toBe(false);
    origin.stop(true);
  });

  test("a reserved name owned by another API key exits 4; a 5xx is retried", async () => {
    const other = "other-key-0123456789abcdef-xyz";
    const gw = await startGatewayChild({ env: { AZHEXGATE_API_KEYS: `${API_KEY},${other}` } });
    const taken = await fetch(`${gw.apiUrl}/api/tunnels`, {
      method: "POST",
      headers: { "x-azhexgate-apikey": other, "content-type": "application/json" },
      body: JSON.stringify({ subdomain: "someone-elses" }),
    });
    expect(taken.status).toBe(201);
    const origin = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("ok") });
    const cli = spawnCli(["start", "--port", String(origin.port), "--subdomain", "someone-elses", "--api-url", gw.apiUrl, "--json"], { env: { AZHEXGATE_API_KEY: API_KEY }, cwd: cwd() });
    expect(await cli.exit()).toBe(4);
    expect(cli.events().find((e) => e.event === "error")).toMatchObject({ code: "subdomain_taken", exit_code: 4, message: expect.stringContaining("reserved by another API key") });

    // a management API answering 503 is a passing trouble: keep retrying
    const flaky = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => Response.json({ error: { code: "unavailable", message: "try later" } }, { status: 503 }) });
    const retry = spawnCli(["start", "--port", String(origin.port), "--api-url", `http://127.0.0.1:${flaky.port}`, "--json"], { env: { AZHEXGATE_API_KEY: API_KEY }, cwd: cwd() });
    await retry.waitEvent((e) => e.event === "state" && e.state === "reconnecting" && e.attempt === 2, 15_000);
    expect(retry.proc.exitCode).toBeNull();
    retry.kill("SIGINT");
    expect(await retry.exit()).toBe(0);
    flaky.stop(true);
    origin.stop(true);
  });
});

describe("bad usage: one line on stderr, exit code 2", () => {
  const cases: Array<[string[], string]> = [
    [["start", "--bogus"], 'azhexgate start: unknown option "--bogus" (see --help)'],
    [["start", "--port", "abc"], 'azhexgate start: --port must be the port your local app listens on, a whole number from 1 to 65535 (got "abc")'],
    [["start", "--port", "0"], 'azhexgate start: --port must be the port your local app listens on, a whole number from 1 to 65535 (got "0")'],
    [["start"], "azhexgate start: --port is required: the port your local app listens on, e.g. azhexgate start 3000 (or --port 3000)"],
    [["start", "--port", "3000", "--api-url", "ftp://example.com"], 'azhexgate start: --api-url / AZHEXGATE_API_URL must be an http(s) URL (got "ftp://example.com")'],
    [["start", "--port", "3000", "--api-url", "http://127.0.0.1:9"], "azhexgate start: --api-url needs an API key or a sign-in: set AZHEXGATE_API_KEY (or --api-key), or run `azhexgate login --api-url http://127.0.0.1:9`"],
    [["start", "--port", "3000", "--grace", "soon"], 'azhexgate start: --grace must be a number of seconds (got "soon")'],
    [["gateway", "--port", "99999"], 'azhexgate gateway: --port / AZHEXGATE_PORT must be a whole number from 0 to 65535 (got "99999")'],
    [["gateway", "--bogus"], 'azhexgate gateway: unknown option "--bogus" (see --help)'],
  ];
  for (const [args, message] of cases) {
    test(`${args.join(" ")}`, async () => {
      const cli = spawnCli(args, { cwd: cwd() });
      expect(await cli.exit()).toBe(2);
      const { out, err } = cli.text();
      expect(out).toBe("");
      expect(err.trim()).toBe(message);
    });
  }
});

describe("--help and --version", () => {
  const flagsOf = (cmd: { args?: unknown }) =>
    Object.entries(cmd.args as Record<string, { type?: string }>).filter(([, d]) => d.type !== "positional").map(([k]) => k);

  for (const [name, cmd] of [["start", startCommand], ["gateway", gatewayCommand]] as const) {
    test(`${name} --help lists every option with its description and prints no secret`, async () => {
      const cli = spawnCli([name, "--help"], { env: { AZHEXGATE_API_KEY: SECRET, AZHEXGATE_API_KEYS: SECRET }, cwd: cwd() });
      expect(await cli.exit()).toBe(0);
      const help = cli.text().out + cli.text().err;
      expect(help).toContain(`azhexgate ${name}`);
      expect(help).toContain(String((cmd as { meta?: { description?: string } }).meta?.description));
      const flags = flagsOf(cmd);
      expect(flags.length).toBeGreaterThan(5);
      for (const f of flags) {
        expect(help).toContain(`--${f}`);
        const desc = (cmd.args as Record<string, { description?: string }>)[f]!.description!;
        expect(help).toContain(desc.slice(0, 30));
      }
      expect(help).not.toContain(SECRET);
    });
  }

  test("--version prints the package.json version", async () => {
    const cli = spawnCli(["--version"], { cwd: cwd() });
    expect(await cli.exit()).toBe(0);
    expect(cli.text().out.trim()).toBe(pkg.version);
  });
});
