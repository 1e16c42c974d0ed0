/**
 * The API-key store as an operator meets it (issue 18: mutation testing left the env / file /
 * vault merge, the readiness reasons, the logging of a failed refresh and the refresh timer
 * untested): which keys work, what /readyz says while a source cannot be read, what is logged,
 * when the store reads again. A real file on disk, a local Key Vault stand-in (test/support/keyvault.ts)
 * reached with a real TokenCredential; no key ever appears in a log line.
 */
import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { KEY_VAULT_SCOPE, keyIdOf, loadApiKeys, MIN_KEY_LENGTH, parseKeyList } from "../src/api/keys.ts";
import { rolePropagation } from "../src/control/propagation.ts";
import { createLogger } from "../src/log.ts";
import { vaultFixture } from "./support/keyvault.ts";
import { HttpTokenCredential } from "./support/token-server.ts";

const K1 = "first-key-aaaaaaaaaaaaaaaaaaaaaa";
const K2 = "second-key-bbbbbbbbbbbbbbbbbbbbb";
const K3 = "third-key-cccccccccccccccccccccc";
const K4 = "fourth-key-ddddddddddddddddddddd";
const JWT_SECRET = "keys-sources-jwt-secret";
const NO_KEYS = "no management API keys are configured: set AZHEXGATE_API_KEYS, --api-keys-file or a Key Vault secret";

const fx = vaultFixture(JWT_SECRET, "azhexgate-keys-sources-", KEY_VAULT_SCOPE);

type Line = { event: string; level: string; [k: string]: unknown };
function collect() {
  const raw: string[] = [];
  const log = createLogger({ format: "json", level: "debug", sink: (l) => raw.push(l) });
  const lines = () => raw.map((l) => JSON.parse(l) as Line);
  const named = (msg: string) => lines().filter((l) => l.event === msg);
  const noKeyLeaked = () => {
    for (const l of raw) for (const k of [K1, K2, K3, K4]) expect(l).not.toContain(k);
  };
  return { log, lines, named, noKeyLeaked };
}
const kv = (secretName: string) => ({ vaultUrl: fx.vault.url, secretName, credential: new HttpTokenCredential(fx.tokens) });
let n = 0;
const fileWith = (text: string | undefined) => {
  const f = join(fx.dir, `keys-${n++}.txt`);
  if (text !== undefined) writeFileSync(f, text);
  return f;
};
async function until(cond: () => boolean, what: string, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not in time`);
    await Bun.sleep(5);
  }
}

describe("the key list", () => {
  test("lengths: 16 to 512 characters; the sentence names the source and position, never the key", () => {
    expect(parseKeyList("a".repeat(MIN_KEY_LENGTH), "env")).toEqual(["a".repeat(16)]);
    expect(parseKeyList("b".repeat(512), "env")).toEqual(["b".repeat(512)]);
    for (const bad of ["a".repeat(15), "c".repeat(513), "with space-aaaaaaaaaaaa"]) {
      expect(() => parseKeyList(`${K1},${bad}`, "SRC")).toThrow(
        "API key #2 from SRC must be 16-512 characters without spaces; generate one with `openssl rand -base64 32`",
      );
    }
  });

  test("separators and comments per source", () => {
    expect(parseKeyList(`${K1},${K2}\n${K3}\r\n,,${K4}`, "vault")).toEqual([K1, K2, K3, K4]); // Key Vault: commas and newlines
    expect(parseKeyList(`${K1}\n  # a comment\n${K2} # rotated in May\n\n${K3}#not-a-comment`, "file", { comments: true, separators: /\r?\n/ })).toEqual([
      K1,
      K2,
      `${K3}#not-a-comment`,
    ]);
    expect(parseKeyList(`# ${K1}`, "file", { comments: true, separators: /\r?\n/ })).toEqual([]);
    expect(() => parseKeyList(`${K1} # c`, "env", { separators: /,/ })).toThrow("API key #1 from env"); // no comments outside files
  });
});

