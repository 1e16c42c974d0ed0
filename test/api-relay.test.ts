/**
 * What the management API's tokens and lifecycle mean at the relay (the emulator, real
 * HybridConnectionListener / sender clients): scope, reserved-name reclaim, rotation, TTL sweep.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createManagementApi } from "../src/api/routes.ts";
import { createLocalBinding, LISTEN_RULE, SEND_RULE } from "../src/control/local.ts";
import { RelayError } from "../src/hc/errors.ts";
import { createListener, type HybridConnectionListener } from "../src/hc/listener.ts";
import { parseSasToken } from "../src/hc/sas.ts";
import { connectSender } from "../src/hc/sender.ts";
import { assertNoSecrets, KEY_A, KEY_B, startApiStack, type ApiStack } from "./support/api-stack.ts";

let s: ApiStack;
const open: HybridConnectionListener[] = [];
beforeAll(async () => {
  s = await startApiStack();
});
afterAll(async () => {
  for (const l of open) await l.close().catch(() => {});
  assertNoSecrets(s);
  await s.stop();
});

async function listen(hcPath: string, token: string): Promise<HybridConnectionListener> {
  const l = await createListener({ endpoint: s.relay.endpoint, hcPath, token });
  open.push(l);
  return l;
}

async function refusal(p: Promise<unknown>): Promise<RelayError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof RelayError) return e;
    throw e;
  }
  throw new Error("expected the relay to refuse");
}

/** Resolves with the listener's close error, failing after `ms` (bounded wait, no polling). */
function closed(l: HybridConnectionListener, ms = 5_000): Promise<RelayError | null> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("listener was not closed")), ms);
    l.on("close", (err) => {
      clearTimeout(timer);
      resolve(err);
    });
  });
}

