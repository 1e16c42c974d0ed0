/**
 * Management API keys: loaded from the environment (`AZHEXGATE_API_KEYS`, comma-separated), a file
 * (`--api-keys-file`, one per line, `#` comments) and/or an Azure Key Vault secret (REST API, no
 * SDK; value = keys separated by commas or newlines), kept in memory as SHA-256 digests only and
 * compared in constant time. Callers learn a `keyId` (a hex prefix of the digest), never a key.
 * File and Key Vault sources are re-read on a timer; a failed refresh keeps the last good set, and
 * so does a refresh that finds no key at all (an emptied secret must not lock every operator out).
 *
 * `waitForSources`: the gateway starts even when the file / Key Vault source cannot be read yet
 * (first deploy: nothing has created the secret; the identity's role has not propagated). The store
 * then holds the env keys only, reports why in `unavailable` (→ /readyz 503 and the API's 503
 * `api_keys_unavailable`), and retries with backoff until the source answers.
 */
import { keyVaultScopeFor } from "../hc/clouds.ts";
import type { TokenCredential } from "@azure/core-auth";
import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { NO_PROPAGATION, type RolePropagation } from "../control/propagation.ts";
import type { Logger } from "../log.ts";

export interface ApiKeyStore {
  /** The keyId of a configured key equal to `presented`, else undefined. Constant time per key. */
  identify(presented: string): string | undefined;
  /** How many distinct keys are loaded. */
  readonly size: number;
  /** Why the configured keys are not all loaded yet (a sentence for /readyz); undefined once they are. */
  readonly unavailable: string | undefined;
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
  /** Longest wait for the vault's answer (default 15 s). */
  timeoutMs?: number;
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
  /** Start even if the file / Key Vault cannot be read yet (see the file comment). Default false: the first read must succeed. */
  waitForSources?: boolean;
  /** With `waitForSources`: how long the start waits for the first read (default 10 s). */
  firstWaitMs?: number;
  /** Backoff of the retries while unavailable: first delay, doubling up to max (default 1 s → 60 s). */
  retry?: { firstMs?: number; maxMs?: number };
  /** Key Vault 401/403 during this window are "role assignment not yet effective" (default: none). */
  rolePropagation?: RolePropagation;
}

/** A Key Vault answer that is not the secret; `status` is the HTTP status (undefined: no answer). */
export class KeyVaultReadError extends Error {
  override readonly name = "KeyVaultReadError";
  constructor(
    message: string,
    readonly status: number | undefined,
  ) {
    super(message);
  }
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

/** `error.innererror.code` of a Key Vault error body (JSON), or undefined. */
function innerErrorCode(text: string): string | undefined {
  try {
    const code = (JSON.parse(text) as { error?: { innererror?: { code?: unknown } } })?.error?.innererror?.code;
    return typeof code === "string" ? code : undefined;
  } catch {
    return undefined;
  }
}

function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || h.startsWith("127.");
}

/** Checks the Key Vault coordinates (a TypeError saying what to fix); returns the vault's base URL. */
export function checkKeyVault(kv: KeyVaultSource): URL {
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
  return base;
}

/**
 * Reads the Key Vault secret holding the keys: `GET {vault}/secrets/{name}?api-version=7.4`
 * (https://learn.microsoft.com/en-us/rest/api/keyvault/secrets/get-secret/get-secret). Errors per
 * https://learn.microsoft.com/en-us/azure/key-vault/general/rest-error-codes: 401 unauthenticated,
 * 403 no data-plane role (RBAC vault: "Key Vault Secrets User"), 404 no such secret.
 */
