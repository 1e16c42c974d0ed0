/**
 * A real OpenID provider on loopback for tests: `oidc-provider` (runs under Bun) issuing RS256
 * tokens with a JWKS, the device authorization grant (public client `azhexgate-cli`), the
 * authorization code flow with PKCE (confidential client `azhexgate-web`), JWT access tokens for
 * the gateway's audience carrying Entra-like `tid` / `oid` / `groups` claims, and dev interaction
 * pages where any listed login name signs in (password ignored). `rotate()` rolls the signing key
 * over (the old one leaves the JWKS); `mint()` signs arbitrary claims with the current key.
 */
import { mkdtempSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload } from "jose";
import Provider from "oidc-provider";

export const AUDIENCE = "api://azhexgate-test";
export const CLI_CLIENT_ID = "azhexgate-cli";
export const WEB_CLIENT_ID = "azhexgate-web";
export const WEB_CLIENT_SECRET = "web-client-secret-0123456789abcdefghijkl";
export const TENANT = "11111111-1111-1111-1111-111111111111";
export const OTHER_TENANT = "22222222-2222-2222-2222-222222222222";
export const GROUP_DEVS = "group-devs";
export const GROUP_ADMINS = "group-admins";

export interface TestUser {
  oid: string;
  tid: string;
  email: string;
  name: string;
  groups: string[];
}

export const USERS: Record<string, TestUser> = {
  alice: { oid: "aaaaaaaa-0000-0000-0000-00000000000a", tid: TENANT, email: "alice@example.test", name: "Alice", groups: [GROUP_DEVS] },
  bob: { oid: "bbbbbbbb-0000-0000-0000-00000000000b", tid: TENANT, email: "bob@example.test", name: "Bob", groups: [GROUP_DEVS] },
  root: { oid: "cccccccc-0000-0000-0000-00000000000c", tid: TENANT, email: "root@example.test", name: "Root", groups: [GROUP_DEVS, GROUP_ADMINS] },
  outsider: { oid: "dddddddd-0000-0000-0000-00000000000d", tid: TENANT, email: "outsider@example.test", name: "Outsider", groups: [] },
  stranger: { oid: "eeeeeeee-0000-0000-0000-00000000000e", tid: OTHER_TENANT, email: "stranger@other.test", name: "Stranger", groups: [GROUP_DEVS] },
};

/**
 * The gateway settings that make it accept this provider's tokens (issuer, audience, tenant), with
 * `cli` the public client `azhexgate login` uses, and `extra` (groups, visitor client...) on top.
 */
export function gatewayOidcEnv(idp: { issuer: string }, o: { cli?: boolean; extra?: Record<string, string> } = {}): Record<string, string> {
  return {
    AZHEXGATE_OIDC_ISSUER: idp.issuer,
    AZHEXGATE_OIDC_AUDIENCE: AUDIENCE,
    AZHEXGATE_OIDC_TENANTS: TENANT,
    ...(o.cli ? { AZHEXGATE_OIDC_CLI_CLIENT_ID: CLI_CLIENT_ID, AZHEXGATE_OIDC_CLI_SCOPES: "openid profile email offline_access api" } : {}),
    ...o.extra,
  };
}

/** A fresh config directory for the CLI's token cache, and the CLI environment that uses it (and no API key). */
export function cliLoginConfig(prefix: string): { config: string; env: Record<string, string> } {
  const config = mkdtempSync(join(tmpdir(), prefix));
  return { config, env: { XDG_CONFIG_HOME: config, AZHEXGATE_API_KEY: "" } };
}

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  jwk: JWK;
}

export interface OidcFixture {
  issuer: string;
  /** Claims a user's tokens carry (tid, oid, groups, email, name). */
  claimsOf(login: string): Record<string, unknown>;
  /** Signs `claims` (defaults: this issuer, AUDIENCE, 10 min) with the current key, or as `alg: none`. */
  mint(claims: JWTPayload, o?: { alg?: "RS256" | "none"; expiresInSeconds?: number; key?: "current" | "stranger" }): Promise<string>;
  /** Rolls the signing key over: a new key signs, the old one leaves the JWKS. */
  rotate(): Promise<void>;
  /** Registers redirect URIs of the web client (rebuilds the provider: call before flows start). */
  setRedirectUris(uris: string[]): Promise<void>;
  /** Adds redirect URIs to the public (CLI) client, e.g. the console's `{api}/console/` (rebuilds the provider). */
  setCliRedirectUris(uris: string[]): Promise<void>;
  /** Completes the user step of a device-code sign-in with fetch (enter the code, sign in as `login`). */
  approveDevice(userCode: string, login: string): Promise<void>;
  /**
   * Plays a browser with fetch from `authorizeUrl` (the provider's authorize endpoint) through the
   * sign-in and consent pages as `login`; resolves with the URL the provider redirects to outside itself.
   */
  signInWithFetch(authorizeUrl: string, login: string): Promise<string>;
  stop(): Promise<void>;
}

