/**
 * A local stand-in for Azure Key Vault's secrets REST API (`GET /secrets/{name}?api-version=7.4`)
 * on Bun.serve: the Bearer JWT from the test token server is checked (signature, audience, scope);
 * a missing secret is 404 SecretNotFound, `forbidden` names answer 403 Forbidden, and `denyNext`
 * answers 403 to that many reads first (a role assignment that has not propagated yet). Shapes per
 * https://learn.microsoft.com/en-us/azure/key-vault/general/rest-error-codes.
 */
import { afterAll, beforeAll } from "bun:test";
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startTokenServer, type TokenServer } from "./token-server.ts";

export interface VaultStandIn {
  url: string;
  secrets: Map<string, string>;
  forbidden: Set<string>;
  /** Secret names the vault's firewall refuses (403 with innererror ForbiddenByFirewall). */
  firewalled: Set<string>;
  /** Reads still to be refused with 403 before the vault answers normally. */
  denyNext: number;
  /** Status of every secret read, in order. */
  statuses: number[];
  /** The Authorization header of every well-formed secret read, in order. */
  authHeaders: string[];
  stop(): void;
}

function verifyJwt(token: string, secret: string): Record<string, unknown> | undefined {
  const [h, b, sig] = token.split(".");
  if (!h || !b || !sig) return undefined;
  if (createHmac("sha256", secret).update(`${h}.${b}`).digest("base64url") !== sig) return undefined;
  return JSON.parse(Buffer.from(b, "base64url").toString("utf8")) as Record<string, unknown>;
}

/** `o.scope`: also require the token's `scp` claim to be that scope. */
export function startVaultStandIn(jwtSecret: string, o: { scope?: string } = {}): VaultStandIn {
  const v: VaultStandIn = { url: "", secrets: new Map(), forbidden: new Set(), firewalled: new Set(), denyNext: 0, statuses: [], authHeaders: [], stop: () => server.stop(true) };
  const answer = (status: number, body: unknown) => {
    v.statuses.push(status);
    return Response.json(body, { status });
  };
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const url = new URL(req.url);
      const m = /^\/secrets\/([\w-]+)$/.exec(url.pathname);
      if (req.method !== "GET" || !m?.[1] || url.searchParams.get("api-version") !== "7.4") return answer(400, { error: { code: "BadParameter" } });
      v.authHeaders.push(req.headers.get("authorization") ?? "");
      const claims = verifyJwt((req.headers.get("authorization") ?? "").replace(/^Bearer /, ""), jwtSecret);
      if (!claims || claims.aud !== "https://vault.azure.net" || (o.scope !== undefined && claims.scp !== o.scope)) return answer(401, { error: { code: "Unauthorized", message: "AKV10022: Invalid audience." } });
      if (v.firewalled.has(m[1])) {
        return answer(403, { error: { code: "Forbidden", message: "Client address is not authorized and caller is not a trusted service.", innererror: { code: "ForbiddenByFirewall" } } });
      }
      if (v.denyNext > 0 || v.forbidden.has(m[1])) {
        if (v.denyNext > 0) v.denyNext--;
        return answer(403, { error: { code: "Forbidden", message: "Caller is not authorized to perform action on resource.", innererror: { code: "ForbiddenByRbac" } } });
      }
      const value = v.secrets.get(m[1]);
      if (value === undefined) return answer(404, { error: { code: "SecretNotFound", message: `A secret with (name/id) ${m[1]} was not found in this key vault.` } });
      v.statuses.push(200);
      return Response.json({ value, id: `${v.url}/secrets/${m[1]}/1`, attributes: { enabled: true } });
    },
  });
  v.url = `http://127.0.0.1:${server.port}`;
  return v;
}

/**
 * A test file's Key Vault set-up, started in beforeAll and stopped in afterAll: the token server
 * (Entra ID stand-in, audience Key Vault), a vault stand-in that trusts it, a temp directory.
 */
export function vaultFixture(jwtSecret: string, dirPrefix: string, scope: string) {
  const fx = {} as { tokens: TokenServer; vault: VaultStandIn; dir: string };
  beforeAll(() => {
    fx.tokens = startTokenServer({ jwtSecret, aud: "https://vault.azure.net" });
    fx.vault = startVaultStandIn(jwtSecret, { scope });
    fx.dir = mkdtempSync(join(tmpdir(), dirPrefix));
  });
  afterAll(async () => {
    fx.vault.stop();
    await fx.tokens.stop();
    rmSync(fx.dir, { recursive: true, force: true });
  });
  return fx;
}
