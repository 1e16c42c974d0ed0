import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { AccessToken, TokenCredential } from "@azure/core-auth";
import { verifyEntraJwt } from "../src/emulator/entra.ts";
import { RelayError } from "../src/hc/errors.ts";
import { parseSasToken, verifySasSignature } from "../src/hc/sas.ts";
import { credentialTokenProvider, fixedTokenProvider, RELAY_SCOPE, sasTokenProvider } from "../src/hc/tokens.ts";
import { HttpTokenCredential, startTokenServer, type TokenServer } from "./support/token-server.ts";

const KEY = "dGVzdGtleS1ub3QtYS1yZWFsLXNlY3JldC0wMTIzNDU2Nzg5YWJjZGVm";
const JWT_SECRET = "emulator-entra-test-secret";
const RESOURCE = "http://contoso.servicebus.windows.net/hyco";

describe("sasTokenProvider / fixedTokenProvider", () => {
  test("signs a token for the resource that verifies with the key", async () => {
    const now = 1_767_225_600_000;
    const token = await sasTokenProvider("listen-rule", KEY, 600, () => now).getToken(RESOURCE);
    const t = parseSasToken(token)!;
    expect(t).not.toBeNull();
    expect(t.resource).toBe(RESOURCE);
    expect(t.skn).toBe("listen-rule");
    expect(t.se).toBe(now / 1000 + 600);
    expect(verifySasSignature(t, KEY)).toBe(true);
    expect(verifySasSignature(t, "another-key")).toBe(false);
  });

  test("default lifetime is one hour from the real clock", async () => {
    const t = parseSasToken(await sasTokenProvider("k", KEY).getToken(RESOURCE))!;
    expect(Math.abs(t.se - (Math.floor(Date.now() / 1000) + 3600))).toBeLessThanOrEqual(1);
  });

  test("fixedTokenProvider always yields its token", async () => {
    const p = fixedTokenProvider("SharedAccessSignature sr=a&sig=b&se=1&skn=k");
    expect(await p.getToken(RESOURCE)).toBe("SharedAccessSignature sr=a&sig=b&se=1&skn=k");
    expect(await p.getToken("http://other/", { forceRefresh: true })).toBe("SharedAccessSignature sr=a&sig=b&se=1&skn=k");
  });
});

