/**
 * The Azure binding end to end against the TLS emulator's ARM subset, through the real
 * `@azure/arm-relay` client: provisioning, listener tokens from ARM `listKeys` that open real
 * listeners, key rotation (invalidate, and the refresh interval on the injected clock), and the
 * env-key / no-ARM variants. The emulator's ARM accepts any bearer, so a plain TokenCredential works.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { AccessToken, TokenCredential } from "@azure/core-auth";
import { RelayAPI } from "@azure/arm-relay";
import { createAzureBinding, LISTEN_RULE, SEND_RULE, ProvisioningUnavailableError, RelayArmError, type AzureBindingOptions } from "../src/control/azure.ts";
import { readRelaySettings, type RelaySettings } from "../src/control/settings.ts";
import type { RelayBinding } from "../src/control/types.ts";
import { type EmulatorHandle, startEmulator } from "../src/emulator/server.ts";
import { connectUrl, listenUrl, resourceUri } from "../src/hc/address.ts";
import { parseSasToken, verifySasSignature } from "../src/hc/sas.ts";
import { closeWs, handshakeStatus, openListener, selfSignedCert } from "./support/relay-probe.ts";

const SUB = "11111111-2222-3333-4444-555555555555";
const RG = "azhexgate-rg";
const NS = "azhexgate-emu";

/** Any bearer does for the emulator's ARM; counts the calls to prove the SDK asked. */
class CountingCredential implements TokenCredential {
  calls = 0;
  async getToken(): Promise<AccessToken> {
    this.calls++;
    return { token: `arm-bearer-${this.calls}`, expiresOnTimestamp: Date.now() + 3_600_000 };
  }
}

let emu: EmulatorHandle;
let ca: string;
let operator: RelayAPI;
const credential = new CountingCredential();
const events: Array<[string, Record<string, unknown>]> = [];
const bindings: RelayBinding[] = [];

function settings(extra: Record<string, string> = {}): RelaySettings {
  const s = readRelaySettings({ AZHEXGATE_RELAY_NAMESPACE: NS, AZURE_SUBSCRIPTION_ID: SUB, AZURE_RESOURCE_GROUP: RG, ...extra });
  if (s.mode !== "azure") throw new Error("expected azure settings");
  return s;
}

async function binding(s: RelaySettings = settings(), o: AzureBindingOptions = {}): Promise<RelayBinding> {
  const b = await createAzureBinding(s, {
    credential,
    armEndpoint: emu.httpUrl,
    armTlsCa: ca,
    endpoint: emu.endpoint,
    log: (e, f) => events.push([e, f]),
    ...o,
  });
  bindings.push(b);
  return b;
}

const listenStatus = async (hc: string, token: string) => (await handshakeStatus(listenUrl(emu.endpoint, hc), { ServiceBusAuthorization: token }, ca)).status;
const listenKey = (hc: string) => emu.entities.get(hc)?.rules.get(LISTEN_RULE)?.primaryKey;

beforeAll(async () => {
  const { cert, key } = selfSignedCert();
  ca = cert;
  emu = await startEmulator({ tls: { cert, key }, arm: { subscriptionId: SUB, resourceGroup: RG, namespace: NS } });
  operator = new RelayAPI(credential, SUB, { endpoint: emu.httpUrl, tlsOptions: { ca } });
});

afterAll(async () => {
  for (const b of bindings) await b.close();
  await emu?.stop();
});

