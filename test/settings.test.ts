/**
 * Relay settings from the environment (every variable, defaults, FQDN / sovereign clouds,
 * validation naming the variable without the key), and the local-vs-Azure choice in mode.ts.
 */
import { describe, expect, test } from "bun:test";
import { createLocalBinding } from "../src/control/local.ts";
import { createRelayBinding } from "../src/control/mode.ts";
import {
  DEFAULT_BASE_DOMAIN,
  DEFAULT_KEY_REFRESH_SECONDS,
  readRelaySettings,
  RELAY_SETTING_NAMES,
  type RelaySettings,
  RelaySettingsError,
} from "../src/control/settings.ts";
import { startEmulator } from "../src/emulator/server.ts";

const KEY = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0wMTIzNDU2Nzg5YWI=";
const SUB = "11111111-2222-3333-4444-555555555555";
const CLIENT = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

function azure(env: Record<string, string | undefined>): RelaySettings {
  const s = readRelaySettings(env);
  if (s.mode !== "azure") throw new Error(`expected azure mode, got ${JSON.stringify(s)}`);
  return s;
}

function failure(env: Record<string, string | undefined>): RelaySettingsError {
  try {
    readRelaySettings(env);
  } catch (e) {
    expect(e).toBeInstanceOf(RelaySettingsError);
    return e as RelaySettingsError;
  }
  throw new Error("expected a RelaySettingsError");
}

const KEYED = { AZHEXGATE_RELAY_NAMESPACE: "contoso", AZHEXGATE_RELAY_KEY_NAME: "RootManageSharedAccessKey", AZHEXGATE_RELAY_KEY: KEY };
const ARM = { AZHEXGATE_RELAY_NAMESPACE: "contoso", AZURE_SUBSCRIPTION_ID: SUB, AZURE_RESOURCE_GROUP: "rg-tunnels" };