describe("listener tokens", () => {
  test("open a listener on exactly their HC; refused on another HC and for Send", async () => {
    const t1 = (await s.call("POST", "/api/tunnels", { key: KEY_A })).json;
    const t2 = (await s.call("POST", "/api/tunnels", { key: KEY_A })).json;
    const sas = parseSasToken(t1.listener_token);
    expect(sas?.skn).toBe(LISTEN_RULE);
    expect(sas?.resource).toBe(`http://127.0.0.1/hc-${t1.id}`);
    const l = await listen(t1.hybrid_connection_name, t1.listener_token);
    expect(l.isOpen).toBe(true);
    expect(s.relay.listenerCount(`hc-${t1.id}`)).toBe(1);
    // Another HC: its own Listen rule has another key, so the signature fails (401) before the scope check.
    const other = await refusal(listen(t2.hybrid_connection_name, t1.listener_token));
    expect(other.code).toBe("unauthorized");
    expect(other.status).toBe(401);
    // Its own HC, but sending: the rule grants Listen only.
    const send = await refusal(connectSender({ endpoint: s.relay.endpoint, hcPath: t1.hybrid_connection_name, token: t1.listener_token, timeoutMs: 5_000 }));
    expect(send.code).toBe("forbidden");
    expect(send.status).toBe(403);
    // The gateway's sender credential does reach the listener.
    l.on("accept", (msg) => void l.accept(msg));
    const ws = await connectSender({ endpoint: s.relay.endpoint, hcPath: t1.hybrid_connection_name, token: s.binding.senderToken, timeoutMs: 5_000 });
    ws.close(1000, "done");
  });

  test("connect tokens (issue 16): Send only, on exactly their HC; they cannot listen; the listener's token stays valid", async () => {
    const t = (await s.call("POST", "/api/tunnels", { key: KEY_A, body: { kind: "tcp" } })).json;
    const other = (await s.call("POST", "/api/tunnels", { key: KEY_A, body: { kind: "tcp" } })).json;
    expect(t.kind).toBe("tcp");
    const l = await listen(t.hybrid_connection_name, t.listener_token);
    const g = (await s.call("POST", `/api/tunnels/${t.id}/connect`, { key: KEY_A })).json;
    expect(g.hcPath).toBe(t.hybrid_connection_name);
    expect(parseSasToken(g.token)?.skn).toBe(SEND_RULE);
    expect(Date.parse(g.expiresAt) - Date.now()).toBeLessThanOrEqual(900_000 + 5_000); // short-lived
    // listening with it is refused (the rule grants Send only), as is sending to another tunnel
    const asListener = await refusal(listen(t.hybrid_connection_name, g.token));
    expect(asListener.status).toBe(403);
    expect((await refusal(connectSender({ endpoint: s.relay.endpoint, hcPath: other.hybrid_connection_name, token: g.token, timeoutMs: 5_000 }))).status).toBe(401);
    // it reaches the listener, which kept its token
    l.on("accept", (msg) => void l.accept(msg));
    const ws = await connectSender({ endpoint: s.relay.endpoint, hcPath: t.hybrid_connection_name, token: g.token, timeoutMs: 5_000 });
    ws.close(1000, "done");
    expect(l.isOpen).toBe(true);
    // an HTTP tunnel has no connect tokens; kind / allow are checked
    const http = (await s.call("POST", "/api/tunnels", { key: KEY_A })).json;
    expect(http.kind).toBe("http");
    expect((await s.call("POST", `/api/tunnels/${http.id}/connect`, { key: KEY_A })).status).toBe(409);
    expect((await s.call("POST", "/api/tunnels", { key: KEY_A, body: { kind: "udp" } })).json.error.field).toBe("kind");
    expect((await s.call("POST", "/api/tunnels", { key: KEY_A, body: { allow: ["x"] } })).json.error.field).toBe("allow");
  });

  test("renewed tokens work with renewToken on the open control channel", async () => {
    const t = (await s.call("POST", "/api/tunnels", { key: KEY_B })).json;
    const l = await listen(t.hybrid_connection_name, t.listener_token);
    const r = await s.call("POST", `/api/tunnels/${t.id}/token`, { key: KEY_B, body: { session_id: t.session_id } });
    expect(r.status).toBe(200);
    await l.renewToken(r.json.listener_token);
    const again = await listen(t.hybrid_connection_name, r.json.listener_token);
    expect(again.isOpen).toBe(true);
    expect(l.isOpen).toBe(true);
  });

  test("ensure is idempotent: it never rotates a live key", async () => {
    const t = (await s.call("POST", "/api/tunnels", { key: KEY_A })).json;
    await s.binding.provisioner.ensure(t.hybrid_connection_name);
    const l = await listen(t.hybrid_connection_name, t.listener_token);
    expect(l.isOpen).toBe(true);
  });
});

describe("reserved-name reclaim", () => {
  test("the owner's new create cuts the stale agent (1001), kills its token (401); the new token works", async () => {
    const first = (await s.call("POST", "/api/tunnels", { key: KEY_A, body: { subdomain: "reclaim-me", local_port: 3000 } })).json;
    const stale = await listen(first.hybrid_connection_name, first.listener_token);
    const staleClosed = closed(stale);

    const second = await s.call("POST", "/api/tunnels", { key: KEY_A, body: { subdomain: "reclaim-me", local_port: 4000 } });
    expect(second.status).toBe(201);
    expect(second.json.id).toBe("reclaim-me");
    expect(second.json.session_id).not.toBe(first.session_id);
    expect(second.json.local_port).toBe(4000);

    const err = await staleClosed;
    expect(err?.code).toBe("entity_deleted");
    expect(err?.closeCode).toBe(1001);
    const refused = await refusal(listen(first.hybrid_connection_name, first.listener_token));
    expect(refused.status).toBe(401);

    const fresh = await listen(second.json.hybrid_connection_name, second.json.listener_token);
    expect(fresh.isOpen).toBe(true);

    const path = "/api/tunnels/reclaim-me/token";
    const old = await s.call("POST", path, { key: KEY_A, body: { session_id: first.session_id } });
    expect(old.status).toBe(409);
    expect(old.json.error.code).toBe("session_superseded");
    expect((await s.call("POST", path, { key: KEY_A, body: { session_id: second.json.session_id } })).status).toBe(200);
    expect((await s.call("GET", "/api/tunnels", { key: KEY_A })).json.tunnels.filter((t: { id: string }) => t.id === "reclaim-me")).toHaveLength(1);
  });
});

