/**
 * infra/ read the way a reviewer reads it against Microsoft's documentation (no Bicep compiler
 * is installable here): a small reader splits each .bicep file into params, resources, modules
 * and outputs, and the tests assert the deployment's invariants — wildcard + API hostnames bound
 * with SNI and a Key Vault certificate, `asuid` TXT records, the API-keys secret from a @secure()
 * parameter, private image pull through the managed identity, a persistent shared registry,
 * trusted proxies, WebSockets, only the intended built-in roles — and that every app setting is
 * one the config loaders read (the drift test). The registry URL the Bicep builds is opened with
 * Bun's client against a real TLS redis-server with a password.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createAccessPolicy } from "../src/api/access.ts";
import { GATEWAY_SETTING_NAMES, resolveGatewayConfig } from "../src/config.ts";
import { readRelaySettings, RELAY_SETTING_NAMES } from "../src/control/settings.ts";
import { parseRegistrySpec } from "../src/registry/index.ts";
import { bicep, get, one, props, resources } from "./support/bicep.ts";

const root = new URL("..", import.meta.url).pathname;
const known = new Set<string>([...GATEWAY_SETTING_NAMES, ...RELAY_SETTING_NAMES]);
/** Read by App Service itself or by the runtime, not by our loaders. */
const platform = new Set(["WEBSITES_PORT", "WEBSITES_ENABLE_APP_SERVICE_STORAGE", "WEBSITES_CONTAINER_STOP_TIME_LIMIT", "NODE_ENV"]);

const MODULES = ["main.bicep", ...readdirSync(join(root, "infra/modules")).map((f) => `modules/${f}`)];
const main = () => bicep("main.bicep");
const gw = () => bicep("modules/gateway.bicep");

function appSettings(): Map<string, string> {
  const site = one(gw(), "Microsoft.Web/sites");
  const list = get(site, "properties", "siteConfig", "appSettings")!;
  const out = new Map<string, string>();
  for (const m of list.matchAll(/\{[^{}]*\}/g)) {
    const p = props(m[0]);
    out.set(p.get("name")!.replace(/^'|'$/g, ""), p.get("value")!);
  }
  return out;
}

