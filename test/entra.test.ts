import { createHmac } from "node:crypto";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type EmulatorHandle, startEmulator } from "../src/emulator/server.ts";
import { DEFAULT_AUDIENCES, looksLikeJwt, signTestJwt, verifyEntraJwt } from "../src/emulator/entra.ts";
import { listenUrl } from "../src/hc/address.ts";
import { credentialTokenProvider } from "../src/hc/tokens.ts";
import { closeWs, handshakeStatus, openListener } from "./support/relay-probe.ts";
import { HttpTokenCredential, startTokenServer, type TokenServer } from "./support/token-server.ts";

const SECRET = "entra-test-secret-0123456789";
const NOW = 1_767_225_600;
const AUD = "https://relay.azure.net";

function jwt(claims: Record<string, unknown>, secret = SECRET): string {
  return signTestJwt({ aud: AUD, exp: NOW + 3600, roles: ["Azure Relay Listener"], ...claims }, secret);
}

describe("verifyEntraJwt", () => {
  const cfg = { secret: SECRET };

  test("role mapping", () => {
    const rights = (roles: unknown) => {
      const v = verifyEntraJwt(jwt({ roles }), cfg, NOW);
      return v.ok ? v.rights.sort() : v.status;
    };
    expect(rights(["Azure Relay Owner"])).toEqual(["Listen", "Manage", "Send"]);
    expect(rights(["Azure Relay Listener"])).toEqual(["Listen"]);
    expect(rights("Listen")).toEqual(["Listen"]);
    expect(rights(["Azure Relay Sender"])).toEqual(["Send"]);
    expect(rights(["Send", "Listen"])).toEqual(["Listen", "Send"]);
    expect(rights(["Reader", "Azure Relay Sender"])).toEqual(["Send"]);
    expect(rights(["Reader"])).toBe(403);
    expect(rights([])).toBe(403);
    expect(rights(undefined)).toBe(403);
    expect(rights(42)).toBe(401);
  });

  test("bare and Bearer forms; both default audiences; relay_scope", () => {
    const t = jwt({ relay_scope: "/a/b/" });
    expect(verifyEntraJwt(t, cfg, NOW)).toEqual({ ok: true, rights: ["Listen"], scopePath: "a/b" });
    expect(verifyEntraJwt(`Bearer ${t}`, cfg, NOW).ok).toBe(true);
    expect(verifyEntraJwt(jwt({ aud: "https://relay.azure.net/" }), cfg, NOW).ok).toBe(true);
    expect(verifyEntraJwt(jwt({ aud: ["api://x", AUD] }), cfg, NOW).ok).toBe(true);
    expect(DEFAULT_AUDIENCES).toEqual(["https://relay.azure.net", "https://relay.azure.net/"]);
    expect(verifyEntraJwt(jwt({ relay_scope: "" }), cfg, NOW)).toMatchObject({ ok: true, scopePath: "" });
  });

  test("custom audiences replace the defaults", () => {
    const c = { secret: SECRET, audiences: ["https://relay.chinacloudapi.cn"] };
    expect(verifyEntraJwt(jwt({ aud: "https://relay.chinacloudapi.cn" }), c, NOW).ok).toBe(true);
    expect(verifyEntraJwt(jwt({}), c, NOW)).toMatchObject({ ok: false, status: 401 });
  });

  test.each([
    ["wrong audience", () => jwt({ aud: "https://management.azure.com" })],
    ["no audience", () => jwt({ aud: undefined })],
    ["expired", () => jwt({ exp: NOW })],
    ["no exp", () => jwt({ exp: undefined })],
    ["string exp", () => jwt({ exp: String(NOW + 10) })],
    ["not yet valid", () => jwt({ nbf: NOW + 60 })],
    ["bad signature (other secret)", () => jwt({}, "another-secret")],
    ["tampered claims", () => {
      const [h, , s] = jwt({}).split(".");
      return `${h}.${Buffer.from(JSON.stringify({ aud: AUD, exp: NOW + 9999, roles: ["Azure Relay Owner"] })).toString("base64url")}.${s}`;
    }],
    ["alg none", () => {
      const [, p] = jwt({}).split(".");
      return `${Buffer.from('{"alg":"none"}').toString("base64url")}.${p}.`;
    }],
    ["two parts", () => "eyJhbGciOiJIUzI1NiJ9.e30"],
    ["garbage", () => "not a jwt at all"],
    ["empty", () => ""],
    ["non-JSON claims", () => {
      const h = Buffer.from('{"alg":"HS256"}').toString("base64url");
      const p = Buffer.from("hello").toString("base64url");
      return signWith(h, p);
    }],
    ["relay_scope not a string", () => jwt({ relay_scope: 5 })],
  ])("%s → 401", (_name, make) => {
    const v = verifyEntraJwt(make(), cfg, NOW);
    expect(v).toMatchObject({ ok: false, status: 401 });
  });

  test("nbf in the past is fine", () => {
    expect(verifyEntraJwt(jwt({ nbf: NOW - 10 }), cfg, NOW).ok).toBe(true);
  });

  test("looksLikeJwt", () => {
    expect(looksLikeJwt(jwt({}))).toBe(true);
    expect(looksLikeJwt(`Bearer ${jwt({})}`)).toBe(true);
    expect(looksLikeJwt("SharedAccessSignature sr=a&sig=b&se=1&skn=k")).toBe(false);
  });
});