describe("sources merged", () => {
  test("env, file and Key Vault keys all work; a key in two sources counts once", async () => {
    fx.vault.secrets.set("merged", `${K3},${K1}`);
    const file = fileWith(`${K2}\n${K1}\n`);
    const keys = await loadApiKeys({ env: `${K1},${K4}`, file, keyVault: kv("merged"), refreshMs: 0 });
    expect(keys.size).toBe(4);
    for (const k of [K1, K2, K3, K4]) expect(keys.identify(k)).toBe(keyIdOf(k));
    expect(keys.unavailable).toBeUndefined();
    keys.stop();
  });

  test("an environment list is split on commas only", async () => {
    await expect(loadApiKeys({ env: `${K1}\n${K2}` })).rejects.toThrow("API key #1 from AZHEXGATE_API_KEYS must be 16-512 characters");
    const keys = await loadApiKeys({ env: ` ${K1} ,, ${K2} ` });
    expect([keys.size, keys.identify(K1), keys.identify(K2)]).toEqual([2, keyIdOf(K1), keyIdOf(K2)]);
    keys.stop();
  });

  test("no key anywhere refuses to start; the env keys alone start, with no source to wait for", async () => {
    await expect(loadApiKeys({})).rejects.toThrow(NO_KEYS);
    await expect(loadApiKeys({ file: fileWith("# nothing yet\n") })).rejects.toThrow(NO_KEYS);
    await expect(loadApiKeys({ waitForSources: true })).rejects.toThrow(NO_KEYS);
    await expect(loadApiKeys({ env: "" })).rejects.toThrow(TypeError);
    const keys = await loadApiKeys({ env: K1, waitForSources: true });
    expect(keys.unavailable).toBeUndefined();
    expect(keys.identify(K1)).toBe(keyIdOf(K1));
    keys.stop();
  });

  test("identify: an empty or over-long presented key is no key; a 512-character key works", async () => {
    const long = "L".repeat(512);
    const keys = await loadApiKeys({ env: `${K1},${long}` });
    expect(keys.identify(long)).toBe(keyIdOf(long));
    expect(keys.identify(`${long}L`)).toBeUndefined();
    expect(keys.identify("")).toBeUndefined();
    expect(keys.identify(K1.slice(0, -1))).toBeUndefined();
    keys.stop();
  });
});

