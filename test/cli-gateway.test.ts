/**
 * `azhexgate start --api-url` against an `azhexgate gateway` child process (local relay emulator):
 * a control channel dropped by the emulator's fault switch comes back, 5-second listener tokens
 * are renewed under load without losing a request, and a gateway restart (SQLite registry, same
 * port) is survived with the same public URL.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { API_KEY, get, killAll, spawnCli, startGatewayChild, startOrigin, until } from "./support/cli-proc.ts";

const origins: Array<ReturnType<typeof startOrigin>> = [];
afterEach(async () => {
  await killAll();
  for (const o of origins.splice(0)) o.stop(true);
});

function origin() {
  let n = 0;
  const o = startOrigin((req) => new Response(`ok ${new URL(req.url).pathname} ${++n}`));
  origins.push(o);
  return o;
}

function startAgent(apiUrl: string, port: number) {
  return spawnCli(["start", "--port", String(port), "--api-url", apiUrl, "--json"], {
    env: { AZHEXGATE_API_KEY: API_KEY },
    cwd: mkdtempSync(join(tmpdir(), "azhexgate-cli-")),
  });
}

describe("azhexgate start --api-url against azhexgate gateway", () => {
  test("a control channel dropped by the relay is re-established and the tunnel serves again", async () => {
    const gw = await startGatewayChild();
    const app = origin();
    const agent = startAgent(gw.apiUrl, app.port);
    const ready = await agent.waitEvent((e) => e.event === "ready", 20_000);
    const url = String(ready.public_url);
    expect(url).toBe(`http://${ready.tunnel_id}.localhost:${gw.port}`);
    expect((await get(`${url}/before`)).status).toBe(200);

    // where the gateway's relay emulator is, from the management API
    const view = (await (await fetch(`${gw.apiUrl}/api/tunnels/${ready.tunnel_id}`, { headers: { "x-azhexgate-apikey": API_KEY } })).json()) as {
      relay_endpoint: string;
      hybrid_connection_name: string;
    };
    const emulator = view.relay_endpoint.replace(/^ws/, "http");
    const drop = await fetch(`${emulator}/$emulator/faults`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ action: "dropControlChannels", hcPath: view.hybrid_connection_name }),
    });
    expect(drop.status).toBe(200);
    expect(JSON.stringify(await drop.json())).toContain("1"); // one channel dropped

    const reconnecting = await agent.waitEvent((e) => e.event === "state" && e.state === "reconnecting", 10_000);
    expect(String(reconnecting.reason)).toMatch(/\S/);
    const online = await agent.waitEvent((e) => e.event === "state" && e.state === "online", 15_000);
    expect(online.publicUrl).toBe(url);
    const text = await until("the tunnel to answer again", async () => {
      const r = await get(`${url}/after`);
      return r.status === 200 ? r.text() : (await r.arrayBuffer(), undefined);
    }, 10_000);
    expect(text).toMatch(/^ok \/after \d+$/);
    expect(agent.proc.exitCode).toBeNull();
  });

  test("5-second listener tokens are renewed three times without losing a request", async () => {
    const gw = await startGatewayChild({ tokenTtl: 5 });
    const app = origin();
    const agent = startAgent(gw.apiUrl, app.port);
    const url = String((await agent.waitEvent((e) => e.event === "ready", 20_000)).public_url);
    const renewals = () =>
      gw.child.err.filter((l) => l.includes('"api request"') && l.includes("/token") && l.includes('"status":200')).length;
    const before = renewals();

    const t0 = Date.now();
    let sent = 0;
    const failures: string[] = [];
    // four clients, one request in flight each, for ~16 s (three 5 s tokens and then some)
    await Promise.all(
      [0, 1, 2, 3].map(async (c) => {
        while (Date.now() - t0 < 16_000) {
          const i = ++sent;
          try {
            const r = await get(`${url}/c${c}/${i}`, 5000);
            const body = await r.text();
            if (r.status !== 200 || !body.startsWith(`ok /c${c}/${i} `)) failures.push(`#${i}: ${r.status} ${body.slice(0, 120)}`);
          } catch (err) {
            failures.push(`#${i}: ${(err as Error).message}`);
          }
          await Bun.sleep(20);
        }
      }),
    );
    expect(failures).toEqual([]);
    expect(sent).toBeGreaterThan(100);
    expect(renewals() - before).toBeGreaterThanOrEqual(3);
    // renewed in place: the agent never went through a reconnect
    expect(agent.events().filter((e) => e.event === "state")).toEqual([]);
    await agent.waitEvent((e) => e.event === "request" && String(e.path).endsWith(`/${sent}`), 5000).catch(() => undefined);
    expect(agent.events().filter((e) => e.event === "request" && e.status === 200).length).toBeGreaterThanOrEqual(sent - 4);
  }, 40_000);

  test("a gateway restart (SQLite registry, same port) is survived with the same public URL", async () => {
    const registry = `sqlite:${join(mkdtempSync(join(tmpdir(), "azhexgate-reg-")), "tunnels.db")}`;
    const gw1 = await startGatewayChild({ registry });
    const app = origin();
    const agent = startAgent(gw1.apiUrl, app.port);
    const ready = await agent.waitEvent((e) => e.event === "ready", 20_000);
    const url = String(ready.public_url);
    expect((await get(`${url}/one`)).status).toBe(200);

    gw1.child.kill("SIGTERM");
    expect(await gw1.child.exit(10_000)).toBe(0);
    await agent.waitEvent((e) => e.event === "state" && e.state === "reconnecting", 10_000);
    const gw2 = await startGatewayChild({ registry, port: gw1.port });
    expect(gw2.port).toBe(gw1.port);

    const online = await agent.waitEvent((e) => e.event === "state" && e.state === "online", 25_000);
    expect(online.publicUrl).toBe(url);
    const text = await until("the same URL to answer again", async () => {
      const r = await get(`${url}/two`);
      return r.status === 200 ? r.text() : (await r.arrayBuffer(), undefined);
    }, 10_000);
    expect(text).toMatch(/^ok \/two \d+$/);
    // the restarted gateway knows the tunnel by its old id
    const listed = (await (await fetch(`${gw2.apiUrl}/api/tunnels`, { headers: { "x-azhexgate-apikey": API_KEY } })).json()) as { tunnels: Array<{ id: string }> };
    expect(listed.tunnels.map((t) => t.id)).toEqual([String(ready.tunnel_id)]);
  }, 60_000);
});