describe("infra: the Bicep holds together", () => {
  test("every module a file uses exists, gets only parameters it declares, and every required one", () => {
    let checked = 0;
    for (const rel of MODULES) {
      for (const d of bicep(rel).decls.filter((x) => x.kind === "module")) {
        const target = bicep(join(rel, "..", d.target).replace(/^\.\//, ""));
        const given = props(get(d, "params")!);
        for (const name of given.keys()) expect(target.params.has(name) ? name : `${d.target} has no param ${name}`).toBe(name);
        for (const [name, p] of target.params) if (p.defaultValue === undefined) expect(given.has(name) ? name : `${d.target} needs ${name}`).toBe(name);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(8);
  });

  test("every module output read in main.bicep is declared by that module", () => {
    const m = main();
    const bySymbol = new Map(m.decls.filter((d) => d.kind === "module").map((d) => [d.symbol, bicep(d.target)]));
    const refs = [...m.text.matchAll(/\b(\w+)\.outputs\.(\w+)/g)];
    expect(refs.length).toBeGreaterThan(15);
    for (const [, sym, out] of refs) expect(bySymbol.get(sym!)?.outputs.has(out!) ? `${sym}.${out}` : `missing ${sym}.outputs.${out}`).toBe(`${sym}.${out}`);
  });
});

describe("infra: hosting serves *.{domain} with TLS", () => {
  test("App Service for Linux containers runs the image with WebSockets on and HTTPS only; no Container App", () => {
    const site = one(gw(), "Microsoft.Web/sites");
    expect(get(site, "kind")).toBe("'app,linux,container'");
    expect(get(site, "properties", "httpsOnly")).toBe("true");
    expect(get(site, "properties", "siteConfig", "linuxFxVersion")).toBe("'DOCKER|${image}'");
    expect(get(site, "properties", "siteConfig", "webSocketsEnabled")).toBe("true");
    expect(get(site, "properties", "siteConfig", "alwaysOn")).toBe("true");
    expect(get(site, "properties", "siteConfig", "healthCheckPath")).toBe("'/healthz'");
    expect(get(one(gw(), "Microsoft.Web/serverfarms"), "properties", "reserved")).toBe("true");
    for (const rel of MODULES) expect(bicep(rel).text).not.toContain("Microsoft.App/");
  });

  test("*.{domain} and api.{domain} (and the apex on request) are bound with SNI and a certificate imported from Key Vault", () => {
    const dom = bicep("modules/domains.bicep");
    const cert = one(dom, "Microsoft.Web/certificates");
    expect(get(cert, "properties", "keyVaultId")).toBe("certificateVaultId");
    expect(get(cert, "properties", "keyVaultSecretName")).toBe("certificateName");
    expect(get(cert, "properties", "canonicalName")).toBeUndefined(); // not a managed certificate: those exclude wildcards
    const binding = one(dom, "Microsoft.Web/sites/hostNameBindings");
    expect(get(binding, "properties", "sslState")).toBe("'SniEnabled'");
    expect(get(binding, "properties", "thumbprint")).toBe("cert.properties.thumbprint");
    expect(dom.text).toMatch(/@batchSize\(1\)\s*\nresource bindings/);
    expect(dom.vars.get("hosts")).toBe("concat([ '*.${baseDomain}', 'api.${baseDomain}' ], bindApex ? [ baseDomain ] : [])");
    const use = main().decls.find((d) => d.symbol === "domains")!;
    expect(use.condition).toBe("bindCustomDomains");
    expect(get(use, "params", "certificateVaultId")).toBe("certvault.outputs.id");
    expect(get(use, "dependsOn")).toBe("[ dns ]");
  });

  test("DNS points *, api (and @) at the site and carries the asuid TXT verification records", () => {
    const dns = bicep("modules/dns.bicep");
    const byName = new Map(dns.decls.filter((d) => d.kind === "resource").map((d) => [`${d.target.split("@")[0]}:${get(d, "name")}`, d]));
    expect(get(byName.get("Microsoft.Network/dnsZones/CNAME:'*'")!, "properties", "CNAMERecord")).toBe("{ cname: siteHostName }");
    expect(get(byName.get("Microsoft.Network/dnsZones/CNAME:'api'")!, "properties", "CNAMERecord")).toBe("{ cname: siteHostName }");
    for (const txt of ["'asuid'", "'asuid.api'"]) {
      expect(get(byName.get(`Microsoft.Network/dnsZones/TXT:${txt}`)!, "properties", "TXTRecords")).toBe("[ { value: [ verificationId ] } ]");
    }
    expect(byName.get("Microsoft.Network/dnsZones/A:'@'")?.condition).toBe("createZone && bindApex");
    const use = main().decls.find((d) => d.symbol === "dns")!;
    expect(get(use, "params", "siteHostName")).toBe("gateway.outputs.defaultHostName");
    expect(get(use, "params", "verificationId")).toBe("gateway.outputs.customDomainVerificationId");
    expect(gw().outputs.get("customDomainVerificationId")).toBe("site.properties.customDomainVerificationId");
    expect(gw().outputs.get("defaultHostName")).toBe("site.properties.defaultHostName");
  });
});

describe("infra: secrets, image, registry, proxies", () => {
  test("the API-keys secret is written from a @secure() parameter, under the name the gateway reads", () => {
    expect(main().params.get("apiKeys")).toMatchObject({ type: "string", secure: true, defaultValue: "''" });
    const kv = bicep("modules/keyvault.bicep");
    expect(kv.params.get("apiKeys")).toMatchObject({ secure: true });
    const secret = one(kv, "Microsoft.KeyVault/vaults/secrets");
    expect(secret.condition).toBe("!empty(apiKeys)");
    expect(get(secret, "name")).toBe("apiKeysSecretName");
    expect(get(secret, "properties", "value")).toBe("apiKeys");
    expect(get(main().decls.find((d) => d.symbol === "keyvault")!, "params", "apiKeys")).toBe("apiKeys");
    expect(kv.params.get("apiKeysSecretName")!.defaultValue).toBe(`'${resolveGatewayConfig({}, { AZHEXGATE_KEYVAULT_URL: "https://v.vault.azure.net" }).keyVault!.secret}'`);
    expect(appSettings().get("AZHEXGATE_KEYVAULT_SECRET")).toBe("apiKeysSecretName");
  });

  test("a private registry image is pulled with the managed identity, which holds AcrPull on that registry", () => {
    const site = one(gw(), "Microsoft.Web/sites");
    expect(get(site, "properties", "siteConfig", "acrUseManagedIdentityCreds")).toBe("pullWithIdentity");
    expect(get(site, "properties", "siteConfig", "acrUserManagedIdentityID")).toBe("pullWithIdentity ? identityClientId : null");
    expect(get(site, "identity")).toBe("{ type: 'UserAssigned', userAssignedIdentities: { '${identityId}': {} } }");
    const m = main();
    const gwUse = m.decls.find((d) => d.symbol === "gateway")!;
    expect(get(gwUse, "params", "pullWithIdentity")).toBe("!empty(acrName)");
    expect(get(gwUse, "dependsOn")).toBe("[ acrPull ]");
    const pull = m.decls.find((d) => d.symbol === "acrPull")!;
    expect(pull.condition).toBe("!empty(acrName)");
    expect(get(pull, "params", "principalId")).toBe("identity.outputs.principalId");
    expect(get(one(bicep("modules/acr-pull.bicep"), "Microsoft.Authorization/roleAssignments"), "properties", "principalId")).toBe("principalId");
  });

  test("the registry is the shared Managed Redis (TLS, key in the URL, non-clustered, no eviction), not the container's disk", () => {
    expect(appSettings().get("AZHEXGATE_REGISTRY")).toBe("registryUrl");
    const url = gw().vars.get("registryUrl")!;
    expect(url).toBe("'rediss://:${uriComponent(redisDb.listKeys().primaryKey)}@${redis.properties.hostName}:${redisPort}'");
    expect(parseRegistrySpec(evalRegistryUrl(url, "k+/=", "contoso.westeurope.redis.azure.net", 10000))).toEqual({
      kind: "redis",
      url: "rediss://:k%2B%2F%3D@contoso.westeurope.redis.azure.net:10000",
    });
    const db = one(bicep("modules/redis.bicep"), "Microsoft.Cache/redisEnterprise/databases");
    expect(get(db, "properties", "clusteringPolicy")).toBe("'NoCluster'");
    expect(get(db, "properties", "evictionPolicy")).toBe("'NoEviction'");
    expect(get(db, "properties", "clientProtocol")).toBe("'Encrypted'");
    expect(get(db, "properties", "accessKeysAuthentication")).toBe("'Enabled'");
    expect(get(db, "properties", "port")).toBe(bicep("modules/redis.bicep").outputs.get("port"));
    expect(appSettings().get("WEBSITES_ENABLE_APP_SERVICE_STORAGE")).toBe("'false'");
  });

  test("the trusted-proxy default makes the front end's X-Forwarded-For count, and only from internal peers", () => {
    expect(appSettings().get("AZHEXGATE_TRUSTED_PROXIES")).toBe("trustedProxies");
    const value = main().params.get("trustedProxies")!.defaultValue!.replace(/^'|'$/g, "");
    const cfg = resolveGatewayConfig({}, { AZHEXGATE_TRUSTED_PROXIES: value });
    const policy = createAccessPolicy({ trustedProxies: cfg.trustedProxies });
    // peers App Service / Container Apps front ends have been seen as (docs/deploy.md)
    for (const peer of ["169.254.129.3", "::ffff:172.16.1.5", "100.100.0.52", "10.0.0.4", "fe80::1"]) {
      expect(policy.clientIp(peer, "203.0.113.9:51234")).toBe("203.0.113.9");
    }
    expect(policy.clientIp("169.254.129.3", "198.51.100.7, 203.0.113.9")).toBe("203.0.113.9"); // a forged hop is not believed
    expect(policy.clientIp("203.0.113.50", "10.9.9.9")).toBe("203.0.113.50"); // a public peer's header is ignored
  });
});

describe("infra: least privilege", () => {
  const ROLES: Record<string, string> = {
    "2787bf04-f1f5-4bfe-8383-c8a24483ee38": "Azure Relay Owner",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
    "db79e9a7-68ee-4b58-9aeb-b90e7c24fcba": "Key Vault Certificate User",
    "a4417e6f-fecd-4de8-b567-7b0420556985": "Key Vault Certificates Officer",
    "7f951dda-4ed3-4680-a7ca-43fe172d538d": "AcrPull",
  };

  test("each role assignment gives one principal one intended built-in role, on one resource", () => {
    const seen: string[] = [];
    for (const rel of MODULES) {
      const f = bicep(rel);
      for (const d of resources(f, "Microsoft.Authorization/roleAssignments")) {
        const roleVar = /subscriptionResourceId\('Microsoft\.Authorization\/roleDefinitions', (\w+)\)/.exec(get(d, "properties", "roleDefinitionId")!)![1]!;
        const id = f.vars.get(roleVar)!.replace(/'/g, "");
        // the id and the role named in its comment agree with Microsoft's built-in roles page
        expect(new RegExp(`var ${roleVar} = '${id}' // ${ROLES[id]}\\n`).test(f.raw) ? ROLES[id] : `${rel}: ${id} is not an intended role`).toBe(ROLES[id]!);
        expect(get(d, "scope")).toMatch(/^(ns|kv|acr)$/);
        seen.push(`${rel}:${get(d, "properties", "principalId")}:${ROLES[id]}`);
      }
    }
    expect(seen.sort()).toEqual([
      "modules/acr-pull.bicep:principalId:AcrPull",
      "modules/certvault.bicep:appServiceObjectId:Key Vault Certificate User",
      "modules/certvault.bicep:operatorPrincipalId:Key Vault Certificates Officer",
      "modules/keyvault.bicep:gatewayPrincipalId:Key Vault Secrets User",
      "modules/keyvault.bicep:operatorPrincipalId:Key Vault Secrets Officer",
      "modules/relay.bicep:gatewayPrincipalId:Azure Relay Owner",
    ]);
  });

  test("no Owner, Contributor or User Access Administrator anywhere", () => {
    for (const rel of MODULES) {
      const text = bicep(rel).raw.toLowerCase();
      for (const broad of ["8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "b24988ac-6180-42a0-ab88-20f7382dd24c", "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"]) {
        expect(text.includes(broad) ? `${rel} grants ${broad}` : "").toBe("");
      }
    }
  });
});

describe("infra app settings match the config loaders", () => {
  test("every setting the gateway module sets is read by src/config.ts or src/control/settings.ts (or by App Service)", () => {
    const env = appSettings();
    expect(env.size).toBeGreaterThan(12);
    for (const name of env.keys()) expect(known.has(name) || platform.has(name) ? name : `unknown setting ${name}`).toBe(name);
    for (const required of ["AZHEXGATE_RELAY_NAMESPACE", "AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZHEXGATE_BASE_DOMAIN", "AZURE_CLIENT_ID", "AZHEXGATE_REGISTRY", "AZHEXGATE_KEYVAULT_URL", "AZHEXGATE_TRUSTED_PROXIES"]) {
      expect(env.has(required) ? required : `missing ${required}`).toBe(required);
    }
    expect(env.get("WEBSITES_PORT")).toBe(env.get("AZHEXGATE_PORT")!);
    // App Service kills the container this long after SIGTERM: the drain must fit inside
    const stop = Number(/^'(\d+)'$/.exec(env.get("WEBSITES_CONTAINER_STOP_TIME_LIMIT") ?? "")?.[1]);
    const drain = resolveGatewayConfig({}, { AZHEXGATE_DRAIN_SECONDS: /^'(.*)'$/.exec(env.get("AZHEXGATE_DRAIN_SECONDS") ?? "")?.[1] }).drainSeconds;
    expect(stop).toBeLessThanOrEqual(120);
    expect(drain + 5).toBeLessThanOrEqual(stop);
  });

  test("with those settings the loaders select Azure mode and a valid gateway config", () => {
    const samples: Record<string, string> = {
      relayNamespace: "contoso-relay",
      "subscription().subscriptionId": "00000000-0000-0000-0000-000000000000",
      "resourceGroup().name": "rg-azhexgate",
      identityClientId: "11111111-2222-3333-4444-555555555555",
      baseDomain: "example.com",
      registryUrl: evalRegistryUrl(gw().vars.get("registryUrl")!, "a+b/c=", "contoso.westeurope.redis.azure.net", 10000),
      keyVaultUrl: "https://azhexgatekv.vault.azure.net/",
      apiKeysSecretName: "azhexgate-api-keys",
      apiAllowCidrs: "",
      trustedProxies: main().params.get("trustedProxies")!.defaultValue!.replace(/^'|'$/g, ""),
      // identity and limits: off by default (docs/access.md)
      ...Object.fromEntries(
        ["oidcIssuer", "oidcAudience", "oidcTenants", "oidcGroups", "oidcAdminGroup", "oidcCliClientId", "oidcCliScopes", "visitorClientId", "visitorClientSecretRef", "visitorCookieKeyRef",
          "limitRate", "limitRateMax", "limitStreams", "limitStreamsMax", "limitBandwidth", "limitBandwidthMax"].map((k) => [k, ""]),
      ),
    };
    const sample: Record<string, string> = {};
    for (const [name, value] of appSettings()) {
      const literal = /^'(.*)'$/.exec(value);
      const v = literal ? literal[1] : samples[value];
      expect(v === undefined ? `no sample for ${name} = ${value}` : name).toBe(name);
      sample[name] = v!;
    }
    expect(readRelaySettings(sample).mode).toBe("azure");
    const cfg = resolveGatewayConfig({}, sample);
    expect(cfg).toMatchObject({ port: 8080, host: "0.0.0.0", publicScheme: "https", baseDomain: "example.com", logFormat: "json" });
    expect(cfg.keyVault).toEqual({ url: "https://azhexgatekv.vault.azure.net/", secret: "azhexgate-api-keys" });
    expect(cfg.trustedProxies.length).toBe(7);
    expect(parseRegistrySpec(cfg.registry).kind).toBe("redis");
  });

  test("the Dockerfile's ENV names are read by the loaders", async () => {
    const text = await Bun.file(`${root}Dockerfile`).text();
    const names = [...text.matchAll(/\b(AZHEXGATE_[A-Z_]+)=/g)].map((m) => m[1]!);
    expect(names.length).toBeGreaterThan(2);
    for (const n of names) expect(known.has(n) ? n : `unknown setting ${n}`).toBe(n);
  });
});

/** The gateway module's registry URL template with the values ARM would put in. */
function evalRegistryUrl(template: string, key: string, host: string, port: number): string {
  const values: Record<string, string> = {
    "uriComponent(redisDb.listKeys().primaryKey)": encodeURIComponent(key),
    "redis.properties.hostName": host,
    redisPort: String(port),
  };
  return template.replace(/^'|'$/g, "").replace(/\$\{([^}]+)\}/g, (_, expr: string) => {
    if (!(expr in values)) throw new Error(`unknown expression in the registry URL: ${expr}`);
    return values[expr]!;
  });
}

const tools = Bun.which("redis-server") && Bun.which("openssl");
describe("the registry URL the Bicep builds works with Bun's Redis client over TLS", () => {
  test.skipIf(!tools)(`rediss:// with the URL-encoded key opens the registry; a wrong key is refused${tools ? "" : " (skipped: redis-server or openssl not on PATH; .ci/run installs both)"}`, async () => {
    const dir = mkdtempSync(join(tmpdir(), "azhexgate-infra-tls-"));
    let server: Bun.Subprocess | undefined;
    try {
      const sh = (cmd: string[]) => {
        const r = Bun.spawnSync(cmd, { cwd: dir, stdout: "pipe", stderr: "pipe" });
        if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${r.stderr.toString()}`);
      };
      sh(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=azhexgate test CA"]);
      sh(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=localhost"]);
      await Bun.write(join(dir, "ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
      sh(["openssl", "x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "srv.pem", "-days", "1", "-extfile", "ext.cnf"]);
      const key = "Zm9v+YmFy/YmF6PQ==XyZ"; // Managed Redis keys are base64: '+', '/' and '=' must survive the URL
      const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
      const port = probe.port;
      probe.stop(true);
      server = Bun.spawn(["redis-server", "--port", "0", "--tls-port", String(port), "--bind", "127.0.0.1", "--tls-cert-file", "srv.pem", "--tls-key-file", "srv.key", "--tls-ca-cert-file", "ca.pem", "--tls-auth-clients", "no", "--requirepass", key, "--save", "", "--appendonly", "no", "--dir", dir], { cwd: dir, stdout: "pipe", stderr: "pipe" });
      const open = async (k: string) => {
        const url = evalRegistryUrl(gw().vars.get("registryUrl")!, k, "localhost", port);
        const script = `import { openRegistry } from ${JSON.stringify(join(root, "src/registry/index.ts"))};
          try { const r = await openRegistry(process.env.URL, { connectTimeoutMs: 3000 });
            const rec = { id: "12345678", keyId: "k1", hcPath: "hc-12345678", reserved: false, sessionId: "s", createdAt: 1, lastSeenAt: 1, expiresAt: 9e12 };
            console.log(await r.create(rec), (await r.get("12345678"))?.hcPath); await r.close(); }
          catch (e) { console.log("ERR " + e.message); }
          process.exit(0);`;
        const child = Bun.spawn(["bun", "-e", script], { env: { ...process.env, URL: url, NODE_EXTRA_CA_CERTS: join(dir, "ca.pem") }, stdout: "pipe", stderr: "pipe" });
        const out = await Promise.race([new Response(child.stdout).text(), Bun.sleep(20_000).then(() => "timeout")]);
        child.kill();
        return { out: out.trim(), url };
      };
      let first = { out: "", url: "" };
      for (let i = 0; i < 20 && !first.out.startsWith("true"); i++) {
        first = await open(key);
        if (!first.out.startsWith("true")) await Bun.sleep(250);
      }
      expect(first.url).toContain(`rediss://:${encodeURIComponent(key)}@localhost:`);
      expect(first.out).toBe("true hc-12345678");
      const wrong = await open(`${key}x`);
      expect(wrong.out).toStartWith("ERR cannot connect to Redis at rediss://:***@localhost:");
      expect(wrong.out).not.toContain(key);
    } finally {
      server?.kill();
      await server?.exited;
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});
