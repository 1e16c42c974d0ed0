/**
 * API keys from env, a file and Key Vault. Key Vault is a local Bun.serve stand-in of its REST API
 * (`GET /secrets/{name}?api-version=7.4`, Bearer JWT checked: signature, audience, scope), reached
 * with a real TokenCredential (HttpTokenCredential → the local token server over HTTP).
 */
import { describe, expect, test } from "bun:test";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { KEY_VAULT_SCOPE, keyIdOf, loadApiKeys, readKeyVaultSecret } from "../src/api/keys.ts";
import { createLogger } from "../src/log.ts";
import { vaultFixture } from "./support/keyvault.ts";
import { HttpTokenCredential, startTokenServer } from "./support/token-server.ts";

const K1 = "first-key-aaaaaaaaaaaaaaaaaaaaaa";
const K2 = "second-key-bbbbbbbbbbbbbbbbbbbbb";
const K3 = "third-key-cccccccccccccccccccccc";
const JWT_SECRET = "vault-test-jwt-secret";

const fx = vaultFixture(JWT_SECRET, "azhexgate-keys-", KEY_VAULT_SCOPE);

describe("env and file keys", () => {
  test("identify returns a 16-hex key id (not the key) for configured keys only", async () => {
    const keys = await loadApiKeys({ env: ` ${K1} ,${K2},` });
    expect(keys.size).toBe(2);
    const id = keys.identify(K1);
    expect(id).toMatch(/^[0-9a-f]{16}$/);
    expect(id).toBe(keyIdOf(K1));
    expect(keys.identify(K2)).not.toBe(id);
    for (const bad of [K3, "", K1.slice(1), `${K1} `, K1.toUpperCase(), "x".repeat(100_000)]) expect(keys.identify(bad)).toBeUndefined();
    keys.stop();
  });

  test("bad keys and no keys are refused with a sentence that never quotes the key", async () => {
    const err = await loadApiKeys({ env: `${K1},short` }).catch((e: Error) => e);
    expect(String(err)).toContain("API key #2 from AZHEXGATE_API_KEYS must be 16-512 characters");
    expect(String(err)).not.toMatch(/\bshort\b/);
    expect(String(err)).not.toContain(K1);
    await expect(loadApiKeys({})).rejects.toThrow(/no management API keys are configured: set AZHEXGATE_API_KEYS/);
    await expect(loadApiKeys({ env: " , " })).rejects.toThrow(/no management API keys/);
  });

  test("a file: one per line, comments and blank lines; re-read on refresh; a vanished file keeps the last set", async () => {
    const file = join(fx.dir, "keys.txt");
    writeFileSync(file, `# operators\n${K1}\n\n${K2}   # ci\n`);
    const lines: string[] = [];
    const keys = await loadApiKeys({ file, refreshMs: 0, log: createLogger({ format: "json", level: "debug", sink: (l) => lines.push(l) }) });
    expect(keys.size).toBe(2);
    expect(keys.identify(K2)).toBe(keyIdOf(K2));
    writeFileSync(file, `${K3}\n`);
    await keys.refresh();
    expect(keys.identify(K1)).toBeUndefined();
    expect(keys.identify(K3)).toBe(keyIdOf(K3));
    rmSync(file);
    await keys.refresh();
    expect(keys.identify(K3)).toBe(keyIdOf(K3));
    expect(lines.some((l) => l.includes("api keys refresh failed") && l.includes("ENOENT"))).toBe(true);
    for (const l of lines) for (const k of [K1, K2, K3]) expect(l).not.toContain(k);
    await expect(loadApiKeys({ file: join(fx.dir, "missing.txt") })).rejects.toThrow(/cannot read the API keys file .*missing\.txt: ENOENT/);
  });
});

