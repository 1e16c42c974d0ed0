/**
 * One TunnelRegistry conformance suite, run against every store: SQLite (a file in a temp dir)
 * and a real redis-server. Plus what only one store has: SQLite restart, Redis shared view and
 * connection errors, and `openRegistry` spec parsing.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openRegistry } from "../src/registry/index.ts";
import { openRedisRegistry } from "../src/registry/redis.ts";
import { openSqliteRegistry } from "../src/registry/sqlite.ts";
import type { TunnelRecord, TunnelRegistry } from "../src/registry/types.ts";
import { redisServerPath, startRedis, type RedisServer } from "./support/redis.ts";

const T0 = 1_760_000_000_000;

function rec(id: string, over: Partial<TunnelRecord> = {}): TunnelRecord {
  return {
    id,
    keyId: "key-a",
    hcPath: `hc-${id}`,
    reserved: false,
    sessionId: `sess-${id}`,
    createdAt: T0,
    lastSeenAt: T0,
    expiresAt: T0 + 60_000,
    ...over,
  };
}

const ids = (rs: TunnelRecord[]) => rs.map((r) => r.id);

function registrySuite(name: string, factory: () => Promise<TunnelRegistry>): void {
  describe(`TunnelRegistry conformance: ${name}`, () => {
    let reg: TunnelRegistry;
    const open = async () => (reg = await factory());
    afterEach(async () => {
      await reg?.close();
    });

    test("records round-trip every field; localPort absent stays absent", async () => {
      await open();
      const full = rec("12345678", { reserved: true, localPort: 3000, keyId: "k-\u00e9/1", sessionId: "s:1" });
      const bare = rec("87654321", { createdAt: 1, lastSeenAt: 2, expiresAt: Number.MAX_SAFE_INTEGER });
      expect(await reg.create(full)).toBe(true);
      expect(await reg.create(bare)).toBe(true);
      expect(await reg.get("12345678")).toEqual(full);
      const got = await reg.get("87654321");
      expect(got).toEqual(bare);
      expect(got !== undefined && "localPort" in got).toBe(false);
      expect(await reg.get("00000000")).toBeUndefined();
    });

    test("an access policy round-trips, is replaced by update and cleared by an undefined patch", async () => {
      await open();
      const policy = { basicAuth: [{ user: "ann", salt: "c2FsdA", hash: "aGFzaA" }], allowIps: ["10.0.0.0/8"], entra: { tenants: [], groups: ["g"] }, rateLimit: { perSecond: 5, burst: 10 }, maxStreams: 3, bandwidth: 65536 };
      const withPolicy = rec("44444444", { policy });
      expect(await reg.create(withPolicy)).toBe(true);
      expect(await reg.get("44444444")).toEqual(withPolicy);
      expect((await reg.list({ keyId: withPolicy.keyId })).find((r) => r.id === "44444444")?.policy).toEqual(policy);
      expect((await reg.update("44444444", { policy: { maxStreams: 1 } }))?.policy).toEqual({ maxStreams: 1 });
      const cleared = await reg.update("44444444", { policy: undefined });
      expect(cleared !== undefined && "policy" in cleared).toBe(false);
      expect((await reg.get("44444444"))?.policy).toBeUndefined();
    });

    test("TCP settings (issue 16) round-trip and are cleared by an undefined patch", async () => {
      await open();
      const tcp = rec("55555555", { tcp: { allow: ["k1", "user:t:o"] } });
      expect(await reg.create(tcp)).toBe(true);
      expect(await reg.get("55555555")).toEqual(tcp);
      expect((await reg.update("55555555", { tcp: { allow: [] } }))?.tcp).toEqual({ allow: [] });
      const cleared = await reg.update("55555555", { tcp: undefined });
      expect(cleared !== undefined && "tcp" in cleared).toBe(false);
    });

    test("create on a taken id returns false and keeps the first record", async () => {
      await open();
      expect(await reg.create(rec("11111111"))).toBe(true);
      expect(await reg.create(rec("11111111", { keyId: "key-b", sessionId: "other" }))).toBe(false);
      expect(await reg.get("11111111")).toEqual(rec("11111111"));
      expect(await reg.list({ keyId: "key-b" })).toEqual([]);
    });

    test("20 concurrent creates of one id: exactly one wins, and its record is stored", async () => {
      await open();
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => reg.create(rec("22222222", { keyId: `key-${i}`, sessionId: `s${i}` }))),
      );
      expect(results.filter(Boolean)).toHaveLength(1);
      const winner = results.indexOf(true);
      expect(await reg.get("22222222")).toEqual(rec("22222222", { keyId: `key-${winner}`, sessionId: `s${winner}` }));
      expect(await reg.list()).toHaveLength(1);
    });

    test("update applies a patch, moves owner and expiry indexes; missing id → undefined", async () => {
      await open();
      await reg.create(rec("33333333", { localPort: 8080 }));
      const next = await reg.update("33333333", { sessionId: "s2", lastSeenAt: T0 + 5, expiresAt: T0 + 10 });
      expect(next).toEqual(rec("33333333", { localPort: 8080, sessionId: "s2", lastSeenAt: T0 + 5, expiresAt: T0 + 10 }));
      expect(await reg.get("33333333")).toEqual(next);
      expect(ids(await reg.expired(T0 + 10))).toEqual(["33333333"]);
      await reg.update("33333333", { expiresAt: T0 + 100 });
      expect(await reg.expired(T0 + 10)).toEqual([]);
      await reg.update("33333333", { keyId: "key-b" });
      expect(await reg.list({ keyId: "key-a" })).toEqual([]);
      expect(ids(await reg.list({ keyId: "key-b" }))).toEqual(["33333333"]);
      const cleared = await reg.update("33333333", { localPort: undefined });
      expect(cleared !== undefined && "localPort" in cleared).toBe(false);
      expect((await reg.get("33333333"))?.localPort).toBeUndefined();
      expect(await reg.update("33333333", {})).toEqual(cleared);
      const sneaky = { id: "changed", bogus: 1, sessionId: "s3" } as unknown as Partial<TunnelRecord>;
      expect(await reg.update("33333333", sneaky)).toEqual({ ...cleared!, sessionId: "s3" });
      expect(await reg.get("changed")).toBeUndefined();
      expect(await reg.update("99999999", { sessionId: "x" })).toBeUndefined();
      expect(await reg.get("99999999")).toBeUndefined();
    });

    test("delete removes a tunnel from get, list and expired; second delete → false", async () => {
      await open();
      await reg.create(rec("44444444", { expiresAt: T0 }));
      await reg.create(rec("55555555", { expiresAt: T0 }));
      expect(await reg.delete("44444444")).toBe(true);
      expect(await reg.delete("44444444")).toBe(false);
      expect(await reg.get("44444444")).toBeUndefined();
      expect(ids(await reg.list())).toEqual(["55555555"]);
      expect(ids(await reg.list({ keyId: "key-a" }))).toEqual(["55555555"]);
      expect(ids(await reg.expired(T0))).toEqual(["55555555"]);
      expect(await reg.create(rec("44444444"))).toBe(true);
    });

    test("list: all, by owner, unknown owner; ordered by creation", async () => {
      await open();
      expect(await reg.list()).toEqual([]);
      await reg.create(rec("30000000", { createdAt: T0 + 3 }));
      await reg.create(rec("10000000", { createdAt: T0 + 1, keyId: "key-b" }));
      await reg.create(rec("20000000", { createdAt: T0 + 2 }));
      expect(ids(await reg.list())).toEqual(["10000000", "20000000", "30000000"]);
      expect(ids(await reg.list({}))).toEqual(["10000000", "20000000", "30000000"]);
      expect(await reg.list({ keyId: "key-a" })).toEqual([rec("20000000", { createdAt: T0 + 2 }), rec("30000000", { createdAt: T0 + 3 })]);
      expect(ids(await reg.list({ keyId: "key-b" }))).toEqual(["10000000"]);
      expect(await reg.list({ keyId: "nobody" })).toEqual([]);
    });

    test("expired(now): expiresAt at or before now, never after", async () => {
      await open();
      await reg.create(rec("60000001", { expiresAt: T0 - 1 }));
      await reg.create(rec("60000002", { expiresAt: T0 }));
      await reg.create(rec("60000003", { expiresAt: T0 + 1 }));
      expect(await reg.expired(T0 - 2)).toEqual([]);
      expect(ids(await reg.expired(T0 - 1))).toEqual(["60000001"]);
      expect(ids(await reg.expired(T0)).sort()).toEqual(["60000001", "60000002"]);
      expect(ids(await reg.expired(T0 + 1)).sort()).toEqual(["60000001", "60000002", "60000003"]);
      expect((await reg.expired(T0)).find((r) => r.id === "60000002")).toEqual(rec("60000002", { expiresAt: T0 }));
    });

    test("claimName: first claim wins, idempotent for the owner, taken for others", async () => {
      await open();
      expect(await reg.nameOwner("my-app")).toBeUndefined();
      expect(await reg.claimName("my-app", "key-a")).toBe("ok");
      expect(await reg.claimName("my-app", "key-a")).toBe("ok");
      expect(await reg.claimName("my-app", "key-b")).toBe("taken");
      expect(await reg.nameOwner("my-app")).toBe("key-a");
      expect(await reg.claimName("other-app", "key-b")).toBe("ok");
      expect(await reg.nameOwner("other-app")).toBe("key-b");
      // A name outlives its tunnel.
      await reg.create(rec("my-app", { reserved: true }));
      await reg.delete("my-app");
      expect(await reg.claimName("my-app", "key-b")).toBe("taken");
      expect(await reg.nameOwner("my-app")).toBe("key-a");
    });

    test("releaseName: only the owner frees a name; then another key may claim it", async () => {
      await open();
      expect(await reg.claimName("free-me", "key-a")).toBe("ok");
      expect(await reg.releaseName("free-me", "key-b")).toBe(false);
      expect(await reg.nameOwner("free-me")).toBe("key-a");
      expect(await reg.releaseName("free-me", "key-a")).toBe(true);
      expect(await reg.releaseName("free-me", "key-a")).toBe(false);
      expect(await reg.nameOwner("free-me")).toBeUndefined();
      expect(await reg.claimName("free-me", "key-b")).toBe("ok");
    });

    test("20 concurrent claims of one name by different keys: exactly one ok", async () => {
      await open();
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => reg.claimName("race", `key-${i}`)));
      expect(results.filter((r) => r === "ok")).toHaveLength(1);
      expect(results.filter((r) => r === "taken")).toHaveLength(19);
      expect(await reg.nameOwner("race")).toBe(`key-${results.indexOf("ok")}`);
    });
  });
}

// ---- SQLite ----

const tmp = mkdtempSync(join(tmpdir(), "azhexgate-registry-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let fileNo = 0;
const nextDbPath = () => join(tmp, `db-${++fileNo}`, "nested", "registry.db");

registrySuite("sqlite file", async () => openSqliteRegistry(nextDbPath()));
registrySuite("sqlite :memory:", async () => openSqliteRegistry(":memory:"));

describe("sqlite registry", () => {
  test("a registry file from before tunnel policies gets the column and keeps its tunnels", async () => {
    const path = nextDbPath();
    const { Database } = await import("bun:sqlite");
    require("node:fs").mkdirSync(require("node:path").dirname(path), { recursive: true });
    const old = new Database(path, { create: true });
    old.run(`CREATE TABLE tunnels (id TEXT PRIMARY KEY, key_id TEXT NOT NULL, hc_path TEXT NOT NULL, reserved INTEGER NOT NULL,
      session_id TEXT NOT NULL, local_port INTEGER, created_at INTEGER NOT NULL, last_seen_at INTEGER NOT NULL, expires_at INTEGER NOT NULL)`);
    old.run("INSERT INTO tunnels VALUES ('60000001', 'key-a', 'hc-60000001', 0, 's', NULL, 1, 2, 3)");
    old.close();
    const reg = openSqliteRegistry(path);
    try {
      expect((await reg.get("60000001"))?.policy).toBeUndefined();
      expect((await reg.update("60000001", { policy: { maxStreams: 2 } }))?.policy).toEqual({ maxStreams: 2 });
    } finally {
      await reg.close();
    }
  });

  test("a reopened file keeps every tunnel and name (gateway restart)", async () => {
    const path = nextDbPath();
    const a = openSqliteRegistry(path);
    await a.create(rec("70000001", { localPort: 5173 }));
    await a.create(rec("keep-me", { reserved: true, keyId: "key-b" }));
    await a.claimName("keep-me", "key-b");
    await a.close();
    await a.close(); // idempotent
    const b = openSqliteRegistry(path);
    try {
      expect(await b.list()).toEqual([rec("70000001", { localPort: 5173 }), rec("keep-me", { reserved: true, keyId: "key-b" })]);
      expect(await b.nameOwner("keep-me")).toBe("key-b");
      expect(await b.claimName("keep-me", "key-a")).toBe("taken");
      expect(await b.create(rec("70000001"))).toBe(false);
    } finally {
      await b.close();
    }
  });

  test("two connections on one file see each other's writes", async () => {
    const path = nextDbPath();
    const a = openSqliteRegistry(path);
    const b = openSqliteRegistry(path);
    try {
      expect(await a.create(rec("80000001"))).toBe(true);
      expect(await b.create(rec("80000001"))).toBe(false);
      expect(await b.get("80000001")).toEqual(rec("80000001"));
      expect(await b.claimName("shared", "key-b")).toBe("ok");
      expect(await a.claimName("shared", "key-a")).toBe("taken");
      expect(await b.update("80000001", { sessionId: "s2" })).toBeDefined();
      expect((await a.get("80000001"))?.sessionId).toBe("s2");
    } finally {
      await a.close();
      await b.close();
    }
  });
});

// ---- Redis ----

const noRedis = redisServerPath === null;
const skipReason = "redis-server is not installed (apt-get install -y redis-server)";
if (noRedis) console.warn(`registry.test.ts: skipping the Redis half: ${skipReason}`);

let redis: RedisServer | undefined;
beforeAll(async () => {
  if (!noRedis) redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});
let prefixNo = 0;
const nextPrefix = () => `t${++prefixNo}-${crypto.randomUUID().slice(0, 8)}:`;

if (!noRedis) {
  registrySuite("redis", async () => openRedisRegistry(redis!.url, { prefix: nextPrefix() }));
  registrySuite("redis (db 2 in the URL)", async () => openRedisRegistry(`${redis!.url}/2`, { prefix: nextPrefix() }));
}

describe.skipIf(noRedis)(`redis registry${noRedis ? ` (skipped: ${skipReason})` : ""}`, () => {
  test("two instances on one server see each other's tunnels and names at once", async () => {
    const prefix = nextPrefix();
    const a = await openRedisRegistry(redis!.url, { prefix });
    const b = await openRedisRegistry(redis!.url, { prefix });
    const other = await openRedisRegistry(redis!.url, { prefix: nextPrefix() });
    try {
      expect(await a.create(rec("90000001", { localPort: 80 }))).toBe(true);
      expect(await b.get("90000001")).toEqual(rec("90000001", { localPort: 80 }));
      expect(await b.create(rec("90000001"))).toBe(false);
      expect(await b.claimName("shared", "key-b")).toBe("ok");
      expect(await a.claimName("shared", "key-a")).toBe("taken");
      expect(await a.nameOwner("shared")).toBe("key-b");
      await b.update("90000001", { sessionId: "s2", expiresAt: T0 });
      expect((await a.get("90000001"))?.sessionId).toBe("s2");
      expect(ids(await a.expired(T0))).toEqual(["90000001"]);
      const racers = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).create(rec("90000002", { sessionId: `s${i}` }))));
      expect(racers.filter(Boolean)).toHaveLength(1);
      expect(await b.delete("90000001")).toBe(true);
      expect(await a.get("90000001")).toBeUndefined();
      // A different prefix is a different registry on the same server.
      expect(await other.list()).toEqual([]);
      expect(await other.nameOwner("shared")).toBeUndefined();
    } finally {
      await Promise.all([a.close(), b.close(), other.close()]);
    }
  });

  test("keys live under the prefix, with the documented layout", async () => {
    const prefix = nextPrefix();
    const reg = await openRedisRegistry(redis!.url, { prefix });
    const { RedisClient } = await import("bun");
    const raw = new RedisClient(redis!.url);
    try {
      await reg.create(rec("91000001"));
      await reg.claimName("named", "key-a");
      const keys = ((await raw.send("KEYS", [`${prefix}*`])) as string[]).sort();
      expect(keys).toEqual([`${prefix}expiry`, `${prefix}name:named`, `${prefix}owner:key-a`, `${prefix}tunnel:91000001`]);
      expect(await raw.send("ZSCORE", [`${prefix}expiry`, "91000001"])).toEqual(expect.anything());
      await reg.delete("91000001");
      expect(((await raw.send("KEYS", [`${prefix}*`])) as string[]).sort()).toEqual([`${prefix}name:named`]);
    } finally {
      raw.close();
      await reg.close();
    }
  });

  test("scripts are reloaded after SCRIPT FLUSH (NOSCRIPT fallback)", async () => {
    const reg = await openRedisRegistry(redis!.url, { prefix: nextPrefix() });
    const { RedisClient } = await import("bun");
    const raw = new RedisClient(redis!.url);
    try {
      expect(await reg.create(rec("92000001"))).toBe(true);
      await raw.send("SCRIPT", ["FLUSH"]);
      expect(await reg.create(rec("92000001"))).toBe(false);
      expect(await reg.claimName("after-flush", "key-a")).toBe("ok");
    } finally {
      raw.close();
      await reg.close();
    }
  });

});

// Needs no server: the port is closed on purpose.
describe("redis registry connection errors", () => {
  test("a refused connection fails fast with a clear error naming the URL without its password", async () => {
    const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = probe.port;
    probe.stop(true);
    const url = `redis://someone:hunter2-secret@127.0.0.1:${port}/0`;
    const started = performance.now();
    const err = await openRedisRegistry(url, { connectTimeoutMs: 5_000 }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err).toBeInstanceOf(Error);
    expect(err!.message).toContain(`cannot connect to Redis at redis://someone:***@127.0.0.1:${port}/0`);
    expect(err!.message).not.toContain("hunter2");
    expect(performance.now() - started).toBeLessThan(6_000);
    // Through openRegistry too.
    await expect(openRegistry(url, { connectTimeoutMs: 5_000 })).rejects.toThrow(/cannot connect to Redis/);
  });
});

// ---- openRegistry ----

describe("openRegistry spec", () => {
  test("parses sqlite paths, :memory: and Redis URLs", async () => {
    const { parseRegistrySpec } = await import("../src/registry/index.ts");
    expect(parseRegistrySpec(":memory:")).toEqual({ kind: "sqlite", path: ":memory:" });
    expect(parseRegistrySpec("sqlite::memory:")).toEqual({ kind: "sqlite", path: ":memory:" });
    expect(parseRegistrySpec("sqlite:/var/lib/x.db")).toEqual({ kind: "sqlite", path: "/var/lib/x.db" });
    expect(parseRegistrySpec("sqlite:///var/lib/x.db")).toEqual({ kind: "sqlite", path: "/var/lib/x.db" });
    expect(parseRegistrySpec("./data/registry.db")).toEqual({ kind: "sqlite", path: "./data/registry.db" });
    expect(parseRegistrySpec("C:\\data\\registry.db")).toEqual({ kind: "sqlite", path: "C:\\data\\registry.db" });
    expect(parseRegistrySpec("redis://h:6379/1")).toEqual({ kind: "redis", url: "redis://h:6379/1" });
    expect(parseRegistrySpec("rediss://:pw@h:6380")).toEqual({ kind: "redis", url: "rediss://:pw@h:6380" });
  });

  test("bad specs throw a TypeError that says what to write (and never echoes a password)", async () => {
    for (const bad of ["", "   ", "postgres://u:pw-secret@h/db", "mysql:x", "sqlite:", "http://example.com"]) {
      let err: unknown;
      try {
        await openRegistry(bad);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(TypeError);
      expect((err as Error).message).toContain('Redis URL ("redis://host:6379"');
      expect((err as Error).message).not.toContain("pw-secret");
    }
  });

  test("opens SQLite (file and :memory:) and Redis", async () => {
    const path = nextDbPath();
    for (const spec of [":memory:", path, `sqlite:${path}`]) {
      const reg = await openRegistry(spec);
      try {
        await reg.create(rec(`9300000${spec.length % 10}`));
        expect(await reg.list()).not.toEqual([]);
      } finally {
        await reg.close();
      }
    }
    if (noRedis) return;
    const reg = await openRegistry(redis!.url, { prefix: nextPrefix() });
    try {
      expect(await reg.create(rec("93100001"))).toBe(true);
      expect(await reg.get("93100001")).toEqual(rec("93100001"));
    } finally {
      await reg.close();
    }
  });
});