describe("readiness while a source cannot be read (waitForSources)", () => {
  test("a missing file: not ready with the reason, warned once; the file appears → ready, logged", async () => {
    const file = fileWith(undefined);
    const { log, named, noKeyLeaked } = collect();
    const keys = await loadApiKeys({ env: K1, file, waitForSources: true, firstWaitMs: 2000, retry: { firstMs: 10, maxMs: 20 }, log });
    try {
      expect(keys.unavailable).toBe(`API keys not loaded: cannot read the API keys file ${file}: ENOENT`);
      expect(keys.identify(K1)).toBe(keyIdOf(K1));
      await Bun.sleep(150); // several retries with the same reason
      expect(named("api keys unavailable").map((l) => [l.level, l.reason])).toEqual([["warn", `API keys not loaded: cannot read the API keys file ${file}: ENOENT`]]);
      writeFileSync(file, `${K2}\n`);
      await until(() => keys.unavailable === undefined, "loaded");
      expect(keys.identify(K2)).toBe(keyIdOf(K2));
      expect(keys.identify(K1)).toBe(keyIdOf(K1));
      expect(named("api keys loaded").map((l) => [l.level, l.count, l.sources])).toEqual([["info", 2, `file ${file}`]]);
      noKeyLeaked();
    } finally {
      keys.stop();
    }
  });

  test("an empty source is a reason of its own, naming both sources", async () => {
    fx.vault.secrets.set("empty-one", " , ");
    const file = fileWith("# none yet\n");
    const { log, named } = collect();
    const keys = await loadApiKeys({ file, keyVault: kv("empty-one"), waitForSources: true, retry: { firstMs: 10, maxMs: 20 }, log });
    try {
      const why = `API keys not loaded: file ${file} and Key Vault secret "empty-one" holds no key; put the keys in it, comma or newline separated`;
      expect(keys.unavailable).toBe(why);
      await Bun.sleep(100);
      expect(named("api keys unavailable").map((l) => l.reason)).toEqual([why]);
      fx.vault.secrets.set("empty-one", K3);
      await until(() => keys.unavailable === undefined, "loaded");
      expect([keys.size, keys.identify(K3)]).toEqual([1, keyIdOf(K3)]);
    } finally {
      keys.stop();
    }
  });

  test("the reason changes with the failure and each change is warned once", async () => {
    const file = fileWith(undefined);
    const { log, named } = collect();
    const keys = await loadApiKeys({ env: K1, file, waitForSources: true, retry: { firstMs: 10, maxMs: 10 }, log });
    try {
      const missing = `API keys not loaded: cannot read the API keys file ${file}: ENOENT`;
      expect(keys.unavailable).toBe(missing);
      writeFileSync(file, "short\n");
      await until(() => keys.unavailable !== missing, "new reason");
      const bad = `API keys not loaded: API key #1 from ${file} must be 16-512 characters without spaces; generate one with \`openssl rand -base64 32\``;
      expect(keys.unavailable).toBe(bad);
      await Bun.sleep(60);
      expect(named("api keys unavailable").map((l) => l.reason)).toEqual([missing, bad]);
    } finally {
      keys.stop();
    }
  });

  test("a 403 while the role assignment may still be propagating says so; after the window it says what it is", async () => {
    fx.vault.secrets.set("rbac-one", K2);
    fx.vault.forbidden.add("rbac-one");
    const notes: string[] = [];
    let now = 0;
    const rp = rolePropagation({ windowMs: 60_000, now: () => now, log: (m) => notes.push(m) });
    const keys = await loadApiKeys({ env: K1, keyVault: kv("rbac-one"), waitForSources: true, retry: { firstMs: 10, maxMs: 10 }, rolePropagation: rp });
    try {
      expect(keys.unavailable).toBe('API keys not loaded: role assignment not yet effective (Key Vault 403 for secret "rbac-one"); retrying');
      expect(notes.length).toBe(1);
      now = 60_000;
      await until(() => !keys.unavailable?.includes("not yet effective"), "window over");
      expect(keys.unavailable).toMatch(/refused to read secret "rbac-one" \(403\); grant the gateway's identity the "Key Vault Secrets User" role$/);
      fx.vault.forbidden.delete("rbac-one");
      await until(() => keys.unavailable === undefined, "granted");
      expect(keys.identify(K2)).toBe(keyIdOf(K2));
    } finally {
      keys.stop();
    }
  });
});

describe("refreshing after the first load", () => {
  test("a failed refresh is a warning with the reason; the store stays ready on the last good set", async () => {
    const file = fileWith(`${K1}\n`);
    const { log, named, noKeyLeaked } = collect();
    const keys = await loadApiKeys({ file, refreshMs: 0, log });
    writeFileSync(file, "tiny\n");
    await keys.refresh();
    expect(named("api keys refresh failed").map((l) => [l.level, l.error])).toEqual([
      ["warn", `API key #1 from ${file} must be 16-512 characters without spaces; generate one with \`openssl rand -base64 32\``],
    ]);
    expect(named("api keys unavailable")).toEqual([]);
    expect(keys.unavailable).toBeUndefined();
    expect(keys.identify(K1)).toBe(keyIdOf(K1));
    writeFileSync(file, `${K2}\n${K3}\n`);
    await keys.refresh();
    expect(named("api keys refreshed").map((l) => [l.level, l.count])).toEqual([["debug", 2]]);
    expect(named("api keys loaded")).toEqual([]);
    noKeyLeaked();
    keys.stop();
  });

  test("refresh() while one is running joins it: one read", async () => {
    fx.vault.secrets.set("joined", K1);
    const keys = await loadApiKeys({ keyVault: kv("joined"), refreshMs: 0 });
    const before = fx.vault.statuses.length;
    const a = keys.refresh();
    const b = keys.refresh();
    expect(b).toBe(a);
    await a;
    expect(fx.vault.statuses.length).toBe(before + 1);
    await keys.refresh(); // …and a later one reads again
    expect(fx.vault.statuses.length).toBe(before + 2);
    keys.stop();
  });

  test("the timer re-reads every refreshMs; 0 never; stop() cancels the next read", async () => {
    const timed = fileWith(`${K1}\n`);
    const never = fileWith(`${K1}\n`);
    const a = await loadApiKeys({ file: timed, refreshMs: 300 });
    const b = await loadApiKeys({ file: never, refreshMs: 0 });
    writeFileSync(timed, `${K2}\n`);
    writeFileSync(never, `${K2}\n`);
    await until(() => a.identify(K2) !== undefined, "timed refresh");
    // the next read is ~300 ms away: stop now, then rotate
    a.stop();
    writeFileSync(timed, `${K3}\n`);
    await Bun.sleep(700);
    expect(a.identify(K3)).toBeUndefined();
    expect(b.identify(K2)).toBeUndefined();
    expect(b.identify(K1)).toBe(keyIdOf(K1));
    b.stop();
  });

  test("waitForSources with a file and no environment keys starts not ready instead of refusing", async () => {
    const file = fileWith(undefined);
    const keys = await loadApiKeys({ file, waitForSources: true, retry: { firstMs: 10, maxMs: 10 } });
    try {
      expect(keys.size).toBe(0);
      expect(keys.unavailable).toBe(`API keys not loaded: cannot read the API keys file ${file}: ENOENT`);
      writeFileSync(file, `${K4}\n`);
      await until(() => keys.unavailable === undefined, "loaded");
      expect(keys.identify(K4)).toBe(keyIdOf(K4));
    } finally {
      keys.stop();
    }
  });

  test("a bad Key Vault URL is refused at start even when waiting for sources (configuration, not availability)", async () => {
    await expect(loadApiKeys({ env: K1, keyVault: { ...kv("x"), vaultUrl: "http://vault.example.net" }, waitForSources: true })).rejects.toThrow(
      'Key Vault URL "http://vault.example.net" must use https',
    );
  });

  test("while unavailable the retries back off (first delay, doubling, capped), then the normal period resumes", async () => {
    fx.vault.secrets.delete("backoff-one");
    const keys = await loadApiKeys({ env: K1, keyVault: kv("backoff-one"), waitForSources: true, retry: { firstMs: 40, maxMs: 160 }, refreshMs: 60_000 });
    try {
      const start = fx.vault.statuses.length;
      const t0 = Date.now();
      await until(() => fx.vault.statuses.length - start >= 4, "four retries", 10_000);
      // retries after 40, 80, 160, 160 ms (cumulative ≥ 440 ms); a fixed 40 ms would be ~160 ms
      expect(Date.now() - t0).toBeGreaterThanOrEqual(400);
      fx.vault.secrets.set("backoff-one", K2);
      await until(() => keys.unavailable === undefined, "loaded", 10_000);
      const reads = fx.vault.statuses.length;
      await Bun.sleep(400); // the 60 s period now: no more reads
      expect(fx.vault.statuses.length).toBe(reads);
    } finally {
      keys.stop();
    }
  });
});
