/**
 * The tunnel service's rules without HTTP (issue 18: src/api/tunnels.ts was only tested through
 * the API, too slow to run per mutant): names, ids, lifetimes, quotas, reclaim, renew, connect
 * tokens, release, sweep, and the 502 when the relay fails. Real parts: an in-memory SQLite
 * registry and the local relay binding on a relay emulator (loopback); time is injected.
 */
import { describe, expect, test } from "bun:test";
import { ApiError } from "../src/api/errors.ts";
import { DEFAULT_IDLE_TTL_MS, RANDOM_ID, randomTunnelId, RESERVED_WORDS, validateSubdomain } from "../src/api/tunnels.ts";
import { T0, emu, registry, setNow, setFailRelay, useTunnelServiceFixture, service, apiError, logged, hcExists } from "./support/tunnel-service.ts";

useTunnelServiceFixture();

describe("names", () => {
  const SHAPE = "subdomain must be 3-40 characters of a-z, 0-9 and '-', starting and ending with a letter or digit.";
  const table: Array<[string, string]> = [
    ["abc", "abc"],
    ["My-App", "my-app"],
    ["a".repeat(40), "a".repeat(40)],
    ["a1b", "a1b"],
    ["abcdefghijklm", "abcdefghijklm"], // 13 letters, no digit: not a random id
    ["abcdefghijk23x", "abcdefghijk23x"], // 14 characters
    ["abcdefghij2", "abcdefghij2"], // 11 characters
    ["a-b", "a-b"],
    ["abcdefghijk89", "abcdefghijk89"], // 8 and 9 are not base32 digits
    ["123abc", "123abc"], // digits first, then letters
  ];
  for (const [name, want] of table) test(`${name} is accepted as ${want}`, () => expect(validateSubdomain(name)).toBe(want));

  const refused: Array<[string, string]> = [
    ["ab", SHAPE],
    ["a".repeat(41), SHAPE],
    ["-abc", SHAPE],
    ["abc-", SHAPE],
    ["ab_c", SHAPE],
    ["ab.c", SHAPE],
    ["", SHAPE],
    ["123", "subdomain cannot be all digits (those are random tunnel ids); add a letter."],
    ["abcdefghijkl2", "subdomain cannot have the shape of a random tunnel id (13 characters of a-z and 2-7 with a digit); make it longer or shorter."],
    ["ABCDEFGHIJKL7", "subdomain cannot have the shape of a random tunnel id (13 characters of a-z and 2-7 with a digit); make it longer or shorter."],
    ["xn--abc", "subdomain cannot contain '--' (reserved for punycode and internal names)."],
    ["API", 'subdomain "api" is reserved; pick another name.'],
    ["azhexgate", 'subdomain "azhexgate" is reserved; pick another name.'],
    ["readyz", 'subdomain "readyz" is reserved; pick another name.'],
  ];
  for (const [name, message] of refused) {
    test(`${JSON.stringify(name)} is refused: ${message}`, () => {
      let err: unknown;
      try {
        validateSubdomain(name);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ApiError);
      expect([(err as ApiError).status, (err as ApiError).code, (err as ApiError).message, (err as ApiError).extra.field]).toEqual([400, "invalid_request", message, "subdomain"]);
    });
  }

  test("reserved words are single lower-case labels", () => {
    expect(RESERVED_WORDS.size).toBeGreaterThan(40);
    for (const w of RESERVED_WORDS) expect(w).toMatch(/^[a-z0-9]+$/);
    for (const w of ["www", "login", "test", "localhost", "tunnels"]) expect(RESERVED_WORDS.has(w)).toBe(true);
  });

  test("random ids: 13 base32 characters with at least one digit, all different", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 300; i++) {
      const id = randomTunnelId();
      expect(id).toMatch(/^[a-z2-7]{13}$/);
      expect(id).toMatch(/[2-7]/);
      expect(RANDOM_ID.test(id)).toBe(true);
      seen.add(id);
    }
    expect(seen.size).toBe(300);
    expect(RANDOM_ID.test("abcdefghijklm")).toBe(false);
    expect(RANDOM_ID.test("abcdefghijk2")).toBe(false);
    expect(RANDOM_ID.test("abcdefghijkl22")).toBe(false);
  });
});

