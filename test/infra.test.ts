/**
 * infra/ and the Dockerfile set app settings by name; the config loaders read them by name.
 * The Bicep compiler is not installable here, so this keeps the two in sync textually.
 */
import { describe, expect, test } from "bun:test";
import { GATEWAY_SETTING_NAMES, resolveGatewayConfig } from "../src/config.ts";
import { readRelaySettings, RELAY_SETTING_NAMES } from "../src/control/settings.ts";

const root = new URL("..", import.meta.url).pathname;
const known = new Set<string>([...GATEWAY_SETTING_NAMES, ...RELAY_SETTING_NAMES]);
/** Names read by libraries, not by our loaders. */
const external = new Set(["APPLICATIONINSIGHTS_CONNECTION_STRING", "NODE_ENV"]);

function bicepEnv(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/\{\s*name:\s*'([A-Z0-9_]+)'\s*,\s*value:\s*([^}]+?)\s*\}/g)) out.set(m[1]!, m[2]!);
  return out;
}

describe("infra app settings match the config loaders", () => {
  test("every setting the gateway module sets is read by src/config.ts or src/control/settings.ts", async () => {
    const env = bicepEnv(await Bun.file(`${root}infra/modules/gateway.bicep`).text());
    expect(env.size).toBeGreaterThan(8);
    for (const name of env.keys()) expect(known.has(name) || external.has(name) ? name : `unknown setting ${name}`).toBe(name);
    for (const required of ["AZHEXGATE_RELAY_NAMESPACE", "AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZHEXGATE_BASE_DOMAIN", "AZURE_CLIENT_ID"]) {
      expect(env.has(required)).toBe(true);
    }
  });

  test("with those settings the loaders select Azure mode and a valid gateway config", async () => {
    const env = bicepEnv(await Bun.file(`${root}infra/modules/gateway.bicep`).text());
    const sample: Record<string, string> = {};
    for (const [name, value] of env) {
      const literal = value.match(/^'(.*)'$/);
      sample[name] = literal ? literal[1]! : name === "AZHEXGATE_RELAY_NAMESPACE" ? "contoso-relay" : name === "AZURE_SUBSCRIPTION_ID" ? "00000000-0000-0000-0000-000000000000" : name === "AZHEXGATE_BASE_DOMAIN" ? "example.com" : name === "AZHEXGATE_API_ALLOW_CIDRS" ? "10.0.0.0/8" : name === "AZHEXGATE_REGISTRY" ? "sqlite:/data/registry.db" : name === "AZURE_CLIENT_ID" ? "11111111-2222-3333-4444-555555555555" : "value";
    }
    const relay = readRelaySettings(sample);
    expect(relay.mode).toBe("azure");
    const gw = resolveGatewayConfig({}, sample);
    expect(gw.port).toBe(8080);
    expect(gw.publicScheme).toBe("https");
    expect(gw.baseDomain).toBe("example.com");
  });

  test("the Dockerfile's ENV names are read by the loaders", async () => {
    const text = await Bun.file(`${root}Dockerfile`).text();
    const names = [...text.matchAll(/\b(AZHEXGATE_[A-Z_]+)=/g)].map((m) => m[1]!);
    expect(names.length).toBeGreaterThan(2);
    for (const n of names) expect(known.has(n) ? n : `unknown setting ${n}`).toBe(n);
  });
});
