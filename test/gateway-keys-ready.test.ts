/**
 * First deploy: the Key Vault secret with the API keys does not exist yet. The whole gateway app
 * (registry, local relay, management API, ingress) must start anyway: /readyz answers 503 with a
 * reason an operator can act on, the management API answers 503 `api_keys_unavailable` (not 401)
 * to keys it cannot know yet, tunnels keep serving, and once the secret appears the loader's retry
 * picks it up and the gateway becomes ready. Key Vault is a local stand-in of its REST API reached
 * with a real TokenCredential (token server over HTTP).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startAgent } from "../src/agent/agent.ts";
import { resolveGatewayConfig } from "../src/config.ts";
import { createLocalBinding } from "../src/control/local.ts";
import { startEmulator, type EmulatorHandle } from "../src/emulator/server.ts";
import { startGatewayApp, type GatewayApp } from "../src/gateway/app.ts";
import { resolveNamespace } from "../src/hc/address.ts";
import { createLogger } from "../src/log.ts";
import { startVaultStandIn, type VaultStandIn } from "./support/keyvault.ts";
import { HttpTokenCredential, startTokenServer, type TokenServer } from "./support/token-server.ts";

const JWT_SECRET = "keys-ready-jwt-secret";
const ENV_KEY = "env-key-0123456789abcdefghijklmnop";
const VAULT_KEY = "vault-key-zyxwvutsrqponmlkjihgfedc";

let tokens: TokenServer;
let vault: VaultStandIn;
let relay: EmulatorHandle;
let app: GatewayApp;
const logs: string[] = [];

beforeAll(async () => {
  tokens = startTokenServer({ jwtSecret: JWT_SECRET, aud: "https://vault.azure.net" });
  vault = startVaultStandIn(JWT_SECRET);
  relay = await startEmulator();
  const config = resolveGatewayConfig(
    { port: "0", host: "127.0.0.1", "base-domain": "localhost", "public-scheme": "http", registry: ":memory:", "keyvault-url": vault.url },
    { AZHEXGATE_API_KEYS: ENV_KEY },
  );
  expect(config.keyVault?.secret).toBe("azhexgate-api-keys");
  app = await startGatewayApp({
    config,
    env: {},
    log: createLogger({ format: "json", level: "debug", sink: (l) => logs.push(l) }),
    binding: createLocalBinding(relay),
    keyVaultCredential: new HttpTokenCredential(tokens),
    keysRetry: { firstMs: 20, maxMs: 200 },
  });
});

afterAll(async () => {
  await app?.stop();
  await relay?.stop();
  vault?.stop();
  await tokens?.stop();
});

const api = (path: string, key: string, init: RequestInit = {}) =>
  fetch(`http://localhost:${app.gateway.port}${path}`, { ...init, headers: { "x-azhexgate-apikey": key, "content-type": "application/json", ...init.headers } });

test("secret missing → not ready with the reason, API 503 for unknown keys, tunnels unaffected; secret created → ready", async () => {
  // started (no throw), but not ready, and says why
  const notReady = await fetch(`http://127.0.0.1:${app.gateway.port}/readyz`);
  expect(notReady.status).toBe(503);
  const body = (await notReady.json()) as { ready: boolean; reason: string };
  expect(body.ready).toBe(false);
  expect(body.reason).toMatch(/^API keys not loaded: Key Vault secret azhexgate-api-keys not found \(404\) in 127\.0\.0\.1:\d+ — create it/);
  expect(body.reason).toContain("az keyvault secret set");
  expect((await fetch(`http://127.0.0.1:${app.gateway.port}/healthz`)).status).toBe(200); // alive: no restart loop

  // a key that may live in the vault: 503 with a stable code, not 401 (and not counted as a failure)
  for (let i = 0; i < 12; i++) {
    const r = await api("/api/tunnels", VAULT_KEY);
    expect(r.status).toBe(503);
    expect(r.headers.get("retry-after")).toBe("30");
    expect(((await r.json()) as { error: { code: string } }).error.code).toBe("api_keys_unavailable");
  }

  // the env key works meanwhile, and public traffic through a tunnel is served
  const created = await api("/api/tunnels", ENV_KEY, { method: "POST", body: "{}" });
  expect(created.status).toBe(201);
  const t = (await created.json()) as Record<string, string>;
  const origin = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => new Response(`app saw ${new URL(req.url).pathname}`) });
  const agent = await startAgent({
    endpoint: resolveNamespace(t.relay_endpoint!),
    hcPath: t.hybrid_connection_name!,
    token: t.listener_token!,
    origin: `http://127.0.0.1:${origin.port}`,
    hostHeader: "rewrite",
  });
  try {
    const viaTunnel = await fetch(`http://${t.id}.localhost:${app.gateway.port}/hello`);
    expect(viaTunnel.status).toBe(200);
    expect(await viaTunnel.text()).toBe("app saw /hello");

    // the operator creates the secret: the loader's retry picks it up, no restart
    vault.secrets.set("azhexgate-api-keys", `${VAULT_KEY}\n`);
    let ready = 0;
    for (let i = 0; i < 600 && ready !== 200; i++) {
      ready = (await fetch(`http://127.0.0.1:${app.gateway.port}/readyz`)).status;
      if (ready !== 200) await Bun.sleep(10);
    }
    expect(ready).toBe(200);
    expect(await (await fetch(`http://127.0.0.1:${app.gateway.port}/readyz`)).json()).toEqual({ ready: true });
    expect((await api("/api/tunnels", VAULT_KEY)).status).toBe(200);
    expect((await api("/api/tunnels", ENV_KEY)).status).toBe(200);
    expect((await api("/api/tunnels", "not-a-key-not-a-key-not-a-key")).status).toBe(401);
    expect((await fetch(`http://${t.id}.localhost:${app.gateway.port}/again`).then((r) => r.text()))).toBe("app saw /again");
  } finally {
    await agent.stop();
    origin.stop(true);
  }

  // the vault was asked again after the 404s (backoff, bounded), and the logs say what happened once
  expect(vault.statuses[0]).toBe(404);
  expect(vault.statuses.at(-1)).toBe(200);
  expect(logs.filter((l) => l.includes("api keys unavailable")).length).toBe(1);
  expect(logs.some((l) => l.includes("api keys loaded"))).toBe(true);
  for (const l of logs) for (const k of [ENV_KEY, VAULT_KEY]) expect(l).not.toContain(k);
});
