/**
 * (Continued from api-tunnels-unit.test.ts: renew, get, list, delete, connect tokens, release and
 * sweep.) The tunnel service's rules without HTTP (issue 18: src/api/tunnels.ts was only tested through
 * the API, too slow to run per mutant): names, ids, lifetimes, quotas, reclaim, renew, connect
 * tokens, release, sweep, and the 502 when the relay fails. Real parts: an in-memory SQLite
 * registry and the local relay binding on a relay emulator (loopback); time is injected.
 */
import { describe, expect, test } from "bun:test";
import { TunnelService } from "../src/api/tunnels.ts";
import { T0, binding, provisioner, registry, now, setNow, setFailRelay, useTunnelServiceFixture, service, apiError, logged, hcExists } from "./support/tunnel-service.ts";

useTunnelServiceFixture();

describe("renew, get, list, delete", () => {
  test("renewToken: a fresh token and a later idle deadline for the current session only", async () => {
    const s = service();
    const { tunnel } = await s.create("key-a", {});
    setNow(T0 + 60_000);
    const r = await s.renewToken("key-a", tunnel.id, { sessionId: tunnel.sessionId });
    expect(r.tokenExpiresAt).toBe(T0 + 60_000 + 3_600_000);
    expect(r.tunnel).toMatchObject({ lastSeenAt: T0 + 60_000, expiresAt: T0 + 60_000 + 7_200_000 });
    expect(await apiError(s.renewToken("key-a", tunnel.id, { sessionId: "old" }))).toEqual({
      status: 409,
      code: "session_superseded",
      message: "This tunnel was taken over by a newer session of your API key; stop this agent or create the tunnel again.",
    });
    expect(await apiError(s.renewToken("key-b", tunnel.id, { sessionId: tunnel.sessionId }))).toMatchObject({ status: 404, code: "not_found" });
  });

  test("renewToken with rejected: the hybrid connection is provisioned again (it was lost)", async () => {
    const s = service();
    const { tunnel } = await s.create("key-a", {});
    await binding.provisioner.remove(tunnel.hcPath);
    expect(await apiError(s.renewToken("key-a", tunnel.id, { sessionId: tunnel.sessionId }))).toMatchObject({ status: 502, code: "relay_unavailable" });
    await s.renewToken("key-a", tunnel.id, { sessionId: tunnel.sessionId, rejected: true });
    expect(hcExists(tunnel.hcPath)).toBe(true);
  });

  test("get and delete: 404 for another key's tunnel unless admin; the HC goes with the tunnel", async () => {
    const s = service();
    const { tunnel } = await s.create("key-a", {});
    expect(await apiError(s.get("key-b", tunnel.id))).toEqual({ status: 404, code: "not_found", message: "No tunnel with this id exists for your API key." });
    expect((await s.get("key-b", tunnel.id, true)).id).toBe(tunnel.id);
    expect((await s.list("key-b")).length).toBe(0);
    expect((await s.list("key-b", true)).map((t) => t.id)).toEqual([tunnel.id]);
    expect(await apiError(s.delete("key-b", tunnel.id))).toMatchObject({ status: 404 });
    expect(hcExists(tunnel.hcPath)).toBe(true);
    await s.delete("key-b", tunnel.id, true);
    expect(hcExists(tunnel.hcPath)).toBe(false);
    expect(await registry.get(tunnel.id)).toBeUndefined();
    expect(logged("tunnel deleted").map((l) => [l.key_id, l.owner])).toEqual([["key-b", "key-a"]]);
    const own = await s.create("key-a", {});
    await s.delete("key-a", own.tunnel.id);
    expect(logged("tunnel deleted")[1]?.owner).toBeUndefined();
    setFailRelay("remove");
    const kept = await s.create("key-a", {});
    expect(await apiError(s.delete("key-a", kept.tunnel.id))).toMatchObject({ status: 502, code: "relay_unavailable" });
    expect(await registry.get(kept.tunnel.id)).toBeDefined();
  });
});

describe("connect tokens (TCP tunnels)", () => {
  test("owner, allowed keys and admins get a short Send token; others 403; HTTP tunnels 409; unknown 404", async () => {
    const s = service();
    const { tunnel } = await s.create("key-a", { tcp: { allow: ["key-b"] } });
    const owner = await s.connectToken("key-a", tunnel.id);
    expect([owner.ttlSeconds, owner.tokenExpiresAt]).toEqual([900, T0 + 900_000]);
    expect(owner.token).toContain("skn=");
    expect((await s.connectToken("key-b", tunnel.id)).tunnel.id).toBe(tunnel.id);
    expect((await s.connectToken("key-c", tunnel.id, true)).tunnel.id).toBe(tunnel.id);
    expect(await apiError(s.connectToken("key-c", tunnel.id))).toEqual({
      status: 403,
      code: "connect_forbidden",
      message: `You may not connect to tunnel "${tunnel.id}": ask its owner to run azhexgate tcp with --allow key-c (your key id or user id).`,
    });
    const http = await s.create("key-a", {});
    expect(await apiError(s.connectToken("key-a", http.tunnel.id))).toEqual({
      status: 409,
      code: "not_tcp_tunnel",
      message: `Tunnel "${http.tunnel.id}" is an HTTP tunnel; open its public URL instead of azhexgate connect.`,
    });
    expect(await apiError(s.connectToken("key-a", "nope"))).toMatchObject({ status: 404, code: "not_found" });
    expect(await apiError(s.connectToken("key-c", http.tunnel.id))).toMatchObject({ status: 403, code: "connect_forbidden" }); // someone else's HTTP tunnel
  });

  test("the Send token lives a quarter of the listener TTL, between 5 s and 15 min", async () => {
    for (const [ttl, want] of [
      [3600, 900],
      [4000, 900],
      [60, 15],
      [20, 5],
      [5, 5],
    ] as const) {
      const s = service({ tokenTtlSeconds: ttl });
      const { tunnel } = await s.create("key-a", { tcp: { allow: [] } });
      expect([ttl, (await s.connectToken("key-a", tunnel.id)).ttlSeconds]).toEqual([ttl, want]);
    }
  });

  test("a binding that cannot sign Send tokens: 501 connect_unavailable", async () => {
    const s = new TunnelService({ registry, provisioner, issuer: { issue: binding.issuer.issue, invalidate: () => {} }, now: () => now });
    const { tunnel } = await s.create("key-a", { tcp: { allow: [] } });
    expect(await apiError(s.connectToken("key-a", tunnel.id))).toEqual({
      status: 501,
      code: "connect_unavailable",
      message: "This gateway's relay binding cannot sign Send tokens, so azhexgate connect is not available here.",
    });
  });
});