async function newKey(): Promise<SigningKey> {
  const { privateKey } = await generateKeyPair("RS256", { extractable: true });
  const kid = `k-${crypto.randomUUID().slice(0, 8)}`;
  const jwk = { ...(await exportJWK(privateKey)), kid, alg: "RS256", use: "sig" };
  return { kid, privateKey: privateKey as CryptoKey, jwk };
}

export async function startOidcProvider(): Promise<OidcFixture> {
  let key = await newKey();
  const stranger = await newKey();
  let redirectUris: string[] = ["http://127.0.0.1/unused"];
  let cliRedirectUris: string[] = [];
  let provider: Provider | undefined;
  const server: Server = createServer((req, res) => {
    if (!provider) {
      res.statusCode = 503;
      res.end();
      return;
    }
    provider.callback()(req, res);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const claimsOf = (login: string): Record<string, unknown> => {
    const u = USERS[login];
    if (!u) return { sub: login };
    return { sub: `sub-${login}`, tid: u.tid, oid: u.oid, groups: u.groups, email: u.email, name: u.name, preferred_username: u.email };
  };

  const build = () => {
    const p = new Provider(issuer, {
      clients: [
        {
          client_id: CLI_CLIENT_ID,
          token_endpoint_auth_method: "none",
          application_type: "native",
          grant_types: ["urn:ietf:params:oauth:grant-type:device_code", "refresh_token", "authorization_code"],
          response_types: ["code"],
          // loopback redirect of `login --browser`: any port (RFC 8252 §7.3, native clients)
          // plus, when a test adds them, the gateway console's (a browser app: code + PKCE, CORS on /token)
          redirect_uris: ["http://127.0.0.1/callback", ...cliRedirectUris],
        },
        {
          client_id: WEB_CLIENT_ID,
          client_secret: WEB_CLIENT_SECRET,
          token_endpoint_auth_method: "client_secret_post",
          grant_types: ["authorization_code"],
          response_types: ["code"],
          redirect_uris: redirectUris,
        },
      ],
      jwks: { keys: [key.jwk] },
      features: {
        deviceFlow: { enabled: true },
        devInteractions: { enabled: true },
        resourceIndicators: {
          enabled: true,
          defaultResource: (ctx: any) => (ctx.oidc?.client?.clientId === CLI_CLIENT_ID ? AUDIENCE : undefined),
          useGrantedResource: () => true,
          getResourceServerInfo: () => ({ scope: "api", audience: AUDIENCE, accessTokenFormat: "jwt", accessTokenTTL: 600, jwt: { sign: { alg: "RS256" } } }),
        },
      },
      scopes: ["openid", "offline_access", "email", "profile", "api"],
      claims: { openid: ["sub", "tid", "oid", "groups"], email: ["email"], profile: ["name", "preferred_username"] },
      conformIdTokenClaims: false,
      findAccount: (_ctx: unknown, id: string) => ({ accountId: id, claims: () => claimsOf(id) }),
      extraTokenClaims: (_ctx: unknown, token: { accountId?: string }) => {
        if (!token.accountId) return undefined;
        const c = claimsOf(token.accountId);
        return { tid: c.tid, oid: c.oid, groups: c.groups, email: c.email, name: c.name };
      },
      issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(t: string): boolean }) => client.grantTypeAllowed("refresh_token"),
      // Consent is implied (first-party clients): every requested scope and claim is granted.
      loadExistingGrant: async (ctx: any) => {
        const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
        if (grantId) return ctx.oidc.provider.Grant.find(grantId);
        const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
        grant.addOIDCScope("openid email profile offline_access");
        grant.addOIDCClaims(["tid", "oid", "groups", "email", "name", "preferred_username"]);
        grant.addResourceScope(AUDIENCE, "api");
        await grant.save();
        return grant;
      },
      ttl: { AccessToken: 600, IdToken: 600, DeviceCode: 600, RefreshToken: 86400, Grant: 86400, Session: 86400, Interaction: 600 },
      cookies: { keys: ["cookie-key-for-tests-only"] },
    } as any);
    (p as any).on?.("server_error", (_ctx: unknown, err: Error) => console.error("oidc-provider:", err));
    return p;
  };
  provider = build();

  const fixture: OidcFixture = {
    issuer,
    claimsOf,
    async mint(claims, o = {}) {
      const now = Math.floor(Date.now() / 1000);
      const body: JWTPayload = { iss: issuer, aud: AUDIENCE, iat: now, nbf: now, exp: now + (o.expiresInSeconds ?? 600), ...claims };
      if (o.alg === "none") {
        const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
        return `${b64({ alg: "none", typ: "JWT" })}.${b64(body)}.`;
      }
      const k = o.key === "stranger" ? stranger : key;
      return new SignJWT(body).setProtectedHeader({ alg: "RS256", kid: k.kid, typ: "at+jwt" }).sign(k.privateKey);
    },
    async rotate() {
      key = await newKey();
      provider = build();
    },
    async setRedirectUris(uris) {
      redirectUris = uris;
      provider = build();
    },
    async setCliRedirectUris(uris) {
      cliRedirectUris = uris;
      provider = build();
    },
    async approveDevice(userCode, login) {
      const b = fakeBrowser(issuer);
      const page = await b.follow(await b.send("/device"));
      const xsrf = /name="xsrf" value="([^"]+)"/.exec(page.html)?.[1];
      if (!xsrf) throw new Error(`no xsrf on the device page: ${page.html.slice(0, 300)}`);
      const step = await b.forms(await b.follow(await b.send("/device", b.form({ xsrf, user_code: userCode }))), login);
      if (step.res.status !== 200 || !/success|completed/i.test(step.html)) throw new Error(`device approval did not complete: ${step.res.status} ${step.html.slice(0, 400)}`);
    },
    async signInWithFetch(authorizeUrl, login) {
      const b = fakeBrowser(issuer);
      const step = await b.forms(await b.follow(await b.send(authorizeUrl)), login);
      if (!step.outside) throw new Error(`sign-in did not leave the provider: ${step.res.status} ${step.html.slice(0, 400)}`);
      return step.outside;
    },
    async stop() {
      await new Promise<void>((r) => server.close(() => r()));
      server.closeAllConnections?.();
    },
  };
  return fixture;
}