describe("createAzureBinding with ARM (listen keys from listKeys)", () => {
  test("start line names mode, namespace and credential kind, no secrets", async () => {
    events.length = 0;
    const b = await binding();
    expect(b.mode).toBe("azure");
    expect(b.endpoint).toEqual(emu.endpoint);
    expect(events).toEqual([
      [
        "relay.binding",
        {
          mode: "azure",
          namespace: emu.endpoint.host,
          cloud: "public",
          credential: "custom TokenCredential",
          sender: "entra",
          listenerKeys: `arm (${LISTEN_RULE})`,
          provisioning: `arm (${RG}/${NS})`,
        },
      ],
    ]);
  });

  test("ensure creates the HC (client authorization on) and a Listen-only rule, idempotently; remove deletes it", async () => {
    const b = await binding();
    const before = credential.calls;
    await b.provisioner.ensure("hc-prov");
    expect(credential.calls).toBeGreaterThan(before); // the SDK really asked for a bearer
    const hc = emu.entities.get("hc-prov");
    expect(hc?.requiresClientAuthorization).toBe(true);
    expect(hc?.rules.get(LISTEN_RULE)?.rights).toEqual(["Listen"]);
    const key = listenKey("hc-prov");
    await b.provisioner.ensure("hc-prov");
    expect(listenKey("hc-prov")).toBe(key); // a second ensure keeps the key: live tokens stay valid
    expect((await operator.hybridConnections.get(RG, NS, "hc-prov")).requiresClientAuthorization).toBe(true);

    await b.provisioner.remove("hc-prov");
    expect(emu.entities.get("hc-prov")).toBeUndefined();
    await b.provisioner.remove("hc-prov"); // absent: fine
    await b.provisioner.remove("never-existed");
  });

  test("issued tokens: scoped to the HC, signed with its listen key, open a real listener; refused elsewhere and for sending", async () => {
    const b = await binding();
    await b.provisioner.ensure("hc-a");
    await b.provisioner.ensure("hc-b");
    const before = Date.now();
    const { token, expiresAt } = await b.issuer.issue("hc-a", 300);
    const t = parseSasToken(token);
    expect(t?.resource).toBe(resourceUri(emu.endpoint, "hc-a"));
    expect(t?.skn).toBe(LISTEN_RULE);
    expect(verifySasSignature(t!, listenKey("hc-a")!)).toBe(true);
    expect(expiresAt).toBe(t!.se * 1000);
    expect(Math.abs(expiresAt - (before + 300_000))).toBeLessThan(2000);

    const l = await openListener(listenUrl(emu.endpoint, "hc-a"), token, ca);
    expect(l.open).toBe(true);
    expect(emu.listenerCount("hc-a")).toBe(1);
    if (l.open) await closeWs(l.ws);

    // another HC: its own azhexgate-listen rule has another key, so the signature fails there (401)
    expect(await listenStatus("hc-b", token)).toBe(401);
    const send = await handshakeStatus(connectUrl(emu.endpoint, "hc-a"), { ServiceBusAuthorization: token }, ca);
    expect(send.status).toBe(403); // Listen only
    // and hc-b's own token works there
    expect(await listenStatus("hc-b", (await b.issuer.issue("hc-b", 60)).token)).toBe(101);
  });

  test("Send tokens (azhexgate connect): a per-HC Send-only rule made through ARM on first use; they send, never listen", async () => {
    const b = await binding();
    await b.provisioner.ensure("hc-send");
    expect(emu.entities.get("hc-send")?.rules.has(SEND_RULE)).toBe(false); // not until a connect asks
    const { token } = await b.issuer.issueSend!("hc-send", 120);
    const t = parseSasToken(token)!;
    expect(t.skn).toBe(SEND_RULE);
    expect(t.resource).toBe(resourceUri(emu.endpoint, "hc-send"));
    expect(emu.entities.get("hc-send")?.rules.get(SEND_RULE)?.rights).toEqual(["Send"]);
    expect(verifySasSignature(t, emu.entities.get("hc-send")!.rules.get(SEND_RULE)!.primaryKey)).toBe(true);
    expect(await listenStatus("hc-send", token)).toBe(403); // Send only
    // the listener's token (its own rule) is untouched by the new rule
    expect(await listenStatus("hc-send", (await b.issuer.issue("hc-send", 60)).token)).toBe(101);
  });

  test("an HC made without our rule (by infra) gets it on first issue", async () => {
    await operator.hybridConnections.createOrUpdate(RG, NS, "hc-infra", { requiresClientAuthorization: true });
    const b = await binding();
    const { token } = await b.issuer.issue("hc-infra", 60);
    expect(emu.entities.get("hc-infra")?.rules.get(LISTEN_RULE)?.rights).toEqual(["Listen"]);
    expect(await listenStatus("hc-infra", token)).toBe(101);
  });

  test("issuing for a missing HC is a RelayArmError naming it; bad lifetimes are refused before ARM", async () => {
    const b = await binding();
    const err = await b.issuer.issue("hc-missing", 60).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RelayArmError);
    expect((err as RelayArmError).status).toBe(404);
    expect((err as RelayArmError).retryable).toBe(false);
    expect((err as RelayArmError).message).toContain('"hc-missing"');
    await expect(b.issuer.issue("hc-a", 0)).rejects.toBeInstanceOf(RangeError);
    await expect(b.issuer.issue("hc-a", 86_401)).rejects.toBeInstanceOf(RangeError);
  });

  test("key rotation: old-key token refused (401) → invalidate → the next token works, no restart", async () => {
    events.length = 0;
    const b = await binding();
    await b.provisioner.ensure("hc-rot");
    const first = await b.issuer.issue("hc-rot", 300);
    expect(await listenStatus("hc-rot", first.token)).toBe(101);

    // an operator rotates the primary key through ARM
    const regen = await operator.hybridConnections.regenerateKeys(RG, NS, "hc-rot", LISTEN_RULE, { keyType: "PrimaryKey" });
    expect(regen.primaryKey).toBe(listenKey("hc-rot")!);

    const stale = await b.issuer.issue("hc-rot", 300); // still the cached old key
    expect(verifySasSignature(parseSasToken(stale.token)!, regen.primaryKey!)).toBe(false);
    expect(await listenStatus("hc-rot", stale.token)).toBe(401);

    b.issuer.invalidate("hc-rot"); // what the management API does when the agent reports the 401
    const fresh = await b.issuer.issue("hc-rot", 300);
    expect(verifySasSignature(parseSasToken(fresh.token)!, regen.primaryKey!)).toBe(true);
    const l = await openListener(listenUrl(emu.endpoint, "hc-rot"), fresh.token, ca);
    expect(l.open).toBe(true);
    if (l.open) await closeWs(l.ws);
    expect(events).toContainEqual(["relay.keys.invalidated", { hcPath: "hc-rot" }]);
    const logged = JSON.stringify(events);
    for (const k of [regen.primaryKey!, regen.secondaryKey!, parseSasToken(fresh.token)!.sig]) expect(logged).not.toContain(k);
  });

  test("invalidate() without a path drops every key", async () => {
    const b = await binding();
    await b.provisioner.ensure("hc-all-1");
    await b.provisioner.ensure("hc-all-2");
    await b.issuer.issue("hc-all-1", 60);
    await b.issuer.issue("hc-all-2", 60);
    for (const hc of ["hc-all-1", "hc-all-2"]) await operator.hybridConnections.regenerateKeys(RG, NS, hc, LISTEN_RULE, { keyType: "PrimaryKey" });
    b.issuer.invalidate();
    for (const hc of ["hc-all-1", "hc-all-2"]) expect(await listenStatus(hc, (await b.issuer.issue(hc, 60)).token)).toBe(101);
  });

  test("the refresh interval (AZHEXGATE_RELAY_KEY_REFRESH_SECONDS) picks up a rotation on its own", async () => {
    let clock = Date.now();
    const b = await binding(settings({ AZHEXGATE_RELAY_KEY_REFRESH_SECONDS: "30" }), { now: () => clock });
    await b.provisioner.ensure("hc-timer");
    const oldKey = listenKey("hc-timer")!;
    await b.issuer.issue("hc-timer", 300);
    const regen = await operator.hybridConnections.regenerateKeys(RG, NS, "hc-timer", LISTEN_RULE, { keyType: "PrimaryKey" });

    clock += 29_000; // inside the interval: the held key
    const held = parseSasToken((await b.issuer.issue("hc-timer", 300)).token)!;
    expect(verifySasSignature(held, oldKey)).toBe(true);

    clock += 1_000; // 30 s after the read: read again
    const next = await b.issuer.issue("hc-timer", 300);
    expect(verifySasSignature(parseSasToken(next.token)!, regen.primaryKey!)).toBe(true);
    expect(await listenStatus("hc-timer", next.token)).toBe(101);
  });

  test("a failed re-read keeps issuing with the held key; after invalidate it must read", async () => {
    let clock = Date.now();
    events.length = 0;
    const b = await binding(settings(), { now: () => clock, keyRefreshMs: 1000 });
    await b.provisioner.ensure("hc-outage");
    const key = listenKey("hc-outage")!;
    await b.issuer.issue("hc-outage", 60);
    emu.entities.delete("hc-outage"); // behind our back: listKeys and the rule PUT now answer 404
    clock += 2000;
    const t = parseSasToken((await b.issuer.issue("hc-outage", 60)).token)!;
    expect(verifySasSignature(t, key)).toBe(true);
    expect(events.map(([e]) => e)).toContain("relay.keys.refresh_failed");
    b.issuer.invalidate("hc-outage");
    await expect(b.issuer.issue("hc-outage", 60)).rejects.toBeInstanceOf(RelayArmError);
  });

  test("after close() nothing is issued", async () => {
    const b = await binding();
    await b.provisioner.ensure("hc-close");
    await b.issuer.issue("hc-close", 60);
    await b.close();
    await expect(b.issuer.issue("hc-close", 60)).rejects.toThrow(/closed/);
  });
});

