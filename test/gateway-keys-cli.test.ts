/**
 * The real `azhexgate gateway` process on a fresh deploy: AZHEXGATE_KEYVAULT_URL is set, the
 * secret does not exist yet. The process must not exit (no crash loop): it serves /healthz, says
 * why it is not ready on /readyz, keeps retrying, and becomes ready when the secret is created.
 * The identity is the App Service / Container Apps managed-identity endpoint protocol
 * (IDENTITY_ENDPOINT + IDENTITY_HEADER, api-version 2019-08-01,
 * https://learn.microsoft.com/en-us/azure/app-service/overview-managed-identity#rest-endpoint-reference),
 * played by a loopback server, reached through DefaultAzureCredential as in production.
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { signTestJwt } from "../src/emulator/entra.ts";
import { killAll, spawnCli } from "./support/cli-proc.ts";
import { startVaultStandIn, type VaultStandIn } from "./support/keyvault.ts";

const JWT_SECRET = "cli-keys-jwt-secret";
const IDENTITY_HEADER = "identity-header-0123456789";
const VAULT_KEY = "vault-key-for-the-cli-0123456789ab";

let vault: VaultStandIn;
let msi: ReturnType<typeof Bun.serve>;
let tokenRequests = 0;

beforeAll(() => {
  vault = startVaultStandIn(JWT_SECRET);
  msi = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const url = new URL(req.url);
      if (req.headers.get("x-identity-header") !== IDENTITY_HEADER || url.searchParams.get("api-version") !== "2019-08-01") {
        return Response.json({ error: "bad request" }, { status: 400 });
      }
      tokenRequests++;
      const resource = url.searchParams.get("resource") ?? "";
      const exp = Math.floor(Date.now() / 1000) + 3600;
      const token = signTestJwt({ aud: resource.replace(/\/$/, ""), iat: exp - 3600, exp, sub: "gateway-identity" }, JWT_SECRET);
      return Response.json({ access_token: token, expires_on: String(exp), resource, token_type: "Bearer" });
    },
  });
});

afterEach(killAll);
afterAll(() => {
  vault.stop();
  msi.stop(true);
});

test("no crash loop: the gateway process starts without the keys secret, reports why, and turns ready when it appears", async () => {
  const child = spawnCli(
    ["gateway", "--port", "0", "--base-domain", "localhost", "--public-scheme", "http", "--registry", ":memory:", "--log-format", "json", "--log-level", "info"],
    {
      env: {
        AZHEXGATE_KEYVAULT_URL: vault.url,
        IDENTITY_ENDPOINT: `http://127.0.0.1:${msi.port}/msi/token`,
        IDENTITY_HEADER,
        AZURE_CLIENT_ID: undefined,
        AZURE_TENANT_ID: undefined,
        AZURE_CLIENT_SECRET: undefined,
        AZURE_FEDERATED_TOKEN_FILE: undefined,
      },
    },
  );
  const line = await child.waitErr(/"gateway ready"/, 30_000);
  const port = Number(new URL((JSON.parse(line) as { url: string }).url).port);
  await child.waitErr(/"api keys unavailable"/, 15_000);
  expect(tokenRequests).toBeGreaterThan(0);
  expect(vault.statuses[0]).toBe(404); // the token was accepted: the secret is really missing

  const readyz = await fetch(`http://127.0.0.1:${port}/readyz`);
  expect(readyz.status).toBe(503);
  expect(((await readyz.json()) as { reason: string }).reason).toContain("Key Vault secret azhexgate-api-keys not found (404)");
  const api = await fetch(`http://localhost:${port}/api/tunnels`, { headers: { "x-azhexgate-apikey": VAULT_KEY } });
  expect(api.status).toBe(503);
  expect(api.headers.get("x-azhexgate-error")).toBe("api_keys_unavailable");

  // several retries later the process is still there
  for (let i = 0; i < 300 && vault.statuses.length < 3; i++) await Bun.sleep(20);
  expect(vault.statuses.length).toBeGreaterThanOrEqual(3);
  expect(child.proc.exitCode).toBeNull();
  expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);

  vault.secrets.set("azhexgate-api-keys", VAULT_KEY);
  let status = 0;
  for (let i = 0; i < 600 && status !== 200; i++) {
    status = (await fetch(`http://127.0.0.1:${port}/readyz`)).status;
    if (status !== 200) await Bun.sleep(50);
  }
  expect(status).toBe(200);
  expect((await fetch(`http://localhost:${port}/api/tunnels`, { headers: { "x-azhexgate-apikey": VAULT_KEY } })).status).toBe(200);
  const { err } = child.text();
  expect(err).toContain('"api keys loaded"');
  expect(err).not.toContain(VAULT_KEY);
  expect(err).not.toContain(IDENTITY_HEADER);
});
