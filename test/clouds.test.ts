/**
 * The per-cloud table (src/hc/clouds.ts) and what uses it: the Relay scope in the double-slash
 * form Microsoft's clients send, Key Vault scopes by vault host, namespace suffixes, and an
 * Entra-mode gateway sender in each cloud that asks its credential for that cloud's scope and
 * then really connects through the emulator (Entra test mode) to a listener. Clouds where Entra
 * for Relay is not GA / not confirmed take the SAS path unless a credential is given explicitly.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ARM_ENDPOINTS, createAzureBinding } from "../src/control/azure.ts";
import { readRelaySettings } from "../src/control/settings.ts";
import { type EmulatorHandle, startEmulator } from "../src/emulator/server.ts";
import { senderDialer } from "../src/gateway/credential.ts";
import { CLOUD_SUFFIXES, resolveNamespace } from "../src/hc/address.ts";
import { type Cloud, CLOUD_NAMES, CLOUDS, keyVaultScopeFor } from "../src/hc/clouds.ts";
import type { HybridConnectionListener } from "../src/hc/listener.ts";
import { echoListener } from "./support/emulator-fixture.ts";
import { RELAY_SCOPE } from "../src/hc/tokens.ts";
import { HttpTokenCredential, startTokenServer } from "./support/token-server.ts";

describe("the clouds table", () => {
  test("public: Microsoft's exact Relay scope (double slash), Key Vault, ARM, authority", () => {
    expect(CLOUDS.public).toMatchObject({
      relaySuffix: "servicebus.windows.net",
      relayScope: "https://relay.azure.net//.default",
      entraForRelay: "ga",
      senderAuthDefault: "entra",
      keyVaultScope: "https://vault.azure.net/.default",
      armEndpoint: "https://management.azure.com",
      authorityHost: "https://login.microsoftonline.com",
    });
    expect(RELAY_SCOPE).toBe("https://relay.azure.net//.default");
  });

  test("China names its own Relay resource and Entra for Relay is not GA there: SAS by default", () => {
    expect(CLOUDS.china).toMatchObject({
      relaySuffix: "servicebus.chinacloudapi.cn",
      relayScope: "https://relay.chinacloudapi.cn//.default",
      entraForRelay: "not-ga",
      senderAuthDefault: "sas",
      keyVaultScope: "https://vault.azure.cn/.default",
      armEndpoint: "https://management.chinacloudapi.cn",
      authorityHost: "https://login.chinacloudapi.cn",
    });
  });

  test("US Government: the Relay resource is unconfirmed, so SAS by default; the rest is documented", () => {
    expect(CLOUDS.usgov).toMatchObject({
      relaySuffix: "servicebus.usgovcloudapi.net",
      entraForRelay: "unconfirmed",
      senderAuthDefault: "sas",
      keyVaultScope: "https://vault.usgovcloudapi.net/.default",
      armEndpoint: "https://management.usgovcloudapi.net",
      authorityHost: "https://login.microsoftonline.us",
    });
  });

  test("every row is complete and well-formed; the older per-file tables are views of it", () => {
    expect(CLOUD_NAMES).toEqual(["public", "usgov", "china"]);
    for (const c of CLOUD_NAMES) {
      const v = CLOUDS[c];
      expect(v.relayScope).toMatch(/^https:\/\/relay\.[a-z.]+\/\/\.default$/);
      expect(v.keyVaultScope).toBe(`https://${v.keyVaultSuffix}/.default`);
      expect(v.armEndpoint).toMatch(/^https:\/\/management\./);
      expect(v.authorityHost).toMatch(/^https:\/\/login\./);
      expect(v.senderAuthDefault).toBe(v.entraForRelay === "ga" ? "entra" : "sas");
      expect(CLOUD_SUFFIXES[c]).toBe(v.relaySuffix);
      expect(ARM_ENDPOINTS[c]).toBe(v.armEndpoint);
      expect(resolveNamespace("contoso", c).host).toBe(`contoso.${v.relaySuffix}`);
      expect(Object.isFrozen(v)).toBe(true);
    }
  });

  test("Key Vault scope follows the vault's host", () => {
    expect(keyVaultScopeFor("https://kv1.vault.azure.net")).toBe("https://vault.azure.net/.default");
    expect(keyVaultScopeFor("https://kv1.vault.usgovcloudapi.net/")).toBe("https://vault.usgovcloudapi.net/.default");
    expect(keyVaultScopeFor("https://kv1.vault.azure.cn")).toBe("https://vault.azure.cn/.default");
    expect(keyVaultScopeFor("http://127.0.0.1:8200")).toBe("https://vault.azure.net/.default"); // a test vault
    expect(keyVaultScopeFor("not a url")).toBe("https://vault.azure.net/.default");
  });
});

const JWT_SECRET = "clouds-test-secret";
const HC = "tun";
let emu: EmulatorHandle;
let listener: HybridConnectionListener;

/** The resource a scope names (`https://relay.azure.net//.default` → `https://relay.azure.net/`). */
const resourceOf = (scope: string) => scope.replace(/\/\.default$/, "");

