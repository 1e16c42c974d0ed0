/**
 * Management API keys: loaded from the environment (`AZHEXGATE_API_KEYS`, comma-separated), a file
 * (`--api-keys-file`, one per line, `#` comments) and/or an Azure Key Vault secret (REST API, no
 * SDK; value = keys separated by commas or newlines), kept in memory as SHA-256 digests only and
 * compared in constant time. Callers learn a `keyId` (a hex prefix of the digest), never a key.
 * File and Key Vault sources are re-read on a timer; a failed refresh keeps the last good set.
 */
import { keyVaultScopeFor } from "../hc/clouds.ts";
import type { TokenCredential } from "@azure/core-auth";
import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Logger } from "../log.ts";

export interface ApiKeyStore {
  /** The keyId of a configured key equal to `presented`, else undefined. Constant time per key. */
  identify(presented: string): string | undefined;
  /** How many distinct keys are loaded. */
  readonly size: number;
  /** Re-reads the file and Key Vault sources now (what the timer does). Keeps the old set on failure. */
  refresh(): Promise<void>;
  /** Stops the refresh timer. */
  stop(): void;
}

export interface KeyVaultSource {
  /** `https://{vault}.vault.azure.net` (plain http is accepted for loopback hosts only: tests). */
  vaultUrl: string;
  secretName: string;
  credential: TokenCredential;
  fetch?: typeof fetch;
}

export interface ApiKeySources {
  /** `AZHEXGATE_API_KEYS`: comma-separated keys. */
  env?: string;
  /** `--api-keys-file`: one key per line, blank lines and `#` comments ignored. */
  file?: string;
  keyVault?: KeyVaultSource;
  /** Re-read interval for file / Key Vault (default 5 min; 0 = never). */
  refreshMs?: number;
  log?: Logger;
}

/** Shortest key accepted: API keys must be random secrets, not words. */
export const MIN_KEY_LENGTH = 16;
const MAX_KEY_LENGTH = 512;
export const KEY_VAULT_SCOPE = "https://vault.azure.net/.default";
const KEY_VAULT_API = "7.4";

/** The public identity of a key: first 16 hex digits of its SHA-256 (stored as the tunnel owner). */
export function keyIdOf(key: string): string {
  return digest(key).toString("hex").slice(0, 16);
}

function digest(key: string): Buffer {
  return createHash("sha256").update(key, "utf8").digest();
}

/** Splits a key list; throws a TypeError naming the source and position (never the key) for bad entries. */
export function parseKeyList(text: string, source: string, opts: { comments?: boolean; separators?: RegExp } = {}): string[] {
  const keys: string[] = [];
  const lines = text.split(opts.separators ?? /[,\r\n]+/);
  lines.forEach((raw, i) => {
    const line = opts.comments ? raw.replace(/(^|\s)#.*$/, "") : raw;
    const key = line.trim();
    if (key === "") return;
    if (key.length < MIN_KEY_LENGTH || key.length > MAX_KEY_LENGTH || /\s/.test(key)) {
      throw new TypeError(
        `API key #${i + 1} from ${source} must be ${MIN_KEY_LENGTH}-${MAX_KEY_LENGTH} characters without spaces; generate one with \`openssl rand -base64 32\``,
      );
    }
    keys.push(key);
  });
  return keys;
}

function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || h.startsWith("127.");
}