describe("createAzureBinding with an env key", () => {
  test("env key signs (namespace rule) even when ARM is configured; provisioning still uses ARM", async () => {
    const root = emu.entities.namespaceRules.get("RootManageSharedAccessKey")!;
    events.length = 0;
    const b = await binding(settings({ AZHEXGATE_RELAY_KEY_NAME: "RootManageSharedAccessKey", AZHEXGATE_RELAY_KEY: root.primaryKey }), { credential: undefined });
    expect(events[0]?.[1]).toMatchObject({ sender: "sas (RootManageSharedAccessKey)", listenerKeys: "env (RootManageSharedAccessKey)" });
    expect(String(events[0]?.[1].credential)).toStartWith("DefaultAzureCredential"); // for ARM only
    expect(JSON.stringify(events)).not.toContain(root.primaryKey);
    await operator.hybridConnections.createOrUpdate(RG, NS, "hc-env", { requiresClientAuthorization: true });
    const { token } = await b.issuer.issue("hc-env", 60);
    const t = parseSasToken(token)!;
    expect(t.skn).toBe("RootManageSharedAccessKey");
    expect(t.resource).toBe(resourceUri(emu.endpoint, "hc-env"));
    expect(await listenStatus("hc-env", token)).toBe(101);
    // the namespace key signs validly, but the token's scope is hc-env only
    await operator.hybridConnections.createOrUpdate(RG, NS, "hc-other", {});
    expect(await listenStatus("hc-other", token)).toBe(403);
    expect(b.issuer.issueSend).toBeUndefined(); // the namespace key would carry Listen: the connect route answers 501
    b.issuer.invalidate("hc-env"); // nothing to re-read: logged
    expect(events.at(-1)?.[0]).toBe("relay.keys.rejected");
  });

  test("without AZURE_SUBSCRIPTION_ID / AZURE_RESOURCE_GROUP provisioning throws a clear error; tokens still issue", async () => {
    const root = emu.entities.namespaceRules.get("RootManageSharedAccessKey")!;
    const s = readRelaySettings({ AZHEXGATE_RELAY_NAMESPACE: NS, AZHEXGATE_RELAY_KEY_NAME: "RootManageSharedAccessKey", AZHEXGATE_RELAY_KEY: root.primaryKey });
    if (s.mode !== "azure") throw new Error("expected azure");
    events.length = 0;
    const b = await binding(s, { credential: undefined });
    expect(events[0]?.[1]).toMatchObject({ credential: "none", provisioning: "unavailable" });
    for (const p of [b.provisioner.ensure("hc-x"), b.provisioner.remove("hc-x")]) {
      const err = await p.catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ProvisioningUnavailableError);
      expect((err as Error).message).toContain("AZURE_SUBSCRIPTION_ID and AZURE_RESOURCE_GROUP are not set");
    }
    expect(emu.entities.get("hc-x")).toBeUndefined();
    expect(await listenStatus("hc-env", (await b.issuer.issue("hc-env", 60)).token)).toBe(101);
  });
});
