/** Identity and limit settings: defaults, bad values name the setting, secrets stay out of logs, Key Vault references that did not resolve are refused. */
import { expect, test } from "bun:test";
import { ConfigError, resolveGatewayConfig } from "../src/config.ts";

const base = { AZHEXGATE_OIDC_ISSUER: "https://login.microsoftonline.com/t/v2.0", AZHEXGATE_OIDC_AUDIENCE: "api://azhexgate" };
const visitor = { ...base, AZHEXGATE_VISITOR_CLIENT_ID: "web", AZHEXGATE_VISITOR_CLIENT_SECRET: "s3cret-value", AZHEXGATE_VISITOR_COOKIE_KEY: "k".repeat(40) };

test("off by default; OIDC and limits parsed; default CLI scopes from the audience", () => {
  expect(resolveGatewayConfig({}, {}).identity).toEqual({ limits: { rate: 0, rateMax: 0, streams: 0, streamsMax: 0, bandwidth: 0, bandwidthMax: 0 } });
  const c = resolveGatewayConfig({}, { ...base, AZHEXGATE_OIDC_TENANTS: "a, b", AZHEXGATE_LIMIT_RATE: "6000/m", AZHEXGATE_LIMIT_BANDWIDTH_MAX: "10m" }).identity;
  expect(c.oidc).toMatchObject({ issuer: base.AZHEXGATE_OIDC_ISSUER, audience: ["api://azhexgate"], tenants: ["a", "b"], cliScopes: "openid profile offline_access api://azhexgate/.default" });
  expect(c.limits).toMatchObject({ rate: 100, bandwidthMax: 10 * 1024 * 1024 });
});

test.each([
  [{ AZHEXGATE_OIDC_ISSUER: "https://x" }, /AZHEXGATE_OIDC_AUDIENCE is required/],
  [{ ...base, AZHEXGATE_OIDC_ISSUER: "http://idp.example.com" }, /https URL/],
  [{ AZHEXGATE_VISITOR_CLIENT_ID: "web" }, /needs AZHEXGATE_OIDC_ISSUER/],
  [{ ...visitor, AZHEXGATE_VISITOR_COOKIE_KEY: "short" }, /at least 32 characters/],
  [{ ...visitor, AZHEXGATE_VISITOR_COOKIE_KEY: "@Microsoft.KeyVault(SecretUri=https://v.vault.azure.net/secrets/azhexgate-visitor-cookie-key)" }, /unresolved Key Vault reference/],
  [{ AZHEXGATE_LIMIT_RATE: "fast" }, /AZHEXGATE_LIMIT_RATE must be a rate/],
  [{ AZHEXGATE_LIMIT_STREAMS: "10", AZHEXGATE_LIMIT_STREAMS_MAX: "5" }, /above AZHEXGATE_LIMIT_STREAMS_MAX/],
])("%j → ConfigError", (env, message) => {
  expect(() => resolveGatewayConfig({}, env)).toThrow(ConfigError);
  expect(() => resolveGatewayConfig({}, env)).toThrow(message);
});

test("the visitor client secret and cookie key are not enumerable (a logged config holds neither)", () => {
  const c = resolveGatewayConfig({}, visitor);
  expect(c.identity.visitor?.clientSecret).toBe("s3cret-value");
  expect(JSON.stringify(c)).not.toContain("s3cret-value");
  expect(JSON.stringify(c)).not.toContain("k".repeat(40));
});
