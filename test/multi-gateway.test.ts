/**
 * Several gateway instances behind a load balancer: one Redis registry and one relay. A tunnel
 * created through gateway A is routed by gateway B, and deleting it through B is seen by A.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startAgent } from "../src/agent/agent.ts";
import { resolveGatewayConfig } from "../src/config.ts";
import { createLocalBinding } from "../src/control/local.ts";
import { startEmulator, type EmulatorHandle } from "../src/emulator/server.ts";
import { startGatewayApp, type GatewayApp } from "../src/gateway/app.ts";
import { resolveNamespace } from "../src/hc/address.ts";
import { silentLogger } from "../src/log.ts";
import { redisServerPath, startRedis } from "./support/redis.ts";

const KEY = "multi-gateway-test-key-0123456789";
let redis: Awaited<ReturnType<typeof startRedis>> | undefined;
let relay: EmulatorHandle;
const apps: GatewayApp[] = [];

beforeAll(async () => {
  if (!redisServerPath) return;
  redis = await startRedis();
  relay = await startEmulator();
  const binding = createLocalBinding(relay);
  for (let i = 0; i < 2; i++) {
    const config = resolveGatewayConfig(
      { port: "0", "base-domain": "localhost", "public-scheme": "http", registry: redis.url },
      { AZHEXGATE_API_KEYS: KEY },
    );
    apps.push(await startGatewayApp({ config, env: {}, log: silentLogger, binding }));
  }
});

afterAll(async () => {
  for (const a of apps) await a.stop();
  await relay?.stop();
  await redis?.stop();
});

test.skipIf(!redisServerPath)(`a tunnel created on gateway A is served by gateway B (shared Redis registry); B's delete is seen by A${redisServerPath ? "" : " (skipped: redis-server not on PATH; .ci/run installs it)"}`, async () => {
  const [a, b] = apps as [GatewayApp, GatewayApp];
  const origin = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => new Response(`origin saw ${new URL(req.url).pathname}`) });
  const created = await fetch(`http://localhost:${a.gateway.port}/api/tunnels`, {
    method: "POST",
    headers: { "x-azhexgate-apikey": KEY, "content-type": "application/json" },
    body: JSON.stringify({ local_port: origin.port }),
  }).then((r) => r.json() as Promise<Record<string, string>>);
  const agent = await startAgent({
    endpoint: resolveNamespace(created.relay_endpoint!),
    hcPath: created.hybrid_connection_name!,
    token: created.listener_token!,
    origin: `http://127.0.0.1:${origin.port}`,
    hostHeader: "rewrite",
  });
  try {
    const viaB = await fetch(`http://${created.id}.localhost:${b.gateway.port}/through-b`);
    expect(await viaB.text()).toBe("origin saw /through-b");
    const viaA = await fetch(`http://${created.id}.localhost:${a.gateway.port}/through-a`);
    expect(await viaA.text()).toBe("origin saw /through-a");
    const listedOnB = await fetch(`http://localhost:${b.gateway.port}/api/tunnels`, { headers: { "x-azhexgate-apikey": KEY } }).then((r) => r.json() as Promise<{ tunnels: Array<{ id: string }> }>);
    expect(listedOnB.tunnels.map((t) => t.id)).toContain(created.id!);
    expect((await fetch(`http://localhost:${b.gateway.port}/api/tunnels/${created.id}`, { method: "DELETE", headers: { "x-azhexgate-apikey": KEY } })).status).toBe(204);
    const gone = await fetch(`http://${created.id}.localhost:${a.gateway.port}/after-delete`);
    expect(gone.status).toBe(404);
    expect(gone.headers.get("x-azhexgate-error")).toBe("tunnel_not_found");
  } finally {
    await agent.stop();
    origin.stop(true);
  }
});
