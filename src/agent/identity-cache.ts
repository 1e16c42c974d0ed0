/**
 * The sign-in cache: one file, `credentials.json`, in the platform's config directory
 * ($XDG_CONFIG_HOME/azhexgate, else ~/.config/azhexgate; %APPDATA%\azhexgate on Windows), mode
 * 0600 in a 0700 directory, written atomically (temp file + rename). One entry per gateway API URL.
 * Tokens are read and written here only; nothing prints them. `bearerFor` refreshes silently.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { discover, peekClaims, refresh, SignInError, type TokenSet } from "./oidc-client.ts";

export interface Login extends TokenSet {
  issuer: string;
  client_id: string;
  scopes: string;
  /** For display: who signed in. */
  user: { name?: string; email?: string; oid?: string; tid?: string };
}

interface CacheFile {
  version: 1;
  logins: Record<string, Login>;
}

export function configDir(env: Record<string, string | undefined>): string {
  if (env.XDG_CONFIG_HOME) return join(env.XDG_CONFIG_HOME, "azhexgate");
  if (process.platform === "win32" && env.APPDATA) return join(env.APPDATA, "azhexgate");
  return join(env.HOME || homedir(), ".config", "azhexgate");
}

export const cachePath = (env: Record<string, string | undefined>) => join(configDir(env), "credentials.json");

/** The cache key of a gateway: its API base URL, normalised. */
export function gatewayKey(apiUrl: string): string {
  return apiUrl.replace(/\/+$/, "").replace(/\/api$/, "").toLowerCase();
}

function read(env: Record<string, string | undefined>): CacheFile {
  const p = cachePath(env);
  if (!existsSync(p)) return { version: 1, logins: {} };
  try {
    const v = JSON.parse(readFileSync(p, "utf8")) as CacheFile;
    return v && typeof v.logins === "object" ? v : { version: 1, logins: {} };
  } catch {
    return { version: 1, logins: {} };
  }
}

function write(env: Record<string, string | undefined>, c: CacheFile): void {
  const dir = configDir(env);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const p = cachePath(env);
  const tmp = `${p}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(c, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, p);
}

export function userOf(accessToken: string): Login["user"] {
  const c = peekClaims(accessToken);
  const s = (k: string) => (typeof c[k] === "string" ? (c[k] as string) : undefined);
  return { name: s("name"), email: s("email") ?? s("preferred_username") ?? s("upn"), oid: s("oid") ?? s("sub"), tid: s("tid") };
}

export function saveLogin(env: Record<string, string | undefined>, apiUrl: string, login: Login): void {
  const c = read(env);
  c.logins[gatewayKey(apiUrl)] = login;
  write(env, c);
}

export function getLogin(env: Record<string, string | undefined>, apiUrl: string): Login | undefined {
  return read(env).logins[gatewayKey(apiUrl)];
}

/** Removes the sign-in for `apiUrl` (or all); true when something was removed. */
export function removeLogin(env: Record<string, string | undefined>, apiUrl: string | undefined): boolean {
  const c = read(env);
  const before = Object.keys(c.logins).length;
  if (apiUrl === undefined) c.logins = {};
  else delete c.logins[gatewayKey(apiUrl)];
  if (Object.keys(c.logins).length === before) return false;
  write(env, c);
  return true;
}

/**
 * A current access token for `apiUrl`: the cached one while it has a minute left, else refreshed
 * (and saved) with the refresh token. Throws SignInError when there is no sign-in or it cannot be refreshed.
 */
export async function bearerFor(env: Record<string, string | undefined>, apiUrl: string, o: { minValidityMs?: number } = {}): Promise<string> {
  const login = getLogin(env, apiUrl);
  if (!login) throw new SignInError("not_signed_in", `Not signed in to ${gatewayKey(apiUrl)}; run \`azhexgate login --api-url ${gatewayKey(apiUrl)}\`.`);
  if (login.expires_at - Date.now() > (o.minValidityMs ?? 60_000)) return login.access_token;
  if (!login.refresh_token) throw new SignInError("refresh_failed", "Your sign-in has expired; run `azhexgate login` again.");
  const ep = await discover(login.issuer);
  const fresh = await refresh(ep, login.client_id, login.refresh_token, login.scopes);
  saveLogin(env, apiUrl, { ...login, ...fresh, user: userOf(fresh.access_token) });
  return fresh.access_token;
}