describe("lifetimes", () => {
  test("token TTL 5 s to 7 days, whole seconds; idle TTL defaults to max(2 h, 2 × token TTL) and may not be shorter", () => {
    expect(service().tokenTtlSeconds).toBe(3600);
    expect(service().idleTtlMs).toBe(DEFAULT_IDLE_TTL_MS);
    expect(DEFAULT_IDLE_TTL_MS).toBe(7_200_000);
    expect(service({ tokenTtlSeconds: 5 }).idleTtlMs).toBe(7_200_000);
    expect(service({ tokenTtlSeconds: 604_800 }).idleTtlMs).toBe(2 * 604_800_000);
    expect(service({ tokenTtlSeconds: 60, idleTtlMs: 120_000 }).idleTtlMs).toBe(120_000);
    for (const t of [4, 604_801, 5.5, Number.NaN]) {
      expect(() => service({ tokenTtlSeconds: t })).toThrow(`listener token TTL ${t}s is out of range: use 5 to 604800 seconds`);
    }
    expect(() => service({ tokenTtlSeconds: 60, idleTtlMs: 119_999 })).toThrow("tunnel idle TTL (119999 ms) must be at least twice the listener token TTL (60 s)");
    expect(() => service({ idleTtlMs: Number.NaN })).toThrow(TypeError);
  });
});