describe("Key Vault", () => {
  test("reads the secret with a bearer token for the vault scope from a real TokenCredential", async () => {
    fx.vault.secrets.set("api-keys", `${K1},${K2}\n`);
    const credential = new HttpTokenCredential(fx.tokens);
    const keys = await loadApiKeys({ env: K3, keyVault: { vaultUrl: fx.vault.url, secretName: "api-keys", credential } });
    expect(keys.size).toBe(3);
    for (const k of [K1, K2, K3]) expect(keys.identify(k)).toBe(keyIdOf(k));
    expect(credential.scopesAsked).toEqual([KEY_VAULT_SCOPE]);
    expect(fx.vault.authHeaders.at(-1)).toStartWith("Bearer ey");
    keys.stop();
  });

  test("refreshed on its timer: a rotated secret adds and revokes keys", async () => {
    fx.vault.secrets.set("rotating", K1);
    const keys = await loadApiKeys({ keyVault: { vaultUrl: `${fx.vault.url}/`, secretName: "rotating", credential: new HttpTokenCredential(fx.tokens) }, refreshMs: 10 });
    try {
      expect(keys.identify(K1)).toBeDefined();
      fx.vault.secrets.set("rotating", `${K2}\r\n${K3}`);
      for (let i = 0; i < 500 && keys.identify(K2) === undefined; i++) await Bun.sleep(5);
      expect(keys.identify(K2)).toBe(keyIdOf(K2));
      expect(keys.identify(K3)).toBe(keyIdOf(K3));
      expect(keys.identify(K1)).toBeUndefined();
    } finally {
      keys.stop();
    }
  });

  test("a failing refresh keeps the last good keys; an injected fetch is used", async () => {
    fx.vault.secrets.set("flaky", K1);
    let calls = 0;
    let broken = false;
    const viaProxy = (async (input: string | URL | Request, init?: RequestInit) => {
      calls++;
      if (broken) throw new Error("network down");
      return fetch(input, init);
    }) as typeof fetch;
    const keys = await loadApiKeys({ keyVault: { vaultUrl: fx.vault.url, secretName: "flaky", credential: new HttpTokenCredential(fx.tokens), fetch: viaProxy }, refreshMs: 0 });
    expect(calls).toBe(1);
    broken = true;
    await keys.refresh();
    expect(calls).toBe(2);
    expect(keys.identify(K1)).toBe(keyIdOf(K1));
  });

  test("errors say what to fix: role, missing secret, bad token, https only", async () => {
    const credential = new HttpTokenCredential(fx.tokens);
    fx.vault.forbidden.add("locked");
    await expect(readKeyVaultSecret({ vaultUrl: fx.vault.url, secretName: "locked", credential })).rejects.toThrow(/"Key Vault Secrets User" role/);
    await expect(readKeyVaultSecret({ vaultUrl: fx.vault.url, secretName: "nope", credential })).rejects.toThrow(/Key Vault secret nope not found \(404\) in 127\.0\.0\.1:\d+ — create it/);
    const wrongSecret = new HttpTokenCredential(fx.tokens, "not-the-secret");
    await expect(readKeyVaultSecret({ vaultUrl: fx.vault.url, secretName: "api-keys", credential: wrongSecret })).rejects.toThrow(/token server answered 401/);
    const wrongAudience = startTokenServer({ jwtSecret: JWT_SECRET });
    try {
      await expect(
        readKeyVaultSecret({ vaultUrl: fx.vault.url, secretName: "api-keys", credential: new HttpTokenCredential(wrongAudience) }),
      ).rejects.toThrow(/refused to read secret "api-keys" \(401\)/);
    } finally {
      await wrongAudience.stop();
    }
    await expect(readKeyVaultSecret({ vaultUrl: "http://vault.example.com", secretName: "k", credential })).rejects.toThrow(/must use https/);
    await expect(readKeyVaultSecret({ vaultUrl: "not a url", secretName: "k", credential })).rejects.toThrow(/is not a URL/);
    await expect(readKeyVaultSecret({ vaultUrl: fx.vault.url, secretName: "../x", credential })).rejects.toThrow(/letters, digits and hyphens/);
    fx.vault.secrets.set("weak", `${K1},tiny`);
    await expect(loadApiKeys({ keyVault: { vaultUrl: fx.vault.url, secretName: "weak", credential } })).rejects.toThrow(/API key #2 from Key Vault secret "weak"/);
  });
});
