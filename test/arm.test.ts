/**
 * The real `@azure/arm-relay` client against the emulator's ARM subset, end to end: manage a
 * hybrid connection and its rules, then use the listed keys on the data plane.
 *
 * Pointing the SDK at a local endpoint: `new RelayAPI(credential, sub, { endpoint })` sends every
 * operation there, but core-rest-pipeline's bearerTokenAuthenticationPolicy refuses non-https URLs
 * outright ("Bearer token authentication is not permitted for non-TLS protected URLs") and
 * `allowInsecureConnection` does not lift that. So the emulator runs with TLS (a self-signed
 * certificate made by openssl for this test), and the client trusts that one certificate through
 * the pipeline's own `tlsOptions: { ca }` (core-rest-pipeline's tlsPolicy → an https.Agent with that
 * CA, per client). Nothing process-wide changes: no NODE_TLS_REJECT_UNAUTHORIZED, no
 * NODE_EXTRA_CA_CERTS, verification stays on (without `ca` the SDK fails with
 * DEPTH_ZERO_SELF_SIGNED_CERT). The bearer token comes from a real TokenCredential over a local
 * token server; the emulator's ARM accepts any bearer value.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { RelayAPI } from "@azure/arm-relay";
import { isRestError, type RestError } from "@azure/core-rest-pipeline";
import { parseConnectionString, resolveNamespace, resourceUri, listenUrl, httpUrl } from "../src/hc/address.ts";
import { createSasToken } from "../src/hc/sas.ts";
import { handleArm } from "../src/emulator/arm.ts";
import { EntityStore } from "../src/emulator/entities.ts";
import { type EmulatorHandle, startEmulator } from "../src/emulator/server.ts";
import { closeWs, handshakeStatus, openListener, selfSignedCert } from "./support/relay-probe.ts";
import { HttpTokenCredential, startTokenServer, type TokenServer } from "./support/token-server.ts";

const SUB = "11111111-2222-3333-4444-555555555555";
const RG = "azhexgate-rg";
const NS = "azhexgate-emu";

let emu: EmulatorHandle;
let tokens: TokenServer;
let credential: HttpTokenCredential;
let client: RelayAPI;
let ca: string;

beforeAll(async () => {
  const { cert, key } = selfSignedCert();
  ca = cert;
  emu = await startEmulator({ tls: { cert, key }, arm: { subscriptionId: SUB, resourceGroup: RG, namespace: NS } });
  tokens = startTokenServer({ jwtSecret: "arm-test-secret", aud: "https://management.azure.com", roles: ["Contributor"] });
  credential = new HttpTokenCredential(tokens);
  client = new RelayAPI(credential, SUB, { endpoint: emu.httpUrl, tlsOptions: { ca } });
});

afterAll(async () => {
  await emu?.stop();
  await tokens?.stop();
});

function sasFor(hc: string, keyName: string, key: string): string {
  return createSasToken(resourceUri(emu.endpoint, hc), keyName, key, Math.floor(Date.now() / 1000) + 600);
}

describe("@azure/arm-relay against the emulator", () => {
  test("hybrid connection lifecycle with a Listen rule; listed keys work on the data plane", async () => {
    // create
    const created = await client.hybridConnections.createOrUpdate(RG, NS, "orders", {
      requiresClientAuthorization: true,
      userMetadata: "owner=team-a",
    });
    expect(created.id).toBe(`/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Relay/namespaces/${NS}/hybridConnections/orders`);
    expect(created.name).toBe("orders");
    expect(created.type).toBe("Microsoft.Relay/namespaces/hybridConnections");
    expect(created.requiresClientAuthorization).toBe(true);
    expect(created.userMetadata).toBe("owner=team-a");
    expect(created.listenerCount).toBe(0);
    expect(created.createdAt).toBeInstanceOf(Date);
    expect(emu.entities.get("orders")?.requiresClientAuthorization).toBe(true);
    expect(tokens.hits).toBeGreaterThanOrEqual(1); // the SDK really fetched a bearer token

    // get + list
    const got = await client.hybridConnections.get(RG, NS, "orders");
    expect(got).toMatchObject({ name: "orders", userMetadata: "owner=team-a", requiresClientAuthorization: true });
    const listed: string[] = [];
    for await (const hc of client.hybridConnections.listByNamespace(RG, NS)) listed.push(hc.name!);
    expect(listed).toContain("orders");

    // authorization rule with Listen
    const rule = await client.hybridConnections.createOrUpdateAuthorizationRule(RG, NS, "orders", "listen-only", { rights: ["Listen"] });
    expect(rule).toMatchObject({ name: "listen-only", rights: ["Listen"], type: "Microsoft.Relay/namespaces/hybridConnections/authorizationRules" });
    expect((await client.hybridConnections.getAuthorizationRule(RG, NS, "orders", "listen-only")).rights).toEqual(["Listen"]);
    const rules: string[] = [];
    for await (const r of client.hybridConnections.listAuthorizationRules(RG, NS, "orders")) rules.push(r.name!);
    expect(rules).toEqual(["listen-only"]);

    // listKeys
    const keys = await client.hybridConnections.listKeys(RG, NS, "orders", "listen-only");
    expect(keys.keyName).toBe("listen-only");
    expect(keys.primaryKey).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(keys.secondaryKey).not.toBe(keys.primaryKey);
    const cs = parseConnectionString(keys.primaryConnectionString!);
    expect(cs).toEqual({
      endpoint: emu.endpoint,
      keyName: "listen-only",
      key: keys.primaryKey,
      sharedAccessSignature: undefined,
      entityPath: "orders",
    });

    // a listener authenticates with a token signed by the listed key
    const lurl = listenUrl(emu.endpoint, "orders");
    const oldToken = sasFor("orders", keys.keyName!, keys.primaryKey!);
    const first = await openListener(lurl, oldToken, ca);
    expect(first.open).toBe(true);
    expect(emu.listenerCount("orders")).toBe(1);
    expect((await client.hybridConnections.get(RG, NS, "orders")).listenerCount).toBe(1);
    if (first.open) await closeWs(first.ws);

    // the secondary key works too
    expect((await handshakeStatus(lurl, { ServiceBusAuthorization: sasFor("orders", "listen-only", keys.secondaryKey!) }, ca)).status).toBe(101);

    // regenerateKeys: the new primary differs, the secondary stays, old-key tokens are refused with 401
    const regen = await client.hybridConnections.regenerateKeys(RG, NS, "orders", "listen-only", { keyType: "PrimaryKey" });
    expect(regen.primaryKey).not.toBe(keys.primaryKey);
    expect(regen.secondaryKey).toBe(keys.secondaryKey);
    expect(regen.primaryConnectionString).toContain(`SharedAccessKey=${regen.primaryKey}`);
    const refused = await handshakeStatus(lurl, { ServiceBusAuthorization: oldToken }, ca);
    expect(refused.status).toBe(401);
    expect(refused.text).toContain("InvalidSignature");
    const refusedWs = await openListener(lurl, oldToken, ca);
    expect(refusedWs.open).toBe(false);
    const fresh = await openListener(lurl, sasFor("orders", "listen-only", regen.primaryKey!), ca);
    expect(fresh.open).toBe(true);
    if (fresh.open) await closeWs(fresh.ws);
    // Listen-only: a sender with a valid token is 403, with the old key 401
    const sendNew = await fetch(httpUrl(emu.endpoint, "orders"), {
      headers: { ServiceBusAuthorization: sasFor("orders", "listen-only", regen.primaryKey!) },
      tls: { ca },
    });
    expect(sendNew.status).toBe(403);
    const sendOld = await fetch(httpUrl(emu.endpoint, "orders"), { headers: { ServiceBusAuthorization: oldToken }, tls: { ca } });
    expect(sendOld.status).toBe(401);

    // regenerate with a caller-chosen key
    const chosen = Buffer.alloc(32, 7).toString("base64");
    const set = await client.hybridConnections.regenerateKeys(RG, NS, "orders", "listen-only", { keyType: "SecondaryKey", key: chosen });
    expect(set.secondaryKey).toBe(chosen);

    // delete the rule, then the hybrid connection
    await client.hybridConnections.deleteAuthorizationRule(RG, NS, "orders", "listen-only");
    await expect(client.hybridConnections.getAuthorizationRule(RG, NS, "orders", "listen-only")).rejects.toMatchObject({ statusCode: 404 });
    await client.hybridConnections.delete(RG, NS, "orders");
    const err = await client.hybridConnections.get(RG, NS, "orders").catch((e: unknown) => e);
    expect(isRestError(err)).toBe(true); // not instanceof: arm-relay loads the CommonJS build of core-rest-pipeline, this file the ESM one
    expect((err as RestError).statusCode).toBe(404);
    expect((err as RestError).code).toBe("ResourceNotFound");
    expect(emu.entities.get("orders")).toBeUndefined();
    // deleting again is fine (204)
    await client.hybridConnections.delete(RG, NS, "orders");
  });

  test("requiresClientAuthorization=false and update semantics", async () => {
    const hc = await client.hybridConnections.createOrUpdate(RG, NS, "public-hc", { requiresClientAuthorization: false, userMetadata: "m1" });
    expect(hc.requiresClientAuthorization).toBe(false);
    const updated = await client.hybridConnections.createOrUpdate(RG, NS, "public-hc", { userMetadata: "m2" });
    expect(updated).toMatchObject({ requiresClientAuthorization: false, userMetadata: "m2" });
    const err = await client.hybridConnections.createOrUpdate(RG, NS, "public-hc", { requiresClientAuthorization: true }).catch((e: unknown) => e);
    expect((err as RestError).statusCode).toBe(400);
    await client.hybridConnections.delete(RG, NS, "public-hc");
  });

  test("namespace and namespace-level rules", async () => {
    const ns = await client.namespaces.get(RG, NS);
    expect(ns).toMatchObject({ name: NS, type: "Microsoft.Relay/namespaces", provisioningState: "Succeeded" });
    expect(ns.id).toBe(`/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Relay/namespaces/${NS}`);

    const root = await client.namespaces.getAuthorizationRule(RG, NS, "RootManageSharedAccessKey");
    expect(root.rights?.sort()).toEqual(["Listen", "Manage", "Send"]);
    const keys = await client.namespaces.listKeys(RG, NS, "RootManageSharedAccessKey");
    expect(keys.primaryConnectionString).toBe(emu.connectionString("RootManageSharedAccessKey"));
    expect(keys.primaryConnectionString).not.toContain("EntityPath");
    const regen = await client.namespaces.regenerateKeys(RG, NS, "RootManageSharedAccessKey", { keyType: "SecondaryKey" });
    expect(regen.secondaryKey).not.toBe(keys.secondaryKey);
    expect(regen.primaryKey).toBe(keys.primaryKey);

    // a namespace key signs listeners of any hybrid connection
    await client.hybridConnections.createOrUpdate(RG, NS, "ns-signed", {});
    const l = await openListener(listenUrl(emu.endpoint, "ns-signed"), sasFor("ns-signed", "RootManageSharedAccessKey", regen.secondaryKey!), ca);
    expect(l.open).toBe(true);
    if (l.open) await closeWs(l.ws);
    await client.hybridConnections.delete(RG, NS, "ns-signed");

    const missing = await client.namespaces.getAuthorizationRule(RG, NS, "nope").catch((e: unknown) => e);
    expect((missing as RestError).statusCode).toBe(404);
  });

  test("the wrong subscription / resource group / namespace is 404", async () => {
    const other = new RelayAPI(credential, "99999999-0000-0000-0000-000000000000", { endpoint: emu.httpUrl, tlsOptions: { ca } });
    const e1 = (await other.hybridConnections.get(RG, NS, "x").catch((e: unknown) => e)) as RestError;
    expect([e1.statusCode, e1.code]).toEqual([404, "SubscriptionNotFound"]);
    const e2 = (await client.hybridConnections.get("other-rg", NS, "x").catch((e: unknown) => e)) as RestError;
    expect([e2.statusCode, e2.code]).toEqual([404, "ResourceGroupNotFound"]);
    const e3 = (await client.hybridConnections.get(RG, "other-ns", "x").catch((e: unknown) => e)) as RestError;
    expect([e3.statusCode, e3.code]).toEqual([404, "ResourceNotFound"]);
  });

  test("raw ARM rules: Bearer required, api-version required, JSON errors", async () => {
    const base = `${emu.httpUrl}/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Relay/namespaces/${NS}/hybridConnections`;
    const noAuth = await fetch(`${base}?api-version=2017-04-01`, { tls: { ca } });
    expect(noAuth.status).toBe(401);
    expect(((await noAuth.json()) as { error: { code: string } }).error.code).toBe("AuthenticationFailed");
    const sasAuth = await fetch(`${base}?api-version=2017-04-01`, { headers: { authorization: "SharedAccessSignature sr=x" }, tls: { ca } });
    expect(sasAuth.status).toBe(401);
    const noVersion = await fetch(base, { headers: { authorization: "Bearer anything" }, tls: { ca } });
    expect(noVersion.status).toBe(400);
    expect(((await noVersion.json()) as { error: { code: string } }).error.code).toBe("MissingApiVersionParameter");
    const ok = await fetch(`${base}?api-version=2021-11-01`, { headers: { authorization: "Bearer anything" }, tls: { ca } });
    expect(ok.status).toBe(200);
    expect(Array.isArray(((await ok.json()) as { value: unknown[] }).value)).toBe(true);
    const badBody = await fetch(`${base}/x?api-version=2021-11-01`, {
      method: "PUT",
      headers: { authorization: "Bearer anything", "content-type": "application/json" },
      body: "{not json",
      tls: { ca },
    });
    expect(badBody.status).toBe(400);
    const badRights = await fetch(`${base}/x/authorizationRules/r?api-version=2021-11-01`, {
      method: "PUT",
      headers: { authorization: "Bearer anything" },
      body: JSON.stringify({ properties: { rights: ["Admin"] } }),
      tls: { ca },
    });
    expect(badRights.status).toBe(404); // the hybrid connection does not exist
    const post = await fetch(`${base}?api-version=2021-11-01`, { method: "POST", headers: { authorization: "Bearer anything" }, tls: { ca } });
    expect(post.status).toBe(405);
  });
});

test("resolveNamespace understands the emulator's own URL", () => {
  expect(resolveNamespace(emu.url)).toEqual(emu.endpoint);
});

describe("handleArm as a fetch handler (no socket)", () => {
  const entities = new EntityStore([{ name: "RootManageSharedAccessKey" }]);
  entities.upsert({ path: "Orders/EU", rules: [{ name: "Send-Rule", rights: ["Send"] }] });
  const ctx = { entities, subscriptionId: SUB, resourceGroup: RG, namespace: NS, listenerCount: () => 3 };
  const base = `http://127.0.0.1:9000/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Relay/namespaces/${NS}`;
  const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = { authorization: "Bearer x" }) => {
    const url = new URL(`${base}${path}${path.includes("?") ? "&" : "?"}api-version=2017-04-01`);
    const req = new Request(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const res = await handleArm(req, url, ctx);
    // biome-ignore lint/suspicious/noExplicitAny: ARM JSON, checked field by field below
    return res && { status: res.status, body: (res.status === 204 || (res.status === 200 && method === "DELETE") ? undefined : await res.json()) as any };
  };

  test("unknown paths are left to the caller", async () => {
    const url = new URL(`http://h/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Storage/storageAccounts/x`);
    expect(await handleArm(new Request(url), url, ctx)).toBeUndefined();
    expect(await call("GET", "/hybridConnections/x/authorizationRules/r/bogus")).toBeUndefined();
    expect(await call("GET", "/queues")).toBeUndefined();
  });

  test("names with '/' (encoded) and case-insensitive lookups", async () => {
    const hc = await call("GET", "/HYBRIDCONNECTIONS/orders%2Feu");
    expect(hc?.status).toBe(200);
    expect(hc?.body).toMatchObject({ name: "Orders/EU", properties: { listenerCount: 3, requiresClientAuthorization: true } });
    expect(hc?.body.id).toEndWith("/hybridConnections/Orders/EU");
    const keys = await call("POST", "/hybridConnections/orders%2Feu/authorizationRules/send-rule/listKeys");
    expect(keys?.body.keyName).toBe("Send-Rule");
    // plain HTTP → ws:// endpoint, so parseConnectionString points clients at ws, not wss
    expect(keys?.body.primaryConnectionString).toStartWith("Endpoint=ws://127.0.0.1:9000/;SharedAccessKeyName=Send-Rule;");
    expect(keys?.body.primaryConnectionString).toEndWith(";EntityPath=Orders/EU");
    expect(parseConnectionString(keys?.body.primaryConnectionString).endpoint).toEqual({ scheme: "ws", host: "127.0.0.1:9000" });
  });

  test("validation errors are 400 with ARM error bodies", async () => {
    const badRights = await call("PUT", "/hybridConnections/orders%2Feu/authorizationRules/r", { properties: { rights: ["Admin"] } });
    expect(badRights).toMatchObject({ status: 400, body: { error: { code: "BadRequest" } } });
    const noRights = await call("PUT", "/authorizationRules/r", { properties: {} });
    expect(noRights?.status).toBe(400);
    const badName = await call("PUT", "/authorizationRules/bad%20name", { properties: { rights: ["Send"] } });
    expect(badName?.status).toBe(400);
    const badKeyType = await call("POST", "/authorizationRules/RootManageSharedAccessKey/regenerateKeys", { keyType: "TertiaryKey" });
    expect(badKeyType?.status).toBe(400);
    const badHcName = await call("PUT", "/hybridConnections/bad%20name", {});
    expect(badHcName?.status).toBe(400);
    const badType = await call("PUT", "/hybridConnections/h2", { properties: { requiresClientAuthorization: "yes" } });
    expect(badType?.status).toBe(400);
    const url = new URL(`${base}/hybridConnections?api-version=latest`);
    const badVersion = await handleArm(new Request(url, { headers: { authorization: "Bearer x" } }), url, ctx);
    expect(badVersion?.status).toBe(400);
  });

  test("namespace rules: create, update rights keeps keys, delete; 405 lists allowed methods", async () => {
    const created = await call("PUT", "/authorizationRules/ops", { properties: { rights: ["Listen", "Listen", "Send"] } });
    expect(created?.body).toMatchObject({ name: "ops", type: "Microsoft.Relay/namespaces/authorizationRules", properties: { rights: ["Listen", "Send"] } });
    const k1 = await call("POST", "/authorizationRules/ops/listKeys");
    expect(k1?.body.primaryConnectionString).not.toContain("EntityPath");
    await call("PUT", "/authorizationRules/OPS", { properties: { rights: ["Manage", "Listen", "Send"] } });
    const k2 = await call("POST", "/authorizationRules/ops/listKeys");
    expect(k2?.body.primaryKey).toBe(k1?.body.primaryKey);
    expect(entities.namespaceRules.get("ops")?.rights).toEqual(["Manage", "Listen", "Send"]);
    const list = await call("GET", "/authorizationRules");
    expect(list?.body.value.map((r: { name: string }) => r.name)).toEqual(["RootManageSharedAccessKey", "ops"]);
    expect((await call("DELETE", "/authorizationRules/ops"))?.status).toBe(200);
    expect((await call("DELETE", "/authorizationRules/ops"))?.status).toBe(204);
    const url = new URL(`${base}/authorizationRules/x/listKeys?api-version=2017-04-01`);
    const res = (await handleArm(new Request(url, { headers: { authorization: "Bearer x" } }), url, ctx))!;
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("POST");
  });

  test("namespace PUT is an idempotent no-op that reports Succeeded", async () => {
    const ns = await call("PUT", "", { location: "westeurope", sku: { name: "Standard" } });
    expect(ns).toMatchObject({ status: 200, body: { name: NS, properties: { provisioningState: "Succeeded", serviceBusEndpoint: "http://127.0.0.1:9000/" } } });
    const list = await handleArm(
      new Request(`http://h/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Relay/namespaces?api-version=2017-04-01`, { headers: { authorization: "Bearer x" } }),
      new URL(`http://h/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Relay/namespaces?api-version=2017-04-01`),
      ctx,
    );
    expect(((await list!.json()) as { value: Array<{ name: string }> }).value.map((n) => n.name)).toEqual([NS]);
  });

  test("deleting a hybrid connection reaches the data plane's delete hook", async () => {
    const seen: string[] = [];
    entities.onDelete((hc) => seen.push(hc.path));
    entities.upsert({ path: "doomed" });
    expect((await call("DELETE", "/hybridConnections/DOOMED"))?.status).toBe(200);
    expect(seen).toEqual(["doomed"]);
  });
});