function signWith(h: string, p: string): string {
  return `${h}.${p}.${createHmac("sha256", SECRET).update(`${h}.${p}`).digest("base64url")}`;
}

describe("emulator in Entra test mode", () => {
  let emu: EmulatorHandle;
  let tokens: TokenServer;

  beforeAll(async () => {
    emu = await startEmulator({ entra: { secret: SECRET }, hybridConnections: [{ path: "hyco" }, { path: "other" }] });
    tokens = startTokenServer({ jwtSecret: SECRET, roles: ["Azure Relay Listener"] });
  });
  afterAll(async () => {
    await emu?.stop();
    await tokens?.stop();
  });

  const now = () => Math.floor(Date.now() / 1000);
  const live = (claims: Record<string, unknown>) => signTestJwt({ aud: AUD, exp: now() + 600, ...claims }, SECRET);

  test("a listener with credentialTokenProvider over the local token server opens a control channel", async () => {
    tokens.hits = 0;
    const provider = credentialTokenProvider(new HttpTokenCredential(tokens));
    const url = listenUrl(emu.endpoint, "hyco");
    const token = await provider.getToken(url);
    const l = await openListener(url, token);
    expect(l.open).toBe(true);
    expect(emu.listenerCount("hyco")).toBe(1);
    // a second listener reuses the cached token
    const l2 = await openListener(url, await provider.getToken(url));
    expect(l2.open).toBe(true);
    expect(tokens.hits).toBe(1);
    if (l.open) await closeWs(l.ws);
    if (l2.open) await closeWs(l2.ws);
  });

  test("the token may also travel as sb-hc-token", async () => {
    const l = await openListener(listenUrl(emu.endpoint, "hyco", { token: live({ roles: ["Listen"] }) }), ""); // no header
    expect(l.open).toBe(true);
    if (l.open) await closeWs(l.ws);
  });

  test("wrong audience / expired / bad signature / no token → 401", async () => {
    const url = listenUrl(emu.endpoint, "hyco");
    const status = async (token: string) => (await handshakeStatus(url, { ServiceBusAuthorization: token })).status;
    expect(await status(live({ aud: "https://management.azure.com", roles: ["Azure Relay Owner"] }))).toBe(401);
    expect(await status(signTestJwt({ aud: AUD, exp: now() - 5, roles: ["Azure Relay Owner"] }, SECRET))).toBe(401);
    expect(await status(signTestJwt({ aud: AUD, exp: now() + 600, roles: ["Azure Relay Owner"] }, "not-the-secret"))).toBe(401);
    expect((await handshakeStatus(url, {})).status).toBe(401);
    const ws = await openListener(url, live({ aud: "https://example.org" }));
    expect(ws.open).toBe(false);
  });

  test("a Sender-only role cannot listen (403); a scope for another entity cannot either", async () => {
    const url = listenUrl(emu.endpoint, "hyco");
    const sender = await handshakeStatus(url, { ServiceBusAuthorization: live({ roles: ["Azure Relay Sender"] }) });
    expect(sender.status).toBe(403);
    const scoped = await handshakeStatus(url, { ServiceBusAuthorization: live({ roles: ["Azure Relay Owner"], relay_scope: "other" }) });
    expect(scoped.status).toBe(403);
    const ok = await handshakeStatus(url, { ServiceBusAuthorization: live({ roles: ["Azure Relay Owner"], relay_scope: "hyco" }) });
    expect(ok.status).toBe(101);
  });
});
