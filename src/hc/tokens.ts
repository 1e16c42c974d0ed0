/**
 * Token providers: one interface yielding the string that goes into `ServiceBusAuthorization`
 * (or `sb-hc-token`) — a SAS token, a fixed token, or an Entra ID token from any TokenCredential.
 */
import type { AccessToken, TokenCredential } from "@azure/core-auth";
import { CLOUDS } from "./clouds.ts";
import { RelayError } from "./errors.ts";
import { createSasToken } from "./sas.ts";

export interface TokenProvider {
  /**
   * A token valid for `resourceUri` (e.g. `http://ns.servicebus.windows.net/hc`).
   * `forceRefresh` after the relay rejected the last one (401 / 1008).
   */
  getToken(resourceUri: string, opts?: { forceRefresh?: boolean }): Promise<string>;
}

/** Signs SAS tokens with a rule name and key; each token lives `ttlSeconds` (default 1 h). */
export function sasTokenProvider(keyName: string, key: string, ttlSeconds = 3600, now: () => number = Date.now): TokenProvider {
  return {
    async getToken(resourceUri) {
      return createSasToken(resourceUri, keyName, key, Math.floor(now() / 1000) + ttlSeconds);
    },
  };
}

/** Always the same token (e.g. a listener token handed out by the management API). */
export function fixedTokenProvider(token: string): TokenProvider {
  return { getToken: async () => token };
}

/**
 * The Entra ID scope for Azure Relay data-plane tokens in the public cloud, in the double-slash
 * form Microsoft's clients send (src/hc/clouds.ts has the sources and the other clouds).
 */
export const RELAY_SCOPE = CLOUDS.public.relayScope;

export interface CredentialProviderOptions {
  /** Scope requested from the credential (default `https://relay.azure.net//.default`; per cloud: `CLOUDS[c].relayScope`). */
  scope?: string;
  /** Fetch a new token when the cached one expires within this many ms (default 5 min). */
  refreshBeforeMs?: number;
  /** Clock, for tests (default `Date.now`). */
  now?: () => number;
}

/**
 * Entra ID tokens from any `TokenCredential` (managed identity, workload identity, Azure CLI, …).
 * `getToken` yields the bare JWT (no `Bearer `), the form the relay takes in `ServiceBusAuthorization`.
 * The token is cached and fetched again once it is within `refreshBeforeMs` of expiry (or past the
 * credential's `refreshAfterTimestamp`); concurrent callers share one fetch. `forceRefresh` skips the
 * cache (after the relay refused the token) but still joins a fetch already under way. If a background
 * refresh fails while the cached token is still valid, the cached token is used.
 * The resource URI is ignored: an Entra token covers every entity its role assignment covers.
 */
export function credentialTokenProvider(credential: TokenCredential, opts: CredentialProviderOptions = {}): TokenProvider {
  const scope = opts.scope ?? RELAY_SCOPE;
  const refreshBeforeMs = opts.refreshBeforeMs ?? 5 * 60_000;
  const now = opts.now ?? Date.now;
  let cached: AccessToken | undefined;
  let inflight: Promise<AccessToken> | undefined;

  const fetchToken = (): Promise<AccessToken> => {
    inflight ??= (async () => {
      try {
        const t = await credential.getToken(scope);
        if (!t?.token) throw new Error("credential returned no token");
        cached = t;
        return t;
      } catch (cause) {
        throw new RelayError("unauthorized", `could not get an Entra ID token for ${scope}: ${(cause as Error)?.message ?? cause}`, true, {
          cause,
        });
      } finally {
        inflight = undefined;
      }
    })();
    return inflight;
  };

  const fresh = (t: AccessToken, at: number): boolean =>
    at < t.expiresOnTimestamp - refreshBeforeMs && (t.refreshAfterTimestamp === undefined || at < t.refreshAfterTimestamp);

  return {
    async getToken(_resourceUri, o) {
      const at = now();
      const held = cached;
      if (o?.forceRefresh) {
        cached = undefined;
        return (await fetchToken()).token;
      }
      if (held && fresh(held, at)) return held.token;
      try {
        return (await fetchToken()).token;
      } catch (err) {
        if (held && at < held.expiresOnTimestamp) return held.token;
        throw err;
      }
    },
  };
}

/**
 * A provider over `DefaultAzureCredential` (env, workload identity, managed identity, Azure CLI, …).
 * `@azure/identity` is imported here, on first call, so nothing from the Azure SDK loads otherwise.
 */
export async function defaultAzureCredentialProvider(
  opts: CredentialProviderOptions & { managedIdentityClientId?: string; tenantId?: string } = {},
): Promise<TokenProvider> {
  const { DefaultAzureCredential } = await import("@azure/identity");
  const { managedIdentityClientId, tenantId, ...providerOpts } = opts;
  const credential = new DefaultAzureCredential({
    ...(managedIdentityClientId ? { managedIdentityClientId } : {}),
    ...(tenantId ? { tenantId } : {}),
  });
  return credentialTokenProvider(credential, providerOpts);
}
