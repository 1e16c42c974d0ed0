/**
 * API-key refresh after the first load (issue 18): a refresh that fails at once must not stop
 * every later refresh (rotation and revocation would silently end until a restart), and a refresh
 * that finds no key must keep the loaded keys (an emptied file or secret must not lock every
 * operator out) and say so in the log. Both failed on the code before the fix. And a vault that
 * never answers must not hold the gateway's start.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { keyIdOf, loadApiKeys } from "../src/api/keys.ts";
import { createLogger } from "../src/log.ts";
import { HttpTokenCredential, startTokenServer } from "./support/token-server.ts";

const K1 = "first-key-aaaaaaaaaaaaaaaaaaaaaa";
const K2 = "second-key-bbbbbbbbbbbbbbbbbbbbb";
const K3 = "third-key-cccccccccccccccccccccc";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "azhexgate-keys-refresh-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function collect() {
  const lines: string[] = [];
  return { lines, log: createLogger({ format: "json", level: "debug", sink: (l) => lines.push(l) }) };
}

test("a refresh that fails at once (file gone) does not latch: the next refresh reads the new file", async () => {
  const file = join(dir, "latch.txt");
  writeFileSync(file, `${K1}\n`);
  const { lines, log } = collect();
  const keys = await loadApiKeys({ file, refreshMs: 0, log });
  rmSync(file);
  await keys.refresh(); // readFileSync throws before any await
  expect(lines.filter((l) => l.includes("api keys refresh failed")).length).toBe(1);
  expect(keys.identify(K1)).toBe(keyIdOf(K1)); // last good set kept
  writeFileSync(file, `${K2}\n`); // rotation: K1 revoked, K2 added
  await keys.refresh();
  expect(keys.identify(K2)).toBe(keyIdOf(K2));
  expect(keys.identify(K1)).toBeUndefined();
  keys.stop();
});

test("the timer keeps refreshing after a failed read: rotation still reaches the gateway", async () => {
  const file = join(dir, "timer.txt");
  writeFileSync(file, `${K1}\n`);
  const { lines, log } = collect();
  const keys = await loadApiKeys({ file, refreshMs: 10, log });
  try {
    rmSync(file);
    for (let i = 0; i < 500 && !lines.some((l) => l.includes("api keys refresh failed")); i++) await Bun.sleep(5);
    expect(lines.some((l) => l.includes("api keys refresh failed"))).toBe(true);
    writeFileSync(file, `${K3}\n`);
    for (let i = 0; i < 500 && keys.identify(K3) === undefined; i++) await Bun.sleep(5);
    expect(keys.identify(K3)).toBe(keyIdOf(K3));
    expect(keys.identify(K1)).toBeUndefined();
  } finally {
    keys.stop();
  }
});

test("a refresh that finds no key keeps the loaded keys and logs it; a later good read replaces them", async () => {
  const file = join(dir, "empty.txt");
  writeFileSync(file, `${K1}\n${K2}\n`);
  const { lines, log } = collect();
  const keys = await loadApiKeys({ file, refreshMs: 0, log });
  writeFileSync(file, "# all keys removed by mistake\n\n");
  await keys.refresh();
  expect(keys.size).toBe(2);
  expect(keys.identify(K1)).toBe(keyIdOf(K1));
  expect(keys.identify(K2)).toBe(keyIdOf(K2));
  const warn = lines.find((l) => l.includes("api keys refresh found no key; keeping the keys loaded before"));
  expect(warn).toBeDefined();
  expect(JSON.parse(warn as string).count).toBe(2);
  writeFileSync(file, `${K3}\n`);
  await keys.refresh();
  expect(keys.size).toBe(1);
  expect(keys.identify(K3)).toBe(keyIdOf(K3));
  expect(keys.identify(K1)).toBeUndefined();
  for (const l of lines) for (const k of [K1, K2, K3]) expect(l).not.toContain(k);
  keys.stop();
});

test("a Key Vault that never answers cannot hold the start: the gateway starts not ready, the read times out and is retried", async () => {
  const tokens = startTokenServer({ jwtSecret: "hang-secret", aud: "https://vault.azure.net" });
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let reads = 0;
  const vault = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch() {
      reads++;
      await released; // held until the test ends
      return new Response("late", { status: 500 });
    },
  });
  const started = Date.now();
  const keys = await loadApiKeys({
    env: K1,
    keyVault: { vaultUrl: `http://127.0.0.1:${vault.port}`, secretName: "stuck", credential: new HttpTokenCredential(tokens), timeoutMs: 300 },
    waitForSources: true,
    firstWaitMs: 100,
    retry: { firstMs: 20, maxMs: 50 },
  });
  try {
    expect(Date.now() - started).toBeLessThan(5000); // not held by the vault (generous bound)
    expect(keys.unavailable).toBe('API keys not loaded yet from Key Vault secret "stuck"');
    expect(keys.identify(K1)).toBe(keyIdOf(K1)); // env keys serve meanwhile
    for (let i = 0; i < 400 && !keys.unavailable?.includes("did not answer"); i++) await Bun.sleep(5);
    expect(keys.unavailable).toMatch(/^API keys not loaded: Key Vault 127\.0\.0\.1:\d+ did not answer within 0\.3 s; check the vault URL/);
    for (let i = 0; i < 400 && reads < 2; i++) await Bun.sleep(5);
    expect(reads).toBeGreaterThanOrEqual(2);
  } finally {
    keys.stop();
    release();
    vault.stop(true);
    await tokens.stop();
  }
});
