/**
 * The reconciler deletes `hc-*` hybrid connections no registry entry owns once they have been
 * orphaned and untouched for the grace period; owned ones, young ones and other names stay.
 * Against the local binding (relay emulator) and against the TLS emulator's ARM subset through the
 * real @azure/arm-relay client (`listByNamespace`). The clock of the reconciler is injected.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { AccessToken, TokenCredential } from "@azure/core-auth";
import { TunnelService } from "../src/api/tunnels.ts";
import { createAzureBinding } from "../src/control/azure.ts";
import { createLocalBinding } from "../src/control/local.ts";
import { startReconciler } from "../src/control/reconciler.ts";
import { readRelaySettings } from "../src/control/settings.ts";
import type { RelayBinding } from "../src/control/types.ts";
import { type EmulatorHandle, startEmulator } from "../src/emulator/server.ts";
import { createLogger } from "../src/log.ts";
import { openSqliteRegistry } from "../src/registry/sqlite.ts";
import type { TunnelRegistry } from "../src/registry/types.ts";
import { resolveGatewayConfig } from "../src/config.ts";
import { startGatewayApp } from "../src/gateway/app.ts";
import { silentLogger } from "../src/log.ts";
import { redisServerPath, startRedis } from "./support/redis.ts";
import { selfSignedCert } from "./support/relay-probe.ts";

const MIN = 60_000;
const GRACE = 10 * MIN;

function logs() {
  const lines: string[] = [];
  return { lines, log: createLogger({ format: "json", level: "debug", sink: (l) => lines.push(l) }) };
}

describe("local binding", () => {
  let emu: EmulatorHandle;
  let binding: RelayBinding;
  let registry: TunnelRegistry;
  let service: TunnelService;
  beforeAll(async () => {
    emu = await startEmulator();
    binding = createLocalBinding(emu);
    registry = openSqliteRegistry(":memory:");
    service = new TunnelService({ registry, provisioner: binding.provisioner, issuer: binding.issuer });
  });
  afterAll(async () => {
    await registry.close();
    await emu.stop();
  });

  test("an orphan goes after the grace period; owned tunnels, a newly seen orphan and non-hc names stay; deletes are logged", async () => {
    const owned = [await service.create("key-1", {}), await service.create("key-2", { subdomain: "kept-name" })];
    await binding.provisioner.ensure("hc-lost-1"); // its registry entry was lost
    emu.entities.upsert({ path: "orders" }); // not ours
    let t = Date.now();
    const { lines, log } = logs();
    const r = startReconciler({ provisioner: binding.provisioner, registry, intervalMs: 0, graceMs: GRACE, now: () => t, log });

    const first = await r.runOnce();
    expect(first).toEqual({ deleted: [], waiting: ["hc-lost-1"], owned: 2 });

    t += GRACE - 1000; // not yet
    expect((await r.runOnce()).deleted).toEqual([]);

    t += 2000;
    await binding.provisioner.ensure("hc-lost-2"); // orphaned too, but first seen now
    const second = await r.runOnce();
    expect(second.deleted).toEqual(["hc-lost-1"]);
    expect(second.waiting).toEqual(["hc-lost-2"]);
    expect(emu.entities.get("hc-lost-1")).toBeUndefined();
    for (const o of owned) expect(emu.entities.get(o.tunnel.hcPath)).toBeDefined();
    expect(emu.entities.get("orders")).toBeDefined();
    const line = lines.find((l) => l.includes("reconciler deleted orphaned hybrid connection"));
    expect(line).toBeDefined();
    expect(JSON.parse(line as string)).toMatchObject({ hc: "hc-lost-1", orphaned_for_s: 601 });

    t += GRACE;
    expect((await r.runOnce()).deleted).toEqual(["hc-lost-2"]);
    expect(emu.entities.get("orders")).toBeDefined();
    for (const o of owned) {
      expect(emu.entities.get(o.tunnel.hcPath)).toBeDefined();
      await service.delete(o.tunnel.keyId, o.tunnel.id);
    }
    r.stop();
  });

  test("an HC (re)created within the grace period is kept even when its name was seen orphaned long ago", async () => {
    const { log } = logs();
    const grace = 1500;
    const r = startReconciler({ provisioner: binding.provisioner, registry, intervalMs: 0, graceMs: grace, log });
    await binding.provisioner.ensure("hc-reborn");
    expect((await r.runOnce()).waiting).toEqual(["hc-reborn"]);
    await Bun.sleep(grace + 100);
    // re-created right now (e.g. by a tunnel being set up on another gateway): young → kept
    await binding.provisioner.remove("hc-reborn");
    await binding.provisioner.ensure("hc-reborn");
    const pass = await r.runOnce();
    expect(pass.deleted).toEqual([]);
    expect(pass.waiting).toEqual(["hc-reborn"]);
    await Bun.sleep(grace + 100);
    expect((await r.runOnce()).deleted).toEqual(["hc-reborn"]);
    r.stop();
  });

  test("a tunnel created after the list was read keeps its HC (the registry is asked again before deleting)", async () => {
    const created = await service.create("key-3", {});
    let t = Date.now() + 2 * GRACE;
    const staleView = { list: async () => [], get: (id: string) => registry.get(id) }; // a list taken before the tunnel existed
    const r = startReconciler({ provisioner: binding.provisioner, registry: staleView, intervalMs: 0, graceMs: GRACE, now: () => t });
    await r.runOnce();
    t += 2 * GRACE;
    const pass = await r.runOnce();
    expect(pass.deleted).toEqual([]);
    expect(emu.entities.get(created.tunnel.hcPath)).toBeDefined();
    await service.delete("key-3", created.tunnel.id);
  });

  test("two gateways on one registry: both reconcile at once, the orphan goes once, owned tunnels stay", async () => {
    const kept = await service.create("key-4", {});
    await binding.provisioner.ensure("hc-shared-orphan");
    let t = Date.now();
    const a = startReconciler({ provisioner: binding.provisioner, registry, intervalMs: 0, graceMs: GRACE, now: () => t });
    const b = startReconciler({ provisioner: binding.provisioner, registry, intervalMs: 0, graceMs: GRACE, now: () => t });
    await Promise.all([a.runOnce(), b.runOnce()]);
    t += GRACE + 1000;
    const [ra, rb] = await Promise.all([a.runOnce(), b.runOnce()]);
    expect([...ra.deleted, ...rb.deleted].filter((n) => n === "hc-shared-orphan").length).toBeGreaterThanOrEqual(1);
    expect(emu.entities.get("hc-shared-orphan")).toBeUndefined();
    expect(emu.entities.get(kept.tunnel.hcPath)).toBeDefined();
    expect(ra.owned).toBe(1);
    expect(rb.owned).toBe(1);
    await service.delete("key-4", kept.tunnel.id);
  });

  test("on its interval: a timer pass deletes an old orphan", async () => {
    await binding.provisioner.ensure("hc-timer-orphan");
    let t = Date.now();
    const r = startReconciler({ provisioner: binding.provisioner, registry, intervalMs: 10, graceMs: GRACE, now: () => (t += GRACE) });
    try {
      for (let i = 0; i < 400 && emu.entities.get("hc-timer-orphan"); i++) await Bun.sleep(5);
      expect(emu.entities.get("hc-timer-orphan")).toBeUndefined();
    } finally {
      r.stop();
    }
  });
});

describe("Azure binding: ARM listByNamespace through @azure/arm-relay", () => {
  const SUB = "11111111-2222-3333-4444-555555555555";
  let emu: EmulatorHandle;
  let binding: RelayBinding;
  let registry: TunnelRegistry;
  beforeAll(async () => {
    const { cert, key } = selfSignedCert();
    emu = await startEmulator({ tls: { cert, key }, arm: { subscriptionId: SUB, resourceGroup: "rg", namespace: "azhexgate-reco" } });
    const settings = readRelaySettings({ AZHEXGATE_RELAY_NAMESPACE: "azhexgate-reco", AZURE_SUBSCRIPTION_ID: SUB, AZURE_RESOURCE_GROUP: "rg" });
    if (settings.mode !== "azure") throw new Error("expected azure settings");
    const credential: TokenCredential = { getToken: async (): Promise<AccessToken> => ({ token: "any", expiresOnTimestamp: Date.now() + 3_600_000 }) };
    binding = await createAzureBinding(settings, { credential, armEndpoint: emu.httpUrl, armTlsCa: cert, endpoint: emu.endpoint });
    registry = openSqliteRegistry(":memory:");
  });
  afterAll(async () => {
    await binding?.close();
    await registry?.close();
    await emu?.stop();
  });

  test("lists with ARM times, deletes the orphan through ARM, keeps the owned HC and other entities", async () => {
    const service = new TunnelService({ registry, provisioner: binding.provisioner, issuer: binding.issuer });
    const owned = await service.create("key-arm", {});
    await binding.provisioner.ensure("hc-arm-orphan");
    emu.entities.upsert({ path: "billing" });
    const listed = await binding.provisioner.list?.();
    const orphan = listed?.find((h) => h.name === "hc-arm-orphan");
    expect(orphan?.createdAt).toBeGreaterThan(Date.now() - MIN);
    expect(listed?.map((h) => h.name).sort()).toEqual(["billing", "hc-arm-orphan", owned.tunnel.hcPath].sort());

    let t = Date.now();
    const { lines, log } = logs();
    const r = startReconciler({ provisioner: binding.provisioner, registry, intervalMs: 0, graceMs: GRACE, now: () => t, log });
    expect((await r.runOnce()).waiting).toEqual(["hc-arm-orphan"]);
    t += GRACE + 1000;
    expect(await r.runOnce()).toEqual({ deleted: ["hc-arm-orphan"], waiting: [], owned: 1 });
    expect(emu.entities.get("hc-arm-orphan")).toBeUndefined();
    expect(emu.entities.get(owned.tunnel.hcPath)).toBeDefined();
    expect(emu.entities.get("billing")).toBeDefined();
    expect(lines.some((l) => l.includes("reconciler deleted orphaned hybrid connection") && l.includes("hc-arm-orphan"))).toBe(true);
    r.stop();
  });
});

describe("two gateway processes' worth of apps on one Redis registry", () => {
  test.skipIf(!redisServerPath)(`each app's reconciler keeps the other's tunnels and removes the orphan (settings from the environment)${redisServerPath ? "" : " (skipped: redis-server not on PATH; .ci/run installs it)"}`, async () => {
    const redis = await startRedis();
    const relay = await startEmulator();
    const binding = createLocalBinding(relay);
    const key = "reconcile-redis-key-0123456789abcd";
    const apps = [];
    try {
      for (let i = 0; i < 2; i++) {
        const config = resolveGatewayConfig(
          { port: "0", "base-domain": "localhost", "public-scheme": "http", registry: redis.url },
          { AZHEXGATE_API_KEYS: key, AZHEXGATE_RECONCILE_INTERVAL_SECONDS: "0", AZHEXGATE_RECONCILE_GRACE_SECONDS: "0.5" },
        );
        apps.push(await startGatewayApp({ config, env: {}, log: silentLogger, binding }));
      }
      const [a, b] = apps as [Awaited<ReturnType<typeof startGatewayApp>>, Awaited<ReturnType<typeof startGatewayApp>>];
      const created = await fetch(`http://localhost:${b.gateway.port}/api/tunnels`, { method: "POST", headers: { "x-azhexgate-apikey": key } });
      expect(created.status).toBe(201);
      const hc = ((await created.json()) as { hybrid_connection_name: string }).hybrid_connection_name;
      await binding.provisioner.ensure("hc-redis-orphan");
      const first = await Promise.all([a.reconciler.runOnce(), b.reconciler.runOnce()]);
      for (const r of first) expect(r).toEqual({ deleted: [], waiting: ["hc-redis-orphan"], owned: 1 });
      await Bun.sleep(700);
      const second = await Promise.all([a.reconciler.runOnce(), b.reconciler.runOnce()]);
      expect(second.flatMap((r) => r.deleted)).toContain("hc-redis-orphan");
      expect(relay.entities.get("hc-redis-orphan")).toBeUndefined();
      expect(relay.entities.get(hc)).toBeDefined(); // created through B, kept by A too
    } finally {
      for (const app of apps) await app.stop();
      await relay.stop();
      await redis.stop();
    }
  });
});
