/**
 * The gateway's sender credential through `senderDialer`: Entra tokens from a TokenCredential that
 * fetches over HTTP from a local token server (shared-secret guarded), checked by the emulator's
 * Entra test mode; refresh after expiry; exactly one forced refresh and retry on a 401; the
 * env-key SAS fallback. Listener tokens come from the same binding's issuer (env key).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type AzureBindingOptions, createAzureBinding } from "../src/control/azure.ts";
import { readRelaySettings } from "../src/control/settings.ts";
import type { RelayBinding } from "../src/control/types.ts";
import { type EmulatorHandle, startEmulator } from "../src/emulator/server.ts";
import { senderDialer } from "../src/gateway/credential.ts";
import { RelayError } from "../src/hc/errors.ts";
import type { HybridConnectionListener } from "../src/hc/listener.ts";
import { echoListener } from "./support/emulator-fixture.ts";
import type { WsConnection } from "../src/ws/client.ts";
import { HttpTokenCredential, startTokenServer, type TokenServer, type TokenServerConfig } from "./support/token-server.ts";

const JWT_SECRET = "gateway-credential-test-secret";
const HC = "tun";

let emu: EmulatorHandle;
let listener: HybridConnectionListener;
const cleanups: Array<() => Promise<void> | void> = [];

function settings() {
  const root = emu.entities.namespaceRules.get("RootManageSharedAccessKey")!;
  const s = readRelaySettings({ AZHEXGATE_RELAY_NAMESPACE: emu.url, AZHEXGATE_RELAY_KEY_NAME: "RootManageSharedAccessKey", AZHEXGATE_RELAY_KEY: root.primaryKey });
  if (s.mode !== "azure") throw new Error("expected azure settings");
  return s;
}

async function binding(o: AzureBindingOptions = {}): Promise<RelayBinding> {
  const b = await createAzureBinding(settings(), o);
  cleanups.push(() => b.close());
  return b;
}

function tokenServer(config: Partial<TokenServerConfig> = {}): TokenServer {
  const t = startTokenServer({ jwtSecret: JWT_SECRET, roles: ["Azure Relay Sender"], ...config });
  cleanups.push(() => t.stop());
  return t;
}

/** One text round trip through a dialed sender: proves the listener accepted and data flows. */
async function echo(ws: WsConnection, text: string): Promise<string> {
  const got = new Promise<string>((resolve, reject) => {
    ws.on("message", (d) => resolve(typeof d === "string" ? d : new TextDecoder().decode(d)));
    ws.on("close", (code) => reject(new Error(`closed ${code}`)));
  });
  ws.send(text);
  const answer = await got;
  ws.close();
  return answer;
}

beforeAll(async () => {
  emu = await startEmulator({ entra: { secret: JWT_SECRET }, hybridConnections: [{ path: HC }] });
  const b = await createAzureBinding(settings());
  const { token } = await b.issuer.issue(HC, 600);
  listener = await echoListener({ endpoint: emu.endpoint, hcPath: HC, token });
});

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  await listener?.close();
  await emu?.stop();
});