describe("rotation", () => {
  test("an HC lost behind the API's back: plain renewal is 502, `rejected: true` re-provisions and works", async () => {
    const t = (await s.call("POST", "/api/tunnels", { key: KEY_A })).json;
    const path = `/api/tunnels/${t.id}/token`;
    expect(s.relay.faults.deleteHc(t.hybrid_connection_name)).toBe(true);
    const plain = await s.call("POST", path, { key: KEY_A, body: { session_id: t.session_id } });
    expect(plain.status).toBe(502);
    expect(plain.json.error.code).toBe("relay_unavailable");
    const r = await s.call("POST", path, { key: KEY_A, body: { session_id: t.session_id, rejected: true } });
    expect(r.status).toBe(200);
    expect((await refusal(listen(t.hybrid_connection_name, t.listener_token))).status).toBe(401);
    expect((await listen(t.hybrid_connection_name, r.json.listener_token)).isOpen).toBe(true);
  });
});

describe("idle TTL", () => {
  test("sweep removes tunnels idle past their deadline (and their HCs), keeps renewed ones and name ownership", async () => {
    const idle = (await s.call("POST", "/api/tunnels", { key: KEY_B, body: { subdomain: "idle-one" } })).json;
    const live = (await s.call("POST", "/api/tunnels", { key: KEY_B })).json;
    s.clock.now += s.service.idleTtlMs - 1000;
    expect((await s.call("POST", `/api/tunnels/${live.id}/token`, { key: KEY_B, body: { session_id: live.session_id } })).status).toBe(200);
    expect(await s.service.sweep()).toBe(0);
    s.clock.now += 1000;
    expect(await s.service.sweep()).toBeGreaterThanOrEqual(1);
    expect((await s.call("GET", "/api/tunnels/idle-one", { key: KEY_B })).status).toBe(404);
    expect(s.relay.entities.get(idle.hybrid_connection_name)).toBeUndefined();
    expect((await s.call("GET", `/api/tunnels/${live.id}`, { key: KEY_B })).status).toBe(200);
    expect(s.relay.entities.get(live.hybrid_connection_name)).toBeDefined();
    expect((await s.call("POST", "/api/tunnels", { key: KEY_A, body: { subdomain: "idle-one" } })).status).toBe(409);
  });

  test("the API's start function sweeps on its interval", async () => {
    const t = (await s.call("POST", "/api/tunnels", { key: KEY_A })).json;
    s.clock.now += s.service.idleTtlMs + 1;
    const api = createManagementApi({
      service: s.service,
      keys: s.keys,
      access: { clientIp: (p) => p, trusts: () => false, allowed: () => true, retryAfter: () => 0, recordFailure: () => {} },
      publicUrl: (id) => id,
      relayEndpoint: "ws://unused",
      sweepIntervalMs: 5,
    });
    try {
      for (let i = 0; i < 400 && (await s.registry.get(t.id)); i++) await Bun.sleep(5);
      expect(await s.registry.get(t.id)).toBeUndefined();
    } finally {
      api.stop();
    }
  });
});

describe("local binding", () => {
  test("refuses an emulator without the root rule, and issue() names the missing rule", async () => {
    const { startEmulator } = await import("../src/emulator/server.ts");
    const bare = await startEmulator({ namespaceRules: [] });
    try {
      expect(() => createLocalBinding(bare)).toThrow(/RootManageSharedAccessKey/);
    } finally {
      await bare.stop();
    }
    await expect(s.binding.issuer.issue("hc-never-made", 60)).rejects.toThrow(/ensure it first/);
  });

  test("the secret scan catches a leak", () => {
    const leaky = { ...s, logs: [...s.logs, `{"event":"x","token":"SharedAccessSignature sr=a&sig=abc&se=1&skn=r"}`] };
    expect(() => assertNoSecrets(leaky)).toThrow(/signature/);
    const keyLeak = { ...s, logs: [...s.logs, `oops ${KEY_A}`] };
    expect(() => assertNoSecrets(keyLeak)).toThrow(/API key/);
  });
});