describe("credentialTokenProvider over a local token server", () => {
  let server: TokenServer;
  let clock = 1_767_225_600_000;
  const now = () => clock;

  beforeAll(() => {
    server = startTokenServer({ jwtSecret: JWT_SECRET, roles: ["Azure Relay Listener"], ttlSeconds: 3600, now });
  });
  afterAll(() => server.stop());

  function fresh() {
    server.hits = 0;
    server.refused = 0;
    server.config.delayMs = 0;
    const credential = new HttpTokenCredential(server);
    return { credential, provider: credentialTokenProvider(credential, { now }) };
  }

  test("yields the bare JWT for the relay scope; the emulator's verifier accepts it", async () => {
    const { credential, provider } = fresh();
    const jwt = await provider.getToken(RESOURCE);
    expect(jwt.startsWith("eyJ")).toBe(true);
    expect(jwt).not.toMatch(/^Bearer/i);
    expect(credential.scopesAsked).toEqual([RELAY_SCOPE]);
    expect(RELAY_SCOPE).toBe("https://relay.azure.net//.default");
    expect(verifyEntraJwt(jwt, { secret: JWT_SECRET }, clock / 1000)).toEqual({ ok: true, rights: ["Listen"], scopePath: "" });
  });

  test("custom scope is passed to the credential", async () => {
    const credential = new HttpTokenCredential(server);
    await credentialTokenProvider(credential, { scope: "https://relay.azure.net//.default", now }).getToken(RESOURCE);
    expect(credential.scopesAsked).toEqual(["https://relay.azure.net//.default"]);
  });

  test("caches: many calls, one fetch (any resource)", async () => {
    const { provider } = fresh();
    const a = await provider.getToken(RESOURCE);
    const b = await provider.getToken(RESOURCE);
    const c = await provider.getToken("http://contoso.servicebus.windows.net/other");
    expect(new Set([a, b, c]).size).toBe(1);
    expect(server.hits).toBe(1);
  });

  test("refreshes once within refreshBeforeMs (default 5 min) of expiry", async () => {
    const { provider } = fresh();
    const start = clock;
    const first = await provider.getToken(RESOURCE);
    clock = start + (3600 - 301) * 1000; // 5 min + 1 s before expiry: still cached
    expect(await provider.getToken(RESOURCE)).toBe(first);
    expect(server.hits).toBe(1);
    clock = start + (3600 - 299) * 1000; // inside the window: fetch again
    const second = await provider.getToken(RESOURCE);
    expect(second).not.toBe(first);
    expect(server.hits).toBe(2);
    expect(await provider.getToken(RESOURCE)).toBe(second);
    expect(server.hits).toBe(2);
  });

  test("refreshBeforeMs is configurable", async () => {
    server.hits = 0;
    const provider = credentialTokenProvider(new HttpTokenCredential(server), { now, refreshBeforeMs: 0 });
    const start = clock;
    const first = await provider.getToken(RESOURCE);
    clock = start + 3599 * 1000;
    expect(await provider.getToken(RESOURCE)).toBe(first);
    clock = start + 3600 * 1000;
    expect(await provider.getToken(RESOURCE)).not.toBe(first);
    expect(server.hits).toBe(2);
  });

  test("forceRefresh bypasses the cache", async () => {
    const { provider } = fresh();
    const first = await provider.getToken(RESOURCE);
    const forced = await provider.getToken(RESOURCE, { forceRefresh: true });
    expect(forced).not.toBe(first);
    expect(server.hits).toBe(2);
    expect(await provider.getToken(RESOURCE)).toBe(forced);
    expect(server.hits).toBe(2);
  });

  test("concurrent callers share one fetch", async () => {
    const { provider } = fresh();
    server.config.delayMs = 50;
    const tokens = await Promise.all(Array.from({ length: 10 }, () => provider.getToken(RESOURCE)));
    expect(new Set(tokens).size).toBe(1);
    expect(server.hits).toBe(1);
    // concurrent forced refreshes share one fetch too
    const forced = await Promise.all(Array.from({ length: 5 }, () => provider.getToken(RESOURCE, { forceRefresh: true })));
    expect(new Set(forced).size).toBe(1);
    expect(forced[0]).not.toBe(tokens[0]);
    expect(server.hits).toBe(2);
  });

  test("a credential failure is a retryable RelayError", async () => {
    server.refused = 0;
    const provider = credentialTokenProvider(new HttpTokenCredential(server, "wrong-secret"), { now });
    const err = await provider.getToken(RESOURCE).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RelayError);
    expect((err as RelayError).code).toBe("unauthorized");
    expect((err as RelayError).retryable).toBe(true);
    expect((err as RelayError).message).toContain("token server answered 401");
    expect(server.refused).toBe(1);
  });

  test("a failed early refresh falls back to the still-valid token; once expired it throws", async () => {
    const local = startTokenServer({ jwtSecret: JWT_SECRET, roles: ["Listen"], ttlSeconds: 3600, now });
    const provider = credentialTokenProvider(new HttpTokenCredential(local), { now });
    const start = clock;
    const first = await provider.getToken(RESOURCE);
    await local.stop(); // token endpoint gone
    clock = start + 3590 * 1000; // inside the refresh window, not expired
    expect(await provider.getToken(RESOURCE)).toBe(first);
    clock = start + 3601 * 1000; // expired
    await expect(provider.getToken(RESOURCE)).rejects.toBeInstanceOf(RelayError);
    // forceRefresh never falls back
    clock = start + 10 * 1000;
    await expect(provider.getToken(RESOURCE, { forceRefresh: true })).rejects.toBeInstanceOf(RelayError);
  });
});

describe("credentialTokenProvider with an in-memory credential", () => {
  test("honours refreshAfterTimestamp", async () => {
    let t = 0;
    let calls = 0;
    const credential: TokenCredential = {
      async getToken(): Promise<AccessToken> {
        calls++;
        return { token: `tok-${calls}`, expiresOnTimestamp: t + 3_600_000, refreshAfterTimestamp: t + 1_000_000 };
      },
    };
    const p = credentialTokenProvider(credential, { now: () => t });
    expect(await p.getToken(RESOURCE)).toBe("tok-1");
    t = 999_999;
    expect(await p.getToken(RESOURCE)).toBe("tok-1");
    t = 1_000_000;
    expect(await p.getToken(RESOURCE)).toBe("tok-2");
  });

  test("a null token is an error", async () => {
    const p = credentialTokenProvider({ getToken: async () => null });
    await expect(p.getToken(RESOURCE)).rejects.toThrow(/no token/);
  });
});

describe("defaultAzureCredentialProvider", () => {
  test("the Azure SDK loads only when it is called", async () => {
    const script = `
      const loaded = () => Object.keys(require.cache).some((k) => k.includes("@azure/identity"));
      const t = await import(${JSON.stringify(new URL("../src/hc/tokens.ts", import.meta.url).pathname)});
      await t.sasTokenProvider("k", "v").getToken("http://h/x");
      const before = loaded();
      const p = await t.defaultAzureCredentialProvider();
      console.log(JSON.stringify({ before, after: loaded(), getToken: typeof p.getToken }));
    `;
    const proc = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe", cwd: import.meta.dir });
    const out = await new Response(proc.stdout).text();
    expect(await proc.exited).toBe(0);
    expect(JSON.parse(out.trim())).toEqual({ before: false, after: true, getToken: "function" });
  });
});