describe("senderDialer with an Entra TokenCredential", () => {
  test("a sender connects to the listener with a token from the token server; the token is cached", async () => {
    const tokens = tokenServer();
    const credential = new HttpTokenCredential(tokens);
    const b = await binding({ credential });
    const dial = senderDialer(b);
    expect(await echo(await dial(HC), "hello")).toBe("hello");
    expect(await echo(await dial(HC), "again")).toBe("again");
    expect(tokens.hits).toBe(1);
    expect(credential.scopesAsked).toEqual(["https://relay.azure.net//.default"]);
    // a wrong shared secret gets no token at all
    expect(tokens.refused).toBe(0);
  });

  test("after the token expires the next dial fetches a fresh one and still connects", async () => {
    const tokens = tokenServer({ ttlSeconds: 30 });
    let skew = 0;
    const b = await binding({ credential: new HttpTokenCredential(tokens), now: () => Date.now() + skew, senderRefreshBeforeMs: 1000 });
    const dial = senderDialer(b);
    expect(await echo(await dial(HC), "one")).toBe("one");
    skew = 28_000; // 2 s before expiry: still outside refreshBeforeMs
    expect(await echo(await dial(HC), "two")).toBe("two");
    expect(tokens.hits).toBe(1);
    skew = 30_000; // expired by the binding's clock
    expect(await echo(await dial(HC), "three")).toBe("three");
    expect(tokens.hits).toBe(2);
  });

  test("a 401 (the relay refused a token the cache still held) → exactly one forced refresh and retry", async () => {
    // the first token is minted on a clock 2 hours behind: already expired for the relay
    let minted = 0;
    const tokens = tokenServer({ ttlSeconds: 3600, now: () => Date.now() - (minted++ === 0 ? 7_200_000 : 0) });
    const retries: RelayError[] = [];
    const b = await binding({ credential: new HttpTokenCredential(tokens) });
    const dial = senderDialer(b, { onUnauthorized: (_hc, err) => retries.push(err) });
    expect(await echo(await dial(HC), "healed")).toBe("healed");
    expect(tokens.hits).toBe(2);
    expect(retries.length).toBe(1);
    expect(retries[0]?.status).toBe(401);
    // the refreshed token is cached again
    expect(await echo(await dial(HC), "cached")).toBe("cached");
    expect(tokens.hits).toBe(2);
  });

  test("a token the relay never accepts: one retry, then the 401 surfaces (no loop) once roles had time to propagate", async () => {
    const tokens = tokenServer({ jwtSecret: "not-the-relay-secret" });
    let retried = 0;
    const dial = senderDialer(await binding({ credential: new HttpTokenCredential(tokens) }), { onUnauthorized: () => retried++, rolePropagationMs: 0 });
    const err = await dial(HC).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RelayError);
    expect((err as RelayError).code).toBe("unauthorized");
    expect((err as RelayError).status).toBe(401);
    expect(tokens.hits).toBe(2);
    expect(retried).toBe(1);
  });

  test("other refusals are not retried (after the role-propagation window): 403 (no Send role), 404 (no such HC), token fetch failure", async () => {
    const listenOnly = tokenServer({ roles: ["Azure Relay Listener"] });
    let retried = 0;
    const dial = senderDialer(await binding({ credential: new HttpTokenCredential(listenOnly) }), { onUnauthorized: () => retried++, rolePropagationMs: 0 });
    const forbidden = await dial(HC).catch((e: unknown) => e);
    expect((forbidden as RelayError).code).toBe("forbidden");
    expect(listenOnly.hits).toBe(1);

    const ok = tokenServer();
    const dial2 = senderDialer(await binding({ credential: new HttpTokenCredential(ok) }), { onUnauthorized: () => retried++ });
    const missing = await dial2("no-such-hc").catch((e: unknown) => e);
    expect((missing as RelayError).code).toBe("not_found");
    expect(ok.hits).toBe(1);

    const guarded = tokenServer();
    const dial3 = senderDialer(await binding({ credential: new HttpTokenCredential(guarded, "wrong-shared-secret") }), { onUnauthorized: () => retried++ });
    const noToken = await dial3(HC).catch((e: unknown) => e);
    expect((noToken as RelayError).code).toBe("unauthorized");
    expect((noToken as RelayError).status).toBeUndefined();
    expect(guarded.refused).toBe(1);
    expect(guarded.hits).toBe(0);
    expect(retried).toBe(0);
  });
});

describe("senderDialer precedence", () => {
  test("no credential + env key → SAS sender (the namespace rule has Send); no token server involved", async () => {
    const events: Array<[string, Record<string, unknown>]> = [];
    const b = await binding({ log: (e, f) => events.push([e, f]) });
    expect(events[0]?.[1]).toMatchObject({ sender: "sas (RootManageSharedAccessKey)", credential: "none" });
    expect(await b.senderToken.getToken(`http://${emu.endpoint.host}/${HC}`)).toStartWith("SharedAccessSignature ");
    expect(await echo(await senderDialer(b)(HC), "sas")).toBe("sas");
  });
});