function settingsFor(cloud: Cloud, withKey = true) {
  const root = emu.entities.namespaceRules.get("RootManageSharedAccessKey")!;
  const s = readRelaySettings({
    // ARM needs a namespace name; the key path dials the emulator's URL
    AZHEXGATE_RELAY_NAMESPACE: withKey ? emu.url : "contoso-relay",
    AZHEXGATE_RELAY_CLOUD: cloud,
    ...(withKey
      ? { AZHEXGATE_RELAY_KEY_NAME: "RootManageSharedAccessKey", AZHEXGATE_RELAY_KEY: root.primaryKey }
      : { AZURE_SUBSCRIPTION_ID: "00000000-0000-0000-0000-000000000000", AZURE_RESOURCE_GROUP: "rg" }),
  });
  if (s.mode !== "azure") throw new Error("expected azure settings");
  return s;
}

beforeAll(async () => {
  emu = await startEmulator({
    entra: { secret: JWT_SECRET, audiences: CLOUD_NAMES.map((c) => resourceOf(CLOUDS[c].relayScope)) },
    hybridConnections: [{ path: HC }],
  });
  const b = await createAzureBinding(settingsFor("public"));
  const { token } = await b.issuer.issue(HC, 600);
  listener = await echoListener({ endpoint: emu.endpoint, hcPath: HC, token });
});

afterAll(async () => {
  await listener?.close();
  await emu?.stop();
});

describe("an Entra-mode gateway sender in each cloud", () => {
  for (const cloud of CLOUD_NAMES) {
    test(`${cloud}: asks its credential for ${CLOUDS[cloud].relayScope} and connects with the token`, async () => {
      // the token server plays Entra: the token's audience is the resource the scope names
      const server = startTokenServer({ jwtSecret: JWT_SECRET, roles: ["Azure Relay Sender"], aud: resourceOf(CLOUDS[cloud].relayScope) });
      try {
        const credential = new HttpTokenCredential(server);
        const b = await createAzureBinding(settingsFor(cloud), { credential });
        const ws = await senderDialer(b)(HC);
        const echoed = new Promise<string>((r) => ws.once("message", (d) => r(String(d))));
        ws.send(`hello ${cloud}`);
        expect(await echoed).toBe(`hello ${cloud}`);
        ws.close();
        expect(credential.scopesAsked).toEqual([CLOUDS[cloud].relayScope]);
        await b.close();
      } finally {
        await server.stop();
      }
    });
  }

  test("usgov and china without a SAS key or an explicit credential: a clear error, no Entra guess", async () => {
    for (const cloud of ["usgov", "china"] as const) {
      const err = await createAzureBinding(settingsFor(cloud, false)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toContain(`needs a SAS key in the ${CLOUDS[cloud].name}`);
      expect((err as Error).message).toContain("AZHEXGATE_RELAY_KEY_NAME and AZHEXGATE_RELAY_KEY");
      expect((err as Error).message).toContain(cloud === "china" ? "not generally available" : "not confirmed");
    }
  });

  test("china with a SAS key: the sender signs SAS tokens and connects", async () => {
    const b = await createAzureBinding(settingsFor("china"));
    const ws = await senderDialer(b)(HC);
    const echoed = new Promise<string>((r) => ws.once("message", (d) => r(String(d))));
    ws.send("sas in china");
    expect(await echoed).toBe("sas in china");
    ws.close();
    await b.close();
  });
});