describe("create", () => {
  test("a random tunnel: its record, its hybrid connection, a listener token for the TTL", async () => {
    const s = service({ tokenTtlSeconds: 600 });
    const r = await s.create("key-a", { localPort: 3000 });
    expect(r.tunnel).toMatchObject({ keyId: "key-a", reserved: false, localPort: 3000, createdAt: T0, lastSeenAt: T0, expiresAt: T0 + 7_200_000 });
    expect(r.tunnel.id).toMatch(RANDOM_ID);
    expect(r.tunnel.hcPath).toBe(`hc-${r.tunnel.id}`);
    expect(r.tunnel.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    expect("policy" in r.tunnel || "tcp" in r.tunnel).toBe(false);
    expect(hcExists(r.tunnel.hcPath)).toBe(true);
    expect(r.token).toContain(`skn=`);
    expect(r.tokenExpiresAt).toBe(T0 + 600_000);
    expect(await registry.get(r.tunnel.id)).toEqual(r.tunnel);
    expect(logged("tunnel created").map((l) => [l.tunnel_id, l.key_id, l.reserved])).toEqual([[r.tunnel.id, "key-a", false]]);
  });

  test("policy and TCP settings are stored when given", async () => {
    const r = await service().create("key-a", { policy: { maxStreams: 3 }, tcp: { allow: ["key-b"] } });
    expect((await registry.get(r.tunnel.id))).toMatchObject({ policy: { maxStreams: 3 }, tcp: { allow: ["key-b"] } });
  });

  test("an id collision draws again, up to 16 times; then 500 internal", async () => {
    const taken = (await service().create("key-a", {})).tunnel.id;
    let draws = 0;
    const r = await service({ randomId: () => (++draws < 16 ? taken : "zzzzzzzzzzzz2") }).create("key-b", {});
    expect([r.tunnel.id, draws]).toEqual(["zzzzzzzzzzzz2", 16]);
    draws = 0;
    const failed = service({ randomId: () => (draws++, taken) }).create("key-b", {});
    expect(await apiError(failed)).toEqual({ status: 500, code: "internal", message: "Could not allocate a tunnel id; try again." });
    expect(((await failed.catch((e: Error) => e)) as Error).cause).toEqual(new Error("16 id collisions in a row")); // logged by the API boundary
    expect(draws).toBe(16);
  });

  test("a reserved name: the owner keeps it; another key gets 409; the owner asking again reclaims it", async () => {
    const s = service();
    const first = await s.create("key-a", { subdomain: "Demo-App", localPort: 1 });
    expect(first.tunnel).toMatchObject({ id: "demo-app", hcPath: "hc-demo-app", reserved: true });
    expect(await apiError(s.create("key-b", { subdomain: "demo-app" }))).toEqual({
      status: 409,
      code: "subdomain_taken",
      message: 'subdomain "demo-app" is reserved by another API key; pick another name.',
    });
    const oldKey = emu.entities.get("hc-demo-app")!.rules.get([...emu.entities.get("hc-demo-app")!.rules.keys()][0]!)!.primaryKey;
    setNow(T0 + 5000);
    const again = await s.create("key-a", { subdomain: "demo-app", localPort: 2, tcp: { allow: [] } });
    expect(again.tunnel.sessionId).not.toBe(first.tunnel.sessionId);
    expect(again.tunnel).toMatchObject({ id: "demo-app", localPort: 2, lastSeenAt: T0 + 5000, expiresAt: T0 + 5000 + 7_200_000, createdAt: T0, tcp: { allow: [] } });
    const newKey = emu.entities.get("hc-demo-app")!.rules.get([...emu.entities.get("hc-demo-app")!.rules.keys()][0]!)!.primaryKey;
    expect(newKey).not.toBe(oldKey); // the stale agent's tokens are dead
    expect(again.tokenExpiresAt).toBe(T0 + 5000 + 3_600_000);
    expect(logged("tunnel reclaimed").map((l) => [l.tunnel_id, l.key_id])).toEqual([["demo-app", "key-a"]]);
  });

  test("a reclaim race (the record changed under the owner): 409 with Retry-After, the mark clients retry on", async () => {
    await service().create("key-a", { subdomain: "racy" });
    // the record vanishes between create's insert and reclaim's read (another request deleted it)
    const racing = new Proxy(registry, {
      get: (t, p) => (p === "get" ? async () => undefined : typeof Reflect.get(t, p) === "function" ? (Reflect.get(t, p) as Function).bind(t) : Reflect.get(t, p)),
    });
    const e = await service({ registry: racing }).create("key-a", { subdomain: "racy" }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ApiError);
    expect(e).toMatchObject({ status: 409, code: "subdomain_taken", extra: { headers: { "retry-after": "1" } } });
    // the lasting refusal (another key's name) carries no Retry-After
    const lasting = await service().create("key-b", { subdomain: "racy" }).catch((x: unknown) => x);
    expect(lasting).toMatchObject({ status: 409, code: "subdomain_taken" });
    expect((lasting as ApiError).extra.headers).toBeUndefined();
  });

  test("a reserved name whose tunnel was deleted can be created again by its owner", async () => {
    const s = service();
    await s.create("key-a", { subdomain: "keep-me" });
    await s.delete("key-a", "keep-me");
    expect(hcExists("hc-keep-me")).toBe(false);
    const r = await s.create("key-a", { subdomain: "keep-me" });
    expect(r.tunnel.reserved).toBe(true);
    expect(await apiError(s.create("key-b", { subdomain: "keep-me" }))).toMatchObject({ status: 409, code: "subdomain_taken" });
  });

  test("quota per key: the limit counts held tunnels; reclaiming one's own name is not a new one; 0 = no limit", async () => {
    const s = service({ maxTunnelsPerKey: 2 });
    await s.create("key-a", {});
    await s.create("key-a", { subdomain: "mine" });
    expect(await apiError(s.create("key-a", {}))).toEqual({
      status: 429,
      code: "tunnel_quota",
      message: "This API key already holds 2 tunnel(s), its limit (AZHEXGATE_MAX_TUNNELS_PER_KEY=2); stop or delete one (azhexgate tunnels delete) and try again.",
    });
    expect((await s.create("key-a", { subdomain: "mine" })).tunnel.id).toBe("mine");
    await s.create("key-b", {}); // another key has its own count
    const free = service({ maxTunnelsPerKey: 0 });
    for (let i = 0; i < 3; i++) await free.create("key-a", {});
    expect((await registry.list({ keyId: "key-a" })).length).toBe(5);
  });

  test("the relay failing: 502 relay_unavailable saying what to check; nothing is kept", async () => {
    setFailRelay("ensure");
    expect(await apiError(service().create("key-a", { subdomain: "broken" }))).toEqual({
      status: 502,
      code: "relay_unavailable",
      message: "Relay unavailable: the gateway could not reach the relay to manage the hybrid connection; check the relay namespace and the gateway's role assignment, then retry.",
    });
    expect(await registry.get("broken")).toBeUndefined();
    const cause = ((await service().create("key-a", {}).catch((e: Error) => e)) as Error).cause;
    expect(cause).toEqual(new Error("relay down")); // the boundary logs it
    setFailRelay("issue");
    expect(await apiError(service().create("key-a", {}))).toEqual({
      status: 502,
      code: "relay_unavailable",
      message: "Relay unavailable: the gateway could not sign a listener token; check its access to the relay namespace keys, then retry.",
    });
    expect(await registry.list()).toEqual([]);
  });
});