describe("readRelaySettings", () => {
  test("the variable list is exactly the documented names", () => {
    expect(([...RELAY_SETTING_NAMES] as string[]).sort()).toEqual(
      [
        "AZHEXGATE_RELAY_NAMESPACE",
        "AZHEXGATE_RELAY_KEY_NAME",
        "AZHEXGATE_RELAY_KEY",
        "AZURE_SUBSCRIPTION_ID",
        "AZURE_RESOURCE_GROUP",
        "AZHEXGATE_BASE_DOMAIN",
        "AZHEXGATE_RELAY_CLOUD",
        "AZURE_CLIENT_ID",
        "AZHEXGATE_RELAY_KEY_REFRESH_SECONDS",
      ].sort(),
    );
    expect(Object.isFrozen(RELAY_SETTING_NAMES)).toBe(true);
  });

  test("reads no variable outside the list", () => {
    const read = new Set<string>();
    const env = new Proxy({ ...KEYED, ...ARM, AZURE_CLIENT_ID: CLIENT }, {
      get(t, p) {
        read.add(String(p));
        return Reflect.get(t, p);
      },
    });
    readRelaySettings(env);
    expect([...read].filter((n) => !(RELAY_SETTING_NAMES as readonly string[]).includes(n))).toEqual([]);
    expect(read.size).toBe(RELAY_SETTING_NAMES.length);
  });

  test("no namespace → local mode with a one-sentence reason; empty values count as unset", () => {
    for (const env of [{}, { AZHEXGATE_RELAY_NAMESPACE: "" }, { AZHEXGATE_RELAY_NAMESPACE: "   ", AZURE_SUBSCRIPTION_ID: SUB, AZURE_CLIENT_ID: CLIENT }]) {
      expect(readRelaySettings(env)).toEqual({
        mode: "local",
        reason: "AZHEXGATE_RELAY_NAMESPACE is not set: using the local relay emulator",
        baseDomain: "azhexgate.com",
      });
    }
    expect(readRelaySettings({ AZHEXGATE_BASE_DOMAIN: "Tunnels.Example.org" })).toMatchObject({ mode: "local", baseDomain: "tunnels.example.org" });
  });

  test("every variable with its value; defaults", () => {
    const s = azure({ ...KEYED, ...ARM, AZURE_CLIENT_ID: CLIENT, AZHEXGATE_BASE_DOMAIN: "t.example.com", AZHEXGATE_RELAY_KEY_REFRESH_SECONDS: "120", AZHEXGATE_RELAY_CLOUD: "public" });
    expect({ ...s } as Record<string, unknown>).toEqual({
      mode: "azure",
      namespace: "contoso",
      endpoint: { scheme: "wss", host: "contoso.servicebus.windows.net" },
      armNamespace: "contoso",
      cloud: "public",
      keyName: "RootManageSharedAccessKey",
      subscriptionId: SUB,
      resourceGroup: "rg-tunnels",
      managedIdentityClientId: CLIENT,
      keyRefreshSeconds: 120,
      baseDomain: "t.example.com",
    });
    expect(s.key).toBe(KEY);
    expect(Object.isFrozen(s)).toBe(true);

    const d = azure(ARM);
    expect(d.baseDomain).toBe(DEFAULT_BASE_DOMAIN);
    expect(DEFAULT_BASE_DOMAIN).toBe("azhexgate.com");
    expect(d.keyRefreshSeconds).toBe(DEFAULT_KEY_REFRESH_SECONDS);
    expect(DEFAULT_KEY_REFRESH_SECONDS).toBe(600);
    expect(d.cloud).toBe("public");
    expect(d.key).toBeUndefined();
    expect(d.keyName).toBeUndefined();
    expect(d.managedIdentityClientId).toBeUndefined();
  });

  test("FQDNs and sovereign clouds", () => {
    const gov = azure({ ...ARM, AZHEXGATE_RELAY_NAMESPACE: "Contoso.servicebus.usgovcloudapi.net" });
    expect(gov).toMatchObject({ cloud: "usgov", armNamespace: "contoso", endpoint: { scheme: "wss", host: "contoso.servicebus.usgovcloudapi.net" } });
    const cn = azure({ ...ARM, AZHEXGATE_RELAY_NAMESPACE: "contoso.servicebus.chinacloudapi.cn" });
    expect(cn).toMatchObject({ cloud: "china", endpoint: { host: "contoso.servicebus.chinacloudapi.cn" } });
    const pub = azure({ ...ARM, AZHEXGATE_RELAY_NAMESPACE: "contoso.servicebus.windows.net" });
    expect(pub).toMatchObject({ cloud: "public", armNamespace: "contoso" });
    // a short name takes its suffix from AZHEXGATE_RELAY_CLOUD (case-insensitive)
    expect(azure({ ...ARM, AZHEXGATE_RELAY_CLOUD: "USGov" })).toMatchObject({ cloud: "usgov", endpoint: { host: "contoso.servicebus.usgovcloudapi.net" } });
    expect(azure({ ...ARM, AZHEXGATE_RELAY_CLOUD: "china" }).endpoint.host).toBe("contoso.servicebus.chinacloudapi.cn");
    // an FQDN agreeing with the cloud is fine
    expect(azure({ ...ARM, AZHEXGATE_RELAY_NAMESPACE: "contoso.servicebus.chinacloudapi.cn", AZHEXGATE_RELAY_CLOUD: "china" }).cloud).toBe("china");
    // an emulator URL: no ARM name, keys from env
    const emu = azure({ ...KEYED, AZHEXGATE_RELAY_NAMESPACE: "ws://127.0.0.1:9000" });
    expect(emu).toMatchObject({ endpoint: { scheme: "ws", host: "127.0.0.1:9000" }, armNamespace: undefined, cloud: "public" });
  });

  const cases: Array<[string, Record<string, string>, string, RegExp]> = [
    ["bad namespace", { ...ARM, AZHEXGATE_RELAY_NAMESPACE: "no" }, "AZHEXGATE_RELAY_NAMESPACE", /not a valid name/],
    ["bad cloud", { ...ARM, AZHEXGATE_RELAY_CLOUD: "mars" }, "AZHEXGATE_RELAY_CLOUD", /public, usgov, china/],
    ["cloud vs FQDN", { ...ARM, AZHEXGATE_RELAY_NAMESPACE: "contoso.servicebus.windows.net", AZHEXGATE_RELAY_CLOUD: "usgov" }, "AZHEXGATE_RELAY_CLOUD", /public cloud/],
    ["key name without key", { ...ARM, AZHEXGATE_RELAY_KEY_NAME: "RootManageSharedAccessKey" }, "AZHEXGATE_RELAY_KEY", /set both/],
    ["key without key name", { ...ARM, AZHEXGATE_RELAY_KEY: KEY }, "AZHEXGATE_RELAY_KEY_NAME", /name the SAS rule/],
    ["bad key name", { ...KEYED, AZHEXGATE_RELAY_KEY_NAME: "bad name!" }, "AZHEXGATE_RELAY_KEY_NAME", /not a SAS rule name/],
    ["key with inner whitespace", { ...KEYED, AZHEXGATE_RELAY_KEY: `${KEY} ${KEY}` }, "AZHEXGATE_RELAY_KEY", /whitespace/],
    ["key without namespace", { AZHEXGATE_RELAY_KEY_NAME: "k", AZHEXGATE_RELAY_KEY: KEY }, "AZHEXGATE_RELAY_KEY_NAME", /AZHEXGATE_RELAY_NAMESPACE is not/],
    ["cloud without namespace", { AZHEXGATE_RELAY_CLOUD: "usgov" }, "AZHEXGATE_RELAY_CLOUD", /AZHEXGATE_RELAY_NAMESPACE is not/],
    ["subscription not a GUID", { ...ARM, AZURE_SUBSCRIPTION_ID: "my-sub" }, "AZURE_SUBSCRIPTION_ID", /GUID/],
    ["subscription without group", { ...KEYED, AZURE_SUBSCRIPTION_ID: SUB }, "AZURE_RESOURCE_GROUP", /AZURE_SUBSCRIPTION_ID is/],
    ["group without subscription", { ...KEYED, AZURE_RESOURCE_GROUP: "rg" }, "AZURE_SUBSCRIPTION_ID", /AZURE_RESOURCE_GROUP is/],
    ["bad group", { ...ARM, AZURE_RESOURCE_GROUP: "rg/../x" }, "AZURE_RESOURCE_GROUP", /not a resource group/],
    ["ARM with an IP namespace", { ...ARM, AZHEXGATE_RELAY_NAMESPACE: "ws://127.0.0.1:9000" }, "AZHEXGATE_RELAY_NAMESPACE", /no namespace name for ARM/],
    ["neither key nor ARM", { AZHEXGATE_RELAY_NAMESPACE: "contoso" }, "AZHEXGATE_RELAY_KEY", /either a key or ARM/],
    ["client id not a GUID", { ...ARM, AZURE_CLIENT_ID: "gateway-identity" }, "AZURE_CLIENT_ID", /GUID/],
    ["refresh not a number", { ...ARM, AZHEXGATE_RELAY_KEY_REFRESH_SECONDS: "10m" }, "AZHEXGATE_RELAY_KEY_REFRESH_SECONDS", /whole seconds/],
    ["refresh too short", { ...ARM, AZHEXGATE_RELAY_KEY_REFRESH_SECONDS: "5" }, "AZHEXGATE_RELAY_KEY_REFRESH_SECONDS", /30 to 86400/],
    ["refresh too long", { ...ARM, AZHEXGATE_RELAY_KEY_REFRESH_SECONDS: "86401" }, "AZHEXGATE_RELAY_KEY_REFRESH_SECONDS", /30 to 86400/],
    ["bad base domain", { AZHEXGATE_BASE_DOMAIN: "not a domain" }, "AZHEXGATE_BASE_DOMAIN", /not a domain name/],
  ];
  for (const [name, env, variable, message] of cases) {
    test(`invalid: ${name} → names ${variable}, never shows the key`, () => {
      const e = failure(env);
      expect(e.variable).toBe(variable as RelaySettingsError["variable"]);
      expect(e.code).toBe("invalid_config");
      expect(e.message.startsWith(variable)).toBe(true);
      expect(e.message).toMatch(message);
      expect(e.message).not.toContain(KEY);
      expect(e.message).not.toContain(KEY.slice(0, 12));
    });
  }

  test("the key never shows in JSON, toString, inspection, spreading or keys", () => {
    const s = azure({ ...KEYED, ...ARM });
    expect(s.key).toBe(KEY);
    for (const text of [JSON.stringify(s), String(s), `${s}`, Bun.inspect(s), JSON.stringify({ ...s }), Object.keys(s).join(",")]) {
      expect(text).not.toContain(KEY);
      expect(text).not.toContain(KEY.slice(0, 12));
    }
    expect(String(s)).toBe("azure relay contoso.servicebus.windows.net (public; key RootManageSharedAccessKey: set)");
    expect(String(azure(ARM))).toContain("key from ARM");
    expect(Object.keys(s)).not.toContain("key");
  });
});