export async function readKeyVaultSecret(kv: KeyVaultSource): Promise<string> {
  const base = checkKeyVault(kv);
  const scope = keyVaultScopeFor(kv.vaultUrl); // per cloud: src/hc/clouds.ts
  const at = await kv.credential.getToken(scope);
  if (!at?.token) throw new Error(`the Azure credential returned no token for ${scope}; check the managed identity`);
  const url = new URL(`secrets/${kv.secretName}?api-version=${KEY_VAULT_API}`, base.href.endsWith("/") ? base.href : `${base.href}/`);
  let res: Response;
  try {
    res = await (kv.fetch ?? fetch)(url, {
      headers: { authorization: `Bearer ${at.token}`, accept: "application/json" },
      redirect: "error",
      signal: AbortSignal.timeout(kv.timeoutMs ?? 15_000),
    });
  } catch (e) {
    const what = (e as Error)?.name === "TimeoutError" ? `did not answer within ${(kv.timeoutMs ?? 15_000) / 1000} s` : `could not be reached (${(e as Error)?.message ?? e})`;
    throw new KeyVaultReadError(`Key Vault ${base.host} ${what}; check the vault URL, its firewall and the network`, undefined);
  }
  if (res.status === 401 || res.status === 403) {
    // A firewall refusal is a 403 too (innererror ForbiddenByFirewall,
    // https://learn.microsoft.com/en-us/azure/key-vault/general/private-link-diagnostics): not a role.
    const text = await res.text().catch(() => "");
    if (res.status === 403 && text.length < 64 * 1024 && innerErrorCode(text) === "ForbiddenByFirewall") {
      throw new KeyVaultReadError(
        `Key Vault ${base.host} refused the gateway's network address (403 ForbiddenByFirewall); allow the gateway's outbound addresses in the vault's firewall or use a private endpoint`,
        undefined,
      );
    }
    throw new KeyVaultReadError(
      `Key Vault ${base.host} refused to read secret "${kv.secretName}" (${res.status}); grant the gateway's identity the "Key Vault Secrets User" role`,
      res.status,
    );
  }
  if (res.status === 404) {
    await res.body?.cancel();
    throw new KeyVaultReadError(
      `Key Vault secret ${kv.secretName} not found (404) in ${base.host} — create it with the API keys, comma or newline separated: az keyvault secret set --vault-name ${base.hostname.split(".")[0]} --name ${kv.secretName} --value "<key>[,<key>…]" (make a key with: openssl rand -base64 32)`,
      404,
    );
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new KeyVaultReadError(`Key Vault ${base.host} answered ${res.status} for secret "${kv.secretName}"; retry later or check the vault's firewall`, res.status);
  }
  const body = (await res.json().catch(() => undefined)) as { value?: unknown } | undefined;
  if (typeof body?.value !== "string") throw new Error(`Key Vault secret "${kv.secretName}" has no string value`);
  return body.value;
}

const NO_KEYS = "no management API keys are configured: set AZHEXGATE_API_KEYS, --api-keys-file or a Key Vault secret";

/**
 * Loads the keys from every configured source and starts the refresh timer for the file and Key
 * Vault sources. Without `waitForSources` the first read must succeed and find at least one key
 * (else a TypeError / Error saying how to fix it); with it, only bad configuration throws.
 */