/** Reads the Key Vault secret holding the keys: `GET {vault}/secrets/{name}?api-version=7.4`. */
export async function readKeyVaultSecret(kv: KeyVaultSource): Promise<string> {
  let base: URL;
  try {
    base = new URL(kv.vaultUrl);
  } catch {
    throw new TypeError(`Key Vault URL "${kv.vaultUrl}" is not a URL; use https://{vault}.vault.azure.net`);
  }
  if (base.protocol !== "https:" && !(base.protocol === "http:" && isLoopbackHost(base.hostname))) {
    throw new TypeError(`Key Vault URL "${kv.vaultUrl}" must use https`);
  }
  if (!/^[0-9a-zA-Z-]{1,127}$/.test(kv.secretName)) {
    throw new TypeError(`Key Vault secret name "${kv.secretName}" may only hold letters, digits and hyphens`);
  }
  const at = await kv.credential.getToken(keyVaultScopeFor(kv.vaultUrl)); // per cloud: src/hc/clouds.ts
  if (!at?.token) throw new Error(`the Azure credential returned no token for ${KEY_VAULT_SCOPE}; check the managed identity`);
  const url = new URL(`secrets/${kv.secretName}?api-version=${KEY_VAULT_API}`, base.href.endsWith("/") ? base.href : `${base.href}/`);
  const res = await (kv.fetch ?? fetch)(url, { headers: { authorization: `Bearer ${at.token}`, accept: "application/json" }, redirect: "error" });
  if (res.status === 401 || res.status === 403) {
    await res.body?.cancel();
    throw new Error(`Key Vault ${base.host} refused to read secret "${kv.secretName}" (${res.status}); grant the gateway's identity the "Key Vault Secrets User" role`);
  }
  if (res.status === 404) {
    await res.body?.cancel();
    throw new Error(`Key Vault ${base.host} has no secret "${kv.secretName}"; create it with the API keys, comma or newline separated`);
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new Error(`Key Vault ${base.host} answered ${res.status} for secret "${kv.secretName}"; retry later or check the vault's firewall`);
  }
  const body = (await res.json().catch(() => undefined)) as { value?: unknown } | undefined;
  if (typeof body?.value !== "string") throw new Error(`Key Vault secret "${kv.secretName}" has no string value`);
  return body.value;
}

/**
 * Loads the keys from every configured source (at least one key overall, else a TypeError saying
 * how to configure one) and starts the refresh timer for the file and Key Vault sources.
 */
export async function loadApiKeys(src: ApiKeySources): Promise<ApiKeyStore> {
  const fixed = src.env ? parseKeyList(src.env, "AZHEXGATE_API_KEYS", { separators: /,/ }) : [];
  const readFile = (): string[] => {
    if (!src.file) return [];
    let text: string;
    try {
      text = readFileSync(src.file, "utf8");
    } catch (e) {
      throw new Error(`cannot read the API keys file ${src.file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    return parseKeyList(text, src.file, { comments: true, separators: /\r?\n/ });
  };
  const readVault = async (): Promise<string[]> =>
    src.keyVault ? parseKeyList(await readKeyVaultSecret(src.keyVault), `Key Vault secret "${src.keyVault.secretName}"`) : [];

  let digests: Buffer[] = [];
  const install = (keys: string[]): void => {
    const seen = new Map<string, Buffer>();
    for (const k of keys) seen.set(keyIdOf(k), digest(k));
    digests = [...seen.values()];
  };
  install([...fixed, ...readFile(), ...(await readVault())]);
  if (digests.length === 0) {
    throw new TypeError("no management API keys are configured: set AZHEXGATE_API_KEYS, --api-keys-file or a Key Vault secret");
  }

  let refreshing: Promise<void> | undefined;
  const refresh = (): Promise<void> => {
    refreshing ??= (async () => {
      try {
        install([...fixed, ...readFile(), ...(await readVault())]);
        src.log?.debug("api keys refreshed", { count: digests.length });
      } catch (e) {
        src.log?.warn("api keys refresh failed", { error: (e as Error).message });
      } finally {
        refreshing = undefined;
      }
    })();
    return refreshing;
  };

  const every = src.refreshMs ?? 5 * 60_000;
  const timer = (src.file || src.keyVault) && every > 0 ? setInterval(() => void refresh(), every) : undefined;
  timer?.unref?.();

  return {
    identify(presented) {
      if (presented.length === 0 || presented.length > MAX_KEY_LENGTH) return undefined;
      const d = digest(presented);
      let match: Buffer | undefined;
      for (const candidate of digests) if (timingSafeEqual(candidate, d)) match = candidate; // no early exit
      return match ? match.toString("hex").slice(0, 16) : undefined;
    },
    get size() {
      return digests.length;
    },
    refresh,
    stop() {
      if (timer) clearInterval(timer);
    },
  };
}
