/**
 * Role assignments not yet effective: in the minutes after start, ARM (the TLS emulator's ARM
 * subset through the real @azure/arm-relay client) and Key Vault (a local stand-in of its REST
 * API) answer 403 until the gateway identity's role has propagated. Inside the window those are
 * retried with backoff and logged once per kind; after it they are reported as before.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { AccessToken, TokenCredential } from "@azure/core-auth";
import { loadApiKeys } from "../src/api/keys.ts";
import { createAzureBinding, RelayArmError } from "../src/control/azure.ts";
import { NO_PROPAGATION, rolePropagation, type RolePropagation } from "../src/control/propagation.ts";
import { readRelaySettings, type RelaySettings } from "../src/control/settings.ts";
import type { RelayBinding } from "../src/control/types.ts";
import { denyArmCalls } from "../src/emulator/arm.ts";
import { type EmulatorHandle, startEmulator } from "../src/emulator/server.ts";
import { createLogger } from "../src/log.ts";
import { startVaultStandIn, type VaultStandIn } from "./support/keyvault.ts";
import { selfSignedCert } from "./support/relay-probe.ts";
import { HttpTokenCredential, startTokenServer, type TokenServer } from "./support/token-server.ts";

const SUB = "11111111-2222-3333-4444-555555555555";
const RG = "azhexgate-rg";
const NS = "azhexgate-emu";
const JWT_SECRET = "role-propagation-jwt";
const KEY = "vault-key-0123456789abcdefghijklmn";

class AnyBearer implements TokenCredential {
  async getToken(): Promise<AccessToken> {
    return { token: "arm-bearer", expiresOnTimestamp: Date.now() + 3_600_000 };
  }
}

let emu: EmulatorHandle;
let ca: string;
let tokens: TokenServer;
let vault: VaultStandIn;
const bindings: RelayBinding[] = [];

beforeAll(async () => {
  const { cert, key } = selfSignedCert();
  ca = cert;
  emu = await startEmulator({ tls: { cert, key }, arm: { subscriptionId: SUB, resourceGroup: RG, namespace: NS } });
  tokens = startTokenServer({ jwtSecret: JWT_SECRET, aud: "https://vault.azure.net" });
  vault = startVaultStandIn(JWT_SECRET);
});

afterAll(async () => {
  for (const b of bindings) await b.close();
  await emu?.stop();
  vault?.stop();
  await tokens?.stop();
});

function settings(): RelaySettings {
  const s = readRelaySettings({ AZHEXGATE_RELAY_NAMESPACE: NS, AZURE_SUBSCRIPTION_ID: SUB, AZURE_RESOURCE_GROUP: RG });
  if (s.mode !== "azure") throw new Error("expected azure settings");
  return s;
}

function window(lines: string[], windowMs = 60_000): RolePropagation {
  return rolePropagation({ windowMs, log: (message, fields) => lines.push(JSON.stringify({ message, ...fields })) });
}

async function binding(rp: RolePropagation, budgetMs = 10_000): Promise<RelayBinding> {
  const b = await createAzureBinding(settings(), {
    credential: new AnyBearer(),
    armEndpoint: emu.httpUrl,
    armTlsCa: ca,
    endpoint: emu.endpoint,
    rolePropagation: rp,
    roleRetry: { firstDelayMs: 10, maxDelayMs: 50, budgetMs },
  });
  bindings.push(b);
  return b;
}

describe("ARM (Microsoft.Relay) through @azure/arm-relay", () => {
  test("403 AuthorizationFailed inside the window: create, list and delete retried until the role applies; one log line", async () => {
    const lines: string[] = [];
    const b = await binding(window(lines));
    denyArmCalls(emu.entities, { calls: 3 });
    await b.provisioner.ensure("hc-propagating");
    expect(emu.entities.get("hc-propagating")?.rules.has("azhexgate-listen")).toBe(true);
    denyArmCalls(emu.entities, { calls: 2 });
    expect((await b.provisioner.list?.())?.map((h) => h.name)).toContain("hc-propagating");
    denyArmCalls(emu.entities, { forMs: 150 });
    await b.provisioner.remove("hc-propagating");
    expect(emu.entities.get("hc-propagating")).toBeUndefined();
    expect(lines.length).toBe(1);
    const line = JSON.parse(lines[0] as string);
    expect(line.message).toBe("role assignment not yet effective (ARM 403 on Microsoft.Relay); retrying");
    expect(line.detail).toContain("If access was recently granted");
    expect(line.retrying_for_s).toBeGreaterThan(50);
  });

  test("after the window a 403 is what it says: no retry, not retryable, the role hint", async () => {
    const b = await binding(NO_PROPAGATION);
    denyArmCalls(emu.entities, { calls: 1 });
    const err = await b.provisioner.ensure("hc-denied").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RelayArmError);
    expect((err as RelayArmError).status).toBe(403);
    expect((err as RelayArmError).retryable).toBe(false);
    expect((err as RelayArmError).message).toContain("does the gateway's identity hold a role on the relay namespace?");
    expect(emu.entities.get("hc-denied")).toBeUndefined();
    await b.provisioner.ensure("hc-denied"); // the one denial is used up: the next call goes through
    expect(emu.entities.get("hc-denied")).toBeDefined();
    await b.provisioner.remove("hc-denied");
  });

  test("inside the window but past one call's budget: a retryable error that says the role is not effective yet", async () => {
    const lines: string[] = [];
    const b = await binding(window(lines), 120);
    denyArmCalls(emu.entities, { forMs: 60_000 });
    try {
      const err = await b.provisioner.ensure("hc-slow-role").catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RelayArmError);
      expect((err as RelayArmError).retryable).toBe(true);
      expect((err as RelayArmError).message).toContain("role assignment not yet effective");
    } finally {
      denyArmCalls(emu.entities, false);
    }
    expect(lines.length).toBe(1);
  });
});

describe("Key Vault (API keys secret)", () => {
  test("403 inside the window: not ready with 'role assignment not yet effective', retried, then loaded; logged once", async () => {
    vault.secrets.set("keys-rbac", KEY);
    vault.denyNext = 4;
    const lines: string[] = [];
    const logs: string[] = [];
    const keys = await loadApiKeys({
      keyVault: { vaultUrl: vault.url, secretName: "keys-rbac", credential: new HttpTokenCredential(tokens) },
      waitForSources: true,
      retry: { firstMs: 10, maxMs: 40 },
      rolePropagation: window(lines),
      log: createLogger({ format: "json", level: "debug", sink: (l) => logs.push(l) }),
    });
    try {
      expect(keys.unavailable).toBe('API keys not loaded: role assignment not yet effective (Key Vault 403 for secret "keys-rbac"); retrying');
      expect(keys.identify(KEY)).toBeUndefined();
      for (let i = 0; i < 500 && keys.unavailable !== undefined; i++) await Bun.sleep(5);
      expect(keys.unavailable).toBeUndefined();
      expect(keys.identify(KEY)).toBeDefined();
      expect(lines.length).toBe(1);
      expect(JSON.parse(lines[0] as string).message).toBe("role assignment not yet effective (Key Vault 403); retrying");
      expect(logs.filter((l) => l.includes("api keys unavailable")).length).toBe(1);
    } finally {
      keys.stop();
    }
  });

  test("after the window a 403 says which role to grant; the loader keeps trying and recovers when it is granted", async () => {
    vault.secrets.set("keys-norole", KEY);
    vault.forbidden.add("keys-norole");
    const keys = await loadApiKeys({
      keyVault: { vaultUrl: vault.url, secretName: "keys-norole", credential: new HttpTokenCredential(tokens) },
      waitForSources: true,
      retry: { firstMs: 10, maxMs: 40 },
      rolePropagation: NO_PROPAGATION,
    });
    try {
      expect(keys.unavailable).toContain('refused to read secret "keys-norole" (403); grant the gateway\'s identity the "Key Vault Secrets User" role');
      vault.forbidden.delete("keys-norole");
      for (let i = 0; i < 500 && keys.unavailable !== undefined; i++) await Bun.sleep(5);
      expect(keys.identify(KEY)).toBeDefined();
    } finally {
      keys.stop();
    }
  });

  test("a firewall 403 is not a role that propagates: said as it is, no role-assignment note", async () => {
    vault.secrets.set("keys-walled", KEY);
    vault.firewalled.add("keys-walled");
    const lines: string[] = [];
    const keys = await loadApiKeys({
      keyVault: { vaultUrl: vault.url, secretName: "keys-walled", credential: new HttpTokenCredential(tokens) },
      waitForSources: true,
      retry: { firstMs: 10, maxMs: 40 },
      rolePropagation: window(lines),
    });
    try {
      expect(keys.unavailable).toMatch(/refused the gateway's network address \(403 ForbiddenByFirewall\); allow the gateway's outbound addresses/);
      expect(lines).toEqual([]);
      vault.firewalled.delete("keys-walled");
      for (let i = 0; i < 500 && keys.unavailable !== undefined; i++) await Bun.sleep(5);
      expect(keys.identify(KEY)).toBeDefined();
    } finally {
      keys.stop();
    }
  });
});