export async function loadApiKeys(src: ApiKeySources): Promise<ApiKeyStore> {
  const log = src.log;
  const rp = src.rolePropagation ?? NO_PROPAGATION;
  const fixed = src.env ? parseKeyList(src.env, "AZHEXGATE_API_KEYS", { separators: /,/ }) : [];
  if (src.keyVault) checkKeyVault(src.keyVault);
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
  const readVault = async (): Promise<string[]> => {
    const kv = src.keyVault;
    if (!kv) return [];
    try {
      return parseKeyList(await readKeyVaultSecret(kv), `Key Vault secret "${kv.secretName}"`);
    } catch (e) {
      const status = (e as KeyVaultReadError).status;
      if ((status === 401 || status === 403) && rp.pending()) {
        rp.note(`Key Vault ${status}`, (e as Error).message);
        throw new KeyVaultReadError(`role assignment not yet effective (Key Vault ${status} for secret "${kv.secretName}"); retrying`, status);
      }
      throw e;
    }
  };
  const readAll = async (): Promise<string[]> => {
    const fromFile = readFile();
    return [...fixed, ...fromFile, ...(await readVault())];
  };

  let digests: Buffer[] = [];
  const install = (keys: string[]): void => {
    const seen = new Map<string, Buffer>();
    for (const k of keys) seen.set(keyIdOf(k), digest(k));
    digests = [...seen.values()];
  };

  /** Undefined once every source has been read; else why not. */
  let unavailable: string | undefined;
  const sourceNames = [src.file ? `file ${src.file}` : "", src.keyVault ? `Key Vault secret "${src.keyVault.secretName}"` : ""].filter(Boolean).join(" and ");
  if (!src.waitForSources) {
    install(await readAll());
    if (digests.length === 0) throw new TypeError(NO_KEYS);
  } else {
    if (!src.file && !src.keyVault && fixed.length === 0) throw new TypeError(NO_KEYS);
    install(fixed);
    unavailable = src.file || src.keyVault ? `API keys not loaded yet from ${sourceNames}` : undefined;
  }

  let lastReported: string | undefined;
  const attempt = async (): Promise<void> => {
    let keys: string[];
    try {
      keys = await readAll();
    } catch (e) {
      const message = (e as Error).message;
      if (unavailable !== undefined) {
        unavailable = `API keys not loaded: ${message}`;
        if (lastReported !== unavailable) log?.warn("api keys unavailable", { reason: unavailable });
        lastReported = unavailable;
      } else {
        log?.warn("api keys refresh failed", { error: message });
      }
      return;
    }
    if (keys.length === 0) {
      // An emptied source must not lock everyone out: keep what is loaded, say so.
      if (unavailable !== undefined) {
        unavailable = `API keys not loaded: ${sourceNames} holds no key; put the keys in it, comma or newline separated`;
        if (lastReported !== unavailable) log?.warn("api keys unavailable", { reason: unavailable });
        lastReported = unavailable;
      } else {
        log?.warn("api keys refresh found no key; keeping the keys loaded before", { sources: sourceNames, count: digests.length });
      }
      return;
    }
    install(keys);
    if (unavailable !== undefined) log?.info("api keys loaded", { count: digests.length, sources: sourceNames });
    else log?.debug("api keys refreshed", { count: digests.length });
    unavailable = undefined;
    lastReported = undefined;
  };

  let refreshing: Promise<void> | undefined;
  const refresh = (): Promise<void> => {
    if (refreshing) return refreshing;
    // Cleared in a later turn (never synchronously inside attempt()), so a read that fails at
    // once cannot leave a settled promise behind and stop every later refresh.
    const p: Promise<void> = attempt().finally(() => {
      if (refreshing === p) refreshing = undefined;
    });
    refreshing = p;
    return p;
  };

  const every = src.refreshMs ?? 5 * 60_000;
  const firstRetry = src.retry?.firstMs ?? 1000;
  const maxRetry = src.retry?.maxMs ?? 60_000;
  let failures = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  const schedule = (): void => {
    if (stopped || !(src.file || src.keyVault)) return;
    let delay: number;
    if (unavailable !== undefined) {
      delay = Math.min(maxRetry, firstRetry * 2 ** Math.min(failures, 30));
      failures++;
    } else {
      failures = 0;
      if (!(every > 0)) return;
      delay = every;
    }
    timer = setTimeout(() => void refresh().finally(schedule), delay);
    timer.unref?.();
  };
  if (unavailable !== undefined) {
    // The first read, before the gateway listens — bounded, so a vault that never answers cannot
    // hold the start (the read goes on; /readyz says "not loaded yet" meanwhile).
    let waited: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([refresh(), new Promise<void>((r) => (waited = setTimeout(r, src.firstWaitMs ?? 10_000)))]);
    clearTimeout(waited);
  }
  schedule();

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
    get unavailable() {
      return unavailable;
    },
    refresh,
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
