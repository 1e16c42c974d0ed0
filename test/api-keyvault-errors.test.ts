/**
 * What an operator reads when the gateway cannot read its API keys from Key Vault, and which
 * vault settings are refused up front (issue 18: mutation survivors in src/api/keys.ts — the error
 * sentences and their branches were not asserted). A local Bun.serve stands in for the vault's
 * REST API (GET /secrets/{name}?api-version=7.4) and answers each secret name its own way.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { TokenCredential } from "@azure/core-auth";
import { checkKeyVault, KeyVaultReadError, keyIdOf, MIN_KEY_LENGTH, parseKeyList, readKeyVaultSecret } from "../src/api/keys.ts";

const seen: { path: string; auth: string | null; accept: string | null }[] = [];
let vault: ReturnType<typeof Bun.serve>;
let base = "";
const cred = (token = "tok"): TokenCredential => ({ getToken: async () => ({ token, expiresOnTimestamp: Date.now() + 3_600_000 }) });

beforeAll(() => {
  vault = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const u = new URL(req.url);
      seen.push({ path: `${u.pathname}${u.search}`, auth: req.headers.get("authorization"), accept: req.headers.get("accept") });
      const name = u.pathname.split("/").pop();
      switch (name) {
        case "ok": return Response.json({ value: "k1,k2" });
        case "firewall": return Response.json({ error: { code: "Forbidden", innererror: { code: "ForbiddenByFirewall" } } }, { status: 403 });
        case "firewall401": return Response.json({ error: { innererror: { code: "ForbiddenByFirewall" } } }, { status: 401 });
        case "role": return Response.json({ error: { code: "Forbidden" } }, { status: 403 });
        // Key Vault's role refusal; the firewall code's name appears in the body, but not as the code
        case "rbacWords": return Response.json({ error: { code: "Forbidden", message: "Caller is not authorized", innererror: { code: "ForbiddenByRbac" } }, ruledOut: ["ForbiddenByFirewall"] }, { status: 403 });
        case "big403": return new Response(`"ForbiddenByFirewall"${" ".repeat(64 * 1024)}`, { status: 403 });
        case "busy": return new Response("x", { status: 429 });
        case "novalue": return Response.json({ id: "x" });
        case "notjson": return new Response("<html>");
        case "slow": await Bun.sleep(2000); return Response.json({ value: "late" });
        default: return new Response("", { status: 404 });
      }
    },
  });
  base = `http://127.0.0.1:${vault.port}`;
});
afterAll(() => vault?.stop(true));

const read = (secretName: string, more: Record<string, unknown> = {}) =>
  readKeyVaultSecret({ vaultUrl: base, secretName, credential: cred(), ...more }).then(
    (v) => ({ value: v }),
    (e: unknown) => ({ err: e as Error }),
  );

describe("readKeyVaultSecret", () => {
  test("reads the secret with a Bearer token, asking for JSON, at /secrets/{name}?api-version=7.4 (with or without a trailing slash)", async () => {
    seen.length = 0;
    expect(await read("ok")).toEqual({ value: "k1,k2" });
    expect(await readKeyVaultSecret({ vaultUrl: `${base}/`, secretName: "ok", credential: cred() })).toBe("k1,k2");
    expect(seen.map((s) => s.path)).toEqual(["/secrets/ok?api-version=7.4", "/secrets/ok?api-version=7.4"]);
    expect(seen[0]!.auth).toBe("Bearer tok");
    expect(seen[0]!.accept).toBe("application/json");
  });

  test("403 ForbiddenByFirewall names the network, not the role", async () => {
    const r = (await read("firewall")) as { err: KeyVaultReadError };
    expect(r.err).toBeInstanceOf(KeyVaultReadError);
    expect(r.err.message).toBe(`Key Vault 127.0.0.1:${vault.port} refused the gateway's network address (403 ForbiddenByFirewall); allow the gateway's outbound addresses in the vault's firewall or use a private endpoint`);
    expect(r.err.status).toBeUndefined();
  });

  test("403 / 401 without the firewall code (read from error.innererror.code, never from the words), or a huge body, name the role", async () => {
    for (const [name, status] of [["role", 403], ["firewall401", 401], ["big403", 403], ["rbacWords", 403]] as const) {
      const r = (await read(name)) as { err: KeyVaultReadError };
      expect(r.err.message).toBe(`Key Vault 127.0.0.1:${vault.port} refused to read secret "${name}" (${status}); grant the gateway's identity the "Key Vault Secrets User" role`);
      expect(r.err.status).toBe(status);
    }
  });

  test("404 says how to create the secret; another status says to retry", async () => {
    const nf = (await read("missing")) as { err: KeyVaultReadError };
    expect(nf.err.status).toBe(404);
    expect(nf.err.message).toBe(
      `Key Vault secret missing not found (404) in 127.0.0.1:${vault.port} — create it with the API keys, comma or newline separated: az keyvault secret set --vault-name 127 --name missing --value "<key>[,<key>…]" (make a key with: openssl rand -base64 32)`,
    );
    const busy = (await read("busy")) as { err: KeyVaultReadError };
    expect(busy.err.status).toBe(429);
    expect(busy.err.message).toBe(`Key Vault 127.0.0.1:${vault.port} answered 429 for secret "busy"; retry later or check the vault's firewall`);
  });

  test("a body without a string value, or not JSON, is an error naming the secret", async () => {
    expect(((await read("novalue")) as { err: Error }).err.message).toBe('Key Vault secret "novalue" has no string value');
    expect(((await read("notjson")) as { err: Error }).err.message).toBe('Key Vault secret "notjson" has no string value');
  });

  test("no answer in time, or no answer at all, say which", async () => {
    const slow = (await read("slow", { timeoutMs: 200 })) as { err: KeyVaultReadError };
    expect(slow.err.message).toBe(`Key Vault 127.0.0.1:${vault.port} did not answer within 0.2 s; check the vault URL, its firewall and the network`);
    expect(slow.err.status).toBeUndefined();
    const down = (await readKeyVaultSecret({ vaultUrl: "http://127.0.0.1:9", secretName: "ok", credential: cred() }).catch((e: Error) => e)) as Error;
    expect(down.message).toMatch(/^Key Vault 127\.0\.0\.1:9 could not be reached \(.+\); check the vault URL, its firewall and the network$/);
  });

  test("a credential that returns no token is refused before any request", async () => {
    seen.length = 0;
    const e = (await readKeyVaultSecret({ vaultUrl: base, secretName: "ok", credential: cred("") }).catch((x: Error) => x)) as Error;
    expect(e.message).toBe("the Azure credential returned no token for https://vault.azure.net/.default; check the managed identity");
    const n = (await readKeyVaultSecret({ vaultUrl: base, secretName: "ok", credential: { getToken: async () => null } }).catch((x: Error) => x)) as Error;
    expect(n.message).toContain("returned no token");
    expect(seen.length).toBe(0);
  });
});

describe("checkKeyVault", () => {
  const kv = (vaultUrl: string, secretName = "keys") => ({ vaultUrl, secretName, credential: cred() });
  test("https anywhere; plain http only for loopback (localhost, 127.x, ::1)", () => {
    expect(checkKeyVault(kv("https://v.vault.azure.net")).host).toBe("v.vault.azure.net");
    for (const u of ["http://localhost:1", "http://LOCALHOST:1", "http://127.0.0.2:1", "http://[::1]:1"]) expect(() => checkKeyVault(kv(u))).not.toThrow();
    for (const u of ["http://v.vault.azure.net", "http://10.0.0.1", "http://[::2]:1", "http://localhost.evil.net", "ftp://localhost"])
      expect(() => checkKeyVault(kv(u))).toThrow(`Key Vault URL "${u}" must use https`);
    expect(() => checkKeyVault(kv("v.vault.azure.net"))).toThrow('Key Vault URL "v.vault.azure.net" is not a URL; use https://{vault}.vault.azure.net');
  });
  test("secret names: 1–127 letters, digits and hyphens", () => {
    expect(() => checkKeyVault(kv("https://v.vault.azure.net", "a-Z-9"))).not.toThrow();
    expect(() => checkKeyVault(kv("https://v.vault.azure.net", "x".repeat(127)))).not.toThrow();
    for (const n of ["", "x".repeat(128), "a_b", "a/b", "keys "])
      expect(() => checkKeyVault(kv("https://v.vault.azure.net", n))).toThrow(`Key Vault secret name "${n}" may only hold letters, digits and hyphens`);
  });
});

describe("parseKeyList", () => {
  const k16 = "k".repeat(MIN_KEY_LENGTH);
  test("length 16–512, no spaces; the error names the source and position, never the key", () => {
    expect(parseKeyList(`${k16},${"m".repeat(512)}`, "X")).toEqual([k16, "m".repeat(512)]);
    expect(() => parseKeyList(`${k16},${"s".repeat(15)}`, "X")).toThrow("API key #2 from X must be 16-512 characters without spaces; generate one with `openssl rand -base64 32`");
    expect(() => parseKeyList("m".repeat(513), "X")).toThrow("API key #1 from X");
    expect(() => parseKeyList(`${k16}\tx`, "X", { separators: /,/ })).toThrow("API key #1 from X");
  });
  test("default separators: commas and line breaks, runs of them; comments only when asked", () => {
    expect(parseKeyList(`${k16},\r\n\n${k16}x`, "X")).toEqual([k16, `${k16}x`]);
    expect(parseKeyList(`${k16} # mine\n# all comment\n`, "F", { comments: true })).toEqual([k16]);
    expect(() => parseKeyList(`${k16} # mine`, "F")).toThrow("API key #1 from F");
    expect(parseKeyList(`${k16}#not-a-comment`, "F", { comments: true })).toEqual([`${k16}#not-a-comment`]);
  });
  test("key ids are the first 16 hex digits of the key's SHA-256 (UTF-8)", () => {
    expect(keyIdOf("é-key-aaaaaaaaaaaaaaaa")).toBe(new Bun.CryptoHasher("sha256").update(Buffer.from("é-key-aaaaaaaaaaaaaaaa", "utf8")).digest("hex").slice(0, 16));
  });
});