describe("createRelayBinding", () => {
  test("local mode: one log line with the reason, the injected emulator and binding; close stops the emulator", async () => {
    const events: Array<[string, Record<string, unknown>]> = [];
    let started = 0;
    const binding = await createRelayBinding(
      { AZURE_CLIENT_ID: CLIENT },
      {
        log: (e, f) => events.push([e, f]),
        startLocalEmulator: async () => {
          started++;
          return startEmulator();
        },
        createLocal: (emu) => createLocalBinding(emu),
      },
    );
    expect(binding.mode).toBe("local");
    expect(started).toBe(1);
    expect(events).toEqual([["relay.mode", { mode: "local", reason: "AZHEXGATE_RELAY_NAMESPACE is not set: using the local relay emulator" }]]);
    // the binding works against the emulator it started
    await binding.provisioner.ensure("hc-local");
    const { token } = await binding.issuer.issue("hc-local", 60);
    expect(token).toStartWith("SharedAccessSignature ");
    const url = `http://${binding.endpoint.host}/$emulator/status`;
    expect((await fetch(url)).status).toBe(200);
    await binding.close();
    await binding.close(); // idempotent
    expect(await fetch(url).then(() => "up", () => "down")).toBe("down");
  });

  test("a bad setting throws before anything starts", async () => {
    let started = 0;
    const p = createRelayBinding(
      { AZHEXGATE_RELAY_KEY: KEY, AZHEXGATE_RELAY_KEY_NAME: "k" },
      { log: () => {}, startLocalEmulator: async () => (started++, startEmulator()), createLocal: (emu) => createLocalBinding(emu) },
    );
    await expect(p).rejects.toBeInstanceOf(RelaySettingsError);
    expect(started).toBe(0);
  });

  test("azure mode: createAzureBinding's start line, no emulator", async () => {
    const events: Array<[string, Record<string, unknown>]> = [];
    const binding = await createRelayBinding(KEYED, {
      log: (e, f) => events.push([e, f]),
      startLocalEmulator: () => Promise.reject(new Error("must not start")),
      createLocal: () => {
        throw new Error("must not create");
      },
    });
    expect(binding.mode).toBe("azure");
    expect(binding.endpoint).toEqual({ scheme: "wss", host: "contoso.servicebus.windows.net" });
    expect(events.map(([e]) => e)).toEqual(["relay.binding"]);
    expect(events[0]?.[1]).toMatchObject({ mode: "azure", namespace: "contoso.servicebus.windows.net", sender: "sas (RootManageSharedAccessKey)", provisioning: "unavailable" });
    expect(JSON.stringify(events)).not.toContain(KEY);
    await binding.close();
  });

  test("local mode loads neither @azure/arm-relay nor @azure/identity; Azure mode does", async () => {
    const here = (p: string) => JSON.stringify(new URL(p, import.meta.url).pathname);
    const script = `
      const loaded = (name) => Object.keys(require.cache).some((k) => k.includes(name));
      const snap = () => ({ arm: loaded("@azure/arm-relay"), identity: loaded("@azure/identity") });
      const { createRelayBinding } = await import(${here("../src/control/mode.ts")});
      const { createLocalBinding } = await import(${here("../src/control/local.ts")});
      const { startEmulator } = await import(${here("../src/emulator/server.ts")});
      const { connectSender } = await import(${here("../src/hc/sender.ts")});
      const local = await createRelayBinding({}, { log: () => {}, startLocalEmulator: () => startEmulator(), createLocal: (e) => createLocalBinding(e) });
      await local.provisioner.ensure("hc-x");
      await local.issuer.issue("hc-x", 60);
      await local.senderToken.getToken("http://h/hc-x");
      const afterLocal = snap();
      await local.close();
      const azure = await createRelayBinding(${JSON.stringify(ARM)}, { log: () => {}, startLocalEmulator: null, createLocal: null });
      const afterAzure = snap();
      await import("@azure/arm-relay");
      const afterImport = snap();
      console.log(JSON.stringify({ afterLocal, afterAzure, afterImport }));
    `;
    const proc = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe", cwd: import.meta.dir });
    const [out, err] = [await new Response(proc.stdout).text(), await new Response(proc.stderr).text()];
    expect(await proc.exited, err).toBe(0);
    expect(JSON.parse(out.trim())).toEqual({
      afterLocal: { arm: false, identity: false },
      afterAzure: { arm: false, identity: true }, // DefaultAzureCredential made; ARM client only on first use
      afterImport: { arm: true, identity: true }, // the probe does see the package once it loads
    });
  });
});