describe("names released, idle tunnels swept", () => {
  test("releaseName: 404 when not yours, 409 while in use, then anyone may take it", async () => {
    const s = service();
    await s.create("key-a", { subdomain: "shared" });
    const notYours = { status: 404, code: "not_found", message: 'You have no reserved name "shared".' };
    expect(await apiError(s.releaseName("key-b", "shared"))).toEqual(notYours);
    expect(await apiError(s.releaseName("key-a", "other"))).toEqual({ ...notYours, message: 'You have no reserved name "other".' });
    expect(await apiError(s.releaseName("key-a", "shared"))).toEqual({
      status: 409,
      code: "name_in_use",
      message: "The tunnel shared still uses this name; delete the tunnel first, then release the name.",
    });
    await s.delete("key-a", "shared");
    await s.releaseName("key-a", "shared");
    expect(logged("name released").map((l) => [l.name, l.key_id, l.owner])).toEqual([["shared", "key-a", undefined]]);
    expect((await s.create("key-b", { subdomain: "shared" })).tunnel.keyId).toBe("key-b");
    await s.delete("key-b", "shared");
    await s.releaseName("admin", "shared", true);
    expect(logged("name released")[1]).toMatchObject({ key_id: "admin", owner: "key-b" });
  });

  test("sweep removes tunnels idle past their deadline with their HCs; a renewed one stays; a failed removal is retried", async () => {
    const s = service();
    const idle = await s.create("key-a", {});
    const busy = await s.create("key-a", {});
    setNow(T0 + 7_200_000 - 1);
    expect(await s.sweep()).toBe(0);
    await s.renewToken("key-a", busy.tunnel.id, { sessionId: busy.tunnel.sessionId });
    setNow(T0 + 7_200_000); // the deadline itself
    setFailRelay("remove");
    expect(await s.sweep()).toBe(0);
    expect(logged("sweep remove failed").map((l) => l.tunnel_id)).toEqual([idle.tunnel.id]);
    expect(await registry.get(idle.tunnel.id)).toBeDefined();
    setFailRelay(undefined);
    expect(await s.sweep()).toBe(1);
    expect(await registry.get(idle.tunnel.id)).toBeUndefined();
    expect(hcExists(idle.tunnel.hcPath)).toBe(false);
    expect(await registry.get(busy.tunnel.id)).toBeDefined();
    expect(hcExists(busy.tunnel.hcPath)).toBe(true);
    expect(logged("tunnel expired").map((l) => [l.tunnel_id, l.key_id])).toEqual([[idle.tunnel.id, "key-a"]]);
  });
});

test("a Send token the binding fails to sign: 502 saying the keys are the problem", async () => {
  const s = new TunnelService({
    registry,
    provisioner,
    issuer: { issue: binding.issuer.issue, issueSend: () => Promise.reject(new Error("no key")), invalidate: () => {} },
    now: () => now,
  });
  const { tunnel } = await s.create("key-a", { tcp: { allow: [] } });
  expect(await apiError(s.connectToken("key-a", tunnel.id))).toEqual({
    status: 502,
    code: "relay_unavailable",
    message: "Relay unavailable: the gateway could not sign a listener token; check its access to the relay namespace keys, then retry.",
  });
});

test("without a logger every operation still works (logging is optional)", async () => {
  const s = new TunnelService({ registry, provisioner, issuer: binding.issuer, now: () => now });
  await s.create("key-a", { subdomain: "quiet" });
  await s.create("key-a", { subdomain: "quiet" }); // reclaim
  await s.delete("key-a", "quiet");
  await s.releaseName("key-a", "quiet");
  const idle = await s.create("key-a", {});
  const other = await s.create("key-a", {});
  setNow(now + 7_200_000);
  setFailRelay("remove");
  expect(await s.sweep()).toBe(0);
  setFailRelay(undefined);
  expect(await s.sweep()).toBe(2);
  expect([await registry.get(idle.tunnel.id), await registry.get(other.tunnel.id)]).toEqual([undefined, undefined]);
});