/** A cookie-keeping, redirect-following fetch that fills oidc-provider's dev sign-in and consent forms. */
function fakeBrowser(issuer: string) {
  const jar = new Map<string, string>();
  const send = async (url: string, init: RequestInit = {}): Promise<Response> => {
    const target = new URL(url, issuer);
    const headers = new Headers(init.headers);
    if (jar.size) headers.set("cookie", [...jar].map(([k, v]) => `${k}=${v}`).join("; "));
    const res = await fetch(target, { ...init, headers, redirect: "manual" });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(";");
      const i = pair!.indexOf("=");
      jar.set(pair!.slice(0, i), pair!.slice(i + 1));
    }
    return res;
  };
  const form = (fields: Record<string, string>) => ({
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(fields).toString(),
  });
  /** Follows redirects within the provider; stops at the first one that leaves it (`outside`). */
  const follow = async (res: Response): Promise<{ res: Response; html: string; outside?: string }> => {
    for (let i = 0; i < 10 && res.status >= 300 && res.status < 400; i++) {
      const next = new URL(res.headers.get("location")!, issuer);
      if (next.origin !== issuer) return { res, html: "", outside: next.toString() };
      res = await send(next.toString());
    }
    return { res, html: await res.text() };
  };
  /** Submits the provider's forms (sign-in as `login`, consent) until done or redirected away. */
  const forms = async (step: { res: Response; html: string; outside?: string }, login: string) => {
    for (let i = 0; i < 4 && !step.outside; i++) {
      const action = /<form[^>]*action="([^"]+)"/.exec(step.html)?.[1];
      if (!action || /success|sign-in has been completed|Your sign-in/i.test(step.html)) break;
      const fields: Record<string, string> = {};
      for (const m of step.html.matchAll(/<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"/g)) fields[m[1]!] = m[2]!;
      if (/name="login"/.test(step.html)) Object.assign(fields, { login, password: "any" });
      step = await follow(await send(action.replace(/&amp;/g, "&"), form(fields)));
    }
    return step;
  };
  return { send, form, follow, forms };
}
