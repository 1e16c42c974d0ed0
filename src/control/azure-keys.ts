/**
 * Listener-token issuers for Azure mode: SAS tokens scoped to one hybrid connection, signed with
 *  - a key given by env (a namespace-level rule; `envKeyIssuer`), or
 *  - the HC's own Listen-only rule key read through ARM `listKeys` (`cachedKeyIssuer`): kept in
 *    memory per HC, read again once older than the refresh interval (checked on use with the
 *    injected clock, so idle HCs cost no ARM calls) and at once after `invalidate` (key rotation).
 * Keys never leave this module; only tokens do, and logs name HCs, never keys or signatures.
 */
import { type RelayEndpoint, resourceUri } from "../hc/address.ts";
import { createSasToken } from "../hc/sas.ts";
import type { ListenerTokenIssuer } from "./types.ts";

export type BindingLog = (event: string, fields: Record<string, unknown>) => void;

export interface ListenKey {
  readonly keyName: string;
  readonly key: string;
}

/** Longest listener token we sign (a day): agents renew long before. */
export const MAX_LISTENER_TTL_SECONDS = 86_400;

function expiry(ttlSeconds: number, now: () => number): number {
  if (!Number.isFinite(ttlSeconds) || ttlSeconds <= 0 || ttlSeconds > MAX_LISTENER_TTL_SECONDS) {
    throw new RangeError(`listener token lifetime must be 1..${MAX_LISTENER_TTL_SECONDS} seconds (got ${ttlSeconds})`);
  }
  return Math.floor(now() / 1000) + Math.ceil(ttlSeconds);
}

function signFor(endpoint: RelayEndpoint, hcPath: string, k: ListenKey, ttlSeconds: number, now: () => number) {
  const se = expiry(ttlSeconds, now);
  return { token: createSasToken(resourceUri(endpoint, hcPath), k.keyName, k.key, se), expiresAt: se * 1000 };
}

/**
 * Signs with the env key (rule `keyName` on the namespace). The token is scoped to the HC but carries
 * the rule's rights; `invalidate` cannot re-read env, so it only logs that the key was rejected.
 */
export function envKeyIssuer(endpoint: RelayEndpoint, key: ListenKey, now: () => number, log: BindingLog): ListenerTokenIssuer {
  return {
    async issue(hcPath, ttlSeconds) {
      return signFor(endpoint, hcPath, key, ttlSeconds, now);
    },
    invalidate(hcPath) {
      log("relay.keys.rejected", { hcPath: hcPath ?? null, source: "env", keyName: key.keyName, hint: "AZHEXGATE_RELAY_KEY was rotated? update it and restart" });
    },
  };
}

export interface CachedKeyIssuerOptions {
  endpoint: RelayEndpoint;
  /** Reads the current key of the HC's listen rule (ARM `listKeys`). */
  readKey: (hcPath: string) => Promise<ListenKey>;
  /** A key older than this is read again before signing. */
  refreshMs: number;
  now: () => number;
  log: BindingLog;
}

export interface CachedKeyIssuer extends ListenerTokenIssuer {
  /** Drops the HC's key (it was deleted). */
  forget(hcPath: string): void;
  /** Drops every key (close). */
  clear(): void;
  /** HCs whose key is held. */
  readonly size: number;
}

interface Entry extends ListenKey {
  readAt: number;
}

export function cachedKeyIssuer(o: CachedKeyIssuerOptions): CachedKeyIssuer {
  const cache = new Map<string, Entry>();
  const reads = new Map<string, Promise<Entry>>();
  let closed = false;

  const read = (hcPath: string): Promise<Entry> => {
    const running = reads.get(hcPath);
    if (running) return running;
    const p: Promise<Entry> = o
      .readKey(hcPath)
      .then((k) => {
        const entry: Entry = { keyName: k.keyName, key: k.key, readAt: o.now() };
        // an invalidate() during the read drops this result: it may predate the rotation
        if (reads.get(hcPath) === p && !closed) cache.set(hcPath, entry);
        return entry;
      })
      .finally(() => {
        if (reads.get(hcPath) === p) reads.delete(hcPath);
      });
    reads.set(hcPath, p);
    return p;
  };

  const keyFor = async (hcPath: string): Promise<ListenKey> => {
    const held = cache.get(hcPath);
    if (held && o.now() - held.readAt < o.refreshMs) return held;
    if (!held) return read(hcPath);
    try {
      return await read(hcPath);
    } catch (err) {
      // ARM trouble must not stop token issuance: the held key is still the best guess, and a
      // rotation shows up as a rejected token → invalidate() → a read that must succeed.
      o.log("relay.keys.refresh_failed", { hcPath, error: (err as Error)?.message ?? String(err), usingKeyReadAt: new Date(held.readAt).toISOString() });
      return held;
    }
  };

  return {
    async issue(hcPath, ttlSeconds) {
      if (closed) throw new Error("relay binding is closed");
      expiry(ttlSeconds, o.now); // validate before any ARM call
      return signFor(o.endpoint, hcPath, await keyFor(hcPath), ttlSeconds, o.now);
    },
    invalidate(hcPath) {
      if (hcPath === undefined) {
        cache.clear();
        reads.clear();
      } else {
        cache.delete(hcPath);
        reads.delete(hcPath);
      }
      o.log("relay.keys.invalidated", { hcPath: hcPath ?? null });
    },
    forget(hcPath) {
      cache.delete(hcPath);
      reads.delete(hcPath);
    },
    clear() {
      closed = true;
      cache.clear();
      reads.clear();
    },
    get size() {
      return cache.size;
    },
  };
}
