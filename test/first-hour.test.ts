/**
 * The README's gateway path, followed literally by a new user: `azhexgate gateway` with only
 * AZHEXGATE_API_KEYS (no base domain, no scheme), `start --api-url http://localhost:PORT`,
 * `tunnels list`, `tunnels delete` — the agent is told its tunnel was deleted and exits (code 5),
 * or makes a new one only with --recreate. Plus the host rules of a local vs a deployed gateway.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { killAll, spawnCli, startOrigin, type Child } from "./support/cli-proc.ts";

afterEach(killAll);

const KEY = "first-hour-key-0123456789abcdef";
const cwd = () => mkdtempSync(join(tmpdir(), "azhexgate-first-"));

/** `azhexgate gateway` exactly as the README shows it, plus a free port (AZHEXGATE_PORT=0). */
async function readmeGateway(env: Record<string, string> = {}): Promise<{ child: Child; port: number }> {
  const child = spawnCli(["gateway"], { env: { AZHEXGATE_API_KEYS: KEY, AZHEXGATE_PORT: "0", ...env }, cwd: cwd() });
  const line = await child.waitErr(/"gateway ready"/, 20_000);
  return { child, port: Number(new URL((JSON.parse(line) as { url: string }).url).port) };
}

describe("a gateway started as the README says", () => {
  test("start → tunnels list → tunnels delete: the agent says its tunnel was deleted and exits 5", async () => {
    const gw = await readmeGateway();
    const app = startOrigin(() => new Response("hello from the app"));
    try {
      const apiUrl = `http://localhost:${gw.port}`;
      const agent = spawnCli(["start", "--port", String(app.port), "--api-url", apiUrl, "--api-key", KEY, "--json"], { cwd: cwd() });
      const ready = await agent.waitEvent((e) => e.event === "ready", 20_000);
      expect(String(ready.public_url)).toBe(`http://${ready.tunnel_id}.localhost:${gw.port}`);
      const res = await fetch(String(ready.public_url), { signal: AbortSignal.timeout(10_000) });
      expect(await res.text()).toBe("hello from the app");

      const env = { AZHEXGATE_API_URL: apiUrl, AZHEXGATE_API_KEY: KEY };
      const list = spawnCli(["tunnels", "list"], { env, cwd: cwd() });
      expect(await list.exit()).toBe(0);
      expect(list.text().out).toContain(String(ready.public_url));

      const help = spawnCli(["tunnels", "delete", "--help"], { cwd: cwd() });
      await help.exit();
      expect(help.text().out + help.text().err).toContain("exits (unless started with --recreate)");

      const del = spawnCli(["tunnels", "delete", String(ready.tunnel_id)], { env, cwd: cwd() });
      expect(await del.exit()).toBe(0);
      expect(await agent.exit(30_000)).toBe(5);
      const err = agent.events().find((e) => e.event === "error");
      expect(err).toMatchObject({ code: "tunnel_deleted", exit_code: 5 });
      expect(String(err!.message)).toContain(`Tunnel ${ready.tunnel_id} was deleted on the gateway`);
      expect(String(err!.message)).toContain("--recreate");
      // it did not quietly make a new tunnel
      expect(agent.events().filter((e) => e.event === "ready")).toHaveLength(1);
      const after = spawnCli(["tunnels", "list", "--json"], { env, cwd: cwd() });
      expect(await after.exit()).toBe(0);
      expect(JSON.parse(after.text().out)).toEqual([]);
      expect(agent.text().out + agent.text().err).not.toContain(KEY);
    } finally {
      app.stop(true);
    }
  });

  test("--recreate: a deleted tunnel comes back under a new URL, announced with a new ready event", async () => {
    const gw = await readmeGateway();
    const app = startOrigin(() => new Response("again"));
    try {
      const apiUrl = `http://127.0.0.1:${gw.port}`; // an IP host reaches the API too
      const agent = spawnCli(["start", String(app.port), "--api-url", apiUrl, "--recreate", "--json"], { env: { AZHEXGATE_API_KEY: KEY }, cwd: cwd() });
      const first = await agent.waitEvent((e) => e.event === "ready", 20_000);
      const del = spawnCli(["tunnels", "delete", String(first.tunnel_id)], { env: { AZHEXGATE_API_URL: apiUrl, AZHEXGATE_API_KEY: KEY }, cwd: cwd() });
      expect(await del.exit()).toBe(0);
      const second = await agent.waitEvent((e) => e.event === "ready" && e.tunnel_id !== first.tunnel_id, 30_000);
      const res = await fetch(String(second.public_url), { signal: AbortSignal.timeout(10_000) });
      expect(await res.text()).toBe("again");
      expect(agent.proc.exitCode).toBeNull();
    } finally {
      app.stop(true);
    }
  });

  test("the management API answers on localhost, 127.0.0.1 and [::1]; /healthz too; a tunnel host is not the API", async () => {
    const gw = await readmeGateway();
    for (const host of [`localhost:${gw.port}`, `127.0.0.1:${gw.port}`, `[::1]:${gw.port}`, `api.localhost:${gw.port}`]) {
      const res = await fetch(`http://127.0.0.1:${gw.port}/api/tunnels`, { headers: { host, "x-azhexgate-apikey": KEY } });
      expect({ host, status: res.status }).toEqual({ host, status: 200 });
      const health = await fetch(`http://127.0.0.1:${gw.port}/healthz`, { headers: { host } });
      expect(health.status).toBe(200);
    }
    const tunnelHost = await fetch(`http://127.0.0.1:${gw.port}/api/tunnels`, { headers: { host: `abcdef12.localhost:${gw.port}`, "x-azhexgate-apikey": KEY } });
    expect(tunnelHost.status).toBe(404);
    expect(tunnelHost.headers.get("x-azhexgate-error")).toBe("tunnel_not_found");
  });
});

describe("a deployed gateway (base domain set) keeps the strict host rules", () => {
  test("the API only on the apex / api. host; start against another host exits 2 saying what to set", async () => {
    const gw = await readmeGateway({ AZHEXGATE_BASE_DOMAIN: "tunnels.example.test", AZHEXGATE_PUBLIC_SCHEME: "http" });
    const onIp = await fetch(`http://127.0.0.1:${gw.port}/api/tunnels`, { headers: { "x-azhexgate-apikey": KEY } });
    expect(onIp.status).toBe(404);
    const onApex = await fetch(`http://127.0.0.1:${gw.port}/api/tunnels`, { headers: { host: "api.tunnels.example.test", "x-azhexgate-apikey": KEY } });
    expect(onApex.status).toBe(200);

    const agent = spawnCli(["start", "--port", "3000", "--api-url", `http://localhost:${gw.port}`, "--api-key", KEY], { cwd: cwd() });
    expect(await agent.exit(20_000)).toBe(2);
    const err = agent.text().err;
    expect(err).toContain(`does not serve its management API on the host localhost:${gw.port}`);
    expect(err).toContain("AZHEXGATE_API_URL");
    expect(err).toContain("AZHEXGATE_BASE_DOMAIN");
    expect(err).not.toContain("reconnecting"); // said once, no retry loop
  });
});
